"""Outcome signals: the positive rate or target (prior shift), and errors per actual class.

Findings (issue 16): a change in the fraud rate was no signal; for a fraud model
with 1% positives, losing half the frauds barely moved the error rate.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from stream_mlops.config import Settings, parse_settings
from stream_mlops.engine import Engine
from stream_mlops.events import DriftAlert, InputEvent, OutcomeEvent, PredictionEvent

T0 = 1_800_000_000


def fraud(
    n: int,
    *,
    prevalence: Callable[[int], float] = lambda i: 0.01,
    recall: Callable[[int], float] = lambda i: 0.8,
    false_positive_rate: float = 0.02,
    seed: int = 0,
) -> Iterator[InputEvent]:
    """A fraud classifier's predictions, each followed by its outcome."""
    rng = random.Random(seed)
    for i in range(n):
        actual = rng.random() < prevalence(i)
        flagged = rng.random() < (recall(i) if actual else false_positive_rate)
        score = rng.uniform(0.5, 1.0) if flagged else rng.uniform(0.0, 0.5)
        yield PredictionEvent(
            event_id=f"e{i}",
            model_id="fraud",
            model_version="v1",
            ts=T0 + i,
            features={"amount": rng.lognormvariate(3.0, 1.0)},
            prediction=int(flagged),
            score=score,
        )
        yield OutcomeEvent(event_id=f"e{i}", ts=T0 + i + 0.5, actual=int(actual))


def drift_alerts(engine: Engine, events: Iterator[InputEvent]) -> list[DriftAlert]:
    return [
        o
        for e in events
        for o in engine.process(e)
        if isinstance(o, DriftAlert) and o.severity == "drift"
    ]


def _at(alert: DriftAlert) -> int:
    return int(alert.trigger_event_id.removeprefix("e"))


def test_recall_falling_from_80_to_40_percent_at_1_percent_prevalence_is_a_miss_rate_alert() -> (
    None
):
    change = 80_000
    engine = Engine(Settings())
    alerts = drift_alerts(
        engine, fraud(110_000, recall=lambda i: 0.8 if i < change else 0.4, seed=1)
    )
    signals = [a.signal for a in alerts]
    assert signals == ["miss_rate"], signals
    alert = alerts[0]
    # About 100 frauds a 10,000 predictions: found within a few hundred frauds.
    assert 0 < _at(alert) - change < 20_000
    assert alert.stats.mean_before is not None and 0.1 < alert.stats.mean_before < 0.3
    assert alert.stats.mean_after is not None and 0.4 < alert.stats.mean_after < 0.8
    # The plain error moved from about 2.2% to 2.4%: no alert on it.
    assert "error" not in engine.stats.alerts_by_signal


def test_a_prior_shift_is_an_outcome_alert_before_any_error_alert() -> None:
    change = 20_000
    engine = Engine(Settings())
    alerts = drift_alerts(
        engine, fraud(40_000, prevalence=lambda i: 0.01 if i < change else 0.03, seed=2)
    )
    assert alerts and alerts[0].signal == "outcome"
    assert 0 < _at(alerts[0]) - change < 5_000
    assert alerts[0].stats.mean_after is not None and alerts[0].stats.mean_after > 0.02


def test_a_regression_targets_mean_shift_is_an_outcome_alert() -> None:
    rng = random.Random(3)
    engine = Engine(Settings())
    change = 10_000
    alerts = []
    for i in range(20_000):
        price = rng.gauss(10.0, 2.0)
        target = 5.0 * price + rng.gauss(0.0 if i < change else 3.0, 1.0)
        prediction = PredictionEvent(
            event_id=f"d{i}",
            model_id="demand",
            model_version="v1",
            ts=T0 + i,
            features={"price": price},
            prediction=5.0 * price,
        )
        for event in (prediction, OutcomeEvent(event_id=f"d{i}", ts=T0 + i, actual=target)):
            alerts += [o for o in engine.process(event) if isinstance(o, DriftAlert)]
    outcome = [a for a in alerts if a.signal == "outcome" and a.severity == "drift"]
    assert outcome, [a.signal for a in alerts]
    assert 0 < int(outcome[0].trigger_event_id.removeprefix("d")) - change < 2_000
    assert outcome[0].stats.mean_before is not None and outcome[0].stats.mean_after is not None
    assert outcome[0].stats.mean_after - outcome[0].stats.mean_before > 1.5


def test_a_stationary_fraud_stream_raises_no_outcome_or_class_error_alert() -> None:
    engine = Engine(Settings())
    assert drift_alerts(engine, fraud(150_000, seed=4)) == []


def test_outcome_signals_can_be_switched_off() -> None:
    settings = parse_settings(
        {"defaults": {"detectors": {"outcome": [], "miss_rate": [], "false_positive_rate": []}}}
    )
    engine = Engine(settings)
    alerts = drift_alerts(
        engine, fraud(30_000, prevalence=lambda i: 0.01 if i < 10_000 else 0.05, seed=5)
    )
    assert not {a.signal for a in alerts} & {"outcome", "miss_rate", "false_positive_rate"}
    assert engine._models[("fraud", "v1")].outcomes == {}
