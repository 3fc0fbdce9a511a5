"""benchmarks/throughput.py's split of an alert's visibility into stages, on a made-up log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from benchmarks.throughput import STAGES, alert_stages

T0 = 1_800_000_000.0


def line(at: float, event: str, **fields: object) -> str:
    stamp = datetime.fromtimestamp(T0 + at, UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"timestamp": stamp, "level": "info", "event": event, **fields}).decode()


def test_each_alert_is_split_at_its_processing_and_the_next_commit(tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    log.write_text(
        "\n".join(
            [
                "not json: a warning from a library",
                line(0.000, "checkpoint", events=5, commit_ms=4.0),
                line(0.010, "alert", signal="error", trigger_event_id="a"),
                line(0.011, "alert", signal="score", trigger_event_id="b"),
                line(0.050, "checkpoint", events=9, commit_ms=20.0),
                line(0.070, "alert", signal="error", trigger_event_id="c"),  # never committed
            ]
        )
    )
    sent = {"a": T0, "b": T0, "c": T0 + 0.060}
    visible = {"a": T0 + 0.060, "b": T0 + 0.060, "c": T0 + 0.2}
    stages = alert_stages(log, sent, visible)
    spans = [stages[name] for name in STAGES]
    assert spans == [
        [pytest.approx(10.0)],  # sent -> processed
        [pytest.approx(20.0)],  # -> the commit starts (50 - 20 ms)
        [pytest.approx(20.0)],  # the commit
        [pytest.approx(10.0)],  # -> visible
    ]
    assert sum(s[0] for s in spans) == pytest.approx((visible["a"] - sent["a"]) * 1000)
