"""Rebuilding a registered version from its parent and its training window."""

from __future__ import annotations

from collections.abc import Iterable

from stream_mlops.registry.registry import ModelRegistry, content_hash
from stream_mlops.retrain.challenger import Challenger
from stream_mlops.retrain.exceptions import ReproduceError, RetrainInputError
from stream_mlops.retrain.inputs import LabeledExample
from stream_mlops.retrain.models import ModelSpec
from stream_mlops.retrain.window import WindowRecorder, in_window


def reproduce(
    registry: ModelRegistry, model_id: str, version: str, events: Iterable[LabeledExample]
) -> str:
    """Retrain ``version`` from its recorded parent and return the new artifact's sha256.

    ``events`` are the records of the version's training window read back in
    offset order (the caller reads them, e.g. from Kafka; events outside the
    window's ranges are skipped here, so reading whole partitions is fine).
    They are admitted by the same rule as during the retrain, and events the
    task cannot learn from are skipped as the retrainer dead-lettered them.
    Raises ``ReproduceError`` when the version has no training window or the
    admitted events are not the recorded ones (count and digest of event ids),
    ``VersionNotFoundError`` for an unknown version. Compare the result with
    the record's ``content_hash``; a different river or Python version than
    the record's ``library_versions`` may legitimately change it.
    """
    record = registry.get(model_id, version)
    window = record.training_window
    model_config = record.config.get("model")
    if not window.ranges or window.start_ts is None or not isinstance(model_config, dict):
        raise ReproduceError(
            f"{model_id} {version}: not trained by the retrainer, nothing to rebuild"
        )
    spec = ModelSpec.from_config(model_config)
    challenger = (
        Challenger.fresh(spec)
        if record.parent_version is None
        else Challenger.from_artifact(registry.artifact(model_id, record.parent_version), spec)
    )
    recorder = WindowRecorder(
        model_id, start_ts=window.start_ts, start_event_id=window.start_event_id or ""
    )
    for example in events:
        if not in_window(window, example) or not recorder.admits(example):
            continue
        try:
            challenger.step(example.features, example.actual)
        except RetrainInputError:
            continue
        recorder.record(example)
    rebuilt = recorder.window()
    if (rebuilt.event_count, rebuilt.events_digest) != (window.event_count, window.events_digest):
        raise ReproduceError(
            f"{model_id} {version}: the events read back are not the recorded ones "
            f"({rebuilt.event_count} admitted, {window.event_count} recorded"
            + ("" if rebuilt.event_count != window.event_count else ", different event ids")
            + ")"
        )
    return content_hash(challenger.artifact())
