from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from stream_mlops.config import KafkaTopics
from stream_mlops.kafka.topics import broker_count, create_topics, topic_names, topic_specs


@pytest.fixture
def names(kafka_admin: KafkaAdminClient) -> Iterator[KafkaTopics]:
    """The contract's topics under names unique to this test, deleted afterwards."""
    suffix = uuid.uuid4().hex[:10]
    unique = KafkaTopics(**{f: f"{v}-{suffix}" for f, v in KafkaTopics().model_dump().items()})
    try:
        yield unique
    finally:
        present = set(kafka_admin.list_topics())
        mine = [n for n in topic_names(unique) if n in present]
        if mine:
            kafka_admin.delete_topics(mine, raise_errors=False)


def cleanup_policies(admin: KafkaAdminClient, topics: tuple[str, ...]) -> dict[str, str]:
    resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
    described = admin.describe_configs(resources, config_filter="all")["topic"]
    return {t: described[t]["cleanup.policy"]["value"] for t in topics}


@pytest.mark.kafka
def test_creates_every_topic_with_the_partition_count_and_a_compacted_state_topic(
    kafka_admin: KafkaAdminClient, names: KafkaTopics
) -> None:
    outcomes = create_topics(kafka_admin, topic_specs(names, partitions=4))
    assert [(o.name, o.created, o.partitions) for o in outcomes] == [
        (n, True, 4) for n in topic_names(names)
    ]
    described = {
        t["name"]: len(t["partitions"]) for t in kafka_admin.describe_topics(topic_names(names))
    }
    assert described == dict.fromkeys(topic_names(names), 4)
    policies = cleanup_policies(kafka_admin, topic_names(names))
    assert policies.pop(names.state) == "compact"
    assert set(policies.values()) == {"delete"}


@pytest.mark.kafka
def test_creating_twice_leaves_existing_topics_as_they_are(
    kafka_admin: KafkaAdminClient, names: KafkaTopics
) -> None:
    create_topics(kafka_admin, topic_specs(names, partitions=2))
    again = create_topics(kafka_admin, topic_specs(names, partitions=5))
    assert [(o.created, o.partitions) for o in again] == [(False, 2)] * len(topic_names(names))


@pytest.mark.parametrize(
    ("brokers", "replication", "min_insync"),
    [(None, -1, None), (1, 1, None), (2, 2, None), (3, 3, "2"), (5, 3, "2")],
)
def test_specs_replicate_to_fit_the_cluster(
    brokers: int | None, replication: int, min_insync: str | None
) -> None:
    specs = topic_specs(KafkaTopics(), partitions=3, brokers=brokers)
    assert {s.replication for s in specs} == {replication}
    assert {s.configs.get("min.insync.replicas") for s in specs} == {min_insync}
    # Durability settings never replace the state topic's compaction.
    assert specs[-1].configs["cleanup.policy"] == "compact"


@pytest.mark.kafka
def test_outcomes_report_the_replication_found(
    kafka_admin: KafkaAdminClient, names: KafkaTopics
) -> None:
    brokers = broker_count(kafka_admin)
    outcomes = create_topics(kafka_admin, topic_specs(names, partitions=1, brokers=brokers))
    assert {o.replication for o in outcomes} == {min(3, brokers)}
