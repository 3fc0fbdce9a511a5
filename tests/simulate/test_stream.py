from __future__ import annotations

import random

import orjson

from stream_mlops.simulate.stream import DEFAULT_START_TS, Emission, Timeline, iso_utc, to_json


def test_timeline_releases_in_time_order_ties_in_schedule_order() -> None:
    rng = random.Random(5)
    timeline = Timeline()
    scheduled = [Emission(float(rng.randrange(20)), "outcome", f"e{i}", {}) for i in range(200)]
    for emission in scheduled:
        timeline.schedule(emission)
    released = [*timeline.due(9.0), *timeline.drain()]
    assert len(released) == 200 and len(timeline) == 0
    expected = sorted(scheduled, key=lambda e: (e.at, int(e.key[1:])))
    assert [e.key for e in released] == [e.key for e in expected]


def test_due_keeps_later_outcomes() -> None:
    timeline = Timeline()
    timeline.schedule(Emission(10.0, "outcome", "late", {}))
    assert list(timeline.due(9.999)) == []
    assert [e.key for e in timeline.due(10.0)] == ["late"]


def test_value_is_json_of_dict_or_the_raw_bytes() -> None:
    event = {"type": "outcome", "event_id": "x", "ts": iso_utc(DEFAULT_START_TS), "actual": 1}
    assert orjson.loads(Emission(0.0, "outcome", "x", event).value()) == event
    assert Emission(0.0, "prediction", "x", b"{nope", "truncated_json").value() == b"{nope"
    assert to_json(event).startswith(b'{"type":"outcome"')


def test_iso_utc_rounds_to_milliseconds() -> None:
    assert iso_utc(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1.9996) == "1970-01-01T00:00:02.000Z"
    assert iso_utc(86_400 * 365 + 0.25) == "1971-01-01T00:00:00.250Z"
