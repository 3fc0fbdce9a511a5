"""An in-memory Kafka behind the transport protocols, for unit tests of the task runtime.

Not a Kafka: one process, no threads, no clock, no network. It keeps the parts
of Kafka's semantics that the runtime's branches depend on, so those branches
can be driven one step at a time and checked in milliseconds:

* A partition is a log. Every record takes the next offset when it is sent,
  and a commit or an abort writes a control marker, so a read_committed reader
  sees gaps in the offsets, as on a real broker.
* read_committed: a reader sees only committed records, and nothing at or
  after the first offset of a transaction still open (the last stable offset).
* A transactional id has an epoch. A new producer with the same id aborts the
  older instance's open transaction and fences it: its next call raises
  ``TransactionFailedError(fenced=True)``.
* A group assigns the partitions of its members' topics with the range
  assignor. A member joining or leaving, or ``rebalance()``, starts a new
  generation, which each member notices at its next poll (that poll returns
  nothing, as kafka-python's backend acts on a stable membership only). A
  commit carrying an older generation's group metadata fails and aborts
  (KIP-447).
* ``fail_next_commit()`` makes the next commit fail as an abortable error;
  ``fail_next_send()`` the next send, as a producer refuses records once its
  open transaction has failed (a partition leader lost mid-transaction).

For integration tests use the real broker: this is for the runtime's unit tests only.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from stream_mlops.kafka.transport import (
    AssignmentTracker,
    Record,
    TopicPartition,
    TransactionFailedError,
    TransportError,
)

#: ``[kafka.topics]`` of a service deployment on a ``MemoryCluster`` (``create_topics``)
TOPICS = {
    "predictions": "predictions",
    "outcomes": "outcomes",
    "drift_alerts": "drift-alerts",
    "retrain_requests": "retrain-requests",
    "model_updates": "model-updates",
    "labeled_events": "labeled-events",
    "dead_letters": "dead-letters",
    "performance_estimates": "performance-estimates",
    "state": "state",
}


@dataclass
class _Transaction:
    state: Literal["open", "committed", "aborted"] = "open"
    #: partitions written to, with the first offset written there
    first_offsets: dict[TopicPartition, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Entry:
    offset: int
    key: bytes | None
    value: bytes | None
    #: None: written outside a transaction (visible at once)
    transaction: _Transaction | None
    control: bool = False

    @property
    def visible(self) -> bool:
        if self.control:
            return False
        return self.transaction is None or self.transaction.state == "committed"


@dataclass(frozen=True)
class GroupMetadata:
    group_id: str
    generation: int
    member_id: str


class _Group:
    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.generation = 0
        self.members: dict[str, list[str]] = {}  # member id -> subscribed topics
        self.assignment: dict[str, set[TopicPartition]] = {}
        self.committed: dict[TopicPartition, int] = {}

    def rebalance(self, cluster: MemoryCluster) -> None:
        """A new generation, partitions spread with the range assignor."""
        self.generation += 1
        self.assignment = {member: set() for member in self.members}
        topics = sorted({t for subscribed in self.members.values() for t in subscribed})
        for topic in topics:
            members = sorted(m for m, subscribed in self.members.items() if topic in subscribed)
            count = cluster.partition_count(topic)
            share, extra = divmod(count, len(members))
            start = 0
            for i, member in enumerate(members):
                size = share + (1 if i < extra else 0)
                self.assignment[member].update(
                    TopicPartition(topic, p) for p in range(start, start + size)
                )
                start += size


class MemoryCluster:
    """Topics, groups and transactional ids: the broker side."""

    def __init__(self) -> None:
        self._logs: dict[str, list[list[_Entry]]] = {}
        self._groups: dict[str, _Group] = {}
        self._epochs: dict[str, int] = {}
        self._open: dict[str, _Transaction] = {}
        #: injected commit failures: [successful commits to let through first, reason]
        self._failures: list[list[int | str]] = []
        self._send_failures: list[list[int | str]] = []
        self._members = 0
        #: every client created, to check that the runtime closes them
        self.clients: list[MemoryGroupConsumer | MemoryProducer | MemoryReader] = []

    # -- set-up and inspection by the test --------------------------------------

    def create_topic(self, name: str, partitions: int = 1) -> str:
        self._logs[name] = [[] for _ in range(partitions)]
        return name

    def create_topics(self, names: Iterable[str], partitions: int) -> None:
        for name in names:
            self.create_topic(name, partitions)

    def partition_count(self, topic: str) -> int:
        if topic not in self._logs:
            raise TransportError(f"topic {topic!r} does not exist")
        return len(self._logs[topic])

    def produce(
        self, topic: str, value: bytes | None, *, key: bytes | None = None, partition: int = 0
    ) -> int:
        """A record written outside any transaction, as an input producer would."""
        return self._append(TopicPartition(topic, partition), key, value, None)

    def end_offset(self, tp: TopicPartition) -> int:
        """The log end offset (markers and open transactions included)."""
        return len(self._log(tp))

    def committed_records(self, topic: str) -> list[Record]:
        """What a read_committed consumer of the whole topic sees, partition by partition."""
        return [
            record
            for partition in range(self.partition_count(topic))
            for record in self._visible(TopicPartition(topic, partition), 0, None)
        ]

    def all_records(self, topic: str) -> list[Record]:
        """Every data record, committed, aborted or open (what read_uncommitted would see)."""
        return [
            Record(topic, p, e.offset, e.key, e.value)
            for p, log in enumerate(self._logs[topic])
            for e in log
            if not e.control
        ]

    def committed_offsets(self, group_id: str) -> dict[TopicPartition, int]:
        return dict(self._group(group_id).committed)

    def commit_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Offsets committed by someone else (e.g. an older deployment of the group)."""
        self._group(group_id).committed.update(offsets)

    def rebalance(self, group_id: str) -> None:
        self._group(group_id).rebalance(self)

    def crash(self) -> None:
        """kill -9 of every client open now: no commit, no abort, no goodbye to the group.

        The dead members stay in their groups until ``expire_sessions``; their
        open transactions stay open until a producer with the same id comes.
        """
        for client in self.open_clients:
            client.closed = True

    def expire_sessions(self, group_id: str) -> None:
        """The group gives up on members that stopped polling (closed or crashed)."""
        group = self._group(group_id)
        dead = {
            c.member_id for c in self.clients if isinstance(c, MemoryGroupConsumer) and c.closed
        }
        for member in dead & set(group.members):
            del group.members[member]
        group.rebalance(self)

    def fail_next_commit(
        self, reason: str = "injected: the coordinator is moving", *, after: int = 0
    ) -> None:
        """Make a commit fail (abortable), once ``after`` more commits have succeeded."""
        self._failures.append([after, reason])

    def fail_next_send(
        self, reason: str = "injected: the partition leader was lost", *, after: int = 0
    ) -> None:
        """Make a send fail (abortable), once ``after`` more sends have succeeded."""
        self._send_failures.append([after, reason])

    def _injected_failure(self, failures: list[list[int | str]] | None = None) -> str | None:
        failures = self._failures if failures is None else failures
        if not failures:
            return None
        failure = failures[0]
        if failure[0] == 0:
            failures.pop(0)
            return str(failure[1])
        failure[0] = int(failure[0]) - 1
        return None

    def transport(self) -> MemoryTransport:
        return MemoryTransport(self)

    @property
    def open_clients(self) -> list[MemoryGroupConsumer | MemoryProducer | MemoryReader]:
        return [c for c in self.clients if not c.closed]

    # -- broker internals -----------------------------------------------------------

    def _group(self, group_id: str) -> _Group:
        return self._groups.setdefault(group_id, _Group(group_id))

    def _log(self, tp: TopicPartition) -> list[_Entry]:
        try:
            return self._logs[tp.topic][tp.partition]
        except (KeyError, IndexError):
            raise TransportError(f"no partition {tp}") from None

    def _append(
        self,
        tp: TopicPartition,
        key: bytes | None,
        value: bytes | None,
        transaction: _Transaction | None,
        *,
        control: bool = False,
    ) -> int:
        log = self._log(tp)
        offset = len(log)
        log.append(_Entry(offset, key, value, transaction, control))
        if transaction is not None and not control:
            transaction.first_offsets.setdefault(tp, offset)
        return offset

    def _end(self, transaction: _Transaction, state: Literal["committed", "aborted"]) -> None:
        transaction.state = state
        for tp in transaction.first_offsets:
            self._append(tp, None, None, transaction, control=True)

    def _stable_end(self, tp: TopicPartition) -> int:
        """The last stable offset: read_committed readers stop before an open transaction."""
        log = self._log(tp)
        firsts = [
            t.first_offsets[tp]
            for t in self._open.values()
            if t.state == "open" and tp in t.first_offsets
        ]
        return min(firsts, default=len(log))

    def _visible(self, tp: TopicPartition, start: int, end: int | None) -> Iterator[Record]:
        stop = self._stable_end(tp) if end is None else min(end, self._stable_end(tp))
        log = self._log(tp)
        for offset in range(start, stop):  # no slice: a poll reads a few hundred of a long log
            entry = log[offset]
            if entry.visible:
                yield Record(tp.topic, tp.partition, entry.offset, entry.key, entry.value)


class MemoryGroupConsumer:
    #: records a poll takes from one partition at most (a client's per-partition fetch size)
    FETCH_RECORDS = 500

    def __init__(self, cluster: MemoryCluster, group_id: str, **settings: object) -> None:
        cluster._members += 1
        self.member_id = f"member-{cluster._members}"
        self.settings = settings
        self.closed = False
        self._cluster = cluster
        self._group = cluster._group(group_id)
        self._tracker: AssignmentTracker | None = None
        self._generation = -1
        self._assignment: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}

    def subscribe(self, topics: Iterable[str], tracker: AssignmentTracker) -> None:
        self._tracker = tracker
        self._group.members[self.member_id] = list(topics)
        self._group.rebalance(self._cluster)

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        self._check_open()
        group = self._group
        if self.member_id in group.members and self._generation != group.generation:
            self._generation = group.generation
            self._assignment = set(group.assignment[self.member_id])
            self._positions = {tp: group.committed.get(tp, 0) for tp in sorted(self._assignment)}
            assert self._tracker is not None
            self._tracker.assigned()
            return []
        out: list[Record] = []
        for tp in sorted(self._assignment):
            position = self._positions[tp]
            stable = self._cluster._stable_end(tp)
            room = min(self.FETCH_RECORDS, max_records - len(out))
            for record in self._cluster._visible(tp, position, None):
                if room == 0:
                    break
                out.append(record)
                room -= 1
                position = record.offset + 1
            else:
                position = max(position, stable)  # past markers and aborted records
            self._positions[tp] = position
        return out

    def assignment(self) -> set[TopicPartition]:
        return set(self._assignment)

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        return {tp: self._group.committed.get(tp) for tp in partitions}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self._assignment:
            raise TransportError(f"seek on {tp}, which is not assigned")
        self._positions[tp] = offset

    def lag(self) -> dict[TopicPartition, int]:
        """Against the log end, as a client's high watermark (open transactions included)."""
        return {
            tp: max(0, self._cluster.end_offset(tp) - position)
            for tp, position in self._positions.items()
        }

    def group_metadata(self) -> object:
        return GroupMetadata(self._group.group_id, self._generation, self.member_id)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._group.members.pop(self.member_id, None) is not None:
            self._group.rebalance(self._cluster)

    def _check_open(self) -> None:
        if self.closed:
            raise TransportError("consumer is closed")


class MemoryProducer:
    """A transactional producer; creating it is ``init_transactions``."""

    def __init__(self, cluster: MemoryCluster, transactional_id: str) -> None:
        self.transactional_id = transactional_id
        self.closed = False
        self._cluster = cluster
        # Fence the previous instance: bump the epoch and abort what it left open.
        self._epoch = cluster._epochs.get(transactional_id, 0) + 1
        cluster._epochs[transactional_id] = self._epoch
        left_open = cluster._open.pop(transactional_id, None)
        if left_open is not None and left_open.state == "open":
            cluster._end(left_open, "aborted")
        self._transaction: _Transaction | None = None

    def begin(self) -> None:
        self._check_epoch()
        if self._transaction is not None:
            raise TransportError("a transaction is already open")
        self._transaction = _Transaction()
        self._cluster._open[self.transactional_id] = self._transaction

    def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        self._check_epoch()
        if self._transaction is None:
            raise TransportError("send outside a transaction")
        failure = self._cluster._injected_failure(self._cluster._send_failures)
        if failure is not None:
            raise TransactionFailedError(f"transaction aborted: {failure}")
        if partition is None:
            count = self._cluster.partition_count(topic)
            partition = zlib.crc32(key) % count if key is not None else 0
        self._cluster._append(TopicPartition(topic, partition), key, value, self._transaction)

    def commit(self, offsets: Mapping[TopicPartition, int], group_metadata: object) -> None:
        self._check_epoch()
        transaction = self._take()
        cluster = self._cluster
        failure = cluster._injected_failure()
        if failure is not None:
            cluster._end(transaction, "aborted")
            raise TransactionFailedError(f"commit failed: {failure}")
        if offsets:
            assert isinstance(group_metadata, GroupMetadata), group_metadata
            group = cluster._group(group_metadata.group_id)
            if (
                group.generation != group_metadata.generation
                or group_metadata.member_id not in group.members
            ):
                cluster._end(transaction, "aborted")
                raise TransactionFailedError(
                    f"commit failed: generation {group_metadata.generation} is not the "
                    f"group's current {group.generation}"
                )
            group.committed.update(offsets)
        cluster._end(transaction, "committed")

    def abort(self) -> None:
        self._check_epoch()
        self._cluster._end(self._take(), "aborted")

    def close(self) -> None:
        self.closed = True

    def _take(self) -> _Transaction:
        transaction = self._transaction
        if transaction is None:
            raise TransportError("no transaction is open")
        self._transaction = None
        self._cluster._open.pop(self.transactional_id, None)
        return transaction

    def _check_epoch(self) -> None:
        if self.closed:
            raise TransportError("producer is closed")
        if self._cluster._epochs[self.transactional_id] != self._epoch:
            raise TransactionFailedError(
                f"producer fenced: {self.transactional_id!r} has a newer epoch", fenced=True
            )


class MemoryReader:
    def __init__(self, cluster: MemoryCluster) -> None:
        self.closed = False
        self._cluster = cluster

    def end_offset(self, tp: TopicPartition) -> int:
        return self._cluster._stable_end(tp)

    def beginning_offset(self, tp: TopicPartition) -> int:
        self._cluster._log(tp)
        return 0

    def partition_count(self, topic: str) -> int:
        return self._cluster.partition_count(topic)

    def read(self, tp: TopicPartition, start: int, end: int) -> Iterator[Record]:
        return self._cluster._visible(tp, start, end)

    def close(self) -> None:
        self.closed = True


class MemoryTransport:
    def __init__(self, cluster: MemoryCluster) -> None:
        self.cluster = cluster

    def group_consumer(
        self,
        group_id: str,
        *,
        max_poll_interval_ms: int,
        session_timeout_ms: int | None = None,
        instance_id: str | None = None,
    ) -> MemoryGroupConsumer:
        # The instance id is only recorded: static membership is the broker's
        # (tests/kafka/test_faults.py tests it on a real one).
        consumer = MemoryGroupConsumer(
            self.cluster,
            group_id,
            max_poll_interval_ms=max_poll_interval_ms,
            session_timeout_ms=session_timeout_ms,
            instance_id=instance_id,
        )
        self.cluster.clients.append(consumer)
        return consumer

    def transactional_producer(self, transactional_id: str) -> MemoryProducer:
        producer = MemoryProducer(self.cluster, transactional_id)
        self.cluster.clients.append(producer)
        return producer

    def partition_reader(self) -> MemoryReader:
        reader = MemoryReader(self.cluster)
        self.cluster.clients.append(reader)
        return reader
