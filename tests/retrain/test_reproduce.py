"""reproduce: a version rebuilt from its parent and training window has its recorded hash."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from stream_mlops.model_task import Task
from stream_mlops.registry import ModelRegistry, ModelVersion
from stream_mlops.retrain import (
    LabeledExample,
    ModelSpec,
    Promoted,
    ReproduceError,
    RetrainOrder,
    RetrainSession,
    SourcePosition,
    record_promotion,
    reproduce,
)
from stream_mlops.simulate import fraud as fraud_world
from tests.retrain.conftest import CHAMPION_EVENTS, register_champion
from tests.retrain.streams import TOPIC, demand_stream, fraud_stream

ROOT = Path(__file__).resolve().parents[2]
CHANGE_TS = 1_800_000_000.0 + CHAMPION_EVENTS


def _promote(
    registry: ModelRegistry, task: Task, *, fresh: bool = False
) -> tuple[str, list[LabeledExample]]:
    spec = ModelSpec.for_task(task)
    if task is Task.CLASSIFICATION:
        model_id, pre, post = (
            "fraud",
            fraud_stream(1, CHAMPION_EVENTS),
            fraud_stream(2, 3000, start_offset=CHAMPION_EVENTS, flipped=True),
        )
    else:
        model_id, pre, post = (
            "demand",
            demand_stream(1, CHAMPION_EVENTS),
            demand_stream(2, 3000, start_offset=CHAMPION_EVENTS, shifted=True),
        )
    register_champion(registry, spec, pre)
    # The topic as the retrainer saw it: late pre-change events and another model's
    # events interleaved with the post-change ones, and one re-delivery.
    topic = []
    for i, event in enumerate(post):
        topic.append(event)
        if i % 7 == 3:
            topic.append(dataclasses.replace(event, event_id=f"late-{i}", ts=CHANGE_TS - 50))
        if i % 5 == 1:
            topic.append(dataclasses.replace(event, event_id=f"other-{i}", model_id="other"))
        if i == 10:
            topic.append(event)
    topic = [
        dataclasses.replace(e, source=dataclasses.replace(e.source, offset=10_000 + n))
        for n, e in enumerate(topic)
    ]
    order = RetrainOrder(model_id, "v1", CHANGE_TS, "start", request_id="rq")
    session = RetrainSession.from_registry(registry, order, spec=spec, fresh=fresh)
    return _retrain_until_promoted(registry, session, topic).version, topic


def _retrain_until_promoted(
    registry: ModelRegistry, session: RetrainSession, topic: list[LabeledExample]
) -> ModelVersion:
    for event in topic:
        if isinstance(session.observe(event), Promoted):
            break
    decision = session.decision
    assert isinstance(decision, Promoted)
    return record_promotion(registry, decision, ts=1.0)


@pytest.mark.parametrize("task", list(Task))
@pytest.mark.parametrize("fresh", [False, True], ids=["from-parent", "fresh"])
def test_reproduce_gives_the_recorded_hash(tmp_path: Path, task: Task, fresh: bool) -> None:
    registry = ModelRegistry(tmp_path)
    version, topic = _promote(registry, task, fresh=fresh)
    record = registry.get(topic[0].model_id, version)
    # The whole partition is read back; only the window's ranges are used.
    assert reproduce(registry, record.model_id, version, iter(topic)) == record.content_hash


def test_reproduce_refuses_a_window_with_missing_events(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    version, topic = _promote(registry, Task.CLASSIFICATION)
    window = registry.get("fraud", version).training_window
    assert window.ranges[0].topic == TOPIC
    missing_one = [e for e in topic if e.event_id != topic[20].event_id]
    with pytest.raises(ReproduceError, match="not the recorded ones"):
        reproduce(registry, "fraud", version, iter(missing_one))
    swapped = list(topic)
    swapped[20], swapped[21] = swapped[21], swapped[20]
    with pytest.raises(ReproduceError, match="different event ids"):
        reproduce(registry, "fraud", version, iter(swapped))


def test_a_version_without_a_training_window_cannot_be_reproduced(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    register_champion(registry, ModelSpec.for_task(Task.CLASSIFICATION), fraud_stream(1, 10))
    with pytest.raises(ReproduceError, match="not trained by the retrainer"):
        reproduce(registry, "fraud", "v1", iter([]))


def _write_window(topic: list[LabeledExample], path: Path) -> None:
    with path.open("w") as out:
        for e in topic:
            line = {
                "event_id": e.event_id,
                "model_id": e.model_id,
                "model_version": e.model_version,
                "ts": e.ts,
                "features": dict(e.features),
                "prediction": e.prediction,
                "actual": e.actual,
                "topic": e.source.topic,
                "partition": e.source.partition,
                "offset": e.source.offset,
            }
            out.write(json.dumps(line) + "\n")


def _hashes_in_other_processes(
    registry_dir: Path, model_id: str, version: str, events_file: Path
) -> set[str]:
    """``reproduce`` in two interpreters with different string hash seeds."""
    script = (
        "import sys\n"
        "from stream_mlops.models_cli import _read_jsonl\n"
        "from stream_mlops.registry import ModelRegistry\n"
        "from stream_mlops.retrain import reproduce\n"
        "from pathlib import Path\n"
        f"registry = ModelRegistry({str(registry_dir)!r})\n"
        f"events = _read_jsonl(Path({str(events_file)!r}))\n"
        f"print(reproduce(registry, {model_id!r}, {version!r}, events))\n"
    )
    hashes = set()
    for seed in ("1", "2"):
        child = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        hashes.add(child.stdout.strip())
    return hashes


def test_the_hash_does_not_depend_on_the_process(tmp_path: Path) -> None:
    """Another interpreter, another string hash seed, features decoded from JSON: same hash."""
    registry = ModelRegistry(tmp_path)
    version, topic = _promote(registry, Task.CLASSIFICATION)
    events_file = tmp_path / "window.jsonl"
    _write_window(topic, events_file)
    hashes = _hashes_in_other_processes(tmp_path, "fraud", version, events_file)
    assert hashes == {registry.get("fraud", version).content_hash}


def test_a_version_grown_from_the_demo_champion_reproduces_in_any_process(
    tmp_path: Path,
) -> None:
    """The demo's v1 is the fraud simulator's bootstrap model, registered as a pickle.

    Its river ``Select`` and ``OneHotEncoder`` kept feature names and merchants
    in sets, which iterate in the order of the process's string hash seed: the
    challenger's dot products summed in another order, and ``models reproduce``
    of the demo's v2 found a different content hash.
    """
    registry = ModelRegistry(tmp_path / "registry")
    v1 = registry.register("fraud", pickle.dumps(fraud_world.bootstrap_model(7)), created_ts=0.0)
    registry.promote("fraud", v1.version, ts=0.0, reason="demo bootstrap")
    topic = [
        LabeledExample(
            event_id=f"txn-{i}",
            model_id="fraud",
            model_version="v1",
            ts=CHANGE_TS + i,
            features=features,
            prediction=0,
            actual=int(actual),
            source=SourcePosition(TOPIC, 0, i),
        )
        for i, (features, actual) in enumerate(
            fraud_world.training_sample(3, 4000, after_drift=True)
        )
    ]
    spec = ModelSpec.for_task(Task.CLASSIFICATION)
    order = RetrainOrder("fraud", "v1", CHANGE_TS, "txn-0", request_id="rq")
    session = RetrainSession.from_registry(registry, order, spec=spec)
    version = _retrain_until_promoted(registry, session, topic)
    events_file = tmp_path / "window.jsonl"
    _write_window(topic, events_file)
    hashes = _hashes_in_other_processes(
        tmp_path / "registry", "fraud", version.version, events_file
    )
    assert hashes == {version.content_hash}
