"""Where a change began, estimated after a detector says that it happened.

Online detectors answer "has the stream changed?" quickly but are vague about
*where*: ADWIN with a small delta keeps many pre-change values in its "after"
window (in a 5% -> 10% error step, 768 values of which 48 were post-change),
so the means of its window cut understate the change. A retrain request needs
the start of post-drift data, and an alert the means on either side of the
change. The classic offline estimate for one change in the mean (Page 1954;
Hinkley 1970) is the split that maximises the CUSUM deviation
``|S_k - (k / n) S_n|`` (``post_change_count``, over the values themselves).
A signal keeps only sums over blocks of 32 values (``stream_mlops.signals``):
``block_post_change_count`` places the split at a block boundary, by the
CUSUM deviation in units of its standard deviation (the likelihood-ratio
split), which is not drawn toward the middle of a long stretch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np

__all__ = ["block_post_change_count", "effect_size", "post_change_count"]

# The effect size reported for a change against a reference without spread.
_UNBOUNDED_EFFECT: Final = 1e9


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


def block_post_change_count(
    sums: Sequence[float], counts: Sequence[int], *, min_segment: int = 1
) -> int | None:
    """How many of the latest values follow the change, from sums of blocks.

    ``sums[i]`` is the sum of ``counts[i]`` consecutive values; the split is
    placed at a block boundary with at least ``min_segment`` values on each
    side. The statistic is the CUSUM deviation divided by its standard
    deviation under no change, ``(S_k - (k / n) S_n)^2 / (k (n - k) / n)``: the
    likelihood-ratio split for one change in a normal mean (Hinkley 1970).
    The raw CUSUM ``post_change_count`` maximises is biased toward the middle:
    for a change whose last few hundred values an alert comes after, among
    ten thousand before, it placed the split thousands of values early (the
    simulation is in docs/detection.md, "Alert statistics"). None without an
    admissible split or for a constant sequence.

    >>> block_post_change_count([0.0, 0.0, 10.0, 10.0], [32, 32, 10, 10])
    20
    >>> block_post_change_count([1.0, 1.0], [32, 32]) is None
    True
    """
    if len(sums) < 2:
        return None
    x = np.asarray(sums, dtype=np.float64)
    w = np.asarray(counts, dtype=np.float64)
    size = float(np.sum(w))
    total = float(np.sum(x))
    deviations = np.cumsum(x[:-1] - w[:-1] * (total / size))
    before = np.cumsum(w[:-1])
    admissible = (before >= min_segment) & (size - before >= min_segment)
    if not admissible.any():
        return None
    statistic = np.where(admissible, deviations**2 / (before * (size - before) / size), -1.0)
    split = int(np.argmax(statistic))
    # Rounding alone moves a constant sequence's CUSUM by ~1e-16 per step.
    if abs(float(deviations[split])) <= 1e-9 * (1.0 + abs(total)):
        return None
    return int(size - before[split])


def effect_size(difference: float, sd: float) -> float:
    """A change of mean in SDs, always finite.

    Against a constant reference (sd 0) any move is infinitely many SDs: it is
    reported with its sign at a large finite size (JSON has no infinity).

    >>> effect_size(0.5, 0.25), effect_size(0.1, 0.0), effect_size(0.0, 0.0)
    (2.0, 1000000000.0, 0.0)
    """
    if sd > 0.0:
        effect = difference / sd
        if math.isfinite(effect):
            return effect
    # A spread of 0, or so small that the quotient overflows.
    return 0.0 if difference == 0.0 else math.copysign(_UNBOUNDED_EFFECT, difference)
