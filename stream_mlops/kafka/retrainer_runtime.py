"""The retrainer as a consumer-group member: requests and labeled events in, model updates out.

One retrain, from a Kafka record to a model update:

1. A ``retrain-requests`` record of partition *p* is decoded
   (``retrain_inputs.decode_request``); bad bytes, an unknown model or an
   unknown version become a ``DeadLetter``, a request for a version that is no
   longer the champion is skipped as stale.
2. A ``RetrainSession`` starts for the model, challenging the registry's
   champion, and is first fed the buffered labeled events of partition *p*
   from the request's ``window_start`` on (see "Why a buffer" below), then
   every new ``labeled-events`` record of *p* (models are keys, so a model's
   requests and labeled events share the partition number).
3. When the session decides, the decision is committed in a checkpoint (the
   partition's open sessions are snapshotted to the state topic in the same
   transaction as the consumed offsets) *before* anything is done about it.
4. Then, in the next transaction: a ``Promoted`` decision is registered and
   made the champion (``record_promotion``, idempotent) and a ``ModelUpdate``
   is sent to ``model-updates``; a ``Retired`` one is logged and counted. The
   session leaves the snapshot and the transaction commits.

Why this order gives exactly one version and one visible ``ModelUpdate``
across kill -9: a restarted retrainer restores the sessions of its last
commit and re-reads what followed. A crash before step 3 commits loses
nothing but a decision that is recomputed from the same state and records. A
crash between the registry write and the commit of step 4 finds the decided
session, with its artifact, in the snapshot: registering it again returns the
same version, and the ``ModelUpdate`` of the aborted transaction was never
visible to ``read_committed`` readers.

Why a buffer, not a seek by time: the request's ``window_start`` is an event
time, and labeled events reach the topic in outcome order, with broker
timestamps that say when the engine joined them, not when they happened, so
``offsets_for_times`` cannot find where a window begins. Each partition task
keeps the last ``[retrainer] buffer_events`` labeled-events records instead; a
restore rebuilds that buffer by re-reading the same offset range, so a
restarted retrainer holds the same buffer it held at its last commit.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import structlog

from stream_mlops.config import Settings
from stream_mlops.events import EventError, ModelUpdate, TrainingRange, encode, utc_datetime
from stream_mlops.kafka.dead_letters import dead_letter
from stream_mlops.kafka.retrain_inputs import decode_labeled, decode_request, retrain_order
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
from stream_mlops.registry.exceptions import RegistryError, VersionNotFoundError
from stream_mlops.registry.records import ModelVersion
from stream_mlops.registry.registry import ModelRegistry
from stream_mlops.retrain import (
    LabeledExample,
    ModelSpec,
    Promoted,
    PromotionPolicy,
    Retired,
    RetrainInputError,
    RetrainSession,
    record_promotion,
)

Kind = Literal["request", "labeled"]

# As in the engine's runtime: prompt enough for the checkpoint interval and a
# stop request, without spinning.
MAX_POLL_WAIT_S = 0.1
MAX_POLL_RECORDS = 2000
# Training a challenger can take longer between polls than the engine's
# processing; the default 5 minutes leaves room for a long replay of the buffer.
MAX_POLL_INTERVAL_MS = 300_000
# Version of the pickled task state inside a snapshot.
STATE_FORMAT = 1
PICKLE_PROTOCOL = 5


class RetrainerFencedError(Exception):
    """Another retrainer process took over our transactional id; we must stop."""


@dataclass
class RetrainTask:
    """The retrainer for partition *p* of ``retrain-requests`` and ``labeled-events``."""

    partition: int
    #: next offset to process, per input topic (also what the group commits)
    next_offsets: dict[str, int]
    #: open sessions by model id; a decided one stays until its decision is acted on
    sessions: dict[str, RetrainSession] = field(default_factory=dict)
    #: the last labeled events before ``next_offsets`` (not snapshotted: re-read on restore)
    buffer: deque[LabeledExample] = field(default_factory=deque)
    #: processed something since the last committed snapshot
    dirty: bool = False

    def state_bytes(self) -> bytes:
        return pickle.dumps(
            {"format": STATE_FORMAT, "sessions": self.sessions}, protocol=PICKLE_PROTOCOL
        )

    @staticmethod
    def sessions_from(state: bytes) -> dict[str, RetrainSession]:
        # Our own snapshot, from our own state topic (trusted like the registry).
        data = pickle.loads(state)
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise StateError("retrainer snapshot of an unknown format")
        sessions: dict[str, RetrainSession] = data["sessions"]
        return sessions


@dataclass
class RetrainerStats:
    records: int = 0
    requests: int = 0
    stale_requests: int = 0
    sessions_started: int = 0
    promoted: int = 0
    retired: int = 0
    dead_letters: int = 0
    checkpoints: int = 0
    aborted: int = 0
    restores: int = 0


class RetrainerRuntime:
    """Wires ``RetrainSession`` and the registry to Kafka with exactly-once model updates."""

    def __init__(
        self,
        settings: Settings,
        transport: Transport,
        registry: ModelRegistry,
        *,
        instance_id: str,
        policy: PromotionPolicy,
    ) -> None:
        self._settings = settings
        self._kafka = settings.kafka
        self._config = settings.retrainer
        self._topics = settings.kafka.topics
        self._transport = transport
        self._registry = registry
        self._policy = policy
        self._instance_id = instance_id
        self._log = structlog.get_logger("stream_mlops.retrainer")
        self._kinds: dict[str, Kind] = {
            self._topics.retrain_requests: "request",
            self._topics.labeled_events: "labeled",
        }
        self._specs: dict[str, ModelSpec | None] = {}
        self.tasks: dict[int, RetrainTask] = {}
        self.stats = RetrainerStats()
        self._tracker = AssignmentTracker()
        self._in_transaction = False
        self._decided = False
        self._events_since_checkpoint = 0
        self._group_metadata: object = None
        self._consumer: GroupConsumer | None = None
        self._producer: TransactionalProducer | None = None
        self._reader: PartitionReader | None = None

    @property
    def group_id(self) -> str:
        return self._config.group_id

    @property
    def transactional_id(self) -> str:
        return f"{self._config.transactional_id_prefix}-{self._instance_id}"

    def run(self, stop: threading.Event) -> None:
        """Process until ``stop`` is set, then finish the open transaction and leave."""
        self._producer = self._transport.transactional_producer(self.transactional_id)
        self._reader = self._transport.partition_reader()
        self._consumer = self._transport.group_consumer(
            self.group_id,
            max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
            session_timeout_ms=self._config.session_timeout_ms,
        )
        self._check_input_topics()
        self._consumer.subscribe(list(self._kinds), self._tracker)
        self._log.info(
            "retrainer.started",
            group_id=self.group_id,
            transactional_id=self.transactional_id,
            topics=list(self._kinds),
            policy=self._policy.to_config(),
            buffer_events=self._config.buffer_events,
        )
        try:
            self._loop(stop)
            self._checkpoint(final=True)
        finally:
            self._close()

    def _check_input_topics(self) -> None:
        assert self._reader is not None
        require_copartitioned(
            self._reader,
            list(self._kinds),
            "retrain requests and labeled events are both keyed by model id and need one count",
        )

    def _loop(self, stop: threading.Event) -> None:
        assert self._consumer is not None
        interval_s = self._kafka.checkpoint_interval_ms / 1000
        last_checkpoint = time.monotonic()
        while not stop.is_set():
            wait = max(0.0, min(MAX_POLL_WAIT_S, last_checkpoint + interval_s - time.monotonic()))
            records = self._consumer.poll(wait, MAX_POLL_RECORDS)
            if self._tracker.take():
                self._restore_assignment()
                last_checkpoint = time.monotonic()
                continue
            for record in records:
                self._handle(record)
            now = time.monotonic()
            if (
                self._decided
                or now - last_checkpoint >= interval_s
                or self._events_since_checkpoint >= self._kafka.checkpoint_max_events
            ):
                self._checkpoint()
                last_checkpoint = now

    # -- one record ---------------------------------------------------------

    def _handle(self, record: Record) -> None:
        task = self.tasks.get(record.partition)
        kind = self._kinds.get(record.topic)
        if task is None or kind is None:
            return  # fetched before a rebalance we have not acted on yet
        if record.offset < task.next_offsets[record.topic]:
            return  # already in the restored state
        self._ensure_transaction()
        task.next_offsets[record.topic] = record.offset + 1
        task.dirty = True
        self._events_since_checkpoint += 1
        self.stats.records += 1
        if record.value is not None and len(record.value) > self._kafka.max_record_bytes:
            self._dead_letter(
                record,
                f"record is {len(record.value)} bytes, over "
                f"max_record_bytes={self._kafka.max_record_bytes}",
            )
            return
        if kind == "request":
            self._handle_request(task, record)
        else:
            self._handle_labeled(task, record)

    def _handle_labeled(self, task: RetrainTask, record: Record) -> None:
        try:
            example = decode_labeled(record, self._spec_of)
        except (EventError, RetrainInputError) as exc:
            self._dead_letter(record, str(exc))
            return
        self._buffer(task, example)
        session = task.sessions.get(example.model_id)
        if session is None or session.finished:
            return
        try:
            session.observe(example)
        except RetrainInputError as exc:
            self._dead_letter(record, str(exc))
            return
        if session.finished:
            self._decided = True

    def _buffer(self, task: RetrainTask, example: LabeledExample) -> None:
        limit = self._config.buffer_events
        if limit == 0:
            return
        task.buffer.append(example)
        oldest_kept = example.source.offset + 1 - limit
        while task.buffer and task.buffer[0].source.offset < oldest_kept:
            task.buffer.popleft()

    def _handle_request(self, task: RetrainTask, record: Record) -> None:
        try:
            request = decode_request(record)
        except EventError as exc:
            self._dead_letter(record, str(exc))
            return
        self.stats.requests += 1
        model_id = request.model_id
        self._log.info(
            "request.received",
            request_id=request.request_id,
            model_id=model_id,
            model_version=request.model_version,
            window_start_ts=request.window_start.ts.isoformat(),
            window_start_event_id=request.window_start.event_id,
            partition=record.partition,
            offset=record.offset,
        )
        champion = self._champion(model_id)
        if champion is None:
            self._dead_letter(
                record,
                f"unknown model {model_id!r}: no champion in the registry "
                "(register one with: stream-mlops models bootstrap)",
            )
            return
        if request.model_version != champion.version:
            try:
                self._registry.get(model_id, request.model_version)
            except VersionNotFoundError:
                self._dead_letter(
                    record, f"unknown version {request.model_version!r} of model {model_id!r}"
                )
                return
            self.stats.stale_requests += 1
            self._log.info(
                "request.stale",
                request_id=request.request_id,
                model_id=model_id,
                model_version=request.model_version,
                champion_version=champion.version,
            )
            return
        if model_id in task.sessions:
            self._log.info(
                "request.duplicate",
                request_id=request.request_id,
                model_id=model_id,
                running_request_id=task.sessions[model_id].order.request_id,
            )
            return
        spec = self._spec_of(model_id, refresh=True)
        if spec is None:
            self._dead_letter(
                record,
                f"model {model_id!r} {champion.version}: the registry records no model spec "
                "and the config names no task for it",
            )
            return
        session = RetrainSession.from_registry(
            self._registry,
            retrain_order(request),
            spec=spec,
            policy=self._policy,
            fresh=self._config.fresh_challenger,
        )
        task.sessions[model_id] = session
        self.stats.sessions_started += 1
        replayed = self._replay_buffer(task, session)
        self._log.info(
            "session.started",
            request_id=request.request_id,
            model_id=model_id,
            champion_version=champion.version,
            fresh=self._config.fresh_challenger,
            buffered_events=replayed,
            buffer_oldest_offset=task.buffer[0].source.offset if task.buffer else None,
        )
        self._warn_if_truncated(task, session)
        if session.finished:
            self._decided = True

    def _warn_if_truncated(self, task: RetrainTask, session: RetrainSession) -> None:
        """Say so when the buffer may already have dropped events of the window."""
        limit = self._config.buffer_events
        labeled_next = task.next_offsets[self._topics.labeled_events]
        if not task.buffer or task.buffer[0].source.offset > labeled_next - limit:
            return  # the buffer reaches back to what it has not had to evict yet
        order = session.order
        oldest = next((e for e in task.buffer if e.model_id == order.model_id), None)
        if oldest is None or oldest.ts > order.window_start_ts:
            self._log.warning(
                "session.window_truncated",
                request_id=order.request_id,
                model_id=order.model_id,
                buffer_events=limit,
                oldest_buffered_ts=oldest.ts if oldest is not None else None,
                window_start_ts=order.window_start_ts,
            )

    def _replay_buffer(self, task: RetrainTask, session: RetrainSession) -> int:
        """Feed the buffered events of the session's model; returns how many it was fed."""
        model_id = session.order.model_id
        fed = 0
        for example in task.buffer:
            if session.finished:
                break
            if example.model_id != model_id:
                continue
            fed += 1
            try:
                session.observe(example)
            except RetrainInputError as exc:
                # Only possible for events buffered before the model's spec was
                # known; the live path dead-letters such events.
                self._log.warning(
                    "session.skipped_event",
                    model_id=model_id,
                    event_id=example.event_id,
                    offset=example.source.offset,
                    error=str(exc),
                )
        return fed

    def _champion(self, model_id: str) -> ModelVersion | None:
        try:
            return self._registry.champion(model_id)
        except (RegistryError, ValueError):
            return None  # e.g. a model id the registry refuses as a directory name

    def _spec_of(self, model_id: str, *, refresh: bool = False) -> ModelSpec | None:
        """The model's spec: from its champion's recorded config, else the configured task."""
        if not refresh and model_id in self._specs:
            return self._specs[model_id]
        spec: ModelSpec | None = None
        champion = self._champion(model_id)
        recorded = champion.config.get("model") if champion is not None else None
        if isinstance(recorded, dict):
            spec = ModelSpec.from_config(recorded)
        elif champion is not None:
            task = self._settings.model(model_id).task
            spec = ModelSpec.for_task(task) if task is not None else None
        self._specs[model_id] = spec
        return spec

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

    # -- decisions ----------------------------------------------------------

    def _act(self) -> None:
        """Carry out the decisions that the last commit made durable, in a new transaction."""
        decided = [
            (task, model_id, session)
            for task in self.tasks.values()
            for model_id, session in task.sessions.items()
            if session.finished
        ]
        self._decided = False
        if not decided:
            return
        self._ensure_transaction()
        for task, model_id, session in decided:
            decision = session.decision
            if isinstance(decision, Promoted):
                self._promote(decision)
            elif isinstance(decision, Retired):
                self.stats.retired += 1
                verdict = decision.verdict
                self._log.info(
                    "retired",
                    model_id=model_id,
                    champion_version=decision.champion_version,
                    request_id=session.order.request_id,
                    reason=decision.reason,
                    scored_events=verdict.events,
                    retired_total=self.stats.retired,
                )
            del task.sessions[model_id]
            task.dirty = True
        self._checkpoint()

    def _promote(self, promoted: Promoted) -> None:
        assert self._producer is not None
        window = promoted.training_window
        # Event time of the decision (the newest learned event), not a wall
        # clock: a repeat after a crash records the same time.
        ts = window.last_event_ts if window.last_event_ts is not None else window.start_ts or 0.0
        version = record_promotion(self._registry, promoted, ts=ts)
        self._specs.pop(promoted.model_id, None)
        update = ModelUpdate(
            model_id=promoted.model_id,
            model_version=version.version,
            parent_version=promoted.parent_version,
            ts=utc_datetime(ts),
            metrics={**promoted.metrics, "champion_version": promoted.champion_version},
            # end_offset is exclusive, as Kafka's end offsets are.
            training_window=[
                TrainingRange(
                    topic=r.topic,
                    partition=r.partition,
                    start_offset=r.first_offset,
                    end_offset=r.last_offset + 1,
                )
                for r in window.ranges
            ],
        )
        self._producer.send(self._topics.model_updates, promoted.model_id.encode(), encode(update))
        self.stats.promoted += 1
        self._log.info(
            "promotion",
            model_id=promoted.model_id,
            parent_version=promoted.parent_version,
            champion_version=promoted.champion_version,
            version=version.version,
            content_hash=version.content_hash,
            metrics=promoted.metrics,
            events=window.event_count,
        )

    # -- transactions and checkpoints ---------------------------------------

    def _ensure_transaction(self) -> None:
        if not self._in_transaction:
            assert self._producer is not None
            self._producer.begin()
            self._in_transaction = True

    def _checkpoint(self, *, final: bool = False) -> None:
        if self._in_transaction and not self._commit(final=final):
            return
        # Everything in memory is committed now: decisions may be acted on.
        self._act()

    def _commit(self, *, final: bool) -> bool:
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
                group_id=self.group_id,
                partition=task.partition,
                offsets=dict(task.next_offsets),
                engine_state=task.state_bytes(),
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
            self._in_transaction = False
            self._events_since_checkpoint = 0
            self.stats.aborted += 1
            if exc.fenced:
                self._log.error("retrainer.fenced", transactional_id=self.transactional_id)
                raise RetrainerFencedError(
                    f"another retrainer took over transactional id {self.transactional_id!r}; "
                    "give each retrainer process its own --instance-id"
                ) from exc
            self._log.warning("checkpoint.aborted", reason=str(exc), events=events)
            if not final:
                self._restore_assignment()
            return False
        self._in_transaction = False
        self._events_since_checkpoint = 0
        for task in self.tasks.values():
            task.dirty = False
        self.stats.checkpoints += 1
        self._log.info(
            "checkpoint",
            events=events,
            snapshots=snapshots,
            sessions=sum(len(t.sessions) for t in self.tasks.values()),
            duration_ms=round((time.monotonic() - started) * 1000, 2),
            final=final,
        )
        return True

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
                self._in_transaction = False
                self._events_since_checkpoint = 0
                self.stats.aborted += 1
        assigned = self._consumer.assignment()
        requests, labeled = self._topics.retrain_requests, self._topics.labeled_events
        partitions = {tp.partition for tp in assigned if tp.topic == requests}
        if partitions != {tp.partition for tp in assigned if tp.topic == labeled}:
            raise StateError(
                f"topics {requests!r} and {labeled!r} were not assigned the same partitions: "
                "give them the same partition count"
            )
        self.tasks = {p: self._restore_task(p) for p in sorted(partitions)}
        self._group_metadata = self._consumer.group_metadata()
        self.stats.restores += 1
        # Decisions restored from a snapshot were committed: act on them at the next checkpoint.
        self._decided = any(s.finished for t in self.tasks.values() for s in t.sessions.values())
        self._log.info("partitions.assigned", partitions=sorted(self.tasks))

    def _restore_task(self, partition: int) -> RetrainTask:
        assert self._consumer is not None and self._reader is not None
        started = time.monotonic()
        tps = [TopicPartition(t, partition) for t in self._kinds]
        resume = task_snapshot_or_fresh(
            self._consumer,
            self._reader,
            state_topic=self._topics.state,
            group_id=self.group_id,
            partition=partition,
            inputs=tps,
        )
        if not isinstance(resume, TaskSnapshot):
            self._log.info("state.fresh", partition=partition, offsets=resume)
            return RetrainTask(partition, resume)
        snapshot = resume
        task = RetrainTask(
            partition,
            dict(snapshot.offsets),
            sessions=RetrainTask.sessions_from(snapshot.engine_state),
        )
        for tp in tps:
            self._consumer.seek(tp, task.next_offsets[tp.topic])
        rebuilt = self._rebuild_buffer(task)
        self._log.info(
            "state.restored",
            partition=partition,
            offsets=snapshot.offsets,
            sessions={m: s.decision.status for m, s in task.sessions.items()},
            buffer_rebuilt=rebuilt,
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )
        return task

    def _rebuild_buffer(self, task: RetrainTask) -> int:
        assert self._reader is not None
        limit = self._config.buffer_events
        tp = TopicPartition(self._topics.labeled_events, task.partition)
        end = task.next_offsets[tp.topic]
        start = max(self._reader.beginning_offset(tp), end - limit)
        if limit == 0 or start >= end:
            return 0
        for record in self._reader.read(tp, start, end):
            try:
                task.buffer.append(decode_labeled(record, self._spec_of))
            except (EventError, RetrainInputError):
                continue  # dead-lettered when it was first consumed
        return len(task.buffer)

    def _close(self) -> None:
        for closer in (self._consumer, self._reader, self._producer):
            if closer is not None:
                try:
                    closer.close()
                except Exception:
                    self._log.exception("retrainer.close_failed")
        self._log.info(
            "retrainer.stopped",
            records=self.stats.records,
            requests=self.stats.requests,
            stale_requests=self.stats.stale_requests,
            sessions_started=self.stats.sessions_started,
            promoted=self.stats.promoted,
            retired=self.stats.retired,
            dead_letters=self.stats.dead_letters,
            checkpoints=self.stats.checkpoints,
            aborted=self.stats.aborted,
        )
