"""What a group consumer's polls return, against a real broker, on both backends.

The records must be exactly what an independent ``read_committed`` consumer
(kafka-python's own, used directly) reads: every field, committed records
only, control records left out, across compressed batches and small polls
that stop mid-batch. On kafka-python the group consumer unpacks records itself
(``kafka_python_records``): this is where that meets real fetch responses.
"""

from __future__ import annotations

import time
import uuid

import kafka
import pytest

from stream_mlops.config import KafkaSettings
from stream_mlops.kafka.backends import BACKENDS, open_transport
from stream_mlops.kafka.transport import AssignmentTracker, GroupConsumer, Record, Transport
from tests.kafka.cluster import temporary_topics, write_transactions

pytestmark = pytest.mark.kafka

# Set timestamps a minute back, not a fixed date: the broker rolls a segment
# whose first record is older than segment.ms (7 days) at the next append and
# deletes it at its next retention check (retention.ms, 7 days), so records
# with a date weeks back vanished from under the test on a fresh broker.
T0_MS = int(time.time() * 1000) - 60_000


@pytest.fixture(params=BACKENDS)
def transport(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Transport:
    return open_transport(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, client=request.param),
        client_id=f"test-group-records-{request.param}",
    )


def write_mixed(servers: str, topic: str) -> int:
    """Gzip batches with headers, absent keys and values and set timestamps, then
    transactions (one aborted), then plain batches: the records committed."""
    producer = kafka.KafkaProducer(
        bootstrap_servers=servers, compression_type="gzip", linger_ms=50, batch_size=1 << 20
    )
    try:
        for i in range(120):
            producer.send(
                topic,
                key=None if i % 7 == 0 else b"k-%d" % i,
                value=None if i % 11 == 1 and i % 7 else b"v" * (i * 3),
                partition=0,
                timestamp_ms=T0_MS + i,
                headers=[("h", b"%d" % i)] if i % 2 else [],
            )
        producer.flush()
    finally:
        producer.close()
    write_transactions(servers, topic, [(b"t-1", True), (b"aborted", False), (b"t-2", True)])
    plain = kafka.KafkaProducer(bootstrap_servers=servers, linger_ms=50)
    try:
        for i in range(80):
            plain.send(topic, key=b"p-%d" % i, value=b"plain-%d" % i, partition=0)
        plain.flush()
    finally:
        plain.close()
    return 120 + 2 + 80


def independent(servers: str, topic: str, count: int) -> list[Record]:
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=servers,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    try:
        tp = kafka.TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        records: list[Record] = []
        deadline = time.monotonic() + 30
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records += [
                    Record(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp)
                    for r in batch
                ]
        return records
    finally:
        consumer.close(autocommit=False)


def read(consumer: GroupConsumer, count: int, max_records: int) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + 30
    while len(records) < count and time.monotonic() < deadline:
        records.extend(consumer.poll(0.5, max_records))
    return records


def test_polls_return_the_committed_records_as_an_independent_consumer_reads_them(
    transport: Transport, kafka_bootstrap: str
) -> None:
    with temporary_topics(kafka_bootstrap, "test-group-records", partitions=1) as (topic,):
        count = write_mixed(kafka_bootstrap, topic)
        expected = independent(kafka_bootstrap, topic, count)
        assert len(expected) == count

        consumer = transport.group_consumer(
            f"test-group-records-{uuid.uuid4().hex[:10]}", max_poll_interval_ms=60_000
        )
        try:
            consumer.subscribe([topic], AssignmentTracker())
            # Polls of 7: most stop inside a batch, the next must go on from there.
            records = read(consumer, count, max_records=7)
        finally:
            consumer.close()

    assert records == expected
    assert all(type(r) is Record for r in records)
    values = [r.value for r in records]
    assert b"aborted" not in values and values.count(b"t-1") == values.count(b"t-2") == 1
    assert records[1] == Record(topic, 0, 1, b"k-1", None, T0_MS + 1)
    assert records[2] == Record(topic, 0, 2, b"k-2", b"v" * 6, T0_MS + 2)
    assert records[0].key is None and records[0].value == b""
    # Transaction markers take offsets too: the offsets skip them, and the aborted record.
    offsets = [r.offset for r in records]
    assert offsets == sorted(set(offsets)) and offsets[-1] > count


def test_the_kafka_python_group_consumer_unpacks_records_itself(kafka_bootstrap: str) -> None:
    from stream_mlops.kafka.backends.kafka_python import KafkaPythonGroupConsumer
    from stream_mlops.kafka.backends.kafka_python_records import LeanPartitionRecords

    transport = open_transport(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, client="kafka-python"),
        client_id="test-group-records-lean",
    )
    consumer = transport.group_consumer("test-lean-unused", max_poll_interval_ms=60_000)
    try:
        assert isinstance(consumer, KafkaPythonGroupConsumer)
        # No ConsumerRecord per record: the fetcher yields the runtime's Record.
        assert consumer._consumer._fetcher.PartitionRecords is LeanPartitionRecords
    finally:
        consumer.close()
