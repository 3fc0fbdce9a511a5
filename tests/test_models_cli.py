"""``stream-mlops models ...``: tables for people, --json for machines, exit codes."""

from __future__ import annotations

import argparse
import io
import json
import pickle
import sys
from pathlib import Path

import pytest
from river import compose

from stream_mlops.model_task import Task
from stream_mlops.models_cli import add_arguments, command
from stream_mlops.registry import ModelRegistry, OffsetRange, TrainingWindow
from stream_mlops.retrain import (
    LabeledExample,
    ModelSpec,
    Promoted,
    RetrainOrder,
    RetrainSession,
    record_promotion,
)
from tests.retrain.conftest import CHAMPION_EVENTS, register_champion
from tests.retrain.streams import fraud_stream


def _run(argv: list[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="stream-mlops models")
    add_arguments(parser)
    out = io.StringIO()
    code = command(parser.parse_args(argv), out=out)
    return code, out.getvalue()


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    registry = ModelRegistry(tmp_path)
    registry.register("fraud", b"a", created_ts=1_795_784_400.0, metrics={"loss": 0.25})
    window = TrainingWindow(
        ranges=(OffsetRange(topic="labeled-events", partition=2, first_offset=40, last_offset=90),),
        start_ts=1_795_784_000.0,
        start_event_id="txn-1",
        event_count=51,
    )
    registry.register(
        "fraud",
        b"b",
        created_ts=1_795_788_000.0,
        parent_version="v1",
        training_window=window,
        metrics={"loss": 0.1, "champion_loss": 0.25},
    )
    registry.register("demand", b"c", created_ts=1_795_790_000.0, metrics={"loss": 7.5})
    registry.promote("fraud", "v2", ts=1_795_788_000.0, reason="beat v1")
    return tmp_path


def test_list_prints_a_table_with_the_champion_marked(registry_dir: Path) -> None:
    code, out = _run(["--registry", str(registry_dir), "list"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["MODEL", "VERSION", "PARENT", "CREATED", "EVENTS", "LOSS", "SHA256"]
    rows = [line.split() for line in lines[1:]]
    assert [row[:3] for row in rows] == [
        ["demand", "v1", "-"],
        ["fraud", "v1", "-"],
        ["fraud", "v2*", "v1"],
    ]
    assert rows[2][3] == "2026-11-27T14:00:00.000Z"
    assert rows[2][4:6] == ["51", "0.1"]


def test_list_json_is_machine_readable(registry_dir: Path) -> None:
    code, out = _run(["--registry", str(registry_dir), "list", "--model", "fraud", "--json"])
    assert code == 0
    rows = json.loads(out)
    assert [(r["version"], r["champion"]) for r in rows] == [("v1", False), ("v2", True)]
    assert rows[1]["training_window"]["ranges"][0]["partition"] == 2


def test_show_gives_window_metrics_and_lineage(registry_dir: Path) -> None:
    code, out = _run(["--registry", str(registry_dir), "show", "fraud", "v2"])
    assert code == 0
    assert "version       v2  (champion)" in out
    assert "lineage       v2 <- v1" in out
    assert "offsets     labeled-events[2] 40..90" in out
    assert "champion_loss" in out
    assert "beat v1" in out
    code, out = _run(["--registry", str(registry_dir), "show", "fraud", "v2", "--json"])
    data = json.loads(out)
    assert (data["lineage"], data["champion"]) == (["v2", "v1"], True)
    assert data["promotions"][0]["reason"] == "beat v1"


def test_search_filters_by_metric_time_and_parent(registry_dir: Path) -> None:
    def versions(*argv: str) -> list[str]:
        code, out = _run(["--registry", str(registry_dir), "search", *argv, "--json"])
        assert code == 0
        return [f"{r['model_id']}/{r['version']}" for r in json.loads(out)]

    assert versions("--metric", "loss", "--max", "0.2") == ["fraud/v2"]
    assert versions("--model", "fraud", "--parent", "v1") == ["fraud/v2"]
    assert versions("--created-after", "2026-11-27T14:00:00Z") == ["demand/v1", "fraud/v2"]
    assert versions("--created-before", "1795784400") == ["fraud/v1"]
    code, out = _run(["--registry", str(registry_dir), "search", "--metric", "auc"])
    assert code == 0
    assert "(no versions)" in out


def test_unknown_versions_fail_with_a_message(
    registry_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _run(["--registry", str(registry_dir), "show", "fraud", "v9"])
    assert code == 1
    assert "fraud v9: no such version" in capsys.readouterr().err


def _write_jsonl(path: Path, events: list[LabeledExample]) -> None:
    with path.open("w") as out:
        for e in events:
            record = {
                "type": "labeled_event",
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
            out.write(json.dumps(record) + "\n")


def test_reproduce_from_a_jsonl_file_and_from_a_window_reader(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    spec = ModelSpec.for_task(Task.CLASSIFICATION)
    register_champion(registry, spec, fraud_stream(1, CHAMPION_EVENTS))
    events = list(fraud_stream(2, 2000, start_offset=CHAMPION_EVENTS, flipped=True))
    start = RetrainOrder("fraud", "v1", events[0].ts, events[0].event_id)
    session = RetrainSession.from_registry(registry, start, spec=spec)
    for event in events:
        session.observe(event)
    assert isinstance(session.decision, Promoted)
    record_promotion(registry, session.decision, ts=2.0)
    events_file = tmp_path / "window.jsonl"
    _write_jsonl(events_file, events)

    argv = ["--registry", str(tmp_path / "registry"), "reproduce", "fraud", "v2"]
    code, out = _run([*argv, "--events", str(events_file)])
    assert code == 0, out
    assert "fraud v2: same content hash" in out

    seen: list[TrainingWindow] = []

    def read_window(window: TrainingWindow) -> list[LabeledExample]:
        seen.append(window)
        return events

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    buffer = io.StringIO()
    code = command(parser.parse_args([*argv, "--json"]), read_window=read_window, out=buffer)
    result = json.loads(buffer.getvalue())
    assert code == 0
    assert result["matches"] is True
    assert result["rebuilt_sha256"] == registry.get("fraud", "v2").content_hash
    assert seen == [registry.get("fraud", "v2").training_window]

    _write_jsonl(events_file, events[:100])
    code, _ = _run([*argv, "--events", str(events_file)])
    assert code == 1


def test_a_mismatch_under_a_parent_with_sets_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    registry.register("fraud", pickle.dumps(compose.Select("amount", "hour")), created_ts=0.0)
    window = TrainingWindow(
        ranges=(OffsetRange(topic="labeled", partition=0, first_offset=0, last_offset=9),),
        start_ts=0.0,
    )
    spec = ModelSpec.for_task(Task.CLASSIFICATION)
    registry.register(
        "fraud",
        b"a child",
        created_ts=1.0,
        parent_version="v1",
        training_window=window,
        config={"model": dict(spec.to_config())},
    )
    # A rebuild in another process (another hash seed) that came out different.
    # (The package exports the function under the module's name: take the module.)
    monkeypatch.setattr(
        sys.modules["stream_mlops.retrain.reproduce"], "reproduce", lambda *_: "0" * 64
    )
    argv = ["--registry", str(tmp_path / "registry"), "reproduce", "fraud", "v2"]
    code, out = _run([*argv, "--events", str(tmp_path / "unused.jsonl")])
    assert code == 1
    assert "DIFFERENT content hash" in out
    assert "the parent v1 holds sets" in out
