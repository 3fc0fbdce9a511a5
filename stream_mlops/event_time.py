"""Event time that one record cannot own: how far ahead an event may be.

The join's watermark is the latest event time seen; entries expire against it.
One outcome with ``ts: "9999-12-31T00:00:00Z"`` once moved it to that year for
good: every later prediction and outcome expired on arrival and the error
detectors never saw another label. Three rules keep event time with the
stream (``[join]`` settings):

* **Ahead of the watermark.** An event more than ``max_ahead_of_watermark_seconds``
  ahead of the watermark is refused (``EventTimeError``: a dead letter on
  Kafka, a reported line in a replay). A stream that really jumped (a gap
  longer than the bound: producers down for a week) is told from one bad
  record by agreement: after ``jump_after_events`` such events in a row, the
  last of them is accepted and moves the watermark (the ones before it were
  refused, and are in the dead letters to replay).
* **Ahead of the wall clock.** The core has no clock: the edge passes the wall
  time (``Engine.process(..., now=...)``) and an event more than
  ``max_ahead_of_wall_clock_seconds`` after it is refused, whatever the
  watermark. Without a wall time (``now=None``) this rule is off.
  ``stream-mlops replay`` passes none by default (a file is judged by its own
  event time, so its output depends on the file alone); ``--wall-clock now``
  or ``--wall-clock TIME`` judges it against that time.
* **The first event.** With no watermark yet there is nothing to be ahead of,
  so the watermark starts only when two events agree: the later of the first
  two whose times are within ``max_ahead_of_watermark_seconds`` of each other
  (``join.PendingJoin``). A bad first event is then just one pending entry.

>>> bound = EventTimeBound(max_ahead=3600.0, max_ahead_of_wall_clock=60.0, jump_after=3)
>>> bound.check(1000.0, watermark=900.0, now=None)
>>> bound.check(99999.0, watermark=900.0, now=None)
Traceback (most recent call last):
...
stream_mlops.event_time.EventTimeError: ts: 1970-01-02T03:46:39Z is 99099 s ahead of the \
watermark 1970-01-01T00:15:00Z; at most 3600 s ([join] max_ahead_of_watermark_seconds)
>>> bound.check(1000.0, watermark=900.0, now=500.0)
Traceback (most recent call last):
...
stream_mlops.event_time.EventTimeError: ts: 1970-01-01T00:16:40Z is 500 s ahead of the \
wall clock 1970-01-01T00:08:20Z; at most 60 s ([join] max_ahead_of_wall_clock_seconds)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Final

from stream_mlops.events import EventError

__all__ = ["EventTimeBound", "EventTimeCounts", "EventTimeError"]

_NO_WATERMARK: Final = float("-inf")


class EventTimeError(EventError):
    """An event whose time is too far ahead to be believed; the message says of what."""


@dataclass(slots=True)
class EventTimeCounts:
    """What the bound refused, and how often the stream was let jump."""

    refused_ahead_of_watermark: int = 0
    refused_ahead_of_wall_clock: int = 0
    watermark_jumps: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _iso(epoch: float) -> str:
    try:
        moment = datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return repr(epoch)
    return moment.isoformat().replace("+00:00", "Z")


class EventTimeBound:
    """Refuses events too far ahead of the watermark or of the wall clock.

    ``None`` turns a rule off. ``check`` raises before anything else changes,
    so a refused event leaves the engine as it was (but for the counts and the
    run of refused events that ``jump_after`` counts).
    """

    __slots__ = ("counts", "jump_after", "max_ahead", "max_ahead_of_wall_clock", "run")

    def __init__(
        self,
        *,
        max_ahead: float | None,
        max_ahead_of_wall_clock: float | None,
        jump_after: int,
    ) -> None:
        if jump_after < 1:
            raise ValueError("jump_after must be at least 1")
        self.max_ahead = max_ahead
        self.max_ahead_of_wall_clock = max_ahead_of_wall_clock
        self.jump_after = jump_after
        self.counts = EventTimeCounts()
        #: events in a row refused for being ahead of the watermark
        self.run = 0

    def check(self, epoch: float, *, watermark: float, now: float | None) -> None:
        """Accept the event time, or raise ``EventTimeError`` saying why not."""
        ahead_of_clock = self.max_ahead_of_wall_clock
        if now is not None and ahead_of_clock is not None and epoch > now + ahead_of_clock:
            self.counts.refused_ahead_of_wall_clock += 1
            raise EventTimeError(
                f"ts: {_iso(epoch)} is {epoch - now:.0f} s ahead of the wall clock {_iso(now)}; "
                f"at most {ahead_of_clock:.0f} s ([join] max_ahead_of_wall_clock_seconds)"
            )
        ahead = self.max_ahead
        # (No watermark yet, -inf: nothing to be ahead of; see PendingJoin.)
        if ahead is not None and epoch > watermark + ahead and watermark != _NO_WATERMARK:
            self.run += 1
            if self.run < self.jump_after:
                self.counts.refused_ahead_of_watermark += 1
                raise EventTimeError(
                    f"ts: {_iso(epoch)} is {epoch - watermark:.0f} s ahead of the watermark "
                    f"{_iso(watermark)}; at most {ahead:.0f} s "
                    "([join] max_ahead_of_watermark_seconds)"
                )
            self.counts.watermark_jumps += 1  # the stream moved on: let it
        self.run = 0
