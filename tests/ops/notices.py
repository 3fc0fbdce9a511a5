"""Drift alerts and model updates as the engine and the retrainer publish them (encoded)."""

from __future__ import annotations

from stream_mlops.events import AlertStats, DriftAlert, ModelUpdate, SignalShift, encode


def alert(
    alert_id: str = "7e063d0c217af6c63a6fc3f7d1c55fab",
    *,
    model_id: str = "fraud",
    severity: str = "drift",
    signal: str = "error",
) -> bytes:
    return encode(
        DriftAlert(
            alert_id=alert_id,
            model_id=model_id,
            model_version="v1",
            signal=signal,
            detector="adwin",
            severity=severity,  # type: ignore[arg-type]
            ts="2027-01-15T09:25:47Z",  # type: ignore[arg-type]
            trigger_event_id="txn-5087",
            observations=5088,
            stats=AlertStats(
                mean_before=0.0532,
                mean_after=0.0768,
                window_before=3968,
                window_after=1120,
                effect_size=0.646,
                shifts=[
                    SignalShift(
                        signal="feature:amount",
                        effect_size=1.2,
                        reference_mean=40.0,
                        recent_mean=90.0,
                        reference_observations=1000,
                        distance=0.31,
                    )
                ],
            ),
        )
    )


def update(model_id: str = "fraud", version: str = "v2") -> bytes:
    return encode(
        ModelUpdate(
            model_id=model_id,
            model_version=version,
            parent_version="v1",
            ts="2027-01-15T09:31:02Z",  # type: ignore[arg-type]
            metrics={
                "loss": 0.061,
                "champion_loss": 0.274,
                "relative_improvement": 0.777,
                "p_value": 1.2e-19,
                "scored_events": 300.0,
            },
        )
    )
