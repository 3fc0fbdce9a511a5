"""The output of a simulator: records to publish, in event-time order.

A simulator yields ``Emission`` s: predictions as they are scored, and each
outcome at the event time its label arrives. ``Timeline`` holds the outcomes
not yet due and releases them between predictions, so the merged stream is
ordered by event time (ties: earlier-scheduled first) and the same seed gives
the same sequence.

>>> timeline = Timeline()
>>> timeline.schedule(Emission(5.0, "outcome", "b", {"event_id": "b"}))
>>> timeline.schedule(Emission(2.0, "outcome", "a", {"event_id": "a"}))
>>> [e.key for e in timeline.due(3.0)], len(timeline)
(['a'], 1)
>>> [e.key for e in timeline.drain()]
['b']
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from stream_mlops.events import dumps

Kind = Literal["prediction", "outcome"]
EventDict = dict[str, Any]

# Event time starts here unless told otherwise: a fixed instant, so that the
# same seed gives byte-identical events whatever day it is run.
DEFAULT_START_TS = datetime(2026, 11, 27, tzinfo=UTC).timestamp()


class Emission(NamedTuple):
    """One record to publish.

    ``payload`` is the event as a JSON-ready dict (field names as in
    ``docs/contract.md``, "Events"), or, for a deliberately malformed record, the raw bytes to send;
    ``defect`` then says what is wrong with it (None for a valid event).
    """

    at: float
    kind: Kind
    key: str
    payload: EventDict | bytes
    defect: str | None = None

    def value(self) -> bytes:
        """The record value: UTF-8 JSON with the event's field order, or the raw bytes."""
        return self.payload if isinstance(self.payload, bytes) else to_json(self.payload)


def to_json(value: EventDict | list[Any]) -> bytes:
    """Compact UTF-8 JSON, keys in insertion order (``type`` first, as docs/contract.md shows).

    >>> to_json({"type": "outcome", "event_id": "e", "actual": 1})
    b'{"type":"outcome","event_id":"e","actual":1}'
    """
    return dumps(value, sort_keys=False)


def iso_utc(epoch: float) -> str:
    """Event time as ISO-8601 UTC with milliseconds, the form docs/contract.md shows.

    >>> iso_utc(DEFAULT_START_TS + 0.1234)
    '2026-11-27T00:00:00.123Z'
    """
    millis = round(epoch * 1000)
    seconds, ms = divmod(millis, 1000)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{ms:03d}Z"


class Timeline:
    """Outcomes waiting for their event time, released in order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Emission]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, emission: Emission) -> None:
        heapq.heappush(self._heap, (emission.at, next(self._seq), emission))

    def due(self, until: float) -> Iterator[Emission]:
        """Everything scheduled at or before ``until``, earliest first."""
        while self._heap and self._heap[0][0] <= until:
            yield heapq.heappop(self._heap)[2]

    def drain(self) -> Iterator[Emission]:
        while self._heap:
            yield heapq.heappop(self._heap)[2]
