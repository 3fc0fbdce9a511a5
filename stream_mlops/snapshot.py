"""The snapshot bytes of the engine and the retrainer: a versioned header, then compressed JSON.

``encode`` takes a service's state as plain data (numbers, strings, lists,
objects: see ``stream_mlops.plain_data``) and ``decode`` gives it back as
``Fields`` to read with checks. Nothing here, or anywhere a snapshot is read,
unpickles: a record from the state topic can be wrong, never code. The
engine's document is ``Engine.snapshot``'s, the retrainer's
``stream_mlops.retrain.saved_sessions``'.

Layout: ``b"SMLOPS"``, the format (u16, big-endian), then zlib of the UTF-8
JSON document, which carries the river version that wrote it (detector state
follows river's internals, so another minor version is refused).
``docs/runtime.md`` ("Snapshot format") describes the document.

>>> data = encode({"river": river_version(), "n": 1})
>>> data[:6], decode(data).integer("n")
(b'SMLOPS', 1)
>>> decode(data[:6] + (3).to_bytes(2, "big") + data[8:])
Traceback (most recent call last):
...
ValueError: snapshot format 3 is not supported (this engine reads format 6)
"""

from __future__ import annotations

import gc
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import river

from stream_mlops.events import dumps, loads
from stream_mlops.plain_data import Fields

__all__ = [
    "FORMAT",
    "MAGIC",
    "MAX_DOCUMENT_BYTES",
    "NEVER_CAUGHT",
    "SnapshotError",
    "StateError",
    "collector_paused",
    "decode",
    "encode",
    "river_version",
]

MAGIC: Final = b"SMLOPS"
# 4: plain data (JSON), zlib. 5: the same, with the data-quality, outcome and
# slice state and the tracks' change-point history (a 4 lacks fields a 5 needs).
# 6: the same, with each model version's performance estimation (calibration
# warm-up or calibration and estimate window), whether each track's and quality
# monitor's reference is pinned (stream_mlops.reference), and a pinned GLR
# bank's reference mean (a 5 lacks them).
# 3 and older were pickles: never read again, so a state topic written by those
# versions stops the engine with a SnapshotError.
FORMAT: Final = 6
_HEADER: Final = struct.Struct(">6sH")
# Compression level: 1 is several times faster than the default 6 on snapshot
# JSON for a few percent more bytes (benchmarks/snapshot_size.py).
_LEVEL: Final = 1
# The largest document a snapshot may inflate to. A forged record that
# compresses a huge run of bytes (a "zip bomb") fails here instead of taking
# the host's memory. A bound on the compression ratio would not do: the JSON of
# many alike models compresses about 40 times (benchmarks/snapshot_size.py has
# the sizes: 5,000 models of 20 features are 137 MB).
MAX_DOCUMENT_BYTES: Final = 1 << 30
# A restore never turns these into a SnapshotError: the process is being stopped.
NEVER_CAUGHT: Final = (KeyboardInterrupt, SystemExit, GeneratorExit)


class StateError(Exception):
    """Saved state cannot be restored; the service stops instead of resetting silently.

    The root of the state errors: ``SnapshotError`` (one snapshot record), and
    the Kafka edge's own (committed offsets but no snapshot, topics that are not
    co-partitioned), so a service catches one type and stops with one line.
    """


class SnapshotError(StateError, ValueError):
    """One snapshot that cannot be restored: which partition's, and why.

    >>> str(SnapshotError("checksum mismatch", partition=2))
    'cannot restore the snapshot of partition 2: checksum mismatch'
    """

    def __init__(self, cause: str, *, partition: int | None = None) -> None:
        where = "" if partition is None else f" of partition {partition}"
        super().__init__(f"cannot restore the snapshot{where}: {cause}")
        self.cause = cause
        self.partition = partition


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block, as it was after it.

    Writing or reading a snapshot makes a container object for every number
    list and dict of the state, all of them alive to the end: each collection
    the allocations set off walks the growing heap and frees nothing, so a
    large engine's snapshot and restore spent much of their time there
    (docs/benchmarks.md). Reference counting still frees what goes; a cycle
    made in the block waits for the next collection.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def river_version() -> str:
    return str(river.__version__)  # type: ignore[attr-defined]


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def encode(document: dict[str, Any]) -> bytes:
    """Header and compressed JSON of a plain-data document (with its ``"river"``)."""
    return _HEADER.pack(MAGIC, FORMAT) + zlib.compress(dumps(document, sort_keys=False), _LEVEL)


def decode(data: bytes, service: str = "engine") -> Fields:
    """The document of ``encode``, checked up to its river version.

    ValueError naming the cause on anything else: another magic or format, a
    truncated stream or one that inflates past ``MAX_DOCUMENT_BYTES``, bad
    JSON, another river minor version. ``service`` (``engine``,
    ``retrainer``) names whose snapshot it is in those messages.
    """
    article = "an" if service[:1] in "aeiou" else "a"
    if len(data) < _HEADER.size:
        raise ValueError(f"not {article} {service} snapshot (too short)")
    magic, version = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"not {article} {service} snapshot (bad magic)")
    if version != FORMAT:
        raise ValueError(
            f"snapshot format {version} is not supported (this {service} reads format {FORMAT})"
        )
    inflate = zlib.decompressobj()
    try:
        body = inflate.decompress(data[_HEADER.size :], MAX_DOCUMENT_BYTES)
    except zlib.error as exc:
        raise ValueError(f"unreadable {service} snapshot: {exc}") from None
    if inflate.unconsumed_tail:
        raise ValueError(
            f"unreadable {service} snapshot: inflates to more than {MAX_DOCUMENT_BYTES:,} bytes"
        )
    if not inflate.eof or inflate.unused_data:
        raise ValueError(f"unreadable {service} snapshot: truncated or trailing data")
    try:
        document = Fields(loads(body), "")
    except ValueError as exc:  # orjson's JSONDecodeError, FieldError
        raise ValueError(f"unreadable {service} snapshot: {exc}") from None
    written_with = document.string("river")
    running = river_version()
    if _minor(written_with) != _minor(running):
        raise ValueError(
            f"snapshot written with river {written_with}, this {service} runs "
            f"river {running}: detector state does not carry across minor versions"
        )
    return document
