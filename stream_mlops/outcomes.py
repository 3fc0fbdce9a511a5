"""The outcomes themselves, and the errors per actual class.

Two questions the 0/1 error cannot answer, asked of every joined outcome:

* ``outcome``: has the world changed, whatever the model does? A classifier's
  actual positive rate (prior shift: the fraud rate doubles), or a regression
  target's mean and spread. It is fed before, and independent of, the model's
  error.
* ``miss_rate`` (1 - recall, fed on actual positives only) and
  ``false_positive_rate`` (fed on actual negatives only), for a classifier with
  0/1 (or true/false) labels. At 1% prevalence most errors are false positives:
  recall falling from 80% to 40% moves the error rate from about 2.2% to 2.4%,
  which no detector at a sensible budget sees soon, while the miss rate goes
  from 20% to 60%.

Each is an ordinary signal track (``stream_mlops.signals.SignalTrack``) with
the detectors of its ``[... .detectors]`` entry (by default the GLR bank: a 0/1
rate for the class-conditional errors, rising; the positive rate both ways; a
regression target's normal scores of ranks, mean and spread).

>>> outcome_value(Task.CLASSIFICATION, True), outcome_value(Task.CLASSIFICATION, "cat")
(1.0, None)
>>> outcome_value(Task.REGRESSION, 12.5)
12.5
>>> class_signal(1.0)
'miss_rate'
"""

from __future__ import annotations

from typing import Final

from stream_mlops.events import LabelValue
from stream_mlops.model_task import Task
from stream_mlops.signals import numeric

__all__ = ["CLASS_SIGNALS", "SIGNALS", "class_signal", "outcome_value", "signals_for"]

CLASS_SIGNALS: Final = ("miss_rate", "false_positive_rate")
SIGNALS: Final = ("outcome", *CLASS_SIGNALS)


def signals_for(task: Task) -> tuple[str, ...]:
    """The outcome signals a model of this task has."""
    return SIGNALS if task == Task.CLASSIFICATION else ("outcome",)


def outcome_value(task: Task, actual: LabelValue) -> float | None:
    """The outcome as the ``outcome`` signal sees it (None: not watched).

    A classifier's label counts as positive (1.0) or negative (0.0) when it is
    0/1 or true/false; other labels (class names) are not watched. A
    regression's target is its number.
    """
    if task == Task.CLASSIFICATION:
        if actual is True or (type(actual) is int and actual == 1):
            return 1.0
        if actual is False or (type(actual) is int and actual == 0):
            return 0.0
        return None
    return numeric(actual)


def class_signal(positive: float) -> str:
    """The class-conditional error signal of an actual positive (1.0) or negative (0.0)."""
    return "miss_rate" if positive == 1.0 else "false_positive_rate"
