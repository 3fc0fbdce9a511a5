"""The engine as a consumer-group member: consume, process, produce, checkpoint.

One event's path, from a Kafka record to an alert:

1. ``GroupConsumer.poll`` returns a ``Record`` of ``predictions`` or
   ``outcomes`` partition *p*.
2. ``EngineRuntime._process`` decodes it (``events.decode_input``); bad bytes,
   bad fields, oversized records and refused models become a ``DeadLetter``.
3. The partition's ``PartitionTask.engine`` (the pure core,
   ``stream_mlops.engine.Engine``) joins it, updates signals and detectors and
   returns outputs: labeled events, drift alerts, retrain requests.
4. The outputs are sent inside the open transaction.
5. ``_checkpoint`` adds one snapshot per changed task to the state topic and
   commits the transaction together with the consumed offsets. Only then are
   the alerts visible to ``read_committed`` readers: each exactly once, even
   across kill -9 and restarts.

Predictions and outcomes are co-partitioned by ``event_id``, so partition *p*
of both topics forms one task with its own engine; a rebalance moves whole
tasks, restored from their snapshots.
"""

from __future__ import annotations

import resource
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import structlog

from stream_mlops.config import Settings
from stream_mlops.engine import Engine, Output
from stream_mlops.events import (
    DriftAlert,
    EventError,
    InputEvent,
    LabeledEvent,
    RetrainRequest,
    decode_input,
    encode,
)
from stream_mlops.kafka.dead_letters import dead_letter
from stream_mlops.kafka.memory import freeze_long_lived, tune_gc
from stream_mlops.kafka.state import (
    StateError,
    TaskSnapshot,
    require_copartitioned,
    state_partition,
    task_snapshot_or_fresh,
)
from stream_mlops.kafka.transport import (
    AssignmentTracker,
    GroupConsumer,
    PartitionReader,
    Record,
    TopicPartition,
    TransactionalProducer,
    TransactionFailedError,
    Transport,
)

Kind = Literal["prediction", "outcome"]

# A poll should return promptly enough to honour the checkpoint interval and
# a stop request, but not spin: 100 ms is well under the default 200 ms interval.
MAX_POLL_WAIT_S = 0.1
MAX_POLL_RECORDS = 2000


class EngineFencedError(Exception):
    """Another engine process took over our transactional id; we must stop."""


@dataclass
class PartitionTask:
    """The engine for partition *p* of the co-partitioned input topics."""

    partition: int
    engine: Engine
    #: next offset to process, per input topic (also what the group commits)
    next_offsets: dict[str, int]
    #: processed something since the last committed snapshot
    dirty: bool = False


@dataclass
class RuntimeStats:
    records: int = 0
    dead_letters: int = 0
    outputs: Counter[str] = field(default_factory=Counter)
    checkpoints: int = 0
    aborted: int = 0
    restores: int = 0


class EngineRuntime:
    """Wires the pure engine to Kafka with exactly-once outputs and state."""

    def __init__(
        self,
        settings: Settings,
        transport: Transport,
        *,
        instance_id: str,
    ) -> None:
        self._settings = settings
        self._kafka = settings.kafka
        self._topics = settings.kafka.topics
        self._transport = transport
        self._instance_id = instance_id
        self._log = structlog.get_logger("stream_mlops.engine")
        self._kinds: dict[str, Kind] = {
            self._topics.predictions: "prediction",
            self._topics.outcomes: "outcome",
        }
        self._output_topics: dict[type, str] = {
            DriftAlert: self._topics.drift_alerts,
            RetrainRequest: self._topics.retrain_requests,
            LabeledEvent: self._topics.labeled_events,
        }
        self.tasks: dict[int, PartitionTask] = {}
        self.stats = RuntimeStats()
        self._tracker = AssignmentTracker()
        self._in_transaction = False
        #: the open transaction holds an alert or retrain request
        self._alert_pending = False
        self._events_since_checkpoint = 0
        self._group_metadata: object = None
        self._consumer: GroupConsumer | None = None
        self._producer: TransactionalProducer | None = None
        self._reader: PartitionReader | None = None

    @property
    def transactional_id(self) -> str:
        return f"{self._kafka.transactional_id_prefix}-{self._instance_id}"

    def run(self, stop: threading.Event) -> None:
        """Process until ``stop`` is set, then finish the open transaction and leave."""
        tune_gc()
        self._producer = self._transport.transactional_producer(self.transactional_id)
        self._reader = self._transport.partition_reader()
        self._consumer = self._transport.group_consumer(
            self._kafka.group_id, max_poll_interval_ms=300_000
        )
        self._check_input_topics()
        self._consumer.subscribe([self._topics.predictions, self._topics.outcomes], self._tracker)
        self._log.info(
            "engine.started",
            group_id=self._kafka.group_id,
            transactional_id=self.transactional_id,
            topics=[self._topics.predictions, self._topics.outcomes],
        )
        try:
            self._loop(stop)
            self._checkpoint(final=True)
        finally:
            self._close()

    def _check_input_topics(self) -> None:
        """Fail at start, with the fix, on missing or not co-partitioned input topics.

        Subscribing to a topic the client has no metadata for yet gives an empty
        assignment that kafka-python only revisits minutes later; waiting here
        for the metadata avoids that as well.
        """
        assert self._reader is not None
        require_copartitioned(
            self._reader,
            list(self._kinds),
            "predictions and outcomes are joined per partition and need the same count",
        )

    def _loop(self, stop: threading.Event) -> None:
        assert self._consumer is not None
        interval_s = self._kafka.checkpoint_interval_ms / 1000
        last_checkpoint = time.monotonic()
        while not stop.is_set():
            wait = max(0.0, min(MAX_POLL_WAIT_S, last_checkpoint + interval_s - time.monotonic()))
            records = self._consumer.poll(wait, MAX_POLL_RECORDS)
            if self._tracker.take():
                # Records in hand may belong to partitions we no longer own, or
                # precede a restored snapshot: drop them, they will be re-fetched.
                self._restore_assignment()
                last_checkpoint = time.monotonic()
                continue
            if records:
                self._process(records)
            now = time.monotonic()
            if (
                self._alert_pending
                or now - last_checkpoint >= interval_s
                or self._events_since_checkpoint >= self._kafka.checkpoint_max_events
            ):
                self._checkpoint()
                last_checkpoint = now

    # -- one poll's records -------------------------------------------------

    def _process(self, records: list[Record]) -> None:
        """Decode, process and publish a poll's records, in order, in the open transaction.

        One pass over the batch with the lookups hoisted: at tens of thousands
        of records per second, per-record overhead is a large share of the cost.
        """
        tasks, kinds = self.tasks, self._kinds
        handled = 0
        for record in records:
            task = tasks.get(record.partition)
            kind = kinds.get(record.topic)
            if task is None or kind is None:
                continue  # fetched before a rebalance we have not acted on yet
            topic, offset = record.topic, record.offset
            if offset < task.next_offsets[topic]:
                continue  # already in the restored state
            self._ensure_transaction()
            task.next_offsets[topic] = offset + 1
            task.dirty = True
            handled += 1
            event_or_reason = self._decode(record, kind)
            if isinstance(event_or_reason, str):
                self._dead_letter(record, event_or_reason)
                continue
            try:
                outputs = task.engine.process(event_or_reason, offset)
            except EventError as exc:  # e.g. an unknown model the config refuses
                self._dead_letter(record, str(exc))
                continue
            except Exception as exc:
                # A bug must not stop the stream or lose the record: it goes to
                # the dead letters with the reason, and the log says so loudly.
                self._log.exception("engine.error", partition=record.partition, offset=offset)
                self._dead_letter(record, f"engine error: {type(exc).__name__}: {exc}")
                continue
            if outputs:
                self._publish(outputs)
                # Alerts and retrain requests are what downstream waits for:
                # commit at the end of this batch instead of at the interval.
                # They are rare (cooldowns, rate limits), so the extra commits are few.
                if type(outputs[-1]) is not LabeledEvent:
                    self._alert_pending = True
        self._events_since_checkpoint += handled
        self.stats.records += handled

    def _decode(self, record: Record, kind: Kind) -> InputEvent | str:
        """The event, or the reason it is not one."""
        if record.value is None:
            return "record has no value (tombstone)"
        size = len(record.value)
        if size > self._kafka.max_record_bytes:
            return f"record is {size} bytes, over max_record_bytes={self._kafka.max_record_bytes}"
        try:
            event = decode_input(record.value, default_type=kind)
        except EventError as exc:
            return str(exc)
        if event.type != kind:
            return f"a {event.type} event does not belong on topic {record.topic!r}"
        return event

    def _publish(self, outputs: list[Output]) -> None:
        assert self._producer is not None
        for output in outputs:
            topic = self._output_topics[type(output)]
            self._producer.send(topic, output.model_id.encode(), encode(output))
            self.stats.outputs[output.type] += 1
            if isinstance(output, DriftAlert):
                self._log.info(
                    "alert",
                    alert_id=output.alert_id,
                    model_id=output.model_id,
                    model_version=output.model_version,
                    signal=output.signal,
                    detector=output.detector,
                    severity=output.severity,
                    trigger_event_id=output.trigger_event_id,
                )
            elif isinstance(output, RetrainRequest):
                self._log.info(
                    "retrain_request",
                    request_id=output.request_id,
                    model_id=output.model_id,
                    model_version=output.model_version,
                )

    def _dead_letter(self, record: Record, reason: str) -> None:
        assert self._producer is not None
        letter = dead_letter(record, reason)
        self._producer.send(self._topics.dead_letters, record.key, encode(letter))
        self.stats.dead_letters += 1
        self._log.warning(
            "dead_letter",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=reason,
        )

    # -- transactions and checkpoints ---------------------------------------

    def _ensure_transaction(self) -> None:
        if not self._in_transaction:
            assert self._producer is not None
            self._producer.begin()
            self._in_transaction = True

    def _transaction_ended(self) -> None:
        """Committed or aborted: what the open transaction held is settled."""
        self._in_transaction = False
        self._alert_pending = False
        self._events_since_checkpoint = 0

    def _checkpoint(self, *, final: bool = False) -> None:
        if not self._in_transaction:
            return
        assert self._producer is not None
        started = time.monotonic()
        offsets: dict[TopicPartition, int] = {}
        snapshots = 0
        for task in self.tasks.values():
            if not task.dirty:
                continue
            for topic, offset in task.next_offsets.items():
                offsets[TopicPartition(topic, task.partition)] = offset
            snapshot = TaskSnapshot(
                group_id=self._kafka.group_id,
                partition=task.partition,
                offsets=dict(task.next_offsets),
                engine_state=task.engine.snapshot(),
            )
            self._producer.send(
                self._topics.state,
                snapshot.key,
                snapshot.to_bytes(),
                partition=self._state_partition(task.partition),
            )
            snapshots += 1
        events = self._events_since_checkpoint
        try:
            self._producer.commit(offsets, self._group_metadata)
        except TransactionFailedError as exc:
            self._transaction_ended()
            self.stats.aborted += 1
            if exc.fenced:
                self._log.error("engine.fenced", transactional_id=self.transactional_id)
                raise EngineFencedError(
                    f"another engine took over transactional id {self.transactional_id!r}; "
                    "give each engine process its own --instance-id"
                ) from exc
            self._log.warning("checkpoint.aborted", reason=str(exc), events=events)
            if not final:
                # Our view of the state is ahead of what was committed: rebuild.
                self._restore_assignment()
            return
        self._transaction_ended()
        for task in self.tasks.values():
            task.dirty = False
        self.stats.checkpoints += 1
        self._log.info(
            "checkpoint",
            events=events,
            snapshots=snapshots,
            duration_ms=round((time.monotonic() - started) * 1000, 2),
            final=final,
        )

    def _state_partition(self, partition: int) -> int:
        assert self._reader is not None
        return state_partition(self._reader, self._topics.state, partition)

    # -- assignment and restore ---------------------------------------------

    def _restore_assignment(self) -> None:
        """Abort open work and rebuild every assigned task from its snapshot."""
        assert self._consumer is not None and self._producer is not None
        if self._in_transaction:
            try:
                self._producer.abort()
            finally:
                self._transaction_ended()
                self.stats.aborted += 1
        assigned = self._consumer.assignment()
        inputs = (self._topics.predictions, self._topics.outcomes)
        by_topic = {t: {tp.partition for tp in assigned if tp.topic == t} for t in inputs}
        if by_topic[inputs[0]] != by_topic[inputs[1]]:
            raise StateError(
                f"topics {inputs[0]!r} and {inputs[1]!r} are not co-partitioned "
                f"(assigned {sorted(by_topic[inputs[0]])} and {sorted(by_topic[inputs[1]])}): "
                "give them the same partition count"
            )
        self.tasks = {}
        for partition in sorted(by_topic[inputs[0]]):
            self.tasks[partition] = self._restore_task(partition)
        self._group_metadata = self._consumer.group_metadata()
        self.stats.restores += 1
        # The rebuilt state is long-lived: out of the collector's full passes.
        frozen = freeze_long_lived()
        self._log.info("partitions.assigned", partitions=sorted(self.tasks), gc_frozen=frozen)

    def _restore_task(self, partition: int) -> PartitionTask:
        assert self._consumer is not None and self._reader is not None
        started = time.monotonic()
        inputs = (self._topics.predictions, self._topics.outcomes)
        tps = [TopicPartition(t, partition) for t in inputs]
        resume = task_snapshot_or_fresh(
            self._consumer,
            self._reader,
            state_topic=self._topics.state,
            group_id=self._kafka.group_id,
            partition=partition,
            inputs=tps,
        )
        labeled = self._kafka.publish_labeled_events
        if not isinstance(resume, TaskSnapshot):
            self._log.info("state.fresh", partition=partition, offsets=resume)
            engine = Engine(self._settings, partition=partition, labeled_events=labeled)
            return PartitionTask(partition, engine, resume)
        snapshot = resume
        engine = Engine.restore(
            self._settings, snapshot.engine_state, partition=partition, labeled_events=labeled
        )
        rebuilt = 0
        for tp in tps:
            kind = self._kinds[tp.topic]
            pending = engine.pending_offsets(kind)
            lowest = pending.lowest()
            end = snapshot.offsets[tp.topic]
            if lowest is not None:
                for record in self._reader.read(tp, lowest, end):
                    if record.offset in pending and record.value is not None:
                        engine.restore_pending(
                            decode_input(record.value, default_type=kind), record.offset
                        )
                        rebuilt += 1
            self._consumer.seek(tp, end)
        self._log.info(
            "state.restored",
            partition=partition,
            offsets=snapshot.offsets,
            pending_rebuilt=rebuilt,
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )
        return PartitionTask(partition, engine, dict(snapshot.offsets))

    def _close(self) -> None:
        for closer in (self._consumer, self._reader, self._producer):
            if closer is not None:
                try:
                    closer.close()
                except Exception:
                    self._log.exception("engine.close_failed")
        self._log.info(
            "engine.stopped",
            records=self.stats.records,
            dead_letters=self.stats.dead_letters,
            outputs=dict(self.stats.outputs),
            checkpoints=self.stats.checkpoints,
            aborted=self.stats.aborted,
            # ru_maxrss is in KiB on Linux.
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        )
