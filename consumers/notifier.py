"""The notifier service (``stream-mlops notify``): wiring only.

Loads the configuration, resolves the webhooks (``url_env`` from the
environment), configures logs, picks the Kafka client backend and hands over
to ``stream_mlops.ops.notify_service.Notifier``, with its metrics and probes
when ``[metrics]`` (or ``--metrics-port``) asks for them. SIGTERM and SIGINT
commit what was delivered, leave the group and exit 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from consumers.wiring import default_instance_id, exit_code
from stream_mlops.config import ConfigError, load_settings
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.bootstrap import connection_settings
from stream_mlops.kafka.task_runtime import stop_on_signals
from stream_mlops.kafka.transport import TransportError
from stream_mlops.logging import LogFormat, configure
from stream_mlops.ops.metrics_server import metrics_settings
from stream_mlops.ops.notify_metrics import NotifierCollector
from stream_mlops.ops.notify_service import Notifier, resolve_webhooks
from stream_mlops.ops.probes import LoopStatus
from stream_mlops.ops.service_metrics import ServiceMetrics


def main(
    config_path: Path | None,
    log_format: LogFormat = "json",
    client: str | None = None,
    *,
    metrics_host: str | None = None,
    metrics_port: int | None = None,
) -> int:
    configure(log_format)
    log = structlog.get_logger("stream_mlops.notifier")
    try:
        settings = load_settings(config_path)
        webhooks = resolve_webhooks(settings.notify, os.environ)
        metrics = metrics_settings(settings.metrics, host=metrics_host, port=metrics_port)
    except ConfigError as exc:
        log.error("config.invalid", error=str(exc), path=str(config_path))
        return 2
    kafka = connection_settings(settings, client=client)
    settings = settings.model_copy(update={"kafka": kafka})
    notify = settings.notify
    log.info(
        "notifier.config",
        path=str(config_path) if config_path else None,
        bootstrap_servers=kafka.bootstrap_servers,
        client=kafka.client,
        security=kafka.security.redacted(),
        group_id=notify.group_id,
        topics={
            "drift_alerts": kafka.topics.drift_alerts,
            "model_updates": kafka.topics.model_updates,
            "dead_letters": kafka.topics.dead_letters,
        },
        # Names only: a webhook's URL is a secret.
        webhooks=[
            {
                "name": w.name,
                "format": w.settings.format,
                "events": w.settings.events,
                "models": w.settings.models,
                "min_severity": w.settings.min_severity,
            }
            for w in webhooks
        ],
        max_attempts=notify.max_attempts,
    )
    stop = stop_on_signals(log, "notifier")
    try:
        transport = open_transport(
            kafka, client_id=f"stream-mlops-notifier-{default_instance_id()}"
        )
    except ValueError as exc:
        log.error("notifier.failed", error=str(exc))
        return 2
    notifier = Notifier(settings, webhooks, transport)
    telemetry = ServiceMetrics(metrics, "notifier", runtime=False) if metrics.enabled else None

    def run() -> None:
        if telemetry is not None:
            stats = notifier.stats
            telemetry.registry.register(NotifierCollector(stats))
            telemetry.serve(lambda: LoopStatus(ready=stats.ready, last_poll=stats.last_poll), log)
        notifier.run(stop)

    return exit_code(run, name="notifier", log=log, telemetry=telemetry, failures=(TransportError,))
