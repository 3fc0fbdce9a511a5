"""Prometheus metrics of a service: its registry, and what the task runtime reports.

``prometheus_client`` is the Prometheus project's own Python client: the
metric types, a registry per process, the text and OpenMetrics formats with
content negotiation, and a WSGI app that serves them. Writing the exposition
format by hand would repeat it with less care for escaping and formats; the
library has no dependencies of its own.

Every service gets its own ``CollectorRegistry`` (``service_registry``): the
standard process, platform and garbage-collector metrics, one
``stream_mlops_service_info``, and the probes as gauges (``watch_probes``).
``RuntimeMetrics`` is a ``RuntimeObserver``: it turns the task runtime's
reports (once per batch of a poll's records, once per checkpoint, at each assignment and
restore; never per record) into counters, gauges and histograms, all labelled
with the service's name. The engine and the retrainer add their own
(``engine_metrics``, ``retrainer_metrics``); the notifier has its set
(``notify_metrics``). Every metric, its labels and meaning:
docs/operators.md.

Labels stay low in cardinality: topics and partitions, outputs by kind, and
dead letters by cause, a short fixed word per kind of failure that the
services set (``invalid``, ``too_large``, ...); never a reason's free text or
an event id. A label that is not such a word, or one past a metric's budget of
distinct values (``LabelBudget``), is counted under ``_other_``.

>>> from prometheus_client import generate_latest
>>> from stream_mlops.kafka.observer import BatchReport
>>> from stream_mlops.kafka.transport import Record
>>> registry = service_registry("engine", standard=False)
>>> metrics = RuntimeMetrics(registry, "engine")
>>> metrics.batch_processed(BatchReport(
...     [[Record("predictions", 0, 7, None, b"{}"), Record("outcomes", 0, 3, None, b"{}")]],
...     {"labeled_event": 1}, {"invalid": 1}, 0.002))
>>> text = generate_latest(registry).decode()
>>> for line in sorted(text.splitlines()):
...     if line.startswith(("stream_mlops_records_consumed", "stream_mlops_dead_letters")):
...         print(line)
stream_mlops_dead_letters_total{cause="invalid",service="engine"} 1.0
stream_mlops_records_consumed_total{partition="0",service="engine",topic="outcomes"} 1.0
stream_mlops_records_consumed_total{partition="0",service="engine",topic="predictions"} 1.0
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Final

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)

from stream_mlops.kafka.observer import BatchReport, CheckpointReport, RestoreReport
from stream_mlops.kafka.transport import TopicPartition
from stream_mlops.ops.probes import Probes

__all__ = [
    "OVERFLOW",
    "LabelBudget",
    "RuntimeMetrics",
    "cause_label",
    "package_version",
    "service_registry",
    "watch_probes",
]

#: The label value that stands for every value past a budget, or not fit to be one.
OVERFLOW: Final = "_other_"

# A label value taken as it is: a short lowercase word (a dead letter's cause).
_WORD = re.compile(r"[a-z][a-z0-9_]{0,31}")
# Distinct causes one service may report before the rest count as _other_: the
# services have about ten each.
_MAX_CAUSES: Final = 32

# Histogram buckets (seconds), from what each takes on a quiet machine to what
# means trouble.
BATCH_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
#: a commit: snapshots, offsets and the broker's answer
COMMIT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: a transaction, from its first record to its commit: at least the checkpoint interval
TRANSACTION_BUCKETS: Final = (0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5, 10, 30, 60)
RESTORE_BUCKETS: Final = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

# The _created series prometheus_client adds next to every counter and
# histogram double the series a scrape carries and say nothing a restart
# (process_start_time_seconds) does not: off, for the whole process.
disable_created_metrics()  # type: ignore[no-untyped-call]


class LabelBudget:
    """At most ``limit`` distinct label sets for one metric; later new ones share ``_other_``.

    >>> budget = LabelBudget(2)
    >>> [budget.admit(key) for key in (("a",), ("b",), ("c",), ("a",))]
    [('a',), ('b',), ('_other_',), ('a',)]
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[tuple[str, ...]] = set()

    def admit(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        if labels in self._seen:
            return labels
        if len(self._seen) < self._limit:
            self._seen.add(labels)
            return labels
        return (OVERFLOW,) * len(labels)


def cause_label(cause: str) -> str:
    """A dead letter's cause as a label: the word itself, or ``_other_`` if it is none.

    >>> cause_label("too_large"), cause_label("field 'x' is missing")
    ('too_large', '_other_')
    """
    return cause if _WORD.fullmatch(cause) else OVERFLOW


def package_version() -> str:
    try:
        return version("stream-mlops")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def service_registry(service: str, *, standard: bool = True) -> CollectorRegistry:
    """A new registry for one service process, with ``stream_mlops_service_info``.

    ``standard`` adds prometheus_client's process, platform and garbage
    collector metrics (``process_*``, ``python_*``), as its default registry has.
    """
    registry = CollectorRegistry()
    if standard:
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
    Info(
        "stream_mlops_service", "The service this process runs, and its version", registry=registry
    ).info({"service": service, "version": package_version()})
    return registry


def watch_probes(registry: CollectorRegistry, service: str, probes: Probes) -> None:
    """The probes' answers as gauges, read at each scrape (the dashboard's health row)."""
    ready = Gauge(
        "stream_mlops_ready", "1 while /readyz answers 200", ["service"], registry=registry
    )
    ready.labels(service).set_function(lambda: float(probes.readiness().ok))
    live = Gauge(
        "stream_mlops_live", "1 while /healthz answers 200", ["service"], registry=registry
    )
    live.labels(service).set_function(lambda: float(probes.liveness().ok))
    since = Gauge(
        "stream_mlops_seconds_since_poll",
        "Seconds since the service's loop last polled Kafka (since its start before the first)",
        ["service"],
        registry=registry,
    )
    since.labels(service).set_function(probes.since_poll)


class RuntimeMetrics:
    """A ``RuntimeObserver``: the task runtime's reports as Prometheus metrics.

    Runs on the runtime's thread, a few counter updates per batch and per
    checkpoint; prometheus_client's metrics are safe to read from the HTTP
    server's thread meanwhile.
    """

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self._service = service
        s = ["service"]
        self._records = Counter(
            "stream_mlops_records_consumed",
            "Input records consumed, by topic and partition",
            [*s, "topic", "partition"],
            registry=registry,
        )
        self._outputs = Counter(
            "stream_mlops_outputs",
            "Records produced into transactions, by kind (labeled_event, drift_alert, "
            "retrain_request, model_update)",
            [*s, "kind"],
            registry=registry,
        )
        self._dead_letters = Counter(
            "stream_mlops_dead_letters",
            "Input records sent to the dead-letter topic, by cause",
            [*s, "cause"],
            registry=registry,
        )
        self._transactions = Counter(
            "stream_mlops_transactions",
            "Transactions ended, by outcome (committed, aborted)",
            [*s, "outcome"],
            registry=registry,
        )
        self._lag = Gauge(
            "stream_mlops_consumer_lag",
            "Records between the consumer's position and the high watermark, per assigned "
            "input partition, as of the last commit",
            [*s, "topic", "partition"],
            registry=registry,
        )
        self._partitions = Gauge(
            "stream_mlops_partitions_assigned",
            "Input partitions (tasks) this process owns",
            s,
            registry=registry,
        )
        self._assignments = Counter(
            "stream_mlops_assignments",
            "Assignment changes (rebalances, and the rewinds after an aborted commit)",
            s,
            registry=registry,
        )
        self._batch = Histogram(
            "stream_mlops_batch_duration_seconds",
            "Routing and processing one batch of a poll's records",
            s,
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self._commit = Histogram(
            "stream_mlops_checkpoint_duration_seconds",
            "A checkpoint's commit: encoding the snapshots, producing them, committing",
            s,
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        self._transaction = Histogram(
            "stream_mlops_transaction_duration_seconds",
            "A committed transaction, from its first record to the end of its commit",
            s,
            buckets=TRANSACTION_BUCKETS,
            registry=registry,
        )
        self._restore = Histogram(
            "stream_mlops_restore_duration_seconds",
            "Rebuilding the assigned tasks from their snapshots after an assignment change",
            s,
            buckets=RESTORE_BUCKETS,
            registry=registry,
        )
        self._children: dict[Hashable, Counter] = {}
        self._causes = LabelBudget(_MAX_CAUSES)
        self._batch_child = self._batch.labels(service)
        self._partitions_child = self._partitions.labels(service)

    def _child(self, metric: Counter, *labels: str) -> Counter:
        """``metric.labels(service, *labels)``, looked up once."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(self._service, *labels)
        return child

    # -- RuntimeObserver ----------------------------------------------------------

    def polled(self, at: float) -> None:
        """Liveness is read from the runtime's stats at each scrape (``watch_probes``)."""

    def batch_processed(self, report: BatchReport) -> None:
        for tp, count in report.records_by_partition().items():
            self._child(self._records, tp.topic, str(tp.partition)).inc(count)
        for kind, count in report.outputs.items():
            self._child(self._outputs, kind).inc(count)
        for cause, count in report.dead_letters.items():
            (label,) = self._causes.admit((cause_label(cause),))
            self._child(self._dead_letters, label).inc(count)
        self._batch_child.observe(report.duration_s)

    def checkpoint_ended(self, report: CheckpointReport) -> None:
        self._child(self._transactions, report.outcome).inc()
        if report.outcome != "committed":
            return
        self._commit.labels(self._service).observe(report.commit_s)
        self._transaction.labels(self._service).observe(report.duration_s)
        self._set_lag(report.lag)

    def assigned(self, partitions: frozenset[int]) -> None:
        self._assignments.labels(self._service).inc()
        self._partitions_child.set(len(partitions))
        # The partitions that went elsewhere have no lag here any more; the
        # others get theirs again at the next commit.
        self._lag.clear()

    def restored(self, report: RestoreReport) -> None:
        self._restore.labels(self._service).observe(report.duration_s)

    def _set_lag(self, lag: Mapping[TopicPartition, int]) -> None:
        for tp, records in lag.items():
            self._lag.labels(self._service, tp.topic, str(tp.partition)).set(records)
