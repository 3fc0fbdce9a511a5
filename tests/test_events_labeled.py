"""The hot path's shortcuts for labeled events equal the validated, model_dump path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
from hypothesis import given
from hypothesis import strategies as st

from stream_mlops.events import LabeledEvent, OutcomeEvent, PredictionEvent, encode

zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
times = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones)
floats = st.floats(allow_nan=True, allow_infinity=True)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
labels = st.one_of(st.booleans(), ints, floats, st.text(max_size=5))
feature_values = st.one_of(st.none(), st.booleans(), ints, floats, st.text(max_size=5))
ids = st.text(min_size=1, max_size=20)


@st.composite
def pairs(draw: st.DrawFn) -> tuple[PredictionEvent, OutcomeEvent]:
    event_id = draw(ids)
    prediction = PredictionEvent(
        event_id=event_id,
        model_id=draw(st.from_regex(r"[A-Za-z0-9._-]{1,10}", fullmatch=True)),
        model_version=draw(ids),
        ts=draw(times),
        features=draw(st.dictionaries(st.text(max_size=6), feature_values, max_size=6)),
        prediction=draw(labels),
        score=draw(st.none() | st.floats(min_value=0.0, max_value=1.0)),
    )
    outcome = OutcomeEvent(event_id=event_id, ts=draw(times), actual=draw(labels))
    return prediction, outcome


def validated(prediction: PredictionEvent, outcome: OutcomeEvent) -> LabeledEvent:
    return LabeledEvent(
        event_id=prediction.event_id,
        model_id=prediction.model_id,
        model_version=prediction.model_version,
        ts=prediction.ts,
        outcome_ts=outcome.ts,
        features=prediction.features,
        prediction=prediction.prediction,
        score=prediction.score,
        actual=outcome.actual,
    )


@given(pairs())
def test_joined_equals_the_validated_labeled_event(
    pair: tuple[PredictionEvent, OutcomeEvent],
) -> None:
    fast, slow = LabeledEvent.joined(*pair), validated(*pair)
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_dump() == slow.model_dump()


@given(pairs())
def test_flat_events_encode_as_model_dump_does(pair: tuple[PredictionEvent, OutcomeEvent]) -> None:
    prediction, outcome = pair
    for event in (LabeledEvent.joined(prediction, outcome), prediction, outcome):
        assert encode(event) == orjson.dumps(event.model_dump(mode="json"))
