from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import replace
from typing import Any

import orjson
import pytest

from stream_mlops.simulate.champion import Champion
from stream_mlops.simulate.fraud import (
    MERCHANTS,
    FraudConfig,
    FraudSimulator,
    fraud_probability,
    training_sample,
)
from stream_mlops.simulate.scenario import DriftScenario, LabelDelay
from stream_mlops.simulate.stream import Emission, iso_utc

SCENARIO = DriftScenario("abrupt", at=3000)
CONFIG = FraudConfig(
    seed=3,
    n_events=6000,
    scenario=SCENARIO,
    label_delay=LabelDelay("exponential", mean_s=20.0, missing_fraction=0.1),
    malformed_fraction=0.02,
)


def run(config: FraudConfig, champion: Champion | None = None) -> list[Emission]:
    return list(FraudSimulator(config, champion))


def fingerprint(emissions: list[Emission]) -> list[tuple[Any, ...]]:
    return [(e.at, e.kind, e.key, e.value(), e.defect) for e in emissions]


@pytest.fixture(scope="module")
def stream() -> list[Emission]:
    return run(CONFIG)


def joined(emissions: list[Emission]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """event_id -> (prediction, outcome) of the valid events whose outcome arrived."""
    predictions = {
        e.key: e.payload
        for e in emissions
        if e.kind == "prediction" and isinstance(e.payload, dict)
    }
    return {
        e.key: (predictions[e.key], e.payload)
        for e in emissions
        if e.kind == "outcome" and isinstance(e.payload, dict)
    }


def index_of(event_id: str) -> int:
    return int(event_id.rsplit("-", 1)[1])


def error_rate(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> float:
    return float(sum(p["prediction"] != o["actual"] for p, o in pairs) / len(pairs))


def test_same_seed_same_sequence_other_seed_differs() -> None:
    small = replace(CONFIG, n_events=1500, scenario=DriftScenario("abrupt", at=700))
    first, again = run(small), run(small)
    assert fingerprint(first) == fingerprint(again)
    other = run(replace(small, seed=4))
    assert fingerprint(other) != fingerprint(first)

    def features(emissions: list[Emission]) -> list[Any]:
        return [
            e.payload["features"]
            for e in emissions
            if e.kind == "prediction" and isinstance(e.payload, dict)
        ]

    # not only the ids: the transactions differ too
    assert features(other)[:50] != features(first)[:50]


def test_stream_is_in_event_time_order_and_complete(stream: list[Emission]) -> None:
    times = [e.at for e in stream]
    assert times == sorted(times)
    predictions = [e for e in stream if e.kind == "prediction"]
    assert [e.key for e in predictions] == [f"txn-3-{i:07d}" for i in range(6000)]
    # event time advances at events_per_second
    for i in (0, 1, 2999, 5999):
        assert predictions[i].at == pytest.approx(CONFIG.start_ts + i / CONFIG.events_per_second)
        payload = predictions[i].payload
        if isinstance(payload, dict):
            assert payload["ts"] == iso_utc(predictions[i].at)
    outcomes = Counter(e.key for e in stream if e.kind == "outcome")
    assert max(outcomes.values()) == 1


def test_events_carry_the_contract_fields(stream: list[Emission]) -> None:
    merchants = {m.name for m in MERCHANTS}
    for e in stream[:3000]:
        if not isinstance(e.payload, dict):
            continue
        event = orjson.loads(e.value())
        assert event["event_id"] == e.key
        if e.kind == "prediction":
            assert event["type"] == "prediction"
            assert (event["model_id"], event["model_version"]) == ("fraud", "v1")
            assert event["prediction"] in (0, 1)
            assert 0.0 <= event["score"] <= 1.0
            assert event["prediction"] == int(event["score"] >= 0.5)
            f = event["features"]
            assert f["merchant"] in merchants
            assert f["amount"] > 0 and 0 <= f["hour"] <= 23
            assert isinstance(f["card_present"], bool)
            assert f["velocity_1h"] >= 1 and f["distance_from_home"] >= 0
        else:
            assert set(event) == {"type", "event_id", "model_id", "ts", "actual"}
            assert event["actual"] in (0, 1)


def test_label_delays_follow_the_configured_distribution(stream: list[Emission]) -> None:
    predictions = {e.key: e for e in stream if e.kind == "prediction" and e.defect is None}
    outcomes = {e.key: e for e in stream if e.kind == "outcome"}
    assert set(outcomes) <= set(predictions)
    delays = [outcomes[k].at - predictions[k].at for k in outcomes]
    assert min(delays) >= 0
    assert statistics.mean(delays) == pytest.approx(20.0, rel=0.08)
    assert sum(d > 20.0 for d in delays) / len(delays) == pytest.approx(0.3679, abs=0.03)
    missing = 1 - len(outcomes) / len(predictions)
    assert missing == pytest.approx(0.1, abs=0.02)


def test_malformed_fraction_is_honoured_and_broken_records_get_no_outcome(
    stream: list[Emission],
) -> None:
    broken = [e for e in stream if e.defect is not None]
    assert all(e.kind == "prediction" and isinstance(e.payload, bytes) for e in broken)
    assert len(broken) / 6000 == pytest.approx(0.02, abs=0.006)
    outcome_ids = {e.key for e in stream if e.kind == "outcome"}
    assert not outcome_ids & {e.key for e in broken}
    # Valid events stay the same whatever the malformed fraction.
    clean = run(replace(CONFIG, n_events=1000, malformed_fraction=0.0))
    dirty = run(replace(CONFIG, n_events=1000, malformed_fraction=0.3))
    dirty_valid = {e.key: e.value() for e in dirty if e.kind == "prediction" and not e.defect}
    clean_by_id = {e.key: e.value() for e in clean if e.kind == "prediction"}
    assert 600 < len(dirty_valid) < 800
    assert all(clean_by_id[k] == v for k, v in dirty_valid.items())


def test_champion_errs_more_after_an_abrupt_concept_drift(stream: list[Emission]) -> None:
    pairs = joined(stream)
    before = [p for k, p in pairs.items() if index_of(k) < SCENARIO.at]
    after = [p for k, p in pairs.items() if index_of(k) >= SCENARIO.at]
    error_before, error_after = error_rate(before), error_rate(after)
    fraud_before = sum(o["actual"] for _, o in before) / len(before)
    fraud_after = sum(o["actual"] for _, o in after) / len(after)
    assert 0.01 <= fraud_before <= 0.03
    # Before the drift the champion beats "never fraud"; after it, it does worse.
    assert error_before < 0.8 * fraud_before
    assert error_after > fraud_after
    assert error_after > 3 * error_before


def test_recurring_drift_comes_and_goes() -> None:
    config = FraudConfig(
        seed=3,
        n_events=8000,
        scenario=DriftScenario("recurring", at=2000, span=1500),
        label_delay=LabelDelay("fixed", 1.0),
    )
    pairs = joined(run(config))
    on = [
        p
        for k, p in pairs.items()
        if ((index_of(k) - 2000) // 1500) % 2 == 0 and index_of(k) >= 2000
    ]
    off = [p for k, p in pairs.items() if ((index_of(k) - 2000) // 1500) % 2 == 1]
    assert error_rate(on) > 2 * error_rate(off)


def test_covariate_drift_moves_the_features_not_the_concept() -> None:
    config = FraudConfig(
        seed=3,
        n_events=6000,
        scenario=DriftScenario("abrupt", at=3000, concept=False, covariate=True),
    )
    pairs = joined(run(config))
    before = [p["features"] for k, (p, _) in pairs.items() if index_of(k) < 3000]
    after = [(p["features"], o["actual"]) for k, (p, o) in pairs.items() if index_of(k) >= 3000]

    def online_share(fs: list[dict[str, Any]]) -> float:
        return sum(f["merchant"] in ("online_retail", "digital_goods") for f in fs) / len(fs)

    def median_amount(fs: list[dict[str, Any]]) -> float:
        return float(statistics.median(f["amount"] for f in fs))

    after_features = [f for f, _ in after]
    assert online_share(after_features) > 1.5 * online_share(before)
    assert median_amount(after_features) > 1.2 * median_amount(before)

    # The labels still follow the pre-drift concept: observed frauds match its
    # expectation within 3 standard deviations, and not the post-drift concept's.
    frauds = sum(actual for _, actual in after)
    p_old = [fraud_probability(f) for f in after_features]
    p_new = [fraud_probability(f, after_drift=True) for f in after_features]
    sd_old = sum(p * (1 - p) for p in p_old) ** 0.5
    assert abs(frauds - sum(p_old)) < 3 * sd_old
    assert abs(frauds - sum(p_new)) > 3 * sd_old


def test_ground_truth_shifts_under_concept_drift() -> None:
    before = training_sample(9, 20_000)
    after = training_sample(9, 20_000, after_drift=True)
    rate_before = sum(a for _, a in before) / len(before)
    rate_after = sum(a for _, a in after) / len(after)
    assert 0.01 < rate_before < 0.03 < rate_after
    # the new fraud is small card-not-present digital goods
    fraud_after = [f for f, a in after if a]
    digital = sum(f["merchant"] == "digital_goods" for f in fraud_after) / len(fraud_after)
    assert digital > 0.3


class AlwaysFraud:
    def predict_one(self, x: dict[str, Any]) -> bool:
        return True

    def predict_proba_one(self, x: dict[str, Any]) -> dict[bool, float]:
        return {False: 0.1, True: 0.9}


def test_swap_takes_effect_from_the_next_prediction() -> None:
    config = FraudConfig(seed=3, n_events=400, label_delay=LabelDelay("fixed", 0.5))
    simulator = FraudSimulator(config)
    seen: list[Emission] = []
    for emission in simulator:
        seen.append(emission)
        if emission.kind == "prediction" and emission.key == "txn-3-0000199":
            simulator.champion.swap(AlwaysFraud(), "v2")
    predictions = [e.payload for e in seen if e.kind == "prediction"]
    assert all(isinstance(p, dict) for p in predictions)
    versions = [p["model_version"] for p in predictions if isinstance(p, dict)]
    assert versions == ["v1"] * 200 + ["v2"] * 200
    after = [p for p in predictions[200:] if isinstance(p, dict)]
    assert {(p["prediction"], p["score"]) for p in after} == {(1, 0.9)}
