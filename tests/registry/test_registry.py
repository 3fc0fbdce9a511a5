"""ModelRegistry: idempotent registration, lineage, search, the champion pointer."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_mlops.registry import (
    ModelRegistry,
    OffsetRange,
    RegistryCorruptError,
    TrainingWindow,
    VersionNotFoundError,
    version_number,
)


def _window(first: int, last: int) -> TrainingWindow:
    return TrainingWindow(
        ranges=(
            OffsetRange(topic="labeled-events", partition=0, first_offset=first, last_offset=last),
        ),
        start_ts=100.0,
        start_event_id="e-start",
        first_event_ts=100.0,
        last_event_ts=200.0,
        event_count=last - first + 1,
        events_digest="ab" * 32,
    )


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path)


def test_register_keeps_every_field_and_reads_back_the_artifact(registry: ModelRegistry) -> None:
    record = registry.register(
        "fraud",
        b"artifact",
        created_ts=123.5,
        training_window=_window(10, 20),
        config={"model": {"task": "classification"}},
        library_versions={"python": "3.11.7", "river": "0.26.1"},
        metrics={"loss": 0.1},
    )
    assert record.version == "v1"
    stored = ModelRegistry(registry.store).get("fraud", "v1")
    assert stored == record
    assert stored.training_window.ranges[0].last_offset == 20
    assert stored.artifact_bytes == len(b"artifact")
    assert registry.artifact("fraud", "v1") == b"artifact"


def test_registering_the_same_identity_twice_returns_the_existing_version(
    registry: ModelRegistry,
) -> None:
    registry.register("fraud", b"root", created_ts=1.0)
    first = registry.register(
        "fraud", b"retrained", created_ts=2.0, parent_version="v1", training_window=_window(0, 9)
    )
    # A restarted retrainer: same artifact, parent and window, other metrics and clock.
    repeat = registry.register(
        "fraud",
        b"retrained",
        created_ts=99.0,
        parent_version="v1",
        training_window=_window(0, 9),
        metrics={"loss": 0.5},
    )
    assert repeat == first
    assert [v.version for v in registry.list("fraud")] == ["v1", "v2"]
    # Any part of the identity that differs makes a new version.
    other_window = registry.register(
        "fraud", b"retrained", created_ts=3.0, parent_version="v1", training_window=_window(0, 10)
    )
    other_parent = registry.register(
        "fraud", b"retrained", created_ts=4.0, parent_version="v2", training_window=_window(0, 9)
    )
    other_model = registry.register(
        "demand", b"retrained", created_ts=5.0, training_window=_window(0, 9)
    )
    assert (other_window.version, other_parent.version, other_model.version) == ("v3", "v4", "v1")


def test_an_unknown_parent_is_refused(registry: ModelRegistry) -> None:
    with pytest.raises(VersionNotFoundError, match="fraud v7"):
        registry.register("fraud", b"x", created_ts=1.0, parent_version="v7")
    assert registry.list() == []


def test_lineage_follows_parents_to_the_root(registry: ModelRegistry) -> None:
    registry.register("fraud", b"a", created_ts=1.0)
    registry.register("fraud", b"b", created_ts=2.0, parent_version="v1")
    registry.register("fraud", b"c", created_ts=3.0, parent_version="v2")
    registry.register("fraud", b"d", created_ts=4.0, parent_version="v1")
    assert [v.version for v in registry.lineage("fraud", "v3")] == ["v3", "v2", "v1"]
    assert [v.version for v in registry.lineage("fraud", "v4")] == ["v4", "v1"]
    with pytest.raises(VersionNotFoundError):
        registry.lineage("fraud", "v9")


def test_search_applies_every_filter(registry: ModelRegistry) -> None:
    registry.register("fraud", b"a", created_ts=100.0, metrics={"loss": 0.30})
    registry.register("fraud", b"b", created_ts=200.0, parent_version="v1", metrics={"loss": 0.10})
    registry.register("fraud", b"c", created_ts=300.0, parent_version="v1")
    registry.register("demand", b"d", created_ts=250.0, metrics={"loss": 12.0})

    def found(**filters: object) -> list[str]:
        return [f"{v.model_id}/{v.version}" for v in registry.search(**filters)]  # type: ignore[arg-type]

    assert found() == ["demand/v1", "fraud/v1", "fraud/v2", "fraud/v3"]
    assert found(model_id="fraud") == ["fraud/v1", "fraud/v2", "fraud/v3"]
    assert found(metric="loss") == ["demand/v1", "fraud/v1", "fraud/v2"]
    assert found(metric="loss", max_value=0.2) == ["fraud/v2"]
    assert found(metric="loss", min_value=0.2, max_value=1.0) == ["fraud/v1"]
    assert found(created_after=200.0) == ["demand/v1", "fraud/v2", "fraud/v3"]
    assert found(created_before=200.0) == ["fraud/v1", "fraud/v2"]
    assert found(created_after=150.0, created_before=260.0) == ["demand/v1", "fraud/v2"]
    assert found(parent="v1") == ["fraud/v2", "fraud/v3"]
    assert found(model_id="fraud", parent="v1", metric="loss") == ["fraud/v2"]
    with pytest.raises(ValueError, match="need a metric"):
        registry.search(max_value=1.0)


def test_the_champion_pointer_moves_on_promotion_and_keeps_its_history(
    registry: ModelRegistry,
) -> None:
    registry.register("fraud", b"a", created_ts=1.0)
    registry.register("fraud", b"b", created_ts=2.0, parent_version="v1")
    assert registry.champion("fraud") is None
    registry.promote("fraud", "v1", ts=10.0, reason="initial")
    registry.promote("fraud", "v2", ts=20.0, reason="beat v1")
    registry.promote("fraud", "v2", ts=30.0, reason="repeat")  # already champion: no entry
    champion = ModelRegistry(registry.store).champion("fraud")
    assert champion is not None
    assert champion.version == "v2"
    history = registry.promotions("fraud")
    assert [(p.version, p.ts, p.reason) for p in history] == [
        ("v1", 10.0, "initial"),
        ("v2", 20.0, "beat v1"),
    ]
    with pytest.raises(VersionNotFoundError):
        registry.promote("fraud", "v3", ts=40.0)
    assert registry.champion("demand") is None


def test_a_damaged_artifact_is_detected_by_its_hash(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    registry.register("fraud", b"original", created_ts=1.0)
    (tmp_path / "fraud" / "versions" / "v1" / "model.pkl").write_bytes(b"tampered")
    with pytest.raises(RegistryCorruptError, match="sha256"):
        registry.artifact("fraud", "v1")


def test_model_ids_that_are_not_safe_directory_names_are_refused(registry: ModelRegistry) -> None:
    # re.match with "$" took "fraud\n" (a directory name with a newline).
    for bad in ("../etc", ".hidden", "a/b", "", "..", ".", "fraud\n", "fraud\n\n"):
        with pytest.raises(ValueError, match="model_id"):
            registry.register(bad, b"x", created_ts=1.0)


def test_reads_with_a_path_like_model_id_are_refused(registry: ModelRegistry) -> None:
    for bad in ("../fraud", "..", "fraud\n"):
        with pytest.raises(ValueError, match="model_id"):
            registry.get(bad, "v1")
    with pytest.raises(VersionNotFoundError):
        registry.store.read_artifact("fraud", "../../x")


def test_version_names_are_matched_whole() -> None:
    with pytest.raises(ValueError, match="version"):
        version_number("v1\n")
