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


def test_estimated_error_of_calibrated_scores() -> None:
    from stream_mlops.signals import estimated_error

    assert estimated_error(1, 0.9) == pytest.approx(0.1)  # predicted positive
    assert estimated_error(True, 0.3) == pytest.approx(0.7)  # positive below 0.5: unlikely
    assert estimated_error(0, 0.2) == pytest.approx(0.2)
    assert estimated_error(False, 0.6) == pytest.approx(0.6)
    assert estimated_error("fraud", 0.8) == pytest.approx(0.2)  # unknown: threshold 0.5
    # Its mean is the error rate when the scores are calibrated.
    rng = random.Random(1)
    total = wrong = 0.0
    for _ in range(50_000):
        score = rng.betavariate(1.0, 6.0)
        prediction = int(score >= 0.5)
        actual = int(rng.random() < score)
        total += estimated_error(prediction, score)
        wrong += prediction != actual
    assert total / 50_000 == pytest.approx(wrong / 50_000, abs=0.005)


def test_ranked_track_feeds_detectors_ranks_in_the_unit_interval() -> None:
    seen: list[float] = []

    class Recorder(AdwinDetector):
        def update(self, x: float) -> None:  # type: ignore[override]
            seen.append(x)

    rng = random.Random(2)
    track = SignalTrack(
        "feature:amount", [Recorder()], reference_observations=500, recent_span=50, ranked=True
    )
    for _ in range(2000):
        track.observe(rng.lognormvariate(3.0, 2.0), "e", 0.0)
    assert len(seen) == 1500  # nothing during the first reference
    assert all(0.0 <= u <= 1.0 for u in seen)
    assert sum(seen) / len(seen) == pytest.approx(0.5, abs=0.03)
    assert track.shift().reference_mean > 20  # effect sizes stay in the value's units


def test_distance_sees_a_variance_change_the_effect_size_misses() -> None:
    rng = random.Random(3)
    track = SignalTrack("feature:x", [], reference_observations=2000, recent_span=500, binned=True)
    for _ in range(2500):
        track.observe(rng.gauss(0.0, 1.0), "e", 0.0)
    calm = track.shift()
    for _ in range(500):
        track.observe(rng.gauss(0.0, 3.0), "e", 0.0)
    wide = track.shift()
    assert calm.distance is not None and wide.distance is not None
    assert calm.distance < 0.1
    assert wide.distance > 3 * calm.distance
    assert abs(wide.effect_size) < 0.5


def test_categorical_track_codes_values_and_caps_them() -> None:
    track = SignalTrack(
        "feature:city", [], reference_observations=10, recent_span=10, categorical=True
    )
    codes = [track.code(f"c{i}") for i in range(25)]
    assert codes[:20] == list(range(20))
    assert codes[20:] == [20] * 5  # one shared "other" code
    assert track.code("c3") == 3
    assert track.categories() == 20
    for i in range(10):
        track.observe(float(i % 2), "e", 0.0)
    for _ in range(10):
        track.observe(5.0, "e", 0.0)
    shift = track.shift()
    assert shift.distance == pytest.approx(1.0)  # disjoint categories
    assert shift.effect_size == shift.distance
