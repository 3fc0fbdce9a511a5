"""The retrainer on the task runtime: the pure ``Retrainer`` wired to Kafka.

Partition *p* of ``retrain-requests`` and of ``labeled-events`` is one task
(both topics are keyed by model id, so a model's requests and labeled events
share the partition number). Records are decoded here
(``retrain_inputs``) and judged by the core; what it rejects goes to the dead
letters, what it notices to the log, and a decided session makes the runtime
commit at the end of the batch. After that commit the runtime calls ``act``,
which sends the resulting ``ModelUpdate``s in the next transaction
(``stream_mlops.retrain.retrainer`` explains why this order gives exactly one
version and one visible update).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import structlog

from stream_mlops.config import Settings
from stream_mlops.events import EventError, encode
from stream_mlops.kafka.retrain_inputs import decode_labeled, decode_request
from stream_mlops.kafka.task_runtime import Outputs
from stream_mlops.kafka.transport import PartitionReader, Record, TopicPartition
from stream_mlops.retrain import LabeledExample, RetrainInputError, SourcePosition
from stream_mlops.retrain.retrainer import Notice, Retrainer, RetrainTask, Step
from stream_mlops.retrain.saved_sessions import LabeledLog


class RetrainerService:
    """``TaskService`` of the retrainer: decodes records for the ``Retrainer`` core."""

    name = "retrainer"

    def __init__(
        self,
        core: Retrainer,
        settings: Settings,
        *,
        on_notice: Callable[[Notice], None] | None = None,
    ) -> None:
        """``on_notice`` hears of every decision the core logs (the metrics count them)."""
        topics = settings.kafka.topics
        self.core = core
        self._on_notice = on_notice
        self._requests = topics.retrain_requests
        self._labeled = topics.labeled_events
        self._updates = topics.model_updates
        self.input_topics: Sequence[str] = (self._requests, self._labeled)
        self._log = structlog.get_logger("stream_mlops.retrainer")

    def fresh(self, partition: int) -> RetrainTask:
        return self.core.fresh(partition)

    def restore(
        self, partition: int, state: bytes, offsets: Mapping[str, int], reader: PartitionReader
    ) -> RetrainTask:
        """The snapshot's sessions rebuilt, and the buffer refilled, from the labeled
        events before the committed offset (``Retrainer.restore``)."""
        tp = TopicPartition(self._labeled, partition)
        end = offsets[self._labeled]

        def read(start: int) -> Iterator[LabeledExample]:
            for record in reader.read(tp, start, end):
                try:
                    yield decode_labeled(record)
                except (EventError, RetrainInputError):
                    continue  # dead-lettered when it was first consumed

        log = LabeledLog(start=reader.beginning_offset(tp), end=end, read=read)
        return self.core.restore(partition, state, log)

    def process(self, task: RetrainTask, records: list[Record], out: Outputs) -> None:
        for record in records:
            if record.topic == self._labeled:
                try:
                    example = decode_labeled(record)
                except (EventError, RetrainInputError) as exc:
                    out.dead_letter(record, str(exc), "invalid")
                    continue
                step = self.core.labeled(task, example)
            else:
                try:
                    request = decode_request(record)
                except EventError as exc:
                    out.dead_letter(record, str(exc), "invalid")
                    continue
                source = SourcePosition(record.topic, record.partition, record.offset)
                step = self.core.request(task, request, source)
            self._follow(step, record, out)

    def _follow(self, step: Step, record: Record, out: Outputs) -> None:
        self._say(step.notices)
        if step.rejected is not None:
            out.dead_letter(record, step.rejected.error, step.rejected.cause)
        if step.decided:
            out.commit_soon()

    def _say(self, notices: Sequence[Notice]) -> None:
        for notice in notices:
            if self._on_notice is not None:
                self._on_notice(notice)
            if notice.warning:
                self._log.warning(notice.event, **notice.fields)
            else:
                self._log.info(notice.event, **notice.fields)

    def snapshot(self, task: RetrainTask) -> bytes:
        return self.core.snapshot(task)

    def has_actions(self, task: RetrainTask) -> bool:
        return self.core.has_actions(task)

    def act(self, task: RetrainTask, out: Outputs) -> None:
        acted = self.core.act(task)
        for update in acted.updates:
            out.send(self._updates, update.model_id.encode(), encode(update), update.type)
        self._say(acted.notices)

    def describe(self, tasks: Sequence[RetrainTask]) -> dict[str, object]:
        return self.core.describe(tasks)

    def totals(self) -> dict[str, object]:
        return self.core.totals()
