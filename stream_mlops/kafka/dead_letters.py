"""Dead letters: bad input leaves the stream with its reason, never silently."""

from __future__ import annotations

import base64

from stream_mlops.events import DeadLetter
from stream_mlops.kafka.transport import Record


def dead_letter(record: Record, reason: str) -> DeadLetter:
    """The dead letter for one consumed record, with its original bytes."""
    payload = base64.b64encode(record.value or b"").decode("ascii")
    return DeadLetter(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        error=reason,
        payload=payload,
    )
