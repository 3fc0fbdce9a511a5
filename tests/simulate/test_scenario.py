from __future__ import annotations

import random
import statistics

import pytest

from stream_mlops.simulate.scenario import DriftScenario, LabelDelay


def test_no_drift_is_always_pre_drift() -> None:
    scenario = DriftScenario()
    assert {scenario.post_drift_weight(i) for i in range(0, 100_000, 997)} == {0.0}


def test_abrupt_switches_at_the_index() -> None:
    scenario = DriftScenario("abrupt", at=500)
    assert [scenario.post_drift_weight(i) for i in (0, 499, 500, 10**6)] == [0.0, 0.0, 1.0, 1.0]


def test_gradual_ramps_linearly_over_the_span() -> None:
    scenario = DriftScenario("gradual", at=1000, span=400)
    weights = [scenario.post_drift_weight(i) for i in range(900, 1500)]
    assert weights[:101] == [0.0] * 101
    assert weights[-100:] == [1.0] * 100
    ramp = weights[100:501]
    assert ramp == sorted(ramp)
    assert scenario.post_drift_weight(1100) == pytest.approx(0.25)


def test_recurring_alternates_every_span() -> None:
    scenario = DriftScenario("recurring", at=100, span=50)
    assert scenario.post_drift_weight(99) == 0.0
    assert [scenario.post_drift_weight(100 + k * 50) for k in range(6)] == [1, 0, 1, 0, 1, 0]
    assert scenario.post_drift_weight(149) == 1.0
    assert scenario.post_drift_weight(150) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "sudden"}, "kind must be one of"),
        ({"kind": "abrupt", "at": -1}, "at must be >= 0"),
        ({"kind": "gradual", "span": 0}, "span must be >= 1"),
        ({"kind": "abrupt", "concept": False, "covariate": False}, "concept, the covariates"),
    ],
)
def test_invalid_scenarios_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriftScenario(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"distribution": "gamma"}, "distribution must be one of"),
        ({"mean_s": -1.0}, "mean_s must be"),
        ({"mean_s": float("inf")}, "mean_s must be"),
        ({"missing_fraction": 1.5}, "missing_fraction must be"),
    ],
)
def test_invalid_label_delays_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LabelDelay(**kwargs)  # type: ignore[arg-type]


def _draws(delay: LabelDelay, n: int = 20_000, seed: int = 11) -> list[float | None]:
    rng = random.Random(seed)
    return [delay.sample(rng) for _ in range(n)]


def test_exponential_delay_has_the_configured_mean_and_shape() -> None:
    draws = [d for d in _draws(LabelDelay("exponential", mean_s=40.0)) if d is not None]
    assert len(draws) == 20_000
    assert statistics.mean(draws) == pytest.approx(40.0, rel=0.05)
    # exponential: median = mean * ln 2, and P(X > mean) = 1/e
    assert statistics.median(draws) == pytest.approx(40.0 * 0.6931, rel=0.06)
    assert sum(d > 40.0 for d in draws) / len(draws) == pytest.approx(0.3679, abs=0.02)
    assert min(draws) >= 0.0


def test_fixed_and_uniform_delays() -> None:
    assert set(_draws(LabelDelay("fixed", mean_s=7.5), n=100)) == {7.5}
    uniform = [d for d in _draws(LabelDelay("uniform", mean_s=10.0)) if d is not None]
    assert min(uniform) >= 0.0 and max(uniform) <= 20.0
    assert statistics.mean(uniform) == pytest.approx(10.0, rel=0.05)


def test_missing_fraction_is_honoured_and_does_not_shift_later_delays() -> None:
    with_missing = _draws(LabelDelay("exponential", 30.0, missing_fraction=0.25))
    without = _draws(LabelDelay("exponential", 30.0, missing_fraction=0.0))
    missing = sum(d is None for d in with_missing) / len(with_missing)
    assert missing == pytest.approx(0.25, abs=0.015)
    # The same number of draws per sample: the delays that did arrive are the same.
    assert all(a == b for a, b in zip(with_missing, without, strict=True) if a is not None)
