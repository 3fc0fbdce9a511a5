"""Seeded labeled-event streams with and without an abrupt concept change."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from stream_mlops.retrain.inputs import LabeledExample, SourcePosition

TOPIC = "labeled-events"
MERCHANTS = ("grocery", "online", "travel", "fuel")


def _fraud_logit(amount: float, merchant: str, hour: int, *, flipped: bool) -> float:
    # Before the change fraud is large online/travel spend at night; after it, the
    # fraudsters switch to small card-testing amounts at grocery and fuel.
    night = 1.0 if hour < 6 else 0.0
    if not flipped:
        return (
            2.5 * (math.log(amount) - 4.0) + 2.0 * (merchant in ("online", "travel")) + night - 2.0
        )
    return -2.5 * (math.log(amount) - 3.0) + 2.0 * (merchant in ("grocery", "fuel")) + night - 2.0


def fraud_stream(
    seed: int,
    count: int,
    *,
    flipped: bool = False,
    start_offset: int = 0,
    start_ts: float = 1_800_000_000.0,
    model_id: str = "fraud",
    model_version: str = "v1",
) -> Iterator[LabeledExample]:
    """``count`` labeled fraud events, one per second of event time, offsets consecutive."""
    rng = random.Random(seed)
    for i in range(count):
        amount = round(math.exp(rng.gauss(3.5, 1.0)), 2)
        merchant = rng.choice(MERCHANTS)
        hour = rng.randrange(24)
        p = 1.0 / (1.0 + math.exp(-_fraud_logit(amount, merchant, hour, flipped=flipped)))
        actual = int(rng.random() < p)
        offset = start_offset + i
        yield LabeledExample(
            event_id=f"{model_id}-{seed}-{offset}",
            model_id=model_id,
            model_version=model_version,
            ts=start_ts + offset,
            features={"amount": amount, "merchant": merchant, "hour": hour, "note": None},
            prediction=0,
            actual=actual,
            source=SourcePosition(TOPIC, 0, offset),
        )


def demand_stream(
    seed: int,
    count: int,
    *,
    shifted: bool = False,
    start_offset: int = 0,
    start_ts: float = 1_800_000_000.0,
    model_id: str = "demand",
) -> Iterator[LabeledExample]:
    """Regression events: daily demand from price, promotion and weekday."""
    rng = random.Random(seed)
    for i in range(count):
        price = rng.uniform(1.0, 10.0)
        promo = rng.random() < 0.3
        weekday = rng.choice(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
        base = 120.0 - 8.0 * price + 25.0 * promo + 30.0 * (weekday in ("sat", "sun"))
        if shifted:  # a competitor opens: price matters twice as much, promotions stop working
            base = 120.0 - 16.0 * price + 30.0 * (weekday in ("sat", "sun"))
        offset = start_offset + i
        yield LabeledExample(
            event_id=f"{model_id}-{seed}-{offset}",
            model_id=model_id,
            model_version="v1",
            ts=start_ts + offset,
            features={"price": price, "promo": promo, "weekday": weekday},
            prediction=0.0,
            actual=round(base + rng.gauss(0.0, 5.0), 3),
            source=SourcePosition(TOPIC, 0, offset),
        )
