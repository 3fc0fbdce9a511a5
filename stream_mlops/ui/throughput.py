"""Lag and throughput of a consumer group, from offsets sampled over time (pure).

Every refresh the page samples the end offset of each partition of the
groups' input topics and each group's committed offsets. A group's lag is the
end minus the committed offset, partition by partition; its throughput is how
fast its committed offsets move (records per second), next to how fast records
arrive (the ends move). Offsets of transactional topics also count their
commit markers, so a rate read from them is a close upper bound, not a count
of events; lag reaches 0 all the same once a group commits past the markers.

>>> tp = TopicPartition("predictions", 0)
>>> history = OffsetHistory(keep=10)
>>> history.add(OffsetSample(0.0, {tp: 100}, {"engine": {tp: 40}}))
>>> history.add(OffsetSample(2.0, {tp: 300}, {"engine": {tp: 290}}))
>>> group = history.progress(ConsumerGroup("engine", "engine", ("predictions",)))
>>> group.lag, group.consumed_per_s, group.arriving_per_s
(10, 125.0, 100.0)
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from stream_mlops.kafka.transport import TopicPartition
from stream_mlops.ui.view import GroupProgress, PartitionLag, Point

__all__ = ["ConsumerGroup", "OffsetHistory", "OffsetSample"]

# The headline rates average over this many sampling intervals: at a 2 s refresh,
# ten seconds, long enough to smooth a checkpoint's burst of commits (200 ms
# apart by default) and short enough to show a stall at once.
_RATE_INTERVALS = 5


@dataclass(frozen=True, slots=True)
class OffsetSample:
    """Offsets seen at one wall-clock time."""

    at: float
    #: end (last stable) offset of each sampled partition
    ends: Mapping[TopicPartition, int]
    #: committed offsets, by group id
    committed: Mapping[str, Mapping[TopicPartition, int]]


@dataclass(frozen=True, slots=True)
class ConsumerGroup:
    """A group whose progress the page shows: its role, id and input topics."""

    role: str
    group_id: str
    topics: tuple[str, ...]


def _total(offsets: Mapping[TopicPartition, int], among: set[TopicPartition]) -> int:
    return sum(offsets[tp] for tp in among)


def _rate(
    older: Mapping[TopicPartition, int], newer: Mapping[TopicPartition, int], seconds: float
) -> float | None:
    """Records per second over the partitions both samples have."""
    common = older.keys() & newer.keys()
    if seconds <= 0 or not common:
        return None
    moved = _total(newer, common) - _total(older, common)
    return max(moved, 0) / seconds


def _recent_rate(
    samples: list[OffsetSample],
    offsets_of: Callable[[OffsetSample], Mapping[TopicPartition, int]],
) -> float | None:
    """The rate from the oldest of ``samples`` that shares a partition with the newest.

    A group's first commit, or a topic created meanwhile, leaves the older
    samples without the partition: the rate starts where it can be measured.
    """
    if len(samples) < 2:
        return None
    newest = offsets_of(samples[-1])
    for older in samples[:-1]:
        rate = _rate(offsets_of(older), newest, samples[-1].at - older.at)
        if rate is not None:
            return rate
    return None


class OffsetHistory:
    """The last ``keep`` samples, and each group's progress read from them."""

    def __init__(self, keep: int) -> None:
        if keep < 2:
            raise ValueError("keep: at least 2 samples are needed for a rate")
        self._samples: deque[OffsetSample] = deque(maxlen=keep)

    def add(self, sample: OffsetSample) -> None:
        if self._samples and sample.at <= self._samples[-1].at:
            return  # a clock step back: a rate across it would be nonsense
        self._samples.append(sample)

    def latest(self) -> OffsetSample | None:
        return self._samples[-1] if self._samples else None

    def progress(self, group: ConsumerGroup) -> GroupProgress:
        samples = list(self._samples)
        topics = set(group.topics)

        def ends(sample: OffsetSample) -> dict[TopicPartition, int]:
            return {tp: o for tp, o in sample.ends.items() if tp.topic in topics}

        def committed(sample: OffsetSample) -> dict[TopicPartition, int]:
            offsets = sample.committed.get(group.group_id, {})
            return {tp: o for tp, o in offsets.items() if tp.topic in topics}

        partitions: list[PartitionLag] = []
        if samples:
            last = samples[-1]
            last_committed = committed(last)
            for tp, end in sorted(ends(last).items()):
                done = last_committed.get(tp)
                # Before its first commit a group has all of the partition ahead
                # of it (new topics start at 0; retention may have dropped some).
                partitions.append(
                    PartitionLag(tp.topic, tp.partition, end, done, max(end - (done or 0), 0))
                )
        consumed_series, arriving_series, lag_series = [], [], []
        for older, newer in itertools.pairwise(samples):
            seconds = newer.at - older.at
            consumed = _rate(committed(older), committed(newer), seconds)
            arriving = _rate(ends(older), ends(newer), seconds)
            if consumed is not None:
                consumed_series.append(Point(newer.at, consumed))
            if arriving is not None:
                arriving_series.append(Point(newer.at, arriving))
        for sample in samples:
            done_then = committed(sample)
            lag = sum(max(end - done_then.get(tp, 0), 0) for tp, end in ends(sample).items())
            lag_series.append(Point(sample.at, float(lag)))
        recent = samples[-(_RATE_INTERVALS + 1) :]
        return GroupProgress(
            role=group.role,
            group_id=group.group_id,
            topics=group.topics,
            partitions=tuple(partitions),
            lag=sum(p.lag for p in partitions),
            consumed_per_s=_recent_rate(recent, committed),
            arriving_per_s=_recent_rate(recent, ends),
            consumed_series=tuple(consumed_series),
            arriving_series=tuple(arriving_series),
            lag_series=tuple(lag_series),
        )
