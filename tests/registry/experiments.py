"""Experiment records for the registry's and the command line's tests."""

from __future__ import annotations

from stream_mlops.registry import Experiment, ExperimentLook, OffsetRange, TrainingWindow

POLICY = {
    "alpha": 0.01,
    "min_events": 200,
    "check_every": 100,
    "max_events": 300,
    "min_relative_improvement": 0.05,
    "warmup_events": 0,
}


def experiment(
    request_id: str = "rq-1",
    *,
    model_id: str = "fraud",
    outcome: str = "retired",
    decided_ts: float = 1_795_790_000.0,
    champion: str = "v1",
    version: str | None = None,
) -> Experiment:
    """A session decided at its second look (promoted when ``version`` is given)."""
    promoted = outcome == "promoted"
    looks = (
        ExperimentLook(
            look=1,
            scored_events=200,
            champion_loss=0.25,
            challenger_loss=0.2,
            relative_improvement=0.2,
            challenger_better=30,
            champion_better=20,
            p_value=0.1,
            alpha_per_look=0.005,
            promote=False,
        ),
        ExperimentLook(
            look=2,
            scored_events=300,
            champion_loss=0.25,
            challenger_loss=0.1 if promoted else 0.24,
            relative_improvement=0.6 if promoted else 0.04,
            challenger_better=60 if promoted else 31,
            champion_better=15 if promoted else 28,
            p_value=1e-7 if promoted else 0.39,
            alpha_per_look=0.005,
            promote=promoted,
        ),
    )
    last = looks[-1]
    return Experiment(
        model_id=model_id,
        request_id=request_id,
        reason_alert_ids=("alert-1",),
        requested_ts=decided_ts - 900,
        window_start_ts=decided_ts - 1000,
        window_start_event_id="txn-1",
        champion_version=champion,
        parent_version=champion,
        outcome="promoted" if promoted else "retired",
        version=version if promoted else None,
        content_hash="ab" * 32 if promoted else None,
        reason="beat v1" if promoted else "no promotion after 300 scored events",
        decided_ts=decided_ts,
        model_spec={"task": "classification", "learning_rate": 0.05, "l2": 0.0},
        policy=dict(POLICY),
        training_window=TrainingWindow(
            ranges=(
                OffsetRange(topic="labeled-events", partition=0, first_offset=40, last_offset=339),
            ),
            start_ts=decided_ts - 1000,
            start_event_id="txn-1",
            first_event_ts=decided_ts - 1000,
            last_event_ts=decided_ts,
            event_count=300,
        ),
        scored_events=last.scored_events,
        champion_loss=last.champion_loss,
        challenger_loss=last.challenger_loss,
        relative_improvement=last.relative_improvement,
        p_value=last.p_value,
        looks=looks,
    )
