from __future__ import annotations

import random
from collections import Counter
from typing import Any

import orjson
import pytest

from stream_mlops.simulate.malformed import DEFECTS, corrupt

VALID: dict[str, Any] = {
    "type": "prediction",
    "event_id": "txn-7",
    "model_id": "fraud",
    "model_version": "v1",
    "ts": "2026-11-27T00:00:00.000Z",
    "features": {"amount": 12.5, "merchant": "grocery", "card_present": True},
    "prediction": 0,
    "score": 0.01,
}
FIELD_TYPES = {
    "model_id": str,
    "model_version": str,
    "ts": str,
    "features": dict,
    "prediction": int,
    "score": float,
}


def broken_reason(raw: bytes) -> str | None:  # noqa: PLR0911 (one return per kind of breakage)
    """Why ``raw`` is not a valid prediction like VALID, independently of the defect label."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not utf-8"
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "not json"
    if not isinstance(obj, dict):
        return "not an object"
    for field, kind in FIELD_TYPES.items():
        if field not in obj:
            return f"missing {field}"
        if not isinstance(obj[field], kind):
            return f"wrong type {field}"
    if obj["model_id"] != VALID["model_id"]:
        return "model_id not allowed"  # the pattern [A-Za-z0-9._-] forbids '/' and ' '
    if obj["ts"] != VALID["ts"]:
        return "ts not a timestamp"
    if any(isinstance(v, dict | list) for v in obj["features"].values()):
        return "feature not flat"
    return None


def test_every_corruption_breaks_the_contract() -> None:
    rng = random.Random(1)
    defects: Counter[str] = Counter()
    for _ in range(2000):
        raw, defect = corrupt(VALID, rng)
        assert broken_reason(raw) is not None, (defect, raw)
        defects[defect.split(":")[0]] += 1
    assert set(defects) == set(DEFECTS)
    # roughly uniform over the five kinds
    assert min(defects.values()) > 300


@pytest.mark.parametrize("seed", range(3))
def test_corruption_is_deterministic(seed: int) -> None:
    a = [corrupt(VALID, random.Random(seed)) for _ in range(5)]
    b = [corrupt(VALID, random.Random(seed)) for _ in range(5)]
    assert a == b
