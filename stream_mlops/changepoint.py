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

import numpy as np


def post_change_count(values: Sequence[float]) -> int | None:
    """How many of the latest ``values`` come after the most likely change point.

    None for fewer than two values or a constant sequence (no change to place).
    The CUSUM deviations of every split come from two cumulative sums in numpy
    (sequential sums, so the split is the one a plain loop finds, bit for bit).

    >>> post_change_count([0.0] * 80 + [1.0] * 20)
    20
    >>> post_change_count([0.1, 0.1, 0.1]) is None
    True
    """
    n = len(values)
    if n < 2:
        return None
    x = np.asarray(values, dtype=np.float64)
    total = float(np.cumsum(x)[-1])
    # |S_k - (k / n) S_n| for the splits k = 1 .. n - 1, as sums of deviations
    # from the mean; argmax takes the first of equal maxima.
    deviations = np.abs(np.cumsum(x[:-1] - total / n))
    split = int(np.argmax(deviations))
    # Rounding alone moves a constant sequence's CUSUM by ~1e-16 per step.
    if float(deviations[split]) <= 1e-9 * (1.0 + abs(total)):
        return None
    return n - (split + 1)
