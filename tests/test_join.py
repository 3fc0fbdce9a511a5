from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_mlops.events import OutcomeEvent, PredictionEvent
from stream_mlops.join import DUPLICATE, Match, PendingJoin


def prediction(event_id: str, ts: float) -> PredictionEvent:
    return PredictionEvent(
        event_id=event_id, model_id="m", model_version="v1", ts=ts, features={}, prediction=1
    )


def outcome(event_id: str, ts: float) -> OutcomeEvent:
    return OutcomeEvent(event_id=event_id, ts=ts, actual=0)


def test_either_side_may_come_first() -> None:
    join = PendingJoin(ttl_seconds=100, max_pending=10)
    assert join.add_outcome(outcome("a", 1), 1.0, 0) is None
    assert join.outcome_offsets.lowest() == 0
    match = join.add_prediction(prediction("a", 2), 2.0, 5)
    assert isinstance(match, Match)
    assert match.prediction.event_id == match.outcome.event_id == "a"
    assert len(join.outcome_offsets) == len(join.prediction_offsets) == 0
    assert join.counts.joined == 1


def test_ttl_runs_on_event_time() -> None:
    join = PendingJoin(ttl_seconds=10, max_pending=10)
    join.add_prediction(prediction("a", 0), 0.0, 1)
    join.add_outcome(outcome("x", 5), 5.0, 1)
    join.add_prediction(prediction("b", 10), 10.0, 2)  # a is exactly at the TTL: kept
    assert join.pending_predictions == 2
    join.add_prediction(prediction("c", 10.5), 10.5, 3)
    assert join.counts.expired_predictions == 1
    assert join.prediction_offsets.lowest() == 2
    # The outcome for "a" comes too late: it waits as an orphan and expires as one.
    assert join.add_outcome(outcome("a", 11), 11.0, 2) is None
    join.add_prediction(prediction("d", 30), 30.0, 4)
    assert join.counts.orphan_outcomes_expired == 2
    assert join.pending_outcomes == 0


def test_max_pending_evicts_the_oldest_and_counts_it() -> None:
    join = PendingJoin(ttl_seconds=1000, max_pending=2)
    join.add_outcome(outcome("o", 1), 1.0)
    join.add_prediction(prediction("p1", 2), 2.0)
    join.add_prediction(prediction("p2", 3), 3.0)
    assert join.counts.evicted_outcomes == 1
    join.add_prediction(prediction("p3", 4), 4.0)
    assert join.counts.evicted_predictions == 1
    assert join.pending_predictions + join.pending_outcomes == 2


def test_duplicates_never_count_twice() -> None:
    join = PendingJoin(ttl_seconds=100, max_pending=10)
    join.add_prediction(prediction("a", 0), 0.0)
    assert join.add_prediction(prediction("a", 1), 1.0) is DUPLICATE
    assert isinstance(join.add_outcome(outcome("a", 2), 2.0), Match)
    assert join.add_outcome(outcome("a", 3), 3.0) is DUPLICATE
    assert join.add_prediction(prediction("a", 4), 4.0) is DUPLICATE
    assert join.counts.joined == 1
    assert join.counts.duplicate_predictions == 2
    assert join.counts.duplicate_outcomes == 1


# Event ids from a small alphabet so duplicates and matches are common; times
# jitter so events arrive somewhat out of event-time order.
events = st.lists(
    st.tuples(
        st.sampled_from(["prediction", "outcome"]),
        st.integers(min_value=0, max_value=40),
        st.floats(min_value=0, max_value=5),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(
    events,
    st.floats(min_value=0.5, max_value=20),
    st.integers(min_value=1, max_value=15),
    # 0: every pending prediction packed at once; small: a mix of both forms.
    st.integers(min_value=0, max_value=4),
)
def test_every_prediction_ends_joined_expired_evicted_or_pending(
    stream: list[tuple[str, int, float]], ttl: float, max_pending: int, hot: int
) -> None:
    join = PendingJoin(ttl_seconds=ttl, max_pending=max_pending, hot_predictions=hot)
    predictions = outcomes = 0
    joined_ids: list[str] = []
    clock = 0.0
    for offset, (kind, n, jitter) in enumerate(stream):
        clock += 0.5
        ts = clock + jitter
        event_id = f"e{n}"
        if kind == "prediction":
            predictions += 1
            result = join.add_prediction(prediction(event_id, ts), ts, offset)
        else:
            outcomes += 1
            result = join.add_outcome(outcome(event_id, ts), ts, offset)
        if isinstance(result, Match):
            joined_ids.append(result.prediction.event_id)
        c = join.counts
        # Bounds hold after every step.
        assert join.pending_predictions + join.pending_outcomes <= max_pending
        assert len(join.prediction_offsets) == join.pending_predictions
        assert len(join.outcome_offsets) == join.pending_outcomes
        # Every prediction is accounted for exactly once.
        assert predictions == (
            c.joined
            + c.expired_predictions
            + c.evicted_predictions
            + join.pending_predictions
            + c.duplicate_predictions
        )
        assert outcomes == (
            c.joined
            + c.orphan_outcomes_expired
            + c.evicted_outcomes
            + join.pending_outcomes
            + c.duplicate_outcomes
        )
        # The oldest pending entry is within the TTL of the watermark (expiry runs
        # in insertion order, so only the head is guaranteed).
        for i, (pending, when, _) in enumerate(join.pending_prediction_items()):
            assert pending.event_id not in join._outcomes
            if i == 0:
                assert when >= join.watermark - ttl
    assert len(joined_ids) == join.counts.joined


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=30), max_size=100))
def test_duplicates_within_the_ttl_never_join_twice(ids: list[int]) -> None:
    # Predictions and outcomes for the same ids, many repeated, all within the TTL.
    join = PendingJoin(ttl_seconds=1e9, max_pending=1000)
    joined: list[str] = []
    for i, n in enumerate(ids):
        for result in (
            join.add_prediction(prediction(f"e{n}", i), float(i)),
            join.add_outcome(outcome(f"e{n}", i), float(i)),
        ):
            if isinstance(result, Match):
                joined.append(result.prediction.event_id)
    assert sorted(joined) == sorted({f"e{n}" for n in ids})
    assert join.counts.duplicate_predictions + join.counts.duplicate_outcomes == 2 * (
        len(ids) - len(set(ids))
    )


def test_only_predictions_older_than_the_hot_ones_are_packed() -> None:
    join = PendingJoin(ttl_seconds=1e9, max_pending=100, hot_predictions=3)
    for i in range(5):
        join.add_prediction(prediction(f"e{i}", i), float(i))
    forms = [type(record) for record in join._predictions.values()]
    assert forms == [bytes, bytes, tuple, tuple, tuple]
    match = join.add_outcome(outcome("e0", 10), 10.0)
    assert isinstance(match, Match) and match.prediction == prediction("e0", 0)


def test_a_join_that_removes_the_head_exposes_an_expired_entry_behind_it() -> None:
    # B is older in event time than A but came after it, so it waits behind A.
    # The watermark then moves B past the TTL while A still heads the queue;
    # when A joins (the watermark does not move), B must expire at once.
    for side in ("prediction", "outcome"):
        join = PendingJoin(ttl_seconds=10, max_pending=100)
        add, other = (
            (join.add_prediction, join.add_outcome)
            if side == "prediction"
            else (join.add_outcome, join.add_prediction)
        )
        make = prediction if side == "prediction" else outcome
        make_other = outcome if side == "prediction" else prediction
        add(make("a", 20), 20.0)  # type: ignore[arg-type]
        add(make("b", 12), 12.0)  # type: ignore[arg-type]
        other(make_other("x", 25), 25.0)  # type: ignore[arg-type]  # horizon 15: b is past it
        assert isinstance(other(make_other("a", 25), 25.0), Match)  # type: ignore[arg-type]
        expired = (
            join.counts.expired_predictions
            if side == "prediction"
            else join.counts.orphan_outcomes_expired
        )
        assert expired == 1, side
        assert "b" not in (join._predictions if side == "prediction" else join._outcomes)


class _AlwaysExpiring(PendingJoin):
    """The join without _expire's memos: every call makes a full pass."""

    def _expire(self) -> None:
        self._exposed = True
        super()._expire()


@settings(max_examples=200, deadline=None)
@given(
    events,
    st.floats(min_value=0.5, max_value=20),
    st.integers(min_value=1, max_value=15),
    st.integers(min_value=0, max_value=4),
)
def test_skipped_expiry_passes_change_nothing(
    stream: list[tuple[str, int, float]], ttl: float, max_pending: int, hot: int
) -> None:
    joins = [
        cls(ttl_seconds=ttl, max_pending=max_pending, hot_predictions=hot)
        for cls in (PendingJoin, _AlwaysExpiring)
    ]
    clock = 0.0
    for offset, (kind, n, jitter) in enumerate(stream):
        clock += 0.5
        ts = clock + jitter
        results = [
            join.add_prediction(prediction(f"e{n}", ts), ts, offset)
            if kind == "prediction"
            else join.add_outcome(outcome(f"e{n}", ts), ts, offset)
            for join in joins
        ]
        assert results[0] == results[1]
        memo, full = joins
        assert memo.counts == full.counts
        assert list(memo._predictions) == list(full._predictions)
        assert list(memo._outcomes) == list(full._outcomes)
        assert list(memo._joined_ids) == list(full._joined_ids)
