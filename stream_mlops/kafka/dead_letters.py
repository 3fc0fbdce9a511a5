"""Dead letters: bad input leaves the stream with its reason, never silently.

A dead letter must always fit in a Kafka record, or the record it rescues
stops the service instead (the client refuses it, the service exits, and a
restart reads the same record again). So its payload is the record's first
``max_payload_bytes`` bytes at most (base64 makes them a third larger), with
the original length and sha256 to identify the whole, and its error text is
bounded too.
"""

from __future__ import annotations

import base64
import hashlib

from stream_mlops.config import DEAD_LETTER_PAYLOAD_BYTES
from stream_mlops.events import DeadLetter, encode
from stream_mlops.kafka.transport import Record

#: An error text longer than this is cut (a validation error can quote input).
MAX_ERROR_CHARS = 4096


def dead_letter(
    record: Record, reason: str, *, max_payload_bytes: int = DEAD_LETTER_PAYLOAD_BYTES
) -> DeadLetter:
    """The dead letter for one consumed record, with (the start of) its bytes."""
    value = record.value or b""
    kept = value[:max_payload_bytes]
    if len(reason) > MAX_ERROR_CHARS:
        reason = reason[: MAX_ERROR_CHARS - 1] + "…"
    return DeadLetter(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        error=reason,
        payload=base64.b64encode(kept).decode("ascii"),
        payload_bytes=len(value),
        payload_sha256=hashlib.sha256(value).hexdigest(),
        payload_truncated=len(kept) < len(value),
    )


def without_payload(encoded: bytes) -> bytes:
    """An encoded dead letter with its payload dropped (length and hash kept).

    The fallback when a client refuses even the truncated dead letter (client
    options can set a smaller limit than the defaults).
    """
    letter = DeadLetter.model_validate_json(encoded)
    return encode(letter.model_copy(update={"payload": "", "payload_truncated": True}))
