"""The client-agnostic transport interface between the runtime and a Kafka client.

The runtime (``stream_mlops.kafka.task_runtime``) speaks only these protocols, so a
second client library (confluent-kafka, for speed) is one more backend module,
not a change to the runtime. Backends live in ``stream_mlops.kafka.backends``.

Semantics every backend must keep:

* ``GroupConsumer`` is a consumer-group member with auto-commit off and
  ``read_committed`` isolation; it uses an assignor that gives one member the
  same partition numbers of every subscribed topic (range), because predictions
  and outcomes are co-partitioned by ``event_id`` and joined per partition.
* Assignment changes are only recorded (``AssignmentTracker``): the runtime
  acts on them from its own thread after the poll, because kafka-python 3.x
  runs listeners on its IO thread where a blocking call raises. (The
  kafka-python backend sets no listener at all and watches the group
  generation instead; confluent-kafka's callbacks run inside ``consume``.)
* ``TransactionalProducer.commit`` sends the consumed offsets with the group
  metadata captured by the caller (KIP-447 fencing) and commits; any failure
  leaves the transaction aborted or abortable and is raised as
  ``TransactionFailedError``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple, Protocol


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class Record(NamedTuple):
    """One consumed record, as the runtime sees it whatever the client.

    A named tuple: one is built per consumed record, and a tuple builds in a
    third of a frozen dataclass's time.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class TransportError(Exception):
    """A Kafka client failure the runtime cannot fix by itself."""


class TransactionFailedError(TransportError):
    """A commit did not happen; the transaction's outputs and offsets are void.

    Raised when the group generation moved on (a rebalance fenced us), when the
    producer was fenced by a newer instance with the same transactional id, or
    on any other abortable error.
    """

    def __init__(self, message: str, *, fenced: bool = False) -> None:
        super().__init__(message)
        #: True when another process now owns our transactional id: this
        #: process must stop, it can never commit again.
        self.fenced = fenced


class AssignmentTracker:
    """Records assignment changes from the client's callback thread.

    The runtime polls ``take()`` on its own thread after each poll; a change
    means: abort the open transaction and rebuild the tasks from state.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = False

    def revoked(self) -> None:
        with self._lock:
            self._changed = True

    def assigned(self) -> None:
        with self._lock:
            self._changed = True

    def lost(self) -> None:
        with self._lock:
            self._changed = True

    def take(self) -> bool:
        """True once after each change; clears the flag."""
        with self._lock:
            changed, self._changed = self._changed, False
            return changed


class GroupConsumer(Protocol):
    def subscribe(self, topics: Iterable[str], tracker: AssignmentTracker) -> None: ...

    def poll(self, timeout_s: float, max_records: int) -> list[Record]: ...

    def assignment(self) -> set[TopicPartition]: ...

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The group's committed offsets (None where nothing was committed)."""
        ...

    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    def group_metadata(self) -> object:
        """An opaque snapshot of the membership, passed back to ``commit``."""
        ...

    def close(self) -> None:
        """Leave the group promptly, committing nothing."""
        ...


class TransactionalProducer(Protocol):
    def begin(self) -> None: ...

    def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None: ...

    def commit(self, offsets: Mapping[TopicPartition, int], group_metadata: object) -> None:
        """Send ``offsets`` (next offset to read) with the transaction and commit."""
        ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


class PartitionReader(Protocol):
    """Reads committed records of one partition by offset range (no group).

    Used on restore: the latest snapshot from the state topic, and the
    re-read of the input topics that rebuilds the pending join.
    """

    def end_offset(self, tp: TopicPartition) -> int: ...

    def beginning_offset(self, tp: TopicPartition) -> int: ...

    def partition_count(self, topic: str) -> int:
        """Partitions of an existing topic; raises TransportError if it does not exist."""
        ...

    def read(self, tp: TopicPartition, start: int, end: int) -> Iterator[Record]:
        """Committed records with ``start <= offset < end`` in offset order."""
        ...

    def close(self) -> None: ...


class Transport(Protocol):
    """A factory for the three client roles, bound to one cluster."""

    def group_consumer(
        self,
        group_id: str,
        *,
        max_poll_interval_ms: int,
        session_timeout_ms: int | None = None,
    ) -> GroupConsumer:
        """A group member; ``session_timeout_ms`` None keeps the client's default."""
        ...

    def transactional_producer(self, transactional_id: str) -> TransactionalProducer: ...

    def partition_reader(self) -> PartitionReader: ...
