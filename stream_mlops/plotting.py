"""The reports' plots and pages: curves over time with marked moments, in one HTML file.

``plot_png`` draws panels stacked on one x axis (each: curves, and vertical
lines for the moments that matter, labelled) as a PNG; ``html_page`` wraps a
summary and PNGs into a self-contained page (images embedded, no files beside
it). The demo's report (``stream_mlops.demo.report``) and ``stream-mlops replay
--report`` (``stream_mlops.replay_report``) both draw through these.

The plots need matplotlib, which the services and the core do not: it is the
``demo`` extra (``pip install 'stream-mlops[demo]'``; ``make demo`` installs
it), imported only when a plot is drawn.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Final, Literal

__all__ = [
    "REPORT_EXTRA",
    "Curve",
    "Line",
    "Panel",
    "PlottingUnavailableError",
    "html_page",
    "plot_png",
    "pyplot",
]

REPORT_EXTRA: Final = "pip install 'stream-mlops[demo]' (make demo installs it)"


class PlottingUnavailableError(RuntimeError):
    """matplotlib, the demo extra, is not installed."""


def pyplot() -> ModuleType:
    """matplotlib's pyplot on the file-only Agg backend, or a clear error naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise PlottingUnavailableError(
            f"the report draws its plots with matplotlib, which is not installed: {REPORT_EXTRA}"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass(frozen=True)
class Curve:
    xs: Sequence[float]
    ys: Sequence[float]
    label: str
    color: str = "#1f4e79"


@dataclass(frozen=True)
class Line:
    """A moment on the x axis: a vertical dashed line with its label."""

    x: float
    #: None: the line alone (too many to label)
    label: str | None
    color: str
    #: the label's alignment at the line: "right" ends it at the line (it
    #: stands before it), "left" starts it there; two moments close together
    #: (a detection and a promotion) label away from each other
    align: Literal["left", "right"] = "right"


@dataclass(frozen=True)
class Panel:
    ylabel: str
    curves: Sequence[Curve]
    lines: Sequence[Line] = field(default_factory=tuple)


def plot_png(
    panels: Sequence[Panel], *, title: str, xlabel: str, panel_height: float = 3.0
) -> bytes:
    """The panels, stacked on one shared x axis, as a PNG."""
    plt = pyplot()
    height = max(4.5, panel_height * len(panels) + 1.5) if len(panels) > 1 else 4.5
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(10, height), dpi=100, sharex=True, squeeze=False
    )
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        for curve in panel.curves:
            ax.plot(curve.xs, curve.ys, color=curve.color, linewidth=1.4, label=curve.label)
        for line in panel.lines:
            ax.axvline(line.x, color=line.color, linestyle="--", linewidth=1)
            if line.label is not None:
                ax.text(
                    line.x,
                    0.98,
                    f" {line.label}",
                    transform=ax.get_xaxis_transform(),
                    rotation=90,
                    va="top",
                    ha=line.align,
                    fontsize=8,
                    color=line.color,
                )
        ax.set_ylabel(panel.ylabel)
        if panel.curves:
            ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel(xlabel)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def html_page(title: str, items: Sequence[str], images: Sequence[tuple[str, bytes]] = ()) -> str:
    """A self-contained page: a heading, a list of lines, then each PNG with its
    alt text as a caption; every text escaped.

    >>> page = html_page("t <1>", ["a & b"])
    >>> "<h1>t &lt;1&gt;</h1>" in page and "<li>a &amp; b</li>" in page
    True
    """
    rows = "".join(f"<li>{html.escape(item)}</li>" for item in items)
    figures = "".join(
        f"<figure><img alt='{html.escape(alt, quote=True)}' "
        f"src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"
        for alt, png in images
    )
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1040px;margin:2em auto;color:#222}"
        "li{margin:.3em 0}figure{margin:1.5em 0}figcaption{color:#555;font-size:.9em}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<ul>{rows}</ul>{figures}"
        "</body></html>\n"
    )
