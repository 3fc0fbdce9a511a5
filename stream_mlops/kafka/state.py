"""Engine snapshots on the compacted state topic.

One record per partition task and checkpoint, produced in the same
transaction as the outputs and the consumed offsets, so a restored snapshot
always matches the group's committed offsets. The pending join is not in the
snapshot (it can be millions of entries): the snapshot carries the offsets of
the still-pending input records, and restore re-reads just those.

Record key: ``<group_id>:<partition>``, the task's id. The group is part of the
key because two engine deployments may share one state topic, and compaction
keeps one value per key.

Record value: the envelope, ``b"stream-mlops-state/2\\n"``, the CRC-32C of the
whole record (4 bytes, big-endian; computed with these 4 bytes left out), then
a JSON header line (group, partition, offsets) and the service's own state
bytes (the engine's carry their own format and river version, which
``Engine.restore`` checks). The checksum is checked before anything else is
parsed: a corrupt record is a ``SnapshotError``, never a different state.
Every failure to read a record is a ``SnapshotError`` naming the partition
and the cause; ``StateError`` is their common root (``stream_mlops.snapshot``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from crc32c import crc32c

from stream_mlops.events import dumps, loads
from stream_mlops.kafka.transport import GroupConsumer, PartitionReader, TopicPartition
from stream_mlops.snapshot import SnapshotError, StateError

__all__ = [
    "ENVELOPE_MAGIC",
    "SnapshotError",
    "StateError",
    "TaskSnapshot",
    "latest_snapshot",
    "require_copartitioned",
    "state_partition",
    "task_key",
    "task_snapshot_or_fresh",
]

ENVELOPE_MAGIC: Final = b"stream-mlops-state/2\n"
# Every envelope starts with this; the version follows it up to the newline.
_ENVELOPE_PREFIX: Final = b"stream-mlops-state/"
_CHECKSUM: Final = struct.Struct(">I")

# Snapshots are small and written once per checkpoint, so the latest one is
# near the end of its partition; start with a short backward window and widen.
_FIRST_WINDOW = 64


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
        body = header + b"\n" + self.engine_state
        checksum = crc32c(body, crc32c(ENVELOPE_MAGIC))
        return ENVELOPE_MAGIC + _CHECKSUM.pack(checksum) + body

    @classmethod
    def from_bytes(cls, data: bytes, *, partition: int | None = None) -> TaskSnapshot:
        """Parse an envelope; ``partition`` (the task looked up) names it in errors.

        >>> snap = TaskSnapshot("g", 2, {"predictions": 10, "outcomes": 7}, b"\\x00engine")
        >>> TaskSnapshot.from_bytes(snap.to_bytes()) == snap
        True
        >>> TaskSnapshot.from_bytes(b"garbage", partition=2)
        Traceback (most recent call last):
        ...
        stream_mlops.snapshot.SnapshotError: cannot restore the snapshot of partition 2: \
not a stream-mlops state record
        """
        if not data.startswith(ENVELOPE_MAGIC):
            if not data.startswith(_ENVELOPE_PREFIX):
                raise SnapshotError("not a stream-mlops state record", partition=partition)
            version = data[len(_ENVELOPE_PREFIX) :].partition(b"\n")[0][:20]
            raise SnapshotError(
                f"state record format {version.decode(errors='replace')!r} is not supported "
                f"(this version reads {ENVELOPE_MAGIC.strip().decode()!r}; format 1 held "
                "pickles, which are never read)",
                partition=partition,
            )
        start = len(ENVELOPE_MAGIC)
        if len(data) < start + _CHECKSUM.size:
            raise SnapshotError("truncated stream-mlops state record", partition=partition)
        (expected,) = _CHECKSUM.unpack_from(data, start)
        body = data[start + _CHECKSUM.size :]
        if crc32c(body, crc32c(ENVELOPE_MAGIC)) != expected:
            raise SnapshotError("checksum mismatch: the record is corrupt", partition=partition)
        header_bytes, sep, engine_state = body.partition(b"\n")
        try:
            group_id, task, offsets = _header(loads(header_bytes) if sep else None)
        except ValueError as exc:  # orjson's JSONDecodeError is one
            raise SnapshotError(f"unreadable state header: {exc}", partition=partition) from None
        return cls(group_id, task, offsets, engine_state)


def _header(header: object) -> tuple[str, int, dict[str, int]]:
    if type(header) is not dict or set(header) != {"group_id", "partition", "offsets"}:
        raise ValueError("expected an object of group_id, partition and offsets")
    group_id, partition, offsets = header["group_id"], header["partition"], header["offsets"]
    if type(group_id) is not str or type(partition) is not int or partition < 0:
        raise ValueError("expected a group id and a partition >= 0")
    if type(offsets) is not dict or any(type(v) is not int or v < 0 for v in offsets.values()):
        raise ValueError("expected offsets >= 0 by topic")
    return group_id, partition, offsets


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
            snapshot = TaskSnapshot.from_bytes(found, partition=partition)
            if (snapshot.group_id, snapshot.partition) != (group_id, partition):
                raise SnapshotError(
                    f"the record under key {key.decode(errors='replace')!r} is the snapshot of "
                    f"group {snapshot.group_id!r}, partition {snapshot.partition}",
                    partition=partition,
                )
            return snapshot
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
