"""Kafka records of the retrainer's input topics, as the retraining core's inputs.

``retrain-requests`` records become ``RetrainRequest`` events, ``labeled-events``
records ``LabeledExample`` (with the record's topic, partition and offset as
its ``SourcePosition``). Anything that does not decode, or that no model could
learn from, comes back as the one-line reason a dead letter carries.
``WindowReader`` reads a registered version's training window back for
``stream-mlops models reproduce``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from stream_mlops.config import Settings
from stream_mlops.events import (
    EventError,
    LabeledEvent,
    RetrainRequest,
    describe_validation_error,
    loads,
)
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.bootstrap import connection_settings
from stream_mlops.kafka.transport import PartitionReader, Record, TopicPartition
from stream_mlops.registry.records import TrainingWindow
from stream_mlops.retrain import LabeledExample, RetrainInputError, SourcePosition
from stream_mlops.retrain.models import prepare_features

E = TypeVar("E", bound=BaseModel)


def _validate(record: Record, model: type[E]) -> E:
    if record.value is None:
        raise EventError("record has no value (tombstone)")
    try:
        obj = loads(record.value)
    except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
        raise EventError(f"(event): not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise EventError(f"(event): not a JSON object but {type(obj).__name__}")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise EventError(describe_validation_error(exc)) from None


def decode_request(record: Record) -> RetrainRequest:
    """A retrain request; raises ``EventError`` with the reason."""
    return _validate(record, RetrainRequest)


def decode_labeled(record: Record) -> LabeledExample:
    """A labeled event as the core learns it.

    Raises ``EventError`` for bytes that are not a valid ``LabeledEvent`` and
    ``RetrainInputError`` for features no model can take (whether the model's
    task can learn the label is the core's call: ``Retrainer.labeled``).
    """
    event = _validate(record, LabeledEvent)
    prepare_features(event.features)
    return LabeledExample(
        event_id=event.event_id,
        model_id=event.model_id,
        model_version=event.model_version,
        ts=event.ts.timestamp(),
        features=event.features,
        prediction=event.prediction,
        actual=event.actual,
        source=SourcePosition(record.topic, record.partition, record.offset),
    )


class WindowReader:
    """Reads a training window's offset ranges back, for ``reproduce``.

    Records that do not decode are skipped: the retrainer dead-lettered them
    and never learned them (``reproduce`` skips unlearnable ones itself).
    """

    def __init__(self, reader: PartitionReader) -> None:
        self._reader = reader

    def __call__(self, window: TrainingWindow) -> Iterator[LabeledExample]:
        for span in window.ranges:
            tp = TopicPartition(span.topic, span.partition)
            for record in self._reader.read(tp, span.first_offset, span.last_offset + 1):
                try:
                    yield decode_labeled(record)
                except (EventError, RetrainInputError):
                    continue


@contextmanager
def kafka_window_reader(settings: Settings) -> Iterator[WindowReader]:
    """A ``WindowReader`` on the configured cluster, closed on exit."""
    transport = open_transport(connection_settings(settings), client_id="stream-mlops-models")
    reader = transport.partition_reader()
    try:
        yield WindowReader(reader)
    finally:
        reader.close()
