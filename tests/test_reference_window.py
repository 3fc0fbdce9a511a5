"""``reference = "champion"``: the champion's recorded training window as the reference.

The window is read back by a function given to ``champion_references`` (on the
cluster, ``stream_mlops.kafka.retrain_inputs.WindowReader``); here an in-memory
list of labeled examples stands for the topic.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from stream_mlops.config import parse_settings
from stream_mlops.engine import Engine
from stream_mlops.events import DriftAlert
from stream_mlops.reference import ReferenceError
from stream_mlops.reference_window import WindowReader, champion_references, needs_champion
from stream_mlops.registry import ModelRegistry, OffsetRange, TrainingWindow
from stream_mlops.retrain.inputs import LabeledExample, SourcePosition
from tests.streams import T0, classifier

TOPIC = "labeled-events"


def _topic(n: int, *, seed: int = 21) -> list[LabeledExample]:
    """Labeled examples of model fraud at offsets 0..n-1 (f0, f1 ~ N(0, 1))."""
    out: list[LabeledExample] = []
    predictions = {}
    for e in classifier(n, seed=seed):
        if e.type == "prediction":
            predictions[e.event_id] = e
            continue
        p = predictions[e.event_id]
        out.append(
            LabeledExample(
                event_id=p.event_id,
                model_id="fraud",
                model_version="v1",
                ts=p.epoch,
                features=p.features,
                prediction=p.prediction,
                actual=e.actual,
                source=SourcePosition(TOPIC, 0, len(out)),
            )
        )
    return out


def _registry(tmp_path: Path, window: TrainingWindow, *, promote: bool = True) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "registry")
    v1 = registry.register("fraud", b"initial", created_ts=T0)
    v2 = registry.register(
        "fraud", b"retrained", created_ts=T0 + 1, parent_version=v1.version, training_window=window
    )
    if promote:
        registry.promote("fraud", v2.version, ts=T0 + 2)
    return registry


def _window(first: int, last: int, count: int) -> TrainingWindow:
    return TrainingWindow(
        ranges=(OffsetRange(topic=TOPIC, partition=0, first_offset=first, last_offset=last),),
        start_ts=T0,
        start_event_id="e0",
        event_count=count,
    )


SETTINGS = parse_settings({"models": {"fraud": {"reference": "champion"}}})


def _reader(examples: list[LabeledExample]) -> WindowReader:
    def read(window: TrainingWindow) -> Iterable[LabeledExample]:
        return iter(examples)

    return read


def test_the_champions_window_pins_the_features_and_the_outcome(tmp_path: Path) -> None:
    topic = _topic(3_000)
    registry = _registry(tmp_path, _window(500, 2_499, 2_000))
    assert needs_champion(SETTINGS)
    references = champion_references(SETTINGS, registry, _reader(topic))
    fraud = references["fraud"]
    assert len(fraud.events) == 2_000  # only the window's offsets
    assert fraud.source == "fraud v2 training window"
    # Scored by the parent: no scores of the champion's own.
    assert fraud.labeled("v2") == []
    engine = Engine(SETTINGS, references=references)
    # A stream starting with f0 shifted by 0.7 sd: found against the window.
    shifted = classifier(3_000, feature_means=lambda i: [0.7, 0.0], seed=22)
    alerts = [
        o.signal
        for e in shifted
        for o in engine.process(e)
        if isinstance(o, DriftAlert) and o.severity == "drift"
    ]
    assert "feature:f0" in alerts
    state = engine._models[("fraud", "v1")]
    assert state.features["f0"].pinned and state.outcomes["outcome"].pinned
    assert state.score is not None and not state.score.pinned


def test_a_window_past_the_topics_retention_is_a_clear_error(tmp_path: Path) -> None:
    topic = _topic(3_000)[1_000:]  # offsets below 1,000 were deleted
    registry = _registry(tmp_path, _window(500, 2_499, 2_000))
    with pytest.raises(
        ReferenceError,
        match=r'models\.fraud\.reference: "champion": fraud v2: 1500 of the 2000 events .*'
        r"retention",
    ):
        champion_references(SETTINGS, registry, _reader(topic))


def test_a_champion_without_a_recorded_window_or_no_champion_is_a_clear_error(
    tmp_path: Path,
) -> None:
    registry = _registry(tmp_path / "a", TrainingWindow())
    with pytest.raises(ReferenceError, match="has no recorded training window"):
        champion_references(SETTINGS, registry, _reader([]))
    unpromoted = _registry(tmp_path / "b", _window(0, 9, 10), promote=False)
    with pytest.raises(ReferenceError, match="model 'fraud' has no champion yet"):
        champion_references(SETTINGS, unpromoted, _reader([]))
