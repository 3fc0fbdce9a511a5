"""What a model predicts: a class label, or a number.

The task decides how an outcome is scored (0/1 misclassification or absolute
error), which detectors fit the error, and which model a challenger trains. It
is set per model in the configuration (``[models.<id>] task``), inferred from
the first prediction otherwise, and recorded with every registered version.

>>> Task("regression") is Task.REGRESSION
True
>>> Task.CLASSIFICATION == "classification"   # a str: compares with config and records
True
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Task"]


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"
