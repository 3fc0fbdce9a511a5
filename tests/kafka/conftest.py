"""Fixtures of the Kafka edge's tests (the broker fixtures are in ``tests/conftest.py``)."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator

import pytest

from stream_mlops.kafka import task_runtime


@pytest.fixture
def dead_servers() -> Iterator[str]:
    """An address where nothing listens (a port just bound and released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield f"127.0.0.1:{port}"


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Undo the process-wide collector settings a runtime makes (``kafka.memory``)."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.fixture
def process_settings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The runtime's process-wide collector settings, recorded instead of applied.

    A restore's ``freeze_long_lived`` is a full collection of the whole test
    process, slow in a large one, and changes the collector for every later
    test; ``tests/kafka/test_memory.py`` tests the settings themselves.
    """
    calls: list[str] = []

    def freeze() -> int:
        calls.append("freeze")
        return 0

    monkeypatch.setattr(task_runtime, "tune_gc", lambda: calls.append("tune_gc"))
    monkeypatch.setattr(task_runtime, "freeze_long_lived", freeze)
    return calls
