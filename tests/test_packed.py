from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_mlops.events import OutcomeEvent, PredictionEvent, encode
from stream_mlops.join import Match, PendingJoin
from stream_mlops.packed import MAX_LAYOUTS, PredictionPacker

# Everything validation lets into a prediction, with the awkward cases weighted
# in: -0.0, infinities, the largest and smallest floats, ints just inside and
# outside 64 bits, bools (which are ints to Python but not to JSON), None.
floats = st.floats(allow_nan=False) | st.sampled_from(
    [0.0, -0.0, 1e308, -1e308, 5e-324, -5e-324, float("inf"), float("-inf"), 1.0]
)
ints = st.integers() | st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1])
feature_values = st.one_of(
    floats, ints, st.booleans(), st.text(max_size=8), st.none(), st.sampled_from(["a", "b"])
)
labels = st.one_of(floats, ints, st.booleans(), st.text(max_size=5))
# A day inside datetime's range: validation moves every zone to UTC.
timestamps = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)


@st.composite
def predictions(draw: st.DrawFn) -> PredictionEvent:
    fields: dict[str, Any] = {
        "event_id": draw(st.text(min_size=1, max_size=10)),
        "model_id": draw(st.sampled_from(["fraud", "demand"])),
        "model_version": draw(st.sampled_from(["v1", "v2"])),
        "ts": draw(timestamps),
        "features": draw(st.dictionaries(st.text(max_size=4), feature_values, max_size=9)),
        "prediction": draw(labels),
    }
    if draw(st.booleans()):
        fields["score"] = draw(st.none() | st.floats(min_value=0.0, max_value=1.0))
    if draw(st.booleans()):
        fields["type"] = "prediction"
    return PredictionEvent.model_validate(fields)


def encoded(event: PredictionEvent) -> bytes | str:
    try:
        return encode(event)
    except TypeError as exc:  # orjson refuses ints beyond 64 bits
        return str(exc)


def same(a: PredictionEvent, b: PredictionEvent) -> bool:
    # == alone would pass 1 for 1.0 and True for 1; the bytes would not.
    return (
        a == b
        and encoded(a) == encoded(b)
        and a.model_fields_set == b.model_fields_set
        and [type(v) for v in a.features.values()] == [type(v) for v in b.features.values()]
        and type(a.prediction) is type(b.prediction)
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(predictions(), min_size=1, max_size=8), st.integers(min_value=0))
def test_packed_predictions_come_back_identical(events: list[PredictionEvent], offset: int) -> None:
    packer = PredictionPacker()  # one packer for several events: layouts are shared
    for event in events:
        record = packer.pack(event, event.epoch, offset)
        if record is None:
            continue  # not packable: the join keeps the event itself
        assert packer.epoch_and_offset(record) == (event.epoch, offset)
        assert same(packer.unpack(event.event_id, record), event)


@settings(max_examples=300, deadline=None)
@given(predictions(), st.none() | st.integers(min_value=0, max_value=2**40))
def test_the_join_gives_back_the_prediction_that_went_in(
    event: PredictionEvent, offset: int | None
) -> None:
    # Packed (no hot predictions kept) or not packable, a pending prediction
    # matches as itself.
    join = PendingJoin(ttl_seconds=1e12, max_pending=10, hot_predictions=0)
    assert join.add_prediction(event, event.epoch, offset) is None
    (pending, when, pending_offset), *_ = join.pending_prediction_items()
    assert same(pending, event) and (when, pending_offset) == (event.epoch, offset)
    match = join.add_outcome(OutcomeEvent(event_id=event.event_id, ts=event.ts, actual=1), 0.0)
    assert isinstance(match, Match)
    assert same(match.prediction, event)
    assert match.prediction_epoch == event.epoch
    assert offset is None or offset not in join.prediction_offsets


def test_the_usual_prediction_is_packed_small() -> None:
    event = PredictionEvent(
        event_id="txn-0-0000001",
        model_id="fraud",
        model_version="v1",
        ts=1_800_000_000.25,
        features={f"x{k}": k + 0.5 for k in range(8)},
        prediction=1,
        score=0.3,
    )
    record = PredictionPacker().pack(event, event.epoch, 12)
    assert record is not None
    # Head (28 bytes) + score, prediction and 8 features at 8 bytes each.
    assert len(record) == 28 + 10 * 8


def test_what_cannot_be_packed_exactly_is_not() -> None:
    packer = PredictionPacker()
    usual = {"event_id": "e", "model_id": "m", "model_version": "v", "prediction": 1}
    huge = PredictionEvent(ts=0, features={"n": 2**64}, **usual)
    assert packer.pack(huge, 0.0, None) is None
    # Validation turns every ts into UTC; a zone that is not (model_construct) stays.
    india = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    zoned = PredictionEvent.model_construct(ts=india, features={}, **usual)
    assert packer.pack(zoned, 0.0, None) is None
    odd = PredictionEvent.model_construct(ts=datetime.now(UTC), features={"x": [1]}, **usual)
    assert packer.pack(odd, 0.0, None) is None


def test_layouts_are_bounded_and_the_rest_is_kept_unpacked() -> None:
    # A string feature that is really an id makes a layout per value.
    packer = PredictionPacker()
    events = [
        PredictionEvent(
            event_id=f"e{i}",
            model_id="m",
            model_version="v1",
            ts=i,
            features={"user": f"u{i}", "x": 1.5},
            prediction=0,
        )
        for i in range(MAX_LAYOUTS + 5)
    ]
    records = [packer.pack(e, e.epoch, None) for e in events]
    assert all(r is not None for r in records[:MAX_LAYOUTS])
    assert records[MAX_LAYOUTS:] == [None] * 5
    assert packer.layouts == MAX_LAYOUTS
    # An event of a known layout still packs.
    assert packer.pack(events[0].model_copy(update={"event_id": "again"}), 1.0, 3) is not None
