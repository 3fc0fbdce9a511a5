"""What the retraining core consumes, as small frozen dataclasses of its own.

They mirror ``events.RetrainRequest`` and ``events.LabeledEvent`` plus the
Kafka position of each labeled event, with times already as float epoch
seconds, so the core stays free of the event codec and of Kafka; the edge
adapts one into the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

FeatureValue = float | int | str | bool | None
"""A feature as DESIGN.md allows it; None means missing."""

Label = bool | int | float | str
"""A prediction or outcome: a class label or a regression value."""


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where a labeled event was read from: the unit of a training window."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class LabeledExample:
    """One prediction joined with its outcome, as the retrainer learns from it."""

    event_id: str
    model_id: str
    model_version: str
    ts: float
    """Event time of the prediction, epoch seconds."""
    features: Mapping[str, FeatureValue]
    prediction: Label
    """What the serving model predicted (the champion's answer, when it served)."""
    actual: Label
    source: SourcePosition


@dataclass(frozen=True, slots=True)
class RetrainOrder:
    """A retrain request: challenge ``model_version`` on data from ``window_start`` on."""

    model_id: str
    model_version: str
    window_start_ts: float
    """Event time where post-drift data begins, epoch seconds."""
    window_start_event_id: str
    request_id: str = ""
