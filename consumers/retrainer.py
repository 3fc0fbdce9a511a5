"""The retraining service (``stream-mlops retrainer``): wiring only.

Loads the configuration, opens the model registry, configures logs, picks the
Kafka client backend and hands over to
``stream_mlops.kafka.retrainer_runtime.RetrainerRuntime``. SIGTERM and SIGINT
finish the open transaction, leave the group and exit 0.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import structlog

from consumers.engine import default_instance_id
from stream_mlops.config import ConfigError, load_settings
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.bootstrap import configured_bootstrap_servers
from stream_mlops.kafka.retrainer_runtime import RetrainerFencedError, RetrainerRuntime
from stream_mlops.kafka.state import StateError
from stream_mlops.kafka.transport import TransportError
from stream_mlops.logging import LogFormat, configure
from stream_mlops.registry import ModelRegistry, RegistryError, resolve_registry
from stream_mlops.retrain import PromotionPolicy


def main(
    config_path: Path | None,
    log_format: LogFormat = "json",
    instance_id: str | None = None,
    client: str | None = None,
    registry_dir: Path | None = None,
) -> int:
    configure(log_format)
    log = structlog.get_logger("stream_mlops.retrainer")
    try:
        settings = load_settings(config_path)
        policy = PromotionPolicy(**settings.retrainer.promotion.overrides())  # type: ignore[arg-type]
    except ConfigError as exc:
        log.error("config.invalid", error=str(exc), path=str(config_path))
        return 2
    except ValueError as exc:  # PromotionPolicy names the field first
        log.error("config.invalid", error=f"retrainer.promotion.{exc}", path=str(config_path))
        return 2
    kafka = settings.kafka.model_copy(
        update={"bootstrap_servers": configured_bootstrap_servers(settings)}
        | ({"client": client} if client is not None else {})
    )
    settings = settings.model_copy(update={"kafka": kafka})
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
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("retrainer.stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        transport = open_transport(kafka, client_id=f"stream-mlops-retrainer-{instance}")
        registry = ModelRegistry(registry_path)
    except (ValueError, RegistryError, OSError) as exc:
        log.error("retrainer.failed", error=str(exc))
        return 2
    runtime = RetrainerRuntime(settings, transport, registry, instance_id=instance, policy=policy)
    try:
        runtime.run(stop)
    except (RetrainerFencedError, StateError, TransportError, RegistryError) as exc:
        log.error("retrainer.failed", error=str(exc))
        return 1
    return 0
