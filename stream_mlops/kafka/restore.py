"""Where a task resumes: its latest snapshot on the state topic, or the start of its inputs.

A task is partition *p* of every input topic of a service (they are
co-partitioned). Its snapshots live in the state topic's partition
``p mod partitions`` under the key ``<group_id>:<p>`` (``TaskSnapshot.key``);
the newest one there matches the group's committed offsets, because both were
written in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from stream_mlops.kafka.state import (
    SnapshotError,
    SnapshotHead,
    StateError,
    TaskSnapshot,
    chunk_key,
    task_key,
)
from stream_mlops.kafka.transport import GroupConsumer, PartitionReader, TopicPartition

__all__ = [
    "assigned_tasks",
    "latest_snapshot",
    "require_copartitioned",
    "state_partition",
    "task_snapshot_or_fresh",
]

# Snapshots are small and written once per checkpoint, so the latest one is
# near the end of its partition; start with a short backward window and widen.
_FIRST_WINDOW = 64


def latest_snapshot(
    reader: PartitionReader, state_tp: TopicPartition, group_id: str, partition: int
) -> TaskSnapshot | None:
    """The newest committed snapshot of one task, or None if it never wrote one.

    A chunked snapshot is reassembled from the newest record of each of its
    chunk keys before its head (``stream_mlops.kafka.state``).
    """
    key = task_key(group_id, partition)
    begin = reader.beginning_offset(state_tp)
    end = reader.end_offset(state_tp)
    window = _FIRST_WINDOW
    while True:
        start = max(begin, end - window)
        found: tuple[int, bytes] | None = None
        for record in reader.read(state_tp, start, end):
            if record.key == key and record.value is not None:
                found = record.offset, record.value
        if found is not None:
            head_offset, value = found
            head = SnapshotHead.from_bytes(value, partition=partition)
            if (head.group_id, head.partition) != (group_id, partition):
                raise SnapshotError(
                    f"the record under key {key.decode(errors='replace')!r} is the snapshot of "
                    f"group {head.group_id!r}, partition {head.partition}",
                    partition=partition,
                )
            chunks = _chunks(reader, state_tp, begin, head_offset, head) if head.chunks else {}
            return head.assemble(chunks, partition=partition)
        if start <= begin:
            return None
        end, window = start, window * 8


def _chunks(
    reader: PartitionReader, state_tp: TopicPartition, begin: int, head: int, of: SnapshotHead
) -> dict[int, bytes]:
    """The newest value of each of ``of``'s chunk keys before its head (at offset ``head``).

    They were written just before the head, in its transaction, but other
    processes' snapshots may lie between them: search back in widening windows.
    """
    wanted = {chunk_key(of.group_id, of.partition, i): i for i in range(of.chunks)}
    found: dict[int, bytes] = {}
    end, window = head, of.chunks + _FIRST_WINDOW
    while len(found) < len(wanted) and end > begin:
        start = max(begin, end - window)
        newest: dict[int, bytes] = {}
        for record in reader.read(state_tp, start, end):
            index = wanted.get(record.key) if record.key is not None else None
            if index is not None and index not in found and record.value is not None:
                newest[index] = record.value
        found.update(newest)
        end, window = start, window * 8
    return found


def state_partition(reader: PartitionReader, state_topic: str, partition: int) -> int:
    """The state topic's partition that holds task ``partition``'s snapshots."""
    return partition % reader.partition_count(state_topic)


def require_copartitioned(reader: PartitionReader, topics: list[str], why: str) -> None:
    """Fail at start, naming the counts, when ``topics`` differ in partitions.

    Tasks pair partition *p* of every input topic; ``why`` says to the
    operator why these topics must match.
    """
    counts = {t: reader.partition_count(t) for t in topics}
    if len(set(counts.values())) != 1:
        raise StateError(f"input topics differ in partitions: {counts}; {why}")


def assigned_tasks(assignment: Iterable[TopicPartition], topics: list[str]) -> list[int]:
    """The task partitions of an assignment; every input topic must give the same ones.

    >>> assigned_tasks({TopicPartition("a", 1), TopicPartition("b", 1)}, ["a", "b"])
    [1]
    >>> assigned_tasks({TopicPartition("a", 1), TopicPartition("b", 0)}, ["a", "b"])
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    stream_mlops.snapshot.StateError: topics 'a' and 'b' were not assigned ... ([1] and [0]): ...
    """
    tps = list(assignment)
    by_topic = {t: sorted({tp.partition for tp in tps if tp.topic == t}) for t in topics}
    first = topics[0]
    for other in topics[1:]:
        if by_topic[other] != by_topic[first]:
            raise StateError(
                f"topics {first!r} and {other!r} were not assigned the same partitions "
                f"({by_topic[first]} and {by_topic[other]}): give them the same partition count"
            )
    return by_topic[first]


def task_snapshot_or_fresh(
    consumer: GroupConsumer,
    reader: PartitionReader,
    *,
    state_topic: str,
    group_id: str,
    partition: int,
    inputs: list[TopicPartition],
) -> TaskSnapshot | dict[str, int]:
    """Where a task resumes: its latest snapshot, or for a task that never
    committed, the start offsets of its inputs.

    Raises ``StateError`` when the group committed offsets but no snapshot
    exists: starting from empty state then would silently drop what the
    snapshot held.
    """
    state_tp = TopicPartition(state_topic, state_partition(reader, state_topic, partition))
    snapshot = latest_snapshot(reader, state_tp, group_id, partition)
    if snapshot is not None:
        return snapshot
    committed = consumer.committed(inputs)
    if any(offset is not None for offset in committed.values()):
        raise StateError(
            f"group {group_id!r} committed offsets for partition {partition} "
            f"but topic {state_topic!r} has no snapshot for it; refusing to "
            "start from empty state (restore the state topic, or use a new group id)"
        )
    return {tp.topic: reader.beginning_offset(tp) for tp in inputs}
