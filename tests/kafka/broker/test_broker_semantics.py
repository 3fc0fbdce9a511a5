"""What the rest of the project relies on from the broker, checked over TCP.

Run against whichever cluster the session uses; on the managed local broker they
prove its configuration (single-node transaction log, idempotent producers).
"""

from __future__ import annotations

import json
import uuid

import pytest
from kafka import TopicPartition

from tests.conftest import ConsumerFactory, ProducerFactory, TopicFactory

MESSAGES = 10_000


def read_to_end(consumer_factory: ConsumerFactory, topic: str, **settings: object) -> list[bytes]:
    """Every visible value in partition 0 of ``topic``, up to its end offset."""
    consumer = consumer_factory(**settings)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    end = consumer.end_offsets([partition])[partition]
    values: list[bytes] = []
    while consumer.position(partition) < end:
        for records in consumer.poll(timeout_ms=1000).values():
            values.extend(record.value for record in records)
    return values


@pytest.mark.kafka
def test_ten_thousand_json_messages_come_back_complete_and_in_order(
    topic_factory: TopicFactory,
    producer_factory: ProducerFactory,
    consumer_factory: ConsumerFactory,
) -> None:
    topic = topic_factory("roundtrip")
    producer = producer_factory(enable_idempotence=True, linger_ms=5)
    sent = [{"seq": i, "event_id": f"txn-{i:06d}", "score": i / MESSAGES} for i in range(MESSAGES)]
    for value in sent:
        producer.send(topic, value=json.dumps(value, separators=(",", ":")).encode())
    producer.flush(timeout=60)

    received = [json.loads(v) for v in read_to_end(consumer_factory, topic)]
    assert len(received) == MESSAGES
    assert received == sent


@pytest.mark.kafka
def test_aborted_transaction_is_invisible_to_read_committed_and_committed_one_visible(
    topic_factory: TopicFactory,
    producer_factory: ProducerFactory,
    consumer_factory: ConsumerFactory,
) -> None:
    topic = topic_factory("txn")
    producer = producer_factory(transactional_id=f"test-txn-{uuid.uuid4().hex}")
    producer.init_transactions()

    producer.begin_transaction()
    producer.send(topic, value=b"aborted-1")
    producer.send(topic, value=b"aborted-2")
    producer.flush()
    producer.abort_transaction()

    producer.begin_transaction()
    producer.send(topic, value=b"committed")
    producer.commit_transaction()

    assert read_to_end(consumer_factory, topic, isolation_level="read_committed") == [b"committed"]
    # The aborted records were written (a read_uncommitted reader sees them), so their
    # absence above is the broker filtering them, not a send that never happened.
    assert read_to_end(consumer_factory, topic, isolation_level="read_uncommitted") == [
        b"aborted-1",
        b"aborted-2",
        b"committed",
    ]
