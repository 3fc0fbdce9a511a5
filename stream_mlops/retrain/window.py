"""Which labeled events a challenger learns, and the training window that records them."""

from __future__ import annotations

import hashlib

from stream_mlops.registry.records import OffsetRange, TrainingWindow
from stream_mlops.retrain.inputs import LabeledExample


class WindowRecorder:
    """Admits the events of one retrain and records what was learned.

    An event is admitted when it belongs to the model, its event time is at or
    after the request's ``window_start`` (labeled events arrive in outcome
    order, so earlier, pre-drift predictions still turn up after the start),
    and its ``event_id`` was not admitted before (a re-delivered event must not
    count twice). The same rule selects the events again in ``reproduce``.

    >>> from stream_mlops.retrain.inputs import SourcePosition
    >>> recorder = WindowRecorder("fraud", start_ts=100.0, start_event_id="e1")
    >>> def event(i, ts):
    ...     return LabeledExample(f"e{i}", "fraud", "v1", ts, {}, 0, 0,
    ...                           SourcePosition("labeled-events", 0, 40 + i))
    >>> for e in [event(0, 99.0), event(1, 100.0), event(2, 101.5), event(1, 100.0)]:
    ...     if recorder.admits(e):
    ...         recorder.record(e)
    >>> window = recorder.window()
    >>> window.event_count, window.ranges[0].first_offset, window.ranges[0].last_offset
    (2, 41, 42)
    """

    def __init__(self, model_id: str, *, start_ts: float, start_event_id: str) -> None:
        self.model_id = model_id
        self.start_ts = start_ts
        self.start_event_id = start_event_id
        self._seen: set[str] = set()
        self._ranges: dict[tuple[str, int], tuple[int, int]] = {}
        self._first_ts: float | None = None
        self._last_ts: float | None = None
        # A chained sha256 instead of a live hashlib object, so the recorder pickles.
        self._digest = b""

    def admits(self, example: LabeledExample) -> bool:
        return (
            example.model_id == self.model_id
            and example.ts >= self.start_ts
            and example.event_id not in self._seen
        )

    def record(self, example: LabeledExample) -> None:
        self._seen.add(example.event_id)
        source = example.source
        key = (source.topic, source.partition)
        first, last = self._ranges.get(key, (source.offset, source.offset))
        self._ranges[key] = (min(first, source.offset), max(last, source.offset))
        self._first_ts = example.ts if self._first_ts is None else min(self._first_ts, example.ts)
        self._last_ts = example.ts if self._last_ts is None else max(self._last_ts, example.ts)
        event_id = example.event_id.encode()
        self._digest = hashlib.sha256(
            self._digest + len(event_id).to_bytes(4, "big") + event_id
        ).digest()

    @property
    def count(self) -> int:
        return len(self._seen)

    def window(self) -> TrainingWindow:
        return TrainingWindow(
            ranges=tuple(
                OffsetRange(topic=topic, partition=partition, first_offset=first, last_offset=last)
                for (topic, partition), (first, last) in sorted(self._ranges.items())
            ),
            start_ts=self.start_ts,
            start_event_id=self.start_event_id,
            first_event_ts=self._first_ts,
            last_event_ts=self._last_ts,
            event_count=self.count,
            events_digest=self._digest.hex() if self._digest else None,
        )


def in_window(window: TrainingWindow, example: LabeledExample) -> bool:
    """Whether the event's Kafka position lies inside one of the window's ranges."""
    source = example.source
    return any(
        r.topic == source.topic
        and r.partition == source.partition
        and r.first_offset <= source.offset <= r.last_offset
        for r in window.ranges
    )
