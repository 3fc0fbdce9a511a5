"""What the retraining core consumes, as small frozen dataclasses of its own.

They mirror ``events.RetrainRequest`` and ``events.LabeledEvent`` plus the
Kafka position of each labeled event, with times already as float epoch
seconds, so the core never decodes an event and stays free of Kafka; the edge
adapts one into the other. Feature values and labels are the contract's own
types (``stream_mlops.events``, described in ``docs/contract.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stream_mlops.events import FeatureValue, LabelValue


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
    prediction: LabelValue
    """What the serving model predicted (the champion's answer, when it served)."""
    actual: LabelValue
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
