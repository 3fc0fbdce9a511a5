"""The checkpoint: one Kafka transaction holding outputs, then state snapshots, then offsets.

After Quix Streams' ``checkpointing.Checkpoint``: everything a service produces
while it processes records goes into the open transaction; a commit adds one
snapshot per changed task to the state topic and sends the consumed offsets
with the group metadata (KIP-447), so outputs, state and offsets become
visible together or not at all. On failure the transaction is aborted and the
runtime rewinds to the last committed snapshots.

A ``Checkpoint`` is reused from one transaction to the next; ``_settle`` is the
one place that clears what a transaction held, whether it committed or aborted.
Services see it only through ``Outputs``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Protocol

import structlog

from stream_mlops.config import DEAD_LETTER_PAYLOAD_BYTES
from stream_mlops.events import encode
from stream_mlops.kafka.dead_letters import dead_letter
from stream_mlops.kafka.observer import CheckpointReport
from stream_mlops.kafka.state import DEFAULT_CHUNK_BYTES, TaskSnapshot
from stream_mlops.kafka.transport import (
    Record,
    TopicPartition,
    TransactionalProducer,
    TransactionFailedError,
)

__all__ = ["Checkpoint", "FencedError", "Outputs", "checkpoint_due"]


def checkpoint_due(
    *, urgent: bool, since_last_s: float, interval_s: float, records: int, max_records: int
) -> bool:
    """Whether to commit now, after a batch: a service asked for it (an alert, a
    retrain request, a decision to act on: downstream is waiting), the interval
    has passed since the last checkpoint, or the transaction holds
    ``max_records`` consumed records.

    >>> checkpoint_due(urgent=True, since_last_s=0.0, interval_s=0.2, records=1, max_records=10)
    True
    >>> checkpoint_due(urgent=False, since_last_s=0.1, interval_s=0.2, records=1, max_records=10)
    False
    """
    return urgent or since_last_s >= interval_s or records >= max_records


class FencedError(Exception):
    """Another process took over our transactional id: this one can never commit again."""


class Outputs(Protocol):
    """Where a service puts what it produces; all of it commits or aborts together."""

    def send(self, topic: str, key: bytes | None, value: bytes, kind: str) -> None:
        """Produce one output; ``kind`` names it in the reports (e.g. ``drift_alert``)."""
        ...

    def dead_letter(self, record: Record, error: str, cause: str) -> None:
        """Send ``record`` to the dead-letter topic with the readable ``error``.

        ``cause`` is a short fixed word per kind of failure (``invalid``,
        ``too_large``, ...) for counts and metric labels.
        """
        ...

    def commit_soon(self) -> None:
        """Ask for a commit at the end of this batch instead of at the interval
        (something downstream is waiting for, or a decision to act on)."""
        ...


class Checkpoint:
    """The open transaction and what it holds, until it commits or aborts."""

    def __init__(
        self,
        producer: TransactionalProducer,
        *,
        dead_letter_topic: str,
        state_topic: str,
        state_partition: Callable[[int], int],
        owner: str,
        transactional_id: str,
        clock: Callable[[], float],
        log: structlog.typing.FilteringBoundLogger,
        dead_letter_payload_bytes: int = DEAD_LETTER_PAYLOAD_BYTES,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        self._producer = producer
        self._produce = producer.send
        self._dead_letter_topic = dead_letter_topic
        self._dead_letter_payload_bytes = dead_letter_payload_bytes
        self._state_topic = state_topic
        self._state_partition = state_partition
        self._owner = owner
        self._transactional_id = transactional_id
        self._clock = clock
        self._log = log
        self._chunk_bytes = chunk_bytes
        #: a transaction is open (begun, not yet committed or aborted)
        self.open = False
        #: records consumed in the open transaction
        self.records = 0
        #: commit at the end of the current batch
        self.urgent = False
        self._opened_at = 0.0
        # Per batch, handed to the observers by ``take_counts``.
        self._outputs: Counter[str] = Counter()
        self._dead_letters: Counter[str] = Counter()

    def begin(self) -> None:
        """Open a transaction unless one is open."""
        if not self.open:
            self._call(self._producer.begin)
            self.open = True
            self._opened_at = self._clock()

    # -- Outputs --------------------------------------------------------------

    def send(self, topic: str, key: bytes | None, value: bytes, kind: str) -> None:
        try:
            self._produce(topic, key, value)
        except TransactionFailedError as exc:
            self._raise_if_fenced(exc)
            raise
        self._outputs[kind] += 1

    def dead_letter(self, record: Record, error: str, cause: str) -> None:
        letter = dead_letter(record, error, max_payload_bytes=self._dead_letter_payload_bytes)
        self._send(self._dead_letter_topic, record.key, encode(letter))
        self._dead_letters[cause] += 1
        self._log.warning(
            "dead_letter",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=error,
            cause=cause,
        )

    def commit_soon(self) -> None:
        self.urgent = True

    def take_counts(self) -> tuple[Counter[str], Counter[str]]:
        """Outputs and dead letters since the last call, by kind and by cause."""
        counts = self._outputs, self._dead_letters
        self._outputs, self._dead_letters = Counter(), Counter()
        return counts

    # -- ending the transaction -------------------------------------------------

    def commit(
        self,
        snapshots: Sequence[TaskSnapshot],
        offsets: Mapping[TopicPartition, int],
        group_metadata: object,
        tasks: Mapping[str, object],
    ) -> CheckpointReport:
        """Add the snapshots, commit with the offsets; an "aborted" report if that failed.

        Raises ``FencedError`` if another process owns the transactional id now.
        """
        try:
            for snapshot in snapshots:
                partition = self._state_partition(snapshot.partition)
                # A large snapshot is several records, the head last (kafka/state.py).
                for key, value in snapshot.records(self._chunk_bytes):
                    self._produce(self._state_topic, key, value, partition)
            self._producer.commit(offsets, group_metadata)
        except TransactionFailedError as exc:
            self._raise_if_fenced(exc)
            return self._settle("aborted", reason=str(exc))
        return self._settle("committed", snapshots=len(snapshots), tasks=tasks, offsets=offsets)

    def abort(self, reason: str) -> CheckpointReport:
        """Abort the open transaction: nothing it held becomes visible."""
        try:
            self._call(self._producer.abort)
        finally:
            report = self._settle("aborted", reason=reason)
        return report

    def _settle(
        self,
        outcome: Literal["committed", "aborted"],
        *,
        snapshots: int = 0,
        tasks: Mapping[str, object] | None = None,
        offsets: Mapping[TopicPartition, int] | None = None,
        reason: str | None = None,
    ) -> CheckpointReport:
        report = CheckpointReport(
            outcome=outcome,
            records=self.records,
            snapshots=snapshots,
            duration_s=self._clock() - self._opened_at,
            tasks=tasks or {},
            offsets=dict(offsets or {}),
            reason=reason,
        )
        self.open = False
        self.records = 0
        self.urgent = False
        return report

    def _send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        try:
            self._produce(topic, key, value, partition)
        except TransactionFailedError as exc:
            self._raise_if_fenced(exc)
            raise

    def _call(self, action: Callable[[], None]) -> None:
        """Run a producer call; a fenced producer becomes ``FencedError``."""
        try:
            action()
        except TransactionFailedError as exc:
            self._raise_if_fenced(exc)
            raise

    def _raise_if_fenced(self, exc: TransactionFailedError) -> None:
        if not exc.fenced:
            return
        self.open = False
        self._log.error(f"{self._owner}.fenced", transactional_id=self._transactional_id)
        raise FencedError(
            f"another {self._owner} took over transactional id "
            f"{self._transactional_id!r}; give each {self._owner} process its own "
            "--instance-id"
        ) from exc
