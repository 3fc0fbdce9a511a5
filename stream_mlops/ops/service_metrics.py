"""What a service process turns on when ``[metrics]`` is: registry, observers, probes, server.

The services' entry points (``consumers/``) only wire this: create it before
the runtime (its observers go to ``TaskRuntime(..., observers=...)``), then
``serve`` once the runtime exists (its stats answer the probes), and
``close`` at the end.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from prometheus_client import CollectorRegistry

from stream_mlops.config import MetricsSettings
from stream_mlops.kafka.observer import RuntimeObserver
from stream_mlops.ops.metrics import RuntimeMetrics, service_registry, watch_probes
from stream_mlops.ops.metrics_server import MetricsServer, serve_metrics
from stream_mlops.ops.probes import LoopStatus, Probes

__all__ = ["ServiceMetrics"]


class ServiceMetrics:
    """One service's metrics: ``registry`` to add to, ``observers`` for its runtime."""

    def __init__(self, settings: MetricsSettings, service: str, *, runtime: bool = True) -> None:
        """``runtime``: the service runs on the task runtime (adds ``RuntimeMetrics``)."""
        self.settings = settings
        self.service = service
        self.registry: CollectorRegistry = service_registry(service)
        self.observers: list[RuntimeObserver] = (
            [RuntimeMetrics(self.registry, service)] if runtime else []
        )
        self.server: MetricsServer | None = None

    def serve(
        self, status: Callable[[], LoopStatus], log: structlog.typing.FilteringBoundLogger
    ) -> None:
        """Answer the probes from ``status`` and start serving (``MetricsAddressError``)."""
        probes = Probes(status, liveness_timeout_s=self.settings.liveness_timeout_seconds)
        watch_probes(self.registry, self.service, probes)
        self.server = serve_metrics(self.settings, self.service, self.registry, probes, log)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
