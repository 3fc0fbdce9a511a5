"""Where a change began, estimated after a detector says that it happened.

Online detectors answer "has the stream changed?" quickly but are vague about
*where*: ADWIN with a small delta keeps many pre-change values in its "after"
window (in a 5% -> 10% error step, 768 values of which 48 were post-change).
A retrain request needs the start of post-drift data, or the challenger learns
and is judged on the old world. The classic offline estimate for one change
in the mean (Page 1954; Hinkley 1970) is the split that maximises the CUSUM
deviation ``|S_k - (k / n) S_n|``; it needs only the recent raw values, which
the signal keeps for the signals that can trigger a retrain.
"""

from __future__ import annotations

from collections.abc import Sequence


def post_change_count(values: Sequence[float]) -> int | None:
    """How many of the latest ``values`` come after the most likely change point.

    None for fewer than two values or a constant sequence (no change to place).

    >>> post_change_count([0.0] * 80 + [1.0] * 20)
    20
    >>> post_change_count([0.1, 0.1, 0.1]) is None
    True
    """
    n = len(values)
    if n < 2:
        return None
    total = 0.0
    for v in values:
        total += v
    mean = total / n
    best_k, best = 0, 0.0
    running = 0.0
    for k in range(1, n):
        running += values[k - 1] - mean
        deviation = abs(running)
        if deviation > best:
            best_k, best = k, deviation
    # Rounding alone moves a constant sequence's CUSUM by ~1e-16 per step.
    if best_k == 0 or best <= 1e-9 * (1.0 + abs(total)):
        return None
    return n - best_k
