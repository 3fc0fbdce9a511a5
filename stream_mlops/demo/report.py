"""The demo's summary, from what the closed loop published: pure, no Kafka.

Inputs are the labeled events (each served prediction joined with its outcome),
the alerts, retrain requests and model updates read back with
``read_committed``, plus the scenario's known drift point. Output: a
``DemoSummary`` with the figures people ask about (when was the drift
detected, what was promoted, how the error rate moved), a text rendering, and
an HTML page with the error-rate plot embedded as a PNG.

The plot and the page are drawn by ``stream_mlops.plotting`` (as the replay's
report is), with matplotlib: the ``demo`` extra.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_mlops.plotting import (
    Curve,
    Line,
    Panel,
    PlottingUnavailableError,
    html_page,
    pyplot,
)
from stream_mlops.plotting import (
    plot_png as plot_panels,
)

__all__ = [
    "DemoSummary",
    "Marker",
    "PlottingUnavailableError",
    "ServedOutcome",
    "error_curve",
    "event_index",
    "plot_png",
    "pyplot",
    "render_html",
    "render_text",
    "summarize",
]


@dataclass(frozen=True)
class ServedOutcome:
    """One labeled event: transaction ``index`` as served by ``model_version``."""

    index: int
    model_version: str
    error: float


@dataclass(frozen=True)
class Marker:
    index: int
    label: str


@dataclass
class DemoSummary:
    events: int
    drift_index: int
    labeled: int
    detection_index: int | None = None
    detection_delay_events: int | None = None
    detection_delay_seconds: float | None = None
    first_alert: Mapping[str, Any] | None = None
    retrain_request: Mapping[str, Any] | None = None
    promoted_version: str | None = None
    promotion_index: int | None = None
    error_before: float | None = None
    error_after_drift: float | None = None
    error_after_promotion: float | None = None
    markers: list[Marker] = field(default_factory=list)

    @property
    def detected(self) -> bool:
        return self.detection_index is not None

    @property
    def promoted(self) -> bool:
        return self.promoted_version is not None


def event_index(event_id: str) -> int:
    """The transaction number at the end of a simulator's event id.

    >>> event_index("txn-7-0012345")
    12345
    """
    return int(event_id.rsplit("-", 1)[1])


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(
    *,
    events: int,
    drift_index: int,
    outcomes: Sequence[ServedOutcome],
    alerts: Sequence[Mapping[str, Any]],
    requests: Sequence[Mapping[str, Any]],
    updates: Sequence[Mapping[str, Any]],
    alert_seen_after_drift_s: Mapping[str, float] | None = None,
    alert_seen_at_index: Mapping[str, int] | None = None,
) -> DemoSummary:
    """The figures of one demo run.

    An alert is placed at ``alert_seen_at_index[alert_id]`` (how many
    transactions had been scored when it became visible) where known, else at
    its trigger event. The trigger of an error alert is the outcome whose join
    fired the detector, and labels arrive out of order: after a drift, the
    firing label can belong to a transaction from before it.

    >>> outcomes = [
    ...     ServedOutcome(i, "v1" if i < 80 else "v2", float(50 <= i < 80)) for i in range(100)
    ... ]
    >>> alert = {"alert_id": "a", "signal": "error", "severity": "drift",
    ...          "trigger_event_id": "txn-1-0000060"}
    >>> s = summarize(events=100, drift_index=50, outcomes=outcomes,
    ...               alerts=[alert], requests=[{"request_id": "r"}],
    ...               updates=[{"model_version": "v2", "metrics": {}}])
    >>> (s.detection_delay_events, s.promoted_version, s.promotion_index)
    (10, 'v2', 80)
    >>> (s.error_before, s.error_after_drift, s.error_after_promotion)
    (0.0, 1.0, 0.0)
    """
    ordered = sorted(outcomes, key=lambda o: o.index)
    summary = DemoSummary(events=events, drift_index=drift_index, labeled=len(ordered))
    drift_alerts = [
        a for a in alerts if a.get("signal") == "error" and a.get("severity") == "drift"
    ]
    seen_at = alert_seen_at_index or {}

    def position(alert: Mapping[str, Any]) -> int:
        known = seen_at.get(str(alert["alert_id"]))
        return known if known is not None else event_index(str(alert["trigger_event_id"]))

    after = [a for a in drift_alerts if position(a) >= drift_index]
    if after:
        first = min(after, key=position)
        summary.first_alert = first
        summary.detection_index = position(first)
        summary.detection_delay_events = summary.detection_index - drift_index
        if alert_seen_after_drift_s is not None:
            summary.detection_delay_seconds = alert_seen_after_drift_s.get(str(first["alert_id"]))
    if requests:
        summary.retrain_request = requests[0]
    if updates:
        summary.promoted_version = str(updates[0]["model_version"])
        served_new = [o.index for o in ordered if o.model_version == summary.promoted_version]
        summary.promotion_index = min(served_new) if served_new else None
    end_of_champion = summary.promotion_index if summary.promotion_index is not None else events
    summary.error_before = _mean([o.error for o in ordered if o.index < drift_index])
    summary.error_after_drift = _mean(
        [o.error for o in ordered if drift_index <= o.index < end_of_champion]
    )
    if summary.promotion_index is not None:
        summary.error_after_promotion = _mean(
            [o.error for o in ordered if o.index >= summary.promotion_index]
        )
    summary.markers = [Marker(drift_index, "drift injected")]
    summary.markers += [
        Marker(position(a), f"alert: {a['signal']} {a['severity']}")
        for a in alerts
        if a.get("signal") == "error"
    ]
    if summary.promotion_index is not None:
        summary.markers.append(
            Marker(summary.promotion_index, f"{summary.promoted_version} serving")
        )
    return summary


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def render_text(summary: DemoSummary) -> str:
    """The summary people read at the end of ``stream-mlops demo``."""
    lines = [
        f"transactions: {summary.events:,}, labeled: {summary.labeled:,}",
        f"drift injected at transaction {summary.drift_index:,}",
    ]
    if summary.detected:
        seconds = (
            f", {summary.detection_delay_seconds:.1f} s"
            if summary.detection_delay_seconds is not None
            else ""
        )
        assert summary.first_alert is not None
        lines.append(
            f"drift detected at transaction {summary.detection_index:,} "
            f"(delay {summary.detection_delay_events:,} transactions{seconds}; "
            f"{summary.first_alert['detector']} on error, alert {summary.first_alert['alert_id']})"
        )
    else:
        lines.append("drift NOT detected on the error signal")
    if summary.retrain_request is not None:
        lines.append(f"retrain request: {summary.retrain_request['request_id']}")
    else:
        lines.append("no retrain request")
    if summary.promoted:
        where = (
            f" (serving from transaction {summary.promotion_index:,})"
            if summary.promotion_index is not None
            else ""
        )
        lines.append(f"promoted version: {summary.promoted_version}{where}")
    else:
        lines.append("no version promoted")
    lines.append(
        "error rate: before drift "
        f"{_pct(summary.error_before)}, after drift {_pct(summary.error_after_drift)}, "
        f"after promotion {_pct(summary.error_after_promotion)}"
    )
    return "\n".join(lines)


def error_curve(outcomes: Sequence[ServedOutcome], window: int) -> tuple[list[int], list[float]]:
    """Rolling error rate over the last ``window`` labeled transactions.

    >>> error_curve([ServedOutcome(i, "v1", float(i % 2)) for i in range(4)], 2)
    ([1, 2, 3], [0.5, 0.5, 0.5])
    """
    ordered = sorted(outcomes, key=lambda o: o.index)
    xs: list[int] = []
    ys: list[float] = []
    total = 0.0
    for i, outcome in enumerate(ordered):
        total += outcome.error
        if i >= window:
            total -= ordered[i - window].error
        if i >= window - 1:
            xs.append(outcome.index)
            ys.append(total / window)
    return xs, ys


def plot_png(summary: DemoSummary, outcomes: Sequence[ServedOutcome], window: int = 500) -> bytes:
    """The error rate over time with markers for drift, alerts and promotion, as PNG."""
    xs, ys = error_curve(outcomes, window)
    colors = {"drift injected": "#c00000"}
    lines = [
        Line(
            marker.index,
            marker.label,
            colors.get(marker.label, "#e69f00" if marker.label.startswith("alert") else "#2e7d32"),
            # Detection and promotion are often close: their labels go on
            # opposite sides of their lines.
            align="left" if marker.label.endswith("serving") else "right",
        )
        for marker in summary.markers
    ]
    curve = Curve(xs, [100 * y for y in ys], f"error rate ({window}-event window)")
    return plot_panels(
        [Panel("error rate (%)", [curve], lines)],
        title="stream-mlops demo: fraud model error, drift, detection and promotion",
        xlabel="transaction",
    )


def render_html(summary: DemoSummary, png: bytes) -> str:
    """A self-contained page: the summary and the plot (embedded, no files beside it)."""
    return html_page(
        "stream-mlops demo report",
        render_text(summary).splitlines(),
        [("error rate over time", png)],
    )
