"""The GLR CUSUM bank: quiet, fast on a step, where the change began, calibration, state."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable

import pytest

from stream_mlops.detectors import GlrDetector, ParamError
from stream_mlops.detectors.glr import threshold

Draw = Callable[[random.Random], float]


def _categories(rng: random.Random, probs: tuple[float, ...]) -> float:
    u = rng.random()
    for code, p in enumerate(probs):
        u -= p
        if u < 0:
            return float(code)
    return float(len(probs) - 1)


# Stationary streams of each model's kind: 0/1 errors, ranks (continuous and
# with ties), ranks of a non-negative signal, category codes.
STATIONARY: dict[str, tuple[dict[str, str], Draw]] = {
    "bernoulli": ({"model": "bernoulli", "direction": "up"}, lambda r: float(r.random() < 0.05)),
    "bernoulli both": (
        {"model": "bernoulli", "direction": "both"},
        lambda r: float(r.random() < 0.3),
    ),
    "normal": ({"model": "normal"}, lambda r: r.random()),
    # Mid-ranks of an integer feature with 24 values, and of a 5% flag.
    "normal ties": ({"model": "normal"}, lambda r: (int(r.random() * 24) + 0.5) / 24),
    "normal flag": ({"model": "normal"}, lambda r: 0.975 if r.random() < 0.05 else 0.475),
    "halfnormal": ({"model": "halfnormal", "direction": "up"}, lambda r: r.random()),
    "categorical": (
        {"model": "categorical"},
        lambda r: _categories(r, (0.4, 0.25, 0.15, 0.12, 0.08)),
    ),
}


def _alarms(params: dict[str, str], draw: Draw, rate: float, n: int, seed: int) -> int:
    rng = random.Random(seed)
    detector = GlrDetector(false_alarm_rate=rate, **params)  # type: ignore[arg-type]
    return sum(1 for _ in range(n) if detector.update(draw(rng)))


@pytest.mark.parametrize("kind", sorted(STATIONARY))
def test_quiet_on_a_stationary_stream(kind: str) -> None:
    params, draw = STATIONARY[kind]
    assert _alarms(params, draw, 1e-6, 40_000, seed=1) == 0


@pytest.mark.parametrize("kind", sorted(STATIONARY))
def test_false_alarm_rate_is_within_the_calibrated_rate_and_not_far_below(kind: str) -> None:
    # At a high rate false alarms are frequent enough to count. The theory
    # (a union bound over the CUSUMs, each at its run-length approximation)
    # promises at most rate * n; a calibration that is far too cautious would
    # show as many times fewer (simulated: 0.1-0.6 of the rate, see
    # benchmarks/detection.py --calibration).
    params, draw = STATIONARY[kind]
    rate, n = 1e-3, 60_000
    alarms = _alarms(params, draw, rate, n, seed=2)
    assert alarms <= rate * n  # 60
    assert alarms >= 0.02 * rate * n  # 1.2


def test_threshold_solves_the_run_length_approximation() -> None:
    for x in (0.5, 10.0, 1e4, 1e9):
        h = threshold(x)
        assert math.exp(h) - h - 1.0 == pytest.approx(x, rel=1e-9)
    # Small shifts (small drift I0) get thresholds below ln(ARL): faster.
    assert threshold(1e8 * 0.005) < math.log(1e8) - 4.0


def _step(p0: float, p1: float, tau: int, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < (p0 if i < tau else p1)) for i in range(n)]


def test_an_error_step_is_found_and_located() -> None:
    # 5% -> 20% at 6,000: the optimal delay at 1e-8 is ln(1e8) / KL = 132.
    delays, located = [], []
    for seed in range(10):
        detector = GlrDetector(model="bernoulli", direction="up", false_alarm_rate=1e-8)
        values = _step(0.05, 0.20, 6000, 9000, seed)
        fired = [(i, d) for i, x in enumerate(values) if (d := detector.update(x))]
        assert len(fired) == 1, fired
        i, detection = fired[0]
        delays.append(i - 6000 + 1)
        assert detection.window_after is not None and detection.window_before is not None
        located.append(i + 1 - detection.window_after)
        assert detection.window_before == i + 1 - detection.window_after
        assert detection.mean_before is not None and detection.mean_after is not None
        assert 0.03 < detection.mean_before < 0.07
        assert detection.mean_after > 0.12
    assert 60 < sum(delays) / len(delays) < 200, delays
    # The change point estimate lands near 6,000 (within a detection window).
    assert all(abs(start - 6000) < 150 for start in located), located


def test_a_mean_shift_of_ranks_is_found_both_ways_and_reports_raw_means() -> None:
    for sign in (1.0, -1.0):
        rng = random.Random(3)
        detector = GlrDetector()
        fired = []
        for i in range(12_000):
            raw = rng.gauss(0.0 if i < 8000 else sign, 1.0)
            rank = 0.5 * (1.0 + math.erf(raw / math.sqrt(2.0)))  # its rank under N(0, 1)
            if d := detector.observe(rank, 100.0 + raw):
                fired.append((i, d))
        assert len(fired) == 1
        i, detection = fired[0]
        assert 8000 <= i < 8100
        assert detection.mean_before == pytest.approx(100.0, abs=0.1)
        assert detection.mean_after == pytest.approx(100.0 + sign, abs=0.4)


def test_a_variance_change_with_the_same_mean_is_found() -> None:
    rng = random.Random(4)
    detector = GlrDetector()
    fired = []
    for i in range(12_000):
        raw = rng.gauss(0.0, 1.0 if i < 8000 else 1.5)
        rank = 0.5 * (1.0 + math.erf(raw / math.sqrt(2.0)))
        if detector.update(rank):
            fired.append(i)
    assert len(fired) == 1 and 8000 <= fired[0] < 8300, fired


def test_a_category_becoming_frequent_is_found() -> None:
    rng = random.Random(5)
    detector = GlrDetector(model="categorical")
    before, after = (0.4, 0.25, 0.15, 0.12, 0.08), (0.32, 0.25, 0.15, 0.12, 0.16)
    fired = [
        i
        for i in range(20_000)
        if detector.update(_categories(rng, before if i < 12_000 else after))
    ]
    assert len(fired) == 1 and 12_000 <= fired[0] < 14_000, fired


def test_a_flag_is_watched_by_its_frequencies() -> None:
    # A 0/1 feature ranks to two levels; its normal score would jump far into
    # the tails at every rare 1. The detector watches the levels as categories.
    rng = random.Random(8)
    detector = GlrDetector()
    fired = [
        i
        for i in range(30_000)
        if detector.update(0.975 if rng.random() < (0.05 if i < 20_000 else 0.10) else 0.475)
    ]
    assert detector.state()["discrete"] == 1
    assert len(fired) == 1 and 20_000 <= fired[0] < 22_000, fired


def test_a_constant_signal_never_fires_and_a_rate_needs_events_first() -> None:
    detector = GlrDetector(model="normal")
    assert not any(detector.update(0.5) for _ in range(5000))
    # No error at all so far: there is no rate to compare with yet.
    rates = GlrDetector(model="bernoulli", direction="up")
    assert not any(rates.update(0.0) for _ in range(5000))
    assert rates.state()["n0"] == 0


@pytest.mark.parametrize("kind", sorted(STATIONARY))
def test_state_is_plain_data_and_continues_exactly(kind: str) -> None:
    params, draw = STATIONARY[kind]
    rng = random.Random(6)
    values = [draw(rng) for _ in range(6000)]
    # A shifted tail, so the continuation has something to detect.
    values += [
        4.0 if kind == "categorical" else 0.975 if kind == "normal flag" else min(1.0, v + 0.3)
        for v in values[:3000]
    ]
    original = GlrDetector(false_alarm_rate=1e-3, **params)  # type: ignore[arg-type]
    for x in values[:4000]:
        original.update(x)
    state = json.loads(json.dumps(original.state()))  # survives JSON unchanged
    copy = GlrDetector(**original.params())
    copy.load_state(state)
    assert copy.observations == original.observations
    tail = values[4000:]
    assert [original.update(x) for x in tail] == [copy.update(x) for x in tail]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("w"), "'w' must be a list"),
        (lambda s: s.update(n="12"), "'n' must be an integer"),
        (lambda s: s.update(t=[*s["t"], 1.0]), "differ in length"),
        (lambda s: s.update(ranges=[[0, 999]]), "outside"),
        (lambda s: s.update(m=None), "'m' must be a number"),
        (lambda s: s.update(q=[0.5] * len(s["q"])), "the mean .* or all the scale"),
    ],
)
def test_load_state_rejects_what_it_cannot_trust(
    change: Callable[[dict[str, object]], object], message: str
) -> None:
    detector = GlrDetector()
    rng = random.Random(7)
    for _ in range(2000):
        detector.update(rng.random())
    state = detector.state()
    change(state)
    with pytest.raises(ValueError, match=message):
        GlrDetector().load_state(state)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"model": "poisson"}, "model"),
        ({"direction": "sideways"}, "direction"),
        ({"false_alarm_rate": 0.0}, "false_alarm_rate"),
        ({"reference": 5}, "reference"),
    ],
)
def test_bad_parameters_name_the_field(params: dict[str, object], field: str) -> None:
    with pytest.raises(ParamError) as info:
        GlrDetector(**params)  # type: ignore[arg-type]
    assert info.value.field == field
