"""The retrainer's own metrics: requests, sessions, promotions, retirements, p-values.

``RetrainerMetrics`` is a ``RuntimeObserver`` of the retrainer's runtime and
the ``RetrainerService``'s notice listener. The core announces each decision
as a ``Notice`` (``request.received``, ``session.started``, ``promotion``,
``retired``, ...); they are counted when the transaction they belong to
commits, and dropped when it aborts (the rewind decides them again). A
promotion is announced by ``act``, in the transaction that publishes its
``ModelUpdate``: counted when that update becomes visible.

After each commit and restore it reads the tasks on the runtime's thread: the
open sessions, each one's latest look (its p-value), the buffered labeled
events. The gauges come from that reading at each scrape.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stream_mlops.ops.metrics import LabelBudget
from stream_mlops.ops.task_metrics import CommittedOutputs
from stream_mlops.retrain.retrainer import Notice, RetrainTask
from stream_mlops.retrain.session import Running

__all__ = ["RetrainerMetrics"]

# Models a retrainer labels metrics with before the rest share _other_.
_MAX_MODELS: Final = 2000
_REQUEST_RESULTS: Final = {
    "request.received": "received",
    "request.stale": "stale",
    "request.duplicate": "duplicate",
}


class RetrainerMetrics(CommittedOutputs[Notice, RetrainTask]):
    """The retrainer's metrics; ``noticed`` is the ``RetrainerService``'s ``on_notice``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._requests = Counter(
            "stream_mlops_retrainer_requests",
            "Retrain requests read, by result (received: a session may start; stale: older "
            "than the champion; duplicate: already handled)",
            ["result"],
            registry=registry,
        )
        self._sessions = Counter(
            "stream_mlops_retrainer_sessions_started",
            "Challenger sessions started, by model",
            ["model"],
            registry=registry,
        )
        self._promotions = Counter(
            "stream_mlops_retrainer_promotions",
            "Challengers promoted (a ModelUpdate published), by model",
            ["model"],
            registry=registry,
        )
        self._retirements = Counter(
            "stream_mlops_retrainer_retirements",
            "Challengers retired without a promotion, by model",
            ["model"],
            registry=registry,
        )
        self._models = LabelBudget(_MAX_MODELS)
        #: the last reading: open sessions, buffered events, p-value per model
        self._open = 0
        self._buffered = 0
        self._p_values: dict[str, float] = {}
        registry.register(_SessionCollector(self))

    def noticed(self, notice: Notice) -> None:
        """The core announced a decision in the open transaction."""
        self._announced(notice)

    # -- counting -------------------------------------------------------------------

    def _committed(self, notices: list[Notice]) -> None:
        for notice in notices:
            self._count(notice)

    def _count(self, notice: Notice) -> None:
        result = _REQUEST_RESULTS.get(notice.event)
        if result is not None:
            self._requests.labels(result).inc()
            return
        model = notice.fields.get("model_id")
        if not isinstance(model, str):
            return
        counter = {
            "session.started": self._sessions,
            "promotion": self._promotions,
            "retired": self._retirements,
        }.get(notice.event)
        if counter is not None:
            counter.labels(*self._models.admit((model,))).inc()

    def _read(self, *, count: bool = False) -> None:
        open_sessions = buffered = 0
        p_values = dict(self._p_values)
        for task in self._tasks().values():
            buffered += len(task.buffer)
            for model, session in task.sessions.items():
                decision = session.decision
                if isinstance(decision, Running):
                    open_sessions += 1
                if decision.verdict is not None:
                    (label,) = self._models.admit((model,))
                    p_values[label] = decision.verdict.p_value
        self._open, self._buffered, self._p_values = open_sessions, buffered, p_values


class _SessionCollector(Collector):
    def __init__(self, metrics: RetrainerMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return self._families(0, 0, {})

    def collect(self) -> Iterator[GaugeMetricFamily]:
        m = self._metrics
        return self._families(m._open, m._buffered, m._p_values)

    @staticmethod
    def _families(
        open_sessions: int, buffered: int, p_values: Mapping[str, float]
    ) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "stream_mlops_retrainer_sessions_open",
            "Challenger sessions still deciding, in this process",
            value=open_sessions,
        )
        yield GaugeMetricFamily(
            "stream_mlops_retrainer_buffered_events",
            "Labeled events buffered for the next retrain request, in this process",
            value=buffered,
        )
        p_value = GaugeMetricFamily(
            "stream_mlops_retrainer_last_p_value",
            "The promotion test's p-value at the latest look of the model's latest session",
            labels=["model"],
        )
        for model, value in sorted(p_values.items()):
            p_value.add_metric([model], value)
        yield p_value
