"""Contract events for the page's tests, as the engine and the retrainer write them."""

from __future__ import annotations

from stream_mlops.events import (
    AlertStats,
    DeadLetter,
    DriftAlert,
    ModelUpdate,
    RetrainRequest,
    SignalShift,
    WindowStart,
    encode,
)


def alert(
    alert_id: str = "a1",
    *,
    model_id: str = "fraud",
    version: str = "v1",
    signal: str = "error",
    severity: str = "drift",
    shifts: tuple[tuple[str, float], ...] = (),
) -> bytes:
    return encode(
        DriftAlert(
            alert_id=alert_id,
            model_id=model_id,
            model_version=version,
            signal=signal,
            detector="adwin",
            severity=severity,  # type: ignore[arg-type]
            ts=1_800_000_000,
            trigger_event_id="txn-1",
            observations=1200,
            stats=AlertStats(
                mean_before=0.05,
                mean_after=0.2,
                effect_size=0.7,
                shifts=[
                    SignalShift(
                        signal=name,
                        effect_size=0.5,
                        reference_mean=1.0,
                        recent_mean=2.0,
                        reference_observations=1000,
                        distance=distance,
                    )
                    for name, distance in shifts
                ],
            ),
        )
    )


def request(request_id: str = "r1", *, model_id: str = "fraud", version: str = "v1") -> bytes:
    return encode(
        RetrainRequest(
            request_id=request_id,
            model_id=model_id,
            model_version=version,
            reason_alert_ids=["a1"],
            window_start=WindowStart(ts=1_800_000_000, event_id="txn-1"),
            ts=1_800_000_600,
        )
    )


def update(*, model_id: str = "fraud", version: str = "v2", parent: str = "v1") -> bytes:
    return encode(
        ModelUpdate(
            model_id=model_id,
            model_version=version,
            parent_version=parent,
            ts=1_800_000_900,
            metrics={"p_value": 1e-6, "relative_improvement": 0.4, "champion_version": parent},
        )
    )


def dead_letter(error: str, *, topic: str = "predictions", offset: int = 0) -> bytes:
    return encode(
        DeadLetter(source_topic=topic, partition=0, offset=offset, error=error, payload="")
    )
