"""The engine's label-free detection: distributions, categories, estimated error."""

from __future__ import annotations

import random
from collections.abc import Iterator

from stream_mlops.config import Settings
from stream_mlops.engine import Engine
from stream_mlops.events import DriftAlert, PredictionEvent

MERCHANTS = ["grocery", "fuel", "travel", "online", "cash"]


def predictions(n: int, draw: object, seed: int, score: object = None) -> Iterator[PredictionEvent]:
    rng = random.Random(seed)
    for i in range(n):
        s = score(rng, i) if callable(score) else None
        yield PredictionEvent(
            event_id=f"e{i}",
            model_id="fraud",
            model_version="v1",
            ts=1_800_000_000 + i,
            features=draw(rng, i),  # type: ignore[operator]
            prediction=int(s >= 0.5) if s is not None else 0,
            score=s,
        )


def alerts_of(engine: Engine, events: Iterator[PredictionEvent]) -> list[DriftAlert]:
    return [o for e in events for o in engine.process(e) if isinstance(o, DriftAlert)]


def test_category_frequency_shift_alerts_on_that_feature_ranked_first() -> None:
    def draw(rng: random.Random, i: int) -> dict[str, float | str]:
        weights = [40, 25, 15, 12, 8] if i < 15_000 else [25, 25, 15, 12, 23]
        return {
            "merchant": rng.choices(MERCHANTS, weights)[0],
            "x0": rng.gauss(0.0, 1.0),
            "x1": rng.gauss(0.0, 1.0),
        }

    alerts = alerts_of(Engine(Settings()), predictions(25_000, draw, seed=1))
    assert [a.signal for a in alerts] == ["feature:merchant"]
    alert = alerts[0]
    assert alert.detector == "distribution"
    assert 15_000 <= int(alert.trigger_event_id.removeprefix("e")) < 17_000
    assert alert.stats.shifts[0].signal == "feature:merchant"
    assert alert.stats.shifts[0].distance is not None


def test_variance_change_alerts_and_ranks_the_feature_by_distance() -> None:
    def draw(rng: random.Random, i: int) -> dict[str, float | str]:
        return {
            "x0": rng.gauss(0.0, 1.0),
            "x1": rng.gauss(10.0, 2.0 if i < 15_000 else 4.0),  # same mean
            "x2": rng.gauss(0.0, 1.0),
        }

    alerts = alerts_of(Engine(Settings()), predictions(25_000, draw, seed=2))
    # Twice the SD also sends values out of the reference's range: a quality
    # alert after the distribution's.
    assert [a.signal for a in alerts][:1] == ["feature:x1"]
    assert {a.signal for a in alerts} <= {"feature:x1", "quality:x1:range"}
    # The GLR bank's scale CUSUMs see a doubled SD within a few dozen values.
    assert 15_000 <= int(alerts[0].trigger_event_id.removeprefix("e")) < 15_100
    ranked = alerts[0].stats.shifts
    # So early, the last recent_span values are still mostly pre-change: the
    # feature leads the ranking, by less than it would later.
    assert ranked[0].signal == "feature:x1"
    assert ranked[0].distance is not None and ranked[1].distance is not None
    assert ranked[0].distance > ranked[1].distance
    # The alert reports the signal's own means, not the ranks the detector saw.
    assert alerts[0].stats.mean_before is not None
    assert 9.0 < alerts[0].stats.mean_before < 11.0


def test_heavy_tailed_features_raise_no_false_alarm() -> None:
    def draw(rng: random.Random, i: int) -> dict[str, float | str]:
        return {
            "amount": rng.lognormvariate(3.0, 1.5),
            "items": float(int(rng.paretovariate(1.5))),
            "hour": rng.randrange(24),
        }

    assert alerts_of(Engine(Settings()), predictions(60_000, draw, seed=3)) == []


def test_estimated_error_flags_degradation_before_any_outcome() -> None:
    def score(rng: random.Random, i: int) -> float:
        hard = rng.random() < (0.1 if i < 15_000 else 0.35)
        s = rng.uniform(0.1, 0.9) if hard else rng.uniform(0.0, 0.1)
        return 1.0 - s if rng.random() < 0.5 else s

    def draw(rng: random.Random, i: int) -> dict[str, float | str]:
        return {"x0": rng.gauss(0.0, 1.0)}

    engine = Engine(Settings())
    alerts = alerts_of(engine, predictions(20_000, draw, seed=4, score=score))
    estimated = [a for a in alerts if a.signal == "estimated_error"]
    assert estimated, [a.signal for a in alerts]
    first = estimated[0]
    assert 15_000 <= int(first.trigger_event_id.removeprefix("e")) < 16_000
    assert first.stats.mean_before is not None and first.stats.mean_after is not None
    assert first.stats.mean_after > first.stats.mean_before
    assert {a.signal for a in alerts} <= {"estimated_error", "score"}
    assert engine.stats.outcomes == 0
    assert engine.stats.retrain_requests == 0  # only the error retrains by default
