"""Data-quality signals: each problem found with a known change, none on a clean stream.

Findings (issue 16, replay on simulated fraud streams): 60% of a feature's values
turned null, a numeric feature turned into strings, and 1% of values at -1e9
each gave 0 alerts and no count.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from stream_mlops.config import ConfigError, Settings, parse_settings
from stream_mlops.detectors import GlrDetector
from stream_mlops.engine import Engine
from stream_mlops.events import DriftAlert, PredictionEvent
from stream_mlops.offline import ReplayResult
from stream_mlops.quality import QualityMonitor

CHANGE = 6_000
Features = dict[str, float | int | bool | str | None]


def _clean(rng: random.Random) -> Features:
    return {
        "amount": rng.lognormvariate(3.0, 1.0),
        "hour": rng.randrange(24),
        "x": rng.gauss(0.0, 1.0),
        "merchant": rng.choice(["grocery", "fuel", "travel", "online"]),
        # Null in 5% of events all along: a steady rate is no problem.
        "device": rng.choice(["ios", "android"]) if rng.random() >= 0.05 else None,
    }


def _stream(
    n: int, broken: Callable[[random.Random, Features], None] | None, seed: int = 1
) -> Iterator[PredictionEvent]:
    rng = random.Random(seed)
    for i in range(n):
        features = _clean(rng)
        if broken is not None and i >= CHANGE:
            broken(rng, features)
        score = rng.random()
        yield PredictionEvent(
            event_id=f"e{i}",
            model_id="fraud",
            model_version="v1",
            ts=1_800_000_000 + i,
            features=features,
            prediction=int(score >= 0.5),
            score=score,
        )


def _run(engine: Engine, events: Iterator[PredictionEvent]) -> list[DriftAlert]:
    return [o for e in events for o in engine.process(e) if isinstance(o, DriftAlert)]


def _nulls(rng: random.Random, f: Features) -> None:
    if rng.random() < 0.6:
        f["amount"] = None


def _strings(rng: random.Random, f: Features) -> None:
    f["amount"] = f"{f['amount']:.2f}"


def _sentinels(rng: random.Random, f: Features) -> None:
    if rng.random() < 0.01:
        f["amount"] = -1e9


def _unseen(rng: random.Random, f: Features) -> None:
    if rng.random() < 0.05:
        f["merchant"] = "crypto"


def _dropped(rng: random.Random, f: Features) -> None:
    del f["x"]


def _added(rng: random.Random, f: Features) -> None:
    f["new_field"] = 1.0


@pytest.mark.parametrize(
    ("broken", "signal", "within", "problems", "also"),
    [
        (_nulls, "quality:amount:missing", 50, (2_700, 3_300), set()),
        (_strings, "quality:amount:type", 50, (5_000, 5_000), set()),
        (_sentinels, "quality:amount:range", 4_000, (30, 100), set()),
        # The category frequencies changed too.
        (_unseen, "quality:merchant:unseen", 1_000, (180, 330), {"feature:merchant"}),
        # An expected feature gone is also missing.
        (_dropped, "quality:schema", 50, (5_000, 5_000), {"quality:x:missing"}),
        (_added, "quality:schema", 50, (5_000, 5_000), set()),
    ],
    ids=["60% null", "numbers as strings", "1% at -1e9", "unseen category", "dropped", "added"],
)
def test_a_quality_problem_is_found_named_and_counted(
    broken: Callable[[random.Random, Features], None],
    signal: str,
    within: int,
    problems: tuple[int, int],
    also: set[str],
) -> None:
    engine = Engine(Settings())
    alerts = _run(engine, _stream(CHANGE + 5_000, broken))
    assert {a.signal for a in alerts} == {signal} | also
    (alert,) = [a for a in alerts if a.signal == signal]
    assert alert.severity == "drift"
    assert alert.detector == "glr"
    delay = int(alert.trigger_event_id.removeprefix("e")) - CHANGE
    assert 0 <= delay < within
    # The rate before and after the located change, not a window's.
    assert alert.stats.mean_before is not None and alert.stats.mean_before < 0.002
    assert alert.stats.mean_after is not None and alert.stats.mean_after > 0.005
    counted = engine.stats.quality_problems.get(signal, 0)
    assert problems[0] <= counted <= problems[1]
    assert signal in ReplayResult(engine.stats, lines=0, malformed=0).summary()


def test_a_clean_stream_raises_no_quality_alert() -> None:
    engine = Engine(Settings())
    alerts = _run(engine, _stream(40_000, None, seed=7))
    assert alerts == []
    # Heavy tails step out of the widened range now and then: counted, not alerted.
    # A steady 5% of null devices is counted too.
    counted = engine.stats.quality_problems
    assert set(counted) <= {"quality:amount:range", "quality:device:missing"}
    assert 1_500 <= counted["quality:device:missing"] <= 2_500


def test_quality_checks_off_watch_and_count_nothing() -> None:
    settings = parse_settings({"defaults": {"quality_checks": False}})
    engine = Engine(settings)
    assert _run(engine, _stream(CHANGE + 2_000, _strings)) == []
    assert engine.stats.quality_problems == {}


def _all_broken(rng: random.Random, f: Features) -> None:
    """Nulls, strings, sentinels, an unseen category and a new feature at once."""
    _nulls(rng, f)
    if f["amount"] is None:
        f["hour"] = "7"
    else:
        _sentinels(rng, f)
    f["merchant"] = "crypto"
    _added(rng, f)


def test_quality_checks_may_name_the_kinds_to_watch() -> None:
    settings = parse_settings({"models": {"fraud": {"quality_checks": ["missing", "range"]}}})
    engine = Engine(settings)
    alerts = _run(engine, _stream(CHANGE + 3_000, _all_broken))
    quality = {a.signal for a in alerts if a.signal.startswith("quality:")}
    # (1% of sentinels may take longer than 3,000 predictions to alarm.)
    assert "quality:amount:missing" in quality
    assert quality <= {"quality:amount:missing", "quality:amount:range"}
    # The kinds not named are neither counted nor watched.
    counted = engine.stats.quality_problems
    assert {s.rsplit(":", 1)[1] for s in counted} <= {"missing", "range"}
    assert counted["quality:amount:missing"] > 1_000
    every = Engine(Settings())
    _run(every, _stream(CHANGE + 3_000, _all_broken))
    assert {"quality:hour:type", "quality:merchant:unseen", "quality:schema"} <= set(
        every.stats.quality_problems
    )
    # Fewer quality signals: a larger share of the budget for each of the others.
    named = engine._models[("fraud", "v1")].false_alarm_rate
    plain = every._models[("fraud", "v1")].false_alarm_rate
    assert named is not None and plain is not None and named > plain


def test_an_unknown_quality_kind_is_named() -> None:
    with pytest.raises(ConfigError, match=r"quality_checks"):
        parse_settings({"defaults": {"quality_checks": ["missing", "nulls"]}})


def test_quality_signals_take_no_detector_configuration() -> None:
    with pytest.raises(ConfigError, match=r"quality:amount:missing: quality signals take no"):
        parse_settings({"defaults": {"detectors": {"quality:amount:missing": []}}})


def test_quality_detectors_share_the_models_false_alarm_budget() -> None:
    engine = Engine(Settings())
    events = list(_stream(CHANGE + 500, _strings))
    for event in events[:10]:
        engine.process(event)
    plain = engine._models[("fraud", "v1")].false_alarm_rate
    off = Engine(parse_settings({"defaults": {"quality_checks": False}}))
    off.process(events[0])
    # 5 features: 3 quality signals each, and the schema, share the other half.
    assert plain is not None and off._models[("fraud", "v1")].false_alarm_rate is not None
    assert plain < off._models[("fraud", "v1")].false_alarm_rate
    for event in events[10:]:
        engine.process(event)
    track = engine._models[("fraud", "v1")].quality.tracks["quality:amount:type"]  # type: ignore[union-attr]
    (detector,) = track.detectors
    assert isinstance(detector, GlrDetector)
    assert detector.false_alarm_rate == plain


def test_the_monitor_restores_to_the_same_checks_and_counts() -> None:
    monitor = QualityMonitor(reference_observations=50, margin=0.5, max_features=10)
    rng = random.Random(3)
    for _ in range(40):
        monitor.observe(_clean(rng))
    halfway = QualityMonitor.from_state(_fields(monitor.state()))
    assert halfway.state() == monitor.state()
    for i in range(200):
        f = _clean(rng)
        if i % 7 == 0:
            f["amount"] = None
        monitor.observe(f)
        halfway.observe(f)
    # The reference took the first 10 of these.
    nulls = sum(1 for i in range(10, 200) if i % 7 == 0)
    assert monitor.tracks["quality:amount:missing"].problems == nulls
    assert QualityMonitor.from_state(_fields(monitor.state())).state() == monitor.state()
    assert halfway.state() == monitor.state()


def _fields(state: object) -> object:
    from stream_mlops.plain_data import Fields

    return Fields(state, "quality")


def test_zeros_at_once_equal_one_update_each() -> None:
    rng = random.Random(5)
    one = GlrDetector(model="bernoulli", direction="up", rare=True)
    bulk = GlrDetector(model="bernoulli", direction="up", rare=True)
    for _ in range(300):
        gap = rng.randrange(0, 400)
        for _ in range(gap):
            assert one.update(0.0) is None
        bulk.zeros(gap)
        assert (one.update(1.0) is None) == (bulk.update(1.0) is None)
        assert one.state() == bulk.state()


def test_a_rare_rate_from_zero_is_found_at_once_and_a_steady_one_is_not() -> None:
    fresh = GlrDetector(model="bernoulli", direction="up", rare=True, false_alarm_rate=1e-9)
    fresh.zeros(5_000)
    fired_at = next((i for i in range(200) if fresh.update(1.0 if i % 5 == 0 else 0.0)), None)
    assert fired_at is not None and fired_at < 100
    rng = random.Random(6)
    steady = GlrDetector(model="bernoulli", direction="up", rare=True, false_alarm_rate=1e-9)
    assert not any(steady.update(float(rng.random() < 0.002)) for _ in range(200_000))
