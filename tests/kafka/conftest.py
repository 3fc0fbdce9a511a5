"""Fixtures of the Kafka edge's tests (the broker fixtures are in ``tests/conftest.py``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Undo the process-wide collector settings a runtime makes (``kafka.memory``)."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
