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
from stream_mlops.snapshot import SnapshotError, StateError

__all__ = [
    "ENVELOPE_MAGIC",
    "SnapshotError",
    "StateError",
    "TaskSnapshot",
    "task_key",
]

ENVELOPE_MAGIC: Final = b"stream-mlops-state/2\n"
# Every envelope starts with this; the version follows it up to the newline.
_ENVELOPE_PREFIX: Final = b"stream-mlops-state/"
_CHECKSUM: Final = struct.Struct(">I")


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
