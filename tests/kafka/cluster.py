"""The Kafka cluster these tests talk to, and throwaway topics on it.

``KAFKA_BOOTSTRAP_SERVERS`` names the cluster (default: the managed local
broker's 127.0.0.1:9092). A cluster that does not answer fails the test: a
Kafka test never skips silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import kafka.errors as kerrors
import pytest
from kafka import KafkaAdminClient, KafkaProducer

from stream_mlops.kafka.bootstrap import bootstrap_servers

__all__ = ["admin_client", "bootstrap_servers", "temporary_topics", "write_transactions"]


@contextmanager
def admin_client(servers: str) -> Iterator[KafkaAdminClient]:
    try:
        admin = KafkaAdminClient(bootstrap_servers=servers, client_id="stream-mlops-tests")
    except kerrors.KafkaError as exc:
        pytest.fail(f"no Kafka broker answers at {servers} (KAFKA_BOOTSTRAP_SERVERS): {exc}")
    try:
        yield admin
    finally:
        admin.close()


@contextmanager
def temporary_topics(servers: str, *prefixes: str, partitions: int) -> Iterator[list[str]]:
    """New topics named ``<prefix>-<random>``, deleted afterwards even if the test fails."""
    suffix = uuid.uuid4().hex[:10]
    names = [f"{prefix}-{suffix}" for prefix in prefixes]
    with admin_client(servers) as admin:
        admin.create_topics(
            {name: {"num_partitions": partitions} for name in names}, wait_for_metadata=True
        )
        try:
            yield names
        finally:
            admin.delete_topics(names, raise_errors=False)


def write_transactions(
    servers: str, topic: str, values: list[tuple[bytes, bool]], key: bytes | None = None
) -> None:
    """Each value in a transaction of its own on partition 0, committed or aborted.

    Every value reaches the broker, aborted ones too (an abort before the send
    completes would just drop it): what a read_committed reader must skip.
    """
    producer = KafkaProducer(
        bootstrap_servers=servers,
        transactional_id=f"stream-mlops-tests-{uuid.uuid4().hex[:8]}",
        enable_idempotence=True,
    )
    try:
        producer.init_transactions()
        for value, commit in values:
            producer.begin_transaction()
            producer.send(topic, key=key, value=value, partition=0)
            producer.flush()
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close()
