from __future__ import annotations

from datetime import UTC, datetime

from stream_mlops.config import ModelSettings
from stream_mlops.controller import AlertPolicy
from stream_mlops.detectors import AdwinDetector, Detection, Detector
from stream_mlops.events import DriftAlert, SignalShift, WindowStart
from stream_mlops.signals import SignalTrack

TS = datetime(2026, 11, 27, tzinfo=UTC)


def fed(n: int) -> tuple[SignalTrack, Detector]:
    detector = AdwinDetector()
    track = SignalTrack("error", [detector], reference_observations=10, recent_span=5)
    for _ in range(n):
        track.observe(0.0, "e", 0.0)
    return track, detector


def review(
    policy: AlertPolicy,
    settings: ModelSettings,
    track: SignalTrack,
    detector: Detector,
    *,
    severity: str = "drift",
    event_id: str = "e1",
) -> DriftAlert | None:
    return policy.review(
        settings,
        model_id="fraud",
        model_version="v1",
        track=track,
        detector=detector,
        detection=Detection(severity=severity, mean_before=0.1, mean_after=0.2),  # type: ignore[arg-type]
        effect_size=track.shift().effect_size,
        event_id=event_id,
        ts=TS,
        shifts=lambda: [
            SignalShift(
                signal="feature:a",
                effect_size=0.1,
                reference_mean=0,
                recent_mean=0.1,
                reference_observations=10,
            ),
            SignalShift(
                signal="feature:b",
                effect_size=-2.0,
                reference_mean=0,
                recent_mean=-2,
                reference_observations=10,
            ),
        ],
    )


def more(track: SignalTrack, n: int) -> None:
    for _ in range(n):
        track.observe(0.0, "e", 0.0)


def test_minimum_observations_hold_alerts_back() -> None:
    settings = ModelSettings(min_observations=100)
    policy = AlertPolicy()
    track, detector = fed(99)
    assert review(policy, settings, track, detector) is None
    assert policy.suppressed == 1
    more(track, 1)
    assert review(policy, settings, track, detector) is not None


def test_cooldown_and_deduplication() -> None:
    settings = ModelSettings(min_observations=0, cooldown_observations=50)
    policy = AlertPolicy()
    track, detector = fed(10)
    first = review(policy, settings, track, detector)
    assert first is not None and first.severity == "drift"
    more(track, 49)
    assert review(policy, settings, track, detector) is None  # still cooling down
    assert review(policy, settings, track, detector, severity="warning") is None
    more(track, 1)
    again = review(policy, settings, track, detector, event_id="e2")
    assert again is not None and again.alert_id != first.alert_id


def test_a_warning_is_reported_once_then_drift() -> None:
    settings = ModelSettings(min_observations=0, cooldown_observations=100)
    policy = AlertPolicy()
    track, detector = fed(10)
    warning = review(policy, settings, track, detector, severity="warning")
    assert warning is not None and warning.severity == "warning"
    more(track, 5)
    assert review(policy, settings, track, detector, severity="warning") is None
    drift = review(policy, settings, track, detector, severity="drift")
    assert drift is not None and drift.severity == "drift"


def test_alert_ids_are_deterministic_and_partition_specific() -> None:
    settings = ModelSettings(min_observations=0)
    ids = []
    for partition in (0, 0, 1):
        track, detector = fed(10)
        alert = review(AlertPolicy(partition), settings, track, detector)
        assert alert is not None
        ids.append(alert.alert_id)
    assert ids[0] == ids[1] != ids[2]


def test_alert_stats_rank_signals_by_how_much_they_moved() -> None:
    track, detector = fed(10)
    alert = review(AlertPolicy(3), ModelSettings(min_observations=0), track, detector)
    assert alert is not None
    assert [s.signal for s in alert.stats.shifts] == ["feature:b", "feature:a"]
    assert alert.stats.partition == 3
    assert (alert.stats.mean_before, alert.stats.mean_after) == (0.1, 0.2)
    assert alert.observations == detector.observations == 10
    assert alert.trigger_event_id == "e1"


def test_retrain_requests_are_rate_limited_per_model_in_event_time() -> None:
    settings = ModelSettings(min_observations=0, retrain_interval_seconds=600)
    policy = AlertPolicy()
    track, detector = fed(10)
    alert = review(policy, settings, track, detector)
    assert alert is not None
    start = WindowStart(ts=TS, event_id="e0")
    first = policy.retrain(settings, [alert], start, epoch=1000.0, ts=TS)
    assert first is not None and first.reason_alert_ids == [alert.alert_id]
    assert first.window_start == start
    assert policy.retrain(settings, [alert], start, epoch=1599.0, ts=TS) is None
    assert policy.retrain_suppressed == 1
    later = policy.retrain(settings, [alert], start, epoch=1600.0, ts=TS)
    assert later is not None and later.request_id == first.request_id  # same reasons, same id


def test_label_free_signals_rank_by_distance_before_effect_size() -> None:
    from stream_mlops.controller import _moved_most

    def shift(signal: str, effect: float, distance: float | None) -> SignalShift:
        return SignalShift(
            signal=signal,
            effect_size=effect,
            reference_mean=0,
            recent_mean=effect,
            reference_observations=10,
            distance=distance,
        )

    shifts = [
        shift("feature:mean", 2.0, 0.3),
        shift("feature:variance", 0.0, 0.6),
        shift("feature:early", 9.0, None),
        shift("feature:calm", 0.1, 0.05),
    ]
    ranked = [s.signal for s in sorted(shifts, key=_moved_most)]
    assert ranked == ["feature:variance", "feature:mean", "feature:calm", "feature:early"]
