"""``rebase_after_alert``: after a drift alert, a new reference or the same one."""

from __future__ import annotations

import random

import pytest

from stream_mlops.config import parse_settings
from stream_mlops.detectors import DistributionDetector, GlrDetector
from stream_mlops.detectors.glr import upper_rate
from stream_mlops.engine import Engine
from stream_mlops.events import DriftAlert
from tests.streams import classifier


def _error_alerts(rebase: bool) -> list[DriftAlert]:
    engine = Engine(parse_settings({"defaults": {"rebase_after_alert": rebase}}))
    n = 14_000
    stream = classifier(n, error_rate=lambda i: 0.05 if i < 4_000 else 0.3, seed=5)
    return [
        o
        for e in stream
        for o in engine.process(e)
        if isinstance(o, DriftAlert) and o.signal == "error" and o.severity == "drift"
    ]


def test_by_default_the_reference_is_formed_again_after_an_alert() -> None:
    alerts = _error_alerts(rebase=True)
    assert len(alerts) == 1, [a.stats.mean_before for a in alerts]


def test_without_rebasing_a_lasting_change_is_reported_against_the_same_reference() -> None:
    alerts = _error_alerts(rebase=False)
    assert len(alerts) >= 2
    first, second = alerts[0], alerts[1]
    # Each alert after the cooldown compares with the pre-change 5%.
    assert second.observations - first.observations >= 1_000
    for alert in (first, second):
        assert alert.stats.mean_before == pytest.approx(0.05, abs=0.02)
        # the located excursion: a short one, its mean noisy
        assert alert.stats.mean_after == pytest.approx(0.3, abs=0.15)


@pytest.mark.parametrize("keep", [False, True])
def test_glr_keep_reference_restarts_its_cusums_against_the_same_estimate(keep: bool) -> None:
    rng = random.Random(1)
    glr = GlrDetector(model="bernoulli", direction="up", false_alarm_rate=1e-8, keep_reference=keep)
    detections = []
    for i in range(20_000):
        found = glr.update(float(rng.random() < (0.05 if i < 5_000 else 0.3)))
        if found is not None:
            detections.append((i, found))
    assert detections and detections[0][0] >= 5_000
    if keep:
        # every few dozen values again, each against the 5% before the change
        assert len(detections) > 20
        assert all(d.mean_before == pytest.approx(0.05, abs=0.015) for _, d in detections)
    else:
        assert len(detections) == 1


def test_distribution_keep_reference_keeps_comparing_with_the_first_values() -> None:
    rng = random.Random(2)
    kept = DistributionDetector(keep_reference=True, false_alarm_rate=1e-6)
    fresh = DistributionDetector(false_alarm_rate=1e-6)
    counts = {True: 0, False: 0}
    for i in range(30_000):
        x = rng.gauss(0.0 if i < 5_000 else 1.5, 1.0)
        counts[True] += kept.update(x) is not None
        counts[False] += fresh.update(x) is not None
    assert counts[False] == 1
    assert counts[True] > 3


def test_upper_rate_bounds_the_rate_from_above() -> None:
    rng = random.Random(3)
    for p in (0.001, 0.01, 0.2):
        n = 500
        ones = sum(rng.random() < p for _ in range(n))
        bound = upper_rate(ones, n)
        assert ones / n < bound < 1.0
        assert bound > p  # a level of 1e-6: never below in these few draws
    assert upper_rate(0, 500) == pytest.approx(1 - (1e-6) ** (1 / 500), rel=1e-3)


def test_glr_with_an_upper_null_starts_on_few_events_and_holds_its_rate() -> None:
    rng = random.Random(4)
    # 1% errors: the plain estimate waits for 30 of them (3,000 values)
    upper = GlrDetector(model="bernoulli", direction="up", null="upper", false_alarm_rate=1e-6)
    plain = GlrDetector(model="bernoulli", direction="up", false_alarm_rate=1e-6)
    first: dict[str, int] = {}
    for i in range(2_000):
        x = float(rng.random() < (0.01 if i < 700 else 0.37))
        for name, detector in (("upper", upper), ("plain", plain)):
            if detector.update(x) is not None and name not in first:
                first[name] = i
    assert 700 <= first["upper"] < 800
    assert "plain" not in first or first["plain"] > first["upper"]
    # stationary 1%: no alarm over 300,000 values at 1e-6 per value is likely;
    # the bound makes it rarer still
    quiet = GlrDetector(model="bernoulli", direction="up", null="upper", false_alarm_rate=1e-6)
    assert not any(quiet.update(float(rng.random() < 0.01)) for _ in range(300_000))


def test_the_default_glr_keeps_its_attributes_within_cpythons_shared_keys() -> None:
    # CPython shares instance-dict keys, and specialises attribute loads on
    # them, up to 30 attributes; one more made every GLR update ~10% slower.
    for model in ("bernoulli", "normal", "halfnormal", "categorical"):
        assert len(vars(GlrDetector(model=model))) <= 30
