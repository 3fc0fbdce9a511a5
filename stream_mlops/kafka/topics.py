"""The topics of the interface contract, and ``stream-mlops topics create``.

Creating is idempotent: a topic that already exists is left as it is (Kafka
cannot shrink partitions, and growing them would move keys between partitions),
and a partition count or replication factor that differs from the requested one
is reported. Replication follows the cluster: min(3, brokers) replicas, and with
three ``min.insync.replicas=2``, so an acknowledged write survives one broker's loss.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream_mlops.config import ConfigError, KafkaTopics, load_settings
from stream_mlops.kafka.bootstrap import configured_bootstrap_servers

# Three copies survive one broker's loss with two in sync; more buys little on the
# clusters this serves and costs every write a further replica.
MAX_REPLICATION = 3
# The broker's own default.replication.factor, where the cluster size is not known.
BROKER_DEFAULT_REPLICATION = -1
MIN_INSYNC_WITH_FULL_REPLICATION = 2
_TIMEOUT_MS = 30_000
# A broker that is up answers within milliseconds; 10 s covers one still starting
# without making "no broker at all" a half-minute wait.
_CONNECT_TIMEOUT_MS = 10_000


def topic_names(topics: KafkaTopics) -> tuple[str, ...]:
    """Every topic of the contract, in the config's order.

    >>> topic_names(KafkaTopics())[-1]
    'stream-mlops-state'
    """
    return tuple(str(name) for name in topics.model_dump().values())


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: Mapping[str, str]
    #: BROKER_DEFAULT_REPLICATION: whatever the broker's default.replication.factor is.
    replication: int = BROKER_DEFAULT_REPLICATION


def replication_for(brokers: int) -> int:
    """min(3, brokers): every broker holds a copy, up to three.

    >>> [replication_for(n) for n in (1, 2, 3, 6)]
    [1, 2, 3, 3]
    """
    if brokers < 1:
        raise ValueError(f"a cluster has at least one broker, got {brokers}")
    return min(MAX_REPLICATION, brokers)


def topic_specs(names: KafkaTopics, partitions: int, brokers: int | None = None) -> list[TopicSpec]:
    """What to create: every topic with the same partition count, the state topic compacted,
    replicated to fit a cluster of ``brokers`` (None: the broker's default replication).

    One count for all keeps predictions and outcomes co-partitioned (the join relies
    on an event id landing in the same partition number on both), and the state
    topic's partition id matches the input partition it snapshots.

    >>> [(s.name, s.partitions, dict(s.configs)) for s in topic_specs(KafkaTopics(), 2)][-2:]
    [('dead-letters', 2, {}), ('stream-mlops-state', 2, {'cleanup.policy': 'compact'})]
    >>> state = topic_specs(KafkaTopics(), 3, brokers=3)[-1]
    >>> state.replication, dict(state.configs)
    (3, {'cleanup.policy': 'compact', 'min.insync.replicas': '2'})
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    replication = BROKER_DEFAULT_REPLICATION if brokers is None else replication_for(brokers)
    durable = (
        {"min.insync.replicas": str(MIN_INSYNC_WITH_FULL_REPLICATION)}
        if replication == MAX_REPLICATION
        else {}
    )
    specs = []
    for name in topic_names(names):
        configs = {"cleanup.policy": "compact"} if name == names.state else {}
        specs.append(TopicSpec(name, partitions, {**configs, **durable}, replication))
    return specs


@dataclass(frozen=True)
class TopicOutcome:
    name: str
    created: bool
    partitions: int
    replication: int = 1


def create_topics(admin: Any, specs: Iterable[TopicSpec]) -> list[TopicOutcome]:
    """Create the topics that do not exist yet; report every topic's partition count.

    ``admin`` is a kafka-python ``KafkaAdminClient``.
    """
    specs = list(specs)
    existing = set(admin.list_topics())
    missing = [s for s in specs if s.name not in existing]
    if missing:
        admin.create_topics(
            {
                s.name: {
                    "num_partitions": s.partitions,
                    "replication_factor": s.replication,
                    "configs": dict(s.configs),
                }
                for s in missing
            },
            timeout_ms=_TIMEOUT_MS,
            wait_for_metadata=True,
        )
    described = {t["name"]: t["partitions"] for t in admin.describe_topics([s.name for s in specs])}
    return [
        TopicOutcome(
            s.name,
            s.name not in existing,
            len(described[s.name]),
            # The weakest partition is what a broker's loss can cost.
            min(len(p["replica_nodes"]) for p in described[s.name]),
        )
        for s in specs
    ]


def broker_count(admin: Any) -> int:
    """How many brokers the cluster behind ``admin`` (kafka-python) has."""
    return len(admin.describe_cluster()["brokers"])


def command(action: str, partitions: int | None = None, config_path: Path | None = None) -> int:
    """Run ``topics create`` and return the process exit code."""
    if action != "create":
        raise ValueError(f"unknown topics action {action!r}")
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        print(f"stream-mlops topics create: {exc}", file=sys.stderr)
        return 2
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    # Three partitions by default (config `[kafka] partitions`): a group of up to
    # three engines can share the load on a small cluster.
    count = settings.kafka.partitions if partitions is None else partitions
    if count < 1:
        print(
            f"stream-mlops topics create: partitions must be at least 1, got {count}",
            file=sys.stderr,
        )
        return 2
    servers = configured_bootstrap_servers(settings)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=servers,
            client_id="stream-mlops-topics",
            bootstrap_timeout_ms=_CONNECT_TIMEOUT_MS,
        )
    except KafkaError:
        print(
            f"stream-mlops topics create: no Kafka answers at {servers} "
            "(start one with `stream-mlops broker start`, or set KAFKA_BOOTSTRAP_SERVERS)",
            file=sys.stderr,
        )
        return 1
    try:
        specs = topic_specs(settings.kafka.topics, count, broker_count(admin))
        outcomes = create_topics(admin, specs)
    except KafkaError as exc:
        print(f"stream-mlops topics create: {exc!r}", file=sys.stderr)
        return 1
    finally:
        admin.close()
    replication = specs[0].replication
    for outcome in outcomes:
        verb = "created" if outcome.created else "exists "
        notes = []
        if outcome.partitions != count:
            notes.append(f"not {count} partitions: left as it is")
        if outcome.replication < replication:
            notes.append(
                f"fewer than {replication} replicas: a broker's loss can lose or stall it; "
                "reassign with kafka-reassign-partitions.sh"
            )
        note = f" ({'; '.join(notes)})" if notes else ""
        print(
            f"{verb} {outcome.name}: {outcome.partitions} partitions, "
            f"{outcome.replication} replicas{note}"
        )
    return 0
