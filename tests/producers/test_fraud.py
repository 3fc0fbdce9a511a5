"""The fraud producer against a real broker: what it publishes, where, and that it parses."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer
from kafka.partitioner.default import murmur2
from kafka.structs import TopicPartition

from producers import fraud
from stream_mlops.simulate.fraud import FraudSimulator
from tests.kafka.cluster import admin_client, bootstrap_servers, temporary_topics

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]

PARTITIONS = 3


def read_topic(servers: str, topic: str, expected: int, timeout_s: float = 60.0) -> list[Any]:
    """All committed records of ``topic`` (expects ``expected`` of them)."""
    consumer = KafkaConsumer(
        bootstrap_servers=servers,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # nothing beyond what was expected
        records.extend(r for batch in consumer.poll(timeout_ms=500).values() for r in batch)
        return records
    finally:
        consumer.close()


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_fraud_producer_publishes_co_partitioned_parseable_events(client: str) -> None:
    """On either client library, keys land where the Java client would put them."""
    servers = bootstrap_servers()
    with temporary_topics(servers, "sim-predictions", "sim-outcomes", partitions=PARTITIONS) as (
        predictions_topic,
        outcomes_topic,
    ):
        argv = [
            "--events", "400",
            "--rate", "0",
            "--seed", "3",
            "--drift", "abrupt",
            "--drift-at", "200",
            "--label-delay", "2",
            "--missing-outcomes", "0.1",
            "--malformed", "0.05",
            "--bootstrap", servers,
            "--client", client,
            "--predictions-topic", predictions_topic,
            "--outcomes-topic", outcomes_topic,
        ]  # fmt: skip
        assert fraud.main(argv) == 0

        expected = list(FraudSimulator(fraud.config_from(fraud.build_parser().parse_args(argv))))
        expected_predictions = [e for e in expected if e.kind == "prediction"]
        expected_outcomes = [e for e in expected if e.kind == "outcome"]
        predictions = read_topic(servers, predictions_topic, len(expected_predictions))
        outcomes = read_topic(servers, outcomes_topic, len(expected_outcomes))

    assert len(predictions) == len(expected_predictions) == 400
    assert 300 < len(outcomes) == len(expected_outcomes) < 400

    # Keyed by event_id; every outcome on the partition number of its prediction,
    # the one the Java client's murmur2 picks.
    prediction_partition = {r.key.decode(): r.partition for r in predictions}
    assert len(prediction_partition) == 400
    assert all(r.partition == (murmur2(r.key) & 0x7FFFFFFF) % PARTITIONS for r in predictions)
    assert all(r.partition == prediction_partition[r.key.decode()] for r in outcomes)
    assert len({r.partition for r in predictions}) == PARTITIONS

    # Exactly the simulator's records, in its order within each partition.
    for topic_records, emissions in (
        (predictions, expected_predictions),
        (outcomes, expected_outcomes),
    ):
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for r in sorted(topic_records, key=lambda r: (r.partition, r.offset)):
            by_partition.setdefault(r.partition, []).append((r.key, r.value))
        for p, got in by_partition.items():
            want = [
                (e.key.encode(), e.value()) for e in emissions if prediction_partition[e.key] == p
            ]
            assert got == want

    # Valid records parse, with the contract's fields; the malformed ones are there too.
    defects: Counter[str] = Counter()
    for r in predictions:
        try:
            event = orjson.loads(r.value)
        except orjson.JSONDecodeError:
            defects["not json"] += 1
            continue
        if not (
            isinstance(event, dict) and event.get("type") == "prediction" and "features" in event
        ):
            defects["not a prediction"] += 1
            continue
        assert event["event_id"] == r.key.decode()
    malformed = sum(e.defect is not None for e in expected_predictions)
    assert 5 <= malformed <= 40
    assert sum(defects.values()) <= malformed
    for r in outcomes:
        event = orjson.loads(r.value)
        assert event["type"] == "outcome" and event["event_id"] == r.key.decode()
        assert event["actual"] in (0, 1)


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_sigterm_stops_the_producer_cleanly_with_what_it_sent_flushed(client: str) -> None:
    servers = bootstrap_servers()
    with temporary_topics(servers, "sim-predictions", "sim-outcomes", partitions=PARTITIONS) as (
        predictions_topic,
        outcomes_topic,
    ):
        argv = [
            sys.executable, "-m", "stream_mlops", "simulate", "fraud",
            "--events", "1000000",
            "--rate", "200",
            "--label-delay", "600",
            "--bootstrap", servers,
            "--client", client,
            "--predictions-topic", predictions_topic,
            "--outcomes-topic", outcomes_topic,
        ]  # fmt: skip
        process = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            started = time.monotonic()
            assert process.stdout is not None
            for text in process.stdout:  # wait until it publishes
                if '"simulate.started"' in text:
                    break
            time.sleep(2.0)
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, err
        assert time.monotonic() - started < 60
        finished = [orjson.loads(t) for t in out.splitlines() if '"simulate.finished"' in t]
        assert len(finished) == 1 and finished[0]["stopped_early"] is True
        sent = finished[0]["predictions"]
        assert 100 < sent < 100_000
        published = read_topic(servers, predictions_topic, sent, timeout_s=30)
    assert len(published) == sent


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_a_missing_topic_stops_the_producer_and_is_not_created(
    client: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A topic created by a first send would get the broker's default partition
    count and break co-partitioning: the producer refuses instead."""
    servers = bootstrap_servers()
    with temporary_topics(servers, "sim-predictions", partitions=PARTITIONS) as (predictions,):
        missing = f"sim-outcomes-missing-{uuid.uuid4().hex[:8]}"
        argv = [
            "--events", "50",
            "--rate", "0",
            "--label-delay", "0",
            "--bootstrap", servers,
            "--client", client,
            "--predictions-topic", predictions,
            "--outcomes-topic", missing,
        ]  # fmt: skip
        assert fraud.main(argv) == 1
        with admin_client(servers) as admin:
            assert missing not in admin.list_topics()
    failed = [
        orjson.loads(t) for t in capsys.readouterr().out.splitlines() if "simulate.failed" in t
    ]
    assert len(failed) == 1
    assert failed[0]["error"] == f"topic {missing!r} does not exist (stream-mlops topics create)"
