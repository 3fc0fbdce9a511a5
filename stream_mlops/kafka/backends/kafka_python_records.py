"""The group consumer's records, unpacked straight from kafka-python's fetched batches.

kafka-python 3.x parses each record of a fetched batch into a ``DefaultRecord``
(a property per field, a function call per varint), then into a 13-field
``ConsumerRecord`` (running key and value deserializers and summing header
sizes), which the backend then copied into the runtime's ``Record``: three
objects and some thirty Python calls per record, the largest share of the
kafka-python engine's time outside the pure core (docs/benchmarks.md has the
profile). ``LeanPartitionRecords`` takes the place of the fetcher's
``PartitionRecords`` for one consumer and yields ``Record`` from the batch
bytes directly.

Only the per-record loop is new. Everything exactly-once rests on is
kafka-python's own code, called in the order its ``_unpack_records`` calls it:
the batch CRC check (``check_crcs``, kept on; the ``crc32c`` dependency makes it
C speed), the aborted-transaction bookkeeping of ``read_committed``, control
batches skipped, compressed batches inflated by the batch itself. A batch in
the legacy message formats (v0/v1, which Kafka 4 no longer writes) goes
through kafka-python's record objects as before.

``install`` checks that the fetcher has the shape this module was written
against (kafka-python 3.0.x) and declines otherwise; the backend then keeps
the stock path and converts records itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import kafka
import kafka.errors as kerrors
from kafka.consumer.fetcher import Fetcher
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.util import decode_varint

from stream_mlops.kafka.transport import Record

_log = logging.getLogger(__name__)

# The private fetcher internals used here are kafka-python 3.0.x's: another
# series may keep their names and change what they mean, so it gets the
# client's own record objects until this module is checked against it.
_WRITTEN_FOR = "3.0."
_Stock: Any = getattr(Fetcher, "PartitionRecords", None)
# What LeanPartitionRecords relies on from kafka-python's class: the
# transaction bookkeeping it calls and the state it keeps up to date.
_NEEDED = (
    "_consume_aborted_transactions_up_to",
    "_contains_abort_marker",
    "_is_batch_aborted",
    "_maybe_skip_record",
    "take",
    "drain",
)
_READ_COMMITTED: Any = None
if _Stock is not None:
    from kafka.consumer.fetcher import IsolationLevel

    _READ_COMMITTED = IsolationLevel.READ_COMMITTED


def _records(batch: DefaultRecordBatch, topic: str, partition: int) -> Iterator[tuple[Record, int]]:
    """A v2 batch's records, each with its size in bytes, as ``_read_msg`` reads them.

    The same checks as kafka-python's: a record whose length disagrees with
    what was read, a negative header count or key size, bytes left after the
    last record, all raise ``CorruptRecordError``.
    """
    batch._maybe_uncompress()
    data = bytes(batch._buffer)
    pos = batch._pos
    base_offset = batch.base_offset
    log_append = batch.timestamp_type == DefaultRecordBatch.LOG_APPEND_TIME
    first_timestamp = batch.first_timestamp
    max_timestamp = batch.max_timestamp
    try:
        for _ in range(batch._num_records):
            # Varints are zigzag-encoded; most here fit one byte: decode those
            # inline, the rest with kafka-python's decoder.
            length, pos = (
                ((b >> 1) ^ -(b & 1), pos + 1)
                if (b := data[pos]) < 0x80
                else decode_varint(data, pos)
            )
            start = pos
            # Attributes (one byte, unused in format v2), then the timestamp delta.
            pos += 1
            ts_delta, pos = (
                ((b >> 1) ^ -(b & 1), pos + 1)
                if (b := data[pos]) < 0x80
                else decode_varint(data, pos)
            )
            offset_delta, pos = (
                ((b >> 1) ^ -(b & 1), pos + 1)
                if (b := data[pos]) < 0x80
                else decode_varint(data, pos)
            )
            key_len, pos = (
                ((b >> 1) ^ -(b & 1), pos + 1)
                if (b := data[pos]) < 0x80
                else decode_varint(data, pos)
            )
            if key_len >= 0:
                key: bytes | None = data[pos : pos + key_len]
                pos += key_len
            else:
                key = None
            value_len, pos = (
                ((b >> 1) ^ -(b & 1), pos + 1)
                if (b := data[pos]) < 0x80
                else decode_varint(data, pos)
            )
            if value_len >= 0:
                value: bytes | None = data[pos : pos + value_len]
                pos += value_len
            else:
                value = None
            headers, pos = decode_varint(data, pos)
            if headers < 0:
                raise kerrors.CorruptRecordError(
                    f"Found invalid number of record headers {headers}"
                )
            # The runtime reads no headers: step over them, checking their sizes.
            while headers:
                h_key_len, pos = decode_varint(data, pos)
                if h_key_len < 0:
                    raise kerrors.CorruptRecordError(
                        f"Invalid negative header key size {h_key_len}"
                    )
                pos += h_key_len
                h_value_len, pos = decode_varint(data, pos)
                if h_value_len > 0:
                    pos += h_value_len
                headers -= 1
            if pos - start != length or pos > len(data):
                raise kerrors.CorruptRecordError(
                    f"Invalid record size: expected to read {length} bytes in record "
                    f"payload, but instead read {pos - start}"
                )
            timestamp = max_timestamp if log_append else first_timestamp + ts_delta
            yield (
                Record(
                    topic,
                    partition,
                    base_offset + offset_delta,
                    key,
                    value,
                    timestamp if timestamp >= 0 else None,
                ),
                pos - start,
            )
    except (ValueError, IndexError) as exc:
        raise kerrors.CorruptRecordError(f"Found invalid record structure: {exc!r}") from None
    if pos != len(data):
        raise kerrors.CorruptRecordError(
            f"{len(data) - pos} unconsumed bytes after all records consumed"
        )


if _Stock is not None:

    class LeanPartitionRecords(_Stock):  # type: ignore[misc]
        """kafka-python's ``Fetcher.PartitionRecords`` yielding ``Record`` directly."""

        def _unpack_records(
            self, tp: Any, records: Any, key_deserializer: Any, value_deserializer: Any
        ) -> Iterator[Record]:
            # install() refuses a consumer with deserializers: the runtime
            # takes the bytes as they are.
            topic, partition = tp.topic, tp.partition
            try:
                batch = records.next_batch()
                last_batch = None
                while batch is not None:
                    last_batch = batch
                    if self.check_crcs and not batch.validate_crc():
                        raise kerrors.CorruptRecordError(
                            f"Record batch for partition {tp} at offset "
                            f"{batch.base_offset} failed crc check"
                        )
                    if batch.magic != 2:
                        yield from self._legacy(batch, topic, partition)
                        batch = records.next_batch()
                        continue
                    self.leader_epoch = batch.leader_epoch
                    if self.isolation_level == _READ_COMMITTED and batch.has_producer_id():
                        self._consume_aborted_transactions_up_to(batch.last_offset)
                        producer_id = batch.producer_id
                        if self._contains_abort_marker(batch):
                            self.aborted_producer_ids.discard(producer_id)
                        elif self._is_batch_aborted(batch):
                            self.next_fetch_offset = batch.next_offset
                            batch = records.next_batch()
                            continue
                    if batch.is_control_batch:
                        self.next_fetch_offset = batch.next_offset
                        batch = records.next_batch()
                        continue
                    for record, size in _records(batch, topic, partition):
                        self.records_read += 1
                        self.bytes_read += size
                        # Before the yield: take() stops after a record, and the
                        # fetch position is read from here then.
                        self.next_fetch_offset = record.offset + 1
                        yield record
                    batch = records.next_batch()
                # Format v2 keeps a batch's last offset even when compaction
                # removed its last record: resume after the batch, not the record.
                if last_batch is not None and last_batch.magic == 2:
                    self.next_fetch_offset = last_batch.next_offset
                self.drain()
            except StopIteration:
                # A StopIteration inside a generator would end it silently.
                raise RuntimeError("StopIteration raised unpacking messageset") from None

        def _legacy(self, batch: Any, topic: str, partition: int) -> Iterator[Record]:
            for r in batch:
                if self.check_crcs and not r.validate_crc():
                    raise kerrors.CorruptRecordError(
                        f"Record for partition {topic}-{partition} at offset "
                        f"{r.offset} failed crc check"
                    )
                self.records_read += 1
                self.bytes_read += r.size_in_bytes
                self.next_fetch_offset = r.offset + 1
                ts = r.timestamp
                yield Record(topic, partition, r.offset, r.key, r.value, ts if ts >= 0 else None)


def install(consumer: Any) -> bool:
    """Make ``consumer`` (a ``kafka.KafkaConsumer``) return ``Record`` from its polls.

    True if installed; False (logged once per consumer) if this kafka-python's
    fetcher is not the shape expected, or the consumer has deserializers: its
    polls then return kafka-python's ``ConsumerRecord`` as usual.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    config = getattr(consumer, "config", {})
    ready = (
        kafka.__version__.startswith(_WRITTEN_FOR)
        and _Stock is not None
        and isinstance(fetcher, Fetcher)
        and all(hasattr(_Stock, name) for name in _NEEDED)
        and config.get("key_deserializer") is None
        and config.get("value_deserializer") is None
    )
    if not ready:
        _log.info(
            "kafka-python records: the client's own record objects (kafka-python %s, "
            "fetcher not as expected or not %sx)",
            kafka.__version__,
            _WRITTEN_FOR,
        )
        return False
    # An instance attribute: the fetcher builds each fetch's records through
    # self.PartitionRecords, so only this consumer changes.
    fetcher.PartitionRecords = LeanPartitionRecords  # type: ignore[union-attr]
    return True
