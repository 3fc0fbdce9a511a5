"""The retraining service (``stream-mlops retrainer``): wiring only.

Loads the configuration, opens the model registry, configures logs, picks the
Kafka client backend and runs the retrainer on the task runtime
(``stream_mlops.kafka.retrainer_service``), with its metrics and probes when
``[metrics]`` (or ``--metrics-port``) asks for them. SIGTERM and SIGINT finish
the open transaction, leave the group and exit 0.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from consumers.wiring import default_instance_id, run_tasks, runtime_config, with_connection
from stream_mlops.config import ConfigError, load_settings
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.retrainer_service import RetrainerService
from stream_mlops.kafka.state import StateError
from stream_mlops.kafka.task_runtime import (
    FencedError,
    stop_on_signals,
)
from stream_mlops.kafka.transport import TransportError
from stream_mlops.logging import LogFormat, configure
from stream_mlops.ops.metrics_server import metrics_settings
from stream_mlops.ops.retrainer_metrics import RetrainerMetrics
from stream_mlops.ops.service_metrics import ServiceMetrics
from stream_mlops.registry import ModelRegistry, RegistryError, resolve_registry
from stream_mlops.retrain import PromotionPolicy
from stream_mlops.retrain.retrainer import Retrainer, RetrainStateError


def main(
    config_path: Path | None,
    log_format: LogFormat = "json",
    instance_id: str | None = None,
    client: str | None = None,
    registry_dir: Path | None = None,
    *,
    metrics_host: str | None = None,
    metrics_port: int | None = None,
) -> int:
    configure(log_format)
    log = structlog.get_logger("stream_mlops.retrainer")
    try:
        settings = with_connection(load_settings(config_path), client)
        policy = PromotionPolicy(**settings.retrainer.promotion.overrides())  # type: ignore[arg-type]
        metrics = metrics_settings(settings.metrics, host=metrics_host, port=metrics_port)
    except (ConfigError, ValueError) as exc:
        # PromotionPolicy's ValueError names the field within its section.
        where = "" if isinstance(exc, ConfigError) else "retrainer.promotion."
        log.error("config.invalid", error=f"{where}{exc}", path=str(config_path))
        return 2
    kafka = settings.kafka
    registry_path = resolve_registry(registry_dir, settings.retrainer.registry)
    instance = instance_id or default_instance_id()
    log.info(
        "retrainer.config",
        path=str(config_path) if config_path else None,
        bootstrap_servers=kafka.bootstrap_servers,
        client=kafka.client,
        security=kafka.security.redacted(),
        group_id=settings.retrainer.group_id,
        instance_id=instance,
        registry=str(registry_path),
        topics=kafka.topics.model_dump(),
        policy=policy.to_config(),
        buffer_events=settings.retrainer.buffer_events,
    )
    config = runtime_config(
        log, kafka, settings.retrainer, instance, settings.retrainer.session_timeout_ms
    )
    if config is None:
        return 2
    stop = stop_on_signals(log, "retrainer")
    try:
        transport = open_transport(kafka, client_id=f"stream-mlops-retrainer-{instance}")
        registry = ModelRegistry(registry_path)
    except (ValueError, RegistryError, OSError) as exc:
        log.error("retrainer.failed", error=str(exc))
        return 2
    telemetry = ServiceMetrics(metrics, "retrainer") if metrics.enabled else None
    retrainer_metrics = RetrainerMetrics(telemetry.registry) if telemetry is not None else None
    service = RetrainerService(
        Retrainer(settings, registry, policy),
        settings,
        on_notice=retrainer_metrics.noticed if retrainer_metrics is not None else None,
    )
    return run_tasks(
        service,
        transport,
        config,
        name="retrainer",
        stop=stop,
        log=log,
        telemetry=telemetry,
        task_metrics=retrainer_metrics,
        failures=(FencedError, StateError, RetrainStateError, TransportError, RegistryError),
    )
