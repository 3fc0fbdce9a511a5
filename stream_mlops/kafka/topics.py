"""The topics of the interface contract, and ``stream-mlops topics create``.

Creating is idempotent: a topic that already exists is left as it is (Kafka
cannot shrink partitions, and growing them would move keys between partitions),
and a partition count or replication factor that differs from the requested one
is reported. Replication follows the cluster: min(3, brokers) replicas, and with
three ``min.insync.replicas=2``, so an acknowledged write survives one broker's
loss. The topics are created through the transport's admin role, with the
configured client library and connection settings.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stream_mlops.config import ConfigError, KafkaTopics, load_settings
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.bootstrap import connection_settings
from stream_mlops.kafka.transport import Admin, BrokerUnreachableError, TopicSpec, TransportError

__all__ = [
    "TopicOutcome",
    "TopicSpec",
    "command",
    "create_topics",
    "replication_for",
    "topic_names",
    "topic_specs",
]

# Three copies survive one broker's loss with two in sync; more buys little on the
# clusters this serves and costs every write a further replica.
MAX_REPLICATION = 3
# The broker's own default.replication.factor, where the cluster size is not known.
BROKER_DEFAULT_REPLICATION = -1
MIN_INSYNC_WITH_FULL_REPLICATION = 2


def topic_names(topics: KafkaTopics) -> tuple[str, ...]:
    """Every topic of the contract, in the config's order.

    >>> topic_names(KafkaTopics())[-1]
    'stream-mlops-state'
    """
    return tuple(str(name) for name in topics.model_dump().values())


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
    [('performance-estimates', 2, {}), ('stream-mlops-state', 2, {'cleanup.policy': 'compact'})]
    >>> state = topic_specs(KafkaTopics(), 3, brokers=3)[-1]
    >>> state.replication_factor, dict(state.configs)
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
    #: the fewest replicas any of its partitions has: what a broker's loss can cost
    replication: int


def create_topics(admin: Admin, specs: Iterable[TopicSpec]) -> list[TopicOutcome]:
    """Create the topics that do not exist yet; report every topic's partitions and replicas."""
    specs = list(specs)
    created = set(admin.create_topics(specs))
    described = admin.describe_topics([s.name for s in specs])
    return [
        TopicOutcome(
            s.name,
            s.name in created,
            described[s.name].partitions,
            described[s.name].replication_factor,
        )
        for s in specs
    ]


def command(
    action: str,
    partitions: int | None = None,
    config_path: Path | None = None,
    client: str | None = None,
) -> int:
    """Run ``topics create`` and return the process exit code."""
    if action != "create":
        raise ValueError(f"unknown topics action {action!r}")
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        print(f"stream-mlops topics create: {exc}", file=sys.stderr)
        return 2
    # Three partitions by default (config `[kafka] partitions`): a group of up to
    # three engines can share the load on a small cluster.
    count = settings.kafka.partitions if partitions is None else partitions
    try:
        topic_specs(settings.kafka.topics, count)  # checks the count before connecting
        transport = open_transport(
            connection_settings(settings, client=client), client_id="stream-mlops-topics"
        )
    except ValueError as exc:
        print(f"stream-mlops topics create: {exc}", file=sys.stderr)
        return 2
    try:
        admin = transport.admin()
    except BrokerUnreachableError as exc:
        print(
            f"stream-mlops topics create: {exc} "
            "(start one with `stream-mlops broker start`, or set KAFKA_BOOTSTRAP_SERVERS)",
            file=sys.stderr,
        )
        return 1
    except TransportError as exc:  # e.g. the cluster refused our login
        print(f"stream-mlops topics create: {exc}", file=sys.stderr)
        return 1
    try:
        specs = topic_specs(settings.kafka.topics, count, admin.broker_count())
        outcomes = create_topics(admin, specs)
    except TransportError as exc:
        print(f"stream-mlops topics create: {exc}", file=sys.stderr)
        return 1
    finally:
        admin.close()
    replication = specs[0].replication_factor
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
        copies = "1 replica" if outcome.replication == 1 else f"{outcome.replication} replicas"
        print(f"{verb} {outcome.name}: {outcome.partitions} partitions, {copies}{note}")
    return 0
