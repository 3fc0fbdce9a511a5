"""Two live group members with one instance id (static membership, KIP-345)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from stream_mlops.config import KafkaSettings
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.transport import Admin, GroupConsumer, TopicSpec, TransportError

pytestmark = pytest.mark.kafka


class _Tracker:
    def __init__(self) -> None:
        self.assignments = 0

    def assigned(self) -> None:
        self.assignments += 1

    def revoked(self) -> None:
        pass

    def lost(self) -> None:
        pass


def _member(bootstrap: str, group: str, topic: str) -> tuple[GroupConsumer, _Tracker]:
    transport = open_transport(
        KafkaSettings(bootstrap_servers=bootstrap, client="confluent-kafka"),
        client_id=f"test-static-{uuid.uuid4().hex[:6]}",
    )
    consumer = transport.group_consumer(
        group, max_poll_interval_ms=60_000, session_timeout_ms=10_000, instance_id="slot-0"
    )
    tracker = _Tracker()
    consumer.subscribe([topic], tracker)
    deadline = time.monotonic() + 30
    while not tracker.assignments:
        assert time.monotonic() < deadline, "the member was never assigned"
        consumer.poll(0.2, 10)
    return consumer, tracker


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    admin: Admin = open_transport(
        KafkaSettings(bootstrap_servers=kafka_bootstrap), client_id="test-static-admin"
    ).admin()
    name = f"test-static-{uuid.uuid4().hex[:10]}"
    try:
        admin.create_topics([TopicSpec(name, 1, {})])
        yield name
    finally:
        admin.delete_topics([name], missing_ok=True)
        admin.close()


def test_a_member_fenced_by_a_second_one_with_its_instance_id_says_what_to_do(
    kafka_bootstrap: str, topic: str
) -> None:
    """confluent-kafka: the older member's next polls fail with advice, not librdkafka's text.

    An engine started twice with one --instance-id learns it either here (its
    consumer) or at its producer's next commit (the transactional id); either
    way it stops naming --instance-id (tests/kafka/test_faults.py runs both
    processes). kafka-python's consumer is not told (it keeps polling); its
    producer is.
    """
    group = f"test-static-{uuid.uuid4().hex[:8]}"
    first, _ = _member(kafka_bootstrap, group, topic)
    second, _ = _member(kafka_bootstrap, group, topic)
    try:
        with pytest.raises(TransportError) as fenced:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                first.poll(0.2, 10)
        assert "took over" in str(fenced.value), fenced.value
        assert "--instance-id" in str(fenced.value), fenced.value
    finally:
        first.close()
        second.close()
