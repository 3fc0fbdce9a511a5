"""Limits with defaults in the configuration ([limits]), and idle model versions retired.

Each adversarial input of issue 13 (finding 6) was accepted and kept before:
a 1 MB model_version, a 10 MB string feature, a 100,000-character feature
name, records with 50,000 new feature names, 30,000 model ids kept forever.
"""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from stream_mlops import offline
from stream_mlops.config import Settings, parse_settings
from stream_mlops.engine import Engine
from stream_mlops.events import LabeledEvent, OutcomeEvent, PredictionEvent, decode_input
from stream_mlops.limits import EventLimitError
from tests.streams import T0


def prediction(**fields: Any) -> PredictionEvent:
    doc = {
        "type": "prediction",
        "event_id": "e1",
        "model_id": "fraud",
        "model_version": "v1",
        "ts": T0,
        "features": {"amount": 1.0},
        "prediction": 1,
        "score": 0.5,
        **fields,
    }
    event = decode_input(orjson.dumps(doc))
    assert isinstance(event, PredictionEvent)
    return event


def outcome(**fields: Any) -> OutcomeEvent:
    doc = {"type": "outcome", "event_id": "e1", "ts": T0 + 1, "actual": 1, **fields}
    event = decode_input(orjson.dumps(doc))
    assert isinstance(event, OutcomeEvent)
    return event


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            prediction(model_version="v" * 1_000_000),
            r"^model_version: 1000000 characters, over \[limits\] max_name_length=256$",
        ),
        (
            prediction(features={"note": "x" * 10_000_000}),
            r"^features.note: a string of 10000000 characters, over \[limits\] "
            r"max_string_length=1024$",
        ),
        (
            prediction(features={"f" * 100_000: 1.0}),
            r"^features: the name 'fffff.*'\.\.\. has 100000 characters, over \[limits\] "
            r"max_name_length=256$",
        ),
        (
            prediction(features={f"new-{i}": 1.0 for i in range(50_000)}),
            r"^features: 50000 of them, over \[limits\] max_features_per_event=1000$",
        ),
        (
            prediction(prediction="label" * 1000),
            r"^prediction: a string of 5000 characters, over \[limits\] max_string_length=1024$",
        ),
        (
            outcome(actual="label" * 1000),
            r"^actual: a string of 5000 characters, over \[limits\] max_string_length=1024$",
        ),
    ],
    ids=[
        "1MB-model-version",
        "10MB-string-feature",
        "100k-character-name",
        "50k-features",
        "long-prediction",
        "long-actual",
    ],
)
def test_an_event_beyond_a_limit_is_refused_before_anything_is_kept(
    event: PredictionEvent | OutcomeEvent, reason: str
) -> None:
    engine = Engine(Settings())
    with pytest.raises(EventLimitError, match=reason) as info:
        engine.process(event)
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 200  # the reason quotes, it does not copy
    stats = engine.stats
    assert (stats.predictions, stats.outcomes, stats.pending) == (0, 0, 0)
    assert not engine._models


def test_a_name_with_a_newline_stays_on_one_line() -> None:
    settings = parse_settings({"limits": {"max_string_length": 3}})
    with pytest.raises(EventLimitError) as info:
        Engine(settings).process(prediction(features={"a\nb": "long"}))
    assert str(info.value) == (
        "features.'a\\nb': a string of 4 characters, over [limits] max_string_length=3"
    )


def test_event_ids_are_bounded_by_the_setting_below_the_contract() -> None:
    settings = parse_settings({"limits": {"max_name_length": 8}})
    with pytest.raises(EventLimitError, match=r"^event_id: 9 characters"):
        Engine(settings).process(outcome(event_id="123456789"))


def test_features_beyond_the_model_limit_are_counted_and_the_prediction_kept() -> None:
    settings = parse_settings({"limits": {"max_features_per_model": 2}})
    engine = Engine(settings)
    features = {"a": 1.0, "b": "x", "c": 2.0, "d": "y"}
    for i in range(10):
        engine.process(prediction(event_id=f"e{i}", ts=T0 + i, features=features))
    (state,) = engine._models.values()
    assert sorted([*state.features, *state.categorical]) == ["a", "b"]
    assert engine.stats.untracked_feature_values == 20
    assert engine.take_notices() == [
        "fraud v1: more than 2 features; the others are counted, not tracked "
        "([limits] max_features_per_model)"
    ]
    assert engine.take_notices() == []  # once per model version
    outputs = engine.process(outcome(event_id="e3", ts=T0 + 20))
    assert [type(o) for o in outputs] == [LabeledEvent]  # the prediction was kept


def _predictions_of(
    models: int, start: float, *, per_model: int = 1, prefix: str = "m"
) -> list[PredictionEvent]:
    return [
        prediction(event_id=f"{prefix}{m}-{start}-{k}", model_id=f"{prefix}{m}", ts=start + m + k)
        for k in range(per_model)
        for m in range(models)
    ]


def test_a_new_model_version_beyond_the_limit_is_refused_while_all_serve() -> None:
    settings = parse_settings({"limits": {"max_models_per_task": 3}, "join": {"ttl_seconds": 100}})
    engine = Engine(settings)
    for event in _predictions_of(3, T0):
        engine.process(event)
    with pytest.raises(EventLimitError, match=r"max_models_per_task=3 \(none idle"):
        engine.process(prediction(event_id="x", model_id="m9", ts=T0 + 5))
    engine.process(prediction(event_id="y", model_id="m1", ts=T0 + 6))  # a known one is fine
    # Once the three have been idle for the TTL, they make room.
    engine.process(prediction(event_id="z", model_id="m9", ts=T0 + 500))
    assert set(engine._models) == {("m9", "v1")}
    assert engine.stats.versions_retired == 3


def test_idle_models_are_retired_after_the_ttl_with_their_policy_state() -> None:
    settings = parse_settings(
        {
            "join": {"ttl_seconds": 3600},
            "defaults": {"min_observations": 0, "retrain_interval_seconds": 60},
        }
    )
    engine = Engine(settings)
    day = 86400.0
    # Ten days, 300 new model ids a day, each seen for an hour: only about a
    # day's worth may be kept at any time (the sweep runs every 10,000 events).
    for d in range(10):
        for event in _predictions_of(300, T0 + d * day, per_model=40, prefix=f"day{d}-"):
            engine.process(event)
        assert len(engine._models) <= 300 + 10_000 // 40
    assert engine.stats.versions_retired >= 9 * 300
    live = {model_id for model_id, _ in engine._models}
    assert {k[0] for k in engine._policy._signals} <= live
    assert set(engine._model_settings) <= live


def test_the_policy_forgets_retired_versions_and_spent_rate_limits() -> None:
    engine = Engine(Settings())
    policy = engine._policy
    policy._signals = {("a", "v1", "error"): object(), ("b", "v1", "error"): object()}  # type: ignore[dict-item]
    policy._last_retrain = {"a": 100.0, "b": 100.0}
    policy.forget([("a", "v1")], {"a": 50.0}, now=200.0)
    assert list(policy._signals) == [("b", "v1", "error")]
    assert policy._last_retrain == {"b": 100.0}
    policy.forget([], {"b": 500.0}, now=200.0)  # still limiting: kept
    assert policy._last_retrain == {"b": 100.0}


def test_replay_refuses_over_long_lines_and_reports_notices() -> None:
    settings = parse_settings(
        {"kafka": {"max_record_bytes": 400}, "limits": {"max_features_per_model": 1}}
    )
    lines = [
        orjson.dumps({**prediction().model_dump(mode="json"), "features": {"a": 1.0, "b": 2.0}}),
        orjson.dumps({**prediction().model_dump(mode="json"), "event_id": "x" * 500}),
    ]
    out, errors = io.BytesIO(), io.StringIO()
    result = offline.replay_lines(lines, Engine(settings), out, errors)
    assert result.malformed == 1
    assert "line 2: 656 bytes, over max_record_bytes=400" in errors.getvalue()
    assert "notice: fraud v1: more than 1 features" in errors.getvalue()
    assert "untracked feature values 1" in result.summary()
