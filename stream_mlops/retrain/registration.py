"""Recording a decision in the registry: a promotion's version and champion, and every
session's experiment.

Each step is idempotent, so a retrainer that acts on the same decision again
after a crash changes nothing it already wrote: ``register`` returns the
version of the same identity, ``promote`` is a no-op on the current champion,
and ``record_experiment`` keeps the first record of a request.
"""

from __future__ import annotations

from stream_mlops.registry.experiments import Experiment, ExperimentLook
from stream_mlops.registry.records import ModelVersion, TrainingWindow
from stream_mlops.retrain.promotion import Verdict
from stream_mlops.retrain.registry_view import RegistryView
from stream_mlops.retrain.session import Promoted, Retired, RetrainSession


def decision_ts(window: TrainingWindow) -> float:
    """Event time of a decision: the newest learned event's, not a wall clock, so a
    repeat after a crash records the same time (the window's start if nothing was learned)."""
    if window.last_event_ts is not None:
        return window.last_event_ts
    return window.start_ts if window.start_ts is not None else 0.0


def promotion_reason(promoted: Promoted) -> str:
    """Why the challenger replaced the champion, in one line."""
    verdict = promoted.verdict
    return (
        f"beat {promoted.champion_version}: loss {verdict.challenger_loss:.4g} vs "
        f"{verdict.champion_loss:.4g} over {verdict.events} events, "
        f"sign test p={verdict.p_value:.3g}"
    )


def record_promotion(registry: RegistryView, promoted: Promoted, *, ts: float) -> ModelVersion:
    """Register the promoted challenger and make it the champion; safe to repeat.

    Both steps are idempotent: a retrainer that crashed between them (or
    before committing its consumer offsets) recomputes the same ``Promoted``
    from the same events, gets the already registered version back and
    re-points the champion, never a second version. ``ts`` is the event time of
    the decision (``decision_ts``), not a wall clock.
    """
    version = registry.register(
        promoted.model_id,
        promoted.artifact,
        created_ts=ts,
        parent_version=promoted.parent_version,
        training_window=promoted.training_window,
        config=promoted.config,
        library_versions=promoted.library_versions,
        metrics=promoted.metrics,
    )
    registry.promote(promoted.model_id, version.version, ts=ts, reason=promotion_reason(promoted))
    return version


def _look(verdict: Verdict) -> ExperimentLook:
    return ExperimentLook(
        look=verdict.look,
        scored_events=verdict.events,
        champion_loss=verdict.champion_loss,
        challenger_loss=verdict.challenger_loss,
        relative_improvement=verdict.relative_improvement,
        challenger_better=verdict.challenger_better,
        champion_better=verdict.champion_better,
        p_value=verdict.p_value,
        alpha_per_look=verdict.alpha_per_look,
        promote=verdict.promote,
    )


def experiment_of(session: RetrainSession, version: ModelVersion | None = None) -> Experiment:
    """The experiment log's record of a decided session.

    ``version`` is what ``record_promotion`` registered for a promoted session
    (required then), None for a retired one. Raises ``ValueError`` for a
    session that has not decided.
    """
    decision = session.decision
    if isinstance(decision, Promoted):
        if version is None:
            raise ValueError("a promoted session's experiment names its registered version")
        window = decision.training_window
        reason = promotion_reason(decision)
    elif isinstance(decision, Retired):
        window = session.window
        reason = decision.reason
    else:
        raise ValueError(f"{session.order.model_id}: the session has not decided yet")
    order = session.order
    verdict = decision.verdict
    return Experiment(
        model_id=order.model_id,
        request_id=order.request_id,
        reason_alert_ids=order.reason_alert_ids,
        requested_ts=order.requested_ts,
        window_start_ts=order.window_start_ts,
        window_start_event_id=order.window_start_event_id,
        champion_version=order.model_version,
        parent_version=session.parent_version,
        outcome=decision.status,
        version=version.version if version is not None else None,
        content_hash=version.content_hash if version is not None else None,
        reason=reason,
        decided_ts=decision_ts(window),
        model_spec=dict(session.spec.to_config()),
        policy=dict(session.policy.to_config()),
        training_window=window,
        scored_events=verdict.events,
        champion_loss=verdict.champion_loss,
        challenger_loss=verdict.challenger_loss,
        relative_improvement=verdict.relative_improvement,
        p_value=verdict.p_value,
        looks=tuple(_look(v) for v in session.looks()),
    )
