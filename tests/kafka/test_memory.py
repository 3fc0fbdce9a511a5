from __future__ import annotations

import gc
import weakref

import pytest

from stream_mlops.kafka.memory import GC_THRESHOLDS, freeze_long_lived, tune_gc


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.mark.usefixtures("restored_gc")
def test_tune_gc_sets_the_documented_thresholds() -> None:
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS


@pytest.mark.usefixtures("restored_gc")
def test_frozen_objects_are_skipped_until_the_next_freeze_collects_their_cycles() -> None:
    node = Node()
    dead = weakref.ref(node)
    assert freeze_long_lived() > 0
    del node
    gc.collect()
    assert dead() is not None  # frozen: a full collection does not look at it
    freeze_long_lived()  # e.g. after the next rebalance's restore
    assert dead() is None
