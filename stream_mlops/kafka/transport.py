"""The client-agnostic transport interface between the runtime and a Kafka client.

The runtime (``stream_mlops.kafka.task_runtime``) speaks only these protocols, so a
second client library (confluent-kafka, for speed) is one more backend module,
not a change to the runtime. Backends live in ``stream_mlops.kafka.backends``.

Semantics every backend must keep:

* ``GroupConsumer`` is a consumer-group member with auto-commit off and
  ``read_committed`` isolation; it uses an assignor that gives one member the
  same partition numbers of every subscribed topic (range), because predictions
  and outcomes are co-partitioned by ``event_id`` and joined per partition.
* A ``GroupConsumer`` given an instance id is a static member
  (``group.instance.id``): restarted with the same id, it gets its partitions
  back at once, without a rebalance; closed, it does not leave the group.
* Assignment changes are only recorded (``AssignmentTracker``): the runtime
  acts on them from its own thread after the poll, because kafka-python 3.x
  runs listeners on its IO thread where a blocking call raises. (The
  kafka-python backend sets no listener at all and watches the group
  generation instead; confluent-kafka's callbacks run inside ``consume``.)
* ``TransactionalProducer.commit`` sends the consumed offsets with the group
  metadata captured by the caller (KIP-447 fencing) and commits; any failure
  leaves the transaction aborted or abortable and is raised as
  ``TransactionFailedError``.
* A group member that is not transactional (the notifier: its effect is an
  HTTP call, which no Kafka transaction can cover) commits its offsets itself
  with ``GroupConsumer.commit``, synchronously, after the effect; a commit the
  group refuses (it moved on) raises ``OffsetCommitFailedError``. It bounds
  what it holds with ``pause`` / ``resume``, which keep it polling, and so in
  the group, without fetching more.

Besides the runtime's three roles, every command's other Kafka work goes
through three more, so that a client setting (``[kafka] client``, and the
connection options ``open_transport`` passes to every client) reaches every
command:

* ``Producer``: a plain idempotent producer (simulators, publisher, demo).
  Keys are partitioned with the Java client's murmur2 on both backends, so
  keyed records land where every other producer of the topic puts them.
  Topics are never created by a send (a topic born that way gets the broker's
  default partition count and breaks co-partitioning): a missing topic raises
  ``TopicNotFoundError``. Delivery failures reported on the client's thread are
  kept and raised by the next ``send`` or ``flush`` as ``DeliveryFailedError``.
  A record over the client's size limit raises ``RecordTooLargeError`` from
  ``send`` (both producers), never a client library's own exception.
* ``TopicReader``: reads assigned partitions without a group (``tail``, the
  model-update follower): each partition starts at the earliest or latest
  offset or at a given one, resolved when assigned, so nothing published after
  ``assign`` returns is missed; ``read_committed`` or not; records carry their
  timestamp.
* ``Admin``: list, create, describe and delete topics, count the brokers,
  read a consumer group's committed offsets (without joining it), and grant
  ACLs (the secured local broker's service rules).

Every role of the three fails to construct with ``BrokerUnreachableError``
(one line naming the servers) when no broker answers within the connect
timeout, and so do the runtime's transactional producer and partition reader
(the runtime creates them first: a service without a cluster stops within
seconds, not after a client's own half-minute bootstrap or an endless retry).
They fail with ``AuthenticationFailedError`` (one line naming the user and
the likely causes, never a secret) when the cluster refuses the login or the
TLS handshake.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol, TypeAlias

from stream_mlops.kafka.acls import AclRule

# How long a command waits for a first answer from the cluster before it
# reports that no broker answers: a broker that is up answers within
# milliseconds; 10 s covers one still starting without making "no broker at
# all" a half-minute wait.
CONNECT_TIMEOUT_S = 10.0


# Kafka's rule for a group.instance.id (the Java client's
# JoinGroupRequest.validateGroupInstanceId, the same as for a topic name).
# kafka-python 3.0.12 has the check but never calls it, and librdkafka sends
# any string: so the runtime checks before a client sees the id.
_INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]{1,249}")


def check_instance_id(instance_id: str) -> str:
    """``instance_id`` if Kafka accepts it as a static member's id, else ``ValueError``.

    >>> check_instance_id("engine-0.eu-west")
    'engine-0.eu-west'
    >>> check_instance_id("engine 0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: instance id 'engine 0' is not a valid group.instance.id: use 1 to 249 of ...
    """
    if _INSTANCE_ID.fullmatch(instance_id) is None or instance_id in (".", ".."):
        raise ValueError(
            f"instance id {instance_id!r} is not a valid group.instance.id: "
            "use 1 to 249 of [A-Za-z0-9._-], not '.' or '..'"
        )
    return instance_id


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
    #: the record's Kafka timestamp in milliseconds since the epoch (create or
    #: log-append time, as the topic says), where the client gave one: a group
    #: consumer's records carry it (the alert latency metric starts there)
    timestamp_ms: int | None = None


class TimestampedRecord(NamedTuple):
    """A record as a ``TopicReader`` returns it: a ``Record`` and its timestamp."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    #: milliseconds since the epoch (create or log-append time, as the topic
    #: says); None when the record has none
    timestamp_ms: int | None


#: Where a reader starts in a partition: its oldest record, the end as of the
#: assignment, or an offset.
StartAt: TypeAlias = Literal["earliest", "latest"] | int


class TransportError(Exception):
    """A Kafka client failure the runtime cannot fix by itself."""


class BrokerUnreachableError(TransportError):
    """No broker answered at the bootstrap servers within the connect timeout."""

    def __init__(self, servers: str, detail: str = "") -> None:
        message = f"no Kafka broker answers at {servers}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)
        self.servers = servers


class AuthenticationFailedError(TransportError):
    """The cluster answered but refused this client: its SASL login, or the TLS
    handshake (a broker certificate the client does not trust).

    Retrying cannot help, so clients give up at once where the library says so:
    the connection settings (``[kafka.security]``) must change. The message
    names the user, the mechanism and the trusted CA file, never a secret.
    """

    def __init__(self, servers: str, message: str) -> None:
        super().__init__(message)
        self.servers = servers


class TopicNotFoundError(TransportError):
    """The topic does not exist on the cluster (and is never created implicitly)."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} does not exist (stream-mlops topics create)")
        self.topic = topic


class RecordTooLargeError(TransportError):
    """The client refused a record for its size: nothing was queued.

    Raised by ``send`` of either producer before the record enters a batch,
    so an open transaction stays usable: the caller decides what happens
    instead (the runtime logs, counts and skips it), and the service goes on.
    """

    def __init__(self, topic: str, size: int, detail: str) -> None:
        super().__init__(f"a record of {size} bytes for {topic!r} is too large: {detail}")
        self.topic = topic
        #: the record's key and value, in bytes
        self.size = size


class DeliveryFailedError(TransportError):
    """Records the cluster did not take: failed deliveries, or a flush that timed out."""

    def __init__(self, failed: int | None, reason: str) -> None:
        if failed is None:
            message = f"records were not delivered: {reason}"
        else:
            noun = "record was" if failed == 1 else "records were"
            message = f"{failed} {noun} not delivered; first: {reason}"
        super().__init__(message)
        #: how many failed, if known (None: a flush ran out of time)
        self.failed = failed


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


class OffsetCommitFailedError(TransportError):
    """``GroupConsumer.commit`` did not store the offsets (e.g. the group rebalanced).

    Nothing is lost: the records after the last stored offsets are read again
    by whichever member owns their partitions next.
    """


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

    def lag(self) -> dict[TopicPartition, int]:
        """Records between the position and the end, per assigned partition.

        From what the client already knows (its position, and the high
        watermark the last fetch response reported): no request to the
        cluster, so it is cheap enough to call at every checkpoint. Partitions
        not fetched from yet are left out. The high watermark counts records of
        transactions still open, which ``read_committed`` cannot read yet.
        """
        ...

    def group_metadata(self) -> object:
        """An opaque snapshot of the membership, passed back to ``commit``."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Store ``offsets`` (next offset to read) as the group's, synchronously.

        For members that are not transactional. Raises ``OffsetCommitFailedError``
        when the group did not take them (it rebalanced meanwhile).
        """
        ...

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        """Fetch nothing more from these partitions until ``resume``; polls go on.

        A rebalance may resume them: pause again after an assignment change.
        """
        ...

    def resume(self, partitions: Iterable[TopicPartition]) -> None: ...

    def close(self) -> None:
        """Leave the group promptly, committing nothing."""
        ...


class TransactionalProducer(Protocol):
    def begin(self) -> None: ...

    def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        """Add one record to the open transaction; ``RecordTooLargeError`` (the
        transaction unharmed) for one over the client's size limit."""
        ...

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


class Producer(Protocol):
    """An idempotent producer without transactions (``acks=all``)."""

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        """Queue one record; without ``partition``, a key picks it (murmur2).

        Raises ``TopicNotFoundError`` for a topic that does not exist,
        ``RecordTooLargeError`` for a record over the client's size limit, and
        ``DeliveryFailedError`` when earlier records failed since the last check.
        """
        ...

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every queued record is delivered.

        Raises ``DeliveryFailedError`` if any record failed, or some were still
        undelivered when the timeout ran out.
        """
        ...

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout_s``, then release the client.

        Raises nothing: call ``flush`` first to know that everything arrived.
        """
        ...


class TopicReader(Protocol):
    """Reads assigned partitions without a consumer group; commits nothing."""

    def partitions(self, topic: str) -> list[TopicPartition]:
        """Every partition of ``topic``, in order; ``TopicNotFoundError`` if it does not exist."""
        ...

    def assign(self, starts: Mapping[TopicPartition, StartAt]) -> dict[TopicPartition, int]:
        """Read exactly these partitions from these starts; the offsets they resolved to.

        Replaces any earlier assignment. ``"latest"`` is the end as of this call
        (the last stable offset when reading committed records).
        """
        ...

    def poll(self, timeout_s: float, max_records: int = 500) -> list[TimestampedRecord]:
        """The next records of the assigned partitions (in offset order within
        each), waiting up to ``timeout_s`` for the first one."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create (``stream_mlops.kafka.topics.topic_specs`` makes the contract's)."""

    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)
    #: -1: the broker's default (``default.replication.factor``)
    replication_factor: int = -1


class TopicDescription(NamedTuple):
    """A topic as the cluster describes it."""

    name: str
    partitions: int
    #: the fewest replicas any partition has
    replication_factor: int
    #: every config the broker reports for the topic, defaults included
    configs: Mapping[str, str]


class Admin(Protocol):
    """Topic administration and cluster facts."""

    def list_topics(self) -> set[str]:
        """The names of every topic, internal ones included."""
        ...

    def create_topics(self, topics: Iterable[TopicSpec]) -> list[str]:
        """Create the topics that do not exist yet; the names it created.

        A topic that exists is left as it is, whatever its settings (also when
        another process creates it concurrently). Returns once every created
        topic has a leader for each partition. Other failures (an invalid
        config, too few brokers for the replication factor) raise
        ``TransportError`` naming the topic.
        """
        ...

    def describe_topics(self, names: Iterable[str]) -> dict[str, TopicDescription]:
        """Partition count, replication and configs of each.

        Raises ``TopicNotFoundError`` for a topic that does not exist.
        """
        ...

    def delete_topics(self, names: Iterable[str], *, missing_ok: bool = False) -> None:
        """Delete the topics; a missing one raises ``TopicNotFoundError`` unless ``missing_ok``."""
        ...

    def broker_count(self) -> int:
        """How many brokers the cluster has (the replication factor's ceiling)."""
        ...

    def create_acls(self, rules: Iterable[AclRule]) -> None:
        """Add an ALLOW binding for each rule, from any host; one that exists stays.

        Needs a principal the cluster lets alter ACLs (a super user). A refused
        binding raises ``TransportError`` naming it and the broker's reason.
        """
        ...

    def group_offsets(self, group_id: str) -> dict[TopicPartition, int]:
        """The offsets a consumer group committed, for every partition it committed one.

        Read without joining the group (the operator page's lag). Empty for a
        group that committed nothing or does not exist.
        """
        ...

    def close(self) -> None: ...


class Transport(Protocol):
    """A factory for the client roles, bound to one cluster and its client options."""

    def group_consumer(
        self,
        group_id: str,
        *,
        max_poll_interval_ms: int,
        session_timeout_ms: int | None = None,
        instance_id: str | None = None,
    ) -> GroupConsumer:
        """A group member; ``session_timeout_ms`` None keeps the client's default.

        ``instance_id`` makes it a static member (``group.instance.id``,
        KIP-345): a member that comes back with the same id takes its
        partitions back without a rebalance and without waiting for the old
        session to expire, and closing does not leave the group (the
        partitions wait one session timeout for it). A second live member with
        the same id fences the first. None: a dynamic member, which leaves on
        close. See ``check_instance_id`` for what an id may be.
        """
        ...

    def transactional_producer(self, transactional_id: str) -> TransactionalProducer: ...

    def partition_reader(self) -> PartitionReader: ...

    def producer(self) -> Producer: ...

    def reader(self, *, read_committed: bool = True) -> TopicReader: ...

    def admin(self) -> Admin: ...
