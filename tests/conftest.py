"""Session-wide Kafka fixtures, as factories (after Quix Streams' test suite).

The cluster is ``KAFKA_BOOTSTRAP_SERVERS`` if set, else the managed local broker's
address (``STREAM_MLOPS_BROKER_PORT`` picks its port). If nothing answers there and
no external cluster is named, the session starts the local broker itself and stops
it at the end; a broker that was already running is left running.

Every name a test creates has a random suffix, so test runs can share a broker,
and the topic factory deletes only the topics it created.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from stream_mlops.kafka.backends import BACKENDS
from stream_mlops.kafka.bootstrap import bootstrap_servers, external_bootstrap_servers
from stream_mlops.kafka.broker import BrokerSettings, LocalBroker
from stream_mlops.kafka.broker.process import metadata_answers
from tests.kafka.streams import Deployment, create_deployment, delete_deployment

TopicFactory = Callable[..., str]
ProducerFactory = Callable[..., KafkaProducer]
ConsumerFactory = Callable[..., KafkaConsumer]


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The bootstrap address of a cluster that answers metadata requests."""
    servers = bootstrap_servers()
    if metadata_answers(servers):
        yield servers
        return
    if external_bootstrap_servers() is not None:
        pytest.fail(f"KAFKA_BOOTSTRAP_SERVERS={servers} does not answer a metadata request")
    broker = LocalBroker(BrokerSettings.from_env())
    started = broker.start()
    try:
        yield servers
    finally:
        if started:
            broker.stop()


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id=unique_name("test"))
    try:
        yield admin
    finally:
        admin.close()


@pytest.fixture(scope="session")
def topic_factory(kafka_admin: KafkaAdminClient) -> Iterator[TopicFactory]:
    """``make(prefix="test", partitions=1, configs=None) -> name`` of a new topic."""
    created: list[str] = []

    def make(
        prefix: str = "test", partitions: int = 1, configs: dict[str, str] | None = None
    ) -> str:
        name = unique_name(prefix)
        kafka_admin.create_topics(
            {name: {"num_partitions": partitions, "configs": configs or {}}},
            wait_for_metadata=True,
        )
        created.append(name)
        return name

    try:
        yield make
    finally:
        if created:
            kafka_admin.delete_topics(created, raise_errors=False)


@pytest.fixture(scope="session")
def producer_factory(kafka_bootstrap: str) -> Iterator[ProducerFactory]:
    """``make(**kafka_python_settings) -> KafkaProducer``; closed at session end."""
    producers: list[KafkaProducer] = []

    def make(**settings: Any) -> KafkaProducer:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, **settings)
        producers.append(producer)
        return producer

    try:
        yield make
    finally:
        for producer in producers:
            producer.close(timeout=5)


@pytest.fixture(scope="session")
def consumer_factory(kafka_bootstrap: str) -> Iterator[ConsumerFactory]:
    """``make(*topics, **kafka_python_settings) -> KafkaConsumer``; closed at session end.

    Defaults suit reading a test topic from its start: earliest offsets, no auto commit.
    """
    consumers: list[KafkaConsumer] = []

    def make(*topics: str, **settings: Any) -> KafkaConsumer:
        options: dict[str, Any] = {
            "auto_offset_reset": "earliest",
            "enable_auto_commit": False,
            **settings,
        }
        consumer = KafkaConsumer(*topics, bootstrap_servers=kafka_bootstrap, **options)
        consumers.append(consumer)
        return consumer

    try:
        yield make
    finally:
        for consumer in consumers:
            consumer.close()


@pytest.fixture
def group_id() -> str:
    return unique_name("test-group")


@pytest.fixture(params=BACKENDS)
def deployment(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """Fresh topics and group per test, once per client backend: same semantics on both.

    The topics get the test module's ``PARTITIONS`` partitions (2 without one). A
    module that runs on one backend only defines its own ``deployment``.
    """
    dep = create_deployment(
        kafka_bootstrap, getattr(request.module, "PARTITIONS", 2), client=request.param
    )
    try:
        yield dep
    finally:
        delete_deployment(dep)
