"""The topics of the interface contract, and ``stream-mlops topics create``.

Creating is idempotent: a topic that already exists is left as it is (Kafka
cannot shrink partitions, and growing them would move keys between partitions),
and a partition count that differs from the requested one is reported. The
topics are created through the transport's admin role, with the configured
client library and connection settings.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stream_mlops.config import ConfigError, KafkaTopics, load_settings
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.bootstrap import connection_settings
from stream_mlops.kafka.transport import Admin, TopicSpec, TransportError

__all__ = ["TopicOutcome", "TopicSpec", "command", "create_topics", "topic_names", "topic_specs"]


def topic_names(topics: KafkaTopics) -> tuple[str, ...]:
    """Every topic of the contract, in the config's order.

    >>> topic_names(KafkaTopics())[-1]
    'stream-mlops-state'
    """
    return tuple(str(name) for name in topics.model_dump().values())


def topic_specs(names: KafkaTopics, partitions: int) -> list[TopicSpec]:
    """What to create: every topic with the same partition count, the state topic compacted.

    One count for all keeps predictions and outcomes co-partitioned (the join relies
    on an event id landing in the same partition number on both), and the state
    topic's partition id matches the input partition it snapshots.

    >>> [(s.name, s.partitions, dict(s.configs)) for s in topic_specs(KafkaTopics(), 2)][-2:]
    [('dead-letters', 2, {}), ('stream-mlops-state', 2, {'cleanup.policy': 'compact'})]
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    specs = []
    for name in topic_names(names):
        configs = {"cleanup.policy": "compact"} if name == names.state else {}
        specs.append(TopicSpec(name, partitions, configs))
    return specs


@dataclass(frozen=True)
class TopicOutcome:
    name: str
    created: bool
    partitions: int


def create_topics(admin: Admin, specs: Iterable[TopicSpec]) -> list[TopicOutcome]:
    """Create the topics that do not exist yet; report every topic's partition count."""
    specs = list(specs)
    created = set(admin.create_topics(specs))
    described = admin.describe_topics([s.name for s in specs])
    return [TopicOutcome(s.name, s.name in created, described[s.name].partitions) for s in specs]


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
        specs = topic_specs(settings.kafka.topics, count)
        transport = open_transport(
            connection_settings(settings, client=client), client_id="stream-mlops-topics"
        )
    except ValueError as exc:
        print(f"stream-mlops topics create: {exc}", file=sys.stderr)
        return 2
    try:
        admin = transport.admin()
    except TransportError as exc:
        print(
            f"stream-mlops topics create: {exc} "
            "(start one with `stream-mlops broker start`, or set KAFKA_BOOTSTRAP_SERVERS)",
            file=sys.stderr,
        )
        return 1
    try:
        outcomes = create_topics(admin, specs)
    except TransportError as exc:
        print(f"stream-mlops topics create: {exc}", file=sys.stderr)
        return 1
    finally:
        admin.close()
    for outcome in outcomes:
        verb = "created" if outcome.created else "exists "
        note = "" if outcome.partitions == count else f" (not {count}: left as it is)"
        print(f"{verb} {outcome.name}: {outcome.partitions} partitions{note}")
    return 0
