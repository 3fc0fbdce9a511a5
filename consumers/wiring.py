"""What the services in ``consumers/`` share when they start and run.

The instance id, the runtime's group settings, the connection settings after
``--client``, and the loop that runs a service's tasks on the task runtime
with its metrics and probes: the engine and the retrainer start the same way,
and only their service, their metrics and the errors that end them differ.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

import structlog

from stream_mlops.config import KafkaSettings, Settings
from stream_mlops.kafka.bootstrap import connection_settings
from stream_mlops.kafka.observer import RuntimeObserver
from stream_mlops.kafka.task_runtime import (
    GroupIdentity,
    RuntimeConfig,
    TaskRuntime,
    TaskService,
)
from stream_mlops.kafka.transport import Transport
from stream_mlops.ops.metrics_server import MetricsAddressError
from stream_mlops.ops.probes import runtime_status
from stream_mlops.ops.service_metrics import ServiceMetrics

S = TypeVar("S")
S_contra = TypeVar("S_contra", contravariant=True)


class TaskMetrics(RuntimeObserver, Protocol[S_contra]):
    """A service's own metrics: a runtime observer that also reads its tasks."""

    def watch(self, tasks: Callable[[], Mapping[int, S_contra]]) -> None: ...


def default_instance_id() -> str:
    """Stable across restarts of the same process slot, so a restarted service
    fences its killed predecessor's open transaction and takes its partitions
    back at once (static group membership)."""
    return os.environ.get("STREAM_MLOPS_INSTANCE_ID") or socket.gethostname()


def runtime_config(
    log: structlog.typing.FilteringBoundLogger,
    kafka: KafkaSettings,
    group: GroupIdentity,
    instance_id: str,
    session_timeout_ms: int | None = None,
) -> RuntimeConfig | None:
    """The service's ``RuntimeConfig``; None, after a ``config.invalid`` line,
    if Kafka would refuse the instance id."""
    try:
        return RuntimeConfig.for_group(
            kafka, group, instance_id=instance_id, session_timeout_ms=session_timeout_ms
        )
    except ValueError as exc:
        log.error(
            "config.invalid",
            error=f"{exc} (--instance-id, else $STREAM_MLOPS_INSTANCE_ID, else the host name)",
        )
        return None


def with_connection(settings: Settings, client: str | None) -> Settings:
    """``settings`` with the cluster address resolved and ``--client`` applied."""
    return settings.model_copy(update={"kafka": connection_settings(settings, client=client)})


def run_tasks(
    service: TaskService[S],
    transport: Transport,
    config: RuntimeConfig,
    *,
    name: str,
    stop: threading.Event,
    log: structlog.typing.FilteringBoundLogger,
    telemetry: ServiceMetrics | None,
    task_metrics: TaskMetrics[S] | None,
    failures: tuple[type[Exception], ...],
) -> int:
    """Run ``service``'s tasks until ``stop`` is set; the exit code (``exit_code``)."""
    observers: list[RuntimeObserver] = []
    if telemetry is not None and task_metrics is not None:
        observers = [*telemetry.observers, task_metrics]

    def run() -> None:
        with TaskRuntime(service, transport, config, observers=observers) as runtime:
            if telemetry is not None and task_metrics is not None:
                task_metrics.watch(lambda: runtime.tasks)
                telemetry.serve(lambda: runtime_status(runtime.stats.snapshot()), log)
            runtime.run(stop)

    return exit_code(run, name=name, log=log, telemetry=telemetry, failures=failures)


def exit_code(
    run: Callable[[], None],
    *,
    name: str,
    log: structlog.typing.FilteringBoundLogger,
    telemetry: ServiceMetrics | None,
    failures: tuple[type[Exception], ...],
) -> int:
    """Call ``run``; the service's exit code.

    1 after a ``<name>.failed`` line for one of ``failures`` (or
    ``metrics.bind_failed``), 0 once ``run`` returns. The metrics server, if
    any, is closed either way.
    """
    try:
        run()
    except failures as exc:
        log.error(f"{name}.failed", error=str(exc))
        return 1
    except MetricsAddressError as exc:
        log.error("metrics.bind_failed", error=str(exc))
        return 1
    finally:
        if telemetry is not None:
            telemetry.close()
    return 0
