"""The garbage collector's settings for a long-running engine process.

CPython frees almost everything by reference counting; its generational
collector is there for reference cycles. It still visits every *tracked*
container object (models, dicts, tuples, lists) on a full collection, so a full
collection costs in proportion to the live heap, and a large long-lived state
(the pending join, river detectors) makes each one long. Two remedies, both
process-wide, so they belong to the service's entry point and not to the core:

* ``tune_gc()`` at service start: fewer young collections, so fewer objects of
  the stream (decoded events, outputs) survive into the old generation and make
  full collections due.
* ``freeze_long_lived()`` after the state is built (a restore): moves every
  object alive now to the permanent generation, which collections skip. Objects
  frozen there are still freed by reference counting when they go (a joined
  prediction, a replaced engine); only reference cycles among them wait until
  the next ``freeze_long_lived()``, which thaws before it collects.

Measured by benchmarks/pending_memory.py with 1M pending predictions held as
validated events (the join before packing; 2 shared cores): at the defaults,
10.4 s of collector pauses while building them, then 7% of a steady phase of
new predictions and matches (longest pause 34 ms), and 1.9 s for one full
collection. ``tune_gc()``: 2.5 s while building, 0% steady. ``freeze_long_lived()``
after the build: a full collection 0 ms instead of 1.9 s (but CPython then sees
a small long-lived heap and ran one full collection of the newer objects,
282 ms, in the steady phase). With packed predictions (stream_mlops/join.py)
all of these are under 0.1 s; the settings still matter for what is not packed:
pending outcomes, predictions kept as events, detectors.

>>> import gc
>>> previous = gc.get_threshold()
>>> tune_gc()
>>> gc.get_threshold() == GC_THRESHOLDS
True
>>> freeze_long_lived() > 0, gc.get_count()[2]
(True, 0)
>>> gc.unfreeze(); gc.set_threshold(*previous)
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["GC_THRESHOLDS", "freeze_long_lived", "tune_gc"]

#: Generation thresholds (young allocations, then collections of the younger
#: generation). CPython's default is (700, 10, 10): with a stream of decoded
#: events, a young collection every 700 allocations promotes in-flight events
#: to the old generations. 50,000 young allocations is a few hundred events' worth,
#: about a millisecond of work for a young collection of that size; full
#: collections are further gated by CPython itself (only when the objects
#: promoted since the last one exceed a quarter of the long-lived heap).
GC_THRESHOLDS: Final = (50_000, 20, 100)


def tune_gc() -> None:
    """Set ``GC_THRESHOLDS``; call once at service start, before building state."""
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_long_lived() -> int:
    """Collect, then move every live object out of the collector's sight.

    Call after a restore has rebuilt the state (the engine's pending entries and
    detectors), before processing resumes. Returns how many objects are frozen.
    """
    # Thaw first: cycles that died since the last freeze (e.g. the engines of
    # partitions this process no longer owns) are collected now, not kept forever.
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
