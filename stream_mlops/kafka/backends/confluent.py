"""The confluent-kafka (librdkafka) backend: same semantics, C-speed client.

Optional: ``pip install 'stream-mlops[fast]'`` and ``[kafka] client =
"confluent-kafka"`` (or ``--client confluent-kafka``).

Differences from kafka-python that this module hides:

* librdkafka's default partitioner (consistent_random) is not the Java
  client's; ``murmur2_random`` keeps keyed co-partitioning with every other
  producer of the input topics.
* Rebalance callbacks run inside ``consume()`` on the caller's thread here,
  but the runtime treats them the same way (record, act after the poll).
* A seek right after an assignment can fail with ``_STATE`` until the fetcher
  for the partition exists: retried briefly.
* librdkafka connects lazily and prints its own log lines to stderr: every
  client here logs through the standard library's ``logging`` instead (logger
  ``stream_mlops.kafka.librdkafka``, shown by services at WARNING like
  kafka-python's), and every role but the group consumer asks for metadata once
  at construction so that an unreachable cluster fails there, as it does with
  kafka-python.
* librdkafka retries a refused login or an untrusted certificate for ever,
  telling only the error callback: that first metadata request watches the
  callback and ends at once with ``AuthenticationFailedError``.

Every client gets the transport's extra options (librdkafka's dotted names)
under its own role settings, so no option can switch off what the role
guarantees (idempotence, isolation, no auto-commit).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import confluent_kafka as ck
import confluent_kafka.admin as ckadmin

from stream_mlops.kafka.acls import AclRule
from stream_mlops.kafka.backends.connection import Connection
from stream_mlops.kafka.backends.refusals import Refusal, librdkafka_refusal, refusal_error
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

# Same value and reasoning as the kafka-python backend's. librdkafka also caps
# a transactional producer's message.timeout.ms at it, so records for a
# partition whose leader was lost wait this long for the new leader before
# they fail the transaction.
TRANSACTION_TIMEOUT_MS = 60_000
REQUEST_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 60.0
# A partition reader's wait for the next record, and how many it takes at once.
_READ_SLICE_S = 0.1
_READ_BATCH = 5000
# librdkafka prefetches up to this much per assigned partition (its default is
# 64 MiB, queued.max.messages.kbytes): on a backlog that filled the engine's
# RSS with fetched-but-unread records, for no speed (one poll takes 2,000).
QUEUED_MAX_KBYTES = 8192
SEEK_RETRY_S = 10.0
# A partition reader asks for watermarks again for this long while a leader moves:
# a lost broker's partitions move after its session with the controller lapses
# (broker.session.timeout.ms, 9 s) plus an election, slower on a loaded machine.
WATERMARK_RETRY_S = 60.0
_WATERMARK_ATTEMPT_S = 10.0
_WATERMARK_BACKOFF_S = 0.5
# Sends between two polls for delivery reports: bounds their queue (a commit
# also drains it) without a poll call per message.
SERVE_EVERY = 1000
# Admin operations: the client's own default request timeout.
ADMIN_TIMEOUT_S = 30.0
# How often a client waiting for the cluster's first answer looks for a refused
# login or certificate: a refusal arrives within a second, and is final.
_CONNECT_SLICE_S = 0.25

# librdkafka's log lines, as standard-library records. The NullHandler keeps a
# command that configured no logging quiet (no stderr noise around its one-line
# error); a service's handlers still receive them.
CLIENT_LOG = logging.getLogger("stream_mlops.kafka.librdkafka")
_log = logging.getLogger(__name__)
CLIENT_LOG.addHandler(logging.NullHandler())


def _config(connection: Connection, role: Mapping[str, Any]) -> dict[str, Any]:
    """A client's configuration: the transport's options, then the role's own settings."""
    return {
        **connection.options,
        "bootstrap.servers": connection.bootstrap_servers,
        "client.id": connection.client_id,
        "logger": CLIENT_LOG,
        **role,
    }


class _ClientErrors:
    """The client-level errors librdkafka reports (error_cb), the latest few.

    They say why a cluster did not answer (refused, name not resolved, an
    authentication failure) where the failed request only says it timed out.
    """

    def __init__(self) -> None:
        self._seen: collections.deque[tuple[str, str]] = collections.deque(maxlen=8)

    def __call__(self, error: ck.KafkaError) -> None:
        self._seen.append((error.name(), error.str()))

    def latest(self) -> str | None:
        return self._seen[-1][1] if self._seen else None

    def fenced(self) -> bool:
        """Whether librdkafka reported this producer fenced. A fatal error reaches
        the calls that follow it only as ``_FATAL``; the error callback got the cause."""
        return any(
            name in _FENCING_NAMES or (name == "_FATAL" and "fenced" in text.lower())
            for name, text in self._seen
        )

    def refusal(self) -> tuple[Refusal, str] | None:
        """A refused login or certificate among the errors seen, if any."""
        for name, text in reversed(self._seen):
            refusal = librdkafka_refusal(name, text)
            if refusal is not None:
                return refusal
        return None


def _connect(client: Any, errors: _ClientErrors, connection: Connection) -> None:
    """Fail now, in one line, if no broker answers a metadata request in time, or at
    once if the cluster refuses the login or the TLS handshake.

    librdkafka retries a refused login for ever and only tells the error callback,
    so the wait is cut into slices and the callback's errors checked after each.
    """
    deadline = time.monotonic() + connection.connect_timeout_s
    while True:
        wait = max(0.0, min(_CONNECT_SLICE_S, deadline - time.monotonic()))
        try:
            client.list_topics(timeout=wait)
            return
        except ck.KafkaException as exc:
            client.poll(0)  # serve error_cb: the reason, if librdkafka reported one
            refusal = errors.refusal()
            if refusal is not None:
                raise refusal_error(
                    connection.bootstrap_servers, connection.security, *refusal
                ) from None
            if time.monotonic() >= deadline:
                reason = errors.latest() or exc.args[0].str()
                raise BrokerUnreachableError(connection.bootstrap_servers, reason) from None


def _produce(
    producer: ck.Producer, topic: str, key: bytes | None, value: bytes | None, partition: int | None
) -> None:
    """One ``produce``, waiting for room when librdkafka's local queue is full.

    A record over ``message.max.bytes`` is refused here, before it is queued:
    ``RecordTooLargeError``.
    """
    while True:
        try:
            if partition is None:
                producer.produce(topic, value, key)
            else:
                producer.produce(topic, value, key, partition)
            return
        except BufferError:
            # Local queue full: let librdkafka deliver, then retry.
            producer.poll(0.05)
        except ck.KafkaException as exc:
            error = _kafka_error(exc)
            if error is None or error.code() != ck.KafkaError.MSG_SIZE_TOO_LARGE:
                raise
            size = len(key or b"") + len(value or b"")
            raise RecordTooLargeError(topic, size, error.str()) from None


def _partitions_of(client: Any, topic: str) -> list[TopicPartition]:
    """The partitions of an existing topic; never creates one."""
    try:
        metadata = client.list_topics(topic, timeout=REQUEST_TIMEOUT_S).topics.get(topic)
    except ck.KafkaException as exc:
        raise TransportError(f"metadata of {topic!r}: {exc.args[0].str()}") from None
    if metadata is not None and metadata.error is not None:
        if metadata.error.code() != ck.KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise TransportError(f"metadata of {topic!r}: {metadata.error.str()}")
        metadata = None
    if metadata is None or not metadata.partitions:
        raise TopicNotFoundError(topic)
    return [TopicPartition(topic, p) for p in sorted(metadata.partitions)]


def _cktp(tp: TopicPartition, offset: int | None = None) -> ck.TopicPartition:
    if offset is None:
        return ck.TopicPartition(tp.topic, tp.partition)
    return ck.TopicPartition(tp.topic, tp.partition, offset)


def _record(msg: ck.Message) -> Record:
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    # Only error messages lack these; callers filter errors first.
    assert topic is not None and partition is not None and offset is not None
    kind, timestamp = msg.timestamp()
    return Record(
        topic,
        partition,
        offset,
        msg.key(),
        msg.value(),
        timestamp if kind != ck.TIMESTAMP_NOT_AVAILABLE else None,
    )


# Errors about the consumer group, which a reader names only because the client
# requires a group.id: librdkafka still looks up that group's coordinator, and
# on a secured cluster the reader's principal rightly has no ACL for a group it
# never joins or commits in. The records arrive all the same.
_UNUSED_GROUP_ERRORS = frozenset({ck.KafkaError.GROUP_AUTHORIZATION_FAILED})


def _raise_for(msg: Any, *, in_group: bool = True) -> None:
    """Raise a consumed error message as ``TransportError``; ``in_group`` False (a
    reader) skips the errors of the group it names but never uses, and those of a
    leader that moves (its read has a deadline of its own, so it cannot wait for ever)."""
    err = msg.error()
    if err is None or err.code() == ck.KafkaError._PARTITION_EOF:
        return
    if not in_group and (err.code() in _UNUSED_GROUP_ERRORS or _passing(err)):
        return
    if in_group and _fenced_member(err):
        raise TransportError(
            "another group member took over this process's instance id "
            "(group.instance.id); give each process its own --instance-id "
            f"({err.str()})"
        )
    raise TransportError(f"consume failed: {err.str()}")


def _fenced_member(err: ck.KafkaError) -> bool:
    """A static member fenced by a newer one with its group.instance.id.

    librdkafka makes it a fatal consumer error, which reaches ``consume`` only
    as ``_FATAL`` with the cause in its text (the error callback is not told).
    Whichever of an engine's two clients learns first that a second engine
    runs with its id, the engine stops with the same advice.
    """
    code = err.code()
    return code == ck.KafkaError.FENCED_INSTANCE_ID or (
        code == ck.KafkaError._FATAL and "group.instance.id" in err.str()
    )


class ConfluentGroupConsumer:
    def __init__(
        self,
        connection: Connection,
        group_id: str,
        max_poll_interval_ms: int,
        session_timeout_ms: int | None = None,
        instance_id: str | None = None,
    ) -> None:
        extra: dict[str, Any] = (
            {}
            if session_timeout_ms is None
            else {
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": min(3000, session_timeout_ms // 3),
            }
        )
        errors = _ClientErrors()
        if instance_id is not None:
            # Static membership (KIP-345): librdkafka sends no LeaveGroup when a
            # static member closes, and treats being fenced as a fatal error.
            extra["group.instance.id"] = check_instance_id(instance_id)
        self._consumer = ck.Consumer(
            _config(
                connection,
                {
                    **extra,
                    "error_cb": errors,
                    "group.id": group_id,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "isolation.level": "read_committed",
                    "auto.offset.reset": "earliest",
                    # Same partition numbers of both input topics to one member.
                    "partition.assignment.strategy": "range",
                    "max.poll.interval.ms": max_poll_interval_ms,
                    "queued.max.messages.kbytes": QUEUED_MAX_KBYTES,
                },
            )
        )
        _connect(self._consumer, errors, connection)

    def subscribe(self, topics: Iterable[str], tracker: AssignmentTracker) -> None:
        self._consumer.subscribe(
            list(topics),
            on_assign=lambda _c, _p: tracker.assigned(),
            on_revoke=lambda _c, _p: tracker.revoked(),
            on_lost=lambda _c, _p: tracker.lost(),
        )

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        # consume() waits for max_records or the timeout, whichever comes
        # first: at moderate rates every record waited the whole timeout. So
        # wait for the first message only, then take what is already fetched.
        first = self._consumer.poll(timeout_s)
        if first is None:
            return []
        out: list[Record] = []
        append = out.append
        more = self._consumer.consume(max_records - 1, 0) if max_records > 1 else []
        for msg in [first, *more]:
            if msg.error() is not None:
                _raise_for(msg)
                continue
            append(_record(msg))
        return out

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        tps = list(partitions)
        result = self._consumer.committed([_cktp(tp) for tp in tps], timeout=REQUEST_TIMEOUT_S)
        return {
            TopicPartition(r.topic, r.partition): (r.offset if r.offset >= 0 else None)
            for r in result
        }

    def _seek(self, target: ck.TopicPartition) -> None:
        deadline = time.monotonic() + SEEK_RETRY_S
        while True:
            try:
                self._consumer.seek(target)
                return
            except ck.KafkaException as exc:
                if exc.args[0].code() != ck.KafkaError._STATE or time.monotonic() > deadline:
                    raise TransportError(f"seek failed: {exc}") from exc
                # Serve the assignment so the partition's fetcher starts.
                self._consumer.consume(num_messages=0, timeout=0.05)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._seek(_cktp(tp, offset))

    def lag(self) -> dict[TopicPartition, int]:
        # Both are librdkafka's local state: the application's position, and
        # the high watermark of the last fetch response (cached=True: no request).
        lag = {}
        for tp in self._consumer.position(self._consumer.assignment()):
            if tp.offset < 0:
                continue  # nothing consumed or sought yet
            _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                lag[TopicPartition(tp.topic, tp.partition)] = max(0, high - tp.offset)
        return lag

    def group_metadata(self) -> object:
        return self._consumer.consumer_group_metadata()

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            stored = self._consumer.commit(
                offsets=[_cktp(tp, off) for tp, off in offsets.items()], asynchronous=False
            )
        except ck.KafkaException as exc:
            raise OffsetCommitFailedError(f"offset commit failed: {exc.args[0].str()}") from None
        # A commit can succeed as a request and still fail for some partitions.
        for tp in stored or ():
            if tp.error is not None:
                raise OffsetCommitFailedError(
                    f"offset commit failed for {tp.topic}[{tp.partition}]: {tp.error.str()}"
                )

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.pause([_cktp(tp) for tp in partitions])

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.resume([_cktp(tp) for tp in partitions])

    def close(self) -> None:
        self._consumer.close()


# Fatal errors that mean another process owns our transactional id now (or may
# never use it): this one must stop. Any other fatal error (librdkafka's
# INVALID_TXN_STATE after a transaction whose messages timed out while a
# partition leader was being re-elected) leaves the id ours, and a new producer
# with it takes over cleanly.
_FENCING_CODES = frozenset(
    {
        ck.KafkaError._FENCED,
        ck.KafkaError.PRODUCER_FENCED,
        ck.KafkaError.INVALID_PRODUCER_EPOCH,
        ck.KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)


# What a client sees for a while after a broker dies, before the new leader.
_PASSING_CODES = frozenset(
    {
        ck.KafkaError._DESTROY_BROKER,
        ck.KafkaError._TRANSPORT,
        ck.KafkaError._TIMED_OUT,
        ck.KafkaError._ALL_BROKERS_DOWN,
        ck.KafkaError.NOT_LEADER_FOR_PARTITION,
        ck.KafkaError.LEADER_NOT_AVAILABLE,
    }
)


def _passing(error: ck.KafkaError) -> bool:
    """An error that a moving partition leader causes and that asking again cures."""
    return bool(error.retriable()) or error.code() in _PASSING_CODES


_FENCING_NAMES = frozenset(
    {
        "_FENCED",
        "PRODUCER_FENCED",
        "INVALID_PRODUCER_EPOCH",
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
    }
)


class ConfluentTransactionalProducer:
    def __init__(self, connection: Connection, transactional_id: str) -> None:
        self._connection = connection
        self._transactional_id = transactional_id
        self._errors = _ClientErrors()
        self._unserved = 0
        #: a transaction is open on the current producer (a renewed one has none)
        self._open = False
        self._producer = self._new_producer()

    def _new_producer(self) -> Any:
        producer = ck.Producer(
            _config(
                self._connection,
                {
                    "error_cb": self._errors,
                    "transactional.id": self._transactional_id,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                    "partitioner": "murmur2_random",
                },
            )
        )
        # init_transactions retries a refused login until its timeout, and _call
        # retries a timeout: find out first whether the cluster lets us in.
        _connect(producer, self._errors, self._connection)
        self._producer = producer
        self._call(lambda: producer.init_transactions(REQUEST_TIMEOUT_S))
        return producer

    def _renew(self, cause: str) -> None:
        """A new producer in place of one librdkafka put in a fatal state.

        Its init_transactions bumps the epoch of our transactional id, which aborts
        whatever transaction the old one left open, as a restarted process would.
        """
        _log.warning(
            "transactional producer %s renewed after a fatal error: %s",
            self._transactional_id,
            cause,
        )
        with contextlib.suppress(ck.KafkaException, RuntimeError):
            self._producer.purge()
        self._open = False
        self._new_producer()

    def _call(self, action: Any) -> bool:
        """Run a transactional call, mapping librdkafka's error classes.

        True if the producer had to be renewed (its transaction, if any, is void).
        """
        while True:
            try:
                action()
                return False
            except ck.KafkaException as exc:
                err = exc.args[0]
                if err.retriable():
                    # Said, so that a commit retried for minutes (a coordinator
                    # short of in-sync replicas) is not silent.
                    _log.warning("transactional call retried: %s", err.str())
                    continue
                if err.fatal():
                    if err.code() in _FENCING_CODES or self._errors.fenced():
                        raise TransactionFailedError(
                            f"producer fenced or fatal: {err.str()}", fenced=True
                        ) from exc
                    self._renew(err.str())
                    return True
                if err.txn_requires_abort():
                    self._abort_quietly()
                    raise TransactionFailedError(f"transaction aborted: {err.str()}") from exc
                raise TransportError(err.str()) from exc

    def begin(self) -> None:
        if self._call(self._producer.begin_transaction):
            # Nothing was open: begin on the new producer.
            self._call(self._producer.begin_transaction)
        self._open = True

    def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        try:
            _produce(self._producer, topic, key, value, partition)
        except ck.KafkaException as exc:
            # Fenced while the transaction was open (a newer process took the id):
            # produce() raises the fencing itself, or, once librdkafka is in its
            # fatal state, only "Fatal error"; the error callback, served by poll,
            # then says why.
            error = _kafka_error(exc)
            try:
                self._producer.poll(0)
            except ck.KafkaException as served:  # poll may raise the cause itself
                error = _kafka_error(served) or error
            if (error is not None and error.code() in _FENCING_CODES) or self._errors.fenced():
                raise TransactionFailedError(
                    f"producer fenced: {self._errors.latest()}", fenced=True
                ) from exc
            if error is not None and error.fatal():
                self._renew(error.str())
                raise TransactionFailedError(
                    f"transaction aborted: the producer failed and was renewed: {error.str()}"
                ) from exc
            if error is not None and (
                error.code() == ck.KafkaError._STATE or error.txn_requires_abort()
            ):
                # The open transaction failed in the background (a partition
                # leader lost mid-transaction: "skipped sequence numbers ...
                # requires epoch bump") and librdkafka takes no more records for
                # it: the caller aborts, which bumps the epoch, and rewinds.
                raise TransactionFailedError(
                    f"transaction aborted: the producer refuses records ({error.str()}); "
                    "its transaction failed in the background"
                ) from exc
            raise
        # Serving delivery reports per message cost as much as producing it; we
        # set no callback (failures surface at commit), so drain now and then.
        self._unserved += 1
        if self._unserved >= SERVE_EVERY:
            self._unserved = 0
            self._producer.poll(0)

    def commit(self, offsets: Mapping[TopicPartition, int], group_metadata: object) -> None:
        renewed = False
        if offsets:
            tps = [_cktp(tp, off) for tp, off in offsets.items()]
            renewed = self._call(
                lambda: self._producer.send_offsets_to_transaction(
                    tps, group_metadata, REQUEST_TIMEOUT_S
                )
            )
        if not renewed:
            renewed = self._call(lambda: self._producer.commit_transaction(REQUEST_TIMEOUT_S))
        self._open = False
        if renewed:
            raise TransactionFailedError(
                "transaction aborted: the producer failed and was renewed (see its log line)"
            )

    def abort(self) -> None:
        # A renewed producer has no transaction open: the abort is done either way.
        if self._open:
            self._call(lambda: self._producer.abort_transaction(REQUEST_TIMEOUT_S))
        self._open = False

    def _abort_quietly(self) -> None:
        # Void either way: timed out or fenced by the next instance.
        self._open = False
        with contextlib.suppress(ck.KafkaException):
            self._producer.abort_transaction(REQUEST_TIMEOUT_S)

    def close(self) -> None:
        self._producer.flush(5)


class ConfluentPartitionReader:
    def __init__(self, connection: Connection) -> None:
        errors = _ClientErrors()
        self._consumer = ck.Consumer(
            _config(
                connection,
                {
                    "error_cb": errors,
                    # Required by the client; this reader never joins or commits.
                    "group.id": f"{connection.client_id}-reader",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "queued.max.messages.kbytes": QUEUED_MAX_KBYTES,
                },
            )
        )
        _connect(self._consumer, errors, connection)
        self._partition_counts: dict[str, int] = {}

    def end_offset(self, tp: TopicPartition) -> int:
        return self._watermarks(tp)[1]

    def beginning_offset(self, tp: TopicPartition) -> int:
        return self._watermarks(tp)[0]

    def _watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        """The partition's offsets, asked again while its leader moves.

        Right after a broker dies, librdkafka can answer from the dead broker's
        handle (``_DESTROY_BROKER``, ``_TRANSPORT``) or time out before a new
        leader is known; a restore that follows an aborted checkpoint must not
        stop the service for that.
        """
        deadline = time.monotonic() + WATERMARK_RETRY_S
        while True:
            # Each attempt shorter than the whole: a request stuck on the dead
            # broker times out while there is time left to ask the new leader.
            attempt = max(1.0, min(_WATERMARK_ATTEMPT_S, deadline - time.monotonic()))
            try:
                low, high = self._consumer.get_watermark_offsets(_cktp(tp), timeout=attempt)
                return int(low), int(high)
            except ck.KafkaException as exc:
                error = _kafka_error(exc)
                if error is None or not _passing(error) or time.monotonic() >= deadline:
                    raise
                time.sleep(_WATERMARK_BACKOFF_S)

    def partition_count(self, topic: str) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            meta = self._consumer.list_topics(topic, timeout=REQUEST_TIMEOUT_S).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise TransportError(f"topic {topic!r} does not exist (stream-mlops topics create)")
            count = self._partition_counts[topic] = len(meta.partitions)
        return count

    def read(self, tp: TopicPartition, start: int, end: int) -> Iterator[Record]:
        if start >= end:
            return
        self._consumer.assign([_cktp(tp, start)])
        deadline = time.monotonic() + READ_TIMEOUT_S
        try:
            while True:
                # As in the group consumer's poll: consume() waits its whole
                # timeout unless it fills the batch, so a restore of a few
                # records waited 0.5 s per read. Wait for the first message
                # only, take what is already fetched, and stop at ``end - 1``.
                first = self._consumer.poll(_READ_SLICE_S)
                batch = [] if first is None else [first]
                if first is not None:
                    batch += self._consumer.consume(_READ_BATCH - 1, 0)
                for msg in batch:
                    if msg.error() is not None:
                        _raise_for(msg, in_group=False)
                        continue
                    record = _record(msg)
                    if record.offset >= end:
                        return
                    yield record
                    if record.offset == end - 1:
                        return
                # read_committed skips aborted records and markers: the
                # position can reach ``end`` without a record at end - 1.
                position = self._consumer.position([_cktp(tp)])[0].offset
                if position >= end:
                    return
                if time.monotonic() > deadline:
                    where = f"{tp.topic}[{tp.partition}] {start}..{end}"
                    raise TransportError(f"reading {where} stalled at offset {position}")
        finally:
            self._consumer.unassign()

    def close(self) -> None:
        self._consumer.close()


class ConfluentProducer:
    """The idempotent producer, partitioning keys as the Java client does."""

    def __init__(self, connection: Connection) -> None:
        self._errors = _ClientErrors()
        # Appended to by delivery reports, which run inside poll() and flush()
        # on this thread.
        self._failures: list[str] = []
        self._producer = ck.Producer(
            _config(
                connection,
                {
                    "error_cb": self._errors,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    # The Java client's partitioner for keyed records (see the module doc).
                    "partitioner": "murmur2_random",
                    "allow.auto.create.topics": False,
                    "on_delivery": self._delivered,
                    "delivery.report.only.error": True,
                },
            )
        )
        _connect(self._producer, self._errors, connection)
        self._topics: set[str] = set()
        self._unserved = 0

    def _delivered(self, error: ck.KafkaError | None, _msg: Any) -> None:
        if error is not None:
            self._failures.append(error.str())

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        self._raise_failures()
        if topic not in self._topics:
            _partitions_of(self._producer, topic)
            self._topics.add(topic)
        try:
            _produce(self._producer, topic, key, value, partition)
        except ck.KafkaException as exc:
            raise TransportError(f"send to {topic!r} failed: {exc.args[0].str()}") from None
        self._unserved += 1
        if self._unserved >= SERVE_EVERY:
            self._unserved = 0
            self._producer.poll(0)

    def _raise_failures(self) -> None:
        if self._failures:
            count = len(self._failures)
            first = self._failures[0]
            del self._failures[:count]
            raise DeliveryFailedError(count, first)

    def flush(self, timeout_s: float = 30.0) -> None:
        remaining = self._producer.flush(timeout_s)
        self._raise_failures()
        if remaining:
            raise DeliveryFailedError(None, f"{remaining} still queued after {timeout_s:g} s")

    def close(self, timeout_s: float = 5.0) -> None:
        self._producer.flush(timeout_s)


def _timestamp(msg: ck.Message) -> int | None:
    kind, value = msg.timestamp()
    return None if kind == ck.TIMESTAMP_NOT_AVAILABLE else int(value)


class ConfluentTopicReader:
    def __init__(self, connection: Connection, *, read_committed: bool) -> None:
        self._errors = _ClientErrors()
        self._consumer = ck.Consumer(
            _config(
                connection,
                {
                    "error_cb": self._errors,
                    # Required by the client; this reader never joins or commits.
                    "group.id": f"{connection.client_id}-reader",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "isolation.level": "read_committed" if read_committed else "read_uncommitted",
                    "allow.auto.create.topics": False,
                    # A start that retention removed meanwhile: the oldest record left.
                    "auto.offset.reset": "earliest",
                },
            )
        )
        _connect(self._consumer, self._errors, connection)

    def partitions(self, topic: str) -> list[TopicPartition]:
        return _partitions_of(self._consumer, topic)

    def assign(self, starts: Mapping[TopicPartition, StartAt]) -> dict[TopicPartition, int]:
        # Logical starts resolve only when the fetcher starts, after assign()
        # returns: query them now, so "latest" is the end as of this call. The
        # query honours isolation.level (the last stable offset when reading
        # committed records).
        resolved: dict[TopicPartition, int] = {}
        for tp, start in starts.items():
            if isinstance(start, str):  # "earliest" or "latest"
                try:
                    low, high = self._consumer.get_watermark_offsets(
                        _cktp(tp), timeout=REQUEST_TIMEOUT_S, cached=False
                    )
                except ck.KafkaException as exc:
                    raise TransportError(
                        f"offsets of {tp.topic}[{tp.partition}]: {exc.args[0].str()}"
                    ) from None
                resolved[tp] = int(low if start == "earliest" else high)
            else:
                resolved[tp] = start
        self._consumer.assign([_cktp(tp, offset) for tp, offset in resolved.items()])
        return resolved

    def poll(self, timeout_s: float, max_records: int = 500) -> list[TimestampedRecord]:
        # As in the group consumer: wait for the first record only.
        first = self._consumer.poll(timeout_s)
        if first is None:
            return []
        more = self._consumer.consume(max_records - 1, 0) if max_records > 1 else []
        out: list[TimestampedRecord] = []
        for msg in [first, *more]:
            if msg.error() is not None:
                _raise_for(msg, in_group=False)
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            assert topic is not None and partition is not None and offset is not None
            out.append(
                TimestampedRecord(topic, partition, offset, msg.key(), msg.value(), _timestamp(msg))
            )
        return out

    def close(self) -> None:
        self._consumer.close()


def _kafka_error(exc: BaseException) -> ck.KafkaError | None:
    if isinstance(exc, ck.KafkaException) and exc.args and isinstance(exc.args[0], ck.KafkaError):
        return exc.args[0]
    return None


class ConfluentAdmin:
    def __init__(self, connection: Connection) -> None:
        self._errors = _ClientErrors()
        self._admin = ckadmin.AdminClient(_config(connection, {"error_cb": self._errors}))
        _connect(self._admin, self._errors, connection)

    def list_topics(self) -> set[str]:
        try:
            return set(self._admin.list_topics(timeout=REQUEST_TIMEOUT_S).topics)
        except ck.KafkaException as exc:
            raise TransportError(f"listing topics failed: {exc.args[0].str()}") from None

    def create_topics(self, topics: Iterable[TopicSpec]) -> list[str]:
        specs = list(topics)
        if not specs:
            return []
        futures = self._admin.create_topics(
            [
                ckadmin.NewTopic(
                    s.name,
                    num_partitions=s.partitions,
                    replication_factor=s.replication_factor,
                    config=dict(s.configs),
                )
                for s in specs
            ],
            operation_timeout=ADMIN_TIMEOUT_S,
            request_timeout=ADMIN_TIMEOUT_S,
        )
        created: set[str] = set()
        for name, future in futures.items():
            try:
                future.result()
            except ck.KafkaException as exc:
                error = _kafka_error(exc)
                if error is not None and error.code() == ck.KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                reason = error.str() if error is not None else str(exc)
                raise TransportError(f"creating topic {name!r} failed: {reason}") from None
            created.add(name)
        self._wait_for_leaders(created)
        return [s.name for s in specs if s.name in created]

    def _wait_for_leaders(self, names: set[str]) -> None:
        """Until each partition of each topic has a leader, as kafka-python's create waits."""
        deadline = time.monotonic() + ADMIN_TIMEOUT_S
        pending = set(names)
        while pending:
            for name in sorted(pending):
                with contextlib.suppress(ck.KafkaException):
                    meta = self._admin.list_topics(name, timeout=REQUEST_TIMEOUT_S).topics.get(name)
                    if (
                        meta is not None
                        and meta.error is None
                        and meta.partitions
                        and all(p.leader >= 0 for p in meta.partitions.values())
                    ):
                        pending.discard(name)
            if pending:
                if time.monotonic() > deadline:
                    raise TransportError(f"new topics without leaders: {sorted(pending)}")
                time.sleep(0.1)

    def describe_topics(self, names: Iterable[str]) -> dict[str, TopicDescription]:
        wanted = list(names)
        if not wanted:
            return {}
        described_partitions: dict[str, list[Any]] = {}
        futures = self._admin.describe_topics(
            ck.TopicCollection(wanted), request_timeout=ADMIN_TIMEOUT_S
        )
        for name, future in futures.items():
            try:
                described_partitions[name] = list(future.result().partitions)
            except ck.KafkaException as exc:
                error = _kafka_error(exc)
                if error is not None and error.code() == ck.KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise TopicNotFoundError(name) from None
                reason = error.str() if error is not None else str(exc)
                raise TransportError(f"describing topic {name!r} failed: {reason}") from None
        resources = {
            name: ckadmin.ConfigResource(ckadmin.ResourceType.TOPIC, name) for name in wanted
        }
        config_futures = self._admin.describe_configs(
            list(resources.values()), request_timeout=ADMIN_TIMEOUT_S
        )
        described = {}
        for name in wanted:
            try:
                entries = config_futures[resources[name]].result()
            except ck.KafkaException as exc:
                error = _kafka_error(exc)
                reason = error.str() if error is not None else str(exc)
                raise TransportError(f"configs of topic {name!r}: {reason}") from None
            partitions = described_partitions[name]
            described[name] = TopicDescription(
                name=name,
                partitions=len(partitions),
                replication_factor=min((len(p.replicas) for p in partitions), default=0),
                configs={
                    key: entry.value for key, entry in entries.items() if entry.value is not None
                },
            )
        return described

    def delete_topics(self, names: Iterable[str], *, missing_ok: bool = False) -> None:
        wanted = list(names)
        if not wanted:
            return
        futures = self._admin.delete_topics(
            wanted, operation_timeout=ADMIN_TIMEOUT_S, request_timeout=ADMIN_TIMEOUT_S
        )
        for name, future in futures.items():
            try:
                future.result()
            except ck.KafkaException as exc:
                error = _kafka_error(exc)
                if error is not None and error.code() == ck.KafkaError.UNKNOWN_TOPIC_OR_PART:
                    if missing_ok:
                        continue
                    raise TopicNotFoundError(name) from None
                reason = error.str() if error is not None else str(exc)
                raise TransportError(f"deleting topic {name!r} failed: {reason}") from None

    def broker_count(self) -> int:
        try:
            cluster = self._admin.describe_cluster(request_timeout=ADMIN_TIMEOUT_S).result()
        except ck.KafkaException as exc:
            raise TransportError(f"describing the cluster failed: {exc.args[0].str()}") from None
        return len(cluster.nodes)

    def create_acls(self, rules: Iterable[AclRule]) -> None:
        # The client refuses a request that names one binding twice.
        bindings = list(
            dict.fromkeys(
                ckadmin.AclBinding(
                    ckadmin.ResourceType[rule.resource],
                    rule.name,
                    ckadmin.ResourcePatternType[rule.pattern],
                    rule.principal,
                    "*",
                    ckadmin.AclOperation[rule.operation],
                    ckadmin.AclPermissionType.ALLOW,
                )
                for rule in rules
            )
        )
        if not bindings:
            return
        futures = self._admin.create_acls(bindings, request_timeout=ADMIN_TIMEOUT_S)
        for binding, future in futures.items():
            try:
                future.result()
            except ck.KafkaException as exc:
                error = _kafka_error(exc)
                reason = error.str() if error is not None else str(exc)
                raise TransportError(f"ACL binding {binding} refused: {reason}") from None

    def group_offsets(self, group_id: str) -> dict[TopicPartition, int]:
        futures = self._admin.list_consumer_group_offsets(
            [ck.ConsumerGroupTopicPartitions(group_id)], request_timeout=ADMIN_TIMEOUT_S
        )
        try:
            listed = futures[group_id].result()
        except ck.KafkaException as exc:
            error = _kafka_error(exc)
            reason = error.str() if error is not None else str(exc)
            raise TransportError(
                f"reading the offsets of group {group_id!r} failed: {reason}"
            ) from None
        # A partition listed without a commit reads OFFSET_INVALID (-1001).
        return {
            TopicPartition(tp.topic, tp.partition): int(tp.offset)
            for tp in listed.topic_partitions or ()
            if tp.offset >= 0
        }

    def close(self) -> None:
        # The admin client holds no group or transaction: dropping it is enough.
        self._admin.poll(0)


class ConfluentTransport:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def group_consumer(
        self,
        group_id: str,
        *,
        max_poll_interval_ms: int,
        session_timeout_ms: int | None = None,
        instance_id: str | None = None,
    ) -> ConfluentGroupConsumer:
        return ConfluentGroupConsumer(
            self._connection, group_id, max_poll_interval_ms, session_timeout_ms, instance_id
        )

    def transactional_producer(self, transactional_id: str) -> ConfluentTransactionalProducer:
        return ConfluentTransactionalProducer(self._connection, transactional_id)

    def partition_reader(self) -> ConfluentPartitionReader:
        return ConfluentPartitionReader(self._connection)

    def producer(self) -> ConfluentProducer:
        return ConfluentProducer(self._connection)

    def reader(self, *, read_committed: bool = True) -> ConfluentTopicReader:
        return ConfluentTopicReader(self._connection, read_committed=read_committed)

    def admin(self) -> ConfluentAdmin:
        return ConfluentAdmin(self._connection)
