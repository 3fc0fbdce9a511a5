"""Lag and throughput of a consumer group from sampled offsets (no broker)."""

from __future__ import annotations

import pytest

from stream_mlops.kafka.transport import TopicPartition
from stream_mlops.ui.throughput import ConsumerGroup, OffsetHistory, OffsetSample

P0, P1 = TopicPartition("predictions", 0), TopicPartition("predictions", 1)
O0 = TopicPartition("outcomes", 0)
OTHER = TopicPartition("labeled-events", 0)
ENGINE = ConsumerGroup("engine", "g", ("predictions", "outcomes"))


def test_lag_is_per_partition_and_counts_everything_before_a_first_commit() -> None:
    history = OffsetHistory(keep=5)
    history.add(OffsetSample(1.0, {P0: 100, P1: 50, O0: 7, OTHER: 999}, {"g": {P0: 90, O0: 7}}))
    progress = history.progress(ENGINE)
    lags = {(p.topic, p.partition): (p.end, p.committed, p.lag) for p in progress.partitions}
    assert lags == {
        ("outcomes", 0): (7, 7, 0),
        ("predictions", 0): (100, 90, 10),
        ("predictions", 1): (50, None, 50),
    }
    assert progress.lag == 60
    assert progress.consumed_per_s is None and progress.arriving_per_s is None


def test_rates_follow_the_offsets_over_the_last_samples() -> None:
    history = OffsetHistory(keep=20)
    for i in range(12):
        history.add(OffsetSample(2.0 * i, {P0: 1000 * i}, {"g": {P0: 900 * i}}))
    progress = history.progress(ENGINE)
    assert progress.arriving_per_s == pytest.approx(500.0)
    assert progress.consumed_per_s == pytest.approx(450.0)
    assert [p.value for p in progress.consumed_series] == [450.0] * 11
    assert [p.value for p in progress.lag_series] == [100.0 * i for i in range(12)]


def test_a_rate_starts_where_it_can_be_measured() -> None:
    history = OffsetHistory(keep=20)
    history.add(OffsetSample(0.0, {P0: 0}, {}))
    history.add(OffsetSample(2.0, {P0: 200}, {}))
    history.add(OffsetSample(4.0, {P0: 400}, {"g": {P0: 100}}))
    assert history.progress(ENGINE).consumed_per_s is None  # one commit: no rate yet
    history.add(OffsetSample(6.0, {P0: 600}, {"g": {P0: 500}}))
    assert history.progress(ENGINE).consumed_per_s == pytest.approx(200.0)


def test_history_is_bounded_and_ignores_a_clock_step_back() -> None:
    history = OffsetHistory(keep=3)
    for t in (1.0, 2.0, 3.0, 2.5, 4.0):
        history.add(OffsetSample(t, {P0: int(t * 10)}, {}))
    assert [p.t for p in history.progress(ENGINE).lag_series] == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="at least 2"):
        OffsetHistory(keep=1)


def test_offsets_that_move_back_never_give_a_negative_rate() -> None:
    history = OffsetHistory(keep=5)
    history.add(OffsetSample(0.0, {P0: 100}, {"g": {P0: 100}}))
    history.add(OffsetSample(1.0, {P0: 100}, {"g": {P0: 40}}))  # the group was reset
    assert history.progress(ENGINE).consumed_per_s == 0.0
