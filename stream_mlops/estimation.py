"""Label-free performance estimation: a classifier's scores calibrated against labels.

A classifier publishes a score, the positive class's probability. If that
probability were exact, each prediction would be wrong with a known
probability (``1 - score`` for a positive prediction, ``score`` for a negative
one), and their mean over a window would be the error rate its outcomes will
show, known before any outcome arrives: confidence-based performance
estimation (CBPE, as in NannyML). Scores are rarely exact, so they are first
calibrated against labeled data (``Calibration.fit(scores, labels)``): by
default a model version's own first labeled events (its warm-up,
``PerformanceEstimation``); any labeled reference can be fed the same way.

The calibration is isotonic regression of the 0/1 label on the score: the one
increasing step function that fits the labels best (least squares). Isotonic
rather than histogram binning because it needs no bin count, adapts its steps
to where the labels change, and keeps the score's order; fitted by scipy's
pool-adjacent-violators (``scipy.optimize.isotonic_regression``): scipy is a
dependency already, scikit-learn is not.

``ErrorEstimator`` turns each prediction into its calibrated probability of
being wrong (what the ``estimated_error`` signal then watches) and, every
``window`` predictions, into an ``ErrorEstimate``: the window's estimated
error, a 95% normal interval for the error rate its outcomes will show (their
Poisson-binomial variance ``sum p (1 - p) / n^2``, plus the calibration's own
uncertainty: each step's rate is an estimate from its labeled events), and the
reference band: the reference's estimated error plus or minus three standard
errors of a window's mean (NannyML's convention for its thresholds).

The estimate is valid while the calibration holds: P(label | score) on the
live traffic is what it was on the labeled data. Covariate shift that moves
traffic between regions of the score keeps it (the estimate moves, and that is
the point); concept drift (P(label | x) changes, the scores do not) breaks it.
``docs/detection.md`` has more.

>>> calibration = Calibration.fit([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9],
...                               [0, 0, 1, 0, 0, 1, 1, 1])
>>> calibration.uppers, calibration.positives, calibration.counts
([0.2, 0.6, 0.9], [0, 1, 3], [2, 3, 3])
>>> round(calibration.rate(0.35), 3), round(wrong_probability(1, calibration.rate(0.35)), 3)
(0.333, 0.667)
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from scipy.optimize import isotonic_regression

from stream_mlops.events import ErrorEstimate, LabelValue
from stream_mlops.plain_data import (
    FieldError,
    Fields,
    check_int,
    check_list,
    float_data,
)

__all__ = [
    "Calibration",
    "ErrorEstimator",
    "PerformanceEstimation",
    "binary_label",
    "prediction_kind",
    "wrong_probability",
]

# Standard errors of a window's mean on either side of the reference band.
_BAND_WIDTH: Final = 3.0
# The 97.5% normal quantile: the estimate's interval is 95%.
_Z95: Final = 1.959963984540054
# At most this many calibration steps are kept (a snapshot carries them); a
# finer fit is merged pairwise, which isotonic fits of real scores rarely need.
_MAX_BLOCKS: Final = 512
# prediction_kind: a positive prediction, a negative one, another label.
_POSITIVE: Final = 1
_NEGATIVE: Final = 0
_OTHER: Final = -1


def binary_label(value: LabelValue) -> int | None:
    """1 for a positive label (``1``, ``true``), 0 for a negative one, None otherwise.

    >>> binary_label(True), binary_label(0), binary_label(1.0), binary_label("yes")
    (1, 0, None, None)
    """
    if value is True or (type(value) is int and value == 1):
        return 1
    if value is False or (type(value) is int and value == 0):
        return 0
    return None


def prediction_kind(prediction: LabelValue) -> int:
    """1 for a positive prediction, 0 for a negative one, -1 for another label."""
    label = binary_label(prediction)
    return _OTHER if label is None else label


def wrong_probability(kind: int, rate: float) -> float:
    """The probability that a prediction of ``kind`` is wrong, where the
    calibrated P(positive | score) is ``rate``: ``1 - rate`` for a positive
    prediction, ``rate`` for a negative one, the smaller of the two otherwise
    (the score taken as thresholded where the rate crosses 1/2)."""
    if kind == _POSITIVE:
        return 1.0 - rate
    if kind == _NEGATIVE:
        return rate
    return rate if rate < 0.5 else 1.0 - rate


class Calibration:
    """P(positive | score) as an increasing step function: isotonic blocks of scores.

    Block ``i`` holds the labeled scores up to ``uppers[i]`` (above the
    previous block's); its rate is its share of positives, ``positives[i]`` of
    ``counts[i]`` events. A score between two blocks takes the higher one;
    beyond the last, the last.
    """

    __slots__ = ("counts", "positives", "rates", "uppers")

    def __init__(self, uppers: list[float], positives: list[int], counts: list[int]) -> None:
        self.uppers = uppers
        self.positives = positives
        self.counts = counts
        self.rates = [k / n for k, n in zip(positives, counts, strict=True)]

    @classmethod
    def fit(cls, scores: Sequence[float], labels: Sequence[int]) -> Calibration:
        """The isotonic fit of 0/1 ``labels`` on ``scores`` (as many of each, at least one)."""
        if not scores or len(scores) != len(labels):
            raise ValueError("calibration: needs scores and as many 0/1 labels")
        if any(label not in (0, 1) for label in labels):
            raise ValueError("calibration: labels must be 0 or 1")
        values = np.asarray(scores, dtype=float)
        if not np.all(np.isfinite(values)):
            raise ValueError("calibration: scores must be finite")
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        ones = np.asarray(labels, dtype=float)[order]
        # Tied scores are one point of the fit, weighted by their count.
        unique, first = np.unique(ordered, return_index=True)
        counts = np.diff(np.append(first, len(ordered)))
        positives = np.add.reduceat(ones, first)
        fitted = isotonic_regression(positives / counts, weights=counts, increasing=True)
        starts = [int(b) for b in fitted.blocks[:-1]]
        ends = [*starts[1:], len(unique)]
        uppers = [float(unique[end - 1]) for end in ends]
        spans = list(zip(starts, ends, strict=True))
        block_positives = [round(float(positives[a:b].sum())) for a, b in spans]
        block_counts = [int(counts[a:b].sum()) for a, b in spans]
        while len(uppers) > _MAX_BLOCKS:
            uppers = uppers[1::2] if len(uppers) % 2 == 0 else [*uppers[1::2], uppers[-1]]
            block_positives = _pairs(block_positives)
            block_counts = _pairs(block_counts)
        return cls(uppers, block_positives, block_counts)

    def block(self, score: float) -> int:
        """The block a score falls in."""
        i = bisect_left(self.uppers, score)
        last = len(self.uppers) - 1
        return i if i < last else last

    def rate(self, score: float) -> float:
        """The calibrated P(positive | score)."""
        return self.rates[self.block(score)]

    def variance(self, block: int) -> float:
        """The variance of block ``block``'s rate (a Jeffreys-like estimate: never 0)."""
        n = self.counts[block]
        q = (self.positives[block] + 0.5) / (n + 1.0)
        return q * (1.0 - q) / (n + 1.0)

    @property
    def events(self) -> int:
        """Labeled events the calibration was fitted on."""
        return sum(self.counts)

    def state(self) -> dict[str, Any]:
        return {
            "uppers": [float_data(u) for u in self.uppers],
            "positives": list(self.positives),
            "counts": list(self.counts),
        }

    @classmethod
    def from_state(cls, fields: Fields) -> Calibration:
        uppers = fields.numbers("uppers", max_len=_MAX_BLOCKS)
        positives = fields.integers("positives", max_len=_MAX_BLOCKS, low=0)
        counts = fields.integers("counts", max_len=_MAX_BLOCKS, low=1)
        if not uppers or not len(uppers) == len(positives) == len(counts):
            raise FieldError(f"{fields.path}: expected as many uppers, positives and counts (> 0)")
        if uppers != sorted(uppers) or any(k > n for k, n in zip(positives, counts, strict=True)):
            raise FieldError(f"{fields.path}: uppers must ascend, positives <= counts")
        fields.done()
        return cls(uppers, positives, counts)


def _pairs(values: list[int]) -> list[int]:
    out = [values[i] + values[i + 1] for i in range(0, len(values) - 1, 2)]
    if len(values) % 2:
        out.append(values[-1])
    return out


class ErrorEstimator:
    """Calibrated error probabilities per prediction, and an estimate per window of them.

    ``reference_error`` and ``reference_sd`` are the mean and standard
    deviation of the probabilities on the reference (they set the band).

    >>> calibration = Calibration.fit([0.1] * 90 + [0.9] * 10, [0] * 81 + [1] * 9 + [1] * 10)
    >>> estimator = ErrorEstimator.from_reference(calibration, [0.1] * 90 + [0.9] * 10,
    ...                                           [0] * 90 + [1] * 10, window=4)
    >>> round(estimator.reference_error, 3)
    0.09
    >>> [estimator.observe(0, 0.1, f"e{i}", float(i))[1] for i in range(3)]
    [None, None, None]
    >>> estimate = estimator.observe(1, 0.9, "e3", 3.0)[1]
    >>> estimate.predictions, round(estimate.estimated_error, 3), estimator.window_start
    (4, 0.075, (0.0, 'e0'))
    """

    __slots__ = (
        "_blocks",
        "_first_epoch",
        "_first_id",
        "_n",
        "_sum",
        "_var",
        "calibration",
        "latest",
        "reference_error",
        "reference_sd",
        "window",
        "window_start",
    )

    def __init__(
        self,
        calibration: Calibration,
        *,
        window: int,
        reference_error: float,
        reference_sd: float,
    ) -> None:
        self.calibration = calibration
        self.window = window
        self.reference_error = reference_error
        self.reference_sd = reference_sd
        #: The latest window's estimate (alerts carry it).
        self.latest: ErrorEstimate | None = None
        #: Where the window of the estimate ``observe`` just returned began
        #: (epoch, event_id).
        self.window_start: tuple[float, str] = (0.0, "")
        self._start_window()

    @classmethod
    def from_reference(
        cls,
        calibration: Calibration,
        scores: Sequence[float],
        kinds: Sequence[int],
        *,
        window: int,
    ) -> ErrorEstimator:
        """An estimator whose band comes from reference predictions (``scores``
        and their ``prediction_kind``): usually those the calibration was fitted on."""
        if not scores or len(scores) != len(kinds):
            raise ValueError("estimator: needs reference scores and as many predictions")
        rate = calibration.rate
        p = np.array([wrong_probability(k, rate(s)) for s, k in zip(scores, kinds, strict=True)])
        return cls(
            calibration,
            window=window,
            reference_error=float(p.mean()),
            reference_sd=float(p.std()),
        )

    def _start_window(self) -> None:
        self._n = 0
        self._sum = 0.0
        self._var = 0.0  # sum of p (1 - p): the outcomes' own variance
        # Per block: how the window's sum moves with the block's rate (+1 for
        # each prediction wrong with probability rate, -1 for 1 - rate).
        self._blocks: dict[int, int] = {}
        self._first_epoch = 0.0
        self._first_id = ""

    def probability(self, prediction: LabelValue, score: float) -> float:
        """The calibrated probability that this prediction is wrong."""
        return wrong_probability(prediction_kind(prediction), self.calibration.rate(score))

    def observe(
        self, prediction: LabelValue, score: float, event_id: str, epoch: float
    ) -> tuple[float, ErrorEstimate | None]:
        """One prediction: its calibrated probability of being wrong, and at the
        end of a window the window's estimate (``window_start`` then says where
        that window began)."""
        calibration = self.calibration
        block = calibration.block(score)
        rate = calibration.rates[block]
        kind = prediction_kind(prediction)
        p = wrong_probability(kind, rate)
        if self._n == 0:
            self._first_epoch = epoch
            self._first_id = event_id
        self._n += 1
        self._sum += p
        self._var += p * (1.0 - p)
        blocks = self._blocks
        falls = kind == _POSITIVE or (kind == _OTHER and rate >= 0.5)
        blocks[block] = blocks.get(block, 0) + (-1 if falls else 1)
        if self._n < self.window:
            return p, None
        estimate = self.latest = self._estimate()
        self.window_start = (self._first_epoch, self._first_id)
        self._start_window()
        return p, estimate

    def _estimate(self) -> ErrorEstimate:
        n = self._n
        mean = self._sum / n
        calibration = self.calibration
        # The delta method over the blocks' rates, each estimated independently.
        spread = sum((c / n) ** 2 * calibration.variance(b) for b, c in self._blocks.items())
        half = _Z95 * math.sqrt(self._var / (n * n) + spread)
        margin = _BAND_WIDTH * self.reference_sd / math.sqrt(n)
        low_band = max(0.0, self.reference_error - margin)
        high_band = min(1.0, self.reference_error + margin)
        return ErrorEstimate(
            predictions=n,
            estimated_error=mean,
            low=max(0.0, mean - half),
            high=min(1.0, mean + half),
            reference_error=self.reference_error,
            reference_low=low_band,
            reference_high=high_band,
            outside_band=not low_band <= mean <= high_band,
            calibration_events=calibration.events,
        )

    # -- snapshots ------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "calibration": self.calibration.state(),
            "window": self.window,
            "reference_error": float_data(self.reference_error),
            "reference_sd": float_data(self.reference_sd),
            "n": self._n,
            "sum": float_data(self._sum),
            "var": float_data(self._var),
            "blocks": [[b, c] for b, c in self._blocks.items()],
            "first_epoch": float_data(self._first_epoch),
            "first_event_id": self._first_id,
            "latest": None if latest is None else latest.model_dump(),
        }

    @classmethod
    def from_state(cls, fields: Fields) -> ErrorEstimator:
        calibration = Calibration.from_state(fields.child("calibration"))
        estimator = cls(
            calibration,
            window=fields.integer("window", low=1),
            reference_error=fields.number("reference_error"),
            reference_sd=fields.number("reference_sd"),
        )
        estimator._n = fields.integer("n", low=0, high=estimator.window - 1)
        estimator._sum = fields.number("sum")
        estimator._var = fields.number("var")
        last = len(calibration.uppers) - 1
        for i, pair in enumerate(fields.items("blocks", max_len=last + 1)):
            at = f"{fields.at('blocks')}[{i}]"
            items = check_list(pair, at)
            if len(items) != 2:
                raise FieldError(f"{at}: expected [block, signed count]")
            block = check_int(items[0], f"{at}[0]", low=0, high=last)
            window = estimator.window
            estimator._blocks[block] = check_int(items[1], f"{at}[1]", low=-window, high=window)
        estimator._first_epoch = fields.number("first_epoch")
        estimator._first_id = fields.string("first_event_id")
        latest = fields.raw("latest")
        if latest is not None:
            try:
                estimator.latest = ErrorEstimate.model_validate(latest)
            except ValueError as exc:
                raise FieldError(f"{fields.at('latest')}: {exc}") from None
        fields.done()
        return estimator


class PerformanceEstimation:
    """One model version's estimation: the labeled warm-up that calibrates its
    scores, then the estimator.

    >>> estimation = PerformanceEstimation(calibration_events=4, window=2)
    >>> [estimation.learn(p, s, a) for p, s, a in
    ...  [(0, 0.2, 0), (1, 0.8, 1), (0, 0.3, "?"), (0, 0.4, 1), (1, 0.9, 1)]]
    [False, False, False, False, True]
    >>> estimation.estimator is not None, estimation.estimator.calibration.events
    (True, 4)
    """

    __slots__ = ("_kinds", "_labels", "_scores", "calibration_events", "estimator", "window")

    def __init__(self, *, calibration_events: int, window: int) -> None:
        self.calibration_events = calibration_events
        self.window = window
        #: None until the warm-up is complete.
        self.estimator: ErrorEstimator | None = None
        self._scores: list[float] = []
        self._labels: list[int] = []
        self._kinds: list[int] = []

    def learn(self, prediction: LabelValue, score: float, actual: LabelValue) -> bool:
        """A labeled, scored prediction for the warm-up; True when it completes
        the calibration (``estimator`` is set from then on). Labels other than
        0/1 and booleans are not used."""
        label = binary_label(actual)
        if self.estimator is not None or label is None:
            return False
        self._scores.append(score)
        self._labels.append(label)
        self._kinds.append(prediction_kind(prediction))
        if len(self._scores) < self.calibration_events:
            return False
        calibration = Calibration.fit(self._scores, self._labels)
        self.estimator = ErrorEstimator.from_reference(
            calibration, self._scores, self._kinds, window=self.window
        )
        self._scores, self._labels, self._kinds = [], [], []
        return True

    def state(self) -> dict[str, Any]:
        return {
            "calibration_events": self.calibration_events,
            "window": self.window,
            "scores": [float_data(s) for s in self._scores],
            "labels": list(self._labels),
            "kinds": list(self._kinds),
            "estimator": None if self.estimator is None else self.estimator.state(),
        }

    @classmethod
    def from_state(cls, fields: Fields) -> PerformanceEstimation:
        needed = fields.integer("calibration_events", low=1)
        estimation = cls(calibration_events=needed, window=fields.integer("window", low=1))
        scores = fields.numbers("scores", max_len=needed - 1)
        labels = fields.integers("labels", max_len=needed - 1, low=0, high=1)
        kinds = fields.integers("kinds", max_len=needed - 1, low=_OTHER, high=_POSITIVE)
        if not len(scores) == len(labels) == len(kinds):
            raise FieldError(f"{fields.path}: expected as many scores, labels and kinds")
        found = fields.optional_child("estimator")
        if found is not None:
            if scores:
                raise FieldError(f"{fields.path}: a calibrated estimation keeps no warm-up")
            estimation.estimator = ErrorEstimator.from_state(found)
            if estimation.estimator.window != estimation.window:
                raise FieldError(f"{fields.at('estimator')}: window differs")
        estimation._scores, estimation._labels, estimation._kinds = scores, labels, kinds
        fields.done()
        return estimation
