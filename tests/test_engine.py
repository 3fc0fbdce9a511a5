from __future__ import annotations

import itertools

import pytest
import river

from stream_mlops.config import Settings, parse_settings
from stream_mlops.engine import Engine, SnapshotError, UnknownModelError
from stream_mlops.events import (
    DriftAlert,
    LabeledEvent,
    OutcomeEvent,
    PredictionEvent,
    RetrainRequest,
    encode,
)
from tests.streams import T0, classifier


def run(engine: Engine, events: object) -> list[bytes]:
    return [encode(out) for event in events for out in engine.process(event)]  # type: ignore[attr-defined]


def test_error_step_from_5_to_10_percent_is_flagged_within_3000_joins() -> None:
    engine = Engine(Settings(), labeled_events=False)
    flagged_at = None
    for event in classifier(20_000, error_rate=lambda i: 0.05 if i < 10_000 else 0.10, seed=1):
        for out in engine.process(event):
            if isinstance(out, DriftAlert) and out.signal == "error" and flagged_at is None:
                flagged_at = engine.stats.joined
                alert = out
    assert flagged_at is not None
    assert 10_000 < flagged_at <= 13_000
    assert alert.severity == "drift"
    assert alert.detector == "glr"
    assert alert.stats.mean_after is not None and alert.stats.mean_before is not None
    assert alert.stats.mean_after > alert.stats.mean_before
    # The means are around the located change: the error rates of each side.
    assert 0.03 < alert.stats.mean_before < 0.07
    assert alert.stats.mean_after > 0.08
    assert engine.stats.retrain_requests == 1


def test_retrain_request_points_near_the_change_and_is_rate_limited() -> None:
    settings = parse_settings({"defaults": {"cooldown_observations": 0}})
    engine = Engine(settings, labeled_events=False)
    requests = []
    # Two steps an hour of event time apart would be two requests; these are 2,000 s.
    rate = lambda i: 0.05 if i < 10_000 else (0.15 if i < 12_000 else 0.40)  # noqa: E731
    for event in classifier(16_000, error_rate=rate, seed=3):
        requests += [o for o in engine.process(event) if isinstance(o, RetrainRequest)]
    assert len(requests) == 1
    assert engine.stats.suppressed_retrain_requests >= 1
    start = int(requests[0].window_start.event_id.removeprefix("e"))
    # ADWIN's post-change window still holds some pre-change values (it stops
    # cutting once no split is significant), so the start is conservative: before
    # the change, never after it, and not the beginning of the stream.
    assert 0 < start <= 10_000
    assert requests[0].window_start.ts.timestamp() == T0 + start
    assert requests[0].reason_alert_ids


def test_retrain_window_starts_where_the_glr_placed_the_change() -> None:
    # The error's GLR bank places the change where its likelihood ratio is
    # largest: the request's window starts near the step, within a detection
    # window of it, on either side (ADWIN's split was only ever before it).
    starts, alerts = [], []
    for seed in range(4):
        engine = Engine(Settings(), labeled_events=False)
        step = lambda i: 0.05 if i < 10_000 else 0.25  # noqa: E731
        for event in classifier(13_000, error_rate=step, seed=seed):
            for out in engine.process(event):
                if isinstance(out, RetrainRequest):
                    starts.append(int(out.window_start.event_id.removeprefix("e")))
                elif isinstance(out, DriftAlert):
                    alerts.append(out)
    assert len(starts) == 4
    assert all(9_850 <= start <= 10_150 for start in starts), starts
    # The alert's means are the error rates on either side of that point.
    error_alerts = [a for a in alerts if a.signal == "error"]
    assert len(error_alerts) == 4
    for alert in error_alerts:
        assert alert.stats.mean_before is not None and alert.stats.mean_after is not None
        assert 0.035 < alert.stats.mean_before < 0.065
        assert 0.15 < alert.stats.mean_after < 0.45


def test_one_sd_mean_shift_in_one_feature_without_outcomes_is_flagged_on_it() -> None:
    engine = Engine(Settings())
    alerts = []
    means = lambda i: [0.0, 0.0, 1.0 if i >= 10_000 else 0.0, 0.0]  # noqa: E731
    for event in classifier(20_000, feature_means=means, outcomes=False, seed=2):
        alerts += [o for o in engine.process(event) if isinstance(o, DriftAlert)]
    assert [a.signal for a in alerts] == ["feature:f2"]
    alert = alerts[0]
    assert 10_000 <= int(alert.trigger_event_id.removeprefix("e")) < 11_000
    ranked = [s.signal for s in alert.stats.shifts]
    assert ranked[0] == "feature:f2"
    assert set(ranked) == {
        "score",
        "prediction",
        "feature:f0",
        "feature:f1",
        "feature:f2",
        "feature:f3",
    }
    assert alert.stats.shifts[0].effect_size > 3 * abs(alert.stats.shifts[1].effect_size)
    assert engine.stats.retrain_requests == 0  # label-free signals do not retrain by default


@pytest.mark.slow
def test_stationary_million_events_raise_no_drift_alert() -> None:
    engine = Engine(Settings(), labeled_events=False)
    alerts = []
    # 500,000 predictions and their 500,000 outcomes.
    for event in classifier(500_000, seed=4):
        alerts += [o for o in engine.process(event) if isinstance(o, DriftAlert)]
    assert engine.stats.predictions + engine.stats.outcomes == 1_000_000
    assert engine.stats.joined == 500_000
    assert [a for a in alerts if a.severity == "drift"] == []


def test_outputs_are_labeled_events_then_alerts_then_requests() -> None:
    engine = Engine(parse_settings({"defaults": {"min_observations": 0}}))
    kinds = []
    for event in classifier(14_000, error_rate=lambda i: 0.02 if i < 10_000 else 0.5, seed=5):
        out = engine.process(event)
        if len(out) > 1:
            kinds.append([o.type for o in out])
    assert ["labeled_event", "drift_alert", "retrain_request"] in kinds
    assert engine.stats.joined == 14_000


def test_duplicates_do_not_feed_detectors_twice() -> None:
    engine = Engine(Settings())
    event = next(classifier(1, seed=0))
    assert isinstance(event, PredictionEvent)
    engine.process(event)
    engine.process(event)
    state = engine._models[("fraud", "v1")]
    assert state.features["f0"].observations == 1
    assert engine.stats.duplicates == 1
    assert engine.stats.predictions == 2


def test_string_features_and_labels_are_not_numeric_signals() -> None:
    engine = Engine(Settings())
    engine.process(
        PredictionEvent(
            event_id="a",
            model_id="m",
            model_version="v",
            ts=0,
            features={"city": "Oslo", "n": 3, "flag": True, "gone": None},
            prediction="cat",
        )
    )
    out = engine.process(OutcomeEvent(event_id="a", ts=1, actual="dog"))
    assert isinstance(out[0], LabeledEvent)
    state = engine._models[("m", "v")]
    assert sorted(state.features) == ["flag", "n"]
    assert state.prediction is not None and state.prediction.observations == 0
    assert state.error is not None and state.error.observations == 1


def test_regression_error_is_absolute() -> None:
    engine = Engine(Settings())
    engine.process(
        PredictionEvent(
            event_id="a", model_id="demand", model_version="v", ts=0, features={}, prediction=12.5
        )
    )
    engine.process(OutcomeEvent(event_id="a", ts=1, actual=10))
    state = engine._models[("demand", "v")]
    assert state.task == "regression"
    assert state.error is not None and state.error.shift().reference_mean == 2.5


def test_unknown_models_rejected_before_any_state_changes() -> None:
    engine = Engine(parse_settings({"unknown_models": "reject", "models": {"fraud": {}}}))
    stranger = next(classifier(1, model_id="stranger"))
    with pytest.raises(UnknownModelError, match="model_id: 'stranger'"):
        engine.process(stranger)
    with pytest.raises(UnknownModelError):
        engine.process(OutcomeEvent(event_id="x", ts=0, actual=1, model_id="stranger"))
    assert engine.stats.predictions == engine.stats.outcomes == engine.stats.pending == 0
    assert engine.process(next(classifier(1))) == []


def test_same_events_same_bytes() -> None:
    stream = list(classifier(12_000, error_rate=lambda i: 0.05 if i < 6_000 else 0.3, seed=6))
    first = run(Engine(Settings(), partition=1), stream)
    assert first  # something to compare
    assert first == run(Engine(Settings(), partition=1), stream)
    # Partitions never share alert ids.
    other = run(Engine(Settings(), partition=2), stream)
    assert other != first


@pytest.mark.parametrize("cut", [3_000, 10_001, 17_777])
def test_snapshot_restore_continues_exactly(cut: int) -> None:
    settings = parse_settings({"join": {"ttl_seconds": 400, "max_pending": 300}})
    events = list(
        classifier(12_000, error_rate=lambda i: 0.05 if i < 6_000 else 0.3, outcome_lag=200, seed=7)
    )
    # Outcomes are in one "topic", predictions in another: offsets per kind.
    counters = {"prediction": itertools.count(), "outcome": itertools.count()}
    offsets = [next(counters[e.type]) for e in events]
    whole = Engine(settings, partition=0)
    expected = [
        encode(o) for e, off in zip(events, offsets, strict=True) for o in whole.process(e, off)
    ]

    before = Engine(settings, partition=0)
    produced = [
        encode(o)
        for e, off in zip(events[:cut], offsets[:cut], strict=True)
        for o in before.process(e, off)
    ]
    snapshot = before.snapshot()
    restored = Engine.restore(settings, snapshot, partition=0)
    for kind in ("prediction", "outcome"):
        pending = restored.pending_offsets(kind)
        assert list(pending) == list(before.pending_offsets(kind))
        low = pending.lowest()
        # The edge re-reads the topic from the lowest pending offset.
        for e, off in zip(events[:cut], offsets[:cut], strict=True):
            if e.type == kind and low is not None and off >= low and off in pending:
                restored.restore_pending(e, off)
    assert restored.stats == before.stats
    produced += [
        encode(o)
        for e, off in zip(events[cut:], offsets[cut:], strict=True)
        for o in restored.process(e, off)
    ]
    assert produced == expected
    assert restored.stats == whole.stats


def test_snapshot_errors_are_clear() -> None:
    engine = Engine(Settings())
    data = engine.snapshot()
    with pytest.raises(SnapshotError, match="format 2 is not supported"):
        Engine.restore(Settings(), data[:6] + (2).to_bytes(2, "big") + data[8:])
    with pytest.raises(SnapshotError, match="not an engine snapshot"):
        Engine.restore(Settings(), b"garbage!")
    with pytest.raises(SnapshotError, match="unreadable"):
        Engine.restore(Settings(), data[:8] + b"\x80\x05garbage")


def test_snapshot_from_another_river_minor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = Engine(Settings()).snapshot()
    monkeypatch.setattr(river, "__version__", "0.99.0")
    with pytest.raises(SnapshotError, match=r"river 0\.26\.\d+, this engine runs river 0\.99"):
        Engine.restore(Settings(), data)


def test_binary_detectors_skip_an_inferred_regression() -> None:
    settings = parse_settings({"defaults": {"detectors": {"error": [{"name": "ddm"}]}}})
    engine = Engine(settings)
    for i in range(50):
        engine.process(
            PredictionEvent(
                event_id=f"r{i}",
                model_id="demand",
                model_version="v",
                ts=i,
                features={},
                prediction=10.5 + i,
            )
        )
        engine.process(OutcomeEvent(event_id=f"r{i}", ts=i, actual=3.0))
    error = engine._models[("demand", "v")].error
    assert error is not None
    assert error.detectors == []  # DDM would misread absolute errors as 0/1
    assert error.observations == 50


def _prediction(i: int, version: str, ts: float) -> PredictionEvent:
    return PredictionEvent(
        event_id=f"e-{version}-{i}",
        model_id="fraud",
        model_version=version,
        ts=ts,
        features={"amount": float(i % 7)},
        prediction=0,
        score=0.1,
    )


def test_a_replaced_version_is_dropped_once_its_traffic_stops() -> None:
    settings = parse_settings({"join": {"ttl_seconds": 100}})
    engine = Engine(settings)
    for i in range(500):
        engine.process(_prediction(i, "v1", T0 + i))
    # v2 takes over; v1 still has predictions within the TTL for a while.
    for i in range(10_000):
        engine.process(_prediction(i, "v2", T0 + 500 + i))
    assert engine.stats.versions_retired == 1
    restored = Engine.restore(settings, engine.snapshot())
    assert restored.stats.versions_retired == 1
    # A version still serving is never dropped, however old its first event.
    for i in range(20_000):
        engine.process(_prediction(i, "v2", T0 + 20_000 + i))
    assert engine.stats.versions_retired == 1


def test_a_version_is_kept_while_its_predictions_can_still_join() -> None:
    settings = parse_settings({"join": {"ttl_seconds": 1_000_000}})
    engine = Engine(settings)
    engine.process(_prediction(0, "v1", T0))
    for i in range(10_000):
        engine.process(_prediction(i, "v2", T0 + 1 + i))
    assert engine.stats.versions_retired == 0


@pytest.mark.parametrize(
    ("detectors", "retrain_on", "tracked"),
    [
        ([], ["error"], False),
        ([{"name": "adwin"}], ["error"], True),
        ([], ["estimated_error"], True),
    ],
)
def test_the_estimated_error_is_tracked_only_when_something_uses_it(
    detectors: list[dict[str, str]], retrain_on: list[str], tracked: bool
) -> None:
    settings = parse_settings(
        {"defaults": {"detectors": {"estimated_error": detectors}, "retrain_on": retrain_on}}
    )
    engine = Engine(settings)
    for event in classifier(10, error_rate=lambda i: 0.1, seed=1):
        engine.process(event)
    (state,) = engine._models.values()
    assert (state.estimated_error is not None) is tracked
