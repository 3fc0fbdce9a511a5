from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from stream_mlops.config import KafkaSettings, KafkaTopics
from stream_mlops.kafka.backends import BACKENDS, open_transport
from stream_mlops.kafka.topics import command, create_topics, topic_names, topic_specs
from stream_mlops.kafka.transport import Admin


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


@pytest.fixture(params=BACKENDS)
def admin(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[Admin]:
    """The transport's admin role, once per client library."""
    transport = open_transport(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, client=request.param),
        client_id="test-topics",
    )
    client = transport.admin()
    try:
        yield client
    finally:
        client.close()


def cleanup_policies(admin: KafkaAdminClient, topics: tuple[str, ...]) -> dict[str, str]:
    resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
    described = admin.describe_configs(resources, config_filter="all")["topic"]
    return {t: described[t]["cleanup.policy"]["value"] for t in topics}


@pytest.mark.kafka
def test_creates_every_topic_with_the_partition_count_and_a_compacted_state_topic(
    admin: Admin, kafka_admin: KafkaAdminClient, names: KafkaTopics
) -> None:
    outcomes = create_topics(admin, topic_specs(names, partitions=4))
    assert [(o.name, o.created, o.partitions) for o in outcomes] == [
        (n, True, 4) for n in topic_names(names)
    ]
    # Checked with an independent client.
    described = {
        t["name"]: len(t["partitions"]) for t in kafka_admin.describe_topics(topic_names(names))
    }
    assert described == dict.fromkeys(topic_names(names), 4)
    policies = cleanup_policies(kafka_admin, topic_names(names))
    assert policies.pop(names.state) == "compact"
    assert set(policies.values()) == {"delete"}


@pytest.mark.kafka
def test_creating_twice_leaves_existing_topics_as_they_are(
    admin: Admin, names: KafkaTopics
) -> None:
    create_topics(admin, topic_specs(names, partitions=2))
    again = create_topics(admin, topic_specs(names, partitions=5))
    assert [(o.created, o.partitions) for o in again] == [(False, 2)] * len(topic_names(names))


@pytest.mark.parametrize(
    ("brokers", "replication", "min_insync"),
    [(None, -1, None), (1, 1, None), (2, 2, None), (3, 3, "2"), (5, 3, "2")],
)
def test_specs_replicate_to_fit_the_cluster(
    brokers: int | None, replication: int, min_insync: str | None
) -> None:
    specs = topic_specs(KafkaTopics(), partitions=3, brokers=brokers)
    assert {s.replication_factor for s in specs} == {replication}
    assert {s.configs.get("min.insync.replicas") for s in specs} == {min_insync}
    # Durability settings never replace the state topic's compaction.
    assert specs[-1].configs["cleanup.policy"] == "compact"


@pytest.mark.kafka
def test_outcomes_report_the_replication_found(admin: Admin, names: KafkaTopics) -> None:
    brokers = admin.broker_count()
    outcomes = create_topics(admin, topic_specs(names, partitions=1, brokers=brokers))
    assert {o.replication for o in outcomes} == {min(3, brokers)}


@pytest.mark.kafka
@pytest.mark.parametrize("client", BACKENDS)
def test_the_command_creates_the_configured_topics_with_the_chosen_client(
    client: str,
    kafka_bootstrap: str,
    kafka_admin: KafkaAdminClient,
    names: KafkaTopics,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    config = tmp_path / "c.toml"
    topic_lines = "\n".join(f'{k} = "{v}"' for k, v in names.model_dump().items())
    config.write_text(f"[kafka]\npartitions = 2\n[kafka.topics]\n{topic_lines}\n")
    replicas = min(3, len(kafka_admin.describe_cluster()["brokers"]))
    copies = "1 replica" if replicas == 1 else f"{replicas} replicas"
    assert command("create", config_path=config, client=client) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"created {n}: 2 partitions, {copies}" for n in topic_names(names)]
    assert set(topic_names(names)) <= set(kafka_admin.list_topics())
    assert command("create", partitions=3, config_path=config, client=client) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"exists  {names.predictions}: 2 partitions, {copies} (not 3 partitions: left as it is)"
    )
