"""Label-free performance estimation: calibration, estimates, and the engine's use of them."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from stream_mlops.config import Settings
from stream_mlops.engine import Engine, Output
from stream_mlops.estimation import (
    Calibration,
    ErrorEstimator,
    PerformanceEstimation,
    wrong_probability,
)
from stream_mlops.events import (
    DriftAlert,
    InputEvent,
    OutcomeEvent,
    PerformanceEstimate,
    PredictionEvent,
    decode_input,
    encode,
)
from stream_mlops.plain_data import FieldError, Fields
from stream_mlops.signals import estimated_error

# -- calibration ----------------------------------------------------------------------


def _stepped(n: int, seed: int) -> tuple[list[float], list[int]]:
    """Scores uniform on [0, 1]; P(positive) 0.2 below 0.5, 0.8 above."""
    rng = random.Random(seed)
    scores = [rng.random() for _ in range(n)]
    labels = [int(rng.random() < (0.2 if s < 0.5 else 0.8)) for s in scores]
    return scores, labels


def test_isotonic_calibration_recovers_a_step_function() -> None:
    scores, labels = _stepped(20_000, seed=1)
    calibration = Calibration.fit(scores, labels)
    assert calibration.rate(0.25) == pytest.approx(0.2, abs=0.03)
    assert calibration.rate(0.75) == pytest.approx(0.8, abs=0.03)
    assert calibration.rates == sorted(calibration.rates)  # increasing
    assert calibration.uppers == sorted(calibration.uppers)
    # Blocks partition the labeled events and keep their positives.
    assert calibration.events == len(scores)
    assert sum(calibration.positives) == sum(labels)
    # Scores beyond the fitted range take the nearest block.
    assert calibration.rate(-1.0) == calibration.rates[0]
    assert calibration.rate(2.0) == calibration.rates[-1]


def test_calibration_corrects_overconfident_scores() -> None:
    # The model says 0.99 where the truth is 0.7: the calibrated error is 0.3, not 0.01.
    rng = random.Random(2)
    scores = [0.99] * 2000 + [0.01] * 2000
    labels = [int(rng.random() < 0.7) for _ in range(2000)] + [0] * 2000
    calibration = Calibration.fit(scores, labels)
    assert estimated_error(1, 0.99) == pytest.approx(0.01)
    assert wrong_probability(1, calibration.rate(0.99)) == pytest.approx(0.3, abs=0.03)
    assert wrong_probability(0, calibration.rate(0.01)) == 0.0


def test_tied_scores_form_one_point() -> None:
    calibration = Calibration.fit([0.5] * 10, [1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    assert calibration.uppers == [0.5]
    assert calibration.rates == [pytest.approx(0.3)]


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([], [], "needs scores"),
        ([0.1, 0.2], [1], "needs scores"),
        ([0.1, 0.2], [1, 2], "0 or 1"),
        ([0.1, math.nan], [1, 0], "finite"),
    ],
)
def test_calibration_refuses_bad_input(
    scores: list[float], labels: list[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Calibration.fit(scores, labels)


def test_calibration_state_round_trips_and_refuses_bad_state() -> None:
    calibration = Calibration.fit(*_stepped(5000, seed=3))
    again = Calibration.from_state(Fields(calibration.state(), "calibration"))
    assert (again.uppers, again.positives, again.counts) == (
        calibration.uppers,
        calibration.positives,
        calibration.counts,
    )
    bad = calibration.state()
    bad["uppers"] = list(reversed(bad["uppers"]))
    with pytest.raises(FieldError, match="ascend"):
        Calibration.from_state(Fields(bad, "calibration"))


# -- estimates ------------------------------------------------------------------------


def test_interval_covers_the_realised_error_of_most_windows() -> None:
    scores, labels = _stepped(5000, seed=4)
    calibration = Calibration.fit(scores, labels)
    kinds = [int(s >= 0.5) for s in scores]
    estimator = ErrorEstimator.from_reference(calibration, scores, kinds, window=500)
    assert estimator.reference_error == pytest.approx(0.2, abs=0.02)
    rng = random.Random(5)
    covered = windows = wrong = 0
    for i in range(200 * 500):
        s = rng.random()
        y = int(rng.random() < (0.2 if s < 0.5 else 0.8))
        prediction = int(s >= 0.5)
        wrong += prediction != y
        _, estimate = estimator.observe(prediction, s, f"e{i}", float(i))
        if estimate is not None:
            windows += 1
            covered += estimate.low <= wrong / 500 <= estimate.high
            assert estimate.low < estimate.estimated_error < estimate.high
            assert estimate.reference_low < estimate.reference_error < estimate.reference_high
            wrong = 0
    assert windows == 200
    # A 95% interval: about 190 of 200 windows (binomial spread about 3).
    assert 180 <= covered <= 199


def test_estimation_warm_up_and_state_round_trip() -> None:
    scores, labels = _stepped(300, seed=6)
    estimation = PerformanceEstimation(calibration_events=200, window=50)
    for s, y in zip(scores[:150], labels[:150], strict=True):
        assert not estimation.learn(int(s >= 0.5), s, y)
    # Mid warm-up, a snapshot keeps the labeled events so far.
    resumed = PerformanceEstimation.from_state(Fields(estimation.state(), "estimation"))
    rest = zip(scores[150:], labels[150:], strict=True)
    done = [resumed.learn(int(s >= 0.5), s, y) for s, y in rest]
    assert done.index(True) == 49 and done.count(True) == 1
    assert resumed.estimator is not None
    assert resumed.estimator.calibration.events == 200
    # Labels that are not 0/1 do not count towards the warm-up.
    other = PerformanceEstimation(calibration_events=2, window=10)
    assert not other.learn("cat", 0.4, "dog")
    assert other.state()["scores"] == []
    # Calibrated, mid-window: the snapshot carries the window and the latest estimate.
    estimator = resumed.estimator
    for i in range(70):
        estimator.observe(1, 0.9, f"e{i}", float(i))
    again = PerformanceEstimation.from_state(Fields(resumed.state(), "estimation"))
    assert again.estimator is not None
    assert again.estimator.latest == estimator.latest
    assert again.state() == resumed.state()
    bad = resumed.state()
    bad["estimator"]["n"] = 50  # a full window is never kept
    with pytest.raises(FieldError, match="n"):
        PerformanceEstimation.from_state(Fields(bad, "estimation"))


# -- the engine -----------------------------------------------------------------------

# Three regions of the score: confident negatives (P(positive) 0.1), confident
# positives (0.9), and the boundary (0.5). The positives' scores are
# overconfident (0.9 to 1.0) and the negatives' underconfident (0 to 0.4): the
# calibrated error is 0.1 in both, while min(score, 1 - score) says 0.05 and
# 0.2.
_REGIONS: dict[str, tuple[float, float, float]] = {
    "negative": (0.0, 0.4, 0.1),
    "positive": (0.9, 1.0, 0.9),
    "boundary": (0.4, 0.6, 0.5),
}
_WARM_UP = 2000  # labeled predictions that calibrate the scores
_BEFORE = 6000  # unlabeled predictions before the shift
_AFTER = 6000  # and after it
_T0 = 1_800_000_000


def _settings() -> Settings:
    return Settings.model_validate(
        {"defaults": {"estimate_calibration_events": _WARM_UP, "estimate_window": 1000}}
    )


def _stream(
    before: dict[str, float], after: dict[str, float], seed: int, truth: list[int]
) -> Iterator[InputEvent]:
    """Labeled warm-up, then predictions only: the region weights change at the
    shift. ``truth`` gets whether each unlabeled prediction was wrong."""
    rng = random.Random(seed)
    names = list(_REGIONS)
    for i in range(_WARM_UP + _BEFORE + _AFTER):
        weights = before if i < _WARM_UP + _BEFORE else after
        region = rng.choices(names, [weights[n] for n in names])[0]
        low, high, positive_rate = _REGIONS[region]
        score = rng.uniform(low, high)
        actual = int(rng.random() < positive_rate)
        prediction = int(score >= 0.5)
        features: dict[str, Any] = {"amount": rng.gauss(100.0 * score, 5.0)}
        event_id = f"e{i}"
        yield PredictionEvent(
            event_id=event_id,
            model_id="fraud",
            model_version="v1",
            ts=_T0 + i,
            features=features,
            prediction=prediction,
            score=score,
        )
        if i < _WARM_UP:
            yield OutcomeEvent(event_id=event_id, ts=_T0 + i, actual=actual)
        else:
            truth.append(int(prediction != actual))


def _run(
    before: dict[str, float], after: dict[str, float], seed: int
) -> tuple[Engine, list[Output], list[int]]:
    engine = Engine(_settings(), labeled_events=False)
    truth: list[int] = []
    events = _stream(before, after, seed, truth)
    outputs = [out for event in events for out in engine.process(event)]
    return engine, outputs, truth


def _shift_index(output: DriftAlert) -> int:
    return int(output.trigger_event_id.removeprefix("e")) - _WARM_UP - _BEFORE


_BEFORE_WEIGHTS = {"negative": 0.3, "positive": 0.6, "boundary": 0.1}


def test_a_covariate_shift_that_degrades_accuracy_is_flagged_without_outcomes() -> None:
    # Four times as much traffic near the boundary: the error goes from 14% to 26%.
    degraded = {"negative": 0.2, "positive": 0.4, "boundary": 0.4}
    engine, outputs, truth = _run(_BEFORE_WEIGHTS, degraded, seed=7)
    assert engine.stats.outcomes == _WARM_UP  # none after the warm-up
    alerts = [o for o in outputs if isinstance(o, DriftAlert) and o.signal == "estimated_error"]
    assert alerts, [o.signal for o in outputs if isinstance(o, DriftAlert)]
    first = alerts[0]
    assert 0 <= _shift_index(first) < 1000
    assert first.stats.estimate is not None  # alerts carry the latest estimate
    assert not [o for o in outputs if isinstance(o, DriftAlert) and o.signal == "error"]
    estimates = [o for o in outputs if isinstance(o, PerformanceEstimate)]
    # One per window of 1,000 predictions after the warm-up.
    assert len(estimates) == (_BEFORE + _AFTER) // 1000
    assert all(e.estimate.predictions == 1000 for e in estimates)
    assert estimates[0].window_start.event_id == f"e{_WARM_UP}"
    assert estimates[0].last_event_id == f"e{_WARM_UP + 999}"
    reference = estimates[0].estimate.reference_error
    assert reference == pytest.approx(0.14, abs=0.02)
    pre, post = estimates[: _BEFORE // 1000], estimates[_BEFORE // 1000 :]
    assert sum(e.estimate.outside_band for e in pre) <= 1
    assert all(e.estimate.outside_band for e in post)
    for k, published in enumerate(post):
        realised = sum(truth[_BEFORE + 1000 * k : _BEFORE + 1000 * (k + 1)]) / 1000
        assert realised == pytest.approx(0.26, abs=0.04)
        # The estimate is within a few points of what the outcomes would have shown.
        assert published.estimate.estimated_error == pytest.approx(realised, abs=0.04)
    covered = sum(
        e.estimate.low <= sum(truth[1000 * k : 1000 * (k + 1)]) / 1000 <= e.estimate.high
        for k, e in enumerate(estimates)
    )
    assert covered >= len(estimates) - 2
    # Alert with its estimate, and the estimate event, survive the wire.
    assert decode_round_trip(first) == first
    assert decode_round_trip(estimates[-1]) == estimates[-1]


def decode_round_trip(event: DriftAlert | PerformanceEstimate) -> object:
    return type(event).model_validate_json(encode(event))


def test_a_covariate_shift_where_the_calibrated_error_is_flat_is_not_flagged() -> None:
    # Traffic moves from the confident positives to the confident negatives: the
    # scores move a lot, the raw min(score, 1 - score) rises from about 0.08 to
    # 0.17, and the error stays at 14% (both regions are wrong 10% of the time).
    flat = {"negative": 0.7, "positive": 0.2, "boundary": 0.1}
    _, outputs, truth = _run(_BEFORE_WEIGHTS, flat, seed=8)
    alerts = [o for o in outputs if isinstance(o, DriftAlert)]
    assert "estimated_error" not in {a.signal for a in alerts}
    # The shift is real: the score signal sees it.
    assert "score" in {a.signal for a in alerts}
    realised_before = sum(truth[:_BEFORE]) / _BEFORE
    realised_after = sum(truth[_BEFORE:]) / _AFTER
    assert realised_after == pytest.approx(realised_before, abs=0.02)
    estimates = [o.estimate for o in outputs if isinstance(o, PerformanceEstimate)]
    post = estimates[_BEFORE // 1000 :]
    assert all(e.estimated_error == pytest.approx(0.14, abs=0.03) for e in post)


def test_the_raw_estimate_would_have_flagged_the_flat_shift() -> None:
    # Why calibration matters: on the same stream, min(score, 1 - score)
    # rises by more than the calibrated estimate's interval.
    rng = random.Random(8)
    names = list(_REGIONS)
    flat = {"negative": 0.7, "positive": 0.2, "boundary": 0.1}

    def raw_mean(weights: dict[str, float]) -> float:
        total = 0.0
        for _ in range(20_000):
            region = rng.choices(names, [weights[n] for n in names])[0]
            low, high, _ = _REGIONS[region]
            s = rng.uniform(low, high)
            total += estimated_error(int(s >= 0.5), s)
        return total / 20_000

    assert raw_mean(flat) - raw_mean(_BEFORE_WEIGHTS) > 0.05


def test_estimation_survives_a_snapshot() -> None:
    settings = _settings()
    degraded = {"negative": 0.2, "positive": 0.4, "boundary": 0.4}
    events = list(_stream(_BEFORE_WEIGHTS, degraded, 9, []))
    whole = Engine(settings, labeled_events=False)
    expected = [o for e in events for o in whole.process(e)]
    cut = 2 * _WARM_UP + 2500  # after the calibration, mid-window
    first = Engine(settings, labeled_events=False)
    got = [o for e in events[:cut] for o in first.process(e)]
    second = Engine.restore(settings, first.snapshot())
    got += [o for e in events[cut:] for o in second.process(e)]
    assert [encode(o) for o in got] == [encode(o) for o in expected]
    assert any(isinstance(o, PerformanceEstimate) for o in got[len(got) // 2 :])


def test_performance_estimate_is_no_input_event() -> None:
    from stream_mlops.events import EventError

    raw = b'{"type": "performance_estimate", "estimate_id": "x"}'
    with pytest.raises(EventError):
        decode_input(raw)


def test_replay_writes_the_estimates_and_summarises_them() -> None:
    import io

    from stream_mlops import offline
    from stream_mlops.replay_report import ReplayRecorder, summary_document

    degraded = {"negative": 0.2, "positive": 0.4, "boundary": 0.4}
    lines = [encode(e) + b"\n" for e in _stream(_BEFORE_WEIGHTS, degraded, 7, [])]
    settings = _settings()
    recorder = ReplayRecorder(settings)
    out, errors = io.BytesIO(), io.StringIO()
    engine = Engine(settings, labeled_events=False)
    result = offline.replay_lines(lines, engine, out, errors, recorder=recorder)
    written = [orjson.loads(line) for line in out.getvalue().splitlines()]
    estimates = [w for w in written if w["type"] == "performance_estimate"]
    assert len(estimates) == (_BEFORE + _AFTER) // 1000
    assert estimates[-1]["estimate"]["outside_band"] is True
    summary = summary_document(
        recorder, result.stats, file="f", config=None, lines=result.lines, seconds=1.0
    )
    published = summary["performance_estimates"]
    assert published["total"] == len(estimates)
    assert published["outside_band"] == sum(e["estimate"]["outside_band"] for e in estimates)
    first = published["events"][0]
    assert first["window_start_event_id"] == f"e{_WARM_UP}"
    assert first["estimated_error"] == estimates[0]["estimate"]["estimated_error"]
    # The input line of the prediction that closed the window (outcomes
    # interleave with the warm-up's predictions).
    assert first["line"] == 2 * _WARM_UP + 1000
