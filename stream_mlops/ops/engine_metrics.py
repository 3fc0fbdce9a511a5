"""The drift engine's own metrics: alerts, retrain requests, the join, what it tracks, latency.

``EngineMetrics`` is a ``RuntimeObserver`` of the engine's runtime and the
``EngineService``'s alert listener. It learns about alerts and retrain requests
as they go into the open transaction, and counts them when that transaction
commits (an aborted one's are dropped: they are produced again after the
rewind), so ``stream_mlops_alerts_total`` counts exactly what
``read_committed`` consumers of ``drift-alerts`` see.

**Alert latency** (``stream_mlops_alert_latency_seconds``) runs from the Kafka
timestamp of the record that triggered the alert (set by its producer when
it sent it, or by the broker for a topic with ``LogAppendTime``) to the end of
the commit that made the alert visible. It is the engine's delay as a consumer
sees it: time in the topic (consumer lag), processing, and the commit. Not the
event's own ``ts``: event time says when something happened in the scoring
system, often long before its outcome was published, and a simulator's event
time is not a clock at all. Clocks of different hosts can disagree; a negative
difference is counted as 0.

After each commit and each restore it reads every task's ``Engine.holding()``
on the runtime's thread: pending predictions and outcomes, the watermark, the
join's counts (their growth since the last reading feeds the counters; a
restore sets a new baseline, so a task that moved here counts from there),
and the signals tracked per model. The gauges are built from that reading at
each scrape, so the watermark's distance from the wall clock is current even
while the stream is idle.

Model and signal labels are bounded by the engine's limits (model versions
per task, features per model); ``LabelBudget`` caps the alert series anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stream_mlops.engine import Engine, EngineHolding
from stream_mlops.events import DriftAlert, RetrainRequest
from stream_mlops.join import JoinCounts
from stream_mlops.kafka.observer import RestoreReport
from stream_mlops.kafka.transport import Record
from stream_mlops.ops.metrics import LabelBudget
from stream_mlops.ops.task_metrics import CommittedOutputs

__all__ = ["JOIN_COUNTERS", "LATENCY_BUCKETS", "EngineMetrics"]

#: event-to-alert latency: sub-second when caught up, minutes when lagging
LATENCY_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
# Distinct (model, signal, severity) alert series, and models with retrain requests.
_MAX_ALERT_SERIES: Final = 5000
_MAX_MODELS: Final = 2000

# JoinCounts field -> (counter, its label or None); a test checks every field is here.
JOIN_COUNTERS: Final = {
    "joined": ("joined", None),
    "expired_predictions": ("expired_predictions", None),
    "orphan_outcomes_expired": ("orphaned_outcomes", None),
    "evicted_predictions": ("evicted", "prediction"),
    "evicted_outcomes": ("evicted", "outcome"),
    "duplicate_predictions": ("duplicates", "prediction"),
    "duplicate_outcomes": ("duplicates", "outcome"),
}


class EngineMetrics(CommittedOutputs[tuple[DriftAlert | RetrainRequest, int | None], Engine]):
    """The engine's metrics; ``alerted`` is the ``EngineService``'s ``on_alert``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._wall_clock = wall_clock
        super().__init__()
        self._alerts = Counter(
            "stream_mlops_alerts",
            "Drift alerts committed to drift-alerts, by model, signal and severity",
            ["model", "signal", "severity"],
            registry=registry,
        )
        self._requests = Counter(
            "stream_mlops_retrain_requests",
            "Retrain requests committed to retrain-requests, by model",
            ["model"],
            registry=registry,
        )
        self._latency = Histogram(
            "stream_mlops_alert_latency_seconds",
            "From the Kafka timestamp of an alert's triggering record to the commit that made "
            "the alert visible",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        join = {
            "joined": Counter(
                "stream_mlops_join_joined",
                "Predictions joined with their outcome (each one a labeled event)",
                registry=registry,
            ),
            "expired_predictions": Counter(
                "stream_mlops_join_expired_predictions",
                "Predictions whose outcome did not come within [join] ttl_seconds",
                registry=registry,
            ),
            "orphaned_outcomes": Counter(
                "stream_mlops_join_orphaned_outcomes",
                "Outcomes whose prediction did not come within [join] ttl_seconds",
                registry=registry,
            ),
            "evicted": Counter(
                "stream_mlops_join_evicted",
                "Pending entries dropped, oldest first, over [join] max_pending, by kind",
                ["kind"],
                registry=registry,
            ),
            "duplicates": Counter(
                "stream_mlops_join_duplicates",
                "Predictions or outcomes whose event id the join already held or joined, by kind",
                ["kind"],
                registry=registry,
            ),
        }
        self._join_children = {
            name: join[counter] if label is None else join[counter].labels(label)
            for name, (counter, label) in JOIN_COUNTERS.items()
        }
        self._alert_series = LabelBudget(_MAX_ALERT_SERIES)
        self._request_models = LabelBudget(_MAX_MODELS)
        self._baselines: dict[int, JoinCounts] = {}
        #: the last reading, per partition; replaced whole, read by the collector
        self._holdings: Mapping[int, EngineHolding] = {}
        registry.register(_HoldingCollector(self))

    def alerted(self, output: DriftAlert | RetrainRequest, trigger: Record) -> None:
        """An alert or retrain request went into the open transaction."""
        self._announced((output, trigger.timestamp_ms))

    def restored(self, report: RestoreReport) -> None:
        self._baselines = {}
        super().restored(report)

    # -- counting -------------------------------------------------------------------

    def _committed(self, committed: list[tuple[DriftAlert | RetrainRequest, int | None]]) -> None:
        now = self._wall_clock()
        for output, timestamp_ms in committed:
            if isinstance(output, DriftAlert):
                labels = self._alert_series.admit((output.model_id, output.signal, output.severity))
                self._alerts.labels(*labels).inc()
                if timestamp_ms is not None:
                    self._latency.observe(max(0.0, now - timestamp_ms / 1000))
            else:
                self._requests.labels(*self._request_models.admit((output.model_id,))).inc()

    def _read(self, *, count: bool) -> None:
        holdings = {p: engine.holding() for p, engine in self._tasks().items()}
        for partition, holding in holdings.items():
            before = self._baselines.get(partition)
            if count and before is not None:
                for name, child in self._join_children.items():
                    grown = getattr(holding.join, name) - getattr(before, name)
                    if grown > 0:
                        child.inc(grown)
            self._baselines[partition] = holding.join
        self._holdings = holdings


class _HoldingCollector(Collector):
    """The engine's gauges, from its last reading, at each scrape."""

    def __init__(self, metrics: EngineMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return self._families({})

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return self._families(self._metrics._holdings)

    def _families(self, holdings: Mapping[int, EngineHolding]) -> Iterator[GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "stream_mlops_join_pending",
            "Predictions and outcomes waiting in the join, by partition and kind",
            labels=["partition", "kind"],
        )
        watermark = GaugeMetricFamily(
            "stream_mlops_join_watermark_timestamp_seconds",
            "The latest event time the partition's join has seen (epoch seconds)",
            labels=["partition"],
        )
        delay = GaugeMetricFamily(
            "stream_mlops_join_watermark_delay_seconds",
            "The wall clock minus the partition's watermark, at the scrape",
            labels=["partition"],
        )
        versions = GaugeMetricFamily(
            "stream_mlops_model_versions_tracked",
            "Model versions with detector state, summed over this process's partitions",
        )
        models = GaugeMetricFamily(
            "stream_mlops_models_tracked", "Distinct models with state in this process"
        )
        signals = GaugeMetricFamily(
            "stream_mlops_signals_tracked",
            "Signals tracked per model, summed over its versions and this process's partitions",
            labels=["model"],
        )
        now = self._metrics._wall_clock()
        per_model: dict[str, int] = {}
        for partition, holding in sorted(holdings.items()):
            p = str(partition)
            pending.add_metric([p, "prediction"], holding.pending_predictions)
            pending.add_metric([p, "outcome"], holding.pending_outcomes)
            if holding.watermark != float("-inf"):
                watermark.add_metric([p], holding.watermark)
                delay.add_metric([p], now - holding.watermark)
            for model, count in holding.signals.items():
                per_model[model] = per_model.get(model, 0) + count
        versions.add_metric([], sum(h.model_versions for h in holdings.values()))
        models.add_metric([], len(per_model))
        for model, count in sorted(per_model.items()):
            signals.add_metric([model], count)
        yield from (pending, watermark, delay, versions, models, signals)
