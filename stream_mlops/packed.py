"""Pending predictions packed into one ``bytes`` each, and rebuilt exactly.

A validated PredictionEvent with 8 float features is about 1.9 KB of Python
objects (model, its ``__dict__``, the features dict, 8 floats, a datetime, the
fields-set set) and 4 or more of them are tracked by the garbage collector. The
join may hold millions of them. Packed, the same prediction is one ``bytes`` of
about 140 bytes that the collector never visits: the numbers (event time, offset,
``ts`` in microseconds, score, prediction, numeric feature values) go into the
bytes, and everything that repeats between predictions goes into a shared
*layout*: model id and version, the feature names in their order, the type of
each value, the values of the non-numeric features (strings, bools, None) and of
a non-numeric prediction, and which optional fields were set.

Rebuilding must give back the very same event: ``==`` to the original and the
same ``encode()`` bytes. So an int stays an int (1 and 1.0 are equal in Python,
not in JSON), a float keeps its sign and bits (``-0.0``), and ``ts`` comes back
from whole microseconds, not from a float. Anything the layout cannot carry
exactly (an int beyond 64 bits, a zone other than UTC, fields this module does
not know) is not packed: ``pack`` answers None and the caller keeps the event.

>>> from stream_mlops.events import PredictionEvent, encode
>>> packer = PredictionPacker()
>>> event = PredictionEvent(event_id="txn-1", model_id="fraud", model_version="v1",
...     ts="2026-11-27T10:00:00.123456Z", features={"amount": 42.5, "n": 3, "shop": "x"},
...     prediction=1, score=0.07)
>>> record = packer.pack(event, event.epoch, 17)
>>> len(record), packer.epoch_and_offset(record)
(60, (1795773600.123456, 17))
>>> again = packer.unpack("txn-1", record)
>>> again == event, encode(again) == encode(event)
(True, True)
>>> packer.pack(event.model_copy(update={"features": {"big": 2**70}}), 0.0, None) is None
True
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel

from stream_mlops.events import PredictionEvent

__all__ = ["PredictionPacker"]

# Every record starts with: event time (the epoch the join runs on), source offset
# (-1 for none), ts as whole microseconds since 1970 (exact, unlike a float: a
# double holds only ~15.9 digits), and the layout's index.
_HEAD: Final = struct.Struct("<dqqI")
_LAYOUT_AT: Final = struct.Struct("<I")
_EPOCH_OF: Final = struct.Struct("<d").unpack_from
_LAYOUT_OFFSET: Final = 24
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_NO_OFFSET: Final = -1

#: Distinct layouts kept before new ones are stored unpacked. A layout is a few
#: hundred bytes; the fraud simulator needs about two per merchant category and
#: model version (string and bool features are part of the layout), so 1024
#: leaves room for many models while bounding the table to well under 1 MB even
#: when a string feature is really an id (then most predictions are not packed).
MAX_LAYOUTS: Final = 1024

# The fields this module knows how to carry; with any other field, nothing packs.
_KNOWN_FIELDS: Final = (
    "type",
    "event_id",
    "model_id",
    "model_version",
    "ts",
    "features",
    "prediction",
    "score",
)
# Rebuilding sets these four attributes directly, as model_construct does (at a
# quarter of its 6 us); pydantic's own list of them is checked at import.
_MODEL_SLOTS: Final = (
    "__dict__",
    "__pydantic_fields_set__",
    "__pydantic_extra__",
    "__pydantic_private__",
)
_NUMERIC: Final = {float: "d", int: "q"}
_NUMERIC_TYPES: Final = frozenset(_NUMERIC)
_LABEL_TYPES: Final = frozenset((bool, int, float, str))
_FEATURE_TYPES: Final = _LABEL_TYPES | {type(None)}
_SCORE_TYPES: Final = frozenset((float, type(None)))


class _Packed:
    """Marks a value kept in the record rather than in the layout."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PACKED"


_PACKED: Final = _Packed()


class _Layout:
    __slots__ = (
        "features",
        "fields_set",
        "index",
        "model_id",
        "model_version",
        "numeric_only",
        "prediction",
        "record",
        "scored",
    )

    def __init__(
        self,
        *,
        index: int,
        model_id: str,
        model_version: str,
        features: tuple[tuple[str, object], ...],
        prediction: object,
        scored: bool,
        fields_set: frozenset[str],
        formats: str,
    ) -> None:
        self.index = index
        self.model_id = model_id
        self.model_version = model_version
        # (name, value or _PACKED) in the event's key order (encode keeps it).
        self.features = features
        self.numeric_only = all(value is _PACKED for _, value in features)
        self.prediction = prediction
        self.scored = scored
        self.fields_set = fields_set
        self.record = struct.Struct(_HEAD.format + formats)


class PredictionPacker:
    """Packs predictions into bytes records and rebuilds them; one per join."""

    __slots__ = ("_by_key", "_layouts", "enabled")

    def __init__(self) -> None:
        self._by_key: dict[tuple[Any, ...], _Layout] = {}
        self._layouts: list[_Layout] = []
        #: False when PredictionEvent has fields this module does not carry.
        self.enabled = _PACKABLE

    @property
    def layouts(self) -> int:
        return len(self._layouts)

    def pack(self, event: PredictionEvent, epoch: float, offset: int | None) -> bytes | None:
        """The record, or None when this event cannot be rebuilt exactly from one."""
        fields = event.__dict__
        ts = fields["ts"]
        if type(ts) is not datetime or ts.tzinfo is not UTC or ts.fold or not self.enabled:
            return None
        features = fields["features"]
        values = tuple(features.values())
        types = tuple(map(type, values))
        prediction = fields["prediction"]
        score = fields["score"]
        # Types are part of the key, so an int never rebuilds as a float.
        key: tuple[Any, ...] = (
            fields["model_id"],
            fields["model_version"],
            tuple(features),
            types,
            type(prediction),
            type(score),
            frozenset(event.__pydantic_fields_set__),
        )
        numeric_only = _NUMERIC_TYPES.issuperset(types)
        if not numeric_only:
            if not _FEATURE_TYPES.issuperset(types):
                return None  # only what validation lets through (model_construct does not)
            # Strings, bools and None are values of the layout, not of the record.
            key += tuple(v for v, t in zip(values, types, strict=True) if t not in _NUMERIC)
        if type(prediction) not in _NUMERIC:
            if type(prediction) not in _LABEL_TYPES:
                return None
            key += (prediction,)
        layout = self._by_key.get(key)
        if layout is None:
            layout = self._new_layout(key, event)
            if layout is None:
                return None
        numbers: list[Any] = [
            epoch,
            _NO_OFFSET if offset is None else offset,
            (ts - _EPOCH) // _MICROSECOND,
            layout.index,
        ]
        if score is not None:
            numbers.append(score)
        if layout.prediction is _PACKED:
            numbers.append(prediction)
        if numeric_only:
            numbers += values
        else:
            numbers += [v for v, t in zip(values, types, strict=True) if t in _NUMERIC]
        try:
            return layout.record.pack(*numbers)
        except struct.error:  # an int beyond 64 bits
            return None

    def _new_layout(self, key: tuple[Any, ...], event: PredictionEvent) -> _Layout | None:
        model_id, model_version, names, types, prediction_type, score_type, fields_set = key[:7]
        if (
            len(self._layouts) >= MAX_LAYOUTS
            or not _FEATURE_TYPES.issuperset(types)
            or prediction_type not in _LABEL_TYPES
            or score_type not in _SCORE_TYPES
        ):
            return None  # only what validation lets through (model_construct does not)
        formats = "d" if event.score is not None else ""
        prediction: object = _PACKED
        if prediction_type in _NUMERIC:
            formats += _NUMERIC[prediction_type]
        else:
            prediction = event.prediction
        features: list[tuple[str, object]] = []
        for name, value_type, value in zip(names, types, event.features.values(), strict=True):
            if value_type in _NUMERIC:
                formats += _NUMERIC[value_type]
                features.append((name, _PACKED))
            else:
                features.append((name, value))
        layout = _Layout(
            index=len(self._layouts),
            model_id=model_id,
            model_version=model_version,
            features=tuple(features),
            prediction=prediction,
            scored=event.score is not None,
            fields_set=fields_set,
            formats=formats,
        )
        self._layouts.append(layout)
        self._by_key[key] = layout
        return layout

    @staticmethod
    def epoch(record: bytes) -> float:
        """The event time a record was packed with (the join's expiry reads it)."""
        return _EPOCH_OF(record)[0]  # type: ignore[no-any-return]

    @staticmethod
    def epoch_and_offset(record: bytes) -> tuple[float, int | None]:
        """The event time and source offset a record was packed with."""
        epoch, offset, _, _ = _HEAD.unpack_from(record)
        return epoch, None if offset == _NO_OFFSET else offset

    def unpack(self, event_id: str, record: bytes) -> PredictionEvent:
        """The prediction packed in ``record``, equal to the one that went in."""
        layout = self._layouts[_LAYOUT_AT.unpack_from(record, _LAYOUT_OFFSET)[0]]
        numbers = layout.record.unpack_from(record)
        at = 4
        score = None
        if layout.scored:
            score = numbers[at]
            at += 1
        prediction = layout.prediction
        if prediction is _PACKED:
            prediction = numbers[at]
            at += 1
        if layout.numeric_only:
            features = dict(zip([name for name, _ in layout.features], numbers[at:], strict=True))
        else:
            features = {}
            for name, constant in layout.features:
                if constant is _PACKED:
                    features[name] = numbers[at]
                    at += 1
                else:
                    features[name] = constant
        return _construct(
            {
                "type": "prediction",
                "event_id": event_id,
                "model_id": layout.model_id,
                "model_version": layout.model_version,
                "ts": _EPOCH + timedelta(microseconds=numbers[2]),
                "features": features,
                "prediction": prediction,
                "score": score,
            },
            layout.fields_set,
        )


def _construct(values: dict[str, Any], fields_set: frozenset[str]) -> PredictionEvent:
    if not _DIRECT:
        return PredictionEvent.model_construct(set(fields_set), **values)
    event = PredictionEvent.__new__(PredictionEvent)
    setattr_ = object.__setattr__
    setattr_(event, "__dict__", values)
    setattr_(event, "__pydantic_fields_set__", set(fields_set))
    setattr_(event, "__pydantic_extra__", None)
    setattr_(event, "__pydantic_private__", None)
    return event


_PACKABLE: Final = tuple(PredictionEvent.model_fields) == _KNOWN_FIELDS and (
    PredictionEvent.model_config.get("extra") != "allow"
)
_DIRECT: Final = tuple(BaseModel.__slots__) == _MODEL_SLOTS and not (
    PredictionEvent.__private_attributes__
)
