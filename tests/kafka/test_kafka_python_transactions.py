"""The kafka-python transactional producer when a transactional call hangs (broker-free).

kafka-python waits for ``send_offsets_to_transaction`` and ``commit_transaction``
without a bound. In a rolling restart the engine's commit waited for minutes on
the stopped broker that had been its transaction coordinator ("Node
coordinator-3 not ready"), while the two others could serve it. The backend now
waits a bounded time, then renews the producer (whose ``init_transactions``
finds the coordinator afresh and aborts what was open, as a restart would) and
reports the transaction as aborted; the runtime resumes from the last commit.
The failover test on a real cluster is tests/kafka/broker/test_failover.py.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import kafka
import pytest

from stream_mlops.kafka.backends import kafka_python
from stream_mlops.kafka.backends.connection import Connection
from stream_mlops.kafka.transport import TopicPartition, TransactionFailedError


class Result:
    """kafka-python's TransactionalRequestResult: a latch, set when the broker answers."""

    def __init__(self, answered: bool) -> None:
        self._latch = threading.Event()
        if answered:
            self._latch.set()

    def wait(self, timeout_ms: float | None = None) -> bool:
        return self._latch.wait(None if timeout_ms is None else timeout_ms / 1000)


class FakeManager:
    def __init__(self, producer: FakeProducer) -> None:
        self.producer = producer
        #: a background request of the open transaction failed (kafka-python's ABORTABLE_ERROR)
        self.abortable = False
        self._last_error: object = None

    def has_abortable_error(self) -> bool:
        return self.abortable

    def send_offsets_to_transaction(self, offsets: object, group_metadata: object) -> Result:
        self.producer.calls.append("offsets")
        return Result(answered=not self.producer.hangs)

    def begin_commit(self) -> Result:
        self.producer.calls.append("commit")
        return Result(answered=not self.producer.hangs)


class FakeSender:
    def wakeup(self) -> None:
        pass


class FakeProducer:
    """A KafkaProducer whose n-th instance never hears back from its coordinator."""

    made: ClassVar[list[FakeProducer]] = []
    hanging: ClassVar[set[int]] = set()

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.hangs = len(FakeProducer.made) in FakeProducer.hanging
        self.calls: list[str] = []
        self.closed = False
        self._transaction_manager = FakeManager(self)
        self._sender = FakeSender()
        FakeProducer.made.append(self)

    def init_transactions(self) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    # kafka-python's own methods: they wait without a bound.
    def send_offsets_to_transaction(self, offsets: object, group_metadata: object) -> None:
        self._transaction_manager.send_offsets_to_transaction(offsets, group_metadata).wait()

    def commit_transaction(self) -> None:
        self._transaction_manager.begin_commit().wait()

    def close(self, timeout: float | None = None) -> None:
        self.closed = True

    def send(self, topic: str, value: bytes, key: bytes | None, partition: int | None) -> None:
        self.calls.append("send")
        if self._transaction_manager.abortable:
            # kafka-python's words, from TransactionManager._fail_if_not_ready_for_send
            raise kafka.errors.KafkaError(
                "Cannot perform send because at least one previous transactional or"
                " idempotent request has failed with errors."
            )

    def abort_transaction(self) -> None:
        self.calls.append("abort")
        self._transaction_manager.abortable = False


@pytest.fixture
def producers(monkeypatch: pytest.MonkeyPatch) -> type[FakeProducer]:
    FakeProducer.made = []
    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    monkeypatch.setattr(kafka_python, "TRANSACTION_CALL_TIMEOUT_MS", 50)
    return FakeProducer


def transactional() -> kafka_python.KafkaPythonTransactionalProducer:
    connection = Connection("k:9092", "test", {}, connect_timeout_s=1.0)
    return kafka_python.KafkaPythonTransactionalProducer(connection, "engine-a")


@pytest.mark.timeout(30)
def test_a_commit_that_hangs_renews_the_producer_and_aborts(
    producers: type[FakeProducer],
) -> None:
    producers.hanging = {0}
    producer = transactional()
    producer.begin()
    with pytest.raises(TransactionFailedError, match="did not complete") as failed:
        producer.commit({TopicPartition("outcomes", 0): 5}, object())
    assert not failed.value.fenced
    first, second = producers.made
    assert first.closed
    # The new producer fenced the old epoch (aborting its transaction) and is ready.
    assert second.calls == ["init"]
    producer.begin()
    producer.commit({TopicPartition("outcomes", 0): 5}, object())
    assert second.calls == ["init", "begin", "offsets", "commit"]


def test_a_commit_that_answers_keeps_the_producer(producers: type[FakeProducer]) -> None:
    producers.hanging = set()
    producer = transactional()
    producer.begin()
    producer.commit({TopicPartition("outcomes", 0): 5}, object())
    producer.begin()
    producer.commit({}, object())
    [only] = producers.made
    assert only.calls == ["init", "begin", "offsets", "commit", "begin", "commit"]


def test_a_send_refused_after_the_transaction_failed_is_an_abortable_failure(
    producers: type[FakeProducer],
) -> None:
    producers.hanging = set()
    producer = transactional()
    producer.begin()
    producer.send("alerts", b"k", b"v", 0)
    [only] = producers.made
    only._transaction_manager.abortable = True  # e.g. OutOfOrderSequenceNumber, leader lost
    with pytest.raises(TransactionFailedError, match="transaction aborted") as failed:
        producer.send("alerts", b"k", b"v", 0)
    assert not failed.value.fenced
    producer.abort()
    producer.begin()
    producer.send("alerts", b"k", b"v", 0)
    assert only.calls == ["init", "begin", "send", "send", "abort", "begin", "send"]
