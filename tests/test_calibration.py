from __future__ import annotations

import math
import random

import pytest

from stream_mlops import detectors
from stream_mlops.calibration import calibrated, share, split
from stream_mlops.config import Settings, parse_settings
from stream_mlops.detectors import (
    AdwinDetector,
    DistributionDetector,
    GlrDetector,
    PageHinkleyDetector,
)
from stream_mlops.engine import Engine
from stream_mlops.events import PredictionEvent


def test_share_splits_the_budget_equally() -> None:
    assert share(1e-7, 50) == pytest.approx(2e-9)
    assert share(1e-7, 0) == 1e-7  # nothing to split: the whole budget
    with pytest.raises(ValueError, match="positive"):
        share(0.0, 3)


def test_adwin_delta_follows_the_measured_false_alarms_per_delta() -> None:
    assert calibrated("adwin", {}, 1e-8)["delta"] == pytest.approx(1e-5)
    # Checking four times as often: four times the chances, a quarter the delta.
    assert calibrated("adwin", {"clock": 8}, 1e-8)["delta"] == pytest.approx(2.5e-6)
    assert calibrated("adwin", {}, 0.9)["delta"] == 0.2  # the largest delta measured
    # An explicit delta wins; a warning level stays above the calibrated one.
    assert calibrated("adwin", {"delta": 0.01}, 1e-8) == {"delta": 0.01}
    warned = calibrated("adwin", {"warning_delta": 1e-9}, 1e-8)
    assert warned["delta"] < warned["warning_delta"]
    detectors.build("adwin", warned)  # valid parameters


def test_page_hinkley_threshold_is_the_log_of_the_run_length() -> None:
    assert calibrated("page_hinkley", {}, 1e-8)["threshold"] == pytest.approx(math.log(2e8))
    up = calibrated("page_hinkley", {"mode": "up"}, 1e-8)
    assert up["threshold"] == pytest.approx(math.log(1e8))
    assert calibrated("page_hinkley", {"threshold": 5.0}, 1e-8)["threshold"] == 5.0


def test_uncalibrated_families_keep_their_parameters() -> None:
    assert calibrated("kswin", {"alpha": 0.01}, 1e-8) == {"alpha": 0.01}
    assert calibrated("distribution", {}, 1e-6) == {"false_alarm_rate": 1e-6}
    assert calibrated("glr", {"model": "normal"}, 1e-6)["false_alarm_rate"] == 1e-6
    assert calibrated("glr", {"false_alarm_rate": 1e-3}, 1e-6)["false_alarm_rate"] == 1e-3


def _event(features: dict[str, float | str]) -> PredictionEvent:
    return PredictionEvent(
        event_id="e0",
        model_id="fraud",
        model_version="v1",
        ts=0,
        features=features,
        prediction=1,
        score=0.5,
    )


def test_engine_gives_half_the_budget_to_the_error_and_splits_the_rest() -> None:
    features: dict[str, float | str] = {f"x{k}": 1.0 for k in range(50)}
    features["merchant"] = "grocery"
    engine = Engine(Settings())
    engine.process(_event(features))
    state = engine._models[("fraud", "v1")]
    # The error (it retrains) gets half the budget; the other half goes to
    # estimated_error, score (+ distribution), per numeric feature GLR +
    # distribution, the categorical feature GLR + distribution; outcome,
    # miss_rate, false_positive_rate; three quality signals per feature and the
    # schema.
    others = 1 + 2 + 50 * 2 + 2 + 3 + (51 * 3 + 1)
    assert state.retrain_false_alarm_rate == pytest.approx(0.5e-7)
    assert state.false_alarm_rate == pytest.approx(0.5e-7 / others)
    error = state.error
    assert error is not None
    (glr,) = error.detectors
    assert isinstance(glr, GlrDetector)
    assert glr.false_alarm_rate == pytest.approx(0.5e-7)
    assert glr.params()["model"] == "bernoulli" and glr.params()["direction"] == "up"
    feature = state.features["x7"]
    bank, distribution = feature.detectors
    assert isinstance(bank, GlrDetector) and isinstance(distribution, DistributionDetector)
    assert bank.false_alarm_rate == pytest.approx(0.5e-7 / others)
    assert bank.params()["model"] == "normal" and feature.ranked
    assert distribution.false_alarm_rate == pytest.approx(0.5e-7 / others)
    merchant = [d.params() for d in state.categorical["merchant"].detectors]
    assert merchant[0]["model"] == "categorical" and merchant[1]["categorical"] is True


def test_equal_split_and_adwin_keep_the_previous_calibration() -> None:
    settings = parse_settings(
        {
            "defaults": {
                "retrain_budget_share": None,
                "quality_checks": False,
                "detectors": {
                    name: [{"name": "adwin"}]
                    for name in ("error", "estimated_error", "score", "feature:*")
                },
            }
        }
    )
    features: dict[str, float | str] = {f"x{k}": 1.0 for k in range(50)}
    features["merchant"] = "grocery"
    engine = Engine(settings)
    engine.process(_event(features))
    state = engine._models[("fraud", "v1")]
    # error, estimated_error, score (+ distribution), and per numeric feature ADWIN
    # + distribution, the categorical feature distribution only.
    count = 1 + 1 + 2 + 50 * 2 + 1
    assert state.false_alarm_rate == pytest.approx(1e-7 / count)
    assert state.retrain_false_alarm_rate == pytest.approx(1e-7 / count)
    feature = state.features["x7"]
    adwin, distribution = feature.detectors
    assert isinstance(adwin, AdwinDetector) and isinstance(distribution, DistributionDetector)
    assert adwin.delta == pytest.approx(1e-7 / count / 1e-3)
    assert distribution.false_alarm_rate == pytest.approx(1e-7 / count)
    assert state.categorical["merchant"].detectors[0].params()["categorical"] is True
    # ADWIN on the score sees the score itself, as before (no GLR needs ranks).
    assert state.score is not None and not state.score.ranked


def test_split_keeps_the_shares_within_the_budget() -> None:
    for retrain, other in ((1, 0), (0, 7), (1, 40), (3, 2)):
        for share_ in (None, 0.5, 0.9):
            r, o = split(1e-7, retrain=retrain, other=other, retrain_share=share_)
            assert retrain * r + other * o == pytest.approx(1e-7)
    with pytest.raises(ValueError, match="positive"):
        split(0.0, retrain=1, other=1, retrain_share=0.5)


def test_a_bigger_budget_or_none_changes_the_detectors() -> None:
    loose = Engine(parse_settings({"defaults": {"false_alarm_budget": 1e-4}}))
    loose.process(_event({"x": 1.0}))
    # Half to the error; the other half to estimated error, score x2, x x2,
    # outcome, miss_rate, false_positive_rate, x's 3 quality signals and the schema.
    bank = loose._models[("fraud", "v1")].features["x"].detectors[0]
    assert isinstance(bank, GlrDetector)
    assert bank.false_alarm_rate == pytest.approx(0.5e-4 / 12)
    off = Engine(
        parse_settings(
            {
                "defaults": {
                    "false_alarm_budget": None,
                    "detectors": {"feature:*": [{"name": "page_hinkley"}]},
                }
            }
        )
    )
    off.process(_event({"x": 1.0}))
    ph = off._models[("fraud", "v1")].features["x"].detectors[0]
    assert isinstance(ph, PageHinkleyDetector)
    assert ph.threshold == PageHinkleyDetector().threshold


@pytest.mark.parametrize("kind", ["normal", "lognormal", "integer", "categorical"])
def test_distribution_detector_stays_within_its_rate(kind: str) -> None:
    # A high rate so that false alarms are frequent enough to count: the union
    # bound promises at most rate * n of them in expectation.
    rate, n = 1e-3, 60_000
    rng = random.Random(7)
    draw = {
        "normal": lambda: rng.gauss(0.0, 1.0),
        "lognormal": lambda: rng.lognormvariate(3.0, 1.0),
        "integer": lambda: float(rng.randrange(24)),
        "categorical": lambda: float(min(int(rng.expovariate(0.7)), 6)),
    }[kind]
    detector = DistributionDetector(false_alarm_rate=rate, categorical=kind == "categorical")
    alarms = sum(1 for _ in range(n) if detector.update(draw()))
    assert alarms <= rate * n  # 60
