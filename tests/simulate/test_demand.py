from __future__ import annotations

import statistics
from dataclasses import replace
from typing import Any

import pytest

from stream_mlops.simulate.demand import (
    WEEKLY,
    WEEKLY_AFTER,
    DemandConfig,
    DemandSimulator,
    build_series,
)
from stream_mlops.simulate.scenario import DriftScenario
from stream_mlops.simulate.stream import Emission

STORES, ITEMS = 3, 8
SERIES = STORES * ITEMS
CHANGE_DAY = 100
CONFIG = DemandConfig(
    seed=2,
    n_events=SERIES * 160,
    stores=STORES,
    items=ITEMS,
    scenario=DriftScenario("abrupt", at=SERIES * CHANGE_DAY),
)


@pytest.fixture(scope="module")
def stream() -> list[Emission]:
    return list(DemandSimulator(CONFIG))


def pairs(emissions: list[Emission]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    predictions = {e.key: e.payload for e in emissions if e.kind == "prediction"}
    out = []
    for e in emissions:
        if e.kind == "outcome":
            p = predictions[e.key]
            assert isinstance(p, dict) and isinstance(e.payload, dict)
            out.append((p, e.payload))
    return out


def day_of(event_id: str) -> int:
    return int(event_id.rsplit("-d", 1)[1])


def test_same_seed_same_sequence_other_seed_differs() -> None:
    small = replace(CONFIG, n_events=SERIES * 20)
    first = [(e.at, e.kind, e.key, e.value()) for e in DemandSimulator(small)]
    again = [(e.at, e.kind, e.key, e.value()) for e in DemandSimulator(small)]
    other = [(e.at, e.kind, e.key, e.value()) for e in DemandSimulator(replace(small, seed=3))]
    assert first == again
    assert [v for *_, v in other] != [v for *_, v in first]


def test_one_forecast_per_series_and_day_outcome_when_the_day_closes(
    stream: list[Emission],
) -> None:
    predictions = [e for e in stream if e.kind == "prediction"]
    assert len(predictions) == CONFIG.n_events
    assert len({e.key for e in predictions}) == CONFIG.n_events
    assert [e.at for e in stream] == sorted(e.at for e in stream)
    at = {e.key: e.at for e in predictions}
    for e in stream:
        if e.kind == "outcome":
            assert e.at - at[e.key] == CONFIG.seconds_per_day
    event = predictions[0].payload
    assert isinstance(event, dict)
    assert event["model_id"] == "demand" and "score" not in event
    assert isinstance(event["prediction"], float) and event["prediction"] > 0
    assert set(event["features"]) == {"store", "item", "day_of_week", "promo", "price"}


def test_weekly_seasonality_before_the_change(stream: list[Emission]) -> None:
    by_dow: dict[int, list[int]] = {d: [] for d in range(7)}
    for p, o in pairs(stream):
        if day_of(p["event_id"]) < CHANGE_DAY and not p["features"]["promo"]:
            by_dow[p["features"]["day_of_week"]].append(o["actual"])
    means = {d: statistics.mean(v) for d, v in by_dow.items()}
    saturday, sunday, thursday = means[5], means[6], means[3]
    assert saturday / thursday == pytest.approx(WEEKLY[5] / WEEKLY[3], rel=0.12)
    assert sunday < thursday < saturday


def test_regime_change_drops_the_level_flattens_the_week_and_breaks_the_forecaster(
    stream: list[Emission],
) -> None:
    joined = pairs(stream)
    window = 28
    before = [
        (p, o) for p, o in joined if CHANGE_DAY - window <= day_of(p["event_id"]) < CHANGE_DAY
    ]
    after = [(p, o) for p, o in joined if CHANGE_DAY <= day_of(p["event_id"]) < CHANGE_DAY + window]
    mean_before = statistics.mean(o["actual"] for _, o in before)
    mean_after = statistics.mean(o["actual"] for _, o in after)
    assert mean_after < 0.85 * mean_before

    def saturday_ratio(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> float:
        sat = [o["actual"] for p, o in rows if p["features"]["day_of_week"] == 5]
        thu = [o["actual"] for p, o in rows if p["features"]["day_of_week"] == 3]
        return float(statistics.mean(sat) / statistics.mean(thu))

    assert saturday_ratio(before) > 1.25
    assert saturday_ratio(after) == pytest.approx(WEEKLY_AFTER[5] / WEEKLY_AFTER[3], abs=0.15)

    def mae(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> float:
        return float(statistics.mean(abs(p["prediction"] - o["actual"]) for p, o in rows))

    assert mae(after) > 2 * mae(before)
    # the forecaster was good before: within a quarter of the mean demand
    assert mae(before) < 0.25 * mean_before


def test_pantry_staples_rise_while_the_rest_falls(stream: list[Emission]) -> None:
    pantry = {s.item for s in build_series(CONFIG.seed, STORES, ITEMS) if s.pantry}
    assert pantry
    joined = pairs(stream)

    def mean_units(staple: bool, after: bool) -> float:
        return float(
            statistics.mean(
                o["actual"]
                for p, o in joined
                if (p["features"]["item"] in pantry) == staple
                and (day_of(p["event_id"]) >= CHANGE_DAY) == after
            )
        )

    assert mean_units(staple=True, after=True) > 1.2 * mean_units(staple=True, after=False)
    assert mean_units(staple=False, after=True) < 0.7 * mean_units(staple=False, after=False)


def test_covariate_drift_raises_prices_and_promotions() -> None:
    config = replace(
        CONFIG,
        n_events=SERIES * 60,
        scenario=DriftScenario("abrupt", at=SERIES * 30, concept=False, covariate=True),
    )
    features = [
        (day_of(e.key), e.payload["features"])
        for e in DemandSimulator(config)
        if e.kind == "prediction" and isinstance(e.payload, dict)
    ]
    promo_before = statistics.mean(f["promo"] for d, f in features if d < 30)
    promo_after = statistics.mean(f["promo"] for d, f in features if d >= 30)
    assert promo_after > 2 * promo_before
