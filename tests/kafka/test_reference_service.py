"""A pinned reference on Kafka: ``stream-mlops run`` loads the file at start.

One backend is enough: the pinning is in the core; the service only reads the
file and hands it to every partition's engine. Checked against a real broker:
the alerts the service commits are the ones the core publishes with the same
reference, and the shift the stream starts with is found.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.kafka.engine_process import EngineProcess
from tests.kafka.streams import (
    Deployment,
    create_deployment,
    delete_deployment,
    fraud_stream,
    produce,
    read_all,
    replay_outputs,
    wait_consumed,
)

pytestmark = pytest.mark.kafka

PARTITIONS = 2


@pytest.fixture
def deployment(kafka_bootstrap: str) -> Iterator[Deployment]:
    dep = create_deployment(kafka_bootstrap, PARTITIONS, client="kafka-python")
    try:
        yield dep
    finally:
        delete_deployment(dep)


def test_the_engine_service_compares_the_stream_with_the_pinned_reference_file(
    deployment: Deployment, tmp_path: Path
) -> None:
    # The reference: amount ~ N(50, 10), 5% errors.
    ref_predictions, ref_outcomes = fraud_stream(
        3000, drift_at=10**9, error_before=0.05, error_after=0.05, seed=11
    )
    (tmp_path / "ref.jsonl").write_bytes(
        b"".join(orjson.dumps(e) + b"\n" for e in [*ref_predictions, *ref_outcomes])
    )
    # The stream starts shifted: amount + 15, 25% errors from its first event.
    predictions, outcomes = fraud_stream(
        5000, drift_at=0, error_before=0.05, error_after=0.25, seed=12
    )
    for p in predictions:
        features = p["features"]
        assert isinstance(features, dict)
        features["amount"] = round(features["amount"] + 15.0, 3)
    # Relative to the configuration file's directory.
    config = deployment.write_config(
        tmp_path / "engine.toml", extra='[models.fraud]\nreference = {file = "ref.jsonl"}\n'
    )
    with EngineProcess(config, "a", tmp_path / "engine.log") as engine:
        engine.wait_for_log("partitions.assigned")
        produce(deployment.bootstrap, deployment.topics["predictions"], predictions, PARTITIONS)
        wait_consumed(deployment, kinds=("predictions",))
        produce(deployment.bootstrap, deployment.topics["outcomes"], outcomes, PARTITIONS)
        wait_consumed(deployment)
        assert engine.terminate() == 0
        log = engine.log_events()

    loaded = [e for e in log if e["event"] == "engine.reference"]
    assert [(e["model_id"], e["events"], e["labeled"]) for e in loaded] == [("fraud", 3000, 3000)]
    alerts = read_all(deployment.bootstrap, deployment.topics["drift_alerts"])
    signals = {a["signal"] for a in alerts if a["severity"] == "drift"}
    assert {"feature:amount", "error"} <= signals, signals
    expected = [
        e
        for e in replay_outputs(config, predictions, outcomes, PARTITIONS)
        if e["type"] == "drift_alert"
    ]
    assert sorted(a["alert_id"] for a in alerts) == sorted(e["alert_id"] for e in expected)


def test_the_engine_service_refuses_to_start_without_its_reference_file(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = deployment.write_config(
        tmp_path / "engine.toml", extra='[models.fraud]\nreference = {file = "absent.jsonl"}\n'
    )
    with EngineProcess(config, "a", tmp_path / "engine.log") as engine:
        assert engine.wait_until_exit(60) == 2
        log = engine.log_events()
    invalid = [e for e in log if e["event"] == "config.invalid"]
    assert invalid and "models.fraud.reference.file" in invalid[0]["error"]
    assert "absent.jsonl: cannot read" in invalid[0]["error"]
