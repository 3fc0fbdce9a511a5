"""Pacing of the simulated producers (pure: clock and sleep are injected)."""

from __future__ import annotations

import itertools

import pytest

from stream_mlops.kafka.publisher import Pacer, PublishStats


class FakeClock:
    """A clock that only moves when slept on, or when a send 'takes time'."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def test_pacer_spaces_predictions_at_the_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(50.0, clock=clock.time, sleep=clock.sleep)
    sent_at = []
    for _ in range(101):
        pacer.wait()
        sent_at.append(clock.now)
    assert sent_at[0] == 100.0
    assert sent_at[-1] == pytest.approx(102.0)
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert all(g == pytest.approx(0.02) for g in gaps)


def test_pacer_catches_up_after_slow_sends_without_drifting() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, clock=clock.time, sleep=clock.sleep)
    pacer.wait()
    clock.now += 0.35  # a slow send: 3.5 intervals
    for _ in range(3):
        pacer.wait()  # already due: no sleep
    assert clock.sleeps == []
    pacer.wait()  # the 5th is due at +0.4
    assert clock.now == pytest.approx(100.4)


def test_rate_zero_never_waits_and_negative_is_refused() -> None:
    clock = FakeClock()
    pacer = Pacer(0.0, clock=clock.time, sleep=clock.sleep)
    for _ in range(1000):
        pacer.wait()
    assert clock.sleeps == []
    with pytest.raises(ValueError, match="rate must be >= 0"):
        Pacer(-1.0)


def test_stats_report_the_achieved_rate() -> None:
    stats = PublishStats(
        predictions=500, outcomes=450, malformed=5, seconds=4.0, prediction_seconds=2.5
    )
    assert stats.as_dict() == {
        "predictions": 500,
        "outcomes": 450,
        "malformed": 5,
        "seconds": 4.0,
        "predictions_per_s": 200.0,
    }
    assert PublishStats().as_dict()["predictions_per_s"] is None


def test_outcomes_go_at_their_event_time_on_the_predictions_pace() -> None:
    clock = FakeClock()
    pacer = Pacer(100.0, clock=clock.time, sleep=clock.sleep)
    # predictions at 50 per event-time second, sent at 100 per wall second:
    # event time runs at twice the wall clock
    for k in range(101):
        pacer.wait(at=5000.0 + k / 50)
    assert clock.now == pytest.approx(101.0)
    pacer.wait_outcome(at=5001.5)  # before the last prediction's event time: no wait
    assert clock.now == pytest.approx(101.0)
    pacer.wait_outcome(at=5012.0)  # 10 event-time seconds after the last prediction
    assert clock.now == pytest.approx(106.0)


def test_outcomes_never_wait_without_a_measured_pace() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, clock=clock.time, sleep=clock.sleep)
    pacer.wait_outcome(at=10.0)  # no prediction yet
    for _ in range(3):
        pacer.wait(at=0.0)  # one simulated day's forecasts share a time
    before = clock.now
    pacer.wait_outcome(at=86_400.0)
    assert clock.now == before
    unpaced = Pacer(0.0, clock=clock.time, sleep=clock.sleep)
    unpaced.wait(at=0.0)
    unpaced.wait(at=1.0)
    unpaced.wait_outcome(at=1000.0)
    assert clock.now == before
