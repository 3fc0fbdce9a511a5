"""The drift engine service (``stream-mlops run``): wiring only.

Loads the configuration, configures logs, picks the Kafka client backend and
runs the engine on the task runtime (``stream_mlops.kafka.engine_service``),
with its metrics and probes when ``[metrics]`` (or ``--metrics-port``) asks
for them (``stream_mlops.ops.service_metrics``). SIGTERM and SIGINT finish the
open transaction, leave the group and exit 0. ``run_workers`` runs N of them as
one command (``stream_mlops.worker_pool``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import structlog

from consumers.wiring import default_instance_id, run_tasks, runtime_config, with_connection
from stream_mlops.config import ConfigError, Settings, load_settings
from stream_mlops.engine import SnapshotError
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.engine_service import EngineService
from stream_mlops.kafka.retrain_inputs import kafka_window_reader
from stream_mlops.kafka.state import StateError
from stream_mlops.kafka.task_runtime import (
    FencedError,
    stop_on_signals,
)
from stream_mlops.kafka.transport import TransportError
from stream_mlops.logging import LogFormat, configure
from stream_mlops.ops.engine_metrics import EngineMetrics
from stream_mlops.ops.metrics_server import metrics_settings
from stream_mlops.ops.service_metrics import ServiceMetrics
from stream_mlops.reference import ModelReference, load_references
from stream_mlops.reference_window import champion_references, needs_champion
from stream_mlops.registry import ModelRegistry, RegistryError, resolve_registry
from stream_mlops.worker_pool import WORKER_ENV, Worker, WorkerPool


def load_engine_references(settings: Settings) -> dict[str, ModelReference]:
    """The pinned references, read once at start: files, then champions' windows.

    ``ConfigError`` (a ``ReferenceError``) names the field of a reference that
    cannot be had; a registry or cluster that cannot be read raises its own error.
    """
    references = load_references(settings)
    if needs_champion(settings):
        registry = ModelRegistry(resolve_registry(None, settings.retrainer.registry))
        with kafka_window_reader(settings) as read_window:
            references.update(champion_references(settings, registry, read_window))
    return references


def _references(
    log: structlog.typing.FilteringBoundLogger, settings: Settings, config_path: Path | None
) -> dict[str, ModelReference] | int:
    """``load_engine_references``, logged; an exit code if they cannot be had."""
    try:
        references = load_engine_references(settings)
    except ConfigError as exc:
        log.error("config.invalid", error=str(exc), path=str(config_path))
        return 2
    except (RegistryError, TransportError) as exc:
        log.error("engine.failed", error=f"reading the champion's training window: {exc}")
        return 1
    for reference in references.values():
        log.info("engine.reference", model_id=reference.model_id, **reference.describe())
    return references


def main(
    config_path: Path | None,
    log_format: LogFormat = "json",
    instance_id: str | None = None,
    client: str | None = None,
    *,
    metrics_host: str | None = None,
    metrics_port: int | None = None,
) -> int:
    configure(log_format)
    worker = os.environ.get(WORKER_ENV)
    if worker:
        # One of `run --workers N`: their logs share one stream, so say whose.
        structlog.contextvars.bind_contextvars(worker=worker)
    log = structlog.get_logger("stream_mlops.engine")
    try:
        settings = with_connection(load_settings(config_path), client)
        metrics = metrics_settings(settings.metrics, host=metrics_host, port=metrics_port)
    except ConfigError as exc:
        log.error("config.invalid", error=str(exc), path=str(config_path))
        return 2
    references = _references(log, settings, config_path)
    if isinstance(references, int):
        return references
    kafka = settings.kafka
    instance = instance_id or default_instance_id()
    log.info(
        "engine.config",
        path=str(config_path) if config_path else None,
        bootstrap_servers=kafka.bootstrap_servers,
        client=kafka.client,
        security=kafka.security.redacted(),
        group_id=kafka.group_id,
        instance_id=instance,
        topics=kafka.topics.model_dump(),
        checkpoint_interval_ms=kafka.checkpoint_interval_ms,
        models=sorted(settings.models),
    )
    config = runtime_config(log, kafka, kafka, instance, kafka.session_timeout_ms)
    if config is None:
        return 2
    stop = stop_on_signals(log, "engine")
    try:
        transport = open_transport(settings.kafka, client_id=f"stream-mlops-{instance}")
    except ValueError as exc:
        log.error("engine.failed", error=str(exc))
        return 2
    telemetry = ServiceMetrics(metrics, "engine") if metrics.enabled else None
    engine_metrics = EngineMetrics(telemetry.registry) if telemetry is not None else None
    service = EngineService(
        settings,
        on_alert=engine_metrics.alerted if engine_metrics is not None else None,
        references=references,
    )
    return run_tasks(
        service,
        transport,
        config,
        name="engine",
        stop=stop,
        log=log,
        telemetry=telemetry,
        task_metrics=engine_metrics,
        failures=(FencedError, StateError, SnapshotError, TransportError),
    )


def worker_commands(
    workers: int,
    *,
    config_path: Path | None,
    log_format: LogFormat,
    instance_id: str,
    client: str | None,
    metrics_host: str | None,
    metrics_port: int | None,
) -> list[Worker]:
    """The ``stream-mlops run`` command line of each of ``workers`` engine processes.

    Worker *i* is instance ``<instance_id>-<i>``; with metrics on, it listens on
    the metrics port plus *i* (port 0: each a free one).

    >>> [w.argv[-2:] for w in worker_commands(2, config_path=None, log_format="json",
    ...     instance_id="eu", client=None, metrics_host=None, metrics_port=None)]
    [['--instance-id', 'eu-0'], ['--instance-id', 'eu-1']]
    """
    base = [sys.executable, "-m", "stream_mlops", "run", "--log-format", log_format]
    if config_path is not None:
        base += ["--config", str(config_path)]
    if client is not None:
        base += ["--client", client]
    if metrics_host is not None:
        base += ["--metrics-address", metrics_host]
    result = []
    for index in range(workers):
        argv = list(base)
        if metrics_port is not None:
            argv += ["--metrics-port", str(metrics_port + index if metrics_port else 0)]
        worker_id = f"{instance_id}-{index}"
        result.append(Worker(worker_id, [*argv, "--instance-id", worker_id]))
    return result


def run_workers(
    workers: int,
    config_path: Path | None,
    log_format: LogFormat = "json",
    instance_id: str | None = None,
    client: str | None = None,
    *,
    metrics_host: str | None = None,
    metrics_port: int | None = None,
) -> int:
    """``stream-mlops run --workers N``: N engine processes of one group, one command.

    The configuration is checked here first, so a bad one is one
    ``config.invalid`` line and exit 2, not N of them.
    """
    configure(log_format)
    log = structlog.get_logger("stream_mlops.engine")
    try:
        settings = load_settings(config_path)
        metrics = metrics_settings(settings.metrics, host=metrics_host, port=metrics_port)
    except ConfigError as exc:
        log.error("config.invalid", error=str(exc), path=str(config_path))
        return 2
    port = metrics.port_for("engine") if metrics.enabled else None
    commands = worker_commands(
        workers,
        config_path=config_path,
        log_format=log_format,
        instance_id=instance_id or default_instance_id(),
        client=client,
        metrics_host=metrics_host,
        metrics_port=port,
    )
    return WorkerPool(commands, log=structlog.get_logger("stream_mlops.workers")).run()
