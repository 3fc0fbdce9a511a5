"""The one consume-process-produce runtime that every service runs on.

A service (the drift engine, the retrainer) is a pure core plus a small
``TaskService``: how to start a task's state fresh, restore it from a snapshot,
process a batch of its records, snapshot it, and (for the retrainer) act on
what a commit made durable. Everything Kafka is here, once:

* The clients (transactional producer, group consumer, partition reader) are
  created with the runtime and live as long as it does.
* A **task** is partition *p* of every input topic (they are co-partitioned):
  the service's state for *p*, the next offset to read per input topic, and
  whether it changed since the last commit.
* ``step`` polls once, routes the records to their tasks in poll order (a
  task's records reach the service in the order they were consumed),
  dead-letters tombstones and oversized records, hands each task its batch
  (``TaskService.process``), and checkpoints when due (``checkpoint_due``):
  every ``checkpoint_interval_ms``, after ``checkpoint_max_events`` records, or
  at the end of a batch whose service asked for it (``Outputs.commit_soon``).
  A poll's records are cut into batches of ``batch_max_records`` and the
  checkpoint considered after each, so an alert early in a long poll does not
  wait for the rest of it.
* The ``Checkpoint`` commits outputs, then one snapshot per changed task, then
  the consumed offsets, in one transaction; a failed commit aborts it and every
  task is rebuilt from the last committed snapshots (rewind). A send the
  producer refuses because the open transaction failed (a partition leader
  lost mid-transaction) ends the same way: abort, rewind, read again.
* After each commit, ``TaskService.act`` may carry out what the committed state
  decided, in a new transaction (the retrainer's promotions): a decision is
  durable before anything is done about it.
* Assignment changes are only recorded where the client reports them
  (``AssignmentTracker``) and acted on after the poll, on this thread: abort the
  open transaction, rebuild every assigned task from its latest snapshot
  (``restore.task_snapshot_or_fresh``), seek the consumer there.
* A producer fenced by a newer process with the same transactional id stops
  the runtime with ``FencedError``.
* Process settings: the garbage collector is tuned at start and the restored
  state frozen out of its full passes (``memory``); one poll interval bound.
* Observers (``observer.RuntimeObserver``) hear about each poll, batch,
  checkpoint, assignment and restore; ``stats`` is the built-in one.

``run(stop)`` is the service's main loop; tests drive ``start``, ``step``,
``checkpoint`` and ``close`` one by one.
"""

from __future__ import annotations

import faulthandler
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Generic, Protocol, TypeVar

import structlog

from stream_mlops.config import DEAD_LETTER_PAYLOAD_BYTES, KafkaSettings
from stream_mlops.kafka.checkpoint import Checkpoint, FencedError, Outputs, checkpoint_due
from stream_mlops.kafka.memory import freeze_long_lived, tune_gc
from stream_mlops.kafka.observer import (
    BatchReport,
    CheckpointReport,
    RestoreReport,
    RuntimeObserver,
    RuntimeStats,
)
from stream_mlops.kafka.oversize import OversizeGuard
from stream_mlops.kafka.restore import (
    assigned_tasks,
    require_copartitioned,
    state_partition,
    task_snapshot_or_fresh,
)
from stream_mlops.kafka.state import DEFAULT_CHUNK_BYTES, StateError, TaskSnapshot
from stream_mlops.kafka.transport import (
    AssignmentTracker,
    PartitionReader,
    Record,
    TopicPartition,
    TransactionFailedError,
    Transport,
    check_instance_id,
)

__all__ = [
    "MAX_POLL_INTERVAL_MS",
    "FencedError",
    "GroupIdentity",
    "Outputs",
    "RuntimeConfig",
    "TaskRuntime",
    "TaskService",
    "stop_on_signals",
]

# A poll should return promptly enough to honour the checkpoint interval and
# a stop request, but not spin: 100 ms is well under the default 200 ms interval.
MAX_POLL_WAIT_S = 0.1
MAX_POLL_RECORDS = 2000
# How long processing may keep the runtime from polling before the group gives
# its partitions away. The engine's batches take milliseconds; a retrain
# request replays up to ``buffer_events`` labeled events through two models in
# one go, which the client's default of 5 minutes leaves room for.
MAX_POLL_INTERVAL_MS = 300_000

# Larger than any offset: a record of a topic the task does not read is "already held".
_NOT_AN_INPUT = sys.maxsize

S = TypeVar("S")


class TaskService(Protocol[S]):
    """What a service plugs into the runtime; ``S`` is one task's state.

    Every method runs on the runtime's thread. ``process`` and ``act`` put
    outputs and dead letters into ``out`` (the open transaction) and must be
    deterministic in the records they are given, so that a task rebuilt from
    its snapshot and fed the same records again reaches the same state.
    """

    #: names the logger (``stream_mlops.<name>``), log events and error messages
    name: str
    #: the co-partitioned topics a task reads, partition *p* of each
    input_topics: Sequence[str]

    def fresh(self, partition: int) -> S:
        """The state of a task that never committed."""
        ...

    def restore(
        self, partition: int, state: bytes, offsets: Mapping[str, int], reader: PartitionReader
    ) -> S:
        """The state ``snapshot`` wrote, at ``offsets`` (next offset per input topic).

        ``reader`` re-reads committed input records, for state kept out of the
        snapshot (the engine's pending join, the retrainer's buffer).
        """
        ...

    def process(self, task: S, records: list[Record], out: Outputs) -> None:
        """One poll's records of this task, in consumed order (none is a tombstone
        or over ``max_record_bytes``: the runtime dead-letters those)."""
        ...

    def snapshot(self, task: S) -> bytes: ...

    def has_actions(self, task: S) -> bool:
        """After a commit: does the committed state call for ``act``?"""
        ...

    def act(self, task: S, out: Outputs) -> None:
        """Carry out what the committed state decided, in a new transaction that
        also rewrites the task's snapshot."""
        ...

    def describe(self, tasks: Sequence[S]) -> dict[str, object]:
        """A few fields about these tasks for the ``state.restored`` and
        ``checkpoint`` log lines and the checkpoint reports (e.g. pending entries)."""
        ...

    def totals(self) -> dict[str, object]:
        """The service's own counters, for the ``<name>.stopped`` log line."""
        ...


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """Where a service's runtime reads, writes and commits."""

    group_id: str
    transactional_id: str
    state_topic: str
    dead_letter_topic: str
    checkpoint_interval_ms: int
    checkpoint_max_events: int
    max_record_bytes: int
    #: a poll's records go to the services in batches of at most this many, a
    #: due checkpoint committed after each (``[kafka] batch_max_records``)
    batch_max_records: int = MAX_POLL_RECORDS
    #: None keeps the client's default
    session_timeout_ms: int | None = None
    #: the consumer's ``group.instance.id`` (static membership); None: a dynamic member
    instance_id: str | None = None
    #: how much of a bad record's value its dead letter keeps
    dead_letter_payload_bytes: int = DEAD_LETTER_PAYLOAD_BYTES
    #: state records' largest piece of a snapshot (``TaskSnapshot.records``)
    snapshot_chunk_bytes: int = DEFAULT_CHUNK_BYTES

    @classmethod
    def for_group(
        cls,
        kafka: KafkaSettings,
        group: GroupIdentity,
        *,
        instance_id: str,
        session_timeout_ms: int | None = None,
    ) -> RuntimeConfig:
        """A service's group and transactional id, with ``[kafka]``'s topics and limits.

        The instance id names both the transactional id and, with ``[kafka]
        static_membership`` (the default), the consumer's ``group.instance.id``;
        both are stable across restarts of the same instance, so a restarted
        process fences its killed predecessor's open transaction and takes its
        partitions back at once, without waiting for the dead member's session
        to expire. ``ValueError`` if Kafka would refuse the id as a static
        member's (``transport.check_instance_id``).
        """
        static = kafka.static_membership
        if static:
            check_instance_id(instance_id)
        return cls(
            group_id=group.group_id,
            transactional_id=f"{group.transactional_id_prefix}-{instance_id}",
            state_topic=kafka.topics.state,
            dead_letter_topic=kafka.topics.dead_letters,
            checkpoint_interval_ms=kafka.checkpoint_interval_ms,
            checkpoint_max_events=kafka.checkpoint_max_events,
            max_record_bytes=kafka.max_record_bytes,
            batch_max_records=kafka.batch_max_records,
            session_timeout_ms=session_timeout_ms,
            instance_id=instance_id if static else None,
            dead_letter_payload_bytes=kafka.dead_letter_max_payload_bytes,
            snapshot_chunk_bytes=kafka.snapshot_chunk_bytes,
        )


class GroupIdentity(Protocol):
    """The settings section that names a service's consumer group and transactional ids."""

    @property
    def group_id(self) -> str: ...

    @property
    def transactional_id_prefix(self) -> str: ...


@dataclass(slots=True)
class _Task(Generic[S]):
    partition: int
    state: S
    #: next offset to process, per input topic (also what the group commits)
    next_offsets: dict[str, int]
    #: processed something since the last committed snapshot
    dirty: bool = False
    #: this poll's records for the task (emptied once processed)
    inbox: list[Record] = field(default_factory=list)


class TaskRuntime(Generic[S]):
    """Runs one ``TaskService`` as a consumer-group member with exactly-once outputs and state."""

    def __init__(
        self,
        service: TaskService[S],
        transport: Transport,
        config: RuntimeConfig,
        *,
        observers: Iterable[RuntimeObserver] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.config = config
        self.stats = RuntimeStats()
        self._observers: tuple[RuntimeObserver, ...] = (self.stats, *observers)
        self._clock = clock
        self._topics = list(service.input_topics)
        self._interval_s = config.checkpoint_interval_ms / 1000
        self._log = structlog.get_logger(f"stream_mlops.{service.name}")
        self._tracker = AssignmentTracker()
        self._tasks: dict[int, _Task[S]] = {}
        self._group_metadata: object = None
        self._last_checkpoint = clock()
        self._closed = False
        # The producer first: creating it fences any earlier process with our id.
        self._producer = self.oversize = OversizeGuard(
            transport.transactional_producer(config.transactional_id),
            dead_letter_topic=config.dead_letter_topic,
            state_topic=config.state_topic,
            log=self._log,
        )
        try:
            self._reader = transport.partition_reader()
            try:
                self._consumer = transport.group_consumer(
                    config.group_id,
                    max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
                    session_timeout_ms=config.session_timeout_ms,
                    instance_id=config.instance_id,
                )
            except BaseException:
                self._reader.close()
                raise
        except BaseException:
            self._producer.close()
            raise
        reader = self._reader
        self._checkpoint = Checkpoint(
            self._producer,
            dead_letter_topic=config.dead_letter_topic,
            state_topic=config.state_topic,
            state_partition=lambda p: state_partition(reader, config.state_topic, p),
            owner=service.name,
            transactional_id=config.transactional_id,
            clock=clock,
            log=self._log,
            dead_letter_payload_bytes=config.dead_letter_payload_bytes,
            chunk_bytes=config.snapshot_chunk_bytes,
        )

    @property
    def tasks(self) -> dict[int, S]:
        """The assigned tasks' states by partition (for tests and tools; not thread-safe)."""
        return {p: task.state for p, task in self._tasks.items()}

    # -- the loop -------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Process until ``stop`` is set, then commit what is open, leave the group and close."""
        tune_gc()
        try:
            self.start()
            while not stop.is_set():
                self.step()
            self.checkpoint(final=True)
        finally:
            self.close()

    def start(self) -> None:
        """Check the input topics and join the group."""
        require_copartitioned(
            self._reader,
            self._topics,
            "a task reads the same partition of each, so they need the same partition count",
        )
        self._consumer.subscribe(self._topics, self._tracker)
        self._log.info(
            f"{self.service.name}.started",
            group_id=self.config.group_id,
            transactional_id=self.config.transactional_id,
            topics=self._topics,
        )

    def step(self) -> None:
        """Poll once, act on an assignment change or process the records, checkpoint if due."""
        checkpoint = self._checkpoint
        wait = self._last_checkpoint + self._interval_s - self._clock()
        records = self._consumer.poll(max(0.0, min(MAX_POLL_WAIT_S, wait)), MAX_POLL_RECORDS)
        now = self._clock()
        for observer in self._observers:
            observer.polled(now)
        if self._tracker.take():
            # Records in hand may belong to partitions we no longer own, or
            # precede a restored snapshot: drop them, they will be re-fetched.
            self._restore_assignment()
            return
        size = self.config.batch_max_records
        for start in range(0, max(1, len(records)), size):
            if records:
                try:
                    self._process(records[start : start + size])
                except TransactionFailedError as exc:  # fenced ones are FencedError
                    self._abandon(exc)
                    return
                now = self._clock()
            if (
                checkpoint_due(
                    urgent=checkpoint.urgent,
                    since_last_s=now - self._last_checkpoint,
                    interval_s=self._interval_s,
                    records=checkpoint.records,
                    max_records=self.config.checkpoint_max_events,
                )
                and not self.checkpoint()
            ):
                # Rewound to the last commit: the rest of this poll comes again.
                return

    def _process(self, records: list[Record]) -> None:
        """Route a batch of a poll's records to their tasks, then let the service process each.

        One pass with the lookups hoisted: at tens of thousands of records per
        second, per-record overhead is a large share of the cost.
        """
        started = self._clock()
        tasks = self._tasks
        limit = self.config.max_record_bytes
        rejected: list[Record] = []
        for record in records:
            task = tasks.get(record.partition)
            if task is None:
                continue  # fetched before a rebalance we have not acted on yet
            next_offsets = task.next_offsets
            topic, offset = record.topic, record.offset
            if offset < next_offsets.get(topic, _NOT_AN_INPUT):
                continue  # already in the restored state
            next_offsets[topic] = offset + 1
            value = record.value
            if value is None or len(value) > limit:
                rejected.append(record)
                task.dirty = True
                continue
            task.inbox.append(record)
        if not rejected and not any(task.inbox for task in tasks.values()):
            return
        checkpoint = self._checkpoint
        checkpoint.begin()
        batches: list[Sequence[Record]] = [rejected] if rejected else []
        for record in rejected:
            self._reject(record)
        for task in tasks.values():
            inbox = task.inbox
            if inbox:
                task.inbox = []
                task.dirty = True
                batches.append(inbox)
                self.service.process(task.state, inbox, checkpoint)
        checkpoint.records += sum(len(batch) for batch in batches)
        outputs, dead_letters = checkpoint.take_counts()
        report = BatchReport(batches, outputs, dead_letters, self._clock() - started)
        for observer in self._observers:
            observer.batch_processed(report)

    def _reject(self, record: Record) -> None:
        if record.value is None:
            self._checkpoint.dead_letter(record, "record has no value (tombstone)", "tombstone")
        else:
            limit = self.config.max_record_bytes
            self._checkpoint.dead_letter(
                record,
                f"record is {len(record.value)} bytes, over max_record_bytes={limit}",
                "too_large",
            )

    # -- checkpoints ------------------------------------------------------------

    def checkpoint(self, *, final: bool = False) -> bool:
        """Commit the open transaction, then act on what it made durable.

        False if a commit failed: its transaction is void and, unless ``final``,
        every task was rebuilt from the last committed snapshot (records in hand
        are stale). ``final``: the last one before closing; a failure then is
        only logged (nothing is rebuilt: the next owner restores from the last
        commit).
        """
        self._last_checkpoint = self._clock()
        if self._checkpoint.open and not self._commit(final=final):
            return False
        due = [task for task in self._tasks.values() if self.service.has_actions(task.state)]
        if not due:
            return True
        self._checkpoint.begin()
        try:
            for task in due:
                self.service.act(task.state, self._checkpoint)
                task.dirty = True
        except TransactionFailedError as exc:
            self._abandon(exc, final=final)
            return False
        return self._commit(final=final)

    def _abandon(self, exc: TransactionFailedError, *, final: bool = False) -> None:
        """A send refused because the open transaction failed: abort it and, unless
        ``final``, rebuild every task from the last commit, as a failed commit does."""
        report = self._checkpoint.abort(str(exc))
        self._report(report)
        self._log.warning("checkpoint.aborted", reason=report.reason, events=report.records)
        if not final:
            self._restore_assignment()

    def _commit(self, *, final: bool) -> bool:
        """Snapshots of the changed tasks and their offsets into the open transaction, commit."""
        started = self._clock()
        changed = [task for task in self._tasks.values() if task.dirty]
        offsets = {
            TopicPartition(topic, task.partition): offset
            for task in changed
            for topic, offset in task.next_offsets.items()
        }
        snapshots = [
            TaskSnapshot(
                group_id=self.config.group_id,
                partition=task.partition,
                offsets=dict(task.next_offsets),
                engine_state=self.service.snapshot(task.state),
            )
            for task in changed
        ]
        described = self.service.describe([task.state for task in self._tasks.values()])
        report = self._checkpoint.commit(snapshots, offsets, self._group_metadata, described)
        if report.outcome == "committed":
            report = replace(report, commit_s=self._clock() - started, lag=self._consumer.lag())
        self._report(report)
        if report.outcome == "aborted":
            self._log.warning("checkpoint.aborted", reason=report.reason, events=report.records)
            if not final:
                # Our state is ahead of what was committed: rebuild from the commit.
                self._restore_assignment()
            return False
        for task in changed:
            task.dirty = False
        self._log.info(
            "checkpoint",
            events=report.records,
            snapshots=report.snapshots,
            duration_ms=round(report.duration_s * 1000, 2),
            commit_ms=round(report.commit_s * 1000, 2),
            final=final,
            **described,
        )
        return True

    def _report(self, report: CheckpointReport) -> None:
        for observer in self._observers:
            observer.checkpoint_ended(report)

    # -- assignment and restore ---------------------------------------------------

    def _restore_assignment(self) -> None:
        """Abort open work and rebuild every assigned task from its snapshot."""
        started = self._clock()
        if self._checkpoint.open:
            self._report(self._checkpoint.abort("the assignment changed"))
        partitions = assigned_tasks(self._consumer.assignment(), self._topics)
        for observer in self._observers:
            observer.assigned(frozenset(partitions))
        self._tasks = {}  # the old states go before the new ones are built
        self._tasks = {p: self._restore_task(p) for p in partitions}
        self._group_metadata = self._consumer.group_metadata()
        # The rebuilt state is long-lived: out of the collector's full passes.
        frozen = freeze_long_lived()
        self._log.info("partitions.assigned", partitions=partitions, gc_frozen=frozen)
        self._last_checkpoint = self._clock()
        report = RestoreReport(frozenset(partitions), self._last_checkpoint - started)
        for observer in self._observers:
            observer.restored(report)

    def _restore_task(self, partition: int) -> _Task[S]:
        started = self._clock()
        inputs = [TopicPartition(topic, partition) for topic in self._topics]
        resume = task_snapshot_or_fresh(
            self._consumer,
            self._reader,
            state_topic=self.config.state_topic,
            group_id=self.config.group_id,
            partition=partition,
            inputs=inputs,
        )
        if isinstance(resume, TaskSnapshot):
            if set(resume.offsets) != set(self._topics):
                raise StateError(
                    f"the snapshot of partition {partition} is for topics "
                    f"{sorted(resume.offsets)}, not {sorted(self._topics)}: "
                    "input topics cannot change under a group id (use a new group id)"
                )
            offsets = dict(resume.offsets)
            state = self.service.restore(partition, resume.engine_state, offsets, self._reader)
            event = "state.restored"
        else:
            offsets = resume
            state = self.service.fresh(partition)
            event = "state.fresh"
        # Explicit offsets, also for a fresh task (not seek_to_beginning):
        # kafka-python resets that lazily, and after a rebalance with fetches in
        # flight it was seen to leave the partition silent.
        for tp in inputs:
            self._consumer.seek(tp, offsets[tp.topic])
        self._log.info(
            event,
            partition=partition,
            offsets=offsets,
            duration_ms=round((self._clock() - started) * 1000, 2),
            **self.service.describe([state]),
        )
        return _Task(partition, state, dict(offsets))

    # -- closing ------------------------------------------------------------------

    def close(self) -> None:
        """Leave the group and close the clients, committing nothing (safe to repeat)."""
        if self._closed:
            return
        self._closed = True
        for closer in (self._consumer, self._reader, self._producer):
            try:
                closer.close()
            except Exception:
                self._log.exception(f"{self.service.name}.close_failed")
        self.stats.stopped()
        totals = self.stats.snapshot()
        self._log.info(
            f"{self.service.name}.stopped",
            records=totals.records,
            dead_letters=sum(totals.dead_letters.values()),
            outputs=dict(totals.outputs),
            checkpoints=totals.checkpoints,
            aborted=totals.aborted,
            too_large=sum(self.oversize.refused.values()),
            # ru_maxrss is in KiB on Linux.
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            **self.service.totals(),
        )

    def __enter__(self) -> TaskRuntime[S]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def stop_on_signals(log: structlog.typing.FilteringBoundLogger, name: str) -> threading.Event:
    """An event that SIGTERM and SIGINT set (the loop then finishes its
    transaction and leaves); ``kill -USR1 <pid>`` dumps every thread's stack to
    stderr, what an operator needs when a service looks stuck."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info(f"{name}.stopping", signal=signal.Signals(signum).name)
        stop.set()

    faulthandler.register(signal.SIGUSR1, all_threads=True)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop
