"""What the page reads from the model registry (a real directory store, no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_mlops.registry import ModelRegistry, RegistryError, TrainingWindow
from stream_mlops.ui.registry_view import open_read_only, read_registry


def test_versions_lineage_and_promotions(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register("fraud", b"1", created_ts=1.0)
    registry.promote("fraud", "v1", ts=1.0, reason="bootstrap")
    window = TrainingWindow(event_count=480)
    registry.register(
        "fraud",
        b"2",
        parent_version="v1",
        created_ts=2.0,
        training_window=window,
        metrics={"p_value": 0.001},
    )
    registry.register("fraud", b"3", parent_version="v1", created_ts=3.0)  # never promoted
    registry.promote("fraud", "v2", ts=2.5, reason="beat v1")
    registry.register("demand", b"d", created_ts=4.0)  # registered, never promoted

    models, notes = read_registry(open_read_only(tmp_path))
    assert notes == []
    demand, fraud = models
    assert (demand.champion, demand.lineage, [v.version for v in demand.versions]) == (
        None,
        (),
        ["v1"],
    )
    assert fraud.champion == "v2"
    assert [v.version for v in fraud.versions] == ["v3", "v2", "v1"]
    assert [v.version for v in fraud.lineage] == ["v2", "v1"]
    assert (fraud.lineage[0].training_events, fraud.lineage[0].metrics) == (480, {"p_value": 0.001})
    assert [(p.version, p.reason) for p in fraud.promotions] == [
        ("v1", "bootstrap"),
        ("v2", "beat v1"),
    ]


def test_a_damaged_model_is_a_note_and_the_others_are_still_read(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register("fraud", b"1", created_ts=1.0)
    registry.register("demand", b"d", created_ts=1.0)
    (tmp_path / "fraud" / "versions" / "v1" / "version.json").write_text("{not json")
    models, notes = read_registry(registry)
    assert [m.model_id for m in models] == ["demand"]
    (note,) = notes
    assert note.startswith("registry: model fraud: ") and "version.json" in note


def test_the_page_never_writes_to_the_registry(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register("fraud", b"1", created_ts=1.0)
    abandoned = tmp_path / "fraud" / ".tmp-999999999-x"  # a dead writer's leftover
    abandoned.mkdir()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    models, _ = read_registry(open_read_only(tmp_path))
    assert [m.model_id for m in models] == ["fraud"]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_the_read_only_registry_refuses_writes(tmp_path: Path) -> None:
    registry = open_read_only(tmp_path)
    with pytest.raises(RegistryError, match="never writes"):
        registry.register("fraud", b"1", created_ts=1.0)
    assert not (tmp_path / "fraud").exists()
