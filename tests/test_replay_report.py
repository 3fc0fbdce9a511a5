"""``replay --report`` and ``--summary-json``, and progress on a terminal.

The replay's stdout is the contract: the same input gives the same bytes, and
these options must not change one of them.
"""

from __future__ import annotations

import base64
import itertools
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from stream_mlops import offline
from stream_mlops.config import Settings
from stream_mlops.events import encode
from stream_mlops.replay_report import MAX_BUCKETS, ReplayRecorder
from tests.streams import classifier

PNG = b"\x89PNG\r\n\x1a\n"
CONFIG = 'unknown_models = "reject"\n[models.fraud]\n[models.churn]\n'


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two models, fraud's error and churn's feature f0 drifting, a malformed
    line and an event of a model the configuration refuses."""
    path = tmp_path_factory.mktemp("replay-report")
    fraud = classifier(8_000, error_rate=lambda i: 0.05 if i < 5_000 else 0.3, seed=3)
    churn = (
        event.model_copy(update={"event_id": f"churn-{event.event_id}"})
        for event in classifier(
            6_000,
            feature_means=lambda i: [0.0 if i < 3_000 else 1.5, 0.0],
            seed=4,
            model_id="churn",
        )
    )
    with (path / "events.jsonl").open("wb") as handle:
        for n, event in enumerate(
            e for pair in itertools.zip_longest(fraud, churn) for e in pair if e is not None
        ):
            handle.write(encode(event) + b"\n")
            if n == 10:
                handle.write(b"this is not json\n")
            if n == 20:
                handle.write(encode(event.model_copy(update={"model_id": "ghost"})) + b"\n")
    (path / "config.toml").write_text(CONFIG)
    return path


def replay_command(workdir: Path, *options: str) -> list[str]:
    events, config = str(workdir / "events.jsonl"), str(workdir / "config.toml")
    return [sys.executable, "-m", "stream_mlops", "replay", events, "--config", config, *options]


def replay(workdir: Path, *options: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(replay_command(workdir, *options), capture_output=True, check=False)


@pytest.fixture(scope="module")
def runs(workdir: Path) -> tuple[subprocess.CompletedProcess[bytes], ...]:
    plain = replay(workdir)
    full = replay(
        workdir,
        "--report",
        str(workdir / "report.html"),
        "--summary-json",
        str(workdir / "summary.json"),
    )
    return plain, full


def test_stdout_is_byte_identical_with_or_without_report_and_summary(
    runs: tuple[subprocess.CompletedProcess[bytes], ...],
) -> None:
    plain, full = runs
    assert plain.returncode == 0, plain.stderr
    assert full.returncode == 0, full.stderr
    assert plain.stdout == full.stdout
    assert b'"type":"drift_alert"' in plain.stdout
    assert b"labeled_event" not in full.stdout
    # Not on a terminal: no progress line.
    assert b"\r" not in full.stderr and plain.stderr == full.stderr


def test_the_summary_lists_what_stdout_and_stderr_say(
    runs: tuple[subprocess.CompletedProcess[bytes], ...], workdir: Path
) -> None:
    plain, _ = runs
    summary = orjson.loads((workdir / "summary.json").read_bytes())
    outputs = [orjson.loads(line) for line in plain.stdout.splitlines()]
    alerts = [o for o in outputs if o["type"] == "drift_alert"]
    requests = [o for o in outputs if o["type"] == "retrain_request"]
    assert summary["format"] == "stream-mlops-replay-summary/1"
    assert summary["lines"] == 28_002 and summary["events"] == 28_000
    assert (summary["predictions"], summary["outcomes"]) == (14_000, 14_000)
    assert (summary["malformed"], summary["refused"]) == (1, 1)
    rejected = summary["rejected"]
    assert [(r["line"], r["refused"]) for r in rejected] == [(12, False), (23, True)]
    assert rejected[0]["error"].startswith("(event): not JSON")
    assert "ghost" in rejected[1]["error"]
    assert [a["alert_id"] for a in summary["alerts"]["events"]] == [a["alert_id"] for a in alerts]
    assert summary["alerts"]["total"] == len(alerts)
    by_signal: dict[str, int] = {}
    for alert in alerts:
        by_signal[alert["signal"]] = by_signal.get(alert["signal"], 0) + 1
    assert summary["alerts"]["by_signal"] == dict(sorted(by_signal.items()))
    assert {"error", "feature:f0"} <= set(by_signal)
    assert summary["alerts"]["by_model"].keys() == {"fraud", "churn"}
    assert [r["request_id"] for r in summary["retrain_requests"]["events"]] == [
        r["request_id"] for r in requests
    ]
    # Each alert's line is the line of the event that fired it.
    lines = (workdir / "events.jsonl").read_bytes().splitlines()
    for alert in summary["alerts"]["events"]:
        fired = orjson.loads(lines[alert["line"] - 1])
        assert fired["event_id"] == alert["trigger_event_id"]
    assert summary["join"]["joined"] == 14_000
    assert summary["event_time"]["first"] == "2027-01-15T08:00:00Z"
    assert summary["timings"]["seconds"] > 0 and summary["timings"]["lines_per_second"] > 0
    # The stderr summary says the same.
    assert "28002 lines, 28000 events" in plain.stderr.decode()


def test_the_report_plots_each_models_signals_with_the_alerts(workdir: Path) -> None:
    page = (workdir / "report.html").read_text()
    images = re.findall(r"alt='([^']*)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    # The fraud stream's error rises on both classes: so do its class errors.
    # Both models' scores are calibrated on their first outcomes: their
    # performance estimates are drawn with the estimated error.
    assert [alt for alt, _png in images] == [
        "churn: error, feature:f0, estimated_error",
        "fraud: error, false_positive_rate, miss_rate, estimated_error",
    ]
    summary = orjson.loads((workdir / "summary.json").read_bytes())
    assert "performance estimates: " in page
    assert summary["performance_estimates"]["total"] > 0
    assert all(base64.b64decode(png).startswith(PNG) for _alt, png in images)
    assert "drift on fraud v1 error (glr)" in page  # the default detector
    assert "1 malformed, 1 refused" in page


def test_progress_is_drawn_on_a_terminal_and_erased_before_the_summary(
    workdir: Path, runs: tuple[subprocess.CompletedProcess[bytes], ...]
) -> None:
    controller, terminal = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            replay_command(workdir),
            stdout=subprocess.PIPE,
            stderr=terminal,
            check=False,
            timeout=300,
        )
    finally:
        os.close(terminal)
        reader.join(timeout=10)
        os.close(controller)
    shown = b"".join(chunks).replace(b"\r\n", b"\n")
    assert done.returncode == 0
    drawn = re.findall(
        rb"\r\x1b\[Kreplay: ([\d,]+) lines \((\d+)%\), \d+ alerts, [\d,]+ lines/s", shown
    )
    assert drawn and drawn[0] == (b"4,096", b"15")  # bytes read: lines are not all alike
    # Erased before the summary, which starts on a clean line.
    assert b"\r\x1b[Kreplay: 28002 lines, 28000 events" in shown
    # A bad line's message is not written over the progress either.
    assert b"\nline 23: " in shown or shown.startswith(b"line 12: ")
    assert done.stdout == runs[0].stdout


def test_signal_buckets_stay_bounded_and_keep_the_means() -> None:
    recorder = ReplayRecorder(Settings(), signals=True)
    lines = MAX_BUCKETS * 8 + 3
    for line in range(1, lines + 1):
        recorder._add(line, "m", "score", 1.0 if line > lines // 2 else 0.0)
    series = recorder._series[("m", "score")]
    assert len(series.sums) <= MAX_BUCKETS
    assert sum(series.counts) == lines
    assert sum(series.sums) == lines - lines // 2
    xs, ys = recorder.series("m", "score") or ([], [])
    assert ys[0] == 0.0 and ys[-1] == 1.0 and xs == sorted(xs)


def test_a_report_without_matplotlib_or_an_unwritable_output_stops_before_the_replay(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    events = workdir / "events.jsonl"
    missing = workdir / "no-such-dir" / "summary.json"
    assert offline.command(events, summary_path=missing) == 2
    assert "no-such-dir/summary.json: No such file or directory" in capsys.readouterr().err
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert offline.command(events, report_path=workdir / "r.html") == 2
    err = capsys.readouterr().err
    assert "--report: the report draws its plots with matplotlib" in err
    assert "stream-mlops[demo]" in err and "replay:" not in err.split("--report")[1]


def test_the_summary_counts_data_quality_problems_per_feature_and_kind(tmp_path: Path) -> None:
    """After the quality reference (the first 1,000 predictions): 30 nulls and 10
    strings in ``amount``, one event with a feature never seen."""
    events = tmp_path / "events.jsonl"
    with events.open("wb") as handle:
        for i in range(1_100):
            amount: object = 10.0 + i % 50
            if 1_000 <= i < 1_030:
                amount = None
            elif 1_030 <= i < 1_040:
                amount = "12,5"
            features = {"amount": amount, "merchant": "grocery"}
            if i == 1_050:
                features["device"] = "mobile"
            event = {
                "type": "prediction",
                "event_id": f"e{i}",
                "model_id": "fraud",
                "model_version": "v1",
                "ts": 1_800_000_000 + i,
                "features": features,
                "prediction": 0,
                "score": 0.1,
            }
            handle.write(orjson.dumps(event) + b"\n")
    summary_path = tmp_path / "summary.json"
    command = [sys.executable, "-m", "stream_mlops", "replay", str(events)]
    done = subprocess.run(
        [*command, "--summary-json", str(summary_path)],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(summary_path.read_bytes())
    assert summary["quality_problems"] == {
        "total": 41,
        "by_feature": {"amount": {"missing": 30, "type": 10}},
        "schema": 1,
    }
    # The stderr summary counts the same.
    assert b"quality:amount:missing=30" in done.stderr
