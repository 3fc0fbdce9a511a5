"""The kafka-python 3.x backend (pure Python; the default client)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import kafka
import kafka.errors as kerrors
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.partitioner.default import murmur2
from kafka.structs import MemberState, OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTopicPartition

from stream_mlops.kafka.transport import (
    AssignmentTracker,
    Record,
    TopicPartition,
    TransactionFailedError,
    TransportError,
)

# Transactions left open by a killed process block read_committed readers
# (the last stable offset) until the broker times them out. A restarted engine
# fences them at once through its stable transactional id; for a process that
# never comes back, 10 s bounds the stall, well above our sub-second commits.
TRANSACTION_TIMEOUT_MS = 10_000

# How long a restore read may wait for records it knows exist before it gives
# up with a clear error instead of hanging.
READ_TIMEOUT_S = 60.0


def _ktp(tp: TopicPartition) -> KafkaTopicPartition:
    return KafkaTopicPartition(tp.topic, tp.partition)


class KafkaPythonGroupConsumer:
    def __init__(self, bootstrap_servers: str, group_id: str, client_id: str, **extra: Any) -> None:
        self._consumer = kafka.KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            # Range gives one member the same partition numbers of predictions
            # and outcomes, which the per-partition join needs.
            partition_assignment_strategy=[RangePartitionAssignor],
            **extra,
        )
        self._tracker: AssignmentTracker | None = None
        self._generation: tuple[int, str, frozenset[KafkaTopicPartition]] = (-1, "", frozenset())

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
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        membership = self._consumer.group_metadata()
        # The generation moves at JoinGroup, before SyncGroup brings the
        # assignment: act only on a stable membership, and on the assignment
        # itself, so the runtime never restores from a half-done rebalance.
        if membership.state == MemberState.STABLE and self._tracker is not None:
            seen = (
                membership.generation_id,
                membership.member_id,
                frozenset(self._consumer.assignment()),
            )
            if seen != self._generation:
                self._generation = seen
                self._tracker.assigned()
        return [
            Record(r.topic, r.partition, r.offset, r.key, r.value)
            for records in batches.values()
            for r in records
        ]

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        return {tp: self._consumer.committed(_ktp(tp)) for tp in partitions}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(_ktp(tp), offset)

    def group_metadata(self) -> object:
        return self._consumer.group_metadata()

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class KafkaPythonTransactionalProducer:
    def __init__(self, bootstrap_servers: str, transactional_id: str, client_id: str) -> None:
        self._producer = kafka.KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            transactional_id=transactional_id,
            # Explicit, so that no other setting can silently turn it off.
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            batch_size=256 * 1024,
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
        )
        self._partitions: dict[tuple[str, bytes], int] = {}
        # Fences any earlier instance with this id and aborts what it left open.
        self._producer.init_transactions()

    def begin(self) -> None:
        # Re-read partition counts once per transaction (sub-second), so a topic
        # that gained partitions is followed without a lookup per message.
        self._partitions.clear()
        self._producer.begin_transaction()

    def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        if partition is None and key is not None:
            partition = self._partition(topic, key)
        self._producer.send(topic, value=value, key=key, partition=partition)

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
                self._producer.send_offsets_to_transaction(
                    {_ktp(tp): OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()},
                    group_metadata,
                )
            self._producer.commit_transaction()
        except kerrors.ProducerFencedError as exc:
            raise TransactionFailedError(f"producer fenced: {exc}", fenced=True) from exc
        except kerrors.KafkaError as exc:
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
    def __init__(self, bootstrap_servers: str, client_id: str) -> None:
        self._consumer = kafka.KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
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


class KafkaPythonTransport:
    def __init__(self, bootstrap_servers: str, *, client_id: str) -> None:
        self._bootstrap = bootstrap_servers
        self._client_id = client_id

    def group_consumer(
        self,
        group_id: str,
        *,
        max_poll_interval_ms: int,
        session_timeout_ms: int | None = None,
    ) -> KafkaPythonGroupConsumer:
        # kafka-python warns below a third of the session timeout: a member must
        # get a few heartbeats in before the group gives up on it.
        extra = (
            {}
            if session_timeout_ms is None
            else {
                "session_timeout_ms": session_timeout_ms,
                "heartbeat_interval_ms": min(3000, session_timeout_ms // 3),
            }
        )
        return KafkaPythonGroupConsumer(
            self._bootstrap,
            group_id,
            self._client_id,
            max_poll_interval_ms=max_poll_interval_ms,
            **extra,
        )

    def transactional_producer(self, transactional_id: str) -> KafkaPythonTransactionalProducer:
        return KafkaPythonTransactionalProducer(self._bootstrap, transactional_id, self._client_id)

    def partition_reader(self) -> KafkaPythonPartitionReader:
        return KafkaPythonPartitionReader(self._bootstrap, self._client_id)
