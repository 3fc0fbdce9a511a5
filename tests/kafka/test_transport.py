"""The transport's producer, reader and admin roles against a real broker, on both backends.

Each test runs once per client library: the roles must behave the same on
kafka-python and confluent-kafka. What the transport wrote is checked where
it matters with an independent client (kafka-python's own, used directly).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import kafka
import pytest
from kafka.partitioner.default import murmur2
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTopicPartition

from stream_mlops.config import KafkaSettings
from stream_mlops.kafka.backends import BACKENDS, open_transport
from stream_mlops.kafka.transport import (
    Admin,
    DeliveryFailedError,
    RecordTooLargeError,
    TimestampedRecord,
    TopicNotFoundError,
    TopicPartition,
    TopicReader,
    TopicSpec,
    TransactionFailedError,
    Transport,
    TransportError,
)
from tests.kafka.cluster import write_transactions

pytestmark = pytest.mark.kafka


@pytest.fixture(params=BACKENDS)
def transport(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Transport:
    return open_transport(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, client=request.param),
        client_id=f"test-transport-{request.param}",
    )


@pytest.fixture
def admin(transport: Transport) -> Iterator[Admin]:
    client = transport.admin()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def topics(admin: Admin) -> Iterator[list[str]]:
    """Names of topics a test may create; whichever exist at the end are deleted."""
    created: list[str] = []
    try:
        yield created
    finally:
        admin.delete_topics(created, missing_ok=True)


def new_topic(admin: Admin, topics: list[str], partitions: int = 1, **configs: str) -> str:
    name = f"test-transport-{uuid.uuid4().hex[:10]}"
    topics.append(name)
    assert admin.create_topics([TopicSpec(name, partitions, configs)]) == [name]
    return name


def read(reader: TopicReader, count: int, timeout_s: float = 30.0) -> list[TimestampedRecord]:
    """Poll until ``count`` records arrived, then once more to catch any extra."""
    records: list[TimestampedRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        records.extend(reader.poll(0.5))
    records.extend(reader.poll(0.5))
    return records


def test_producer_partitions_keys_like_the_java_client_and_the_reader_reads_them_back(
    transport: Transport, admin: Admin, topics: list[str]
) -> None:
    topic = new_topic(admin, topics, partitions=3)
    keys = [f"txn-{i:04d}".encode() for i in range(60)]
    producer = transport.producer()
    before_ms = int(time.time() * 1000)
    try:
        for key in keys:
            producer.send(topic, key, b"v-" + key)
        producer.send(topic, b"pinned", b"to partition 2", partition=2)
        producer.flush()
    finally:
        producer.close()
    after_ms = int(time.time() * 1000)

    reader = transport.reader()
    try:
        partitions = reader.partitions(topic)
        assert partitions == [TopicPartition(topic, p) for p in range(3)]
        assert reader.assign(dict.fromkeys(partitions, "earliest")) == dict.fromkeys(partitions, 0)
        records = read(reader, len(keys) + 1)
    finally:
        reader.close()

    assert len(records) == len(keys) + 1
    by_key = {r.key: r for r in records}
    for key in keys:
        # The Java client's (and kafka-python's) default partitioner.
        assert by_key[key].partition == (murmur2(key) & 0x7FFFFFFF) % 3, key
        assert by_key[key].value == b"v-" + key
    assert by_key[b"pinned"].partition == 2
    assert all(r.timestamp_ms is not None for r in records)
    assert all(before_ms - 1000 <= r.timestamp_ms <= after_ms + 1000 for r in records)  # type: ignore[operator]
    # Offsets are in order within each partition.
    for p in range(3):
        offsets = [r.offset for r in records if r.partition == p]
        assert offsets == sorted(offsets) == list(range(len(offsets)))


def test_sending_to_a_missing_topic_fails_and_creates_nothing(
    transport: Transport, admin: Admin
) -> None:
    missing = f"test-transport-missing-{uuid.uuid4().hex[:10]}"
    producer = transport.producer()
    started = time.monotonic()
    try:
        with pytest.raises(TopicNotFoundError, match=f"topic '{missing}' does not exist"):
            producer.send(missing, b"k", b"v")
    finally:
        producer.close()
    assert time.monotonic() - started < 15
    assert missing not in admin.list_topics()


def test_a_record_the_broker_refuses_is_reported_by_flush(
    transport: Transport, admin: Admin, topics: list[str]
) -> None:
    topic = new_topic(admin, topics, **{"max.message.bytes": "2000"})
    producer = transport.producer()
    try:
        producer.send(topic, b"k", b"x" * 10_000)
        with pytest.raises(DeliveryFailedError, match="1 record was not delivered") as failed:
            producer.flush(30)
        assert failed.value.failed == 1
        assert "large" in str(failed.value).lower()
    finally:
        producer.close()
    reader = transport.reader()
    try:
        reader.assign(dict.fromkeys(reader.partitions(topic), "earliest"))
        assert reader.poll(2.0) == []
    finally:
        reader.close()


def test_a_record_over_the_client_limit_is_refused_at_send_and_nothing_else_is_harmed(
    transport: Transport, admin: Admin, topics: list[str]
) -> None:
    """Both clients refuse a 2 MB record before queueing it (kafka-python's
    ``max_request_size``, librdkafka's ``message.max.bytes``): one typed error,
    and the transaction or producer goes on as if it had not been sent."""
    topic = new_topic(admin, topics)
    huge = b"x" * 2_000_000
    transactional = transport.transactional_producer(f"test-too-large-{uuid.uuid4().hex[:8]}")
    try:
        transactional.begin()
        transactional.send(topic, b"k", b"before")
        with pytest.raises(RecordTooLargeError, match=f"for '{topic}' is too large") as refused:
            transactional.send(topic, b"k", huge)
        assert refused.value.size == len(huge) + 1
        transactional.send(topic, b"k", b"after")
        transactional.commit({}, None)
    finally:
        transactional.close()
    producer = transport.producer()
    try:
        with pytest.raises(RecordTooLargeError):
            producer.send(topic, b"k", huge)
        producer.send(topic, b"k", b"plain")
        producer.flush(30)
    finally:
        producer.close()
    reader = transport.reader()
    try:
        reader.assign(dict.fromkeys(reader.partitions(topic), "earliest"))
        values = [r.value for r in read(reader, 3)]
    finally:
        reader.close()
    assert values == [b"before", b"after", b"plain"]


def test_reader_starts_where_it_is_told(
    transport: Transport, admin: Admin, topics: list[str]
) -> None:
    topic = new_topic(admin, topics)
    tp = TopicPartition(topic, 0)
    producer = transport.producer()
    reader = transport.reader()
    try:
        for i in range(5):
            producer.send(topic, None, f"old-{i}".encode(), partition=0)
        producer.flush()
        # "latest" is the end as of assign(): records sent after it are read, none before.
        assert reader.assign({tp: "latest"}) == {tp: 5}
        producer.send(topic, None, b"new-0", partition=0)
        producer.flush()
        assert [r.value for r in read(reader, 1)] == [b"new-0"]
        # An offset, and back to the start.
        assert reader.assign({tp: 3}) == {tp: 3}
        assert [r.offset for r in read(reader, 3)] == [3, 4, 5]
        reader.assign({tp: "earliest"})
        assert [r.value for r in read(reader, 6)][:2] == [b"old-0", b"old-1"]
    finally:
        reader.close()
        producer.close()


def test_reader_reads_committed_records_only_unless_told_otherwise(
    transport: Transport, admin: Admin, topics: list[str], kafka_bootstrap: str
) -> None:
    topic = new_topic(admin, topics)
    write_transactions(
        kafka_bootstrap,
        topic,
        [(b"committed-1", True), (b"aborted", False), (b"committed-2", True)],
    )

    seen = {}
    for committed in (True, False):
        reader = transport.reader(read_committed=committed)
        try:
            reader.assign(dict.fromkeys(reader.partitions(topic), "earliest"))
            seen[committed] = [r.value for r in read(reader, 3 if not committed else 2)]
        finally:
            reader.close()
    assert seen[True] == [b"committed-1", b"committed-2"]
    assert seen[False] == [b"committed-1", b"aborted", b"committed-2"]


def test_reader_of_a_missing_topic_fails_and_creates_nothing(
    transport: Transport, admin: Admin
) -> None:
    missing = f"test-transport-missing-{uuid.uuid4().hex[:10]}"
    reader = transport.reader()
    try:
        with pytest.raises(TopicNotFoundError):
            reader.partitions(missing)
    finally:
        reader.close()
    assert missing not in admin.list_topics()


def test_admin_creates_describes_and_deletes_topics(admin: Admin, topics: list[str]) -> None:
    name = f"test-transport-{uuid.uuid4().hex[:10]}"
    topics.append(name)
    spec = TopicSpec(name, 4, {"cleanup.policy": "compact", "retention.ms": "3600000"})
    assert admin.create_topics([spec]) == [name]
    assert name in admin.list_topics()
    # Creating again is not an error and changes nothing.
    assert admin.create_topics([TopicSpec(name, 7)]) == []

    described = admin.describe_topics([name])[name]
    assert (described.name, described.partitions, described.replication_factor) == (name, 4, 1)
    assert described.configs["cleanup.policy"] == "compact"
    assert described.configs["retention.ms"] == "3600000"
    assert "min.insync.replicas" in described.configs  # defaults are reported too

    assert admin.broker_count() >= 1

    admin.delete_topics([name])
    deadline = time.monotonic() + 30
    while name in admin.list_topics() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert name not in admin.list_topics()
    with pytest.raises(TopicNotFoundError):
        admin.delete_topics([name])
    admin.delete_topics([name], missing_ok=True)
    with pytest.raises(TopicNotFoundError):
        admin.describe_topics([name])


def test_admin_names_the_topic_it_cannot_create(admin: Admin, topics: list[str]) -> None:
    bad_config = f"test-transport-{uuid.uuid4().hex[:10]}"
    too_many_replicas = f"test-transport-{uuid.uuid4().hex[:10]}"
    topics.extend([bad_config, too_many_replicas])
    with pytest.raises(TransportError, match=f"creating topic '{bad_config}' failed"):
        admin.create_topics([TopicSpec(bad_config, 1, {"cleanup.policy": "sometimes"})])
    replicas = admin.broker_count() + 1
    with pytest.raises(TransportError, match=f"creating topic '{too_many_replicas}' failed"):
        admin.create_topics([TopicSpec(too_many_replicas, 1, replication_factor=replicas)])
    assert not {bad_config, too_many_replicas} & admin.list_topics()


def test_admin_reads_a_groups_committed_offsets_without_joining_it(
    admin: Admin, topics: list[str], kafka_bootstrap: str
) -> None:
    topic = new_topic(admin, topics, partitions=3)
    group = f"test-transport-group-{uuid.uuid4().hex[:10]}"
    assert admin.group_offsets(group) == {}
    # The commit comes from an independent client; partition 2 gets none.
    committer = kafka.KafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    try:
        committer.commit(
            {
                KafkaTopicPartition(topic, 0): OffsetAndMetadata(7, "", -1),
                KafkaTopicPartition(topic, 1): OffsetAndMetadata(0, "", -1),
            }
        )
    finally:
        committer.close(autocommit=False)
    assert admin.group_offsets(group) == {TopicPartition(topic, 0): 7, TopicPartition(topic, 1): 0}


def test_a_producer_fenced_mid_transaction_is_told_so_at_its_next_call(
    transport: Transport, admin: Admin, topics: list[str]
) -> None:
    """A newer producer with the same transactional id fences the older one while
    its transaction is open. Whichever call of the older one learns it first
    (send, commit or the next begin: it depends on when the background sender
    hears it) raises a fenced ``TransactionFailedError``, never a bare client error,
    so the runtime stops with "another engine took over" instead of a traceback."""
    topic = new_topic(admin, topics)
    transactional_id = f"test-fenced-{uuid.uuid4().hex[:8]}"
    first = transport.transactional_producer(transactional_id)
    second = None
    try:
        first.begin()
        first.send(topic, b"k", b"older")
        second = transport.transactional_producer(transactional_id)
        with pytest.raises(TransactionFailedError) as refused:
            for _ in range(100):
                first.send(topic, b"k", b"older")
                time.sleep(0.05)
            first.commit({}, None)
            first.begin()
        assert refused.value.fenced, refused.value
    finally:
        with contextlib.suppress(Exception):
            first.close()
        if second is not None:
            second.close()


class _CallLog:
    """Stands in front of a librdkafka consumer and records each fetching call."""

    def __init__(self, consumer: object) -> None:
        self._consumer = consumer
        self.calls: list[tuple[str, float, int]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._consumer, name)

    def poll(self, timeout: float) -> object:
        msg = self._consumer.poll(timeout)  # type: ignore[attr-defined]
        self.calls.append(("poll", timeout, 0 if msg is None else 1))
        return msg

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[object]:
        msgs: list[object] = self._consumer.consume(num_messages, timeout)  # type: ignore[attr-defined]
        self.calls.append(("consume", timeout, len(msgs)))
        return msgs


def test_a_partition_reader_returns_at_its_end_without_waiting_for_more(
    kafka_bootstrap: str,
) -> None:
    # confluent-kafka's consume() waits its whole timeout unless the batch
    # fills: a restore that read a few pending records waited 0.5 s per read.
    transport = open_transport(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, client="confluent-kafka"),
        client_id="test-transport-reader",
    )
    admin = transport.admin()
    producer = transport.producer()
    reader = transport.partition_reader()
    topics: list[str] = []
    try:
        topic = new_topic(admin, topics)
        for i in range(6):
            producer.send(topic, f"k{i}".encode(), f"v{i}".encode())
        producer.flush()
        tp = TopicPartition(topic, 0)
        assert reader.end_offset(tp) == 6
        calls = _CallLog(reader._consumer)  # type: ignore[attr-defined]
        reader._consumer = calls  # type: ignore[attr-defined]
        assert [(r.offset, r.value) for r in reader.read(tp, 1, 4)] == [
            (1, b"v1"),
            (2, b"v2"),
            (3, b"v3"),
        ]
        # Every call that waits (a timeout above 0) returns at its first
        # message, and none comes after the record at end - 1 was read.
        assert calls.calls, "the reader fetched nothing"
        assert all(kind == "poll" for kind, timeout, _n in calls.calls if timeout > 0)
        assert calls.calls[-1][0] == "consume" and calls.calls[-1][1] == 0
        assert [r.offset for r in reader.read(tp, 4, 6)] == [4, 5]
    finally:
        reader.close()
        producer.close()
        admin.delete_topics(topics, missing_ok=True)
        admin.close()
