"""Charts as inline SVG, drawn on the server from the view model (pure).

The page ships no chart library: each chart is a small SVG document built
here, so it renders offline, the same in every browser, and is testable as a
string. Colours and fonts come from the page's stylesheet through classes
(``line-0``, ``mark-drift``, ...): no inline styles, so the page's
Content-Security-Policy can forbid them. Every value shown as a shape also has
a ``<title>`` (the browser's tooltip), and axes carry labels, so a chart reads
without hovering.

>>> svg = sparkline([Point(0, 0.05), Point(2, 0.25)], t_range=(0, 2))
>>> svg.startswith("<svg") and "polyline" in svg
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from markupsafe import Markup, escape

from stream_mlops.ui.view import Point, TimelineMark

__all__ = [
    "MISSING",
    "Series",
    "format_value",
    "nice_ceiling",
    "sparkline",
    "time_chart",
    "timeline",
]

#: What a table or an axis shows for a value that is not known.
MISSING: Final = "\N{EN DASH}"


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a ``time_chart``: its name in the legend and its points."""

    name: str
    points: Sequence[Point]


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above ``value``.

    >>> [nice_ceiling(v) for v in (0, 0.07, 3, 7.2, 180, 1234)]
    [1.0, 0.1, 5.0, 10.0, 200.0, 2000.0]
    """
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power * (1 + 1e-9):
            return float(f"{step * power:.6g}")
    return 10.0 * power


def format_value(value: float | None) -> str:
    """A number as an axis or a table shows it: short, no exponent below a million.

    >>> [format_value(v) for v in (0, 0.05234, 12.5, 1500, 2_500_000)]
    ['0', '0.0523', '12.5', '1,500', '2.5M']
    >>> format_value(None) == format_value(float("nan")) == MISSING
    True
    """
    if value is None or not math.isfinite(value):
        return MISSING
    magnitude = abs(value)
    if magnitude >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude == 0:
        return "0"
    return f"{value:.3g}"


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t))


def _num(x: float) -> str:
    return f"{x:.1f}"


def _polyline(
    points: Sequence[Point],
    *,
    x0: float,
    width: float,
    y0: float,
    height: float,
    t_range: tuple[float, float],
    y_max: float,
    css: str,
    y_min: float = 0.0,
) -> str:
    t_start, t_end = t_range
    span = max(t_end - t_start, 1e-9)
    y_span = max(y_max - y_min, 1e-12)
    coords = " ".join(
        f"{_num(x0 + (p.t - t_start) / span * width)},"
        f"{_num(y0 + height - (p.value - y_min) / y_span * height)}"
        for p in points
        if t_start <= p.t <= t_end
    )
    return f'<polyline class="{css}" points="{coords}"/>' if coords else ""


def sparkline(
    points: Sequence[Point],
    *,
    t_range: tuple[float, float],
    marks: Sequence[tuple[float, str]] = (),
    width: int = 200,
    height: int = 34,
    label: str = "",
) -> Markup:
    """A signal's recent values as a small line, with alert marks (``(t, severity)``).

    The vertical scale runs from the smallest to the largest value shown, so a
    step stands out whatever the signal's units; the table beside it gives the
    numbers.
    """
    pad = 3.0
    values = [p.value for p in points if t_range[0] <= p.t <= t_range[1]]
    parts = [
        f'<svg class="spark" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>" if label else "",
    ]
    t_start, t_end = t_range
    span = max(t_end - t_start, 1e-9)
    for t, severity in marks:
        if t_start <= t <= t_end:
            x = _num(pad + (t - t_start) / span * (width - 2 * pad))
            parts.append(
                f'<line class="mark-{escape(severity)}" x1="{x}" x2="{x}" y1="0" y2="{height}"/>'
            )
    if values:
        low, high = min(values), max(values)
        if high - low < 1e-12:
            low, high = low - 0.5, high + 0.5
        parts.append(
            _polyline(
                points,
                x0=pad,
                width=width - 2 * pad,
                y0=pad,
                height=height - 2 * pad,
                t_range=t_range,
                y_max=high,
                y_min=low,
                css="line-0",
            )
        )
        last = next(p for p in reversed(points) if t_start <= p.t <= t_end)
        cx = pad + (last.t - t_start) / span * (width - 2 * pad)
        cy = pad + (height - 2 * pad) * (1 - (last.value - low) / (high - low))
        parts.append(f'<circle class="dot-0" cx="{_num(cx)}" cy="{_num(cy)}" r="2.5"/>')
    else:
        parts.append(
            f'<text class="empty" x="{width / 2}" y="{height / 2 + 4}" '
            f'text-anchor="middle">no values yet</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def time_chart(
    series: Sequence[Series],
    *,
    t_range: tuple[float, float],
    unit: str,
    width: int = 520,
    height: int = 150,
    label: str = "",
) -> Markup:
    """Lines over wall-clock time with a labelled value axis from 0, a clock axis and a legend."""
    left, right, top, bottom = 54.0, 10.0, 22.0, 20.0
    plot_w, plot_h = width - left - right, height - top - bottom
    t_start, t_end = t_range
    shown = [p.value for s in series for p in s.points if t_start <= p.t <= t_end]
    # Four equal steps of a round size: the gridlines fall on round numbers.
    y_max = 4 * nice_ceiling(max(shown, default=0.0) / 4)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>" if label else "",
    ]
    for i in range(5):
        value = y_max * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{_num(y)}" y2="{_num(y)}"/>'
        )
        parts.append(
            f'<text class="axis" x="{left - 6}" y="{_num(y + 4)}" text-anchor="end">'
            f"{escape(format_value(value))}</text>"
        )
    parts.append(f'<text class="axis unit" x="4" y="{top - 7}">{escape(unit)}</text>')
    for fraction, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")):
        t = t_start + (t_end - t_start) * fraction
        parts.append(
            f'<text class="axis" x="{_num(left + plot_w * fraction)}" y="{height - 5}" '
            f'text-anchor="{anchor}">{_clock(t)}</text>'
        )
    legend_x = 14 + 6.5 * len(unit)
    for index, line in enumerate(series):
        parts.append(
            _polyline(
                line.points,
                x0=left,
                width=plot_w,
                y0=top,
                height=plot_h,
                t_range=t_range,
                y_max=y_max,
                css=f"line-{index}",
            )
        )
        parts.append(
            f'<rect class="key-{index}" x="{legend_x}" y="{top - 16}" width="10" height="10"/>'
            f'<text class="legend" x="{legend_x + 14}" y="{top - 7}">{escape(line.name)}</text>'
        )
        legend_x += 24 + 7 * len(line.name)
    if not shown:
        parts.append(
            f'<text class="empty" x="{left + plot_w / 2}" y="{top + plot_h / 2}" '
            f'text-anchor="middle">waiting for a second sample</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def timeline(
    marks: Sequence[TimelineMark],
    *,
    lanes: Sequence[str],
    t_range: tuple[float, float],
    width: int = 1200,
    lane_height: int = 26,
) -> Markup:
    """Alerts and promotions on a clock axis, one lane per model.

    Warnings are amber triangles, drifts red diamonds, promotions green bars;
    each has a tooltip with what it was.
    """
    left, right, top, bottom = 110.0, 16.0, 8.0, 22.0
    plot_w = width - left - right
    height = int(top + bottom + lane_height * max(len(lanes), 1))
    t_start, t_end = t_range
    span = max(t_end - t_start, 1e-9)
    parts = [
        f'<svg class="timeline" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        "<title>alerts and promotions over time</title>"
    ]
    row = {lane: i for i, lane in enumerate(lanes)}
    for lane, i in row.items():
        y = top + lane_height * i + lane_height / 2
        parts.append(
            f'<line class="lane" x1="{left}" x2="{left + plot_w}" y1="{y}" y2="{y}"/>'
            f'<text class="lane-label" x="{left - 8}" y="{y + 4}" text-anchor="end">'
            f"{escape(lane)}</text>"
        )
    for k in range(7):
        t = t_start + span * k / 6
        x = left + plot_w * k / 6
        anchor = "start" if k == 0 else "end" if k == 6 else "middle"
        parts.append(
            f'<line class="grid" x1="{_num(x)}" x2="{_num(x)}" y1="{top}" '
            f'y2="{height - bottom}"/><text class="axis" x="{_num(x)}" y="{height - 6}" '
            f'text-anchor="{anchor}">{_clock(t)}</text>'
        )
    for mark in marks:
        if mark.model_id not in row or not t_start <= mark.t <= t_end:
            continue
        x = left + (mark.t - t_start) / span * plot_w
        y = top + lane_height * row[mark.model_id] + lane_height / 2
        tip = f"<title>{escape(mark.model_id)} {escape(mark.label)} at {_clock(mark.t)}</title>"
        if mark.kind == "promotion":
            shape = (
                f'<rect class="mark-promotion" x="{_num(x - 2)}" y="{_num(y - 10)}" '
                f'width="4" height="20"/>'
            )
        elif mark.kind == "drift":
            shape = (
                f'<polygon class="mark-drift" points="{_num(x)},{_num(y - 7)} '
                f'{_num(x + 6)},{_num(y)} {_num(x)},{_num(y + 7)} {_num(x - 6)},{_num(y)}"/>'
            )
        else:
            shape = (
                f'<polygon class="mark-warning" points="{_num(x)},{_num(y - 6)} '
                f'{_num(x + 6)},{_num(y + 5)} {_num(x - 6)},{_num(y + 5)}"/>'
            )
        parts.append(f"<g>{tip}{shape}</g>")
    parts.append("</svg>")
    return Markup("".join(parts))
