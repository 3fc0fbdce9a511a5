from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from stream_mlops.events import (
    AlertStats,
    DriftAlert,
    EventError,
    OutcomeEvent,
    PredictionEvent,
    decode_input,
    encode,
    json_schemas,
)

PREDICTION = {
    "type": "prediction",
    "event_id": "txn-000123",
    "model_id": "fraud",
    "model_version": "v1",
    "ts": "2026-11-27T13:00:00.123Z",
    "features": {"amount": 42.5, "merchant": "grocery", "hour": 13, "new": True, "x": None},
    "prediction": 0,
    "score": 0.07,
}


def raw(**changes: object) -> bytes:
    doc = {**PREDICTION, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def test_design_example_decodes() -> None:
    event = decode_input(raw())
    assert isinstance(event, PredictionEvent)
    assert event.features["merchant"] == "grocery"
    assert event.ts == datetime(2026, 11, 27, 13, 0, 0, 123000, tzinfo=UTC)
    assert event.epoch == event.ts.timestamp()
    assert event.epoch % 1 == pytest.approx(0.123)


def test_epoch_seconds_and_iso_give_the_same_time() -> None:
    iso = decode_input(raw(ts="2023-11-14T22:13:20Z"))
    number = decode_input(raw(ts=1700000000))
    assert iso.epoch == number.epoch == 1700000000.0


def test_default_type_comes_from_the_caller_when_missing() -> None:
    doc = b'{"event_id": "e", "ts": 1, "actual": "fraud"}'
    assert isinstance(decode_input(doc, "outcome"), OutcomeEvent)
    with pytest.raises(EventError, match=r"^type: required"):
        decode_input(doc)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff\xfe", r"^\(event\): not UTF-8"),
        (b"{not json", r"^\(event\): not JSON"),
        (b"[1, 2]", r"^\(event\): not a JSON object but list"),
        (raw(type="bogus"), r"^type: 'bogus' is not one of"),
        (raw(features={"amount": [1]}), r"^features\.amount: value must be number, string"),
        (raw(features={"amount": {"a": 1}}), r"^features\.amount: value must be"),
        (raw(score=1.5), r"^score: Input should be less than or equal to 1"),
        # The contract says a number: no bool, no numeric string.
        (raw(score=True), r"^score: Input should be a valid number"),
        (raw(score="0.5"), r"^score: Input should be a valid number"),
        (raw(model_id="bad id"), r"^model_id: String should match pattern"),
        (raw(event_id="x" * 257), r"^event_id: String should have at most 256"),
        (raw(ts="2026-11-27T13:00:00"), r"^ts: Input should have timezone info"),
        # Valid ISO, but before year 1 once in UTC: a bad event, not a crash.
        (raw(ts="0001-01-01T00:00:00+01:00"), r"^ts: outside the range of datetime"),
        (raw(ts="9999-12-31T23:59:59-01:00"), r"^ts: outside the range of datetime"),
        (raw(prediction=None), r"^prediction: value must be number, string or bool"),
        (raw(model_version=...), r"^model_version: Field required"),
    ],
)
def test_invalid_inputs_name_the_field(payload: bytes, message: str) -> None:
    with pytest.raises(EventError, match=message) as info:
        decode_input(payload)
    assert "\n" not in str(info.value)


def test_labels_stay_strict() -> None:
    outcome = decode_input(b'{"type": "outcome", "event_id": "e", "ts": 0, "actual": "1"}')
    assert isinstance(outcome, OutcomeEvent)
    assert outcome.actual == "1"
    assert outcome.actual != 1


def test_unknown_input_fields_are_ignored_for_forward_compatibility() -> None:
    event = decode_input(raw(extra_field="later version"))
    assert "extra_field" not in event.model_dump()


def test_events_are_frozen() -> None:
    event = decode_input(raw())
    with pytest.raises(ValueError, match="frozen"):
        event.event_id = "other"  # type: ignore[misc]


def test_encode_round_trips_and_is_deterministic() -> None:
    event = decode_input(raw())
    first = encode(event)
    assert first == encode(decode_input(raw()))
    assert first.startswith(b'{"type":"prediction","event_id":"txn-000123"')
    assert decode_input(first) == event


def test_outputs_forbid_unknown_fields() -> None:
    with pytest.raises(ValueError, match="Extra inputs"):
        DriftAlert(
            alert_id="a",
            model_id="m",
            model_version="v",
            signal="error",
            detector="adwin",
            severity="drift",
            ts=0,
            trigger_event_id="e",
            observations=1,
            stats=AlertStats(),
            surprise=1,  # type: ignore[call-arg]
        )


def test_schemas_cover_every_event_type() -> None:
    everything = json.loads(json_schemas(None))
    assert set(everything) == {
        "prediction",
        "outcome",
        "drift_alert",
        "retrain_request",
        "model_update",
        "labeled_event",
        "dead_letter",
        "performance_estimate",
    }
    prediction = json.loads(json_schemas("prediction"))
    assert prediction["properties"]["ts"]["anyOf"][1]["type"] == "number"
    assert set(prediction["required"]) >= {"event_id", "model_id", "features", "prediction"}
    with pytest.raises(ValueError, match="unknown event type 'nope'"):
        json_schemas("nope")


def test_timestamps_are_kept_in_utc() -> None:
    event = decode_input(raw(ts="2026-11-27T15:00:00+02:00"))
    assert event.ts.utcoffset() is not None
    assert event.ts.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert event.ts.hour == 13
    assert b'"ts":"2026-11-27T13:00:00Z"' in encode(event)
