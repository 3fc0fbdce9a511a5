"""The drift engine service (``stream-mlops run``): wiring only.

Loads the configuration, configures logs, picks the Kafka client backend and
hands over to ``stream_mlops.kafka.runtime.EngineRuntime``. SIGTERM and SIGINT
finish the open transaction, leave the group and exit 0.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import socket
import threading
from pathlib import Path

import structlog

from stream_mlops.config import ConfigError, load_settings
from stream_mlops.engine import SnapshotError
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.bootstrap import configured_bootstrap_servers
from stream_mlops.kafka.runtime import EngineFencedError, EngineRuntime
from stream_mlops.kafka.state import StateError
from stream_mlops.kafka.transport import TransportError
from stream_mlops.logging import LogFormat, configure


def default_instance_id() -> str:
    """Stable across restarts of the same process slot, so a restarted engine
    fences its killed predecessor's open transaction at once."""
    return os.environ.get("STREAM_MLOPS_INSTANCE_ID") or socket.gethostname()


def main(
    config_path: Path | None,
    log_format: LogFormat = "json",
    instance_id: str | None = None,
    client: str | None = None,
) -> int:
    configure(log_format)
    log = structlog.get_logger("stream_mlops.engine")
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        log.error("config.invalid", error=str(exc), path=str(config_path))
        return 2
    if client is not None:
        settings = settings.model_copy(
            update={"kafka": settings.kafka.model_copy(update={"client": client})}
        )
    servers = configured_bootstrap_servers(settings)
    settings = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": servers})}
    )
    instance = instance_id or default_instance_id()
    log.info(
        "engine.config",
        path=str(config_path) if config_path else None,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        client=settings.kafka.client,
        security=settings.kafka.security.redacted(),
        group_id=settings.kafka.group_id,
        instance_id=instance,
        topics=settings.kafka.topics.model_dump(),
        checkpoint_interval_ms=settings.kafka.checkpoint_interval_ms,
        models=sorted(settings.models),
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("engine.stopping", signal=signal.Signals(signum).name)
        stop.set()

    # `kill -USR1 <pid>` dumps every thread's stack to stderr: what an operator
    # needs when an engine looks stuck.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        transport = open_transport(settings.kafka, client_id=f"stream-mlops-{instance}")
    except ValueError as exc:
        log.error("engine.failed", error=str(exc))
        return 2
    runtime = EngineRuntime(settings, transport, instance_id=instance)
    try:
        runtime.run(stop)
    except (EngineFencedError, StateError, SnapshotError, TransportError) as exc:
        log.error("engine.failed", error=str(exc))
        return 1
    return 0
