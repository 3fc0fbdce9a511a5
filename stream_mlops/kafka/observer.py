"""What the task runtime reports as it runs: the hook for metrics and health probes.

The runtime calls every ``RuntimeObserver`` it was given on its own thread, at a
handful of points: after each poll (liveness), after each batch of a poll's records, after
each checkpoint (committed or aborted), when the assignment changes (not ready)
and when the assigned tasks are restored (ready). A metrics exporter or a probe
server implements the protocol (or reads ``RuntimeStats``) and never touches
the loop itself.

Reports are built once per poll or checkpoint, never per record, and the
per-partition record counts are computed only when an observer asks for them,
so an observer that does not look costs nothing on the hot path.

``RuntimeStats`` is the observer the runtime always has: process totals and
the liveness and readiness facts, behind a lock, so another thread (an HTTP
probe) can read a consistent ``snapshot()`` at any time.

>>> stats = RuntimeStats()
>>> stats.polled(12.5)
>>> stats.assigned(frozenset({0, 1}))
>>> stats.snapshot().ready
False
>>> stats.restored(RestoreReport(partitions=frozenset({0, 1}), duration_s=0.25))
>>> view = stats.snapshot()
>>> view.ready, view.partitions, view.last_poll
(True, (0, 1), 12.5)
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Literal, Protocol

from stream_mlops.kafka.transport import Record, TopicPartition

__all__ = [
    "BatchReport",
    "CheckpointReport",
    "RestoreReport",
    "RuntimeObserver",
    "RuntimeStats",
    "StatsSnapshot",
]


# A record's (topic, partition): its first two fields.
_TOPIC_PARTITION = itemgetter(0, 1)


@dataclass(frozen=True, slots=True)
class BatchReport:
    """One batch of a poll's records (at most ``batch_max_records``), processed in the
    open transaction."""

    #: the records handed to the service or dead-lettered by the runtime, one
    #: sequence per task (records a task already held are not counted)
    batches: Sequence[Sequence[Record]]
    #: outputs sent, by kind (``drift_alert``, ``labeled_event``, ``model_update``, ...)
    outputs: Mapping[str, int]
    #: dead letters sent, by cause (``invalid``, ``too_large``, ...: a short, fixed
    #: vocabulary per service, fit for a metric label; the readable reason is in
    #: the dead letter itself)
    dead_letters: Mapping[str, int]
    #: from the first record routed to the last one processed
    duration_s: float

    @property
    def records(self) -> int:
        return sum(len(batch) for batch in self.batches)

    def records_by_partition(self) -> dict[TopicPartition, int]:
        """Records per input topic and partition (counted on demand: a pass over the batch).

        The pass runs in C (``Counter`` over ``itemgetter``), not a Python loop:
        a metrics observer asks for it after every batch.
        """
        counts: Counter[tuple[str, int]] = Counter()
        for batch in self.batches:
            counts.update(map(_TOPIC_PARTITION, batch))
        return {TopicPartition(*key): count for key, count in counts.items()}


@dataclass(frozen=True, slots=True)
class CheckpointReport:
    """One transaction ended: committed, or aborted (its outputs and offsets are void)."""

    outcome: Literal["committed", "aborted"]
    #: records consumed in the transaction
    records: int
    #: task snapshots written (committed only)
    snapshots: int
    #: from the transaction's first record (or action) to the end of the commit
    duration_s: float
    #: what the service says about its tasks after the commit (``TaskService.describe``)
    tasks: Mapping[str, object] = field(default_factory=dict)
    #: the offsets committed (next to read, per input partition of the changed
    #: tasks)
    offsets: Mapping[TopicPartition, int] = field(default_factory=dict)
    #: why it aborted
    reason: str | None = None
    #: committed only: the commit itself, from the first snapshot encoded to
    #: the broker's answer (``duration_s`` also holds the time the transaction
    #: stayed open for more records)
    commit_s: float = 0.0
    #: committed only: the consumer lag after the commit, records per assigned
    #: input partition (``GroupConsumer.lag``: the client's own figures, no request)
    lag: Mapping[TopicPartition, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """Every assigned task was rebuilt from its snapshot (or started fresh): ready."""

    partitions: frozenset[int]
    duration_s: float


class RuntimeObserver(Protocol):
    """Called on the runtime's thread; keep each call short and never raise."""

    def polled(self, at: float) -> None:
        """A poll returned; ``at`` is the runtime clock's time (monotonic)."""
        ...

    def batch_processed(self, report: BatchReport) -> None: ...

    def checkpoint_ended(self, report: CheckpointReport) -> None: ...

    def assigned(self, partitions: frozenset[int]) -> None:
        """The group moved partitions; the runtime restores its tasks next (not ready)."""
        ...

    def restored(self, report: RestoreReport) -> None:
        """The assigned tasks are restored: processing resumes (ready)."""
        ...


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """``RuntimeStats`` at one instant, safe to keep and read anywhere."""

    records: int
    outputs: Mapping[str, int]
    dead_letters: Mapping[str, int]
    checkpoints: int
    aborted: int
    partitions: tuple[int, ...]
    #: assigned tasks restored, processing (False from an assignment change to its restore)
    ready: bool
    #: runtime clock (monotonic) of the last poll, None before the first
    last_poll: float | None


class RuntimeStats:
    """Process totals, liveness and readiness; written by the runtime, read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records = 0
        self._outputs: Counter[str] = Counter()
        self._dead_letters: Counter[str] = Counter()
        self._checkpoints = 0
        self._aborted = 0
        self._partitions: tuple[int, ...] = ()
        self._ready = False
        self._last_poll: float | None = None

    def polled(self, at: float) -> None:
        self._last_poll = at  # one reference store: atomic, no lock needed

    def batch_processed(self, report: BatchReport) -> None:
        with self._lock:
            self._records += report.records
            self._outputs.update(report.outputs)
            self._dead_letters.update(report.dead_letters)

    def checkpoint_ended(self, report: CheckpointReport) -> None:
        with self._lock:
            if report.outcome == "committed":
                self._checkpoints += 1
            else:
                self._aborted += 1

    def assigned(self, partitions: frozenset[int]) -> None:
        with self._lock:
            self._partitions = tuple(sorted(partitions))
            self._ready = False

    def restored(self, report: RestoreReport) -> None:
        with self._lock:
            self._partitions = tuple(sorted(report.partitions))
            self._ready = True

    def stopped(self) -> None:
        """The loop ended: no longer ready."""
        with self._lock:
            self._ready = False

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            return StatsSnapshot(
                records=self._records,
                outputs=dict(self._outputs),
                dead_letters=dict(self._dead_letters),
                checkpoints=self._checkpoints,
                aborted=self._aborted,
                partitions=self._partitions,
                ready=self._ready,
                last_poll=self._last_poll,
            )
