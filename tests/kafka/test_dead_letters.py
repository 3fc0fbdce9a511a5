"""Dead letters always fit in a Kafka record: payload cut, length and hash kept."""

from __future__ import annotations

import base64
import hashlib

import pytest

from stream_mlops.config import MAX_DEAD_LETTER_PAYLOAD_BYTES, ConfigError, parse_settings
from stream_mlops.events import DeadLetter, encode
from stream_mlops.kafka.dead_letters import MAX_ERROR_CHARS, dead_letter, without_payload
from stream_mlops.kafka.transport import Record


def record(value: bytes | None) -> Record:
    return Record("predictions", 2, 41, b"k", value)


def test_a_small_record_keeps_every_byte() -> None:
    letter = dead_letter(record(b"{not json"), "not JSON")
    assert base64.b64decode(letter.payload) == b"{not json"
    assert letter.payload_bytes == 9 and not letter.payload_truncated
    assert letter.payload_sha256 == hashlib.sha256(b"{not json").hexdigest()


def test_a_large_record_keeps_its_start_its_length_and_its_hash() -> None:
    value = bytes(range(256)) * 4000  # 1,024,000 bytes
    letter = dead_letter(record(value), "bad", max_payload_bytes=1000)
    assert base64.b64decode(letter.payload) == value[:1000]
    assert letter.payload_truncated and letter.payload_bytes == len(value)
    assert letter.payload_sha256 == hashlib.sha256(value).hexdigest()
    # At the ceiling, the whole dead letter stays under librdkafka's 1,000,000 bytes.
    widest = dead_letter(
        record(value), "x" * 50_000, max_payload_bytes=MAX_DEAD_LETTER_PAYLOAD_BYTES
    )
    assert len(encode(widest)) < 1_000_000


def test_a_long_error_is_cut() -> None:
    letter = dead_letter(record(b"v"), "e" * 100_000)
    assert len(letter.error) == MAX_ERROR_CHARS and letter.error.endswith("…")


def test_a_tombstone_is_an_empty_payload() -> None:
    letter = dead_letter(record(None), "tombstone")
    assert letter.payload == "" and letter.payload_bytes == 0 and not letter.payload_truncated


def test_without_payload_keeps_where_why_length_and_hash() -> None:
    value = b"y" * 5000
    encoded = encode(dead_letter(record(value), "bad"))
    stripped = DeadLetter.model_validate_json(without_payload(encoded))
    assert stripped.payload == "" and stripped.payload_truncated
    assert stripped.payload_bytes == 5000
    assert stripped.payload_sha256 == hashlib.sha256(value).hexdigest()
    assert (stripped.source_topic, stripped.partition, stripped.offset) == ("predictions", 2, 41)


def test_a_dead_letter_written_before_the_extension_still_reads() -> None:
    old = (
        b'{"type":"dead_letter","source_topic":"p","partition":0,"offset":1,'
        b'"error":"e","payload":""}'
    )
    letter = DeadLetter.model_validate_json(old)
    assert letter.payload_bytes is None and letter.payload_sha256 is None


@pytest.mark.parametrize("size", [-1, MAX_DEAD_LETTER_PAYLOAD_BYTES + 1])
def test_the_payload_size_is_bounded_in_the_config(size: int) -> None:
    with pytest.raises(ConfigError, match="dead_letter_max_payload_bytes"):
        parse_settings({"kafka": {"dead_letter_max_payload_bytes": size}})
