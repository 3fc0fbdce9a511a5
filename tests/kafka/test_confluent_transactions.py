"""The confluent-kafka transactional producer after a fatal error (broker-free).

librdkafka cannot leave a fatal state. When a partition leader dies, a
transaction's messages may time out before a new leader is elected, and the
abort that follows can end in the fatal INVALID_TXN_STATE; the transactional id
is still ours, so the backend renews the producer (its init_transactions aborts
what was open) and reports the transaction as aborted, and the runtime resumes
from the last commit. A fenced producer stays fatal: another process owns the id.
The failover test on a real cluster is tests/kafka/broker/test_failover.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

import confluent_kafka as ck
import pytest

from stream_mlops.kafka.backends import confluent
from stream_mlops.kafka.backends.connection import Connection
from stream_mlops.kafka.transport import TopicPartition, TransactionFailedError


class FakeProducer:
    """A librdkafka producer whose n-th instance fails commit_transaction as told."""

    made: ClassVar[list[FakeProducer]] = []
    failures: ClassVar[list[int | None]] = []
    #: the first instance's produce() fails with (code, fatal)
    refusal: ClassVar[tuple[int, bool] | None] = None

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        index = len(FakeProducer.made)
        self.fail_with = FakeProducer.failures[index] if index < len(self.failures) else None
        self.calls: list[str] = []
        FakeProducer.made.append(self)

    def list_topics(self, timeout: float) -> object:
        return object()

    def init_transactions(self, timeout: float) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def send_offsets_to_transaction(self, *args: object) -> None:
        self.calls.append("offsets")

    def commit_transaction(self, timeout: float) -> None:
        self.calls.append("commit")
        if self.fail_with is not None:
            raise ck.KafkaException(ck.KafkaError(self.fail_with, "refused", fatal=True))

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort")

    def produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        self.calls.append("produce")
        if self.refusal is not None and self is FakeProducer.made[0]:
            code, fatal = self.refusal
            raise ck.KafkaException(ck.KafkaError(code, "Erroneous state", fatal=fatal))

    def purge(self) -> None:
        self.calls.append("purge")

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> type[FakeProducer]:
    FakeProducer.made = []
    FakeProducer.failures = []
    FakeProducer.refusal = None
    monkeypatch.setattr(ck, "Producer", FakeProducer)
    return FakeProducer


def transactional() -> confluent.ConfluentTransactionalProducer:
    connection = Connection("k:9092", "test", {}, connect_timeout_s=1.0)
    return confluent.ConfluentTransactionalProducer(connection, "engine-a")


def test_a_fatal_error_that_is_no_fencing_renews_the_producer_and_aborts(
    producer: type[FakeProducer],
) -> None:
    producer.failures = [ck.KafkaError.INVALID_TXN_STATE]
    tx = transactional()
    tx.begin()
    with pytest.raises(TransactionFailedError) as raised:
        tx.commit({TopicPartition("outcomes", 0): 10}, group_metadata=object())
    assert not raised.value.fenced
    first, second = producer.made
    assert first.calls == ["init", "begin", "offsets", "commit", "purge"]
    # The same transactional id, initialised anew: the broker aborts what was open.
    assert second.config["transactional.id"] == "engine-a"
    assert second.calls == ["init"]
    # The runtime carries on with the new producer.
    tx.begin()
    tx.commit({TopicPartition("outcomes", 0): 10}, group_metadata=object())
    assert second.calls == ["init", "begin", "offsets", "commit"]


def test_a_fenced_producer_stays_fenced(producer: type[FakeProducer]) -> None:
    producer.failures = [ck.KafkaError._FENCED]
    tx = transactional()
    tx.begin()
    with pytest.raises(TransactionFailedError) as raised:
        tx.commit({}, group_metadata=object())
    assert raised.value.fenced
    assert len(producer.made) == 1


def test_a_send_refused_after_the_transaction_failed_is_an_abortable_failure(
    producer: type[FakeProducer],
) -> None:
    """librdkafka refuses records ("Erroneous state") once the open transaction failed
    in the background (e.g. a lost leader: "skipped sequence numbers ... requires epoch
    bump"); the caller aborts (the epoch bump) and goes on with the same producer."""
    producer.refusal = (ck.KafkaError._STATE, False)
    tx = transactional()
    tx.begin()
    with pytest.raises(TransactionFailedError, match="refuses records") as raised:
        tx.send("alerts", b"k", b"v")
    assert not raised.value.fenced
    tx.abort()
    [only] = producer.made
    assert only.calls == ["init", "begin", "produce", "abort"]


def test_a_send_refused_by_a_fatal_error_renews_the_producer(
    producer: type[FakeProducer],
) -> None:
    producer.refusal = (ck.KafkaError._FATAL, True)
    tx = transactional()
    tx.begin()
    with pytest.raises(TransactionFailedError, match="renewed") as raised:
        tx.send("alerts", b"k", b"v")
    assert not raised.value.fenced
    tx.abort()  # nothing is open on the new producer: no call
    tx.begin()
    tx.send("alerts", b"k", b"v")
    first, second = producer.made
    assert first.calls == ["init", "begin", "produce", "purge"]
    assert second.calls == ["init", "begin", "produce"]
