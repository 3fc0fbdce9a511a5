"""DirectoryStore: versions appear whole or not at all, also when the writer dies mid-write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream_mlops.registry import DirectoryStore, ModelRegistry, ModelVersion, RegistryCorruptError
from stream_mlops.registry.registry import content_hash
from stream_mlops.registry.store import TEMP_PREFIX

ROOT = Path(__file__).resolve().parents[2]


def _record(version: str, artifact: bytes) -> ModelVersion:
    return ModelVersion(
        model_id="fraud",
        version=version,
        created_ts=1.0,
        content_hash=content_hash(artifact),
        artifact_bytes=len(artifact),
    )


def _crash_during(root: Path, patch: str, action: str) -> subprocess.CompletedProcess[str]:
    """Run ``action`` in a child that dies (os._exit, no cleanup runs) inside ``patch``."""
    script = "\n".join(
        [
            "import os, pathlib",
            "from stream_mlops.registry import ModelRegistry",
            f"registry = ModelRegistry({str(root)!r})",
            patch,
            action,
        ]
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _temp_entries(root: Path) -> list[Path]:
    return sorted(root.glob(f"*/{TEMP_PREFIX}*"))


def test_a_crash_before_the_rename_leaves_no_visible_version_and_the_leftover_is_cleaned(
    tmp_path: Path,
) -> None:
    ModelRegistry(tmp_path).register("fraud", b"v1-bytes", created_ts=1.0)
    crashed = _crash_during(
        tmp_path,
        "pathlib.Path.rename = lambda self, target: os._exit(137)",
        "registry.register('fraud', b'v2-bytes', parent_version='v1', created_ts=2.0)",
    )
    assert crashed.returncode == 137, crashed.stderr
    leftovers = _temp_entries(tmp_path)
    assert len(leftovers) == 1
    # The half-done write holds both files, yet no reader sees a v2.
    assert sorted(p.name for p in leftovers[0].iterdir()) == ["model.pkl", "version.json"]
    store = DirectoryStore(tmp_path)
    assert [v.version for v in store.versions("fraud")] == ["v1"]

    assert store.clean_abandoned() == leftovers
    assert _temp_entries(tmp_path) == []
    # The retry after the restart gets the name the crashed write never took.
    registry = ModelRegistry(tmp_path)
    again = registry.register("fraud", b"v2-bytes", parent_version="v1", created_ts=3.0)
    assert again.version == "v2"
    assert registry.artifact("fraud", "v2") == b"v2-bytes"


def test_a_crash_while_writing_the_artifact_is_invisible_and_cleaned_on_open(
    tmp_path: Path,
) -> None:
    crashed = _crash_during(
        tmp_path,
        "import stream_mlops.registry.store as s\n"
        "s._write_synced = lambda path, data: (path.write_bytes(data[:3]), os._exit(137))",
        "registry.register('fraud', b'artifact-bytes', created_ts=1.0)",
    )
    assert crashed.returncode == 137, crashed.stderr
    assert len(_temp_entries(tmp_path)) == 1
    assert DirectoryStore(tmp_path).versions("fraud") == []
    registry = ModelRegistry(tmp_path)  # opening the registry cleans dead writers' leftovers
    assert _temp_entries(tmp_path) == []
    assert registry.list() == []


def test_a_crash_while_moving_the_champion_keeps_the_old_champion(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register("fraud", b"one", created_ts=1.0)
    registry.register("fraud", b"two", parent_version="v1", created_ts=2.0)
    registry.promote("fraud", "v1", ts=1.0)
    crashed = _crash_during(
        tmp_path,
        "pathlib.Path.replace = lambda self, target: os._exit(137)",
        "registry.promote('fraud', 'v2', ts=2.0)",
    )
    assert crashed.returncode == 137, crashed.stderr
    assert len(_temp_entries(tmp_path)) == 1
    reopened = ModelRegistry(tmp_path)
    champion = reopened.champion("fraud")
    assert champion is not None
    assert champion.version == "v1"
    assert _temp_entries(tmp_path) == []


def test_temp_entries_of_a_live_writer_are_kept(tmp_path: Path) -> None:
    in_progress = tmp_path / "fraud" / f"{TEMP_PREFIX}{os.getpid()}-abc"
    in_progress.mkdir(parents=True)
    dead = tmp_path / "fraud" / f"{TEMP_PREFIX}notapid-abc"
    dead.mkdir()
    assert DirectoryStore(tmp_path).clean_abandoned() == [dead]
    assert in_progress.is_dir()


def test_a_taken_version_name_is_refused_not_overwritten(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    assert store.create_version(_record("v1", b"first"), b"first")
    assert not store.create_version(_record("v1", b"second"), b"second")
    assert store.read_artifact("fraud", "v1") == b"first"
    assert _temp_entries(tmp_path) == []


def test_versions_sort_by_number_not_text(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    for n in (10, 9, 1):
        assert store.create_version(_record(f"v{n}", b"x%d" % n), b"x%d" % n)
    assert [v.version for v in store.versions("fraud")] == ["v1", "v9", "v10"]
    assert store.model_ids() == ["fraud"]


def test_unreadable_records_are_reported_with_the_path(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    assert store.create_version(_record("v1", b"a"), b"a")
    record_file = tmp_path / "fraud" / "versions" / "v1" / "version.json"
    record_file.write_text('{"model_id": "fraud"}')
    with pytest.raises(RegistryCorruptError, match=r"v1/version.json: (version|created_ts)"):
        store.versions("fraud")
