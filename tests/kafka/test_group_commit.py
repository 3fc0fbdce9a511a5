"""A group member that commits its own offsets, and pauses: both backends, a real broker.

What the notifier needs of ``GroupConsumer`` beyond the transactional roles:
``commit`` stores offsets that a later member of the group starts from, and
``pause`` stops fetching while polls go on.
"""

from __future__ import annotations

import time
import uuid

import pytest

from stream_mlops.config import KafkaSettings
from stream_mlops.kafka.backends import BACKENDS, open_transport
from stream_mlops.kafka.transport import (
    AssignmentTracker,
    GroupConsumer,
    Record,
    TopicPartition,
    Transport,
)
from tests.kafka.cluster import temporary_topics, write_transactions

pytestmark = pytest.mark.kafka


@pytest.fixture(params=BACKENDS)
def transport(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Transport:
    return open_transport(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, client=request.param),
        client_id=f"test-group-commit-{request.param}",
    )


def joined(transport: Transport, group: str, topic: str) -> tuple[GroupConsumer, AssignmentTracker]:
    consumer = transport.group_consumer(group, max_poll_interval_ms=60_000, session_timeout_ms=6000)
    tracker = AssignmentTracker()
    consumer.subscribe([topic], tracker)
    return consumer, tracker


def read(consumer: GroupConsumer, count: int, timeout_s: float = 30.0) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        records.extend(consumer.poll(0.5, 100))
    return records


def test_committed_offsets_are_where_the_next_member_starts(
    transport: Transport, kafka_bootstrap: str
) -> None:
    group = f"test-group-commit-{uuid.uuid4().hex[:10]}"
    with temporary_topics(kafka_bootstrap, "test-group-commit", partitions=1) as (topic,):
        write_transactions(kafka_bootstrap, topic, [(b"%d" % i, True) for i in range(5)])
        tp = TopicPartition(topic, 0)
        first, _ = joined(transport, group, topic)
        try:
            records = read(first, 5)
            assert [r.value for r in records] == [b"0", b"1", b"2", b"3", b"4"]
            after_third = records[2].offset + 1
            first.commit({tp: after_third})
            assert first.committed([tp]) == {tp: after_third}
            first.commit({})  # nothing to store: no request, no error
        finally:
            first.close()
        second, _ = joined(transport, group, topic)
        try:
            assert [r.value for r in read(second, 2)] == [b"3", b"4"]
        finally:
            second.close()


def test_a_paused_partition_yields_nothing_until_resumed(
    transport: Transport, kafka_bootstrap: str
) -> None:
    group = f"test-group-pause-{uuid.uuid4().hex[:10]}"
    with temporary_topics(kafka_bootstrap, "test-group-pause", partitions=1) as (topic,):
        write_transactions(kafka_bootstrap, topic, [(b"before", True)])
        consumer, _ = joined(transport, group, topic)
        try:
            assert [r.value for r in read(consumer, 1)] == [b"before"]
            tp = TopicPartition(topic, 0)
            consumer.pause([tp])
            write_transactions(kafka_bootstrap, topic, [(b"while paused", True)])
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                assert consumer.poll(0.3, 100) == []
            consumer.resume([tp])
            assert [r.value for r in read(consumer, 1)] == [b"while paused"]
        finally:
            consumer.close()


def test_a_member_polled_without_waiting_joins_in_one_rebalance(kafka_bootstrap: str) -> None:
    """The runtime polls with a zero timeout when a checkpoint is due (often, on a
    loaded machine). kafka-python 3.0.12 dropped a join that completed between two
    such polls and sent another JoinGroup: the group rebalanced again and again
    (generation 17 after 2.5 s here) instead of once. (librdkafka joins on its own
    thread; the generation is only readable on kafka-python.)"""
    transport = open_transport(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, client="kafka-python"),
        client_id="test-group-join",
    )
    group = f"test-group-join-{uuid.uuid4().hex[:10]}"
    with temporary_topics(kafka_bootstrap, "test-group-join", partitions=2) as (topic,):
        consumer = transport.group_consumer(
            group, max_poll_interval_ms=60_000, session_timeout_ms=6000, instance_id="a"
        )
        tracker = AssignmentTracker()
        consumer.subscribe([topic], tracker)
        try:
            deadline = time.monotonic() + 30
            while not tracker.take():
                assert time.monotonic() < deadline, "not assigned within 30 s"
                consumer.poll(0.0, 100)
                time.sleep(0.02)  # what a checkpoint between two polls takes
            assert consumer.assignment() == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
            generation = consumer.group_metadata().generation_id  # type: ignore[attr-defined]
            # One JoinGroup, or two when the first saw the new topic's metadata
            # change under it; not one per poll.
            assert generation <= 2
        finally:
            consumer.close()
