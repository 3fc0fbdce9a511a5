"""Snapshots and restores run with the cyclic collector paused, and leave it as it was."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from stream_mlops import snapshot
from stream_mlops.config import Settings
from stream_mlops.engine import Engine, SnapshotError
from tests.streams import classifier


def engine() -> Engine:
    made = Engine(Settings(), labeled_events=False)
    for event in classifier(1_500, seed=5):
        made.process(event)
    return made


def test_the_collector_is_paused_while_a_snapshot_is_written_or_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Where the work is: building the document, and reading it into an engine.
    enabled: list[tuple[str, bool]] = []
    encode, load = snapshot.encode, Engine._load

    def encoding(document: dict[str, Any]) -> bytes:
        enabled.append(("encode", gc.isenabled()))
        return encode(document)

    def loading(self: Engine, document: Any) -> None:
        enabled.append(("load", gc.isenabled()))
        load(self, document)

    monkeypatch.setattr(snapshot, "encode", encoding)
    monkeypatch.setattr(Engine, "_load", loading)
    source = engine()
    data = source.snapshot()
    assert gc.isenabled()
    restored = Engine.restore(Settings(), data, labeled_events=False)
    assert gc.isenabled()
    assert enabled == [("encode", False), ("load", False)]
    assert restored.snapshot() == data


def test_the_collector_is_left_as_it_was() -> None:
    data = engine().snapshot()
    gc.disable()
    try:
        Engine.restore(Settings(), data)
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(SnapshotError):
        Engine.restore(Settings(), data[:20])
    assert gc.isenabled()
