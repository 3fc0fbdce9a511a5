"""The confluent-kafka partition reader while a partition leader moves (broker-free).

A restore follows every aborted checkpoint, and a checkpoint is aborted when a
broker dies under it: right then librdkafka answers the reader's watermark
request from the dead broker's handle (``_DESTROY_BROKER``), or the request
times out on it, and a read sees transport errors until the new leader is known.
None of that may stop the service; an error that asking again cannot cure must
still surface at once. The failover test on a real cluster is
tests/kafka/broker/test_failover.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import confluent_kafka as ck
import pytest

from stream_mlops.kafka.backends import confluent
from stream_mlops.kafka.backends.connection import Connection
from stream_mlops.kafka.transport import TopicPartition, TransportError

TP = TopicPartition("state", 0)


class FakeMessage:
    def __init__(self, offset: int, error: ck.KafkaError | None = None) -> None:
        self._offset, self._error = offset, error

    def error(self) -> ck.KafkaError | None:
        return self._error

    def topic(self) -> str:
        return TP.topic

    def partition(self) -> int:
        return TP.partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"

    def timestamp(self) -> tuple[int, int]:
        return (ck.TIMESTAMP_CREATE_TIME, 1)


class FakeConsumer:
    """A librdkafka consumer whose watermark answers and consumed batches are scripted."""

    watermarks: ClassVar[list[ck.KafkaError | tuple[int, int]]] = []
    batches: ClassVar[list[list[FakeMessage]]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.timeouts: list[float] = []
        self.position_offset = 0
        self._fetched: list[FakeMessage] = []

    def list_topics(self, *args: object, timeout: float = 0) -> object:
        return object()

    def get_watermark_offsets(self, tp: ck.TopicPartition, timeout: float) -> tuple[int, int]:
        self.timeouts.append(timeout)
        answer = FakeConsumer.watermarks.pop(0)
        if isinstance(answer, ck.KafkaError):
            raise ck.KafkaException(answer)
        return answer

    def assign(self, tps: list[ck.TopicPartition]) -> None:
        pass

    def unassign(self) -> None:
        pass

    def poll(self, timeout: float) -> FakeMessage | None:
        """The next scripted batch's first message; consume() then returns the rest."""
        batch = FakeConsumer.batches.pop(0) if FakeConsumer.batches else []
        if not batch:
            return None
        self._fetched = batch[1:]
        self._advance(batch[:1])
        return batch[0]

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        batch, self._fetched = self._fetched, []
        if not batch and timeout > 0:
            batch = FakeConsumer.batches.pop(0) if FakeConsumer.batches else []
        self._advance(batch)
        return batch

    def _advance(self, batch: list[FakeMessage]) -> None:
        for msg in batch:
            if msg.error() is None:
                self.position_offset = msg.offset() + 1

    def position(self, tps: list[ck.TopicPartition]) -> list[ck.TopicPartition]:
        return [ck.TopicPartition(TP.topic, TP.partition, self.position_offset)]

    def close(self) -> None:
        pass


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch) -> confluent.ConfluentPartitionReader:
    monkeypatch.setattr(ck, "Consumer", FakeConsumer)
    monkeypatch.setattr(confluent, "_WATERMARK_BACKOFF_S", 0.0)
    FakeConsumer.watermarks, FakeConsumer.batches = [], []
    return confluent.ConfluentPartitionReader(Connection("k:9092", "test", {}, 1.0))


def test_watermarks_are_asked_again_while_the_dead_brokers_handle_answers(
    reader: confluent.ConfluentPartitionReader,
) -> None:
    FakeConsumer.watermarks = [
        ck.KafkaError(ck.KafkaError._DESTROY_BROKER),
        ck.KafkaError(ck.KafkaError._TRANSPORT),
        ck.KafkaError(ck.KafkaError.NOT_LEADER_FOR_PARTITION),
        (3, 17),
    ]
    assert reader.end_offset(TP) == 17
    assert FakeConsumer.watermarks == []


def test_a_watermark_request_that_times_out_on_the_dead_broker_is_asked_again(
    reader: confluent.ConfluentPartitionReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A timed-out attempt takes all of its timeout: the clock says so.
    now = [0.0]
    monkeypatch.setattr(
        confluent, "time", SimpleNamespace(monotonic=lambda: now[0], sleep=lambda s: None)
    )
    consumer: FakeConsumer = reader._consumer

    def timing_out(tp: ck.TopicPartition, timeout: float) -> tuple[int, int]:
        consumer.timeouts.append(timeout)
        if len(consumer.timeouts) == 1:
            now[0] += timeout
            raise ck.KafkaException(ck.KafkaError(ck.KafkaError._TIMED_OUT))
        return 3, 17

    monkeypatch.setattr(consumer, "get_watermark_offsets", timing_out)
    assert reader.beginning_offset(TP) == 3
    # Each attempt is a slice of the whole retry time, so one that hangs on the
    # dead broker leaves time to ask the new leader.
    assert len(consumer.timeouts) == 2


def test_a_watermark_error_that_asking_again_cannot_cure_is_raised_at_once(
    reader: confluent.ConfluentPartitionReader,
) -> None:
    FakeConsumer.watermarks = [ck.KafkaError(ck.KafkaError.TOPIC_AUTHORIZATION_FAILED), (3, 17)]
    with pytest.raises(ck.KafkaException):
        reader.end_offset(TP)
    assert FakeConsumer.watermarks == [(3, 17)]


def test_watermarks_give_up_after_the_retry_time(
    reader: confluent.ConfluentPartitionReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(confluent, "WATERMARK_RETRY_S", 0.0)
    FakeConsumer.watermarks = [ck.KafkaError(ck.KafkaError._DESTROY_BROKER), (3, 17)]
    with pytest.raises(ck.KafkaException):
        reader.end_offset(TP)


def test_a_read_skips_the_transport_errors_of_a_moving_leader(
    reader: confluent.ConfluentPartitionReader,
) -> None:
    FakeConsumer.batches = [
        [FakeMessage(0), FakeMessage(-1, ck.KafkaError(ck.KafkaError._TRANSPORT))],
        [FakeMessage(-1, ck.KafkaError(ck.KafkaError.NOT_LEADER_FOR_PARTITION))],
        [FakeMessage(1), FakeMessage(2)],
    ]
    assert [r.offset for r in reader.read(TP, 0, 3)] == [0, 1, 2]


def test_a_read_still_raises_an_error_that_asking_again_cannot_cure(
    reader: confluent.ConfluentPartitionReader,
) -> None:
    FakeConsumer.batches = [
        [FakeMessage(-1, ck.KafkaError(ck.KafkaError.TOPIC_AUTHORIZATION_FAILED))],
    ]
    with pytest.raises(TransportError, match="consume failed"):
        list(reader.read(TP, 0, 3))
