"""The fast decoding path agrees with pydantic, and is taken for common events.

``decode_input`` tries ``events._fast_input`` (msgspec decoding the bytes into
a typed Struct, then the model built from it) before orjson and pydantic's
``model_validate``. The fast path never rejects anything (it answers "ask
pydantic" instead), so what is rejected, and why, stays pydantic's. What these
tests prove is the other half: whenever the fast path builds an event, orjson
and pydantic build the identical one from the same bytes (same values, same
value types, same fields set, same wire bytes), also where msgspec's parser and
orjson's could part (invalid UTF-8, surrogates, integers beyond 64 bits,
numbers beyond a double, duplicate keys, escaped keys); and that the shapes
producers actually send do take it, so the speed-up cannot vanish unnoticed.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stream_mlops import events
from stream_mlops.events import (
    EventError,
    InputEvent,
    OutcomeEvent,
    PredictionEvent,
    decode_input,
    encode,
)
from stream_mlops.simulate.fraud import FraudConfig, FraudSimulator
from stream_mlops.simulate.malformed import corrupt
from tests.kafka.streams import fraud_stream

MODELS: dict[str, type[PredictionEvent] | type[OutcomeEvent]] = {
    "prediction": PredictionEvent,
    "outcome": OutcomeEvent,
}
MISSING = object()  # a key left out of the event

# Many examples: the property is cheap to check and the input space is wide.
AGREEMENT = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))


def assert_identical(fast: InputEvent, slow: InputEvent) -> None:
    """Equal as pydantic sees it, and indistinguishable to any consumer."""
    assert type(fast) is type(slow)
    assert fast == slow
    assert list(fast.__dict__) == list(slow.__dict__)
    for name, value in slow.__dict__.items():
        assert type(fast.__dict__[name]) is type(value), name
    assert fast.ts.tzinfo is slow.ts.tzinfo
    assert fast.ts.microsecond == slow.ts.microsecond
    if isinstance(slow, PredictionEvent):
        assert isinstance(fast, PredictionEvent)
        assert list(fast.features) == list(slow.features)
        assert [type(v) for v in fast.features.values()] == [
            type(v) for v in slow.features.values()
        ]
    assert type(fast.model_fields_set) is type(slow.model_fields_set)
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.__pydantic_extra__ == slow.__pydantic_extra__
    assert fast.__pydantic_private__ == slow.__pydantic_private__
    assert wire(fast) == wire(slow)
    assert fast.model_dump(exclude_unset=True) == slow.model_dump(exclude_unset=True)
    assert fast.epoch == slow.epoch


def wire(event: InputEvent) -> bytes | str:
    # Ints beyond 64 bits are valid labels but orjson cannot write them (nor
    # read them: it reads them as floats), so both sides fail the same way.
    try:
        return encode(event)
    except TypeError as exc:
        return f"TypeError: {exc}"


def to_json(doc: Any, ascii_only: bool = True) -> bytes | None:
    """``doc`` as JSON bytes, big ints and all (orjson cannot write those).

    ``ascii_only`` False writes non-ASCII as UTF-8 (a lone surrogate as the
    invalid bytes Python would make of it), True as ``\\u`` escapes. None if
    ``doc`` is not JSON (bytes values).
    """
    try:
        text = json.dumps(doc, ensure_ascii=ascii_only)
    except (TypeError, ValueError):
        return None
    return text.encode("utf-8", "surrogatepass")


def pydantic_answer(raw: bytes | str, default_type: Any) -> InputEvent | str:
    """What decode_input answers with the fast path off: orjson, then model_validate."""
    with pydantic_only():
        return outcome_of(raw, default_type)


def check_raw(raw: bytes | str, default_type: Any) -> InputEvent | None:
    """The fast path's answer for ``raw``; if it built an event, pydantic's is identical,
    and decode_input answers as pydantic alone does."""
    fast = events._fast_input(raw, default_type)
    expected = pydantic_answer(raw, default_type)
    if fast is not None:
        assert not isinstance(expected, str), (raw, expected)
        assert_identical(fast, expected)
    got = outcome_of(raw, default_type)
    if isinstance(expected, str) or isinstance(got, str):
        assert got == expected
    else:
        assert_identical(got, expected)
    return fast


def check_agreement(obj: dict[str, Any], kind: str) -> InputEvent | None:
    """The fast path's answer for ``obj`` as JSON, both ASCII-escaped and as
    UTF-8; if it built an event, pydantic's is identical."""
    answers = []
    for ascii_only in (True, False):
        raw = to_json(obj, ascii_only)
        if raw is None:
            return None
        answers.append(check_raw(raw, kind))
    fast, fast_utf8 = answers
    assert (fast is None) == (fast_utf8 is None)
    return fast


@contextmanager
def pydantic_only() -> Iterator[None]:
    with mock.patch.object(events, "_fast_input", lambda raw, default_type: None):
        yield


def outcome_of(raw: bytes, default_type: Any) -> InputEvent | str:
    try:
        return decode_input(raw, default_type)
    except EventError as exc:
        return f"EventError: {exc}"


# --- strategies -------------------------------------------------------------


def mostly(valid: st.SearchStrategy[Any], edge: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` seven times in eight, else ``edge`` (values just past a constraint)."""
    return st.sampled_from([True] * 7 + [False]).flatmap(lambda ok: valid if ok else edge)


MODEL_ID_CHARS = "abcXYZ019._-"
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.floats(min_value=0.0, max_value=1.0),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8))
junk = st.one_of(
    scalars,
    st.lists(scalars, max_size=2),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
    st.binary(max_size=3),
    st.tuples(st.integers()),
)


def ids(max_ok: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.text(min_size=1, max_size=20),
        st.text(min_size=max_ok - 1, max_size=max_ok + 1),
        st.just(""),
        junk,
    )


def two(valid_up_to: int, edge_up_to: int) -> st.SearchStrategy[str]:
    """Two digits, mostly in range, sometimes just past it."""
    return mostly(st.integers(0, valid_up_to), st.integers(valid_up_to, edge_up_to)).map(
        lambda v: f"{v:02d}"
    )


@st.composite
def iso_timestamps(draw: st.DrawFn) -> str:
    """ISO-8601-ish strings: the forms producers send and near misses of them."""
    year = draw(mostly(st.integers(1970, 2100), st.integers(0, 10000)))
    date = f"{year:04d}-{draw(two(12, 13))}-{draw(two(28, 32))}"
    sep: str = draw(mostly(st.just("T"), st.sampled_from(["t", " ", "_"])))
    clock = f"{draw(two(23, 25))}:{draw(two(59, 61))}"
    if draw(mostly(st.just(True), st.just(False))):
        clock += f":{draw(two(59, 61))}"
    if draw(st.booleans()):
        digits = draw(mostly(st.integers(1, 6), st.sampled_from([0, 7, 9])))
        clock += "." + "".join(draw(st.sampled_from("0123456789")) for _ in range(digits))
    zone: str = draw(
        st.one_of(
            st.sampled_from(["Z", "Z", "z", "", "+00:00", "-00:00", "UTC"]),
            st.builds(
                lambda sign, hh, mm, colon: f"{sign}{hh}{colon}{mm}",
                st.sampled_from("+-"),
                two(23, 25),
                two(59, 61),
                mostly(st.just(":"), st.just("")),
            ),
        )
    )
    return date + sep + clock + zone


# Epoch seconds whose fraction lands exactly on half a microsecond, where
# pydantic (half away from zero) and Python (half to even) round differently.
# Exact ties exist where the fraction has bits to spare (small epochs).
tie_floats = st.one_of(
    st.builds(lambda us: (us + 0.5) / 1e6, st.integers(0, 10**6)),
    st.builds(lambda s, us: s + (us + 0.5) / 1e6, st.integers(0, 10**5), st.integers(0, 10**6)),
)

timestamps = st.one_of(
    st.floats(min_value=0.0, max_value=2e10),
    st.floats(min_value=1.5e9, max_value=2.1e9),
    st.builds(round, st.floats(1.5e9, 2.1e9), st.integers(0, 7)),
    st.builds(lambda s, us: s + us / 1e6, st.integers(0, 2 * 10**9), st.integers(0, 10**6)),
    tie_floats,
    st.floats(),
    st.floats(min_value=2e10, max_value=3e14),
    st.integers(min_value=-(10**15), max_value=3 * 10**14),
    st.sampled_from([0, 1, -1, 0.0, -0.0, 20_000_000_000, 20_000_000_001, 2e10, 2e10 + 1]),
    st.sampled_from([253_402_300_799_999, 253_402_300_800_000, 253_402_300_799.999, 2**63]),
    iso_timestamps(),
    iso_timestamps(),
    iso_timestamps(),
    st.sampled_from(["1700000000", "2024-02-29", "2023-11-14T22:13", "now", ""]),
    junk,
)
features = st.one_of(
    st.dictionaries(
        st.text(max_size=6),
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
        max_size=8,
    ),
    st.dictionaries(st.text(max_size=3), junk, max_size=3),
    junk,
)
labels = st.one_of(st.booleans(), numbers, st.text(max_size=6), junk)
scores = st.one_of(
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=-0.5, max_value=1.5),
    st.integers(-2, 3),
    st.sampled_from([0.0, -0.0, 1.0, math.nextafter(1.0, 2.0), math.nextafter(0.0, -1.0)]),
    st.none(),
    junk,
)
model_ids = st.one_of(
    st.text(MODEL_ID_CHARS, min_size=1, max_size=130),
    st.text(MODEL_ID_CHARS, max_size=3).map(lambda s: s + "\n"),
    st.text(max_size=10),
    junk,
)
extra_fields = st.dictionaries(
    st.sampled_from(["extra", "x", "Event_id", "EVENT_ID", "ts_ms"]), junk, max_size=2
)


def present(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if value is not MISSING}


wild = st.one_of(junk, st.just(MISSING))


@st.composite
def mutated(draw: st.DrawFn, fields: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """An event of plausible field values, up to two of them replaced by wild ones.

    Each field has a (plausible, wild) pair of strategies; plausible values are
    mostly valid, so the fast path is exercised, and near the edges of validity.
    """
    doc = {name: draw(likely) for name, (likely, _) in fields.items()}
    n_wild = draw(st.sampled_from([0, 0, 0, 1, 1, 2]))
    for name in draw(st.sets(st.sampled_from(sorted(fields)), min_size=n_wild, max_size=n_wild)):
        doc[name] = draw(fields[name][1])
    return {**draw(extra_fields), **present(doc)}


valid_features = st.dictionaries(
    st.text(max_size=6),
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
    max_size=8,
)


plausible_features = mostly(
    valid_features,
    # one nested value among valid ones
    st.builds(lambda d, k: {**d, k: [1]}, valid_features, st.text(max_size=6)),
)
event_ids = mostly(
    st.text(min_size=1, max_size=20),
    st.sampled_from(["", "x" * 255, "x" * 256, "x" * 257, "é" * 257]),
)
likely_model_ids = mostly(
    st.text(MODEL_ID_CHARS, min_size=1, max_size=20),
    st.one_of(
        st.text(MODEL_ID_CHARS, min_size=126, max_size=130),
        st.text(MODEL_ID_CHARS, min_size=1, max_size=5).map(lambda s: s + "\n"),
        st.sampled_from(["", "a b", "\u0661", "é", "fraud\n", "\nfraud"]),
    ),
)
plausible_labels = st.one_of(st.booleans(), st.integers(), st.floats(), st.text(max_size=6))
PREDICTION_FIELDS = {
    "type": (st.sampled_from(["prediction", MISSING]), st.sampled_from(["prediction", MISSING])),
    "event_id": (event_ids, ids(256)),
    "model_id": (likely_model_ids, st.one_of(model_ids, wild)),
    "model_version": (
        mostly(st.text(min_size=1, max_size=4), st.just("")),
        st.one_of(ids(2), wild),
    ),
    "ts": (timestamps, wild),
    "features": (plausible_features, st.one_of(features, wild)),
    "prediction": (plausible_labels, st.one_of(labels, wild)),
    "score": (
        mostly(st.one_of(st.floats(0.0, 1.0), st.just(MISSING), st.none()), scores),
        wild,
    ),
}
OUTCOME_FIELDS = {
    "type": (st.sampled_from(["outcome", MISSING]), st.sampled_from(["outcome", MISSING])),
    "event_id": (event_ids, ids(256)),
    "ts": (timestamps, wild),
    "actual": (plausible_labels, st.one_of(labels, wild)),
    "model_id": (
        st.one_of(likely_model_ids, st.none(), st.just(MISSING)),
        st.one_of(model_ids, wild),
    ),
}


def prediction_docs() -> st.SearchStrategy[dict[str, Any]]:
    return mutated(PREDICTION_FIELDS)


def outcome_docs() -> st.SearchStrategy[dict[str, Any]]:
    return mutated(OUTCOME_FIELDS)


# --- agreement --------------------------------------------------------------


@AGREEMENT
@given(prediction_docs())
@example({"event_id": "e", "model_id": "m", "model_version": "v", "ts": 1e9 + 0.9999995,
          "features": {}, "prediction": 1, "score": 1})  # fmt: skip
@example({"event_id": "e", "model_id": "m", "model_version": "v", "ts": 20_000_000_001,
          "features": {"a": None}, "prediction": True, "score": None})  # fmt: skip
def test_fast_predictions_are_what_pydantic_builds(doc: dict[str, Any]) -> None:
    check_agreement(doc, "prediction")


@AGREEMENT
@given(outcome_docs())
@example({"event_id": "e", "ts": "0001-01-01T00:00:00+01:00", "actual": 1})
@example({"event_id": "e", "ts": "2024-02-29T23:59:59.999999-23:59", "actual": "x"})
@example({"event_id": "e", "ts": 253_402_300_799_999, "actual": 1.5, "model_id": None})
def test_fast_outcomes_are_what_pydantic_builds(doc: dict[str, Any]) -> None:
    check_agreement(doc, "outcome")


@AGREEMENT
@given(timestamps)
@example("2023-11-14T22:13:21+00:60")  # fromisoformat takes minute 60; pydantic does not
@example("2023-11-14T24:00:00Z")
@example(2.5e-6)
def test_fast_timestamps_are_what_pydantic_makes(ts: Any) -> None:
    # The timestamp alone, at a higher rate than inside whole events.
    check_agreement({"event_id": "e", "ts": ts, "actual": 1}, "outcome")


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(prediction_docs(), outcome_docs()),
    st.sampled_from([None, "prediction", "outcome"]),
)
def test_decode_input_answers_as_pydantic_alone_does(doc: dict[str, Any], default: Any) -> None:
    """End to end, from bytes: the same event, or the same EventError message."""
    for raw in (to_json(doc), to_json(doc, ascii_only=False), orjson_or_none(doc)):
        if raw is not None:
            check_raw(raw, default)


def orjson_or_none(doc: Any) -> bytes | None:
    try:
        return orjson.dumps(doc)
    except TypeError:  # not JSON (bytes, huge ints)
        return None


BASE_PREDICTION = {
    "type": "prediction",
    "event_id": "txn-1",
    "model_id": "fraud",
    "model_version": "v1",
    "ts": 1_800_000_000.25,
    "features": {"amount": 42.5, "merchant": "grocery", "n": 3, "new": True, "x": None},
    "prediction": 1,
    "score": 0.5,
}
BASE_OUTCOME = {"type": "outcome", "event_id": "txn-1", "ts": 1_800_000_060, "actual": 0}
NEAR_MISSES = [
    ("event_id", ""),
    ("event_id", "x" * 257),
    ("event_id", 1),
    ("model_id", "fraud\n"),
    ("model_id", "\nfraud"),
    ("model_id", "a b"),
    ("model_id", "x" * 129),
    ("model_id", ""),
    ("model_id", "fr\u0661ud"),  # a non-ASCII digit
    ("model_id", 1),
    ("ts", "2023-11-14T22:13:21+00:60"),
    ("ts", "2023-11-14T24:00:00Z"),
    ("ts", "2023-02-29T00:00:00Z"),
    ("ts", "2023-11-14T22:13:21"),
    ("ts", "0001-01-01T00:00:00+01:00"),
    ("ts", "1700000000"),
    ("ts", True),
    ("ts", math.nan),
    ("ts", math.inf),
    ("ts", 253_402_300_800_000),
    ("ts", 2.5e-6),  # valid, but a rounding tie: pydantic's to decide
    ("ts", None),
    ("actual", None),
    ("actual", [1]),
    ("prediction", None),
    ("prediction", {"a": 1}),
    ("features", {"a": [1]}),
    ("features", {"a": {"b": 1}}),
    ("features", []),
    ("features", None),
    ("model_version", ""),
    ("model_version", 1),
    ("score", 1.5),
    ("score", -0.1),
    ("score", math.nextafter(1.0, 2.0)),
    ("score", 2),
    ("score", -1),
    ("score", True),
    ("score", "0.5"),
    ("score", math.nan),
]


@pytest.mark.parametrize(("field", "value"), NEAR_MISSES)
def test_near_misses_are_left_to_pydantic(field: str, value: Any) -> None:
    for kind, base in (("prediction", BASE_PREDICTION), ("outcome", BASE_OUTCOME)):
        if field not in base and field != "model_id":
            continue
        assert check_agreement(base, kind) is not None  # the base is fast
        doc = {**base, field: value}
        model = MODELS[kind]
        try:
            model.model_validate(doc)
        except ValueError:  # pydantic rejects it: the fast path must not build it
            raw = to_json(doc)
            assert raw is not None
            assert events._fast_input(raw, kind) is None
        else:  # pydantic accepts it: the fast path may, if identically
            check_agreement(doc, kind)


def test_the_tie_rounding_goes_to_pydantic() -> None:
    # 0.5 us exactly: pydantic rounds up, datetime.fromtimestamp to even (0 us).
    tie = 2.5e-6
    assert (tie * 1e6) % 1 == 0.5
    assert datetime.fromtimestamp(tie, UTC).microsecond == 2
    assert events._fast_ts(tie) is None
    event = decode_input(orjson.dumps({"event_id": "e", "ts": tie, "actual": 1}), "outcome")
    assert event.ts.microsecond == 3


# --- the fast path is taken ---------------------------------------------------


def test_benchmark_and_test_stream_shapes_take_the_fast_path() -> None:
    predictions, outcomes = fraud_stream(
        200, drift_at=100, error_before=0.1, error_after=0.3, seed=3
    )
    for doc in [*predictions, *outcomes]:
        raw = orjson.dumps(doc)
        for default in (None, doc["type"]):
            assert check_raw(raw, default) is not None, doc


def test_simulator_events_take_the_fast_path() -> None:
    taken = 0
    for record in FraudSimulator(FraudConfig(seed=5, n_events=300)):
        assert check_raw(record.value(), record.kind) is not None, record.payload
        taken += 1
    assert taken >= 300


def test_malformed_events_are_left_to_pydantic() -> None:
    # Every defect the simulator injects is invalid, so the fast path must not
    # build an event from any of them.
    rng = random.Random(7)
    base = next(iter(FraudSimulator(FraudConfig(seed=5, n_events=1)))).payload
    assert isinstance(base, dict)
    for _ in range(200):
        raw, defect = corrupt(dict(base), rng)
        with pytest.raises(EventError):
            decode_input(raw, "prediction")
        assert events._fast_input(raw, "prediction") is None, defect


@st.composite
def common_predictions(draw: st.DrawFn) -> dict[str, Any]:
    """Valid events in the forms producers send: these must all be fast."""
    ts = draw(
        st.one_of(
            st.floats(1e9, 2.1e9),
            st.integers(0, 2 * 10**10),
            st.integers(2 * 10**10 + 1, 4 * 10**12),
            st.builds(
                lambda s, ms, zone: (
                    f"{s.isoformat(timespec='seconds').removesuffix('+00:00')}.{ms:03d}{zone}"
                ),
                st.datetimes(datetime(1900, 1, 1), datetime(9000, 1, 1)),
                st.integers(0, 999),
                st.sampled_from(["Z", "+00:00", "+05:30", "-08:00"]),
            ),
        ).filter(lambda v: not isinstance(v, float) or events._fast_ts(v) is not None)
    )
    doc = {
        "type": "prediction",
        "event_id": draw(st.text(min_size=1, max_size=40)),
        "model_id": draw(st.text(MODEL_ID_CHARS, min_size=1, max_size=40)),
        "model_version": draw(st.text(min_size=1, max_size=10)),
        "ts": ts,
        "features": draw(
            st.dictionaries(
                st.text(max_size=10),
                st.one_of(
                    st.none(),
                    st.booleans(),
                    st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=10),
                ),
                max_size=12,
            )
        ),
        "prediction": draw(st.one_of(st.booleans(), st.integers(0, 9), st.text(max_size=5))),
        "score": draw(st.one_of(st.floats(0.0, 1.0), st.none(), st.just(MISSING))),
    }
    return present(doc)


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(common_predictions(), st.booleans())
def test_common_valid_shapes_are_all_fast(doc: dict[str, Any], drop_type: bool) -> None:
    if drop_type:
        del doc["type"]
    raw = orjson.dumps(doc)
    assert check_raw(raw, "prediction") is not None
    assert check_raw(raw.decode(), "prediction") is not None  # a str decodes as its bytes


# --- where msgspec's parser and orjson's could part -------------------------

PREDICTION_JSON = orjson.dumps(BASE_PREDICTION)
OUTCOME_JSON = b'{"type":"outcome","event_id":"txn-1","ts":1800000060,"actual":0}'


def outcome_with(fields: bytes) -> bytes:
    """An outcome with ``fields`` (JSON members, raw bytes) in place of ``actual``."""
    return b'{"type":"outcome","event_id":"txn-1","ts":1800000060,' + fields + b"}"


SURROGATE_PAIR = outcome_with(b'"actual":"\\ud83d\\ude00"')
RETYPED = b'{"type":"prediction","event_id":"e","actual":1,"ts":0,"type":"outcome"}'
RAW_EDGES = [
    # bytes that are not UTF-8, in a known field and in one the models ignore
    outcome_with(b'"actual":"\xff"'),
    outcome_with(b'"actual":1,"x":"\xff"'),
    outcome_with(b'"actual":1,"x":"\xed\xa0\x80"'),  # a surrogate written as UTF-8
    outcome_with(b'"actual":"\\ud800"'),  # lone surrogates as escapes
    outcome_with(b'"actual":"\\udc80"'),
    outcome_with(b'"actual":"\\ud83d\\u0041"'),
    SURROGATE_PAIR,  # a valid pair
    outcome_with(b'"actual":"\xf0\x9f\x98\x80 caf\xc3\xa9"'),
    outcome_with(b'"actual":"a\\u0000b"'),
    outcome_with(b'"actual":"a\x01"'),  # a raw control character
    # integers at and beyond 64 bits (orjson reads those beyond as floats)
    outcome_with(b'"actual":9223372036854775807'),
    outcome_with(b'"actual":9223372036854775808'),
    outcome_with(b'"actual":18446744073709551615'),
    outcome_with(b'"actual":18446744073709551616'),
    outcome_with(b'"actual":-9223372036854775808'),
    outcome_with(b'"actual":-9223372036854775809'),
    outcome_with(b'"actual":1,"x":184467440737095516160000'),
    outcome_with(b'"actual":1,"model_id":null,"y":[18446744073709551616]'),
    # numbers beyond a double, NaN and infinities (not JSON)
    outcome_with(b'"actual":1e400'),
    outcome_with(b'"actual":1,"x":1.5e999'),
    outcome_with(b'"actual":1e-400'),
    outcome_with(b'"actual":-0'),
    outcome_with(b'"actual":-0.0'),
    outcome_with(b'"actual":1E5'),
    outcome_with(b'"actual":NaN'),
    outcome_with(b'"actual":Infinity'),
    outcome_with(b'"actual":-Infinity'),
    # bool against int
    outcome_with(b'"actual":true'),
    outcome_with(b'"actual":1.0'),
    # duplicate keys: the last one counts, for fields, the type and features
    outcome_with(b'"actual":1,"actual":"late"'),
    outcome_with(b'"actual":1,"event_id":"txn-2"'),
    outcome_with(b'"actual":1,"type":"prediction"'),
    RETYPED,
    b'{"type":"outcome","event_id":"e","actual":1,"ts":0,"ts":"x"}',
    b'{"type":"outcome","event_id":"e","actual":1,"ts":"x","ts":0}',
    PREDICTION_JSON[:-1] + b',"features":{"a":1,"b":2,"a":3}}',
    PREDICTION_JSON[:-1] + b',"score":0.2,"score":null}',
    PREDICTION_JSON[:-1] + b',"score":"x","score":0.2}',
    # escaped keys mean the same key
    b'{"\\u0074ype":"outcome","event_\\u0069d":"e","ts":0,"actual":1}',
    # extra fields: the models ignore them; the fast path leaves them to pydantic
    outcome_with(b'"actual":1,"x":{"y":[1,2]}'),
    PREDICTION_JSON[:-1] + b',"actual":1}',  # the other event type's field
    outcome_with(b'"actual":1,"features":{"a":[1]}'),
    # JSON around the object
    b" \t\r\n" + OUTCOME_JSON + b"\n",
    b"\xef\xbb\xbf" + OUTCOME_JSON,  # a byte order mark
    OUTCOME_JSON + b"\x00",
    OUTCOME_JSON + b"{}",
    OUTCOME_JSON[:-1] + b",}",
    OUTCOME_JSON[:-1],
    b"[" + OUTCOME_JSON + b"]",
    b"null",
    b"",
    # timestamps: seconds and milliseconds, ISO forms and zones
    outcome_with(b'"actual":1,"ts":20000000000'),
    outcome_with(b'"actual":1,"ts":20000000001'),
    outcome_with(b'"actual":1,"ts":2e10'),
    outcome_with(b'"actual":1,"ts":20000000000.5'),
    outcome_with(b'"actual":1,"ts":1700000000123'),
    outcome_with(b'"actual":1,"ts":253402300799999'),
    outcome_with(b'"actual":1,"ts":253402300800000'),
    outcome_with(b'"actual":1,"ts":-1'),
    outcome_with(b'"actual":1,"ts":-0.0'),
    outcome_with(b'"actual":1,"ts":true'),
    outcome_with(b'"actual":1,"ts":null'),
    outcome_with(b'"actual":1,"ts":"2023-11-14T22:13:20Z"'),
    outcome_with(b'"actual":1,"ts":"2023-11-14T22:13:20.123456+05:30"'),
    outcome_with(b'"actual":1,"ts":"2023-11-14T22:13:20.1234567Z"'),
    outcome_with(b'"actual":1,"ts":"2023-11-14T22:13:20z"'),
    outcome_with(b'"actual":1,"ts":"2023-11-14t22:13:20Z"'),
    outcome_with(b'"actual":1,"ts":"2023-11-14 22:13:20Z"'),
    outcome_with(b'"actual":1,"ts":"2023-11-14T22:13Z"'),
    outcome_with(b'"actual":1,"ts":"2023-11-14T22:13:20"'),
    outcome_with(b'"actual":1,"ts":"2023-11-14T22:13:20+0100"'),
    outcome_with(b'"actual":1,"ts":"2023-11-14T22:13:20+00:60"'),
    outcome_with(b'"actual":1,"ts":"0001-01-01T00:00:00+01:00"'),
    outcome_with(b'"actual":1,"ts":"9999-12-31T23:59:59-01:00"'),
    outcome_with(b'"actual":1,"ts":"1700000000"'),
    # model_id's pattern (Python's "$" would take a final newline)
    outcome_with(b'"actual":1,"model_id":"fraud\\n"'),
    outcome_with(b'"actual":1,"model_id":"fr\\u0661ud"'),
    outcome_with(b'"actual":1,"model_id":""'),
    outcome_with(b'"actual":1,"model_id":null'),
    PREDICTION_JSON.replace(b'"model_id":"fraud"', b'"model_id":null'),
    PREDICTION_JSON.replace(b'"model_id":"fraud"', b'"model_id":"fraud\\n"'),
    PREDICTION_JSON.replace(b'"model_id":"fraud"', b'"model_id":"' + b"m" * 129 + b'"'),
    # lengths in code points, not bytes or UTF-16 units
    outcome_with(b'"actual":1,"event_id":"' + "é".encode() * 256 + b'"'),
    outcome_with(b'"actual":1,"event_id":"' + "é".encode() * 257 + b'"'),
    outcome_with(b'"actual":1,"event_id":"' + "😀".encode() * 256 + b'"'),
    outcome_with(b'"actual":1,"event_id":"' + "😀".encode() * 257 + b'"'),
    outcome_with(b'"actual":1,"event_id":""'),
    # score: int 0 and 1, bool, out of range
    PREDICTION_JSON.replace(b'"score":0.5', b'"score":1'),
    PREDICTION_JSON.replace(b'"score":0.5', b'"score":0'),
    PREDICTION_JSON.replace(b'"score":0.5', b'"score":-0.0'),
    PREDICTION_JSON.replace(b'"score":0.5', b'"score":true'),
    PREDICTION_JSON.replace(b'"score":0.5', b'"score":1.0000000000000002'),
    PREDICTION_JSON.replace(b'"score":0.5', b'"score":1.00000000000000001'),
    PREDICTION_JSON.replace(b'"score":0.5', b'"score":null'),
    PREDICTION_JSON.replace(b',"score":0.5', b""),
    PREDICTION_JSON.replace(b'"prediction":1', b'"prediction":true'),
    PREDICTION_JSON.replace(b'"prediction":1', b'"prediction":null'),
]


@pytest.mark.parametrize("raw", RAW_EDGES)
@pytest.mark.parametrize("default_type", [None, "prediction", "outcome"])
def test_raw_edge_cases_answer_as_pydantic_alone_does(raw: bytes, default_type: Any) -> None:
    check_raw(raw, default_type)
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return
    check_raw(text, default_type)


def test_events_with_extra_fields_are_decoded_by_pydantic() -> None:
    # The tolerant reader: fields outside the contract are ignored, not refused;
    # they only cost the fast path.
    raw = outcome_with(b'"actual":1,"producer":{"host":"a","seq":[1,2]}')
    assert events._fast_input(raw, None) is None
    event = decode_input(raw)
    assert isinstance(event, OutcomeEvent)
    assert event.actual == 1
    assert "producer" not in event.__dict__


def test_the_fast_path_sees_through_escapes_and_duplicates() -> None:
    # The cases that are valid must still be fast, and equal pydantic's.
    escaped = b'{"\\u0074ype":"outcome","event_\\u0069d":"e","ts":0,"actual":1}'
    fast = check_raw(escaped, None)
    assert fast is not None and fast.event_id == "e"
    dup = PREDICTION_JSON[:-1] + b',"features":{"a":1,"b":2,"a":3}}'
    fast = check_raw(dup, None)
    assert isinstance(fast, PredictionEvent)
    assert list(fast.features.items()) == [("a", 3), ("b", 2)]
    assert isinstance(check_raw(RETYPED, None), OutcomeEvent)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.sampled_from([PREDICTION_JSON, OUTCOME_JSON, SURROGATE_PAIR, RETYPED]),
    st.lists(
        st.tuples(
            st.integers(0, 10_000),
            st.integers(0, 3),
            st.binary(max_size=3)
            | st.sampled_from([b'"', b"\\", b"\\u", b",", b":", b"}", b"e9", b"\xc3", b"0"]),
        ),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from([None, "prediction", "outcome"]),
)
def test_mangled_bytes_answer_as_pydantic_alone_does(
    base: bytes, edits: list[tuple[int, int, bytes]], default_type: Any
) -> None:
    """Valid events with bytes cut out and put in: whatever the parsers make of it."""
    raw = base
    for offset, cut, put in edits:
        at = offset % (len(raw) + 1)
        raw = raw[:at] + put + raw[at + cut :]
    check_raw(raw, default_type)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.builds(
            lambda digits, point, exp: (
                (digits[:point] + "." + digits[point:] if point < len(digits) else digits) + exp
            ),
            st.text("0123456789", min_size=1, max_size=30).map(lambda d: d.lstrip("0") or "0"),
            st.integers(1, 31),
            st.sampled_from(["", "e5", "E-7", "e300", "e-320", "e400", "e+22"]),
        ),
    ),
    st.sampled_from(["actual", "ts", "score", "feature"]),
)
def test_numbers_are_read_as_orjson_reads_them(number: str, where: str) -> None:
    if where == "feature":
        raw = PREDICTION_JSON[:-1] + b',"features":{"a":' + number.encode() + b"}}"
    elif where == "score":
        raw = PREDICTION_JSON.replace(b'"score":0.5', b'"score":' + number.encode())
    else:
        raw = outcome_with(b'"actual":1,"' + where.encode() + b'":' + number.encode())
    check_raw(raw, None)
