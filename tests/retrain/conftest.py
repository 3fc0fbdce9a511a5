"""Shared set-up: a registry holding a champion trained on the pre-change concept."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from stream_mlops.model_task import Task
from stream_mlops.registry import ModelRegistry, ModelVersion
from stream_mlops.retrain import Challenger, LabeledExample, ModelSpec
from stream_mlops.retrain.bootstrap import bootstrap_champion
from tests.retrain.streams import fraud_stream

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


def bootstrap_fraud_champion(path: Path, start_ts: float) -> Path:
    """A registry at ``path`` whose champion v1 of "fraud" was trained (3,000 events)
    on the pre-change concept, bootstrapped as ``stream-mlops models bootstrap`` does."""
    champion = fraud_stream(1, 3000, start_ts=start_ts - 3000)
    bootstrap_champion(
        ModelRegistry(path),
        "fraud",
        ModelSpec.for_task(Task.CLASSIFICATION),
        ((e.features, e.actual) for e in champion),
        created_ts=start_ts,
    )
    return path
