"""Deliberately broken records, for testing dead letters.

Each defect is one of the ways real producers break the contract: bytes that
are not JSON (a truncated write, a wrong encoding), a required field missing,
a field of the wrong type. The engine must dead-letter every one of them with
a reason and carry on.

>>> import random
>>> event = {"type": "prediction", "event_id": "txn-1", "model_id": "fraud",
...          "model_version": "v1", "ts": "2026-11-27T00:00:00.000Z",
...          "features": {"amount": 1.5}, "prediction": 0, "score": 0.1}
>>> raw, defect = corrupt(event, random.Random(3))
>>> defect in DEFECTS and isinstance(raw, bytes)
True
"""

from __future__ import annotations

import random
from typing import Any, Final

from stream_mlops.simulate.stream import EventDict, to_json

# Required fields of a prediction a producer may forget (event_id stays: it is the key).
_REQUIRED: Final = ("model_id", "model_version", "ts", "features", "prediction")

# Values of the wrong type for a field, each one a plausible producer bug.
_WRONG_TYPES: Final[tuple[tuple[str, Any], ...]] = (
    ("ts", "yesterday"),
    ("features", ["amount", 12.5]),
    ("score", "high"),
    ("prediction", [0, 1]),
    ("features", {"amount": {"value": 12.5, "currency": "EUR"}}),
    ("model_id", "fraud model/v1"),
)

DEFECTS: Final = ("truncated_json", "not_utf8", "not_an_object", "missing_field", "wrong_type")


def corrupt(event: EventDict, rng: random.Random) -> tuple[bytes, str]:
    """The bytes of a broken version of ``event`` and the name of its defect."""
    defect = DEFECTS[rng.randrange(len(DEFECTS))]
    if defect == "truncated_json":
        raw = to_json(event)
        return raw[: rng.randrange(1, len(raw) - 1)], defect
    if defect == "not_utf8":
        return to_json(event).replace(b'"features"', b'"f\xe9atures"', 1), defect
    if defect == "not_an_object":
        return to_json([event]), defect
    if defect == "missing_field":
        field = _REQUIRED[rng.randrange(len(_REQUIRED))]
        broken = {k: v for k, v in event.items() if k != field}
        return to_json(broken), f"{defect}:{field}"
    field, value = _WRONG_TYPES[rng.randrange(len(_WRONG_TYPES))]
    return to_json({**event, field: value}), f"{defect}:{field}"
