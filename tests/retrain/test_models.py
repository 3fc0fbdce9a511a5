"""Model factories, feature preparation and the Challenger's predict-then-learn step."""

from __future__ import annotations

import json
import pickle

import pytest

from stream_mlops.model_task import Task
from stream_mlops.retrain import Challenger, ModelSpec, PrequentialScore, RetrainInputError
from stream_mlops.retrain.models import prepare_features, prepare_label
from tests.retrain.streams import demand_stream, fraud_stream


def test_prepared_features_drop_missing_and_turn_bools_into_numbers() -> None:
    assert prepare_features({"a": 1, "b": True, "c": None, "d": "x", "e": 2.5}) == {
        "a": 1.0,
        "b": 1.0,
        "d": "x",
        "e": 2.5,
    }


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"amount": float("inf")}, "features.amount: value must be a finite number"),
        ({"tags": ["a"]}, "features.tags: value must be number, string, bool or null"),
    ],
)
def test_unusable_features_are_named(features: dict[str, object], message: str) -> None:
    with pytest.raises(RetrainInputError, match=message):
        prepare_features(features)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("task", "value"),
    [
        (Task.CLASSIFICATION, 2),
        (Task.CLASSIFICATION, "fraud"),
        (Task.REGRESSION, True),
        (Task.REGRESSION, "12"),
        (Task.REGRESSION, float("nan")),
    ],
)
def test_labels_the_task_cannot_learn_are_refused(task: Task, value: bool | int | str) -> None:
    with pytest.raises(RetrainInputError, match="actual"):
        prepare_label(task, value)


def test_a_challenger_learns_prequentially() -> None:
    """Scored before learning each event, a fresh model ends far below the majority-class error."""
    challenger = Challenger.fresh(ModelSpec.for_task(Task.CLASSIFICATION))
    score = PrequentialScore(Task.CLASSIFICATION)
    frauds = 0
    for event in fraud_stream(3, 4000):
        prediction = challenger.step(event.features, event.actual)
        score.add(prediction, prepare_label(Task.CLASSIFICATION, event.actual))
        frauds += int(event.actual)
    assert score.count == 4000
    majority_error = min(frauds, 4000 - frauds) / 4000
    assert score.mean < 0.7 * majority_error
    assert len(score.losses) == 4000
    assert set(score.losses) == {0.0, 1.0}


def test_a_regression_challenger_beats_predicting_the_mean() -> None:
    challenger = Challenger.fresh(ModelSpec.for_task(Task.REGRESSION))
    events = list(demand_stream(4, 3000))
    for event in events[:2000]:
        challenger.step(event.features, event.actual)
    held_out = events[2000:]
    mean = sum(float(e.actual) for e in held_out) / len(held_out)
    model_error = sum(
        abs(challenger.model.predict_one(prepare_features(e.features)) - float(e.actual))
        for e in held_out
    )
    mean_error = sum(abs(mean - float(e.actual)) for e in held_out)
    assert model_error < 0.5 * mean_error


def test_artifact_bytes_do_not_depend_on_how_features_were_decoded() -> None:
    """Equal feature names from literals or from JSON decoding pickle to the same bytes."""
    spec = ModelSpec.for_task(Task.CLASSIFICATION)
    literal, decoded = Challenger.fresh(spec), Challenger.fresh(spec)
    for event in fraud_stream(5, 300):
        literal.step(event.features, event.actual)
        decoded.step(json.loads(json.dumps(dict(event.features))), event.actual)
    assert literal.artifact() == decoded.artifact()


def test_a_challenger_continues_from_its_parent_bytes() -> None:
    spec = ModelSpec.for_task(Task.CLASSIFICATION)
    parent = Challenger.fresh(spec)
    events = list(fraud_stream(6, 600))
    for event in events[:300]:
        parent.step(event.features, event.actual)
    resumed = Challenger.from_artifact(parent.artifact(), spec)
    for event in events[300:]:
        parent.step(event.features, event.actual)
        resumed.step(event.features, event.actual)
    assert resumed.artifact() == parent.artifact()
    assert pickle.loads(resumed.artifact()).predict_one({"amount": 10.0}) in (True, False)


def test_model_specs_round_trip_through_their_config() -> None:
    spec = ModelSpec(task=Task.REGRESSION, learning_rate=0.02, l2=0.001)
    assert ModelSpec.from_config(spec.to_config()) == spec
    with pytest.raises(ValueError, match="learning_rate"):
        ModelSpec(task=Task.REGRESSION, learning_rate=0.0)
