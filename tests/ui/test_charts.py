"""The page's SVG charts: well-formed, inside their box, escaped, no inline styles (no browser)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from stream_mlops.ui.charts import Series, nice_ceiling, sparkline, time_chart, timeline
from stream_mlops.ui.view import Point, TimelineMark

SVG = "{http://www.w3.org/2000/svg}"


def coordinates(svg: str) -> list[tuple[float, float]]:
    root = ET.fromstring(svg)
    pairs = []
    for line in root.iter(f"{SVG}polyline"):
        for pair in line.get("points", "").split():
            x, y = pair.split(",")
            pairs.append((float(x), float(y)))
    return pairs


@given(st.floats(min_value=1e-9, max_value=1e12))
def test_nice_ceiling_is_a_round_number_at_or_above_the_value(value: float) -> None:
    nice = nice_ceiling(value)
    assert value <= nice * (1 + 1e-9) <= 10 * value * (1 + 1e-9)
    mantissa = float(f"{nice:.1e}".split("e")[0])
    assert mantissa in (1.0, 2.0, 2.5, 5.0)


@given(
    st.lists(
        st.tuples(st.floats(0, 100), st.floats(-1e9, 1e9)),
        min_size=1,
        max_size=40,
        unique_by=lambda p: p[0],
    )
)
def test_every_point_of_a_sparkline_is_inside_its_box(raw: list[tuple[float, float]]) -> None:
    points = [Point(t, v) for t, v in sorted(raw)]
    svg = sparkline(points, t_range=(0.0, 100.0), width=200, height=34)
    for x, y in coordinates(svg):
        assert 0 <= x <= 200 and 0 <= y <= 34


@given(st.lists(st.floats(0, 1e7), min_size=1, max_size=30))
def test_every_point_of_a_time_chart_is_inside_its_plot(values: list[float]) -> None:
    points = [Point(float(i), v) for i, v in enumerate(values)]
    svg = time_chart([Series("lag", points)], t_range=(0.0, 30.0), unit="records", height=150)
    for _x, y in coordinates(svg):
        assert 0 <= y <= 150


def test_names_are_escaped_and_nothing_is_styled_inline() -> None:
    hostile = '<script>alert("x")</script>'
    svgs = [
        sparkline([Point(0, 1), Point(1, 2)], t_range=(0, 1), label=hostile),
        time_chart([Series(hostile, [Point(0, 1)])], t_range=(0, 1), unit=hostile),
        timeline([TimelineMark(0.5, "drift", hostile, hostile)], lanes=[hostile], t_range=(0, 1)),
    ]
    for svg in svgs:
        ET.fromstring(svg)  # well-formed XML
        assert "<script" not in svg and "&lt;script&gt;" in svg
        assert "style=" not in svg


def test_the_timeline_draws_each_mark_in_its_lane_within_the_window() -> None:
    marks = [
        TimelineMark(10.0, "warning", "fraud", "v1 error"),
        TimelineMark(20.0, "drift", "fraud", "v1 error"),
        TimelineMark(30.0, "promotion", "demand", "v2 promoted"),
        TimelineMark(500.0, "drift", "fraud", "outside the window"),
        TimelineMark(20.0, "drift", "unknown", "no lane"),
    ]
    svg = timeline(marks, lanes=["demand", "fraud"], t_range=(0.0, 100.0))
    root = ET.fromstring(svg)
    classes = [e.get("class") for e in root.iter() if (e.get("class") or "").startswith("mark-")]
    assert classes == ["mark-warning", "mark-drift", "mark-promotion"]
    # The chart's own title first, then one per mark.
    assert re.findall(r"<title>(\w+) ", svg)[1:] == ["fraud", "fraud", "demand"]


def test_a_time_chart_labels_its_axis_in_round_steps() -> None:
    svg = time_chart([Series("lag", [Point(0, 0), Point(1, 180)])], t_range=(0, 1), unit="records")
    labels = [
        e.text for e in ET.fromstring(svg).iter(f"{SVG}text") if e.get("text-anchor") == "end"
    ]
    assert labels[:5] == ["0", "50", "100", "150", "200"]
