"""Snapshots that always fit a Kafka record: chunked, reassembled and checked (no broker).

The engine on chunked snapshots across a crash is in ``test_engine_service.py``;
the real-broker test with 5,000 models is ``test_state_large.py``.
"""

from __future__ import annotations

import random

import pytest

from stream_mlops.kafka.restore import latest_snapshot
from stream_mlops.kafka.state import (
    CHUNK_MAGIC,
    SnapshotError,
    SnapshotHead,
    TaskSnapshot,
    chunk_key,
)
from stream_mlops.kafka.transport import TopicPartition
from tests.kafka.in_memory import MemoryCluster

pytestmark = pytest.mark.usefixtures("process_settings")

STATE = TopicPartition("state", 0)
OFFSETS = {"predictions": 40, "outcomes": 31}


def state_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def cluster_with(*records: tuple[bytes, bytes]) -> MemoryCluster:
    cluster = MemoryCluster()
    cluster.create_topic("state")
    for key, value in records:
        cluster.produce("state", value, key=key)
    return cluster


def latest(cluster: MemoryCluster, partition: int = 0) -> TaskSnapshot | None:
    return latest_snapshot(cluster.transport().partition_reader(), STATE, "g", partition)


def test_a_snapshot_over_the_chunk_size_is_several_records_that_fit() -> None:
    snap = TaskSnapshot("g", 0, OFFSETS, state_bytes(10_500))
    records = snap.records(1_000)
    assert len(records) == 11
    assert [key for key, _ in records[:-1]] == [chunk_key("g", 0, i) for i in range(10)]
    assert records[-1][0] == snap.key  # the head, last
    assert all(len(value) < 1_000 + 200 for _, value in records)
    assert all(value.startswith(CHUNK_MAGIC) for _, value in records[:-1])
    assert latest(cluster_with(*records)) == snap
    # One that fits is the one record it always was.
    assert snap.records(10_500) == [(snap.key, snap.to_bytes())]
    assert latest(cluster_with(*snap.records(10_500))) == snap


def test_the_newest_snapshot_wins_whatever_its_chunks() -> None:
    older = TaskSnapshot("g", 0, OFFSETS, state_bytes(5_000, seed=1))
    newer = TaskSnapshot("g", 0, {"predictions": 90, "outcomes": 80}, state_bytes(2_500, seed=2))
    smaller = TaskSnapshot("g", 0, {"predictions": 99, "outcomes": 99}, b"small")
    cluster = cluster_with(*older.records(1_000), *newer.records(1_000))
    assert latest(cluster) == newer  # chunks 3 and 4 of the older one stay, unused
    for key, value in smaller.records(1_000):
        cluster.produce("state", value, key=key)
    assert latest(cluster) == smaller


def test_chunks_interleaved_with_other_tasks_records_are_found() -> None:
    mine = TaskSnapshot("g", 0, OFFSETS, state_bytes(3_000, seed=3))
    other = TaskSnapshot("g", 3, OFFSETS, state_bytes(300_000, seed=4))  # another process
    others = other.records(1_000)[:-1]  # its head not yet written
    interleaved = []
    for i, record in enumerate(mine.records(1_000)):
        interleaved.append(record)
        interleaved.extend(others[i * 100 : (i + 1) * 100])
    cluster = cluster_with(*interleaved)
    assert latest(cluster) == mine
    assert latest(cluster, partition=3) is None


def test_a_missing_or_foreign_chunk_is_an_error_naming_the_partition() -> None:
    snap = TaskSnapshot("g", 0, OFFSETS, state_bytes(3_500, seed=5))
    first, second, third, head = snap.records(1_000)
    with pytest.raises(SnapshotError, match="partition 0: chunk 1 of 3 is missing"):
        latest(cluster_with(first, third, head))
    older = TaskSnapshot("g", 0, OFFSETS, state_bytes(3_500, seed=6)).records(1_000)
    with pytest.raises(SnapshotError, match="chunk 1 belongs to another snapshot"):
        latest(cluster_with(first, older[1], third, head))
    # Under the right key, another task's chunk.
    foreign = TaskSnapshot("g", 7, OFFSETS, state_bytes(3_500, seed=5)).records(1_000)[1][1]
    with pytest.raises(SnapshotError, match="belongs to another snapshot"):
        latest(cluster_with(first, (second[0], foreign), third, head))
    with pytest.raises(SnapshotError, match="chunk 0 of 3 is missing"):
        TaskSnapshot.from_bytes(head[1], partition=0)


def test_every_single_bit_flip_of_a_chunk_record_is_refused() -> None:
    snap = TaskSnapshot("g", 0, OFFSETS, state_bytes(600, seed=7))
    (key, value), head = snap.records(300)[0], snap.records(300)[-1]
    chunk = bytearray(value)
    for i in range(len(chunk)):
        for bit in range(8):
            chunk[i] ^= 1 << bit
            with pytest.raises(SnapshotError):
                latest(cluster_with((key, bytes(chunk)), snap.records(300)[1], head))
            chunk[i] ^= 1 << bit
    assert latest(cluster_with(*snap.records(300))) == snap


def test_a_head_whose_chunking_fields_are_forged_is_refused() -> None:
    snap = TaskSnapshot("g", 0, OFFSETS, state_bytes(3_000, seed=8))
    records = snap.records(1_000)
    head = SnapshotHead.from_bytes(records[-1][1])
    assert (head.chunks, len(head.piece)) == (2, 1_000)
    forged = TaskSnapshot("g", 0, OFFSETS, b"x")._head(head.piece, {"chunks": 2, "state_crc32c": 1})
    with pytest.raises(SnapshotError, match="belongs to another snapshot"):
        latest(cluster_with(*records[:-1], (snap.key, forged)))
    for fields in (
        {"chunks": 0, "state_crc32c": 1},
        {"chunks": 2},
        {"chunks": 2, "state_crc32c": -1},
    ):
        bad = snap._head(head.piece, fields)
        with pytest.raises(SnapshotError, match="unreadable state header"):
            SnapshotHead.from_bytes(bad, partition=0)
