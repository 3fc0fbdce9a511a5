"""The kafka-python group consumer's lean record unpacking against kafka-python's own.

Broker-free: batches are built with kafka-python's record builders, as a
broker would hand them to the fetcher, and unpacked both by kafka-python's
``Fetcher.PartitionRecords`` (then copied into ``Record`` as the backend did)
and by ``LeanPartitionRecords``. Every field, the fetch position and the
errors must agree. tests/kafka/test_group_consumer_records.py reads through a
real broker (transactions, compression, log-append time).
"""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

import kafka.errors as kerrors
import pytest
from kafka.consumer.fetcher import Fetcher, IsolationLevel
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
from kafka.record.util import calc_crc32c
from kafka.structs import TopicPartition

from stream_mlops.kafka.backends import kafka_python_records
from stream_mlops.kafka.backends.kafka_python_records import LeanPartitionRecords, install
from stream_mlops.kafka.transport import Record

TP = TopicPartition("predictions", 3)
GZIP = DefaultRecordBatch.CODEC_GZIP

# (timestamp, key, value, headers): one-byte and multi-byte varints, absent
# and empty keys and values, headers with absent and present values, a
# timestamp before the epoch's delta base.
ROWS: list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]] = [
    (1_790_000_000_000, b"txn-1", b'{"type":"prediction"}', []),
    (1_790_000_000_005, None, b"x" * 300, []),
    (1_790_000_000_001, b"k" * 70, None, [("trace", b"abc"), ("empty", None)]),
    (1_790_000_090_000, b"", b"", [("h", b"")]),
    (1_790_000_000_002, b"txn-2", b"v" * 20_000, []),
]


def build(
    rows: list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]],
    *,
    base_offset: int = 0,
    per_batch: int = 2,
    compression: int = 0,
    magic: int = 2,
) -> bytes:
    """The rows as consecutive batches of ``per_batch`` records, as a fetch returns them."""
    out = bytearray()
    for start in range(0, len(rows), per_batch):
        builder = MemoryRecordsBuilder(
            magic=magic,
            compression_type=compression,
            batch_size=1 << 24,
            offset=base_offset + start,
        )
        for timestamp, key, value, headers in rows[start : start + per_batch]:
            if magic == 2:
                builder.append(timestamp=timestamp, key=key, value=value, headers=headers)
            else:
                builder.append(timestamp=timestamp, key=key, value=value)
        builder.close()
        out += builder.buffer()
    return bytes(out)


def log_append_time(data: bytes) -> bytes:
    """Each v2 batch marked log-append time (as a topic with that timestamp type
    has the broker do), its CRC recomputed."""
    out = bytearray(data)
    pos = 0
    while pos < len(out):
        (length,) = struct.unpack_from(">i", out, pos + 8)
        attributes_at = pos + DefaultRecordBatch.ATTRIBUTES_OFFSET
        (attributes,) = struct.unpack_from(">h", out, attributes_at)
        struct.pack_into(
            ">h", out, attributes_at, attributes | DefaultRecordBatch.TIMESTAMP_TYPE_MASK
        )
        end = pos + 12 + length
        crc = calc_crc32c(memoryview(out)[attributes_at:end])
        struct.pack_into(">I", out, attributes_at - 4, crc)
        pos = end
    return bytes(out)


def stock(data: bytes, fetch_offset: int = 0, take: int | None = None) -> tuple[list[Record], int]:
    """kafka-python's records copied into ``Record`` as the backend did, and the fetch position."""
    part = Fetcher.PartitionRecords(
        fetch_offset, TP, MemoryRecords(data), isolation_level=IsolationLevel.READ_COMMITTED
    )
    records = [
        Record(
            r.topic,
            r.partition,
            r.offset,
            r.key,
            r.value,
            r.timestamp if r.timestamp >= 0 else None,
        )
        for r in part.take(take)
    ]
    return records, part.next_fetch_offset


def lean(data: bytes, fetch_offset: int = 0, take: int | None = None) -> tuple[list[Any], int]:
    part = LeanPartitionRecords(
        fetch_offset, TP, MemoryRecords(data), isolation_level=IsolationLevel.READ_COMMITTED
    )
    return part.take(take), part.next_fetch_offset


@pytest.mark.parametrize("compression", [0, GZIP], ids=["plain", "gzip"])
@pytest.mark.parametrize("per_batch", [1, 2, 5])
def test_lean_records_equal_kafka_pythons_own(compression: int, per_batch: int) -> None:
    data = build(ROWS, base_offset=40, per_batch=per_batch, compression=compression)

    records, position = lean(data)

    assert (records, position) == stock(data)
    assert all(type(r) is Record for r in records)
    assert [r.offset for r in records] == [40, 41, 42, 43, 44]
    assert records[1] == Record("predictions", 3, 41, None, b"x" * 300, 1_790_000_000_005)
    assert records[2].value is None and records[3].key == b""


def test_log_append_time_gives_every_record_the_batchs_time() -> None:
    data = log_append_time(build(ROWS, per_batch=5))

    records, _ = lean(data)

    assert records == stock(data)[0]
    # kafka-python's builder sets the batch's max timestamp to the largest row's.
    assert {r.timestamp_ms for r in records} == {1_790_000_090_000}


def test_a_fetch_from_mid_batch_skips_the_earlier_records_and_stops_where_asked() -> None:
    data = build(ROWS, base_offset=10, per_batch=5)

    assert lean(data, fetch_offset=12) == stock(data, fetch_offset=12)
    assert [r.offset for r in lean(data, fetch_offset=12)[0]] == [12, 13, 14]
    # A poll that takes two leaves the position after the second: the next poll
    # must start at the third.
    assert lean(data, fetch_offset=10, take=2) == stock(data, fetch_offset=10, take=2)
    assert lean(data, fetch_offset=10, take=2)[1] == 12


def test_legacy_message_format_batches_are_read_through_the_clients_records() -> None:
    rows = [(ts, key, value, []) for ts, key, value, _ in ROWS]
    data = build(rows, base_offset=5, per_batch=2, magic=1)

    records, position = lean(data)

    assert (records, position) == stock(data)
    assert [r.offset for r in records] == [5, 6, 7, 8, 9]


def test_a_batch_that_fails_its_crc_is_refused_with_check_crcs_on() -> None:
    data = bytearray(build(ROWS, per_batch=5))
    data[-1] ^= 0xFF  # the last byte of the last record's value

    with pytest.raises(kerrors.CorruptRecordError, match="failed crc check"):
        lean(bytes(data))
    with pytest.raises(kerrors.CorruptRecordError, match="failed crc check"):
        stock(bytes(data))


def test_a_record_whose_length_disagrees_is_refused() -> None:
    data = bytearray(build(ROWS[:1], per_batch=1))
    records_at = DefaultRecordBatch.HEADER_STRUCT.size
    data[records_at] += 2  # the record's length varint: one more than it is
    attributes_at = DefaultRecordBatch.ATTRIBUTES_OFFSET
    struct.pack_into(">I", data, attributes_at - 4, calc_crc32c(memoryview(data)[attributes_at:]))

    with pytest.raises(kerrors.CorruptRecordError, match="Invalid record size"):
        lean(bytes(data))
    with pytest.raises(kerrors.CorruptRecordError, match="Invalid record size"):
        stock(bytes(data))


def test_install_declines_a_consumer_it_was_not_written_for() -> None:
    assert not install(SimpleNamespace(config={}))
    with_deserializer = SimpleNamespace(
        _fetcher=object.__new__(Fetcher), config={"value_deserializer": bytes.decode}
    )
    assert not install(with_deserializer)
    plain = SimpleNamespace(_fetcher=object.__new__(Fetcher), config={})
    assert install(plain)
    assert plain._fetcher.PartitionRecords is kafka_python_records.LeanPartitionRecords
    # Only that consumer's fetcher: the class itself is kafka-python's still.
    assert Fetcher.PartitionRecords is not LeanPartitionRecords


def test_install_declines_another_kafka_python_series(monkeypatch: pytest.MonkeyPatch) -> None:
    # Same fetcher shape, another series: its private internals may mean other things.
    monkeypatch.setattr(kafka_python_records.kafka, "__version__", "3.1.0")
    assert not install(SimpleNamespace(_fetcher=object.__new__(Fetcher), config={}))
