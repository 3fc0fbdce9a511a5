"""Recording a promotion in the registry: register the version, then move the champion."""

from __future__ import annotations

from stream_mlops.registry.records import ModelVersion
from stream_mlops.retrain.registry_view import RegistryView
from stream_mlops.retrain.session import Promoted


def record_promotion(registry: RegistryView, promoted: Promoted, *, ts: float) -> ModelVersion:
    """Register the promoted challenger and make it the champion; safe to repeat.

    Both steps are idempotent: a retrainer that crashed between them (or
    before committing its consumer offsets) recomputes the same ``Promoted``
    from the same events, gets the already registered version back and
    re-points the champion, never a second version. ``ts`` is the event time of
    the decision (e.g. the last learned event's), not a wall clock.
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
    verdict = promoted.verdict
    registry.promote(
        promoted.model_id,
        version.version,
        ts=ts,
        reason=(
            f"beat {promoted.champion_version}: loss {verdict.challenger_loss:.4g} vs "
            f"{verdict.champion_loss:.4g} over {verdict.events} events, "
            f"sign test p={verdict.p_value:.3g}"
        ),
    )
    return version
