"""The model a simulated scoring service serves, and the hook to replace it.

A scoring service holds one ``Champion``: the model id, the version it
publishes with every prediction, and the model. The retrainer promotes a new
version through the ``model-updates`` topic; whoever listens to it calls
``Champion.swap(model, version)``, and every prediction scored after that
carries the new version (the engine then starts fresh detectors for it).

Any river model already fits ``Scorer`` (``predict_one``) and river
classifiers fit ``ClassifierScorer`` (``predict_proba_one`` returns
``{label: probability}``), so a model loaded from the registry can be swapped
in as it is.

>>> class Always:
...     def predict_one(self, x): return 1.0
>>> champion = Champion("demand", "v1", Always())
>>> champion.swap(Always(), "v2")
>>> champion.current().version
'v2'
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Scorer(Protocol):
    """A model that predicts one event from its features (a regression value or a label)."""

    def predict_one(self, x: dict[str, Any]) -> Any: ...


@runtime_checkable
class ClassifierScorer(Scorer, Protocol):
    """A classifier that also gives class probabilities, as river's classifiers do."""

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]: ...


@dataclass(frozen=True, slots=True)
class Served:
    """The model being served and the version it publishes under."""

    version: str
    model: Scorer


class Champion:
    """The currently served model of one model id; ``swap`` may be called from any thread."""

    def __init__(self, model_id: str, version: str, model: Scorer) -> None:
        self.model_id = model_id
        self._lock = threading.Lock()
        self._served = Served(version, model)
        self.swaps = 0

    def current(self) -> Served:
        """Read once per event: the version and model always belong together."""
        with self._lock:
            return self._served

    def swap(self, model: Scorer, version: str) -> None:
        """Serve ``model`` as ``version`` from the next scored event on."""
        if not version:
            raise ValueError("a served model needs a non-empty version")
        with self._lock:
            self._served = Served(version, model)
            self.swaps += 1


def score(model: Scorer, features: dict[str, Any]) -> tuple[Any, float | None]:
    """The published prediction and score of one event (labels 0/1 rather than bools).

    A classifier's prediction is its most probable label, as river's own
    ``predict_one`` does, from a single ``predict_proba_one`` call.
    """
    if isinstance(model, ClassifierScorer):
        proba = model.predict_proba_one(features)
        label: Any = max(proba, key=proba.__getitem__) if proba else False
        prediction = int(label) if isinstance(label, bool) else label
        # The score is the positive class's probability; with labels other
        # than True/1 there is no positive class to report.
        positive = proba.get(True, proba.get(1))
        if positive is None:
            return prediction, None
        return prediction, round(min(1.0, max(0.0, float(positive))), 6)
    label = model.predict_one(features)
    return (int(label) if isinstance(label, bool) else label), None
