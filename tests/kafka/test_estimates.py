"""Performance estimates on Kafka: the engine publishes what the core returns.

A calibration warm-up (predictions, then their outcomes), then predictions
only: the estimate of every window reaches ``performance-estimates``, equal to
what the pure core makes of the same events in the same order, on both client
backends (the edge routes the new event type to its topic).
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from tests.kafka.engine_process import EngineProcess
from tests.kafka.streams import (
    Deployment,
    partition_of,
    produce,
    read_all,
    wait_consumed,
)

pytestmark = pytest.mark.kafka

PARTITIONS = 2
WARM_UP = 600  # labeled predictions, 300 per partition
LATER = 1200  # unlabeled predictions, 600 per partition: 6 windows each
SETTINGS = "[defaults]\nestimate_calibration_events = 200\nestimate_window = 100\n"

Event = dict[str, object]


def stream(seed: int) -> tuple[list[Event], list[Event], list[Event]]:
    """Warm-up predictions, their outcomes, and the predictions after."""
    rng = random.Random(seed)
    t0 = 1_790_000_000.0
    predictions: list[Event] = []
    outcomes: list[Event] = []
    for i in range(WARM_UP + LATER):
        boundary = rng.random() < (0.1 if i < WARM_UP + LATER // 2 else 0.4)
        score = rng.uniform(0.4, 0.6) if boundary else rng.choice((0.05, 0.95))
        actual = int(rng.random() < (0.5 if boundary else score))
        event_id = f"txn-{i:07d}"
        predictions.append(
            {
                "type": "prediction",
                "event_id": event_id,
                "model_id": "fraud",
                "model_version": "v1",
                "ts": t0 + i,
                "features": {"amount": round(rng.gauss(50, 10), 3)},
                "prediction": int(score >= 0.5),
                "score": round(score, 4),
            }
        )
        if i < WARM_UP:
            outcomes.append(
                {"type": "outcome", "event_id": event_id, "ts": t0 + i, "actual": actual}
            )
    return predictions[:WARM_UP], outcomes, predictions[WARM_UP:]


def core_estimates(config: Path, phases: list[tuple[str, list[Event]]]) -> list[Event]:
    """The performance estimates of the pure core, partition by partition, phase by phase."""
    from stream_mlops.config import load_settings
    from stream_mlops.engine import Engine
    from stream_mlops.events import PerformanceEstimate, decode_input, encode

    settings = load_settings(config)
    out: list[Event] = []
    for p in range(PARTITIONS):
        engine = Engine(settings, partition=p)
        offsets = {"prediction": 0, "outcome": 0}
        for kind, events in phases:
            for i, raw in enumerate(events):
                if partition_of(i, PARTITIONS) != p:
                    continue
                event = decode_input(orjson.dumps(raw), default_type=kind)  # type: ignore[arg-type]
                for output in engine.process(event, offset=offsets[kind]):
                    if isinstance(output, PerformanceEstimate):
                        out.append(orjson.loads(encode(output)))
                offsets[kind] += 1
    return out


def test_performance_estimates_reach_their_topic_as_the_core_makes_them(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = deployment.write_config(tmp_path / "engine.toml", extra=SETTINGS)
    warm_up, outcomes, later = stream(seed=11)
    # The later predictions continue each partition's offsets after the warm-up's.
    phases = [("prediction", warm_up), ("outcome", outcomes), ("prediction", later)]
    with EngineProcess(config, "a", tmp_path / "engine.log") as engine:
        engine.wait_for_log("partitions.assigned")
        produce(deployment.bootstrap, deployment.topics["predictions"], warm_up, PARTITIONS)
        wait_consumed(deployment, kinds=("predictions",))
        produce(deployment.bootstrap, deployment.topics["outcomes"], outcomes, PARTITIONS)
        wait_consumed(deployment)
        produce(deployment.bootstrap, deployment.topics["predictions"], later, PARTITIONS)
        wait_consumed(deployment)
        assert engine.terminate() == 0

    published = read_all(deployment.bootstrap, deployment.topics["performance_estimates"])
    expected = core_estimates(config, phases)
    assert len(expected) == PARTITIONS * (LATER // PARTITIONS // 100)
    assert {str(e["estimate_id"]): e for e in published} == {
        str(e["estimate_id"]): e for e in expected
    }
    assert len(published) == len(expected)  # exactly once
    assert {e["type"] for e in published} == {"performance_estimate"}
    assert {e["partition"] for e in published} == set(range(PARTITIONS))
