"""PendingJoin as it was before pending predictions were packed (commit cd5b76a).

A verbatim copy of the code of stream_mlops/join.py at that commit (its module
docstring left out), kept so benchmarks/pending_memory.py can measure the change
against it in the same run. Not used by the package.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Final, NamedTuple

from stream_mlops.events import OutcomeEvent, PredictionEvent
from stream_mlops.offsets import OffsetSet

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


# A pending entry: the event, its event time (epoch seconds) and its source
# offset (None when the caller has none, e.g. a replay from stdin).
_Prediction = tuple[PredictionEvent, float, int | None]
_Outcome = tuple[OutcomeEvent, float, int | None]


class PendingJoin:
    """Pending predictions and outcomes, matched by ``event_id``.

    Expiry runs in insertion order: an entry expires when it is the oldest
    inserted one still pending and its event time is ``ttl_seconds`` behind the
    watermark. With events roughly in event-time order (the normal case) that is
    exactly the TTL; an entry that arrived late in event time may wait until the
    entries inserted before it have gone. This keeps each step O(1).

    Joined ids are remembered (as long as the TTL, at most ``max_pending`` of them)
    so a replayed prediction or outcome is recognised as a duplicate.
    """

    __slots__ = (
        "_joined_ids",
        "_outcomes",
        "_predictions",
        "counts",
        "max_pending",
        "outcome_offsets",
        "prediction_offsets",
        "ttl_seconds",
        "watermark",
    )

    def __init__(self, ttl_seconds: float, max_pending: int) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be greater than 0")
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.ttl_seconds = ttl_seconds
        self.max_pending = max_pending
        self.watermark = float("-inf")
        self.counts = JoinCounts()
        self.prediction_offsets = OffsetSet()
        self.outcome_offsets = OffsetSet()
        self._predictions: OrderedDict[str, _Prediction] = OrderedDict()
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
            if waiting[2] is not None:
                self.outcome_offsets.discard(waiting[2])
            self._joined(key)
            return Match(event, waiting[0], epoch)
        if epoch < self.watermark - self.ttl_seconds:
            self.counts.expired_predictions += 1  # arrived already past its TTL
            return None
        self._predictions[key] = (event, epoch, offset)
        if offset is not None:
            self.prediction_offsets.add(offset)
        self._bound()
        return None

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
            if waiting[2] is not None:
                self.prediction_offsets.discard(waiting[2])
            self._joined(key)
            return Match(waiting[0], event, waiting[1])
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
        self._predictions[event.event_id] = (event, epoch, offset)
        self.prediction_offsets.add(offset)

    def restore_outcome(self, event: OutcomeEvent, epoch: float, offset: int) -> None:
        """Re-insert an outcome pending at the snapshot: no counts, no expiry."""
        self._outcomes[event.event_id] = (event, epoch, offset)
        self.outcome_offsets.add(offset)

    def _joined(self, key: str) -> None:
        self.counts.joined += 1
        joined = self._joined_ids
        joined[key] = self.watermark
        if len(joined) > self.max_pending:
            joined.popitem(last=False)

    def _advance(self, epoch: float) -> None:
        if epoch > self.watermark:
            self.watermark = epoch
            self._expire()

    def _expire(self) -> None:
        """Expire from the head while the head is past the TTL.

        Runs when the watermark moves and again after each add: a join or an
        eviction can remove the head and expose an entry that arrived later but
        is older in event time.
        """
        horizon = self.watermark - self.ttl_seconds
        predictions, outcomes, joined = self._predictions, self._outcomes, self._joined_ids
        counts = self.counts
        while predictions:
            key = next(iter(predictions))
            _, when, offset = predictions[key]
            if when >= horizon:
                break
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
            # Evict whichever of the two oldest entries is older in event time.
            oldest_prediction = next(iter(predictions.values()), None)
            oldest_outcome = next(iter(outcomes.values()), None)
            if oldest_outcome is None or (
                oldest_prediction is not None and oldest_prediction[1] <= oldest_outcome[1]
            ):
                _, (_, _, offset) = predictions.popitem(last=False)
                if offset is not None:
                    self.prediction_offsets.discard(offset)
                self.counts.evicted_predictions += 1
            else:
                _, (_, _, offset) = outcomes.popitem(last=False)
                if offset is not None:
                    self.outcome_offsets.discard(offset)
                self.counts.evicted_outcomes += 1
