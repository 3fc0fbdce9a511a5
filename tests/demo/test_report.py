from __future__ import annotations

import base64
import re
import sys

import pytest

from stream_mlops.cli import main
from stream_mlops.demo.report import (
    PlottingUnavailableError,
    ServedOutcome,
    error_curve,
    plot_png,
    render_html,
    render_text,
    summarize,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(promote: bool = True) -> tuple[list[ServedOutcome], dict[str, object]]:
    outcomes = []
    for i in range(3000):
        version = "v2" if promote and i >= 2000 else "v1"
        wrong = (i % 50 == 0) if i < 1000 or version == "v2" else (i % 10 == 0)
        outcomes.append(ServedOutcome(i, version, float(wrong)))
    alert = {
        "alert_id": "a1",
        "signal": "error",
        "severity": "drift",
        "detector": "adwin",
        "trigger_event_id": "txn-7-0001234",
    }
    return outcomes, alert


def test_summary_measures_delay_and_error_in_each_phase() -> None:
    outcomes, alert = run()
    early = {**alert, "alert_id": "early", "trigger_event_id": "txn-7-0000500"}
    summary = summarize(
        events=3000,
        drift_index=1000,
        outcomes=outcomes,
        alerts=[early, alert],
        requests=[{"request_id": "r1"}],
        updates=[{"model_version": "v2", "metrics": {"challenger": 0.02}}],
        alert_seen_after_drift_s={"a1": 1.5},
    )
    # The alert before the drift is a false alarm, not the detection.
    assert summary.detection_index == 1234
    assert summary.detection_delay_events == 234
    assert summary.detection_delay_seconds == 1.5
    assert summary.promoted_version == "v2" and summary.promotion_index == 2000
    assert summary.error_before == 0.02
    assert summary.error_after_drift == 0.1
    assert summary.error_after_promotion == 0.02
    text = render_text(summary)
    assert "delay 234 transactions, 1.5 s" in text
    assert "promoted version: v2 (serving from transaction 2,000)" in text


def test_summary_says_when_nothing_was_detected_or_promoted() -> None:
    outcomes, _ = run(promote=False)
    summary = summarize(
        events=3000, drift_index=1000, outcomes=outcomes, alerts=[], requests=[], updates=[]
    )
    assert not summary.detected and not summary.promoted
    text = render_text(summary)
    assert "drift NOT detected" in text and "no version promoted" in text
    assert summary.error_after_promotion is None


def test_error_curve_is_a_trailing_window() -> None:
    outcomes = [ServedOutcome(i, "v1", float(i >= 5)) for i in range(10)]
    xs, ys = error_curve(outcomes, 5)
    assert xs == [4, 5, 6, 7, 8, 9]
    assert ys == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_html_embeds_the_png_plot() -> None:
    outcomes, alert = run()
    summary = summarize(
        events=3000,
        drift_index=1000,
        outcomes=outcomes,
        alerts=[alert],
        requests=[],
        updates=[{"model_version": "v2"}],
    )
    png = plot_png(summary, outcomes)
    assert png.startswith(PNG_MAGIC)
    page = render_html(summary, png)
    embedded = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert embedded is not None
    assert base64.b64decode(embedded.group(1)) == png
    assert "drift injected at transaction 1,000" in page


def test_an_alert_is_placed_where_it_became_visible_not_at_its_late_label() -> None:
    # Labels arrive out of order: the label that fires the detector after the
    # drift can belong to a transaction scored before it.
    outcomes, alert = run()
    late_label = {**alert, "trigger_event_id": "txn-7-0000990"}
    summary = summarize(
        events=3000,
        drift_index=1000,
        outcomes=outcomes,
        alerts=[late_label],
        requests=[],
        updates=[],
        alert_seen_at_index={"a1": 1420},
    )
    assert summary.detected
    assert summary.detection_index == 1420
    assert summary.detection_delay_events == 420
    without_positions = summarize(
        events=3000,
        drift_index=1000,
        outcomes=outcomes,
        alerts=[late_label],
        requests=[],
        updates=[],
    )
    assert not without_positions.detected


def test_without_matplotlib_the_plot_and_the_demo_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # None in sys.modules makes `import matplotlib` raise ImportError.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    outcomes, alert = run()
    summary = summarize(
        events=3000, drift_index=1000, outcomes=outcomes, alerts=[alert], requests=[], updates=[]
    )
    with pytest.raises(PlottingUnavailableError, match=r"stream-mlops\[demo\]"):
        plot_png(summary, outcomes)
    # The demo says so before it starts a broker or a service.
    assert main(["demo"]) == 2
    assert "matplotlib, which is not installed: pip install 'stream-mlops[demo]'" in (
        capsys.readouterr().err
    )
