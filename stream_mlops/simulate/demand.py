"""A demand-forecasting system: daily unit sales per (store, item), and a forecaster.

Every simulated day, the forecaster predicts that day's demand for each
(store, item) series (one prediction event each); the actual demand is
published as the outcome once the day has closed (plus an optional label
delay). Demand has a per-store level, a per-item factor, a slow upward trend,
weekly seasonality (a Saturday peak, a quiet Sunday), promotions and noise.

The drift is a regime change of the kind that broke demand models in 2020:
from the drift on, most items sell about half as much, pantry staples sell
more (stockpiling), and the weekly pattern flattens as shopping spreads over
the week. A forecaster trained before it over-forecasts most series, so its
absolute error jumps. With ``covariate``, promotions become more frequent and
prices rise, without changing how demand responds to them.

>>> sim = DemandSimulator(DemandConfig(seed=1, n_events=3, stores=1, items=3))
>>> for e in sim:
...     print(e.kind, e.key, e.payload["ts"])
prediction dem-1-s1-i01-d0000 2026-11-27T00:00:00.000Z
prediction dem-1-s1-i02-d0000 2026-11-27T00:00:00.000Z
prediction dem-1-s1-i03-d0000 2026-11-27T00:00:00.000Z
outcome dem-1-s1-i01-d0000 2026-11-28T00:00:00.000Z
outcome dem-1-s1-i02-d0000 2026-11-28T00:00:00.000Z
outcome dem-1-s1-i03-d0000 2026-11-28T00:00:00.000Z
"""

from __future__ import annotations

import functools
import math
import pickle
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from river import compose, linear_model, optim

from stream_mlops.simulate.champion import Champion, score
from stream_mlops.simulate.malformed import corrupt
from stream_mlops.simulate.scenario import DriftScenario, LabelDelay
from stream_mlops.simulate.stream import DEFAULT_START_TS, Emission, EventDict, Timeline, iso_utc

SECONDS_PER_DAY: Final = 86_400.0

# Relative demand by day of week, Monday first.
WEEKLY: Final = (0.85, 0.90, 0.95, 1.00, 1.15, 1.40, 0.75)
# After the regime change the week flattens: no Saturday rush, Sunday catches up.
WEEKLY_AFTER: Final = (1.05, 1.00, 1.00, 1.00, 1.00, 0.95, 1.00)
# Most items lose about half their demand; every PANTRY_EVERY-th item is a
# staple that people stockpile.
LEVEL_AFTER: Final = 0.5
PANTRY_LEVEL_AFTER: Final = 1.4
PANTRY_EVERY: Final = 4
# +0.03 % a day, about +11 % a year: slow enough that a model without a trend
# term stays good for months.
TREND_PER_DAY: Final = 0.0003
PROMO_LIFT: Final = 1.5
PROMO_RATE: Final = 0.10
PROMO_RATE_SHIFTED: Final = 0.30
PRICE_SHIFTED: Final = 1.15  # general price increase under covariate drift
PROMO_DISCOUNT: Final = 0.8
# Noise: multiplicative (weather, local events), sd 15 %, then Poisson-like
# count noise (a normal with the mean's variance).
DAILY_NOISE_SIGMA: Final = 0.15


class Series(NamedTuple):
    """One (store, item) demand series and its fixed parameters."""

    store: str
    item: str
    level: float  # mean daily units on a normal Thursday before the drift
    price: float
    pantry: bool


@dataclass(frozen=True, slots=True)
class DemandConfig:
    """What to simulate. One event is one day's forecast of one series."""

    seed: int = 0
    n_events: int = 10_000
    stores: int = 4
    items: int = 8
    #: event-time length of a simulated day (shorter than 86400 compresses the calendar)
    seconds_per_day: float = SECONDS_PER_DAY
    start_ts: float = DEFAULT_START_TS
    #: at/span count events; a day's series share the regime drawn at its first event
    scenario: DriftScenario = field(default_factory=DriftScenario)
    #: extra delay after the day closes before its actual demand is published
    label_delay: LabelDelay = field(default_factory=lambda: LabelDelay("fixed", 0.0))
    malformed_fraction: float = 0.0
    model_id: str = "demand"
    model_version: str = "v1"

    def __post_init__(self) -> None:
        if self.n_events < 0:
            raise ValueError(f"n_events must be >= 0, not {self.n_events}")
        if self.stores < 1 or self.items < 1:
            raise ValueError("stores and items must be >= 1")
        if not self.seconds_per_day > 0:
            raise ValueError(f"seconds_per_day must be > 0, not {self.seconds_per_day}")
        if not 0.0 <= self.malformed_fraction <= 1.0:
            raise ValueError(f"malformed_fraction must be in [0, 1], not {self.malformed_fraction}")

    @property
    def n_series(self) -> int:
        return self.stores * self.items


def build_series(seed: int, stores: int, items: int) -> list[Series]:
    """The series of a world: store sizes, item popularity and prices, fixed per seed."""
    rng = random.Random(f"demand-world:{seed}")
    store_size = [math.exp(rng.gauss(math.log(40.0), 0.4)) for _ in range(stores)]
    item_pop = [math.exp(rng.gauss(0.0, 0.6)) for _ in range(items)]
    item_price = [round(rng.uniform(1.0, 20.0), 2) for _ in range(items)]
    return [
        Series(
            store=f"s{s + 1}",
            item=f"i{i + 1:02d}",
            level=store_size[s] * item_pop[i],
            price=item_price[i],
            pantry=i % PANTRY_EVERY == 0,
        )
        for s in range(stores)
        for i in range(items)
    ]


def expected_demand(
    series: Series, day: int, day_of_week: int, promo: bool, *, after_drift: bool = False
) -> float:
    """Mean units sold for one series on one day (before noise)."""
    level = series.level * (1.0 + TREND_PER_DAY * day)
    if after_drift:
        level *= PANTRY_LEVEL_AFTER if series.pantry else LEVEL_AFTER
    weekly = (WEEKLY_AFTER if after_drift else WEEKLY)[day_of_week]
    return level * weekly * (PROMO_LIFT if promo else 1.0)


def sample_day(
    series: Series,
    day: int,
    day_of_week: int,
    rng: random.Random,
    *,
    after_drift: bool = False,
    shifted: bool = False,
) -> tuple[dict[str, Any], int]:
    """One series-day: the forecaster's features and the units actually sold."""
    promo = rng.random() < (PROMO_RATE_SHIFTED if shifted else PROMO_RATE)
    price = series.price * (PRICE_SHIFTED if shifted else 1.0) * (PROMO_DISCOUNT if promo else 1.0)
    mean = expected_demand(series, day, day_of_week, promo, after_drift=after_drift)
    mean *= math.exp(rng.gauss(0.0, DAILY_NOISE_SIGMA))
    units = max(0, round(rng.gauss(mean, math.sqrt(mean))))
    features = {
        "store": series.store,
        "item": series.item,
        "day_of_week": day_of_week,
        "promo": promo,
        "price": round(price, 2),
    }
    return features, units


def model_inputs(features: dict[str, Any]) -> dict[str, Any]:
    """What the bootstrap forecaster sees (module level so the pipeline pickles)."""
    return {
        "store": str(features.get("store")),
        "item": str(features.get("item")),
        "dow": str(features.get("day_of_week")),
        "promo": 1.0 if features.get("promo") else 0.0,
    }


def _log1p(y: float) -> float:
    return math.log1p(max(y, 0.0))


def _expm1(y: float) -> float:
    # Clamped so that a wild model cannot publish an overflowing forecast.
    return math.expm1(min(y, 50.0))


def categorical_indicators(inputs: dict[str, Any]) -> dict[str, float]:
    """Store, item and weekday one-hot, without state (a pipeline step).

    >>> categorical_indicators({"store": "s1", "item": "i2", "dow": "3", "promo": 0.0})
    {'store_s1': 1.0, 'item_i2': 1.0, 'dow_3': 1.0}
    """
    return {f"{name}_{inputs[name]}": 1.0 for name in ("store", "item", "dow")}


def promo_input(inputs: dict[str, Any]) -> dict[str, Any]:
    """The promo flag (a pipeline step)."""
    return {"promo": inputs["promo"]}


def new_model() -> Any:
    """An untrained forecaster: one-hot store, item and weekday, promo flag,
    linear regression on log demand (the factors multiply, so their logs add).

    No river ``Select`` or ``OneHotEncoder``: their sets iterate in the order of
    the process's string hash seed (see ``simulate.fraud.new_model``).
    """
    regressor = (
        compose.FuncTransformer(model_inputs)
        | compose.TransformerUnion(
            compose.FuncTransformer(categorical_indicators), compose.FuncTransformer(promo_input)
        )
        | linear_model.LinearRegression(
            optimizer=optim.SGD(BOOTSTRAP_LEARNING_RATE), intercept_lr=BOOTSTRAP_LEARNING_RATE
        )
    )
    return compose.TargetTransformRegressor(
        regressor,  # type: ignore[arg-type]  # river's stubs: a Pipeline is a Regressor here
        func=_log1p,
        inverse_func=_expm1,
    )


BOOTSTRAP_LEARNING_RATE: Final = 0.03
BOOTSTRAP_DAYS: Final = 120
BOOTSTRAP_PASSES: Final = 3


def training_sample(
    seed: int, stores: int, items: int, days: int, *, after_drift: bool = False, first_day: int = 0
) -> list[tuple[dict[str, Any], int]]:
    """``days`` days of every series from one regime, for training and evaluation."""
    rng = random.Random(f"demand-training:{seed}:{first_day}:{after_drift}")
    series = build_series(seed, stores, items)
    start_dow = _day_of_week(DEFAULT_START_TS)
    out = []
    for day in range(first_day, first_day + days):
        dow = (start_dow + day) % 7
        for s in series:
            out.append(sample_day(s, day, dow, rng, after_drift=after_drift))
    return out


@functools.lru_cache(maxsize=8)
def _trained_bootstrap(seed: int, stores: int, items: int) -> bytes:
    model = new_model()
    sample = training_sample(seed, stores, items, BOOTSTRAP_DAYS)
    shuffled = random.Random(f"demand-shuffle:{seed}")
    for _ in range(BOOTSTRAP_PASSES):
        shuffled.shuffle(sample)
        for features, units in sample:
            model.learn_one(features, units)
    return pickle.dumps(model)


def bootstrap_model(seed: int = 0, stores: int = 4, items: int = 8) -> Any:
    """A forecaster trained on the first days of a seeded world, before any drift."""
    return pickle.loads(_trained_bootstrap(seed, stores, items))


def _day_of_week(epoch: float) -> int:
    # 1970-01-01 was a Thursday (weekday 3, Monday = 0).
    return (int(epoch // SECONDS_PER_DAY) + 3) % 7


class DemandSimulator:
    """The forecasting service's output stream; iterate it once.

    Forecasts for day *d* are published at the start of day *d* in event time,
    each actual when day *d* closes (plus the configured label delay).
    """

    def __init__(self, config: DemandConfig, champion: Champion | None = None) -> None:
        self.config = config
        self.champion = champion or Champion(
            config.model_id,
            config.model_version,
            bootstrap_model(config.seed, config.stores, config.items),
        )

    def __iter__(self) -> Iterator[Emission]:
        cfg = self.config
        seed = cfg.seed
        series = build_series(seed, cfg.stores, cfg.items)
        sales_rng = random.Random(f"demand-sales:{seed}")
        drift_rng = random.Random(f"demand-drift:{seed}")
        delay_rng = random.Random(f"demand-delay:{seed}")
        malformed_rng = random.Random(f"demand-malformed:{seed}")
        start_dow = _day_of_week(cfg.start_ts)
        timeline = Timeline()
        after = False
        for i in range(cfg.n_events):
            day, j = divmod(i, cfg.n_series)
            ts = cfg.start_ts + day * cfg.seconds_per_day
            yield from timeline.due(ts)
            if j == 0:
                after = drift_rng.random() < cfg.scenario.post_drift_weight(i)
            s = series[j]
            features, units = sample_day(
                s,
                day,
                (start_dow + day) % 7,
                sales_rng,
                after_drift=after and cfg.scenario.concept,
                shifted=after and cfg.scenario.covariate,
            )
            delay = cfg.label_delay.sample(delay_rng)
            broken = malformed_rng.random() < cfg.malformed_fraction
            event_id = f"dem-{seed}-{s.store}-{s.item}-d{day:04d}"
            served = self.champion.current()
            prediction, _ = score(served.model, features)
            event: EventDict = {
                "type": "prediction",
                "event_id": event_id,
                "model_id": cfg.model_id,
                "model_version": served.version,
                "ts": iso_utc(ts),
                "features": features,
                "prediction": round(float(prediction), 3),
            }
            if broken:
                raw, defect = corrupt(event, malformed_rng)
                yield Emission(ts, "prediction", event_id, raw, defect)
                continue
            yield Emission(ts, "prediction", event_id, event)
            if delay is not None:
                outcome_ts = ts + cfg.seconds_per_day + delay
                outcome: EventDict = {
                    "type": "outcome",
                    "event_id": event_id,
                    "model_id": cfg.model_id,
                    "ts": iso_utc(outcome_ts),
                    "actual": units,
                }
                timeline.schedule(Emission(outcome_ts, "outcome", event_id, outcome))
        yield from timeline.drain()
