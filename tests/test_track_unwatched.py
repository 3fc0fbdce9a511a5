"""``track_unwatched = false``: no tracks for signals without a detector, same alerts.

What may differ is only what the option says: the alerts' ``shifts`` list the
watched signals alone. Every detection, its place, its statistics and every
retrain request stay as with the tracks.
"""

from __future__ import annotations

from typing import Any

from stream_mlops.config import Settings, parse_settings
from stream_mlops.engine import Engine
from stream_mlops.events import DriftAlert, InputEvent, encode
from tests.streams import classifier

# The benchmarks' "same job": ADWIN on the error only.
SAME_JOB: dict[str, Any] = {
    "distribution_checks": False,
    "min_observations": 0,
    "cooldown_observations": 0,
    "retrain_on": [],
    "detectors": {
        "error": [{"name": "adwin", "delta": 0.002}],
        "estimated_error": [],
        "score": [],
        "prediction": [],
        "feature:*": [],
    },
}


def settings(defaults: dict[str, Any], track_unwatched: bool) -> Settings:
    return parse_settings({"defaults": {**defaults, "track_unwatched": track_unwatched}})


def outputs(engine: Engine, events: list[InputEvent]) -> list[Any]:
    return [out for event in events for out in engine.process(event)]


def without_shifts(out: Any) -> bytes:
    if isinstance(out, DriftAlert):
        out = out.model_copy(update={"stats": out.stats.model_copy(update={"shifts": []})})
    return encode(out)


def error_step() -> list[InputEvent]:
    return list(
        classifier(
            12_000,
            error_rate=lambda i: 0.05 if i < 6_000 else 0.25,
            feature_means=lambda i: [0.0, 0.0 if i < 6_000 else 1.5],
            seed=4,
        )
    )


def test_same_job_alerts_alike_and_their_shifts_empty() -> None:
    events = error_step()
    tracked = outputs(Engine(settings(SAME_JOB, True), labeled_events=False), events)
    engine = Engine(settings(SAME_JOB, False), labeled_events=False)
    skipped = outputs(engine, events)
    assert any(isinstance(o, DriftAlert) and o.signal == "error" for o in tracked)
    assert [without_shifts(o) for o in skipped] == [without_shifts(o) for o in tracked]
    # With the tracks every label-free signal is ranked; without, none is watched.
    assert all(o.stats.shifts for o in tracked if isinstance(o, DriftAlert))
    assert all(o.stats.shifts == [] for o in skipped if isinstance(o, DriftAlert))
    (state,) = engine._models.values()
    assert state.score is None and state.prediction is None
    assert state.features == {} and state.categorical == {}
    assert [t.name for t in state.tracks()] == ["error"]


def test_shifts_keep_the_watched_signals_only() -> None:
    # The defaults (no detector on the prediction), less the detectors of
    # feature f0; the score keeps its distribution test.
    detectors = {**Settings().defaults.model_dump()["detectors"], "score": [], "feature:f0": []}
    events = error_step()
    tracked = outputs(Engine(settings({"detectors": detectors}, True)), events)
    engine = Engine(settings({"detectors": detectors}, False))
    skipped = outputs(engine, events)
    signals = [o.signal for o in tracked if isinstance(o, DriftAlert)]
    assert "error" in signals and "feature:f1" in signals
    assert [without_shifts(o) for o in skipped] == [without_shifts(o) for o in tracked]
    unwatched = ("prediction", "feature:f0")
    for with_all, watched in zip(tracked, skipped, strict=True):
        if not isinstance(with_all, DriftAlert):
            continue
        names = {s.signal for s in with_all.stats.shifts}
        assert {"score", *unwatched, "feature:f1"} <= names
        # The same shifts, less those of the unwatched signals.
        assert watched.stats.shifts == [
            s for s in with_all.stats.shifts if s.signal not in unwatched
        ]
    (state,) = engine._models.values()
    assert state.score is not None and state.prediction is None
    assert sorted(state.features) == ["f1"]


def test_a_restored_engine_goes_on_alike() -> None:
    counters = {"prediction": 0, "outcome": 0}
    records = []  # (event, offset): one "topic" per kind, as on Kafka
    for e in error_step():
        records.append((e, counters[e.type]))
        counters[e.type] += 1
    settings_ = settings(SAME_JOB, False)
    whole = Engine(settings_, labeled_events=False)
    expected = [encode(o) for e, off in records for o in whole.process(e, off)]
    assert any(b'"signal":"error"' in line for line in expected)
    first = Engine(settings_, labeled_events=False)
    cut = 7_000
    got = [encode(o) for e, off in records[:cut] for o in first.process(e, off)]
    restored = Engine.restore(settings_, first.snapshot(), labeled_events=False)
    for kind in ("prediction", "outcome"):
        pending = restored.pending_offsets(kind)  # type: ignore[arg-type]
        for e, off in records[:cut]:
            if e.type == kind and off in pending:
                restored.restore_pending(e, off)
    assert restored.stats == first.stats
    got += [encode(o) for e, off in records[cut:] for o in restored.process(e, off)]
    assert got == expected
