"""Records the client refuses for their size: logged, counted, never a stop.

A service's outputs are bounded by the limits on its inputs, and dead letters
by ``[kafka] dead_letter_max_payload_bytes``; a client configured with a
smaller record limit (client options) can still refuse one. An exception
there would stop the service, and a restart would read the same input and
stop again. So the runtime's producer is wrapped: a refused output is logged
(``record.too_large``) and counted, a refused dead letter is sent again
without its payload (length and sha256 kept), and the service carries on.
A refused snapshot still raises: skipping one would commit offsets without
the state they belong to.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import structlog

from stream_mlops.kafka.dead_letters import without_payload
from stream_mlops.kafka.transport import RecordTooLargeError, TopicPartition, TransactionalProducer


class OversizeGuard:
    """A ``TransactionalProducer`` that survives records too large to produce."""

    def __init__(
        self,
        producer: TransactionalProducer,
        *,
        dead_letter_topic: str,
        state_topic: str,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._producer = producer
        self._send = producer.send
        self._dead_letter_topic = dead_letter_topic
        self._state_topic = state_topic
        self._log = log
        #: records the client refused for their size, by topic
        self.refused: Counter[str] = Counter()

    def begin(self) -> None:
        self._producer.begin()

    def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        try:
            self._send(topic, key, value, partition)
        except RecordTooLargeError as exc:
            if topic == self._state_topic:
                raise
            self.refused[topic] += 1
            fallback = topic == self._dead_letter_topic
            self._log.error(
                "record.too_large",
                topic=topic,
                bytes=exc.size,
                error=str(exc),
                action="sent without payload" if fallback else "skipped",
            )
            if fallback:
                self._send(topic, key, without_payload(value), partition)

    def commit(self, offsets: Mapping[TopicPartition, int], group_metadata: object) -> None:
        self._producer.commit(offsets, group_metadata)

    def abort(self) -> None:
        self._producer.abort()

    def close(self) -> None:
        self._producer.close()
