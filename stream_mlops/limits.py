"""What one event may carry: names, strings and features, bounded by ``[limits]``.

Every name and string an event carries can end up in the engine's state (a
pending prediction, a category, a signal track per feature name) or in what it
publishes. The contract bounds ``event_id`` (256 characters) and ``model_id``
(128) only; before these limits one record could carry a 1 MB
``model_version``, a 10 MB string feature or 50,000 new feature names (2.1 GB
of signal tracks for ten such records). An event beyond a limit is refused
with an ``EventLimitError`` that names the field and the setting: a dead letter
on Kafka, a reported line in a replay. The engine bounds the rest itself: model
versions per task (refused) and tracked features per model version (the
prediction is kept, the features beyond the limit are counted, not tracked);
``[kafka] max_record_bytes`` bounds the record.

>>> from stream_mlops.config import LimitSettings
>>> from stream_mlops.events import PredictionEvent
>>> limits = EventLimits(LimitSettings(max_string_length=8))
>>> event = PredictionEvent(event_id="e1", model_id="fraud", model_version="v1", ts=0,
...                         features={"merchant": "a jewellery shop"}, prediction=1)
>>> limits.check_prediction(event)
Traceback (most recent call last):
...
stream_mlops.limits.EventLimitError: features.merchant: a string of 16 characters, over \
[limits] max_string_length=8
"""

from __future__ import annotations

from typing import Final

from stream_mlops.config import LimitSettings
from stream_mlops.events import EventError, LabelValue, OutcomeEvent, PredictionEvent

__all__ = ["EventLimitError", "EventLimits"]

# How much of an over-long name a reason quotes: enough to find it, no more.
_QUOTED: Final = 40


class EventLimitError(EventError):
    """An event beyond one of the ``[limits]``; the message names the field and the setting."""


def _quoted(name: str) -> str:
    """A name for a one-line reason: as it is when short and printable, else quoted."""
    if len(name) <= _QUOTED and name.isprintable():
        return name
    return repr(name) if len(name) <= _QUOTED else repr(name[:_QUOTED]) + "..."


class EventLimits:
    """Checks one event against the per-event ``[limits]``, before the engine keeps any of it."""

    __slots__ = ("max_features", "max_name", "max_string")

    def __init__(self, settings: LimitSettings) -> None:
        self.max_features = settings.max_features_per_event
        self.max_name = settings.max_name_length
        self.max_string = settings.max_string_length

    def check_prediction(self, event: PredictionEvent) -> None:
        """Raise ``EventLimitError`` for the first field beyond a limit."""
        self._check_name("event_id", event.event_id)
        self._check_name("model_version", event.model_version)
        self._check_label("prediction", event.prediction)
        features = event.features
        if len(features) > self.max_features:
            raise EventLimitError(
                f"features: {len(features)} of them, over [limits] "
                f"max_features_per_event={self.max_features}"
            )
        max_name, max_string = self.max_name, self.max_string
        # One pass, inlined: it runs for every prediction.
        for name, value in features.items():
            if len(name) > max_name:
                raise EventLimitError(
                    f"features: the name {_quoted(name)} has {len(name)} characters, over "
                    f"[limits] max_name_length={max_name}"
                )
            if type(value) is str and len(value) > max_string:
                raise EventLimitError(
                    f"features.{_quoted(name)}: a string of {len(value)} characters, "
                    f"over [limits] max_string_length={max_string}"
                )

    def check_outcome(self, event: OutcomeEvent) -> None:
        """Raise ``EventLimitError`` for the first field beyond a limit."""
        self._check_name("event_id", event.event_id)
        self._check_label("actual", event.actual)

    def _check_name(self, field: str, value: str) -> None:
        if len(value) > self.max_name:
            raise EventLimitError(
                f"{field}: {len(value)} characters, over [limits] max_name_length={self.max_name}"
            )

    def _check_label(self, field: str, value: LabelValue) -> None:
        if type(value) is str and len(value) > self.max_string:
            raise EventLimitError(
                f"{field}: a string of {len(value)} characters, over [limits] "
                f"max_string_length={self.max_string}"
            )
