"""The event contract: frozen pydantic models and the one orjson codec.

Every event that enters or leaves the engine is one of the models below, and
every byte that crosses a topic or a replay file goes through :func:`decode_input`
or :func:`encode`. Field names are the interface contract
(``docs/contract.md``, "Events"): extend, never rename. :func:`decode_input`
reads the common shapes with msgspec (the fast path, below) and everything
else with orjson and pydantic, whose rules and messages it keeps.

>>> raw = b'{"type": "prediction", "event_id": "txn-1", "model_id": "fraud",'
>>> raw += b' "model_version": "v1", "ts": 1700000000, "features": {"amount": 42.5},'
>>> raw += b' "prediction": 0, "score": 0.07}'
>>> event = decode_input(raw)
>>> event.event_id, event.epoch
('txn-1', 1700000000.0)
>>> decode_input(b'{"type": "outcome", "event_id": "txn-1", "ts": "2023-11-14T22:13:21Z",'
...              b' "actual": 1}').epoch
1700000001.0
>>> decode_input(b'{"type": "outcome", "event_id": "e", "ts": 0, "actual": [1]}')
Traceback (most recent call last):
...
stream_mlops.events.EventError: actual: value must be number, string or bool
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal, TypeVar

import msgspec
import orjson
from msgspec import UNSET, UnsetType
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
)

__all__ = [
    "AlertStats",
    "DeadLetter",
    "DriftAlert",
    "ErrorEstimate",
    "EventError",
    "InputEvent",
    "LabeledEvent",
    "ModelUpdate",
    "OutcomeEvent",
    "PerformanceEstimate",
    "PredictionEvent",
    "RetrainRequest",
    "SignalShift",
    "SliceStats",
    "TrainingRange",
    "WindowStart",
    "decode_input",
    "encode",
    "json_schemas",
]


_M = TypeVar("_M", bound=BaseModel)


class EventError(ValueError):
    """An input that is not a valid event; ``str()`` names the field and why.

    The message is one line, fit for the ``error`` of a dead letter.
    """


_FEATURE_VALUE_MESSAGE: Final = "value must be number, string, bool or null"


def _feature_value(value: object) -> FeatureValue:
    # A plain check instead of a union of strict types: one error with the
    # feature's own location instead of one per union member, and faster.
    if value is None or type(value) in (int, float, str, bool):
        return value  # type: ignore[return-value]
    raise ValueError(_FEATURE_VALUE_MESSAGE)


FeatureValue = bool | int | float | str | None
Features = dict[
    str,
    Annotated[
        FeatureValue,
        PlainValidator(_feature_value, json_schema_input_type=FeatureValue),
    ],
]
_LABEL_MESSAGE: Final = "value must be number, string or bool"


def _label(value: object) -> LabelValue:
    if type(value) in (int, float, str, bool):
        return value  # type: ignore[return-value]
    raise ValueError(_LABEL_MESSAGE)


# A class label (int, string, bool) or a regression value (number). Strict, so a
# label "1" stays a string and never compares equal to the integer 1.
LabelValue = bool | int | float | str
Label = Annotated[LabelValue, PlainValidator(_label, json_schema_input_type=LabelValue)]
_EVENT_ID_MAX_LENGTH: Final = 256
_MODEL_ID_PATTERN: Final = r"^[A-Za-z0-9._-]{1,128}$"
EventId = Annotated[str, Field(min_length=1, max_length=_EVENT_ID_MAX_LENGTH)]
ModelId = Annotated[str, Field(pattern=_MODEL_ID_PATTERN)]
ModelVersion = Annotated[str, Field(min_length=1)]
# Strict: a number, as the contract says; `true` and `"0.5"` are errors, not 1.0
# and 0.5 (an integer 0 or 1 is a number and becomes a float).
Score = Annotated[float, Field(ge=0.0, le=1.0, strict=True)]


def _utc(value: datetime) -> datetime:
    # One canonical zone: equal instants encode equally, and timestamp() on the
    # stdlib UTC zone costs a third of pydantic's own zone object (0.4 vs 1.2 us).
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # "0001-01-01T00:00:00+01:00" is before year 1 in UTC. A ValueError makes
        # it a validation error (a dead letter), not a crash of the consumer.
        raise ValueError("outside the range of datetime once converted to UTC") from None


# ISO-8601 with a zone, or Unix epoch seconds as a number (pydantic reads numbers
# above 2e10 as milliseconds). Kept and serialised as UTC.
Timestamp = Annotated[
    AwareDatetime,
    AfterValidator(_utc),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "number", "description": "Unix epoch seconds"},
            ]
        },
        mode="validation",
    ),
]


class _Event(BaseModel):
    # Outputs are built by the engine and must match the contract exactly.
    model_config = ConfigDict(frozen=True, extra="forbid")


class _InputEvent(BaseModel):
    # Inputs come from producers we do not control. Unknown fields are ignored
    # (a tolerant reader), so producers can extend events without breaking an
    # older engine; the fields we use are validated strictly.
    model_config = ConfigDict(frozen=True, extra="ignore")


class PredictionEvent(_InputEvent):
    """A model's prediction, published by the scoring system."""

    type: Literal["prediction"] = "prediction"
    event_id: EventId
    model_id: ModelId
    model_version: ModelVersion
    ts: Timestamp
    features: Features
    prediction: Label
    score: Score | None = None

    @property
    def epoch(self) -> float:
        """``ts`` as float Unix epoch seconds (the join's TTL runs on it)."""
        return self.ts.timestamp()


class OutcomeEvent(_InputEvent):
    """The true outcome of a prediction, published later (or earlier)."""

    type: Literal["outcome"] = "outcome"
    event_id: EventId
    ts: Timestamp
    actual: Label
    model_id: ModelId | None = None

    @property
    def epoch(self) -> float:
        """``ts`` as float Unix epoch seconds (the join's TTL runs on it)."""
        return self.ts.timestamp()


InputEvent = PredictionEvent | OutcomeEvent


class LabeledEvent(_Event):
    """A prediction joined with its outcome: what the retrainer learns from."""

    type: Literal["labeled_event"] = "labeled_event"
    event_id: EventId
    model_id: ModelId
    model_version: ModelVersion
    ts: Timestamp
    outcome_ts: Timestamp
    features: Features
    prediction: Label
    score: float | None = None
    actual: Label

    @classmethod
    def joined(cls, prediction: PredictionEvent, outcome: OutcomeEvent) -> LabeledEvent:
        """The labeled event of a join, from two events already validated.

        Built without validating again (every field comes from a validated
        event, unchanged): one per join, so it is on the hot path. Equal to
        the validated construction; ``tests/test_events.py`` checks it.
        """
        return _trusted(
            cls,
            {
                "type": "labeled_event",
                "event_id": prediction.event_id,
                "model_id": prediction.model_id,
                "model_version": prediction.model_version,
                "ts": prediction.ts,
                "outcome_ts": outcome.ts,
                "features": prediction.features,
                "prediction": prediction.prediction,
                "score": prediction.score,
                "actual": outcome.actual,
            },
            set(_LABELED_FIELDS_SET),
        )


# What ``LabeledEvent(...)`` with every field but ``type`` marks as set.
_LABELED_FIELDS_SET: Final = frozenset(LabeledEvent.model_fields) - {"type"}


def _trusted(cls: type[_M], fields: dict[str, Any], fields_set: set[str]) -> _M:
    """A model from values that already passed its validators (no second pass).

    Leaves on the instance what ``model_validate`` leaves on these models (no
    extras kept, no private attributes); ``fields_set`` (the caller's, not
    copied) is what it records as set. ``model_construct`` does the same plus
    a per-field loop, 4x slower.
    """
    event = _new(cls)
    _set_dict(event, fields)
    _set_fields_set(event, fields_set)
    _set_extra(event, None)
    _set_private(event, None)
    return event


_new = object.__new__
# BaseModel's own slots, set through their descriptors: what object.__setattr__
# does (frozen models refuse their own __setattr__), without looking each name
# up on the class first.
_set_dict: Final = BaseModel.__dict__["__dict__"].__set__
_set_fields_set: Final = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra: Final = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private: Final = BaseModel.__dict__["__pydantic_private__"].__set__


class SignalShift(_Event):
    """How far one signal's recent mean moved from its reference, in reference SDs."""

    signal: str
    #: Recent minus reference mean in reference SDs; for a categorical feature
    #: (no mean) the Hellinger distance, and both means are 0.
    effect_size: float
    reference_mean: float
    recent_mean: float
    reference_observations: int
    #: Hellinger distance between the reference and recent distributions (binned
    #: at the reference's deciles, or by category): 0 the same, 1 disjoint. It
    #: sees variance, shape and frequency changes; alerts rank by it. None when
    #: not yet known.
    distance: float | None = None


class SliceStats(_Event):
    """The slice of the traffic a ``slice:<feature>=<value>:<signal>`` alert is about."""

    feature: str
    #: The feature's value, as in the signal's name (``*other*``: the values
    #: not tracked, pooled).
    value: str
    #: Predictions of the model version in this slice since it was tracked,
    #: and their share of the version's predictions that had this feature
    #: sliced since then.
    predictions: int
    share: float


class ErrorEstimate(_Event):
    """A classifier's error rate over a window of predictions, estimated from its
    scores calibrated against labeled reference data (``stream_mlops.estimation``)."""

    #: Predictions in the window.
    predictions: int
    #: The mean over the window of each prediction's calibrated probability of
    #: being wrong: the error rate its outcomes are expected to show.
    estimated_error: float
    #: A 95% interval for the error rate the window's outcomes will show (their
    #: own Poisson-binomial chance plus the calibration's uncertainty), valid
    #: while the calibration holds (no concept drift).
    low: float
    high: float
    #: The reference's estimated error, and the band a window's estimate stays
    #: in while the traffic looks like the reference (three standard errors of
    #: a window of this size on either side).
    reference_error: float
    reference_low: float
    reference_high: float
    outside_band: bool
    #: Labeled events the calibration was fitted on.
    calibration_events: int


class AlertStats(_Event):
    """What changed, as far as the detector and the signal trackers can tell."""

    mean_before: float | None = None
    mean_after: float | None = None
    window_before: int | None = None
    window_after: int | None = None
    effect_size: float | None = None
    partition: int | None = None
    # Label-free alerts: every label-free signal of the model, largest distance
    # (else |effect_size|) first.
    shifts: list[SignalShift] = Field(default_factory=list)
    #: Slice signals: which slice.
    slice: SliceStats | None = None
    #: The model version's latest estimated error (a window of predictions),
    #: once its scores are calibrated against labeled events.
    estimate: ErrorEstimate | None = None


class DriftAlert(_Event):
    type: Literal["drift_alert"] = "drift_alert"
    alert_id: str
    model_id: ModelId
    model_version: ModelVersion
    signal: str
    detector: str
    severity: Literal["warning", "drift"]
    ts: Timestamp
    trigger_event_id: EventId
    observations: int
    stats: AlertStats


class WindowStart(_Event):
    """Where post-drift data begins."""

    ts: Timestamp
    event_id: EventId


class RetrainRequest(_Event):
    type: Literal["retrain_request"] = "retrain_request"
    request_id: str
    model_id: ModelId
    model_version: ModelVersion
    reason_alert_ids: list[str]
    window_start: WindowStart
    ts: Timestamp


class TrainingRange(_Event):
    topic: str
    partition: int
    start_offset: int
    end_offset: int


class ModelUpdate(_Event):
    type: Literal["model_update"] = "model_update"
    model_id: ModelId
    model_version: ModelVersion
    parent_version: ModelVersion | None = None
    ts: Timestamp
    metrics: dict[str, Any] = Field(default_factory=dict)
    training_window: list[TrainingRange] = Field(default_factory=list)


class PerformanceEstimate(_Event):
    """The estimated error of a model version over a window of its predictions."""

    type: Literal["performance_estimate"] = "performance_estimate"
    #: A hash of the model version, the input partition and the window's last
    #: prediction: the same input gives the same id.
    estimate_id: str
    model_id: ModelId
    model_version: ModelVersion
    #: Event time of the window's last prediction.
    ts: Timestamp
    #: The window's first prediction (its time and ``event_id``), and its last.
    window_start: WindowStart
    last_event_id: EventId
    partition: int | None = None
    estimate: ErrorEstimate


class DeadLetter(_Event):
    type: Literal["dead_letter"] = "dead_letter"
    source_topic: str
    partition: int
    offset: int
    error: str
    payload: str  # the original bytes, base64 (only their start when ``payload_truncated``)
    # Extensions (absent from dead letters written before them): the original
    # value's length and sha256, so a truncated payload still identifies it.
    payload_bytes: int | None = None
    payload_sha256: str | None = None
    payload_truncated: bool = False


_INPUT_MODELS: Final[dict[str, type[PredictionEvent] | type[OutcomeEvent]]] = {
    "prediction": PredictionEvent,
    "outcome": OutcomeEvent,
}
_ALL_MODELS: Final[dict[str, type[BaseModel]]] = {
    "prediction": PredictionEvent,
    "outcome": OutcomeEvent,
    "drift_alert": DriftAlert,
    "retrain_request": RetrainRequest,
    "model_update": ModelUpdate,
    "labeled_event": LabeledEvent,
    "dead_letter": DeadLetter,
    "performance_estimate": PerformanceEstimate,
}


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(event)"


def describe_validation_error(error: ValidationError) -> str:
    """One line: ``field: reason`` for each error, ``; ``-separated."""
    parts = []
    for item in error.errors(include_url=False):
        msg = item["msg"].removeprefix("Value error, ")
        parts.append(f"{_location(item['loc'])}: {msg}")
    return "; ".join(parts)


def decode_input(
    raw: bytes | str,
    default_type: Literal["prediction", "outcome"] | None = None,
) -> InputEvent:
    """Parse and validate one prediction or outcome event.

    ``default_type`` is the type assumed when the event has no ``"type"`` (on
    Kafka the topic tells); with None, ``"type"`` is required.

    >>> decode_input(b'{"event_id": "e", "ts": 0, "actual": true}', "outcome").actual
    True
    >>> decode_input(b'{"event_id": "e", "ts": 0, "actual": true}')
    Traceback (most recent call last):
    ...
    stream_mlops.events.EventError: type: required, one of 'prediction', 'outcome'
    """
    event = _fast_input(raw, default_type)
    if event is not None:
        return event
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if isinstance(raw, bytes):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as utf:
                raise EventError(f"(event): not UTF-8 ({utf.reason} at byte {utf.start})") from None
        raise EventError(f"(event): not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise EventError(f"(event): not a JSON object but {type(obj).__name__}")
    kind = obj.get("type", default_type)
    model = _INPUT_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        if kind is None:
            raise EventError("type: required, one of 'prediction', 'outcome'")
        raise EventError(f"type: {kind!r} is not one of 'prediction', 'outcome'")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise EventError(describe_validation_error(exc)) from None


# --- The fast path -----------------------------------------------------------
#
# pydantic's model_validate costs ~6 us per input event, a fifth of the replay's
# time per event. The fast path decodes the bytes with msgspec straight into a
# typed Struct of the input fields (msgspec validates while it parses, in C),
# and builds the model from it without a second validation. It accepts only
# inputs that orjson.loads + model_validate are certain to accept, with the same
# result (same values, same types, same fields set); anything else (every
# invalid input included) goes to them. So what is rejected, and the message,
# is pydantic's by construction. tests/test_events_fast.py checks the two agree
# on generated inputs and bytes, and that the common shapes do take it.
#
# Where msgspec and orjson or pydantic could differ, the Struct is stricter, so
# those inputs go to pydantic:
# * unknown fields are refused (forbid_unknown_fields): msgspec skips an
#   ignored field's value without all of orjson's checks (invalid UTF-8, a
#   number beyond a double), so nothing may be skipped;
# * integers outside int64: orjson reads those beyond 64 bits as floats;
# * timestamps: only the forms _fast_ts is certain of, converted in Python
#   (msgspec's own datetime rules are not pydantic's);
# * model_id's pattern: checked in Python (Python's "$" also matches before a
#   final newline; pydantic's regex does not).
#
# Keep it in step with the models above: a new field, or a changed constraint,
# must be mirrored here (the agreement test fails until it is).

_MODEL_ID: Final = re.compile(_MODEL_ID_PATTERN)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# pydantic reads numbers up to 2e10 as seconds and above as milliseconds; its
# largest accepted millisecond value is the last one of year 9999.
_SECONDS_UP_TO: Final = 20_000_000_000
_MILLISECONDS_UP_TO: Final = 253_402_300_799_999
# ISO-8601 forms whose meaning pydantic (speedate) and datetime.fromisoformat
# agree on: upper-case T, seconds, up to 6 fraction digits, "Z" or "+hh:mm". Other
# forms (lower-case, no seconds, 7+ digits, no zone, a space) go to pydantic.
# Fields are range-checked here because fromisoformat is laxer than speedate in
# places (it takes the offset "+00:60"); dates are left to fromisoformat, which
# rejects the same impossible days speedate does.
_HH: Final = "(?:[01][0-9]|2[0-3])"
_MM: Final = "[0-5][0-9]"
_ISO_FAST: Final = re.compile(
    rf"[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T{_HH}:{_MM}:{_MM}(?:\.[0-9]{{1,6}})?(?:Z|[+-]{_HH}:{_MM})"
)

# JSON integers as orjson reads them to int (beyond, it makes floats). msgspec
# cannot bound an int above int64, so uint64 values above it go to pydantic too.
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_WireLabel = bool | _Int64 | float | str


class _WireInput(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Every field of both input events, each optional (UNSET when absent).

    One Struct for both: the event's type may come from the topic, so it is
    not known before decoding. The constraints are the models' where msgspec
    has the same rule (lengths in code points, score in [0, 1], ints and floats
    as numbers, bool apart); the rest is checked in Python after decoding.
    Not tracked by the garbage collector: it holds only what JSON makes.
    """

    type: Literal["prediction", "outcome"] | UnsetType = UNSET
    event_id: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=_EVENT_ID_MAX_LENGTH)] | UnsetType
    ) = UNSET
    model_id: str | UnsetType | None = UNSET
    model_version: Annotated[str, msgspec.Meta(min_length=1)] | UnsetType = UNSET
    ts: str | _Int64 | float | UnsetType = UNSET
    features: dict[str, _WireLabel | None] | UnsetType = UNSET
    prediction: _WireLabel | UnsetType = UNSET
    # A float field takes the integers 0 and 1 as 0.0 and 1.0, as pydantic does.
    score: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | UnsetType | None = UNSET
    actual: _WireLabel | UnsetType = UNSET


_decode_wire: Final = msgspec.json.Decoder(_WireInput).decode


def _fast_ts(value: Any) -> datetime | None:
    """``value`` as the UTC datetime pydantic makes of it, or None if not certain.

    >>> _fast_ts(1700000000.25)
    datetime.datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=datetime.timezone.utc)
    >>> _fast_ts("2023-11-14T23:13:20+01:00") == _fast_ts(1700000000)
    True
    >>> _fast_ts("2023-11-14 22:13:20Z") is None  # valid, but pydantic's to judge
    True
    """
    kind = type(value)
    ts = None
    if kind is float:
        # Both pydantic-core and datetime.fromtimestamp take floor(value) as the
        # seconds and round fraction * 1e6 (the same double product) to whole
        # microseconds, carrying into the next second at 1e6. They differ only
        # on an exact tie (x.5 microseconds): pydantic rounds half away from
        # zero, Python half to even, so ties go to pydantic. (For value >= 0,
        # value % 1.0 is the exact fraction, as value - floor(value).)
        if 0.0 <= value <= _SECONDS_UP_TO and value % 1.0 * 1e6 % 1.0 != 0.5:
            ts = datetime.fromtimestamp(value, UTC)
    elif kind is str:
        if _ISO_FAST.fullmatch(value) is not None:
            try:
                ts = datetime.fromisoformat(value)
                # fromisoformat reads "Z" as the UTC object itself: nothing to do.
                if ts.tzinfo is not UTC:
                    ts = ts.astimezone(UTC)
            except (ValueError, OverflowError):  # 2023-02-30, 24:00, < year 1 in UTC
                ts = None
    elif kind is int and 0 <= value <= _MILLISECONDS_UP_TO:
        if value <= _SECONDS_UP_TO:
            ts = datetime.fromtimestamp(value, UTC)
        else:
            ts = _EPOCH + timedelta(milliseconds=value)
    return ts


# Model ids seen valid: a set lookup instead of the regex (0.05 vs 0.5 us). A
# deployment serves a handful of models; the bound only keeps a producer that
# sends endless distinct ids from growing it.
_VALID_MODEL_IDS: Final[set[str]] = set()
_VALID_MODEL_IDS_MAX: Final = 1024


def _model_id_ok(value: Any) -> bool:
    if type(value) is not str:
        return False
    if value in _VALID_MODEL_IDS:
        return True
    if _MODEL_ID.fullmatch(value) is None:
        return False
    if len(_VALID_MODEL_IDS) < _VALID_MODEL_IDS_MAX:
        _VALID_MODEL_IDS.add(value)
    return True


# The fields model_validate records as set (model_dump's exclude_unset and
# model_copy read them): the required ones, plus the optional ones present.
_PREDICTION_REQUIRED: Final = frozenset(
    {"event_id", "model_id", "model_version", "ts", "features", "prediction"}
)
_OUTCOME_REQUIRED: Final = frozenset({"event_id", "ts", "actual"})


def _fast_prediction(wire: _WireInput) -> PredictionEvent | None:
    event_id = wire.event_id
    version = wire.model_version
    features = wire.features
    prediction = wire.prediction
    model_id = wire.model_id
    if (
        event_id is UNSET
        or version is UNSET
        or features is UNSET
        or prediction is UNSET
        or type(model_id) is not str
        or not (model_id in _VALID_MODEL_IDS or _model_id_ok(model_id))
    ):
        return None
    ts = _fast_ts(wire.ts)
    if ts is None:
        return None
    fields_set = set(_PREDICTION_REQUIRED)
    if wire.type is not UNSET:
        fields_set.add("type")
    score = wire.score
    if score is UNSET:
        score = None
    else:
        fields_set.add("score")
    return _trusted(
        PredictionEvent,
        {
            "type": "prediction",
            "event_id": event_id,
            "model_id": model_id,
            "model_version": version,
            "ts": ts,
            "features": features,
            "prediction": prediction,
            "score": score,
        },
        fields_set,
    )


def _fast_outcome(wire: _WireInput) -> OutcomeEvent | None:
    event_id = wire.event_id
    actual = wire.actual
    model_id = wire.model_id
    if event_id is UNSET or actual is UNSET:
        return None
    fields_set = set(_OUTCOME_REQUIRED)
    if model_id is UNSET:
        model_id = None
    else:
        fields_set.add("model_id")
        if model_id is not None and not _model_id_ok(model_id):
            return None
    ts = _fast_ts(wire.ts)
    if ts is None:
        return None
    if wire.type is not UNSET:
        fields_set.add("type")
    return _trusted(
        OutcomeEvent,
        {"type": "outcome", "event_id": event_id, "ts": ts, "actual": actual, "model_id": model_id},
        fields_set,
    )


def _fast_input(
    raw: bytes | str, default_type: Literal["prediction", "outcome"] | None
) -> InputEvent | None:
    """The event ``decode_input(raw, default_type)`` gives, if the fast path is sure of it.

    None means "ask pydantic": the input may be valid or not.

    >>> _fast_input(b'{"event_id": "e", "ts": 0, "actual": 1}', "outcome").actual
    1
    >>> _fast_input(b'{"event_id": "e", "ts": "0", "actual": 1}', "outcome") is None
    True
    >>> _fast_input(b'{"event_id": "e", "ts": 0, "actual": 1, "x": 1}', "outcome") is None
    True
    """
    try:
        wire = _decode_wire(raw)
    except (msgspec.DecodeError, ValueError):  # ValueError: a str that UTF-8 cannot encode
        return None
    kind = default_type if wire.type is UNSET else wire.type
    if kind == "prediction":
        return _fast_prediction(wire)
    if kind == "outcome":
        return _fast_outcome(wire)
    return None


def encode(event: BaseModel) -> bytes:
    """The wire form of any event: compact UTF-8 JSON, fields in declaration order.

    Deterministic: equal events give equal bytes.

    >>> encode(OutcomeEvent(event_id="e", ts=0, actual=1))
    b'{"type":"outcome","event_id":"e","ts":"1970-01-01T00:00:00Z","actual":1,"model_id":null}'
    """
    if type(event) in _FLAT_EVENTS:
        # Flat events (no nested models): orjson writes the fields as they are,
        # UTC datetimes with pydantic's "Z" form. One per join goes this way;
        # tests/test_events.py checks the bytes equal the model_dump path.
        return orjson.dumps(event.__dict__, option=orjson.OPT_UTC_Z)
    return orjson.dumps(event.model_dump(mode="json"))


# Models whose fields are all JSON-native for orjson (str, numbers, bool, None,
# flat dicts of those, UTC datetimes); nested models need model_dump.
_FLAT_EVENTS: Final = frozenset({LabeledEvent, PredictionEvent, OutcomeEvent})


def loads(raw: bytes | str) -> Any:
    """Plain JSON parsing for the rest of the package (orjson lives here only)."""
    return orjson.loads(raw)


def dumps(value: Any, *, sort_keys: bool = True) -> bytes:
    """Plain JSON writing for the rest of the package, keys sorted unless the
    caller's own order is the point (events as a producer writes them)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)


def _schema(name: str, model: type[BaseModel]) -> dict[str, Any]:
    # Inputs: what a producer may send; outputs: what the engine writes.
    return model.model_json_schema(mode="validation" if name in _INPUT_MODELS else "serialization")


def json_schemas(name: str | None = None) -> str:
    """JSON Schema of one event (by its ``type``) or, with None, of all of them.

    >>> import json
    >>> json.loads(json_schemas("outcome"))["properties"]["type"]["const"]
    'outcome'
    >>> sorted(json.loads(json_schemas()))[:3]
    ['dead_letter', 'drift_alert', 'labeled_event']
    """
    if name is None:
        doc: dict[str, Any] = {key: _schema(key, model) for key, model in _ALL_MODELS.items()}
    else:
        model = _ALL_MODELS.get(name)
        if model is None:
            known = ", ".join(_ALL_MODELS)
            raise ValueError(f"unknown event type {name!r}; known: {known}")
        doc = _schema(name, model)
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def utc_datetime(epoch: float) -> datetime:
    """Event time back from epoch seconds, as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, tz=UTC)
