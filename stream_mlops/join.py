"""The delayed-label join: predictions wait for their outcomes, and the reverse.

Entries are keyed by ``event_id`` and bounded twice: by a time-to-live in event
time (against the watermark, the latest event time seen) and by a maximum number
of pending entries (predictions plus outcomes). Nothing leaves silently: every
prediction ends joined, expired, evicted or still pending, and duplicates are
counted and ignored.

Memory: a day of predictions can wait here, so a pending prediction is packed
(``stream_mlops.packed.PredictionPacker``): one ``bytes`` record, numbers in the
record and what predictions share (model, version, feature names and types) in
a layout, instead of a validated pydantic model with its dicts, floats and
datetime. A match rebuilds the very event that went in (``==`` and the same
``encode()`` bytes); a prediction the packer cannot carry exactly is kept as it
is, as are pending outcomes (fewer: an outcome usually finds its prediction).
Measured with 1M pending predictions of 8 float features
(benchmarks/pending_memory.py, 2 shared cores): RSS 2,188 -> 290 bytes per
entry (peak 2,224 -> 325 MB; the target is under 500 MB); collector pauses while
building them 10.4 -> 0.02 s, one full ``gc.collect()`` with them held 1.9 s ->
0.09 s. What is left per entry: the ``event_id`` string (64 B), the record
(144 B with 8 features) and the OrderedDict's slot and link (~80 B). The price is
CPU in the join itself: 6.7 -> 16.8 us per insert and 16 -> 42 us per
prediction and its match (packing, and rebuilding the event on the match),
measured side by side with the collector off; with it on, the old join paid
about 10 us per insert in collector pauses. So only predictions that wait are
packed: the newest ``hot_predictions`` (default 20,000) stay events, and an
outcome that comes while its prediction is among them costs what it did before.

>>> from stream_mlops.events import OutcomeEvent, PredictionEvent
>>> join = PendingJoin(ttl_seconds=60, max_pending=10)
>>> p = PredictionEvent(event_id="a", model_id="m", model_version="v1", ts=0,
...                     features={}, prediction=1)
>>> join.add_prediction(p, 0.0, offset=7) is None    # waits for its outcome
True
>>> match = join.add_outcome(OutcomeEvent(event_id="a", ts=5, actual=0), 5.0)
>>> match.prediction == p, match.outcome.actual
(True, 0)
>>> join.add_outcome(OutcomeEvent(event_id="a", ts=6, actual=0), 6.0) is DUPLICATE
True
>>> join.counts.joined, join.counts.duplicate_outcomes
(1, 1)
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Final, NamedTuple

from stream_mlops.events import OutcomeEvent, PredictionEvent
from stream_mlops.offsets import OffsetSet
from stream_mlops.packed import PredictionPacker

__all__ = ["DUPLICATE", "Duplicate", "JoinCounts", "Match", "PendingJoin"]


class Match(NamedTuple):
    """A prediction and its outcome, joined (with the prediction's event time)."""

    prediction: PredictionEvent
    outcome: OutcomeEvent
    prediction_epoch: float


class Duplicate:
    """The answer for an ``event_id`` already pending or already joined."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DUPLICATE"


DUPLICATE: Final = Duplicate()


@dataclass(slots=True)
class JoinCounts:
    """What happened to every entry that went through the join."""

    joined: int = 0
    duplicate_predictions: int = 0
    duplicate_outcomes: int = 0
    expired_predictions: int = 0
    orphan_outcomes_expired: int = 0
    evicted_predictions: int = 0
    evicted_outcomes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: Pending predictions kept as events before they are packed (the newest ones).
#: A prediction with 8 features is about 2.2 KB as an event, 0.3 KB packed, and
#: packing plus rebuilding costs about 25 us (benchmarks/pending_memory.py):
#: 20,000 hot ones are about 44 MB, and labels that come within 20,000
#: predictions never pay for packing.
HOT_PREDICTIONS: Final = 20_000

# A pending entry: the event, its event time (epoch seconds) and its source
# offset (None when the caller has none, e.g. a replay from stdin). A pending
# prediction is usually packed instead (see PredictionPacker): bytes holding all
# three.
_Prediction = tuple[PredictionEvent, float, int | None]
_PendingPrediction = bytes | _Prediction
_Outcome = tuple[OutcomeEvent, float, int | None]
_NO_WATERMARK: Final = float("-inf")


class PendingJoin:
    """Pending predictions and outcomes, matched by ``event_id``.

    Expiry runs in insertion order: an entry expires when it is the oldest
    inserted one still pending and its event time is ``ttl_seconds`` behind the
    watermark. With events roughly in event-time order (the normal case) that is
    exactly the TTL; an entry that arrived late in event time may wait until the
    entries inserted before it have gone. This keeps each step O(1).

    Joined ids are remembered (as long as the TTL, at most ``max_pending`` of them)
    so a replayed prediction or outcome is recognised as a duplicate.

    With ``start_within``, the watermark starts only when two events agree: the
    later of the first two whose event times are at most ``start_within``
    apart (``stream_mlops.event_time``); before, the watermark is -inf and
    nothing expires. A first event from the far future is then one pending
    entry, not the end of every join.
    """

    __slots__ = (
        "_expired_below",
        "_exposed",
        "_hot",
        "_joined_ids",
        "_outcomes",
        "_packer",
        "_predictions",
        "counts",
        "first_epoch",
        "hot_predictions",
        "max_pending",
        "outcome_offsets",
        "prediction_offsets",
        "start_within",
        "ttl_seconds",
        "watermark",
    )

    def __init__(
        self,
        ttl_seconds: float,
        max_pending: int,
        *,
        hot_predictions: int = HOT_PREDICTIONS,
        start_within: float | None = None,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be greater than 0")
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.ttl_seconds = ttl_seconds
        self.max_pending = max_pending
        self.watermark = float("-inf")
        self.start_within = start_within
        #: the event time that waits for a second one to start the watermark
        self.first_epoch: float | None = None
        self.counts = JoinCounts()
        self.prediction_offsets = OffsetSet()
        self.outcome_offsets = OffsetSet()
        self._packer = PredictionPacker()
        self.hot_predictions = hot_predictions
        # Keys of the newest pending predictions, kept unpacked (may hold keys
        # that have left since; they are skipped when their turn comes).
        self._hot: deque[str] = deque()
        # _expire's memo: every head is at or past this horizon, and no entry
        # has been removed from the middle or inserted out of order since.
        self._expired_below = float("-inf")
        self._exposed = False
        self._predictions: OrderedDict[str, _PendingPrediction] = OrderedDict()
        self._outcomes: OrderedDict[str, _Outcome] = OrderedDict()
        self._joined_ids: OrderedDict[str, float] = OrderedDict()

    @property
    def pending_predictions(self) -> int:
        return len(self._predictions)

    @property
    def pending_outcomes(self) -> int:
        return len(self._outcomes)

    def add_prediction(
        self, event: PredictionEvent, epoch: float, offset: int | None = None
    ) -> Match | Duplicate | None:
        """Its outcome if one was waiting, DUPLICATE, or None (pending, or expired
        at once when its event time is already past the TTL)."""
        result = self._add_prediction(event, epoch, offset)
        self._expire()
        return result

    def _add_prediction(
        self, event: PredictionEvent, epoch: float, offset: int | None = None
    ) -> Match | Duplicate | None:
        self._advance(epoch)
        key = event.event_id
        if key in self._predictions or key in self._joined_ids:
            self.counts.duplicate_predictions += 1
            return DUPLICATE
        waiting = self._outcomes.pop(key, None)
        if waiting is not None:
            self._exposed = True  # it may have been a head
            if waiting[2] is not None:
                self.outcome_offsets.discard(waiting[2])
            self._joined(key)
            return Match(event, waiting[0], epoch)
        if epoch < self.watermark - self.ttl_seconds:
            self.counts.expired_predictions += 1  # arrived already past its TTL
            return None
        self._keep_prediction(key, (event, epoch, offset))
        if offset is not None:
            self.prediction_offsets.add(offset)
        self._bound()
        return None

    def _keep_prediction(self, key: str, entry: _Prediction) -> None:
        """Pending, as an event while among the newest ``hot_predictions``, packed after.

        Most outcomes come while their prediction is still hot, so the packing
        and rebuilding cost is paid only by predictions that wait long, the
        ones that make the join large.
        """
        self._predictions[key] = entry
        hot = self._hot
        hot.append(key)
        if len(hot) > self.hot_predictions:
            # The oldest hot key may have joined or expired since: then skip it.
            # Assigning to an existing key keeps its place in insertion order.
            oldest = hot.popleft()
            record = self._predictions.get(oldest)
            if type(record) is tuple:
                packed = self._packer.pack(*record)
                if packed is not None:
                    self._predictions[oldest] = packed

    def add_outcome(
        self, event: OutcomeEvent, epoch: float, offset: int | None = None
    ) -> Match | Duplicate | None:
        """Its prediction if one was waiting, DUPLICATE, or None (now pending)."""
        result = self._add_outcome(event, epoch, offset)
        self._expire()
        return result

    def _add_outcome(
        self, event: OutcomeEvent, epoch: float, offset: int | None = None
    ) -> Match | Duplicate | None:
        self._advance(epoch)
        key = event.event_id
        if key in self._outcomes or key in self._joined_ids:
            self.counts.duplicate_outcomes += 1
            return DUPLICATE
        waiting = self._predictions.pop(key, None)
        if waiting is not None:
            self._exposed = True  # it may have been a head
            prediction, when, offset = self._unpack(key, waiting)
            if offset is not None:
                self.prediction_offsets.discard(offset)
            self._joined(key)
            return Match(prediction, event, when)
        if epoch < self.watermark - self.ttl_seconds:
            self.counts.orphan_outcomes_expired += 1  # arrived already past its TTL
            return None
        self._outcomes[key] = (event, epoch, offset)
        if offset is not None:
            self.outcome_offsets.add(offset)
        self._bound()
        return None

    def restore_prediction(self, event: PredictionEvent, epoch: float, offset: int) -> None:
        """Re-insert a prediction pending at the snapshot: no counts, no expiry."""
        self._keep_prediction(event.event_id, (event, epoch, offset))
        self.prediction_offsets.add(offset)
        self._exposed = True  # re-inserted in offset order, not event-time order

    def restore_outcome(self, event: OutcomeEvent, epoch: float, offset: int) -> None:
        """Re-insert an outcome pending at the snapshot: no counts, no expiry."""
        self._outcomes[event.event_id] = (event, epoch, offset)
        self.outcome_offsets.add(offset)
        self._exposed = True

    def _unpack(self, key: str, record: _PendingPrediction) -> _Prediction:
        if type(record) is bytes:
            when, offset = self._packer.epoch_and_offset(record)
            return self._packer.unpack(key, record), when, offset
        assert isinstance(record, tuple)
        return record

    def _time_and_offset(self, record: _PendingPrediction) -> tuple[float, int | None]:
        if type(record) is bytes:
            return self._packer.epoch_and_offset(record)
        assert isinstance(record, tuple)
        return record[1], record[2]

    def pending_prediction_items(self) -> Iterator[tuple[PredictionEvent, float, int | None]]:
        """Pending predictions (event, event time, offset), oldest inserted first."""
        for key, record in self._predictions.items():
            yield self._unpack(key, record)

    def _joined(self, key: str) -> None:
        self.counts.joined += 1
        joined = self._joined_ids
        joined[key] = self.watermark
        if len(joined) > self.max_pending:
            joined.popitem(last=False)

    def _advance(self, epoch: float) -> None:
        if epoch > self.watermark:
            if self.watermark == _NO_WATERMARK and self.start_within is not None:
                first = self.first_epoch
                if first is None or abs(epoch - first) > self.start_within:
                    self.first_epoch = epoch  # wait for an event that agrees
                    return
                epoch = max(epoch, first)
            self.watermark = epoch
            self._expire()

    def _expire(self) -> None:
        """Expire from the head while the head is past the TTL.

        Runs when the watermark moves and again after each add: a join or an
        eviction can remove the head and expose an entry that arrived later but
        is older in event time.

        Skipped when the horizon has not moved and nothing was taken out since
        the last pass: entries added in the meantime were at or past the
        horizon when they came (or they would have expired at once), so no
        head can have crossed it. (It runs twice per event; the saving was
        below the noise of a side-by-side run here, 13.8 vs 13.9 us per record
        of core time: kept because it is small and tested.)
        """
        horizon = self.watermark - self.ttl_seconds
        if horizon <= self._expired_below and not self._exposed:
            return
        self._expired_below = horizon
        self._exposed = False
        predictions, outcomes, joined = self._predictions, self._outcomes, self._joined_ids
        counts = self.counts
        epoch_of = self._packer.epoch
        while predictions:
            key = next(iter(predictions))
            record = predictions[key]
            # Read only the time of a packed head: this runs twice per event.
            when = epoch_of(record) if type(record) is bytes else record[1]
            if when >= horizon:
                break
            offset = self._time_and_offset(record)[1]
            del predictions[key]
            if offset is not None:
                self.prediction_offsets.discard(offset)
            counts.expired_predictions += 1
        while outcomes:
            key = next(iter(outcomes))
            _, when, offset = outcomes[key]
            if when >= horizon:
                break
            del outcomes[key]
            if offset is not None:
                self.outcome_offsets.discard(offset)
            counts.orphan_outcomes_expired += 1
        while joined:
            key = next(iter(joined))
            if joined[key] >= horizon:
                break
            del joined[key]

    def _bound(self) -> None:
        predictions, outcomes = self._predictions, self._outcomes
        while len(predictions) + len(outcomes) > self.max_pending:
            self._exposed = True  # the next head may be older in event time
            # Evict whichever of the two oldest entries is older in event time.
            oldest_prediction = next(iter(predictions.values()), None)
            oldest_outcome = next(iter(outcomes.values()), None)
            if oldest_outcome is None or (
                oldest_prediction is not None
                and self._time_and_offset(oldest_prediction)[0] <= oldest_outcome[1]
            ):
                _, record = predictions.popitem(last=False)
                offset = self._time_and_offset(record)[1]
                if offset is not None:
                    self.prediction_offsets.discard(offset)
                self.counts.evicted_predictions += 1
            else:
                _, (_, _, offset) = outcomes.popitem(last=False)
                if offset is not None:
                    self.outcome_offsets.discard(offset)
                self.counts.evicted_outcomes += 1
