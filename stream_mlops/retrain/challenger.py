"""The models a retrain compares: a learning challenger and a frozen champion.

Why the champion is frozen: the question a promotion answers is "is the new
version better than the version serving now?", and the serving version does
not learn between model updates (producers hot-swap whole versions). A
champion that learned during the challenge would be a third model that never
served; its losses would understate the drift the serving model suffers and
could keep a needed promotion from happening.
"""

from __future__ import annotations

import pickle
import pickletools
from collections.abc import Mapping
from typing import Protocol

from stream_mlops.events import FeatureValue, LabelValue
from stream_mlops.model_task import Task
from stream_mlops.retrain.inputs import LabeledExample
from stream_mlops.retrain.models import (
    ModelSpec,
    OnlineModel,
    build_model,
    prepare_features,
    prepare_label,
)

# Fixed so the same model gives the same bytes under every Python that can read
# it (5 is the newest protocol of Python 3.8+); part of what reproduce relies on.
PICKLE_PROTOCOL = 5


def load_artifact(artifact: bytes) -> OnlineModel:
    """Unpickle a registered artifact. Only for artifacts from a trusted registry."""
    model: OnlineModel = pickle.loads(artifact)  # the registry is trusted
    return model


def dump_artifact(model: OnlineModel) -> bytes:
    """The model's bytes in canonical form: pickled, unpickled, pickled again.

    Pickle writes a string once per object and refers back to it after, so the
    bytes depend on which equal strings happen to be the same object. A model
    trained in memory and the same model trained after a pickle round trip (a
    retrainer resumed from its parent's bytes or from a snapshot) share
    strings differently and pickle differently. After one round trip the
    sharing is whatever unpickling makes of it, and that is a fixed point, so
    equal models give equal bytes and equal content hashes.
    """
    once = pickle.dumps(model, protocol=PICKLE_PROTOCOL)
    return pickle.dumps(pickle.loads(once), protocol=PICKLE_PROTOCOL)  # our own bytes


# How protocol 4 and later write a set or a frozenset.
_SET_OPCODES = frozenset({"EMPTY_SET", "ADDITEMS", "FROZENSET"})


def keeps_sets(artifact: bytes) -> bool:
    """Whether a pickled model holds sets (river's ``Select``, ``OneHotEncoder``, ...).

    A set of strings iterates in the order of the process's string hash seed,
    so what a model computes from one (the order of a sum, of new dict keys)
    and the bytes it pickles to can differ between processes: a version grown
    from such a parent may not reproduce to the same content hash elsewhere.
    Only protocol 4 and later pickles are read this way (what Python writes
    by default, and ``dump_artifact``).

    >>> keeps_sets(pickle.dumps({"weights": {"a": 1.0}})), keeps_sets(pickle.dumps({"a"}))
    (False, True)
    """
    return any(opcode.name in _SET_OPCODES for opcode, _, _ in pickletools.genops(artifact))


class Challenger:
    """An online model that predicts each labeled event, then learns from it.

    ``step`` is the only way it learns, both while retraining and when a
    version is reproduced, so the two walk the same code path (river's scaler
    adds unseen feature names to its state even on ``predict_one``).

    >>> from stream_mlops.model_task import Task
    >>> challenger = Challenger.fresh(ModelSpec.for_task(Task.CLASSIFICATION))
    >>> challenger.step({"amount": 12.0, "merchant": "grocery"}, 0)
    False
    >>> len(challenger.artifact()) > 0
    True
    """

    def __init__(self, model: OnlineModel, spec: ModelSpec) -> None:
        self.model = model
        self.spec = spec

    @classmethod
    def fresh(cls, spec: ModelSpec) -> Challenger:
        return cls(build_model(spec), spec)

    @classmethod
    def from_artifact(cls, artifact: bytes, spec: ModelSpec) -> Challenger:
        """Continue from a parent version (its bytes, so every start is identical)."""
        return cls(load_artifact(artifact), spec)

    def step(self, features: Mapping[str, FeatureValue], actual: LabelValue) -> bool | float:
        """Predict, then learn; returns the prediction made before learning.

        Raises RetrainInputError for an unusable label or feature, before learning.
        """
        y = prepare_label(self.spec.task, actual)
        x = prepare_features(features)
        prediction = _as_label(self.spec, self.model.predict_one(x))
        self.model.learn_one(x, y)
        return prediction

    def artifact(self) -> bytes:
        return dump_artifact(self.model)


def _as_label(spec: ModelSpec, raw: object) -> bool | float:
    # A classifier that has seen no label yet may predict None: count it as "no
    # fraud" (the majority class), so its first guesses are scored, not skipped.
    if spec.task is Task.CLASSIFICATION:
        return bool(raw) if raw is not None else False
    if raw is None:
        return 0.0
    if isinstance(raw, int | float):
        return float(raw)
    raise TypeError(f"model predicted {raw!r}, expected a number")


class ChampionScorer(Protocol):
    """The champion's answer for a labeled event."""

    def predict(self, example: LabeledExample) -> bool | float: ...


class FrozenChampion:
    """The champion's artifact, predicting without ever learning (see module docstring)."""

    def __init__(self, model: OnlineModel, spec: ModelSpec) -> None:
        self.model = model
        self.spec = spec

    @classmethod
    def from_artifact(cls, artifact: bytes, spec: ModelSpec) -> FrozenChampion:
        return cls(load_artifact(artifact), spec)

    def predict(self, example: LabeledExample) -> bool | float:
        return _as_label(self.spec, self.model.predict_one(prepare_features(example.features)))


class ServedPrediction:
    """The champion's answer as the serving system recorded it in the event.

    For a champion whose artifact the retrainer cannot run (an initial model
    registered from outside). Equivalent to ``FrozenChampion`` when the events
    were predicted by the champion version, since that version is frozen.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    def predict(self, example: LabeledExample) -> bool | float:
        return prepare_label(self.spec.task, example.prediction, field="prediction")
