from __future__ import annotations

import random

import pytest

from stream_mlops.detectors import AdwinDetector
from stream_mlops.signals import SignalTrack, error_value, numeric


def test_numeric_values() -> None:
    assert [numeric(v) for v in (1, 2.5, True, "x", None)] == [1.0, 2.5, 1.0, None, None]


def test_classification_error_compares_labels_exactly() -> None:
    assert error_value("classification", True, 1) == 0.0  # the same class
    assert error_value("classification", "1", 1) == 1.0  # a string is another label
    assert error_value("regression", 3, 5.5) == 2.5


def test_effect_size_is_in_reference_standard_deviations() -> None:
    rng = random.Random(0)
    track = SignalTrack("feature:x", [], reference_observations=2000, recent_span=100)
    for _ in range(2000):
        track.observe(rng.gauss(10.0, 2.0), "e", 0.0)
    assert track.shift().effect_size == pytest.approx(0.0, abs=0.01)
    for _ in range(2000):
        track.observe(rng.gauss(13.0, 2.0), "e", 0.0)  # +1.5 SD
    shift = track.shift()
    assert shift.effect_size == pytest.approx(1.5, abs=0.3)
    assert shift.reference_mean == pytest.approx(10.0, abs=0.2)
    track.rebase()
    track.observe(13.0, "e", 0.0)
    assert track.shift().effect_size == 0.0


def test_constant_reference_gives_a_finite_effect() -> None:
    track = SignalTrack("score", [], reference_observations=10, recent_span=2)
    for _ in range(10):
        track.observe(1.0, "e", 0.0)
    track.observe(2.0, "e", 0.0)
    assert track.shift().effect_size == 1e9


def test_window_start_finds_where_the_last_n_observations_began() -> None:
    track = SignalTrack(
        "error", [AdwinDetector()], reference_observations=10, recent_span=5, marks=True
    )
    for i in range(1, 1001):
        track.observe(0.0, f"e{i}", float(i))
    start = track.window_start(300)  # observations 701..1000
    assert start is not None
    epoch, event_id = start
    assert event_id == f"e{int(epoch)}"
    assert 701 - 32 < epoch <= 701  # marks every 32 observations, never after the start
    assert track.window_start(None) is None
    assert track.window_start(5000) == (1.0, "e1")  # older than any mark: the oldest


def test_observe_reports_what_fired() -> None:
    rng = random.Random(1)
    track = SignalTrack("score", [AdwinDetector()], reference_observations=100, recent_span=20)
    fired = [f for i in range(6000) if (f := track.observe(rng.gauss(i >= 3000, 0.5), "e", 0.0))]
    assert len(fired) == 1
    ((detector, detection),) = fired[0]
    assert detector.name == "adwin" and detection.severity == "drift"
