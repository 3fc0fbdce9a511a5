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

Snapshots that always fit a record: a state larger than the checkpoint's
chunk size (``[kafka] snapshot_chunk_bytes``) is split. Its first pieces go in
chunk records (key ``<group_id>:<partition>/<index>``, value
``b"stream-mlops-chunk/1\n"``, the CRC-32C, a JSON line of group, partition,
index and the whole state's CRC-32C, then the piece); the head record, under
the task's key and written last in the same transaction, holds the last piece
and a header that adds ``chunks`` (how many precede it) and ``state_crc32c``.
Restore finds the head, then the newest record of each chunk key before it,
and checks every piece against the head and the whole against its checksum.
Why chunks rather than a larger ``max.message.bytes``: they fit every
cluster's defaults, topics an operator created by hand, and managed clusters
that cap the record size (docs/runtime.md, "Snapshots that always fit").
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from crc32c import crc32c

from stream_mlops.events import dumps, loads
from stream_mlops.snapshot import SnapshotError, StateError

__all__ = [
    "CHUNK_MAGIC",
    "DEFAULT_CHUNK_BYTES",
    "ENVELOPE_MAGIC",
    "SnapshotChunk",
    "SnapshotError",
    "SnapshotHead",
    "StateError",
    "TaskSnapshot",
    "chunk_key",
    "task_key",
]

ENVELOPE_MAGIC: Final = b"stream-mlops-state/2\n"
CHUNK_MAGIC: Final = b"stream-mlops-chunk/1\n"
# Every envelope starts with this; the version follows it up to the newline.
_ENVELOPE_PREFIX: Final = b"stream-mlops-state/"
_CHECKSUM: Final = struct.Struct(">I")
# Well under the 1 MiB that a producer (max.request.size, message.max.bytes),
# a broker (message.max.bytes) and a topic (max.message.bytes) take by default,
# with room for the key, the envelope and the batch's own header.
DEFAULT_CHUNK_BYTES: Final = 900_000


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
        """The state in one record (what ``records`` gives when it fits one chunk)."""
        return self._head(self.engine_state, {})

    def records(self, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[tuple[bytes, bytes]]:
        """Keys and values to produce, in this order, in one transaction: the chunks
        of a state over ``chunk_bytes``, then the head under the task's key.

        >>> snap = TaskSnapshot("g", 2, {"inputs": 10}, bytes(range(250)))
        >>> [key for key, _ in snap.records(100)]
        [b'g:2/0', b'g:2/1', b'g:2']
        >>> snap.records(250) == [(b"g:2", snap.to_bytes())]
        True
        """
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be at least 1, got {chunk_bytes}")
        state = self.engine_state
        if len(state) <= chunk_bytes:
            return [(self.key, self.to_bytes())]
        starts = range(0, len(state), chunk_bytes)
        whole = crc32c(state)
        out = [
            (
                chunk_key(self.group_id, self.partition, index),
                _sealed(
                    CHUNK_MAGIC,
                    {
                        "group_id": self.group_id,
                        "partition": self.partition,
                        "index": index,
                        "state_crc32c": whole,
                    },
                    state[start : start + chunk_bytes],
                ),
            )
            for index, start in enumerate(starts[:-1])
        ]
        last = state[starts[-1] :]
        out.append((self.key, self._head(last, {"chunks": len(out), "state_crc32c": whole})))
        return out

    def _head(self, piece: bytes, chunked: dict[str, int]) -> bytes:
        header = {
            "group_id": self.group_id,
            "partition": self.partition,
            "offsets": self.offsets,
            **chunked,
        }
        return _sealed(ENVELOPE_MAGIC, header, piece)

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
        return SnapshotHead.from_bytes(data, partition=partition).assemble({}, partition=partition)


@dataclass(frozen=True, slots=True)
class SnapshotHead:
    """A snapshot's head record: the header and the state's last piece."""

    group_id: str
    partition: int
    offsets: dict[str, int]
    piece: bytes
    #: how many chunk records hold the state's earlier pieces (0: the piece is the state)
    chunks: int = 0
    #: the CRC-32C of the whole state, for a chunked one
    state_crc32c: int | None = None

    @classmethod
    def from_bytes(cls, data: bytes, *, partition: int | None = None) -> SnapshotHead:
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
        header, piece = _unseal(ENVELOPE_MAGIC, data, partition, "state")
        try:
            group_id, task, offsets = _header(header)
            chunks, state_crc = _chunking(header)
        except ValueError as exc:
            raise SnapshotError(f"unreadable state header: {exc}", partition=partition) from None
        return cls(group_id, task, offsets, piece, chunks, state_crc)

    def assemble(
        self, chunks: Mapping[int, bytes], *, partition: int | None = None
    ) -> TaskSnapshot:
        """The snapshot, from this head and the values of its chunk records by index.

        SnapshotError when a chunk is missing, belongs to another snapshot or
        task, or the pieces do not add up to the state the head describes.
        """
        pieces = []
        for index in range(self.chunks):
            data = chunks.get(index)
            if data is None:
                raise SnapshotError(
                    f"chunk {index} of {self.chunks} is missing from the state topic",
                    partition=partition,
                )
            chunk = SnapshotChunk.from_bytes(data, partition=partition)
            if (chunk.group_id, chunk.partition, chunk.index, chunk.state_crc32c) != (
                self.group_id,
                self.partition,
                index,
                self.state_crc32c,
            ):
                raise SnapshotError(
                    f"chunk {index} belongs to another snapshot (group {chunk.group_id!r}, "
                    f"partition {chunk.partition}, index {chunk.index})",
                    partition=partition,
                )
            pieces.append(chunk.piece)
        pieces.append(self.piece)
        state = b"".join(pieces)
        if self.chunks and crc32c(state) != self.state_crc32c:
            raise SnapshotError(
                f"the {self.chunks + 1} pieces do not add up to the snapshot (checksum mismatch)",
                partition=partition,
            )
        return TaskSnapshot(self.group_id, self.partition, self.offsets, state)


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """One of the first pieces of a chunked snapshot's state."""

    group_id: str
    partition: int
    index: int
    state_crc32c: int
    piece: bytes

    @classmethod
    def from_bytes(cls, data: bytes, *, partition: int | None = None) -> SnapshotChunk:
        if not data.startswith(CHUNK_MAGIC):
            raise SnapshotError("not a stream-mlops snapshot chunk", partition=partition)
        header, piece = _unseal(CHUNK_MAGIC, data, partition, "chunk")
        fields = {"group_id": str, "partition": int, "index": int, "state_crc32c": int}
        if type(header) is not dict or set(header) != set(fields):
            raise SnapshotError(
                "unreadable chunk header: expected group_id, partition, index and state_crc32c",
                partition=partition,
            )
        for name, kind in fields.items():
            if type(header[name]) is not kind or (kind is int and header[name] < 0):
                raise SnapshotError(f"unreadable chunk header: bad {name}", partition=partition)
        return cls(
            header["group_id"], header["partition"], header["index"], header["state_crc32c"], piece
        )


def _sealed(magic: bytes, header: dict[str, object], piece: bytes) -> bytes:
    body = dumps(header) + b"\n" + piece
    return magic + _CHECKSUM.pack(crc32c(body, crc32c(magic))) + body


def _unseal(magic: bytes, data: bytes, partition: int | None, what: str) -> tuple[object, bytes]:
    """The header (parsed JSON) and the piece of a checked record."""
    start = len(magic)
    if len(data) < start + _CHECKSUM.size:
        raise SnapshotError(f"truncated stream-mlops {what} record", partition=partition)
    (expected,) = _CHECKSUM.unpack_from(data, start)
    body = data[start + _CHECKSUM.size :]
    if crc32c(body, crc32c(magic)) != expected:
        raise SnapshotError("checksum mismatch: the record is corrupt", partition=partition)
    header_bytes, sep, piece = body.partition(b"\n")
    try:
        header = loads(header_bytes) if sep else None
    except ValueError as exc:  # orjson's JSONDecodeError is one
        raise SnapshotError(f"unreadable {what} header: {exc}", partition=partition) from None
    return header, piece


_CHUNKING: Final = frozenset({"chunks", "state_crc32c"})


def _header(header: object) -> tuple[str, int, dict[str, int]]:
    if type(header) is not dict or set(header) - _CHUNKING != {"group_id", "partition", "offsets"}:
        raise ValueError("expected an object of group_id, partition and offsets")
    group_id, partition, offsets = header["group_id"], header["partition"], header["offsets"]
    if type(group_id) is not str or type(partition) is not int or partition < 0:
        raise ValueError("expected a group id and a partition >= 0")
    if type(offsets) is not dict or any(type(v) is not int or v < 0 for v in offsets.values()):
        raise ValueError("expected offsets >= 0 by topic")
    return group_id, partition, offsets


def _chunking(header: object) -> tuple[int, int | None]:
    """A chunked head's ``chunks`` (at least 1) and ``state_crc32c``, both or neither."""
    assert type(header) is dict  # _header checked it
    present = _CHUNKING & set(header)
    if not present:
        return 0, None
    chunks, crc = header.get("chunks"), header.get("state_crc32c")
    if present != _CHUNKING or type(chunks) is not int or chunks < 1:
        raise ValueError("expected chunks >= 1 with the state's checksum")
    if type(crc) is not int or not 0 <= crc < 1 << 32:
        raise ValueError("expected the state's CRC-32C")
    return chunks, crc


def task_key(group_id: str, partition: int) -> bytes:
    """
    >>> task_key("stream-mlops-engine", 3)
    b'stream-mlops-engine:3'
    """
    return f"{group_id}:{partition}".encode()


def chunk_key(group_id: str, partition: int, index: int) -> bytes:
    """The key of a chunk record: never a task's key (those end in a partition number).

    >>> chunk_key("stream-mlops-engine", 3, 0)
    b'stream-mlops-engine:3/0'
    """
    return f"{group_id}:{partition}/{index}".encode()
