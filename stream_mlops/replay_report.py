"""What a replay saw, for people (``replay --report``) and for programs (``--summary-json``).

A ``ReplayRecorder`` watches ``stream_mlops.offline.replay_lines``: each input
event with its line number, each output, each line refused. It keeps

* the alerts and retrain requests with the line that produced them, the
  performance estimates (the first ``MAX_ESTIMATES``, all counted), and the
  refused lines (the first ``MAX_REJECTED`` of them, all counted);
* with ``signals=True``, each model's signals over the file, as the engine
  computes them: ``error`` from every joined outcome, and label-free
  ``score``, ``estimated_error``, ``prediction`` and each numeric
  ``feature:<name>``, averaged in buckets of input lines. There are at most
  ``MAX_BUCKETS`` buckets per signal whatever the file's length (the bucket
  doubles in width when the file outgrows them), so memory stays bounded.

``summary_document`` is the machine-readable summary (its format is in
docs/contract.md), ``report_html`` the page: per model, its signals over the
input lines with a marker at each alert, drawn by ``stream_mlops.plotting``.
Nothing here writes to the replay's stdout, which stays byte-identical.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from stream_mlops.config import Settings
from stream_mlops.engine import EngineStats, Output
from stream_mlops.events import (
    DriftAlert,
    EventError,
    InputEvent,
    LabeledEvent,
    PerformanceEstimate,
    PredictionEvent,
    RetrainRequest,
    utc_datetime,
)
from stream_mlops.model_task import Task
from stream_mlops.plotting import Curve, Line, Panel, html_page, plot_png
from stream_mlops.quality import SCHEMA
from stream_mlops.signals import error_value, estimated_error, infer_task, numeric

__all__ = [
    "SUMMARY_FORMAT",
    "ReplayRecorder",
    "quality_problems",
    "report_html",
    "summary_document",
]

SUMMARY_FORMAT: Final = "stream-mlops-replay-summary/1"
# Points per signal: finer than a 1000-pixel-wide plot can show.
MAX_BUCKETS: Final = 1024
# Refused lines listed in the summary (all of them are counted).
MAX_REJECTED: Final = 1000
# Performance estimates listed in the summary and drawn (all of them are
# counted): one per 1,000 predictions by default, ten million predictions' worth.
MAX_ESTIMATES: Final = 10_000
# Panels per model in the report: the error, then the signals that alerted first.
MAX_PANELS: Final = 6
# Markers labelled per panel; beyond, lines only (labels would overprint).
MAX_LABELS: Final = 12
# The curve is a trailing mean over this share of the buckets: a 5% error rate
# over buckets of a few dozen lines is noise, over a fiftieth of the file a rate.
SMOOTHING_SHARE: Final = 50


class _Series:
    """Sums and counts of one signal's values per bucket of input lines."""

    __slots__ = ("counts", "sums")

    def __init__(self) -> None:
        self.sums = array("d")
        self.counts = array("d")

    def add(self, bucket: int, value: float) -> None:
        if bucket >= len(self.sums):
            grow = bucket + 1 - len(self.sums)
            self.sums.extend([0.0] * grow)
            self.counts.extend([0.0] * grow)
        self.sums[bucket] += value
        self.counts[bucket] += 1.0

    def halve(self) -> None:
        """Merge neighbouring buckets: the bucket width doubled."""
        for values in (self.sums, self.counts):
            merged = [
                values[i] + (values[i + 1] if i + 1 < len(values) else 0.0)
                for i in range(0, len(values), 2)
            ]
            values[:] = array("d", merged)

    def smoothed(self, width: int) -> tuple[list[float], list[float]]:
        """(bucket centre line, trailing mean over ``SMOOTHING_SHARE``th of the buckets)."""
        span = max(1, len(self.sums) // SMOOTHING_SHARE)
        xs: list[float] = []
        ys: list[float] = []
        total = count = 0.0
        for i, (s, c) in enumerate(zip(self.sums, self.counts, strict=True)):
            total += s
            count += c
            if i >= span:
                total -= self.sums[i - span]
                count -= self.counts[i - span]
            if c and count:
                xs.append(i * width + width / 2)
                ys.append(total / count)
        return xs, ys


@dataclass(frozen=True)
class Rejected:
    line: int
    error: str
    #: the engine refused a valid event (e.g. an unknown model), rather than a malformed line
    refused: bool


class ReplayRecorder:
    """Watches one replay: its outputs, its refused lines and (optionally) its signals."""

    def __init__(self, settings: Settings, *, signals: bool = False) -> None:
        self.settings = settings
        #: whether signal values are kept (for the report); the engine must then
        #: publish labeled events, which carry the error signal
        self.signals = signals
        self.alerts: list[tuple[int, DriftAlert]] = []
        self.requests: list[tuple[int, RetrainRequest]] = []
        self.estimates: list[tuple[int, PerformanceEstimate]] = []
        self.estimates_total = 0
        self.estimates_outside_band = 0
        self.rejected: list[Rejected] = []
        self.malformed = 0
        self.refused = 0
        self.first_event_time: float | None = None
        self.last_event_time: float | None = None
        self._width = 1  # input lines per bucket
        self._series: dict[tuple[str, str], _Series] = {}
        self._tasks: dict[str, Task] = {}

    # -- what the replay reports -------------------------------------------------

    def event(self, line: int, event: InputEvent) -> None:
        epoch = event.epoch
        if self.first_event_time is None or epoch < self.first_event_time:
            self.first_event_time = epoch
        if self.last_event_time is None or epoch > self.last_event_time:
            self.last_event_time = epoch
        if self.signals and isinstance(event, PredictionEvent):
            self._prediction(line, event)

    def output(self, line: int, output: Output) -> None:
        if isinstance(output, LabeledEvent):
            if self.signals:
                task = self._tasks.get(output.model_id, Task.CLASSIFICATION)
                error = error_value(task, output.prediction, output.actual)
                if error is not None:
                    self._add(line, output.model_id, "error", error)
        elif isinstance(output, DriftAlert):
            self.alerts.append((line, output))
        elif isinstance(output, RetrainRequest):
            self.requests.append((line, output))
        elif isinstance(output, PerformanceEstimate):
            self.estimates_total += 1
            self.estimates_outside_band += output.estimate.outside_band
            if len(self.estimates) < MAX_ESTIMATES:
                self.estimates.append((line, output))

    def reject(self, line: int, error: EventError, *, refused: bool) -> None:
        """A line that is no event (malformed), or an event the engine refused."""
        if refused:
            self.refused += 1
        else:
            self.malformed += 1
        if len(self.rejected) < MAX_REJECTED:
            self.rejected.append(Rejected(line, str(error), refused))

    # -- signals -------------------------------------------------------------------

    def _prediction(self, line: int, event: PredictionEvent) -> None:
        model = event.model_id
        task = self._tasks.get(model)
        if task is None:
            task = self._tasks[model] = self.settings.model(model).task or infer_task(event)
        add = self._add
        if event.score is not None:
            add(line, model, "score", event.score)
            if task == Task.CLASSIFICATION:
                # The score taken as calibrated; the engine's calibrated windows
                # are drawn next to it (performance estimates).
                add(line, model, "estimated_error", estimated_error(event.prediction, event.score))
        prediction = numeric(event.prediction)
        if prediction is not None:
            add(line, model, "prediction", prediction)
        for name, value in event.features.items():
            number = numeric(value)
            if number is not None:
                add(line, model, f"feature:{name}", number)

    def _add(self, line: int, model: str, signal: str, value: float) -> None:
        bucket = (line - 1) // self._width
        while bucket >= MAX_BUCKETS:
            self._width *= 2
            for series in self._series.values():
                series.halve()
            bucket = (line - 1) // self._width
        found = self._series.get((model, signal))
        if found is None:
            found = self._series[(model, signal)] = _Series()
        found.add(bucket, value)

    def models(self) -> list[str]:
        return sorted({m for m, _s in self._series} | {a.model_id for _l, a in self.alerts})

    def series(self, model: str, signal: str) -> tuple[list[float], list[float]] | None:
        """(line, value) points of one signal, smoothed; None if it had no values."""
        found = self._series.get((model, signal))
        return None if found is None else found.smoothed(self._width)

    def panels_of(self, model: str) -> list[str]:
        """The signals a model's plot shows: the error, then those that alerted, first first."""
        chosen = [s for s in ("error",) if (model, s) in self._series]
        for _line, alert in self.alerts:
            if alert.model_id == model and alert.signal not in chosen:
                chosen.append(alert.signal)
        if len(chosen) == 0 and (model, "score") in self._series:
            chosen.append("score")
        if "estimated_error" not in chosen and any(e.model_id == model for _, e in self.estimates):
            chosen.append("estimated_error")
        return chosen[:MAX_PANELS]

    def estimate_points(self, model: str) -> tuple[list[float], list[float]]:
        """(line, estimated error) of each published window of a model."""
        mine = [
            (line, e.estimate.estimated_error) for line, e in self.estimates if e.model_id == model
        ]
        return [float(line) for line, _ in mine], [value for _, value in mine]


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return utc_datetime(epoch).isoformat().replace("+00:00", "Z")


def quality_problems(by_signal: Mapping[str, int]) -> dict[str, Any]:
    """The data-quality problems counted (``EngineStats.quality_problems``, summed
    over models), per feature and kind.

    >>> quality_problems({"quality:amount:missing": 3, "quality:amount:type": 1,
    ...                   "quality:schema": 2})
    {'total': 6, 'by_feature': {'amount': {'missing': 3, 'type': 1}}, 'schema': 2}
    """
    by_feature: dict[str, dict[str, int]] = {}
    schema = 0
    for signal, count in by_signal.items():
        if signal == SCHEMA:
            schema += count
            continue
        # quality:<feature>:<kind>; a feature's name may itself hold a colon
        feature, kind = signal.removeprefix("quality:").rsplit(":", 1)
        by_feature.setdefault(feature, {})[kind] = count
    return {
        "total": sum(by_signal.values()),
        "by_feature": {f: dict(sorted(k.items())) for f, k in sorted(by_feature.items())},
        "schema": schema,
    }


def summary_document(
    recorder: ReplayRecorder,
    stats: EngineStats,
    *,
    file: str,
    config: str | None,
    lines: int,
    seconds: float,
) -> dict[str, Any]:
    """The machine-readable summary of one replay (format ``SUMMARY_FORMAT``)."""
    alerts = [a for _line, a in recorder.alerts]
    return {
        "format": SUMMARY_FORMAT,
        "file": file,
        "config": config,
        "lines": lines,
        "events": stats.predictions + stats.outcomes,
        "predictions": stats.predictions,
        "outcomes": stats.outcomes,
        "malformed": recorder.malformed,
        "refused": recorder.refused,
        "rejected": [
            {"line": r.line, "error": r.error, "refused": r.refused} for r in recorder.rejected
        ],
        "join": {
            "joined": stats.joined,
            "duplicates": stats.duplicates,
            "expired_predictions": stats.expired_predictions,
            "orphan_outcomes_expired": stats.orphan_outcomes_expired,
            "evicted": stats.evicted,
            "pending": stats.pending,
            "unscored_joins": stats.unscored_joins,
        },
        "alerts": {
            "total": len(alerts),
            "by_signal": dict(sorted(Counter(a.signal for a in alerts).items())),
            "by_severity": dict(sorted(Counter(a.severity for a in alerts).items())),
            "by_model": dict(sorted(Counter(a.model_id for a in alerts).items())),
            "suppressed": stats.suppressed_alerts,
            "events": [
                {
                    "line": line,
                    "alert_id": a.alert_id,
                    "model_id": a.model_id,
                    "model_version": a.model_version,
                    "signal": a.signal,
                    "detector": a.detector,
                    "severity": a.severity,
                    "ts": _iso(a.ts.timestamp()),
                    "trigger_event_id": a.trigger_event_id,
                }
                for line, a in recorder.alerts
            ],
        },
        "retrain_requests": {
            "total": len(recorder.requests),
            "suppressed": stats.suppressed_retrain_requests,
            "events": [
                {
                    "line": line,
                    "request_id": r.request_id,
                    "model_id": r.model_id,
                    "model_version": r.model_version,
                    "reason_alert_ids": list(r.reason_alert_ids),
                }
                for line, r in recorder.requests
            ],
        },
        "performance_estimates": {
            "total": recorder.estimates_total,
            "outside_band": recorder.estimates_outside_band,
            "events": [
                {
                    "line": line,
                    "estimate_id": e.estimate_id,
                    "model_id": e.model_id,
                    "model_version": e.model_version,
                    "window_start_event_id": e.window_start.event_id,
                    "last_event_id": e.last_event_id,
                    **e.estimate.model_dump(),
                }
                for line, e in recorder.estimates
            ],
        },
        "quality_problems": quality_problems(stats.quality_problems),
        "event_time": {
            "first": _iso(recorder.first_event_time),
            "last": _iso(recorder.last_event_time),
        },
        "timings": {
            "seconds": round(seconds, 3),
            "lines_per_second": round(lines / seconds) if seconds > 0 else None,
        },
    }


_SEVERITY_COLORS: Final = {"drift": "#c00000", "warning": "#e69f00"}
_REQUEST_COLOR: Final = "#2e7d32"
_ESTIMATE_COLOR: Final = "#6a3d9a"


def _panels(recorder: ReplayRecorder, model: str) -> Iterator[Panel]:
    for signal in recorder.panels_of(model):
        points = recorder.series(model, signal)
        curves = [Curve(points[0], points[1], signal)] if points is not None else []
        if signal == "estimated_error":
            xs, ys = recorder.estimate_points(model)
            if xs:
                curves.append(Curve(xs, ys, "calibrated estimate per window", _ESTIMATE_COLOR))
        marks = [
            Line(line, f"{a.severity}: {a.detector}", _SEVERITY_COLORS[a.severity])
            for line, a in recorder.alerts
            if a.model_id == model and a.signal == signal
        ]
        if signal == "error":
            marks += [
                Line(line, "retrain request", _REQUEST_COLOR, align="left")
                for line, r in recorder.requests
                if r.model_id == model
            ]
        if len(marks) > MAX_LABELS:
            marks = [Line(m.x, None, m.color) for m in marks]
        yield Panel(signal, curves, marks)


def report_html(recorder: ReplayRecorder, summary: Mapping[str, Any]) -> str:
    """The report page: the summary's figures, then per model its signals with the alerts."""
    alerts: Mapping[str, Any] = summary["alerts"]
    by_signal = ", ".join(f"{k} {v}" for k, v in alerts["by_signal"].items()) or "none"
    items = [
        f"file: {summary['file']}"
        + (f", configuration: {summary['config']}" if summary["config"] else ""),
        f"{summary['lines']:,} lines: {summary['predictions']:,} predictions, "
        f"{summary['outcomes']:,} outcomes, {summary['malformed']:,} malformed, "
        f"{summary['refused']:,} refused",
        f"event time: {summary['event_time']['first']} to {summary['event_time']['last']}",
        f"joined {summary['join']['joined']:,}, expired {summary['join']['expired_predictions']:,}"
        f" predictions, evicted {summary['join']['evicted']:,}",
        f"alerts: {alerts['total']:,} (by signal: {by_signal})",
        f"retrain requests: {summary['retrain_requests']['total']:,}",
    ]
    estimates: Mapping[str, Any] = summary["performance_estimates"]
    if estimates["total"]:
        items.append(
            f"performance estimates: {estimates['total']:,} windows, "
            f"{estimates['outside_band']:,} outside the reference band"
        )
    items += [
        f"line {a['line']:,}: {a['severity']} on {a['model_id']} {a['model_version']} "
        f"{a['signal']} ({a['detector']}) at {a['ts']}"
        for a in alerts["events"][:50]
    ]
    if alerts["total"] > 50:
        items.append(
            f"... and {alerts['total'] - 50:,} more alerts (--summary-json lists them all)"
        )
    images = []
    for model in recorder.models():
        panels = list(_panels(recorder, model))
        if panels:
            png = plot_png(
                panels,
                title=f"{model}: signals over the replay, with its alerts",
                xlabel="input line",
            )
            images.append((f"{model}: {', '.join(p.ylabel for p in panels)}", png))
    return html_page("stream-mlops replay report", items, images)
