"""Engine snapshots on the compacted state topic.

One record per partition task and checkpoint, produced in the same
transaction as the outputs and the consumed offsets, so a restored snapshot
always matches the group's committed offsets. The pending join is not in the
snapshot (it can be millions of entries): the snapshot carries the offsets of
the still-pending input records, and restore re-reads just those.

Record key: ``<group_id>:<partition>``, the task's id. The group is part of the
key because two engine deployments may share one state topic, and compaction
keeps one value per key.

Record value: the envelope below, then the engine's own snapshot bytes (which
carry their own format version and river version; ``Engine.restore`` checks
them).
"""

from __future__ import annotations

from dataclasses import dataclass

from stream_mlops.events import dumps, loads
from stream_mlops.kafka.transport import GroupConsumer, PartitionReader, TopicPartition

ENVELOPE_MAGIC = b"stream-mlops-state/1\n"

# Snapshots are small and written once per checkpoint, so the latest one is
# near the end of its partition; start with a short backward window and widen.
_FIRST_WINDOW = 64


class StateError(Exception):
    """The state topic cannot give a usable snapshot; never reset silently."""


@dataclass(frozen=True, slots=True)
class TaskSnapshot:
    group_id: str
    partition: int
    #: next offset to read per input topic, equal to the committed offsets
    offsets: dict[str, int]
    engine_state: bytes

    @property
    def key(self) -> bytes:
        return task_key(self.group_id, self.partition)

    def to_bytes(self) -> bytes:
        header = dumps(
            {"group_id": self.group_id, "partition": self.partition, "offsets": self.offsets}
        )
        return ENVELOPE_MAGIC + header + b"\n" + self.engine_state

    @classmethod
    def from_bytes(cls, data: bytes) -> TaskSnapshot:
        """Parse an envelope.

        >>> snap = TaskSnapshot("g", 2, {"predictions": 10, "outcomes": 7}, b"\\x00engine")
        >>> TaskSnapshot.from_bytes(snap.to_bytes()) == snap
        True
        >>> TaskSnapshot.from_bytes(b"garbage")
        Traceback (most recent call last):
        ...
        stream_mlops.kafka.state.StateError: not a stream-mlops state record (unknown format)
        """
        if not data.startswith(ENVELOPE_MAGIC):
            raise StateError("not a stream-mlops state record (unknown format)")
        rest = data[len(ENVELOPE_MAGIC) :]
        header_bytes, sep, engine_state = rest.partition(b"\n")
        if not sep:
            raise StateError("truncated stream-mlops state record")
        try:
            header = loads(header_bytes)
            return cls(
                group_id=str(header["group_id"]),
                partition=int(header["partition"]),
                offsets={str(k): int(v) for k, v in header["offsets"].items()},
                engine_state=engine_state,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"unreadable stream-mlops state header: {exc}") from exc


def task_key(group_id: str, partition: int) -> bytes:
    """
    >>> task_key("stream-mlops-engine", 3)
    b'stream-mlops-engine:3'
    """
    return f"{group_id}:{partition}".encode()


def latest_snapshot(
    reader: PartitionReader, state_tp: TopicPartition, group_id: str, partition: int
) -> TaskSnapshot | None:
    """The newest committed snapshot of one task, or None if it never wrote one."""
    key = task_key(group_id, partition)
    begin = reader.beginning_offset(state_tp)
    end = reader.end_offset(state_tp)
    window = _FIRST_WINDOW
    while True:
        start = max(begin, end - window)
        found: bytes | None = None
        for record in reader.read(state_tp, start, end):
            if record.key == key and record.value is not None:
                found = record.value
        if found is not None:
            return TaskSnapshot.from_bytes(found)
        if start <= begin:
            return None
        end, window = start, window * 8


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
    committed, the start offsets of its inputs (the consumer is seeked there).

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
    # An explicit offset, not seek_to_beginning: kafka-python resets that lazily,
    # and after a rebalance with fetches in flight it was seen to leave the
    # partition silent.
    starts = {tp.topic: reader.beginning_offset(tp) for tp in inputs}
    for tp in inputs:
        consumer.seek(tp, starts[tp.topic])
    return starts
