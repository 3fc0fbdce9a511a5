"""Slices: error and score signals per value of a feature, with bounded cardinality
and a shared false-alarm budget (stream_mlops.slices)."""

from __future__ import annotations

import random
import subprocess
import sys
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from stream_mlops import snapshot
from stream_mlops.config import ConfigError, parse_settings
from stream_mlops.detectors import GlrDetector
from stream_mlops.engine import Engine, SnapshotError
from stream_mlops.events import DriftAlert, InputEvent, OutcomeEvent, PredictionEvent, encode
from stream_mlops.slices import OTHER, HeavyHitters, slice_value
from tests.streams import T0

CATEGORIES = ["jewelry"] + [f"cat{k:02d}" for k in range(49)]


def sliced_stream(
    n: int,
    *,
    error_rate: Callable[[int, str], float] = lambda i, category: 0.01,
    score: Callable[[int, str, random.Random], float] = lambda i, c, rng: rng.random(),
    categories: list[str] = CATEGORIES,
    outcome_lag: int = 50,
    seed: int = 0,
) -> Iterator[InputEvent]:
    """``n`` predictions of model "fraud", one per second, ``merchant_category``
    drawn evenly from ``categories``; each outcome ``outcome_lag`` events later,
    wrong with probability ``error_rate(i, category)``."""
    rng = random.Random(seed)
    waiting: deque[OutcomeEvent] = deque()
    for i in range(n):
        category = categories[rng.randrange(len(categories))]
        label = rng.random() < 0.5
        yield PredictionEvent(
            event_id=f"e{i}",
            model_id="fraud",
            model_version="v1",
            ts=T0 + i,
            features={"merchant_category": category, "amount": rng.lognormvariate(3, 1)},
            prediction=int(label),
            score=score(i, category, rng),
        )
        wrong = rng.random() < error_rate(i, category)
        waiting.append(OutcomeEvent(event_id=f"e{i}", ts=T0 + i + 0.5, actual=int(label != wrong)))
        if len(waiting) > outcome_lag:
            yield waiting.popleft()
    yield from waiting


SLICED = {"defaults": {"slices": ["merchant_category"], "slice_top_k": 50}}


def _alerts(engine: Engine, events: Iterator[InputEvent]) -> list[DriftAlert]:
    return [o for e in events for o in engine.process(e) if isinstance(o, DriftAlert)]


def test_one_failing_segment_is_found_and_named_within_1000_of_its_labeled_events() -> None:
    change = 50_000
    events = list(
        sliced_stream(
            110_000,
            error_rate=lambda i, c: 0.37 if i >= change and c == "jewelry" else 0.01,
            seed=1,
        )
    )
    engine = Engine(parse_settings(SLICED))
    alerts = _alerts(engine, iter(events))
    signal = "slice:merchant_category=jewelry:error"
    found = [a for a in alerts if a.signal == signal]
    assert found, [a.signal for a in alerts]
    first = found[0]
    trigger = int(first.trigger_event_id.removeprefix("e"))
    assert trigger >= change, "alerted before the change"
    after = sum(
        1
        for e in events
        if isinstance(e, PredictionEvent)
        and e.features["merchant_category"] == "jewelry"
        and change <= int(e.event_id.removeprefix("e")) <= trigger
    )
    assert after <= 1000, after
    assert first.stats.slice is not None
    assert (first.stats.slice.feature, first.stats.slice.value) == ("merchant_category", "jewelry")
    assert 0.01 < first.stats.slice.share < 0.04  # one of 50 values
    # No other slice alerts before the change, none on the other categories.
    assert all(a.signal == signal or not a.signal.startswith("slice:") for a in alerts), [
        a.signal for a in alerts
    ]
    # The aggregate error moved from 1% to about 1.7%: its own signal is no help.
    assert not any(a.signal == "error" and int(a.trigger_event_id[1:]) < trigger for a in alerts)


def test_a_stationary_stream_of_50_slice_values_raises_no_slice_alert() -> None:
    engine = Engine(parse_settings(SLICED))
    alerts = _alerts(engine, sliced_stream(150_000, seed=2))
    assert not [a.signal for a in alerts if a.signal.startswith("slice:")]
    # every value got its signals, none was pooled
    stats = engine.stats
    assert stats.predictions == 150_000
    [state] = engine._models.values()
    assert state.slices is not None
    [field] = state.slices.fields
    assert sorted(field.tracked) == sorted(CATEGORIES)
    assert all(s.error is not None and s.score is not None for s in field.tracked.values())


def test_a_score_shift_in_one_segment_is_found_on_its_score_signal() -> None:
    change = 40_000

    def score(i: int, category: str, rng: random.Random) -> float:
        u = rng.random()
        return u**0.3 if i >= change and category == "cat07" else u

    # A slice's score is ranked against its own first reference_observations
    # values: a shorter reference here, so that a 2% slice has one early.
    config = {"defaults": {**SLICED["defaults"], "reference_observations": 300}}
    engine = Engine(parse_settings(config))
    alerts = _alerts(engine, sliced_stream(60_000, score=score, seed=3))
    found = [a for a in alerts if a.signal == "slice:merchant_category=cat07:score"]
    assert found
    assert int(found[0].trigger_event_id[1:]) >= change
    assert not [a for a in alerts if a.signal.startswith("slice:") and "cat07" not in a.signal]


def test_cardinality_is_bounded_and_the_rest_is_pooled_as_other() -> None:
    # One value per event (an id by mistake) and a few frequent ones.
    def category(i: int) -> str:
        return ["a", "b", "c"][i % 3] if i % 2 else f"id{i}"

    settings = parse_settings({"defaults": {"slices": ["merchant_category"], "slice_top_k": 2}})
    engine = Engine(settings)
    rng = random.Random(4)
    for i in range(20_000):
        engine.process(
            PredictionEvent(
                event_id=f"e{i}",
                model_id="m",
                model_version="v1",
                ts=T0 + i,
                features={"merchant_category": category(i)},
                prediction=1,
                score=rng.random(),
            )
        )
    [state] = engine._models.values()
    assert state.slices is not None
    [field] = state.slices.fields
    assert len(field.hitters.counts) <= 4 * 2
    assert len(field.tracked) == 2
    assert set(field.tracked) <= {"a", "b", "c"}
    assert field.other is not None and field.other.value == OTHER
    # the third frequent value and every id went to *other*
    assert field.other.predictions > 5_000


def test_heavy_hitters_keep_every_value_above_their_share() -> None:
    rng = random.Random(5)
    hitters = HeavyHitters(8)
    values = [rng.choice(["x", "y"]) if rng.random() < 0.4 else f"noise{i}" for i in range(9_000)]
    for value in values:
        hitters.add(value)
    assert {"x", "y"} <= set(hitters.counts)
    assert len(hitters.counts) <= 8
    # Misra-Gries underestimates by at most seen / (capacity + 1)
    for key in ("x", "y"):
        assert 0 <= values.count(key) - hitters.counts[key] <= len(values) / 9


def test_numeric_slice_features_are_not_sliced_but_counted_and_said_once() -> None:
    assert [slice_value(v) for v in ("a", True, False, 7, 2.5, None)] == [
        "a",
        "true",
        "false",
        "7",
        None,
        None,
    ]
    engine = Engine(parse_settings({"defaults": {"slices": ["amount"]}}))
    for e in sliced_stream(3_000, seed=6):
        engine.process(e)
    [state] = engine._models.values()
    assert state.slices is not None
    [field] = state.slices.fields
    assert field.unsliced == 3_000 and not field.tracked
    notices = engine.take_notices()
    assert len(notices) == 1 and "'amount'" in notices[0]


def _glr_rates(engine: Engine) -> dict[str, float]:
    [state] = engine._models.values()
    tracks = list(state.tracks())
    if state.slices is not None:
        tracks += list(state.slices.tracks())
    return {
        t.name: d.false_alarm_rate
        for t in tracks
        for d in t.detectors
        if isinstance(d, GlrDetector)
    }


def test_slices_share_one_part_of_the_budget_whatever_their_number() -> None:
    budget = 1e-7
    plain = Engine(parse_settings({"defaults": {"false_alarm_budget": budget}}))
    sliced = Engine(
        parse_settings(
            {
                "defaults": {
                    "false_alarm_budget": budget,
                    "slices": ["merchant_category"],
                    "slice_top_k": 50,
                    "slice_budget_share": 0.2,
                }
            }
        )
    )
    for e in sliced_stream(5_000, seed=7):
        plain.process(e)
        sliced.process(e)
    base, rates = _glr_rates(plain), _glr_rates(sliced)
    assert rates["error"] == pytest.approx(base["error"] * 0.8)
    slice_rates = {name: r for name, r in rates.items() if name.startswith("slice:")}
    assert len(slice_rates) == 2 * 50 + 2  # 50 values and *other*, error and score
    # the most slices there can be: 1 feature x (50 + 1), 2 detectors each
    assert list(slice_rates.values()) == pytest.approx([budget * 0.2 / (51 * 2)] * 102)
    # every detector of the model together stays within the budget
    total_main = sum(r for n, r in rates.items() if not n.startswith("slice:"))
    assert total_main + budget * 0.2 <= budget * (1 + 1e-9)


def test_too_many_slices_for_the_limit_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"models\.fraud\.slices: .*max_slices_per_model"):
        parse_settings({"models": {"fraud": {"slices": ["a", "b", "c"], "slice_top_k": 100}}})
    with pytest.raises(ConfigError, match="slices"):
        parse_settings({"defaults": {"slices": ["a", "a"]}})


def test_replay_finds_the_segment_and_says_which_feature_is_not_sliced(tmp_path: Path) -> None:
    change = 30_000
    path = tmp_path / "events.jsonl"
    with path.open("wb") as handle:
        for event in sliced_stream(
            45_000,
            error_rate=lambda i, c: 0.37 if i >= change and c == "jewelry" else 0.01,
            seed=9,
        ):
            handle.write(encode(event) + b"\n")
    config = tmp_path / "c.toml"
    # two features x (50 + 1) slices: above the default limit, raised
    config.write_text(
        "[limits]\nmax_slices_per_model = 102\n\n[models.fraud]\n"
        'slices = ["merchant_category", "amount"]\nslice_top_k = 50\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "stream_mlops", "replay", str(path), "--config", str(config)],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    alerts = [orjson.loads(line) for line in done.stdout.splitlines()]
    found = [a for a in alerts if a.get("signal") == "slice:merchant_category=jewelry:error"]
    assert found, [a.get("signal") for a in alerts]
    assert int(found[0]["trigger_event_id"][1:]) >= change
    assert found[0]["stats"]["slice"]["value"] == "jewelry"
    assert b"slice feature 'amount'" in done.stderr


def test_a_snapshot_with_more_slice_state_than_the_bounds_is_refused() -> None:
    settings = parse_settings({"defaults": {"slices": ["merchant_category"], "slice_top_k": 3}})
    engine = Engine(settings)
    for e in sliced_stream(3_000, categories=["a", "b", "c", "d"], seed=10):
        engine.process(e)
    data = engine.snapshot()
    assert Engine.restore(settings, data).snapshot() == data
    document = orjson.loads(zlib.decompress(data[snapshot._HEADER.size :]))
    [(model_id, version, slices)] = document["slices"]
    assert (model_id, version) == ("fraud", "v1")
    tracked = {s["value"] for s in slices["fields"][0]["tracked"]}
    assert len(tracked) == 3 and tracked < {"a", "b", "c", "d"}
    # more counters than 4 * slice_top_k: refused, naming the field
    slices["fields"][0]["counts"] += [[f"x{k}", 1] for k in range(20)]
    with pytest.raises(SnapshotError, match="counts"):
        Engine.restore(settings, snapshot.encode(document))
