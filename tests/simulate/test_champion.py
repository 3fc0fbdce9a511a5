from __future__ import annotations

import pickle
import threading
from typing import Any

import pytest

from stream_mlops.simulate import demand, fraud
from stream_mlops.simulate.champion import Champion, ClassifierScorer, Scorer, score
from stream_mlops.simulate.fraud import bootstrap_model


class Constant:
    def __init__(self, value: float) -> None:
        self.value = value

    def predict_one(self, x: dict[str, Any]) -> float:
        return self.value


def test_river_models_fit_the_protocols() -> None:
    model = bootstrap_model(3)
    assert isinstance(model, Scorer)
    assert isinstance(model, ClassifierScorer)
    assert not isinstance(Constant(1.0), ClassifierScorer)


def test_swap_serves_the_new_model_and_version_together() -> None:
    champion = Champion("demand", "v1", Constant(1.0))
    before = champion.current()
    champion.swap(Constant(2.0), "v2")
    after = champion.current()
    assert (before.version, before.model.predict_one({})) == ("v1", 1.0)
    assert (after.version, after.model.predict_one({})) == ("v2", 2.0)
    assert champion.swaps == 1


def test_swap_refuses_an_empty_version() -> None:
    with pytest.raises(ValueError, match="non-empty version"):
        Champion("demand", "v1", Constant(1.0)).swap(Constant(2.0), "")


def test_concurrent_swaps_never_mix_version_and_model() -> None:
    champion = Champion("demand", "v0", Constant(0.0))

    def swapper(offset: int) -> None:
        for k in range(2000):
            n = offset + k
            champion.swap(Constant(float(n)), f"v{n}")

    threads = [threading.Thread(target=swapper, args=(o,)) for o in (0, 10_000)]
    for t in threads:
        t.start()
    seen = []
    while any(t.is_alive() for t in threads):
        served = champion.current()
        seen.append((served.version, served.model.predict_one({})))
    for t in threads:
        t.join()
    assert all(version == f"v{int(value)}" for version, value in seen)
    assert champion.swaps == 4000


def test_bootstrap_models_pickle_and_clone_for_the_registry() -> None:
    """The registry stores models as pickles and the retrainer clones them."""
    x_fraud = fraud.training_sample(3, 1)[0][0]
    x_demand = demand.training_sample(0, 4, 8, 1)[0][0]
    for model, x in ((fraud.bootstrap_model(3), x_fraud), (demand.bootstrap_model(0), x_demand)):
        restored = pickle.loads(pickle.dumps(model))
        assert restored.predict_one(x) == model.predict_one(x)
        fresh = model.clone()
        fresh.learn_one(x, model.predict_one(x))
        assert fresh.predict_one(x) is not None


class Probabilities:
    def __init__(self, proba: dict[Any, float]) -> None:
        self.proba = proba

    def predict_one(self, x: dict[str, Any]) -> Any:
        raise AssertionError("score() must use one predict_proba_one call")

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        return self.proba


def test_score_of_classifiers_and_regressors() -> None:
    assert score(Probabilities({False: 0.3, True: 0.7}), {}) == (1, 0.7)
    assert score(Probabilities({False: 0.9, True: 0.1}), {}) == (0, 0.1)
    assert score(Probabilities({0: 0.2, 1: 0.8}), {}) == (1, 0.8)
    assert score(Probabilities({"legit": 0.6, "fraud": 0.4}), {}) == ("legit", None)
    assert score(Constant(12.5), {}) == (12.5, None)
