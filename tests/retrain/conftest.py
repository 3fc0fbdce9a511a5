"""Shared set-up: a registry holding a champion trained on the pre-change concept."""

from __future__ import annotations

from collections.abc import Iterable

from stream_mlops.registry import ModelRegistry, ModelVersion
from stream_mlops.retrain import Challenger, LabeledExample, ModelSpec

CHAMPION_EVENTS = 5000


def register_champion(
    registry: ModelRegistry, spec: ModelSpec, events: Iterable[LabeledExample]
) -> ModelVersion:
    """Train a fresh model on ``events``, register it as v1 and make it the champion."""
    model = Challenger.fresh(spec)
    model_id = ""
    for event in events:
        model.step(event.features, event.actual)
        model_id = event.model_id
    version = registry.register(model_id, model.artifact(), created_ts=0.0)
    registry.promote(model_id, version.version, ts=0.0, reason="initial")
    return version
