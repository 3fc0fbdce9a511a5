"""The page's HTML, rendered from an ``OperatorView`` with Jinja2 (pure).

The page is a shell (``templates/page.html``) around panels, each a template
of its own (``templates/panels/<id>.html``). The first request gets the page
with every panel filled in, so it is readable before any script runs; the
page's script then asks ``/api/panels`` for the panels again every refresh and
swaps the ones whose HTML changed (``render_panels``).

Everything shown comes from topics other programs write, so Jinja2 escapes
every value (``autoescape``); charts are SVG built by ``stream_mlops.ui.charts``
from numbers and escaped names.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import cache
from typing import Any, Final

import jinja2
from markupsafe import Markup

from stream_mlops.ui import charts
from stream_mlops.ui.charts import MISSING
from stream_mlops.ui.view import OperatorView, Point, SignalView

__all__ = ["PANELS", "page_title", "render_page", "render_panels"]

#: The page's panels, in page order: each is ``templates/panels/<id>.html``
#: and the element ``<section id="<id>">`` it fills.
PANELS: Final = (
    "overview",
    "models",
    "timeline",
    "alerts",
    "retraining",
    "pipeline",
    "dead-letters",
)
# Signals always listed in a model's table; other features with no alert fold
# away below the first few, so a model with 60 features stays one screen.
_FEATURES_SHOWN: Final = 6
# The shortest time window a chart shows, so the first samples do not fill it.
_MIN_WINDOW_S: Final = 30.0
_STATE_WORDS: Final = {"ok": "OK", "warning": "WARNING", "drift": "DRIFT"}


def clock(ts: float | None) -> str:
    """A wall-clock time of day, UTC.

    >>> clock(1_800_000_000.5)
    '08:00:00'
    """
    return MISSING if ts is None else time.strftime("%H:%M:%S", time.gmtime(ts))


def datetime_utc(ts: float | None) -> str:
    """A date and time, UTC (event times: they need not be recent).

    >>> datetime_utc(1_800_000_000)
    '2027-01-15 08:00:00 UTC'
    """
    return MISSING if ts is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def ago(ts: float | None, now: float) -> str:
    """How long before ``now``, as a person says it.

    >>> [ago(t, 10_000.0) for t in (9_999.2, 9_950, 9_000, 2_000)]
    ['just now', '50 s ago', '17 min ago', '2.2 h ago']
    """
    if ts is None:
        return MISSING
    seconds = now - ts
    if seconds < 1.5:
        return "just now"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def rate(value: float | None) -> str:
    """Records per second.

    >>> rate(0.4), rate(1234.5)
    ('0.4/s', '1,234/s')
    """
    return MISSING if value is None else f"{charts.format_value(value)}/s"


def p_value(value: float | None) -> str:
    """A p-value, with its exponent when small.

    >>> p_value(0.0312), p_value(1.2e-19)
    ('0.031', '1.2e-19')
    """
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def percent(value: float | None) -> str:
    """A fraction as a percentage.

    >>> percent(0.777)
    '77.7%'
    """
    return MISSING if value is None else f"{100 * value:.1f}%"


def _window(view: OperatorView) -> tuple[float, float]:
    """The charts' shared time window: from the first sign of traffic to now.

    Samples from before any record arrived (a page started before its
    deployment) would squeeze the traffic into the chart's right edge.
    """
    firsts = [s.recent[0].t for m in view.models for s in m.signals if s.recent]
    for group in view.groups:
        moving = [p.t for p in (*group.arriving_series, *group.consumed_series) if p.value > 0]
        firsts.extend(moving[:1])
    start = min(firsts, default=view.generated_ts)
    return (min(start, view.generated_ts - _MIN_WINDOW_S), view.generated_ts)


def _signal_spark(signal: SignalView, view: OperatorView, model_id: str) -> Markup:
    marks = [
        (a.seen_ts, a.severity)
        for a in view.alerts
        if a.model_id == model_id and a.signal == signal.signal
    ]
    return charts.sparkline(
        signal.recent,
        t_range=_window(view),
        marks=marks,
        label=f"{model_id} {signal.signal}: recent values",
    )


def _latest(points: Sequence[Point]) -> float | None:
    return points[-1].value if points else None


def _shown_signals(signals: Sequence[SignalView]) -> tuple[list[SignalView], list[SignalView]]:
    """The signals listed in a model's table, and those folded away below it."""
    shown, folded = [], []
    features = 0
    for signal in signals:
        is_feature = signal.signal.startswith("feature:")
        if signal.state != "ok" or not is_feature or features < _FEATURES_SHOWN:
            shown.append(signal)
            features += is_feature
        else:
            folded.append(signal)
    return shown, folded


def page_title(view: OperatorView) -> str:
    """The browser tab's title: the worst state first, so a tab in a row of tabs says it.

    >>> from stream_mlops.ui.digest import StreamDigest
    >>> page_title(StreamDigest().view(now=0.0))
    'OK · stream-mlops'
    """
    drifting = [m.model_id for m in view.models if m.state == "drift"]
    if drifting:
        return f"DRIFT {', '.join(drifting)} · stream-mlops"
    return f"{_STATE_WORDS[view.state]} · stream-mlops"


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("stream_mlops.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        clock=clock,
        datetime_utc=datetime_utc,
        num=charts.format_value,
        rate=rate,
        p_value=p_value,
        percent=percent,
        latest=_latest,
    )
    env.globals.update(
        ago=ago,
        state_word=_STATE_WORDS.__getitem__,
        signal_spark=_signal_spark,
        shown_signals=_shown_signals,
        window=_window,
        sparkline=charts.sparkline,
        time_chart=charts.time_chart,
        timeline=charts.timeline,
        Series=charts.Series,
    )
    return env


def _context(view: OperatorView, refresh_s: float) -> dict[str, Any]:
    return {"view": view, "now": view.generated_ts, "refresh_s": refresh_s}


def render_panels(view: OperatorView, refresh_s: float = 2.0) -> dict[str, str]:
    """Each panel's inner HTML, by panel id (what ``/api/panels`` returns)."""
    env = _environment()
    context = _context(view, refresh_s)
    return {panel: env.get_template(f"panels/{panel}.html").render(context) for panel in PANELS}


def render_page(view: OperatorView, refresh_s: float = 2.0) -> str:
    """The whole page, panels filled in."""
    env = _environment()
    return env.get_template("page.html").render(
        _context(view, refresh_s),
        panels=render_panels(view, refresh_s),
        panel_ids=PANELS,
        title=page_title(view),
    )
