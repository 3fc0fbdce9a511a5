from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from stream_mlops import offline
from stream_mlops.config import Settings
from stream_mlops.engine import Engine
from stream_mlops.events import encode
from tests.streams import classifier


@pytest.fixture
def stream_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    rate = lambda i: 0.05 if i < 6_000 else 0.3  # noqa: E731
    with path.open("wb") as handle:
        for n, event in enumerate(classifier(10_000, error_rate=rate, seed=8)):
            handle.write(encode(event) + b"\n")
            if n == 5:
                handle.write(b'{"type": "prediction", "event_id": "bad"}\n')
            if n == 6:
                handle.write(b"this is not json\n")
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "stream_mlops", *args], capture_output=True, check=False
    )


def test_replay_is_deterministic_and_reports_bad_lines(stream_file: Path) -> None:
    first = run_cli("replay", str(stream_file))
    second = run_cli("replay", str(stream_file))
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stdout.count(b'"type":"drift_alert"') >= 1
    assert b'"type":"retrain_request"' in first.stdout
    assert b"labeled_event" not in first.stdout
    errors = first.stderr.decode().splitlines()
    assert errors[0].startswith("line 7: model_id: Field required;")
    assert errors[1].startswith("line 9: (event): not JSON")
    summary = errors[-1]
    assert "20002 lines, 20000 events (10000 predictions, 10000 outcomes), 2 malformed" in summary
    assert "joined 10000" in summary
    assert "alerts by signal: error=" in summary


def test_replay_with_config_and_bad_config(stream_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[defaults.detectors]\nerror = []\n")
    quiet = run_cli("replay", str(stream_file), "--config", str(config))
    assert quiet.returncode == 0
    assert b'"signal":"error"' not in quiet.stdout
    config.write_text("[join]\nmax_pending = 0\n")
    bad = run_cli("replay", str(stream_file), "--config", str(config))
    assert bad.returncode == 2
    assert b"join.max_pending: Input should be greater than 0" in bad.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("replay", str(tmp_path / "absent.jsonl"))
    assert result.returncode == 2
    assert b"absent.jsonl" in result.stderr


def test_schema_command() -> None:
    ok = run_cli("schema", "outcome")
    assert ok.returncode == 0 and b'"OutcomeEvent"' in ok.stdout
    bad = run_cli("schema", "nope")
    assert bad.returncode == 2 and b"unknown event type" in bad.stderr


def test_replay_function_counts_lines(tmp_path: Path) -> None:
    out, err = io.BytesIO(), io.StringIO()
    result = offline.replay_lines([b"\n", b"{}\n"], Engine(Settings()), out, err)
    assert (result.lines, result.malformed) == (2, 1)
    assert err.getvalue() == "line 2: type: required, one of 'prediction', 'outcome'\n"
