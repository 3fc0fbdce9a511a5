"""Prequential (predict, then learn) scoring: one loss per labeled event."""

from __future__ import annotations

from collections.abc import Sequence

from stream_mlops.model_task import Task


def event_loss(task: Task, prediction: bool | float, actual: bool | float) -> float:
    """0/1 loss for classification, absolute error for regression (the engine's error signal).

    >>> event_loss(Task.CLASSIFICATION, True, False), event_loss(Task.REGRESSION, 3.0, 5.5)
    (1.0, 2.5)
    """
    if task is Task.CLASSIFICATION:
        return 0.0 if bool(prediction) == bool(actual) else 1.0
    return abs(float(prediction) - float(actual))


class PrequentialScore:
    """The per-event losses of one model, each taken before the model saw the label.

    The losses are kept one by one because the promotion test pairs them with
    the other model's loss on the same event; their number is bounded by the
    promotion policy's ``max_events``.

    >>> score = PrequentialScore(Task.CLASSIFICATION)
    >>> for predicted, actual in [(True, True), (False, True), (False, False)]:
    ...     _ = score.add(predicted, actual)
    >>> score.count, round(score.mean, 3)
    (3, 0.333)
    """

    def __init__(self, task: Task) -> None:
        self.task = task
        self._losses: list[float] = []
        self._total = 0.0

    def add(self, prediction: bool | float, actual: bool | float) -> float:
        loss = event_loss(self.task, prediction, actual)
        self._losses.append(loss)
        self._total += loss
        return loss

    @property
    def losses(self) -> Sequence[float]:
        return self._losses

    @property
    def count(self) -> int:
        return len(self._losses)

    @property
    def mean(self) -> float:
        """Mean loss (error rate or mean absolute error); 0.0 before any event."""
        return self._total / len(self._losses) if self._losses else 0.0
