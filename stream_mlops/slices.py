"""Slices of the traffic: error and score signals per value of a feature, cardinality bounded.

A model's aggregate error can hide a segment that fails: one merchant category
going from 1% to 37% errors moves a fraud model's error from 1% to 1.6%.
``slices = ["country", "merchant_category"]`` gives each value of those
features signals of its own (``slice_signals``, by default the error and the
score), named ``slice:<feature>=<value>:<signal>``, with the detectors of the
model's own ``error`` and ``score`` (``stream_mlops.engine``).

**Bounded cardinality.** A feature may take thousands of values (or, by
mistake, one per event). Per feature, a Misra-Gries summary of
``4 * slice_top_k`` counters (``HeavyHitters``) finds the frequent values in
bounded memory: a value with more than a ``1 / (4 K + 1)`` share of the
traffic is always among its counters. The ``slice_top_k`` most frequent get
signals of their own; every other value is pooled as ``*other*``, one more
slice. Which values are tracked is decided by reviews: the first after the
version's first ``review_every`` predictions (the reference window; at once
with a pinned reference, from its counts), then every ``review_every``
predictions. A review fills free places with the most frequent untracked
values (seen at least ``_MIN_COUNT`` times), and swaps a tracked value out
only for one seen at least twice as often (hysteresis: a value near the
boundary does not come and go, which would restart its detectors each time).
When the values pooled in ``*other*`` change, its signals start afresh: the
pool is another population.

**Values.** Strings are sliced as they are; bools as ``true`` / ``false``;
integers in decimal. Other numbers (a float feature such as an amount) are
not sliced: they would give a slice per value. They are counted
(``unsliced``), and the engine says once per model version that the feature
is numeric. A missing or null value is not sliced either.

**The budget** (``stream_mlops.calibration``): the slice detectors of a model
share ``slice_budget_share`` of its false-alarm budget, split over the most
slices there can be (``len(slices) * (slice_top_k + 1)``, ``*other*``
included) whether or not they are all tracked: fifty values, or five
hundred, do not multiply the model's false alarms.

>>> hitters = HeavyHitters(2)
>>> for value in "aabacaad":
...     hitters.add(value)
>>> hitters.counts["a"]   # "a" is always kept: more than a third of the values
4
>>> slice_value("jewelry"), slice_value(True), slice_value(3), slice_value(2.5)
('jewelry', 'true', '3', None)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

from stream_mlops.events import FeatureValue, SliceStats
from stream_mlops.plain_data import FieldError, Fields, check_int, check_list, float_data
from stream_mlops.signals import SignalTrack

__all__ = [
    "OTHER",
    "SIGNALS",
    "HeavyHitters",
    "Slice",
    "SliceField",
    "Slices",
    "signal_name",
    "slice_value",
]

#: Slice features per model, and values tracked per feature, at most (config
#: and snapshots hold them to it; [limits] max_slices_per_model bounds their product).
MAX_FIELDS: Final = 16
MAX_TOP_K: Final = 1000
#: The pool of the values that are not tracked.
OTHER: Final = "*other*"
#: The signals a slice can have, in the order they are kept.
SIGNALS: Final = ("error", "score")
# A value is tracked only once seen this often: fewer says nothing of its
# share, and a one-off value (a typo) should not take a place for good.
_MIN_COUNT: Final = 30
# A tracked value gives its place only to one seen this many times as often.
_HYSTERESIS: Final = 2


def slice_value(value: FeatureValue | None) -> str | None:
    """A feature value as a slice's value; None where it is not sliced."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    return None


def signal_name(feature: str, value: str, signal: str) -> str:
    """``slice:<feature>=<value>:<signal>`` (docs/contract.md)."""
    return f"slice:{feature}={value}:{signal}"


class HeavyHitters:
    """Misra-Gries: at most ``capacity`` counters, each value's count underestimated
    by at most ``seen / (capacity + 1)``.

    A value not counted yet, when every counter is taken, lowers them all by
    one (and drops those that reach zero) instead of taking one: amortised
    O(1) per value, and deterministic (no hashing order involved).
    """

    __slots__ = ("capacity", "counts", "seen")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.counts: dict[str, int] = {}
        self.seen = 0

    def add(self, value: str, times: int = 1) -> None:
        self.seen += times
        counts = self.counts
        found = counts.get(value)
        if found is not None:
            counts[value] = found + times
            return
        while times and len(counts) >= self.capacity:
            low = min(*counts.values(), times)
            self.counts = counts = {k: c - low for k, c in counts.items() if c > low}
            times -= low
        if times:
            counts[value] = times


class Slice:
    """One slice's signals and counts."""

    __slots__ = ("error", "head", "predictions", "score", "start", "value")

    def __init__(self, value: str, *, head: int = 0, start: int = 0) -> None:
        self.value = value
        #: the value's count when it was tracked, and predictions since
        self.head = head
        self.predictions = 0
        #: the feature's sliced predictions when it was tracked (for its share)
        self.start = start
        self.error: SignalTrack | None = None
        self.score: SignalTrack | None = None

    @property
    def count(self) -> int:
        return self.head + self.predictions

    def tracks(self) -> Iterator[SignalTrack]:
        for track in (self.error, self.score):
            if track is not None:
                yield track

    def state(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "head": self.head,
            "predictions": self.predictions,
            "start": self.start,
            **{
                signal: None if (t := getattr(self, signal)) is None else t.state()
                for signal in SIGNALS
            },
        }

    @classmethod
    def from_state(cls, fields: Fields, feature: str) -> Slice:
        found = cls(
            fields.string("value"),
            head=fields.integer("head", low=0),
            start=fields.integer("start", low=0),
        )
        found.predictions = fields.integer("predictions", low=0)
        for signal in SIGNALS:
            data = fields.optional_child(signal)
            if data is not None:
                track = SignalTrack.from_state(data)
                expected = signal_name(feature, found.value, signal)
                if track.name != expected:
                    raise FieldError(
                        f"{data.at('name')}: expected {expected!r}, got {track.name!r}"
                    )
                setattr(found, signal, track)
        fields.done()
        return found


#: Builds a new slice's signals: (feature, value, head, start) -> Slice.
SliceMaker = Callable[[str, str, int, int], Slice]


class SliceField:
    """One slice feature: its value counts, its tracked values and ``*other*``."""

    __slots__ = ("hitters", "name", "other", "sliced", "tracked", "unsliced")

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.hitters = HeavyHitters(capacity)
        self.tracked: dict[str, Slice] = {}
        self.other: Slice | None = None
        #: predictions with a value sliced, and with one that is not (a float)
        self.sliced = 0
        self.unsliced = 0

    def route(self, value: str) -> Slice | None:
        """The slice of a value: its own, or ``*other*`` (None before the first review)."""
        return self.tracked.get(value) or self.other

    def review(self, top_k: int, make: SliceMaker) -> list[Slice]:
        """Track the most frequent values (see the module docstring); the slices
        dropped (a value swapped out, ``*other*`` made afresh)."""
        tracked = self.tracked
        candidates = sorted(
            ((v, c) for v, c in self.hitters.counts.items() if v not in tracked),
            key=lambda item: (-item[1], item[0]),
        )
        dropped: list[Slice] = []
        added = False
        for value, count in candidates:
            if count < _MIN_COUNT:
                break
            if len(tracked) >= top_k:
                weakest = min(tracked.values(), key=lambda s: (s.count, s.value))
                if count < _HYSTERESIS * weakest.count:
                    break
                dropped.append(tracked.pop(weakest.value))
            tracked[value] = make(self.name, value, count, self.sliced)
            added = True
        if added or self.other is None:
            # The pool's population changed: its signals start afresh.
            if self.other is not None:
                dropped.append(self.other)
            self.other = make(self.name, OTHER, 0, self.sliced)
        return dropped

    def stats(self, found: Slice) -> SliceStats:
        routed = self.sliced - found.start
        return SliceStats(
            feature=self.name,
            value=found.value,
            predictions=found.predictions,
            share=found.predictions / routed if routed else 0.0,
        )

    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "capacity": self.hitters.capacity,
            "counts": [[v, c] for v, c in self.hitters.counts.items()],
            "seen": self.hitters.seen,
            "sliced": self.sliced,
            "unsliced": self.unsliced,
            "tracked": [s.state() for s in self.tracked.values()],
            "other": None if self.other is None else self.other.state(),
        }

    @classmethod
    def from_state(cls, fields: Fields, top_k: int) -> SliceField:
        found = cls(fields.string("name"), fields.integer("capacity", low=1, high=4 * top_k))
        capacity = found.hitters.capacity
        for i, pair in enumerate(fields.items("counts", max_len=capacity)):
            at = f"{fields.at('counts')}[{i}]"
            items = check_list(pair, at)
            if len(items) != 2 or type(items[0]) is not str or items[0] in found.hitters.counts:
                raise FieldError(f"{at}: expected [value, count], each value once")
            found.hitters.counts[items[0]] = check_int(items[1], f"{at}[1]", low=1)
        found.hitters.seen = fields.integer("seen", low=0)
        found.sliced = fields.integer("sliced", low=0)
        found.unsliced = fields.integer("unsliced", low=0)
        for i, data in enumerate(fields.items("tracked", max_len=top_k)):
            one = Slice.from_state(Fields(data, f"{fields.at('tracked')}[{i}]"), found.name)
            if one.value in found.tracked or one.value == OTHER:
                raise FieldError(f"{fields.at('tracked')}[{i}]: value {one.value!r} again")
            found.tracked[one.value] = one
        other = fields.optional_child("other")
        if other is not None:
            found.other = Slice.from_state(other, found.name)
            if found.other.value != OTHER:
                raise FieldError(f"{other.at('value')}: expected {OTHER!r}")
        fields.done()
        return found


class Slices:
    """The slices of one model version: one ``SliceField`` per slice feature."""

    __slots__ = (
        "false_alarm_rate",
        "fields",
        "make",
        "next_review",
        "predictions",
        "review_every",
        "top_k",
    )

    def __init__(
        self,
        features: list[str],
        *,
        top_k: int,
        review_every: int,
        false_alarm_rate: float | None = None,
    ) -> None:
        self.top_k = top_k
        self.review_every = review_every
        self.fields = [SliceField(name, 4 * top_k) for name in features]
        self.predictions = 0
        self.next_review = review_every
        #: Each slice detector's share of the model's budget (None: uncalibrated).
        self.false_alarm_rate = false_alarm_rate
        #: Builds a slice's signals; set by the engine (not state).
        self.make: SliceMaker | None = None

    def review(self) -> list[str]:
        """Track the most frequent values now; the names of the signals dropped."""
        assert self.make is not None
        dropped: list[str] = []
        for field in self.fields:
            for gone in field.review(self.top_k, self.make):
                dropped += [track.name for track in gone.tracks()]
        return dropped

    def count_prediction(self) -> list[str]:
        """One more prediction of the version; a review when one is due (the
        names of the signals it dropped)."""
        self.predictions += 1
        if self.predictions < self.next_review:
            return []
        self.next_review += self.review_every
        return self.review()

    def tracks(self) -> Iterator[SignalTrack]:
        for field in self.fields:
            for one in field.tracked.values():
                yield from one.tracks()
            if field.other is not None:
                yield from field.other.tracks()

    @property
    def unsliced(self) -> int:
        return sum(field.unsliced for field in self.fields)

    def state(self) -> dict[str, Any]:
        return {
            "top_k": self.top_k,
            "review_every": self.review_every,
            "predictions": self.predictions,
            "next_review": self.next_review,
            "false_alarm_rate": None
            if self.false_alarm_rate is None
            else float_data(self.false_alarm_rate),
            "fields": [field.state() for field in self.fields],
        }

    @classmethod
    def from_state(cls, fields: Fields) -> Slices:
        found = cls([], top_k=fields.integer("top_k", low=1, high=MAX_TOP_K), review_every=1)
        found.review_every = fields.integer("review_every", low=1)
        found.predictions = fields.integer("predictions", low=0)
        found.next_review = fields.integer("next_review", low=1)
        found.false_alarm_rate = fields.optional_number("false_alarm_rate")
        for i, data in enumerate(fields.items("fields", max_len=MAX_FIELDS)):
            found.fields.append(
                SliceField.from_state(Fields(data, f"{fields.at('fields')}[{i}]"), found.top_k)
            )
        fields.done()
        return found
