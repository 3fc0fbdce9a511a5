"""The promotion test: exact sign test, margin, and the false-promotion rate over repeated looks."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from stream_mlops.retrain import PromotionPolicy, PromotionTest, sign_test_p_value


def exact_upper_tail(positives: int, n: int) -> float:
    """P(X >= positives), X ~ Binomial(n, 1/2), in exact integer arithmetic.

    Each binomial coefficient from the previous one; one rounding, at the end.
    """
    term = math.comb(n, positives)
    tail = 0
    for k in range(positives, n + 1):
        tail += term
        term = term * (n - k) // (k + 1)
    return float(Fraction(tail, 2**n))


@pytest.mark.parametrize(
    ("positives", "negatives"), [(0, 0), (0, 7), (5, 5), (9, 1), (30, 10), (700, 620), (1200, 800)]
)
def test_sign_test_matches_the_exact_binomial_tail_and_scipys_binomtest(
    positives: int, negatives: int
) -> None:
    n = positives + negatives
    p_value = sign_test_p_value(positives, negatives)
    assert p_value == pytest.approx(exact_upper_tail(positives, n), rel=1e-9)
    if n:
        test = binomtest(positives, n, 0.5, alternative="greater")
        assert p_value == pytest.approx(test.pvalue, rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2000), st.integers(0, 2000))
def test_sign_test_agrees_with_exact_arithmetic_up_to_the_promotion_bound(
    positives: int, negatives: int
) -> None:
    expected = exact_upper_tail(positives, positives + negatives)
    # Below ~1e-300 both round into the subnormals; nothing is decided there.
    assert sign_test_p_value(positives, negatives) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_ties_do_not_count_and_both_sides_are_counted() -> None:
    test = PromotionTest(PromotionPolicy(min_events=10, check_every=10, max_events=10))
    verdict = test.evaluate([1, 1, 0, 0, 1, 0, 1, 1, 1, 1], [0, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    assert (verdict.challenger_better, verdict.champion_better) == (6, 1)
    assert verdict.p_value == pytest.approx(sign_test_p_value(6, 1))
    assert verdict.champion_loss == pytest.approx(0.7)
    assert verdict.challenger_loss == pytest.approx(0.2)


def test_a_significant_gain_below_the_margin_is_not_promoted() -> None:
    policy = PromotionPolicy(min_events=1000, check_every=100, max_events=1000)
    champion = [10.0] * 1000
    # Better on every event (p tiny) but only by 2%.
    small_gain = PromotionTest(policy).evaluate(champion, [9.8] * 1000)
    assert small_gain.p_value < 1e-100
    assert not small_gain.promote
    loose = PromotionPolicy(
        min_events=1000, check_every=100, max_events=1000, min_relative_improvement=0.01
    )
    assert PromotionTest(loose).evaluate(champion, [9.8] * 1000).promote


def test_nothing_is_promoted_before_min_events() -> None:
    policy = PromotionPolicy(min_events=200, check_every=100, max_events=400)
    verdict = PromotionTest(policy).evaluate([1.0] * 150, [0.0] * 150)
    assert verdict.p_value < policy.alpha_per_look
    assert not verdict.promote


def test_looks_and_per_look_alpha_follow_the_policy() -> None:
    policy = PromotionPolicy(alpha=0.01, min_events=200, check_every=100, max_events=2000)
    assert policy.looks == 19
    assert policy.alpha_per_look == pytest.approx(0.01 / 19)
    looks = [n for n in range(1, 2101) if policy.is_look(n)]
    assert looks == list(range(200, 2001, 100))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"min_events": 0}, "min_events"),
        ({"check_every": 0}, "check_every"),
        ({"max_events": 100}, "max_events"),
        ({"max_events": 2050}, "multiple of check_every"),
        ({"min_relative_improvement": 1.0}, "min_relative_improvement"),
        ({"warmup_events": -1}, "warmup_events"),
    ],
)
def test_invalid_policies_name_the_field(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PromotionPolicy(**changes)  # type: ignore[arg-type]


def _false_promotion_rate(runs: int, *, corrected: bool) -> float:
    """Under an exact null (both models' losses i.i.d. Bernoulli(0.2)), how often any look fires."""
    policy = PromotionPolicy(
        alpha=0.05, min_events=50, check_every=50, max_events=500, min_relative_improvement=0.0
    )
    test = PromotionTest(policy)
    rng = random.Random(20261127)
    fired = 0
    for _ in range(runs):
        champion = [float(rng.random() < 0.2) for _ in range(policy.max_events)]
        challenger = [float(rng.random() < 0.2) for _ in range(policy.max_events)]
        for n in range(policy.min_events, policy.max_events + 1, policy.check_every):
            verdict = test.evaluate(champion[:n], challenger[:n])
            threshold = policy.alpha_per_look if corrected else policy.alpha
            if verdict.p_value <= threshold and verdict.relative_improvement >= 0:
                fired += 1
                break
    return fired / runs


def test_repeated_looks_keep_false_promotions_within_alpha() -> None:
    runs = 1500
    # 3 standard errors of a rate of 0.05 over 1500 runs.
    slack = 3 * (0.05 * 0.95 / runs) ** 0.5
    corrected = _false_promotion_rate(runs, corrected=True)
    uncorrected = _false_promotion_rate(runs, corrected=False)
    assert corrected <= 0.05 + slack
    # The correction is what keeps it there: testing each of the 10 looks at the
    # full alpha promotes far more often than alpha.
    assert uncorrected > 0.05 + slack
