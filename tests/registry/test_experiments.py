"""The registry's experiment log on a directory store: plain JSON, written once per request."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from stream_mlops.registry import (
    DirectoryStore,
    Experiment,
    ModelRegistry,
    RegistryCorruptError,
    experiment_key,
)
from tests.registry.experiments import experiment


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path)
    registry.register("fraud", b"v1", created_ts=1.0)
    registry.register("demand", b"v1", created_ts=1.0)
    return registry


def test_an_experiment_is_kept_whole_as_plain_json_under_its_request_key(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    record = experiment("316a327f861d", outcome="promoted", version="v2")
    assert registry.record_experiment(record) == record
    assert registry.experiment("fraud", "316a327f861d") == record
    path = tmp_path / "fraud" / "experiments" / f"{experiment_key('316a327f861d')}.json"
    data = json.loads(path.read_bytes())  # JSON, not a pickle
    assert data["request_id"] == "316a327f861d" and data["version"] == "v2"
    assert [look["p_value"] for look in data["looks"]] == [0.1, 1e-7]
    assert Experiment.model_validate(data) == record
    assert [p.name for p in (tmp_path / "fraud").iterdir() if p.name.startswith(".tmp-")] == []


def test_a_request_is_recorded_once_and_the_first_record_stands(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    first = experiment("rq-1", decided_ts=100.0)
    registry.record_experiment(first)
    again = experiment("rq-1", decided_ts=200.0)  # e.g. a retrainer with other settings
    assert registry.record_experiment(again) == first
    assert registry.experiments("fraud") == [first]
    assert len(list((tmp_path / "fraud" / "experiments").iterdir())) == 1
    # Keyed by model and request: the same request id of another model is its own.
    other = experiment("rq-1", model_id="demand")
    assert registry.record_experiment(other) == other
    assert registry.experiments() == [first, other]


def test_the_log_is_listed_in_decision_order_and_filtered(registry: ModelRegistry) -> None:
    late = experiment("late", decided_ts=300.0, outcome="promoted", version="v2")
    early = experiment("early", decided_ts=100.0)
    demand = experiment("d", model_id="demand", decided_ts=200.0)
    for record in (late, early, demand):
        registry.record_experiment(record)
    assert registry.experiments() == [early, demand, late]
    assert registry.experiments("fraud") == [early, late]
    assert registry.experiments(outcome="retired") == [early, demand]
    assert registry.experiments("fraud", outcome="promoted") == [late]
    assert registry.experiments("unknown") == []
    assert registry.latest_experiment("fraud") == late
    assert registry.latest_experiment("unknown") is None
    assert registry.experiment("fraud", "nope") is None


def test_newest_reads_only_the_most_recently_written(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    for i in range(5):
        registry.record_experiment(experiment(f"rq-{i}", decided_ts=float(100 - i)))
        # File times are written order; make them distinct whatever the clock's resolution.
        path = tmp_path / "fraud" / "experiments" / f"{experiment_key(f'rq-{i}')}.json"
        os.utime(path, ns=(i * 10**9, i * 10**9))
    newest = registry.experiments("fraud", newest=2)
    assert [e.request_id for e in newest] == ["rq-4", "rq-3"]  # by decision time, as always
    assert len(registry.experiments("fraud")) == 5


@pytest.mark.parametrize("request_id", ["../../escape", "a/b", "", ".hidden", "x" * 1000])
def test_any_request_id_stays_inside_the_models_log(
    registry: ModelRegistry, tmp_path: Path, request_id: str
) -> None:
    record = experiment(request_id)
    registry.record_experiment(record)
    (path,) = (tmp_path / "fraud" / "experiments").iterdir()
    assert path.name == f"{experiment_key(request_id)}.json"
    assert registry.experiment("fraud", request_id) == record


def test_a_damaged_or_misplaced_record_is_reported_with_its_path(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    registry.record_experiment(experiment("rq-1"))
    log = tmp_path / "fraud" / "experiments"
    (path,) = log.iterdir()
    path.write_text('{"model_id": "fraud"}')
    with pytest.raises(RegistryCorruptError, match=f"{path}: request_id: Field required"):
        registry.experiments("fraud")
    # A whole record under another request's name (a hand-made copy) is refused too.
    path.write_text(experiment("rq-2").model_dump_json())
    with pytest.raises(RegistryCorruptError, match="not the one its name says"):
        registry.experiment("fraud", "rq-1")


def test_a_write_that_died_before_its_link_is_invisible_and_cleaned(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register("fraud", b"v1", created_ts=1.0)
    registry.record_experiment(experiment("rq-1"))
    # What a writer killed between writing its temp file and linking it leaves.
    leftover = tmp_path / "fraud" / ".tmp-999999999-abc"
    leftover.write_text(experiment("rq-2").model_dump_json())
    assert [e.request_id for e in registry.experiments()] == ["rq-1"]
    ModelRegistry(tmp_path)  # opening cleans what dead writers left
    assert not leftover.exists()


def test_the_store_never_replaces_a_record(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    assert store.create_experiment(experiment("rq-1", decided_ts=1.0))
    assert not store.create_experiment(experiment("rq-1", decided_ts=2.0))
    record = store.read_experiment("fraud", "rq-1")
    assert record is not None and record.decided_ts == 1.0


def test_an_experiment_says_its_version_exactly_when_promoted() -> None:
    promoted = experiment(outcome="promoted", version="v2")
    with pytest.raises(ValidationError, match="a promoted experiment names its version"):
        Experiment.model_validate({**promoted.model_dump(), "version": None})
    with pytest.raises(ValidationError, match="a promoted experiment names its version"):
        Experiment.model_validate({**experiment().model_dump(), "version": "v2"})
    with pytest.raises(ValidationError, match="content_hash"):
        Experiment.model_validate({**promoted.model_dump(), "content_hash": None})
