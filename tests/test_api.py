"""The embedding API: ``from stream_mlops import Engine, Settings, load_settings, replay``."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import stream_mlops
from stream_mlops import Engine, Settings, load_settings, replay
from stream_mlops.events import EventError, LabeledEvent, encode, loads
from tests.streams import classifier

# 6,000 pairs at a 5% error rate, then 4,000 at 30%: alerts and a retrain request.
EVENTS = list(classifier(10_000, error_rate=lambda i: 0.05 if i < 6_000 else 0.3, seed=8))


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "stream_mlops", *args],
        input=stdin,
        capture_output=True,
        check=False,
    )


def test_the_names_are_the_core_s_own() -> None:
    from stream_mlops import config, engine, offline

    assert Engine is engine.Engine
    assert (Settings, load_settings) == (config.Settings, config.load_settings)
    assert replay is offline.replay
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = stream_mlops.Nope  # type: ignore[attr-defined]


def test_importing_the_package_loads_no_core() -> None:
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, stream_mlops; print(sorted({'river', 'pydantic'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "[]"


def test_version_comes_from_the_package_metadata() -> None:
    expected = importlib.metadata.version("stream-mlops")
    assert stream_mlops.__version__ == expected
    shown = run_cli("--version")
    assert shown.returncode == 0
    assert shown.stdout.decode().strip() == f"stream-mlops {expected}"


def test_replay_of_models_dicts_and_lines_equals_the_cli_byte_for_byte(tmp_path: Path) -> None:
    lines = [encode(event) + b"\n" for event in EVENTS]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(lines))
    cli = run_cli("replay", str(path))
    assert cli.returncode == 0, cli.stderr
    assert b'"type":"retrain_request"' in cli.stdout
    as_models = b"".join(encode(out) + b"\n" for out in replay(EVENTS))
    as_dicts = b"".join(encode(out) + b"\n" for out in replay(loads(line) for line in lines))
    with path.open("rb") as handle:
        as_lines = b"".join(encode(out) + b"\n" for out in replay(handle))
    as_text = b"".join(encode(out) + b"\n" for out in replay(line.decode() for line in lines))
    assert as_models == as_dicts == as_lines == as_text == cli.stdout


def test_replay_streams_outputs_as_they_are_made() -> None:
    consumed = 0

    def counted() -> object:
        nonlocal consumed
        for consumed, event in enumerate(EVENTS, start=1):  # noqa: B007
            yield event

    first = next(replay(counted()))  # type: ignore[arg-type]
    # The first window's performance estimate, once the warm-up calibrated the scores.
    assert first.type == "performance_estimate"
    assert consumed < len(EVENTS)


def test_a_malformed_event_is_named_or_reported_and_skipped() -> None:
    bad = {"type": "outcome", "event_id": "x", "ts": 0, "actual": [1]}
    events = [EVENTS[0], bad, "", b"not json", EVENTS[1]]
    with pytest.raises(EventError, match=r"^event 2: actual: value must be number, string or bool"):
        list(replay(events))
    reported: list[tuple[int, str]] = []
    assert list(replay(events, on_error=lambda n, e: reported.append((n, str(e))))) == []
    assert [n for n, _ in reported] == [2, 4]
    assert reported[1][1].startswith("(event): not JSON")


def test_an_own_engine_gives_stats_and_labeled_events() -> None:
    engine = Engine(load_settings(None), labeled_events=True)
    outputs = list(replay(EVENTS[:100], engine=engine))
    assert engine.stats.predictions + engine.stats.outcomes == 100
    assert any(type(out) is LabeledEvent for out in outputs)
    with pytest.raises(ValueError, match="settings or an engine, not both"):
        next(replay(EVENTS, Settings(), engine=engine))


def test_replay_rejects_what_is_not_an_event() -> None:
    with pytest.raises(TypeError, match="not int"):
        list(replay([1]))  # type: ignore[list-item]
    with pytest.raises(EventError, match="not JSON-serialisable"):
        list(replay([{"type": "outcome", "ts": object()}]))
