"""Generated prediction/outcome streams and Kafka plumbing for runtime tests."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import kafka
import orjson
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import TopicPartition

TOPIC_KEYS = (
    "predictions",
    "outcomes",
    "drift_alerts",
    "retrain_requests",
    "model_updates",
    "labeled_events",
    "dead_letters",
    "performance_estimates",
    "state",
)


@dataclass(frozen=True)
class Deployment:
    """One engine deployment's topics and group, unique per test."""

    bootstrap: str
    topics: dict[str, str]
    group_id: str
    partitions: int
    client: str = "kafka-python"

    def write_config(
        self,
        path: Path,
        extra: str = "",
        kafka_extra: str = "",
        checkpoint_interval_ms: int = 100,
    ) -> Path:
        lines = [
            "[kafka]",
            f'bootstrap_servers = "{self.bootstrap}"',
            f'client = "{self.client}"',
            f'group_id = "{self.group_id}"',
            f'transactional_id_prefix = "{self.group_id}"',
            f"partitions = {self.partitions}",
            f"checkpoint_interval_ms = {checkpoint_interval_ms}",
            kafka_extra,
            "",
            "[kafka.topics]",
            *(f'{k} = "{v}"' for k, v in self.topics.items()),
            "",
            extra,
        ]
        path.write_text("\n".join(lines))
        return path


def create_deployment(bootstrap: str, partitions: int, client: str = "kafka-python") -> Deployment:
    suffix = uuid.uuid4().hex[:10]
    topics = {k: f"t-{k}-{suffix}" for k in TOPIC_KEYS}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(
                    name,
                    partitions,
                    1,
                    topic_configs={"cleanup.policy": "compact"} if key == "state" else {},
                )
                for key, name in topics.items()
            ]
        )
        # Wait until every topic's metadata is visible, as a user would after
        # `stream-mlops topics create`.
        deadline = time.monotonic() + 30
        while True:
            described = {
                t["name"]: t
                for t in admin.describe_topics(list(topics.values()))
                if t["error_code"] == 0
            }
            if all(
                t in described and len(described[t]["partitions"]) == partitions
                for t in topics.values()
            ):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"topics not ready: {described}")
            time.sleep(0.1)
    finally:
        admin.close()
    return Deployment(bootstrap, topics, f"g-{suffix}", partitions, client)


def delete_deployment(dep: Deployment) -> None:
    admin = KafkaAdminClient(bootstrap_servers=dep.bootstrap)
    try:
        admin.delete_topics(list(dep.topics.values()))
    finally:
        admin.close()


def fraud_stream(
    n: int, *, drift_at: int, error_before: float, error_after: float, seed: int
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Predictions and outcomes of a classifier whose error rate steps at ``drift_at``."""
    rng = random.Random(seed)
    predictions, outcomes = [], []
    t0 = 1_790_000_000.0
    for i in range(n):
        event_id = f"txn-{seed}-{i:07d}"
        prediction = int(rng.random() < 0.1)
        wrong = rng.random() < (error_before if i < drift_at else error_after)
        actual = 1 - prediction if wrong else prediction
        predictions.append(
            {
                "type": "prediction",
                "event_id": event_id,
                "model_id": "fraud",
                "model_version": "v1",
                "ts": t0 + i,
                "features": {"amount": round(rng.gauss(50, 10), 3), "hour": rng.randrange(24)},
                "prediction": prediction,
                "score": round(min(1.0, max(0.0, rng.gauss(0.1 + 0.6 * prediction, 0.1))), 4),
            }
        )
        outcomes.append(
            {"type": "outcome", "event_id": event_id, "ts": t0 + i + 60, "actual": actual}
        )
    return predictions, outcomes


def replay_outputs(
    config: Path,
    predictions: list[dict[str, object]],
    outcomes: list[dict[str, object]],
    partitions: int,
) -> list[dict[str, object]]:
    """The alerts and retrain requests the pure core publishes for these events,
    partition by partition (each event in ``partition_of``), predictions first:
    what ``replay`` runs, and what an engine on Kafka must publish."""
    # Imported here: the Kafka plumbing above does not need the core.
    from stream_mlops.config import load_settings
    from stream_mlops.engine import Engine
    from stream_mlops.events import DriftAlert, RetrainRequest, decode_input, encode
    from stream_mlops.reference import load_references

    settings = load_settings(config)
    references = load_references(settings)  # pinned references, as the service loads them
    out: list[dict[str, object]] = []
    for p in range(partitions):
        engine = Engine(settings, partition=p, references=references)
        for kind, events in (("prediction", predictions), ("outcome", outcomes)):
            offset = 0
            for i, raw in enumerate(events):
                if partition_of(i, partitions) != p:
                    continue
                event = decode_input(orjson.dumps(raw), default_type=kind)  # type: ignore[arg-type]
                for output in engine.process(event, offset=offset):
                    if isinstance(output, DriftAlert | RetrainRequest):
                        out.append(orjson.loads(encode(output)))
                offset += 1
    return out


def partition_of(index: int, partitions: int) -> int:
    """Tests place events explicitly, so the replay side knows the partitions."""
    return index % partitions


def produce(
    bootstrap: str,
    topic: str,
    events: Iterable[dict[str, object] | bytes],
    partitions: int,
    keys: Iterable[bytes] | None = None,
    placement: list[int] | None = None,
) -> None:
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    try:
        key_iter = iter(keys) if keys is not None else None
        for i, event in enumerate(events):
            value = event if isinstance(event, bytes) else orjson.dumps(event)
            if key_iter is not None:
                key = next(key_iter)
            else:
                assert isinstance(event, dict)
                key = str(event["event_id"]).encode()
            partition = placement[i] if placement is not None else partition_of(i, partitions)
            producer.send(topic, value=value, key=key, partition=partition)
        producer.flush()
    finally:
        producer.close()


def read_all(
    bootstrap: str, topic: str, idle_s: float = 2.0, timeout_s: float = 60
) -> list[dict[str, object]]:
    """Every committed event of ``topic`` (read_committed), once it stays quiet for ``idle_s``."""
    consumer = kafka.KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    out: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < idle_s:
            batch = consumer.poll(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    out.append(orjson.loads(r.value))
                    last = time.monotonic()
    finally:
        consumer.close()
    return out


def wait_consumed(
    dep: Deployment, timeout_s: float = 120, kinds: tuple[str, ...] = ("predictions", "outcomes")
) -> None:
    """Wait until the group has committed the end of the input topics named by ``kinds``."""
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=dep.bootstrap, group_id=dep.group_id, enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(dep.topics[k], p) for k in kinds for p in range(dep.partitions)]
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while True:
            committed = {tp: consumer.committed(tp) for tp in tps}
            if all(committed[tp] == ends[tp] for tp in tps):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not consumed in {timeout_s}s: committed {committed}, ends {ends}"
                )
            time.sleep(0.2)
    finally:
        consumer.close(autocommit=False)
