"""A pinned reference from the registry: the champion's recorded training window.

``reference = "champion"`` pins a model's reference to the labeled events its
champion was trained on. The registry records that window
(``stream_mlops.registry.TrainingWindow``: offset ranges of the labeled-events
topic, the start of the data, a count and a digest of the events learned); the
engine service reads it back from the cluster when it starts
(``consumers/engine.py``, with ``stream_mlops.kafka.retrain_inputs``) and the
events are selected by the rule the retrainer learned them by
(``stream_mlops.retrain.window``). Apart from ``stream_mlops.reference`` so the
engine's core does not import the retraining core.

The window's events were scored by the champion's parent: they pin the
features, the data-quality checks and the outcome, not the champion's own
score, prediction or error (those keep the stream's reference).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from stream_mlops.config import Settings
from stream_mlops.reference import (
    MAX_EVENTS_PER_MODEL,
    ModelReference,
    ReferenceError,
    ReferenceEvent,
)
from stream_mlops.registry import ModelRegistry, ModelVersion, TrainingWindow
from stream_mlops.retrain.inputs import LabeledExample
from stream_mlops.retrain.window import WindowRecorder, in_window

__all__ = ["WindowReader", "champion_references", "needs_champion", "window_reference"]

#: Reads a training window's labeled events back (in offset order), e.g.
#: ``stream_mlops.kafka.retrain_inputs.WindowReader`` on the cluster.
WindowReader = Callable[[TrainingWindow], Iterable[LabeledExample]]


def needs_champion(settings: Settings) -> bool:
    """Whether any configured model's reference is "champion"."""
    return any(settings.model(m).reference == "champion" for m in settings.models)


def champion_references(
    settings: Settings, registry: ModelRegistry, read_window: WindowReader
) -> dict[str, ModelReference]:
    """The pinned references of the models whose reference is "champion", by model id.

    Each is the champion's recorded training window (``TrainingWindow``), read
    back with ``read_window`` and selected by the rule the retrainer learned
    by (``stream_mlops.retrain.window``). Only the models with a section of
    their own are looked up (others keep the stream's reference). The window
    was scored by the champion's parent: it pins the features and the
    outcome, not the champion's own outputs. ``ReferenceError`` (naming the
    field) when the model has no champion, the champion no recorded window (a
    version registered by hand), or the window's events are no longer all
    there to read (the topic's retention removed them): a reference silently
    smaller than the window, or none, is never taken.
    """
    out: dict[str, ModelReference] = {}
    for model_id in settings.models:
        if settings.model(model_id).reference != "champion":
            continue
        own = "reference" in settings.models[model_id].model_fields_set
        field = f"models.{model_id}.reference" if own else "defaults.reference"
        champion = registry.champion(model_id)
        if champion is None:
            raise ReferenceError(f'{field}: "champion": model {model_id!r} has no champion yet')
        out[model_id] = window_reference(champion, read_window, field)
    return out


def window_reference(
    champion: ModelVersion, read_window: WindowReader, field: str
) -> ModelReference:
    """The reference events of one version's training window (``champion_references``)."""
    model_id, version = champion.model_id, champion.version
    window = champion.training_window
    where = f'{field}: "champion": {model_id} {version}'
    if not window.ranges or window.start_ts is None:
        raise ReferenceError(
            f"{where} has no recorded training window (not trained by the retrainer): "
            'pin a file instead, reference = {file = "ref.jsonl"}'
        )
    recorder = WindowRecorder(
        model_id, start_ts=window.start_ts, start_event_id=window.start_event_id or ""
    )
    events: list[ReferenceEvent] = []
    admitted = 0
    for example in read_window(window):
        if not in_window(window, example) or not recorder.admits(example):
            continue
        recorder.record(example)
        admitted += 1
        if len(events) < MAX_EVENTS_PER_MODEL:
            events.append(ReferenceEvent(version, example.features, None, None, example.actual))
    if admitted < window.event_count:
        topics = sorted({f"{r.topic}[{r.partition}]" for r in window.ranges})
        raise ReferenceError(
            f"{where}: {admitted} of the {window.event_count} events of its training window "
            f"are still on {', '.join(topics)} (the rest is past the topic's retention): "
            'pin a file instead, reference = {file = "ref.jsonl"}'
        )
    return ModelReference(model_id, events, f"{model_id} {version} training window")
