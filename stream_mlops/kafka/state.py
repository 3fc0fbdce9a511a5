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

ENVELOPE_MAGIC = b"stream-mlops-state/1\n"


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
