"""The kafka-python 3.x backend (pure Python; the default client).

Every client this module creates gets the transport's extra options (the
connection settings ``open_transport`` derives from the configuration) under
its own role settings, so no option can switch off what the role guarantees
(idempotence, isolation, no auto-commit).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import kafka
import kafka.errors as kerrors
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ConfigResource,
    ConfigResourceType,
    ResourcePattern,
    ResourceType,
)
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.partitioner.default import murmur2
from kafka.structs import MemberState, OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTopicPartition

from stream_mlops.kafka.acls import AclRule
from stream_mlops.kafka.backends import kafka_python_records
from stream_mlops.kafka.backends.connection import Connection
from stream_mlops.kafka.backends.refusals import kafka_python_refusal, refusal_error
from stream_mlops.kafka.transport import (
    AssignmentTracker,
    BrokerUnreachableError,
    DeliveryFailedError,
    OffsetCommitFailedError,
    Record,
    RecordTooLargeError,
    StartAt,
    TimestampedRecord,
    TopicDescription,
    TopicNotFoundError,
    TopicPartition,
    TopicSpec,
    TransactionFailedError,
    TransportError,
    check_instance_id,
)

# How long a transaction may stay open before its coordinator aborts it. The
# coordinator's abort bumps the producer's epoch, and kafka-python, which does
# not recover from that (KIP-588), is then fenced for good: the engine stops as
# if another process had taken its id. A partition leader lost mid-transaction
# holds the transaction open for the broker's session timeout plus an election,
# tens of seconds on a loaded machine; 60 s (the Java producer's default) rides
# that out. The cost: a process killed and never restarted holds back
# read_committed readers of its outputs for up to 60 s; a restarted one fences
# its old transaction at once through its stable transactional id.
TRANSACTION_TIMEOUT_MS = 60_000

# How long a restore read may wait for records it knows exist before it gives
# up with a clear error instead of hanging.
READ_TIMEOUT_S = 60.0
# Admin requests: creating a topic on a cluster takes a controller round trip
# and a leader election per partition; 30 s is the client's own default.
ADMIN_TIMEOUT_MS = 30_000
# The longest a transactional request (offsets, commit) may take before the
# producer is renewed: a commit takes well under a second, a coordinator that
# moved is found again within seconds of its broker's loss.
TRANSACTION_CALL_TIMEOUT_MS = 30_000
# How long a poll waits while the member joins the group. kafka-python 3.0.12
# runs JoinGroup and SyncGroup as a task that only a poll awaits; one that
# completes while no poll awaits it is dropped and a new JoinGroup sent (its
# join_group_async sees the finished task and schedules another). Polls of a few
# milliseconds, the runtime's when a checkpoint is due on a loaded machine,
# then rebalance the group again and again (17 generations in 2.5 s with
# poll(0)), and in one failover run a member stopped heartbeating for good.
# A poll that outlasts a join lets it complete inside the poll; the runtime
# processes nothing before the assignment anyway.
JOIN_POLL_MS = 3_000
# A plain producer's send waits this long for buffer space before failing; a
# live broker drains the buffer in milliseconds.
MAX_BLOCK_MS = 30_000
_log = logging.getLogger(__name__)
# Kafka's error codes that the admin role turns into outcomes, not failures.
_UNKNOWN_TOPIC = kerrors.UnknownTopicOrPartitionError.errno
_TOPIC_EXISTS = kerrors.TopicAlreadyExistsError.errno


def _ktp(tp: TopicPartition) -> KafkaTopicPartition:
    return KafkaTopicPartition(tp.topic, tp.partition)


def _config(connection: Connection, **role: Any) -> dict[str, Any]:
    """A client's configuration: the transport's options, then the role's own settings.

    Every client gives up bootstrapping after the connect timeout: kafka-python
    retries a refused login until then (30 s by default), and a service should
    report it as promptly as a command.
    """
    return {
        **connection.options,
        "bootstrap_servers": connection.bootstrap_servers,
        "client_id": connection.client_id,
        "bootstrap_timeout_ms": _connect_timeout_ms(connection),
        **role,
    }


def _connect_timeout_ms(connection: Connection) -> int:
    return int(connection.connect_timeout_s * 1000)


class _BootstrapLog(logging.Handler):
    """kafka-python's log lines while a client bootstraps: the only record of why it
    failed (its timeout error says just "Unable to bootstrap")."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: collections.deque[str] = collections.deque(maxlen=64)

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a handler must never break the client
            self.messages.append(record.getMessage())


def _too_large(
    topic: str, key: bytes | None, value: bytes | None, exc: Exception
) -> RecordTooLargeError:
    size = len(key or b"") + len(value or b"")
    return RecordTooLargeError(topic, size, str(exc))


@contextlib.contextmanager
def _bootstrapping(connection: Connection) -> Iterator[None]:
    """kafka-python clients bootstrap in their constructor: a cluster that never
    answers raises a timeout there, which becomes ``BrokerUnreachableError``, and a
    refused login or certificate becomes ``AuthenticationFailedError``."""
    logger = logging.getLogger("kafka")
    seen = _BootstrapLog()
    logger.addHandler(seen)
    try:
        yield
    except kerrors.KafkaError as exc:  # a timeout, or e.g. an authentication failure
        said = [*seen.messages, f"{type(exc).__name__}: {exc}"]
        refusal = kafka_python_refusal(said, connection.security)
        if refusal is not None:
            raise refusal_error(
                connection.bootstrap_servers, connection.security, *refusal
            ) from None
        raise BrokerUnreachableError(connection.bootstrap_servers, str(exc)) from None
    finally:
        logger.removeHandler(seen)


class KafkaPythonGroupConsumer:
    def __init__(self, connection: Connection, group_id: str, **session: Any) -> None:
        with _bootstrapping(connection):
            self._consumer = kafka.KafkaConsumer(
                **_config(
                    connection,
                    **session,
                    group_id=group_id,
                    enable_auto_commit=False,
                    isolation_level="read_committed",
                    auto_offset_reset="earliest",
                    # Range gives one member the same partition numbers of predictions
                    # and outcomes, which the per-partition join needs.
                    partition_assignment_strategy=[RangePartitionAssignor],
                )
            )
        # The fetcher then yields the runtime's Records itself (no record
        # objects of the client's own to copy from).
        self._lean = kafka_python_records.install(self._consumer)
        self._tracker: AssignmentTracker | None = None
        self._generation: tuple[int, str, frozenset[KafkaTopicPartition]] = (-1, "", frozenset())
        self._stable = False

    def subscribe(self, topics: Iterable[str], tracker: AssignmentTracker) -> None:
        names = list(topics)
        # The group leader assigns from its own metadata: joining before this
        # client has seen a new topic's partitions yields an empty assignment
        # that kafka-python only revisits at the next metadata refresh
        # (minutes). Load the metadata first.
        deadline = time.monotonic() + READ_TIMEOUT_S
        for name in names:
            while not self._consumer.partitions_for_topic(name):
                if time.monotonic() > deadline:
                    raise TransportError(
                        f"topic {name!r} does not exist (stream-mlops topics create)"
                    )
                time.sleep(0.2)
        # No rebalance listener: with one set, kafka-python 3.0.12 was seen to
        # leave partitions retained across a quick second rebalance silent for
        # minutes (the demo; cf. kafka-python #3131). The generation is
        # compared after each poll instead: any new generation is a change.
        self._consumer.subscribe(topics=names)
        self._tracker = tracker

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        timeout_ms = int(timeout_s * 1000)
        if not self._stable:
            timeout_ms = max(timeout_ms, JOIN_POLL_MS)
        batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        membership = self._consumer.group_metadata()
        self._stable = membership.state == MemberState.STABLE
        # The generation moves at JoinGroup, before SyncGroup brings the
        # assignment: act only on a stable membership, and on the assignment
        # itself, so the runtime never restores from a half-done rebalance.
        if self._stable and self._tracker is not None:
            seen = (
                membership.generation_id,
                membership.member_id,
                frozenset(self._consumer.assignment()),
            )
            if seen != self._generation:
                self._generation = seen
                self._tracker.assigned()
        if self._lean:
            if len(batches) == 1:
                (records,) = batches.values()
                return records  # type: ignore[no-any-return]
            return [r for records in batches.values() for r in records]
        return [
            Record(
                r.topic,
                r.partition,
                r.offset,
                r.key,
                r.value,
                r.timestamp if r.timestamp >= 0 else None,
            )
            for records in batches.values()
            for r in records
        ]

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        return {tp: self._consumer.committed(_ktp(tp)) for tp in partitions}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(_ktp(tp), offset)

    def lag(self) -> dict[TopicPartition, int]:
        # The subscription state, not KafkaConsumer.position(): in 3.0.12 that
        # refreshes committed offsets from the coordinator first (a round trip).
        # Both fields are what the fetcher last stored; reading them is free.
        lag = {}
        for ktp, state in list(self._consumer._subscription.assignment.items()):
            position, highwater = state.position, state.highwater
            if position is not None and highwater is not None:
                lag[TopicPartition(ktp.topic, ktp.partition)] = max(0, highwater - position.offset)
        return lag

    def group_metadata(self) -> object:
        return self._consumer.group_metadata()

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            self._consumer.commit(
                {_ktp(tp): OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()}
            )
        except kerrors.KafkaError as exc:  # CommitFailedError after a rebalance, a timeout
            raise OffsetCommitFailedError(
                f"offset commit failed: {type(exc).__name__}: {exc}"
            ) from None

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.pause(*(_ktp(tp) for tp in partitions))

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.resume(*(_ktp(tp) for tp in partitions))

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class KafkaPythonTransactionalProducer:
    def __init__(self, connection: Connection, transactional_id: str) -> None:
        self._connection = connection
        self._transactional_id = transactional_id
        self._partitions: dict[tuple[str, bytes], int] = {}
        self._producer = self._new_producer()

    def _new_producer(self) -> kafka.KafkaProducer:
        with _bootstrapping(self._connection):
            producer = kafka.KafkaProducer(
                **_config(
                    self._connection,
                    bootstrap_timeout_ms=_connect_timeout_ms(self._connection),
                    transactional_id=self._transactional_id,
                    # Explicit, so that no other setting can silently turn it off.
                    enable_idempotence=True,
                    acks="all",
                    linger_ms=5,
                    batch_size=256 * 1024,
                    transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
                )
            )
        # Fences any earlier instance with this id and aborts what it left open.
        producer.init_transactions()
        return producer

    def _renew(self, cause: str) -> None:
        """A new producer with our transactional id in place of one whose call hangs.

        Its init_transactions looks the coordinator up afresh and bumps the epoch,
        which aborts the transaction the old one left open, as a restart would.
        """
        _log.warning("transactional producer %s renewed: %s", self._transactional_id, cause)
        with contextlib.suppress(Exception):
            self._producer.close(timeout=1)
        self._producer = self._new_producer()

    def _bounded(self, start: Any, what: str) -> None:
        """Run one transactional request (``start(transaction_manager)`` returns its
        result) as KafkaProducer's own method would, but wait a bounded time.

        kafka-python waits for these without a bound; when the transaction
        coordinator's broker was stopped in a rolling restart, a commit was seen to
        wait for minutes on "Node coordinator-3 not ready" while the other brokers
        could have served it. A call that has not completed in
        TRANSACTION_CALL_TIMEOUT_MS renews the producer and fails the transaction.
        """
        result = start(self._producer._transaction_manager)
        self._producer._sender.wakeup()
        if not result.wait(timeout_ms=TRANSACTION_CALL_TIMEOUT_MS):
            seconds = TRANSACTION_CALL_TIMEOUT_MS / 1000
            self._renew(f"{what} did not complete within {seconds:.0f} s")
            raise TransactionFailedError(
                f"transaction aborted: {what} did not complete within {seconds:.0f} s "
                "(the producer was renewed)"
            )

    def begin(self) -> None:
        # Re-read partition counts once per transaction (sub-second), so a topic
        # that gained partitions is followed without a lookup per message.
        self._partitions.clear()
        try:
            self._producer.begin_transaction()
        except kerrors.KafkaError as exc:
            raise self._fenced_or(exc) from exc

    def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        if partition is None and key is not None:
            partition = self._partition(topic, key)
        try:
            self._producer.send(topic, value=value, key=key, partition=partition)
        except kerrors.MessageSizeTooLargeError as exc:  # refused before the batch
            raise _too_large(topic, key, value, exc) from None
        except kerrors.KafkaError as exc:
            error = self._fenced_or(exc)
            manager = getattr(self._producer, "_transaction_manager", None)
            if error is exc and manager is not None and manager.has_abortable_error():
                # A background request of this transaction failed (a partition
                # leader lost mid-transaction): no more sends until it is
                # aborted; the caller aborts and rewinds.
                raise TransactionFailedError(f"transaction aborted: {exc}") from exc
            raise error from exc

    def _fenced_or(self, exc: kerrors.KafkaError) -> Exception:
        """``exc``, or a fenced ``TransactionFailedError`` if the producer was fenced.

        Once a background send learns of the fencing, kafka-python raises a plain
        ``KafkaError`` ("in an error state") from the next transactional call; the
        cause is only in its transaction manager (not a public attribute).
        """
        manager = getattr(self._producer, "_transaction_manager", None)
        last: object = getattr(manager, "_last_error", None)
        if isinstance(exc, kerrors.ProducerFencedError) or isinstance(
            last, kerrors.ProducerFencedError
        ):
            return TransactionFailedError(f"producer fenced: {last or exc}", fenced=True)
        unchanged: Exception = exc
        return unchanged

    def _partition(self, topic: str, key: bytes) -> int:
        """The Java client's partition for a key, as kafka-python computes it.

        Outputs are keyed by model_id: a handful of keys. The pure-Python
        murmur2 per message cost about a tenth of a labeled event's send.
        """
        found = self._partitions.get((topic, key))
        if found is None:
            count = len(self._producer.partitions_for(topic))
            found = self._partitions[(topic, key)] = (murmur2(key) & 0x7FFFFFFF) % count
        return found

    def commit(self, offsets: Mapping[TopicPartition, int], group_metadata: object) -> None:
        try:
            if offsets:
                committed = {
                    _ktp(tp): OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()
                }
                self._bounded(
                    lambda manager: manager.send_offsets_to_transaction(committed, group_metadata),
                    "adding the offsets to the transaction",
                )
            self._bounded(lambda manager: manager.begin_commit(), "the commit")
        except kerrors.KafkaError as exc:
            error = self._fenced_or(exc)
            if isinstance(error, TransactionFailedError):
                raise error from exc
            self._abort_quietly()
            raise TransactionFailedError(f"commit failed: {type(exc).__name__}: {exc}") from exc

    def abort(self) -> None:
        try:
            self._producer.abort_transaction()
        except kerrors.ProducerFencedError as exc:
            raise TransactionFailedError(f"producer fenced: {exc}", fenced=True) from exc
        except kerrors.KafkaError as exc:
            raise TransportError(f"abort failed: {type(exc).__name__}: {exc}") from exc

    def _abort_quietly(self) -> None:
        # The transaction is void either way: the broker aborts it on timeout or
        # when the next init_transactions fences it.
        with contextlib.suppress(kerrors.KafkaError):
            self._producer.abort_transaction()

    def close(self) -> None:
        self._producer.close(timeout=5)


class KafkaPythonPartitionReader:
    def __init__(self, connection: Connection) -> None:
        with _bootstrapping(connection):
            self._consumer = kafka.KafkaConsumer(
                **_config(
                    connection,
                    bootstrap_timeout_ms=_connect_timeout_ms(connection),
                    group_id=None,
                    enable_auto_commit=False,
                    isolation_level="read_committed",
                )
            )
        self._partition_counts: dict[str, int] = {}

    def end_offset(self, tp: TopicPartition) -> int:
        offsets = self._consumer.end_offsets([_ktp(tp)])
        return int(offsets[_ktp(tp)])

    def beginning_offset(self, tp: TopicPartition) -> int:
        offsets = self._consumer.beginning_offsets([_ktp(tp)])
        return int(offsets[_ktp(tp)])

    def partition_count(self, topic: str) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            deadline = time.monotonic() + READ_TIMEOUT_S
            while (partitions := self._consumer.partitions_for_topic(topic)) is None:
                if time.monotonic() > deadline:
                    raise TransportError(
                        f"topic {topic!r} does not exist (stream-mlops topics create)"
                    )
                time.sleep(0.2)
            count = self._partition_counts[topic] = len(partitions)
        return count

    def read(self, tp: TopicPartition, start: int, end: int) -> Iterator[Record]:
        if start >= end:
            return
        ktp = _ktp(tp)
        self._consumer.assign([ktp])
        self._consumer.seek(ktp, start)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while self._consumer.position(ktp) < end:
            if time.monotonic() > deadline:
                raise TransportError(
                    f"reading {tp.topic}[{tp.partition}] {start}..{end} stalled at "
                    f"offset {self._consumer.position(ktp)}"
                )
            batches = self._consumer.poll(timeout_ms=500, max_records=5000)
            for r in batches.get(ktp, ()):
                if r.offset >= end:
                    return
                yield Record(r.topic, r.partition, r.offset, r.key, r.value)

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class KafkaPythonProducer:
    """The idempotent producer; kafka-python's default partitioner is murmur2."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._servers = connection.bootstrap_servers
        with _bootstrapping(connection):
            self._producer = kafka.KafkaProducer(
                **_config(
                    connection,
                    # Explicit, so that no other setting can silently turn it off.
                    enable_idempotence=True,
                    acks="all",
                    linger_ms=5,
                    max_block_ms=MAX_BLOCK_MS,
                )
            )
        # kafka-python 3.0.12's producer asks for topic metadata with automatic
        # creation on, whatever allow_auto_create_topics says (its cluster
        # metadata never receives the setting): a send to a missing topic would
        # create it with the broker's default partition count. A consumer's
        # metadata request does honour it, so topics are checked through one.
        self._metadata_config = _config(
            connection,
            group_id=None,
            enable_auto_commit=False,
            allow_auto_create_topics=False,
        )
        self._topics: set[str] = set()
        # Appended to on the client's IO thread (list.append is atomic).
        self._failures: list[BaseException] = []

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        self._raise_failures()
        if topic not in self._topics:
            self._check_topic(topic)
        try:
            future = self._producer.send(topic, value=value, key=key, partition=partition)
        except kerrors.MessageSizeTooLargeError as exc:
            raise _too_large(topic, key, value, exc) from None
        except kerrors.KafkaTimeoutError as exc:
            raise TransportError(
                f"Kafka at {self._servers} did not take a record for {topic!r} "
                f"within {MAX_BLOCK_MS} ms ({exc})"
            ) from None
        except kerrors.KafkaError as exc:
            raise TransportError(f"send to {topic!r} failed: {type(exc).__name__}: {exc}") from None
        future.add_errback(self._failures.append)

    def _check_topic(self, topic: str) -> None:
        with _bootstrapping(self._connection):
            consumer = kafka.KafkaConsumer(**self._metadata_config)
        try:
            if not consumer.partitions_for_topic(topic):
                raise TopicNotFoundError(topic)
        finally:
            consumer.close(autocommit=False)
        self._topics.add(topic)

    def _raise_failures(self) -> None:
        if self._failures:
            count = len(self._failures)
            first = self._failures[0]
            del self._failures[:count]
            raise DeliveryFailedError(count, f"{type(first).__name__}: {first}")

    def flush(self, timeout_s: float = 30.0) -> None:
        try:
            self._producer.flush(timeout=timeout_s)
        except kerrors.KafkaTimeoutError:
            self._raise_failures()
            raise DeliveryFailedError(None, f"still queued after {timeout_s:g} s") from None
        self._raise_failures()

    def close(self, timeout_s: float = 5.0) -> None:
        with contextlib.suppress(kerrors.KafkaError):
            self._producer.close(timeout=timeout_s)


def _timestamp(value: int) -> int | None:
    # kafka-python reports a missing timestamp as -1.
    return value if value >= 0 else None


class KafkaPythonTopicReader:
    def __init__(self, connection: Connection, *, read_committed: bool) -> None:
        with _bootstrapping(connection):
            self._consumer = kafka.KafkaConsumer(
                **_config(
                    connection,
                    group_id=None,
                    enable_auto_commit=False,
                    isolation_level="read_committed" if read_committed else "read_uncommitted",
                    allow_auto_create_topics=False,
                )
            )

    def partitions(self, topic: str) -> list[TopicPartition]:
        # An empty set, not None, for a topic the cluster does not have.
        found = self._consumer.partitions_for_topic(topic)
        if not found:
            raise TopicNotFoundError(topic)
        return [TopicPartition(topic, p) for p in sorted(found)]

    def assign(self, starts: Mapping[TopicPartition, StartAt]) -> dict[TopicPartition, int]:
        ktps = {tp: _ktp(tp) for tp in starts}
        self._consumer.assign(list(ktps.values()))
        for tp, start in starts.items():
            if start == "earliest":
                self._consumer.seek_to_beginning(ktps[tp])
            elif start == "latest":
                self._consumer.seek_to_end(ktps[tp])
            else:
                self._consumer.seek(ktps[tp], start)
        # position() resolves the seeks now (a ListOffsets request honouring the
        # isolation level), so "latest" means the end as of this call.
        return {tp: int(self._consumer.position(ktp)) for tp, ktp in ktps.items()}

    def poll(self, timeout_s: float, max_records: int = 500) -> list[TimestampedRecord]:
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except kerrors.KafkaError as exc:
            raise TransportError(f"read failed: {type(exc).__name__}: {exc}") from None
        return [
            TimestampedRecord(
                r.topic, r.partition, r.offset, r.key, r.value, _timestamp(r.timestamp)
            )
            for records in batches.values()
            for r in records
        ]

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class KafkaPythonAdmin:
    def __init__(self, connection: Connection) -> None:
        with _bootstrapping(connection):
            self._admin = kafka.KafkaAdminClient(**_config(connection))

    def list_topics(self) -> set[str]:
        with _admin_errors("listing topics"):
            return set(self._admin.list_topics())

    def create_topics(self, topics: Iterable[TopicSpec]) -> list[str]:
        specs = list(topics)
        if not specs:
            return []
        request = {
            s.name: {
                "num_partitions": s.partitions,
                "replication_factor": s.replication_factor,
                "configs": dict(s.configs),
            }
            for s in specs
        }
        with _admin_errors("creating topics"):
            result = self._admin.create_topics(
                request, timeout_ms=ADMIN_TIMEOUT_MS, raise_errors=False
            )
        created: set[str] = set()
        for topic in result["topics"]:
            code = topic["error_code"]
            if code == 0:
                created.add(topic["name"])
            elif code != _TOPIC_EXISTS:
                reason = topic.get("error_message") or kerrors.for_code(code).__name__
                raise TransportError(f"creating topic {topic['name']!r} failed: {reason}")
        if created:
            with _admin_errors("waiting for new topics"):
                self._admin.wait_for_topics(sorted(created), timeout_ms=ADMIN_TIMEOUT_MS)
        return [s.name for s in specs if s.name in created]

    def describe_topics(self, names: Iterable[str]) -> dict[str, TopicDescription]:
        wanted = list(names)
        if not wanted:
            return {}
        with _admin_errors("describing topics"):
            topics = {t["name"]: t for t in self._admin.describe_topics(wanted)}
            for name in wanted:
                found = topics.get(name)
                if found is None or found["error_code"] == _UNKNOWN_TOPIC:
                    raise TopicNotFoundError(name)
                if found["error_code"]:
                    error = kerrors.for_code(found["error_code"]).__name__
                    raise TransportError(f"describing topic {name!r} failed: {error}")
            configs = self._admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted],
                config_filter="all",
            )["topic"]
        described = {}
        for name in wanted:
            partitions = topics[name]["partitions"]
            described[name] = TopicDescription(
                name=name,
                partitions=len(partitions),
                replication_factor=min((len(p["replica_nodes"]) for p in partitions), default=0),
                configs={
                    key: entry["value"]
                    for key, entry in configs.get(name, {}).items()
                    if entry.get("value") is not None
                },
            )
        return described

    def delete_topics(self, names: Iterable[str], *, missing_ok: bool = False) -> None:
        wanted = list(names)
        if not wanted:
            return
        with _admin_errors("deleting topics"):
            result = self._admin.delete_topics(
                wanted, timeout_ms=ADMIN_TIMEOUT_MS, raise_errors=False
            )
        for topic in result["topics"]:
            code = topic["error_code"]
            if code == _UNKNOWN_TOPIC:
                if not missing_ok:
                    raise TopicNotFoundError(topic["name"])
            elif code:
                reason = topic.get("error_message") or kerrors.for_code(code).__name__
                raise TransportError(f"deleting topic {topic['name']!r} failed: {reason}")

    def broker_count(self) -> int:
        with _admin_errors("describing the cluster"):
            return len(self._admin.describe_cluster()["brokers"])

    def create_acls(self, rules: Iterable[AclRule]) -> None:
        acls = [
            ACL(
                principal=rule.principal,
                host="*",
                operation=ACLOperation[rule.operation],
                permission_type=ACLPermissionType.ALLOW,
                resource_pattern=ResourcePattern(
                    ResourceType[rule.resource], rule.name, ACLResourcePatternType[rule.pattern]
                ),
            )
            for rule in dict.fromkeys(rules)
        ]
        if not acls:
            return
        with _admin_errors("creating ACLs"):
            result = self._admin.create_acls(acls)
        # kafka-python 3.0.12 lists the failures as error classes, in request order,
        # without the binding each belongs to.
        failed = result.get("failed") or []
        if failed:
            first = failed[0]
            reason = first.__name__ if isinstance(first, type) else str(first)
            raise TransportError(f"{len(failed)} of {len(acls)} ACL bindings refused: {reason}")

    def group_offsets(self, group_id: str) -> dict[TopicPartition, int]:
        with _admin_errors(f"reading the offsets of group {group_id!r}"):
            committed = self._admin.list_group_offsets({group_id: None}).get(group_id, {})
        # A partition listed without a commit reads -1.
        return {
            TopicPartition(tp.topic, tp.partition): int(meta.offset)
            for tp, meta in committed.items()
            if meta.offset >= 0
        }

    def close(self) -> None:
        self._admin.close()


@contextlib.contextmanager
def _admin_errors(action: str) -> Iterator[None]:
    try:
        yield
    except kerrors.KafkaError as exc:
        raise TransportError(f"{action} failed: {type(exc).__name__}: {exc}") from None


class KafkaPythonTransport:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def group_consumer(
        self,
        group_id: str,
        *,
        max_poll_interval_ms: int,
        session_timeout_ms: int | None = None,
        instance_id: str | None = None,
    ) -> KafkaPythonGroupConsumer:
        # kafka-python warns below a third of the session timeout: a member must
        # get a few heartbeats in before the group gives up on it.
        session: dict[str, Any] = (
            {}
            if session_timeout_ms is None
            else {
                "session_timeout_ms": session_timeout_ms,
                "heartbeat_interval_ms": min(3000, session_timeout_ms // 3),
            }
        )
        if instance_id is not None:
            # Static membership (KIP-345, kafka-python 3.0.12 speaks it): close()
            # sends no LeaveGroup, as the Java client does for a static member.
            session["group_instance_id"] = check_instance_id(instance_id)
        return KafkaPythonGroupConsumer(
            self._connection, group_id, max_poll_interval_ms=max_poll_interval_ms, **session
        )

    def transactional_producer(self, transactional_id: str) -> KafkaPythonTransactionalProducer:
        return KafkaPythonTransactionalProducer(self._connection, transactional_id)

    def partition_reader(self) -> KafkaPythonPartitionReader:
        return KafkaPythonPartitionReader(self._connection)

    def producer(self) -> KafkaPythonProducer:
        return KafkaPythonProducer(self._connection)

    def reader(self, *, read_committed: bool = True) -> KafkaPythonTopicReader:
        return KafkaPythonTopicReader(self._connection, read_committed=read_committed)

    def admin(self) -> KafkaPythonAdmin:
        return KafkaPythonAdmin(self._connection)
