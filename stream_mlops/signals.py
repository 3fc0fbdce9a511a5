"""Signals: the numbers detectors watch, per model and version.

``error`` (0/1 misclassification, or absolute error for regression) once an
outcome is joined; label-free ``score``, ``prediction`` and ``feature:<name>``
for every numeric (or bool) feature. Each signal is a :class:`SignalTrack`: its
detectors, plus a reference-versus-recent mean that measures how far the signal
moved (the effect sizes an alert ranks features by).

>>> track = SignalTrack("feature:amount", [], reference_observations=100, recent_span=20)
>>> for i in range(100):
...     _ = track.observe(float(i % 2), "e", 0.0)   # reference: mean 0.5, sd ~0.5
>>> for i in range(100):
...     _ = track.observe(1.0, "e", 0.0)            # moves up by one sd
>>> round(track.shift().effect_size, 1)
1.0
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final, Literal

from stream_mlops.changepoint import post_change_count
from stream_mlops.detectors import Detection, Detector
from stream_mlops.events import LabelValue, PredictionEvent, SignalShift

__all__ = [
    "ModelState",
    "SignalTrack",
    "Task",
    "error_value",
    "infer_task",
    "numeric",
]

Task = Literal["classification", "regression"]

# Where post-change data starts is found from marks taken every _MARK_EVERY
# observations (ADWIN checks for change every 32 values by default, so finer
# marks would not be more exact), keeping the last _MARKS_KEPT of them: about
# 260,000 observations back, 8,192 small tuples per retrain-triggering signal.
_MARK_EVERY: Final = 32
_MARKS_KEPT: Final = 8192
# Raw values kept (between this and twice this) to place a change point inside
# the detector's window (``stream_mlops.changepoint``): ADWIN's windows at the
# first drift on a classifier's error are a few hundred to a few thousand values.
_VALUES_KEPT: Final = 4096


def numeric(value: LabelValue | None) -> float | None:
    """A feature, prediction or label as a number; None for strings and nulls."""
    kind = type(value)
    if kind is float or kind is int or kind is bool:
        return float(value)  # type: ignore[arg-type]
    return None


def infer_task(event: PredictionEvent) -> Task:
    """A float prediction without a score is a regression; anything else a class.

    >>> from stream_mlops.events import PredictionEvent
    >>> def p(prediction, score=None):
    ...     return PredictionEvent(event_id="e", model_id="m", model_version="v", ts=0,
    ...                            features={}, prediction=prediction, score=score)
    >>> infer_task(p(12.5)), infer_task(p(1)), infer_task(p(1.0, score=0.9))
    ('regression', 'classification', 'classification')
    """
    if type(event.prediction) is float and event.score is None:
        return "regression"
    return "classification"


def error_value(task: Task, prediction: LabelValue, actual: LabelValue) -> float | None:
    """0/1 misclassification, or absolute error; None when it cannot be scored.

    >>> error_value("classification", 1, 1), error_value("classification", "a", "b")
    (0.0, 1.0)
    >>> error_value("regression", 10.0, 7.5), error_value("regression", 1.0, "x")
    (2.5, None)
    """
    if task == "classification":
        return 0.0 if prediction == actual else 1.0
    predicted, observed = numeric(prediction), numeric(actual)
    if predicted is None or observed is None:
        return None
    return abs(predicted - observed)


class SignalTrack:
    """One signal of one model version: its detectors and how far it moved.

    The reference is the mean and standard deviation of the first
    ``reference_observations`` values (again after each drift alert, via
    ``rebase``); the recent mean is an exponentially weighted mean with span
    ``recent_span``. ``shift()`` is their standardised difference.
    """

    __slots__ = (
        "_alpha",
        "_recent",
        "_ref_m2",
        "_ref_mean",
        "_ref_n",
        "detectors",
        "marks",
        "name",
        "observations",
        "reference_observations",
        "values",
    )

    def __init__(
        self,
        name: str,
        detectors: list[Detector],
        *,
        reference_observations: int,
        recent_span: int,
        marks: bool = False,
    ) -> None:
        self.name = name
        self.detectors = detectors
        self.reference_observations = reference_observations
        self._alpha = 2.0 / (recent_span + 1.0)
        self.observations = 0
        self.marks: deque[tuple[int, float, str]] | None = (
            deque(maxlen=_MARKS_KEPT) if marks else None
        )
        #: recent raw values of a retrain-triggering signal (a list, trimmed in
        #: chunks: cheaper to append to and to pickle than a deque)
        self.values: list[float] | None = [] if marks else None
        self.rebase()

    def rebase(self) -> None:
        """Start a new reference from the next value (after a change was reported)."""
        self._ref_n = 0
        self._ref_mean = 0.0
        self._ref_m2 = 0.0
        self._recent = 0.0

    def observe(
        self, x: float, event_id: str, epoch: float
    ) -> list[tuple[Detector, Detection]] | None:
        """Feed one value to the tracker and every detector; what fired, if any."""
        self.observations += 1
        if self._ref_n < self.reference_observations:
            self._ref_n += 1
            d = x - self._ref_mean
            self._ref_mean += d / self._ref_n
            self._ref_m2 += d * (x - self._ref_mean)
            self._recent = self._ref_mean
        else:
            self._recent += self._alpha * (x - self._recent)
        if self.marks is not None and self.observations % _MARK_EVERY == 1:
            self.marks.append((self.observations, epoch, event_id))
        if self.values is not None:
            self.values.append(x)
            if len(self.values) > 2 * _VALUES_KEPT:
                del self.values[:-_VALUES_KEPT]
        fired = None
        for detector in self.detectors:
            detection = detector.update(x)
            if detection is not None:
                if fired is None:
                    fired = []
                fired.append((detector, detection))
        return fired

    def shift(self) -> SignalShift:
        """Recent mean minus reference mean, in reference standard deviations."""
        n = self._ref_n
        sd = math.sqrt(self._ref_m2 / (n - 1)) if n > 1 else 0.0
        diff = self._recent - self._ref_mean
        if sd > 0.0:
            effect = diff / sd
        else:
            # A constant reference: any move is infinitely many SDs; report the raw
            # difference's sign at a large finite size (JSON has no infinity).
            effect = 0.0 if diff == 0.0 else math.copysign(1e9, diff)
        return SignalShift(
            signal=self.name,
            effect_size=effect,
            reference_mean=self._ref_mean,
            recent_mean=self._recent,
            reference_observations=n,
        )

    def post_change(self, detection_window: int | None) -> int | None:
        """How many recent observations follow the change, placed by CUSUM
        inside the detector's window (or None where no values are kept)."""
        if self.values is None or not detection_window:
            return None
        return post_change_count(self.values[-detection_window:])

    def window_start(self, post_change: int | None) -> tuple[float, str] | None:
        """(epoch, event_id) near where the last ``post_change`` observations began."""
        if self.marks is None or not self.marks or post_change is None:
            return None
        target = self.observations - post_change + 1
        found = self.marks[0]
        for mark in reversed(self.marks):
            if mark[0] <= target:
                found = mark
                break
        return found[1], found[2]


class ModelState:
    """Everything the engine keeps for one (model_id, model_version)."""

    __slots__ = (
        "error",
        "features",
        "last_prediction_epoch",
        "model_id",
        "model_version",
        "prediction",
        "score",
        "task",
    )

    def __init__(self, model_id: str, model_version: str, task: Task) -> None:
        self.model_id = model_id
        self.model_version = model_version
        self.task = task
        #: event time of this version's latest prediction: its traffic
        self.last_prediction_epoch = -math.inf
        self.error: SignalTrack | None = None
        self.score: SignalTrack | None = None
        self.prediction: SignalTrack | None = None
        self.features: dict[str, SignalTrack] = {}

    def label_free(self) -> list[SignalTrack]:
        tracks = [t for t in (self.score, self.prediction) if t is not None]
        return tracks + list(self.features.values())
