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
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import confluent_kafka as ck

from stream_mlops.kafka.transport import (
    AssignmentTracker,
    Record,
    TopicPartition,
    TransactionFailedError,
    TransportError,
)

# Same reasoning as the kafka-python backend: bound the read_committed stall a
# killed engine's open transaction causes, well above our sub-second commits.
TRANSACTION_TIMEOUT_MS = 10_000
REQUEST_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 60.0
SEEK_RETRY_S = 10.0
# Sends between two polls for delivery reports: bounds their queue (a commit
# also drains it) without a poll call per message.
SERVE_EVERY = 1000


def _cktp(tp: TopicPartition, offset: int | None = None) -> ck.TopicPartition:
    if offset is None:
        return ck.TopicPartition(tp.topic, tp.partition)
    return ck.TopicPartition(tp.topic, tp.partition, offset)


def _record(msg: ck.Message) -> Record:
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    # Only error messages lack these; callers filter errors first.
    assert topic is not None and partition is not None and offset is not None
    return Record(topic, partition, offset, msg.key(), msg.value())


def _raise_for(msg: Any) -> None:
    err = msg.error()
    if err is not None and err.code() != ck.KafkaError._PARTITION_EOF:
        raise TransportError(f"consume failed: {err.str()}")


class ConfluentGroupConsumer:
    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        client_id: str,
        max_poll_interval_ms: int,
        session_timeout_ms: int | None = None,
    ) -> None:
        extra = (
            {}
            if session_timeout_ms is None
            else {
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": min(3000, session_timeout_ms // 3),
            }
        )
        self._consumer = ck.Consumer(
            {
                **extra,
                "bootstrap.servers": bootstrap_servers,
                "group.id": group_id,
                "client.id": client_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                # Same partition numbers of both input topics to one member.
                "partition.assignment.strategy": "range",
                "max.poll.interval.ms": max_poll_interval_ms,
            }
        )

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

    def group_metadata(self) -> object:
        return self._consumer.consumer_group_metadata()

    def close(self) -> None:
        self._consumer.close()


class ConfluentTransactionalProducer:
    def __init__(self, bootstrap_servers: str, transactional_id: str, client_id: str) -> None:
        self._producer = ck.Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "client.id": client_id,
                "transactional.id": transactional_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "partitioner": "murmur2_random",
            }
        )
        self._unserved = 0
        self._call(lambda: self._producer.init_transactions(REQUEST_TIMEOUT_S))

    def _call(self, action: Any) -> None:
        """Run a transactional call, mapping librdkafka's error classes."""
        while True:
            try:
                action()
                return
            except ck.KafkaException as exc:
                err = exc.args[0]
                if err.retriable():
                    continue
                if err.fatal():
                    raise TransactionFailedError(
                        f"producer fenced or fatal: {err.str()}", fenced=True
                    ) from exc
                if err.txn_requires_abort():
                    self._abort_quietly()
                    raise TransactionFailedError(f"transaction aborted: {err.str()}") from exc
                raise TransportError(err.str()) from exc

    def begin(self) -> None:
        self._call(self._producer.begin_transaction)

    def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        produce = self._producer.produce
        while True:
            try:
                if partition is None:
                    produce(topic, value, key)
                else:
                    produce(topic, value, key, partition)
                break
            except BufferError:
                # Local queue full: let librdkafka deliver, then retry.
                self._producer.poll(0.05)
        # Serving delivery reports per message cost as much as producing it; we
        # set no callback (failures surface at commit), so drain now and then.
        self._unserved += 1
        if self._unserved >= SERVE_EVERY:
            self._unserved = 0
            self._producer.poll(0)

    def commit(self, offsets: Mapping[TopicPartition, int], group_metadata: object) -> None:
        if offsets:
            tps = [_cktp(tp, off) for tp, off in offsets.items()]
            self._call(
                lambda: self._producer.send_offsets_to_transaction(
                    tps, group_metadata, REQUEST_TIMEOUT_S
                )
            )
        self._call(lambda: self._producer.commit_transaction(REQUEST_TIMEOUT_S))

    def abort(self) -> None:
        self._call(lambda: self._producer.abort_transaction(REQUEST_TIMEOUT_S))

    def _abort_quietly(self) -> None:
        # Void either way: timed out or fenced by the next instance.
        with contextlib.suppress(ck.KafkaException):
            self._producer.abort_transaction(REQUEST_TIMEOUT_S)

    def close(self) -> None:
        self._producer.flush(5)


class ConfluentPartitionReader:
    def __init__(self, bootstrap_servers: str, client_id: str) -> None:
        self._consumer = ck.Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "client.id": client_id,
                # Required by the client; this reader never joins or commits.
                "group.id": f"{client_id}-reader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self._partition_counts: dict[str, int] = {}

    def end_offset(self, tp: TopicPartition) -> int:
        _low, high = self._consumer.get_watermark_offsets(_cktp(tp), timeout=REQUEST_TIMEOUT_S)
        return int(high)

    def beginning_offset(self, tp: TopicPartition) -> int:
        low, _high = self._consumer.get_watermark_offsets(_cktp(tp), timeout=REQUEST_TIMEOUT_S)
        return int(low)

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
                for msg in self._consumer.consume(num_messages=5000, timeout=0.5):
                    if msg.error() is not None:
                        _raise_for(msg)
                        continue
                    record = _record(msg)
                    if record.offset >= end:
                        return
                    yield record
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


class ConfluentTransport:
    def __init__(self, bootstrap_servers: str, *, client_id: str) -> None:
        self._bootstrap = bootstrap_servers
        self._client_id = client_id

    def group_consumer(
        self,
        group_id: str,
        *,
        max_poll_interval_ms: int,
        session_timeout_ms: int | None = None,
    ) -> ConfluentGroupConsumer:
        return ConfluentGroupConsumer(
            self._bootstrap, group_id, self._client_id, max_poll_interval_ms, session_timeout_ms
        )

    def transactional_producer(self, transactional_id: str) -> ConfluentTransactionalProducer:
        return ConfluentTransactionalProducer(self._bootstrap, transactional_id, self._client_id)

    def partition_reader(self) -> ConfluentPartitionReader:
        return ConfluentPartitionReader(self._bootstrap, self._client_id)
