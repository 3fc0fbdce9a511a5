"""The drift engine on the task runtime: the pure ``Engine`` per partition, wired to Kafka.

One event's path, from a Kafka record to an alert:

1. ``TaskRuntime.step`` polls a record of ``predictions`` or ``outcomes``
   partition *p* and routes it to task *p* (a tombstone or a record over
   ``max_record_bytes`` goes to the dead letters there).
2. ``EngineService.process`` decodes it (``events.decode_input``, the topic
   giving the default ``type``); bad bytes, bad fields, an event of the other
   topic's type and a model the config refuses become a dead letter.
3. Task *p*'s ``Engine`` (the pure core) joins it, updates signals and
   detectors and returns outputs: labeled events, drift alerts, retrain
   requests, sent into the open transaction. An alert or retrain request asks
   the runtime to commit at the end of the batch.
4. The runtime's checkpoint adds the engine's snapshot and commits it with the
   consumed offsets: only then do ``read_committed`` readers see the alert.

Predictions and outcomes are co-partitioned by ``event_id``, so partition *p*
of both topics is one task with its own engine. The pending join is not in the
snapshot: restore re-reads the still-pending input records (their offsets are
in the snapshot).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, NamedTuple

import structlog

from stream_mlops.config import Settings
from stream_mlops.engine import Engine, UnknownModelError
from stream_mlops.event_time import EventTimeError
from stream_mlops.events import (
    DriftAlert,
    EventError,
    InputEvent,
    LabeledEvent,
    PerformanceEstimate,
    RetrainRequest,
    decode_input,
    encode,
)
from stream_mlops.kafka.task_runtime import Outputs
from stream_mlops.kafka.transport import PartitionReader, Record, TopicPartition
from stream_mlops.limits import EventLimitError
from stream_mlops.reference import ModelReference

Kind = Literal["prediction", "outcome"]

#: Hears of each alert and retrain request as it goes into the open transaction,
#: with the record that triggered it (the metrics count them at the commit).
AlertListener = Callable[[DriftAlert | RetrainRequest, Record], None]


class _Rejection(NamedTuple):
    cause: str
    error: str


def _refusal_cause(error: EventError) -> str:
    """A short, bounded label for why the core refused an event (logs, metrics)."""
    if isinstance(error, EventTimeError):
        return "event_time"
    if isinstance(error, EventLimitError):
        return "limit"
    if isinstance(error, UnknownModelError):
        return "unknown_model"
    return "refused"


class EngineService:
    """``TaskService`` of the drift engine: one ``Engine`` per input partition."""

    name = "engine"

    def __init__(
        self,
        settings: Settings,
        *,
        on_alert: AlertListener | None = None,
        references: Mapping[str, ModelReference] | None = None,
    ) -> None:
        """``references``: the pinned references, read once at start and given to
        every partition's engine, fresh or restored (``stream_mlops.reference``)."""
        topics = settings.kafka.topics
        self._settings = settings
        self._references = references
        self._on_alert = on_alert
        self._labeled = settings.kafka.publish_labeled_events
        self._kinds: dict[str, Kind] = {
            topics.predictions: "prediction",
            topics.outcomes: "outcome",
        }
        self.input_topics: Sequence[str] = tuple(self._kinds)
        self._output_topics: dict[type, str] = {
            DriftAlert: topics.drift_alerts,
            RetrainRequest: topics.retrain_requests,
            LabeledEvent: topics.labeled_events,
            PerformanceEstimate: topics.performance_estimates,
        }
        self._log = structlog.get_logger("stream_mlops.engine")

    def fresh(self, partition: int) -> Engine:
        return Engine(
            self._settings,
            partition=partition,
            labeled_events=self._labeled,
            references=self._references,
        )

    def restore(
        self, partition: int, state: bytes, offsets: Mapping[str, int], reader: PartitionReader
    ) -> Engine:
        """The snapshot's engine, with its pending join rebuilt from the input topics."""
        engine = Engine.restore(
            self._settings,
            state,
            partition=partition,
            labeled_events=self._labeled,
            references=self._references,
        )
        for topic, kind in self._kinds.items():
            pending = engine.pending_offsets(kind)
            lowest = pending.lowest()
            if lowest is None:
                continue
            for record in reader.read(TopicPartition(topic, partition), lowest, offsets[topic]):
                if record.offset in pending and record.value is not None:
                    event = decode_input(record.value, default_type=kind)
                    engine.restore_pending(event, record.offset)
        return engine

    def process(self, task: Engine, records: list[Record], out: Outputs) -> None:
        """Decode, process and publish a task's records, in order.

        One pass with the lookups hoisted: per-record overhead is a large share
        of the cost at tens of thousands of records per second.
        """
        kinds, output_topics, send = self._kinds, self._output_topics, out.send
        alerted = False
        # The wall clock the core judges event times against ([join]
        # max_ahead_of_wall_clock_seconds): once per batch, a batch is short.
        now = time.time()
        for record in records:
            event = self._decode(record, kinds[record.topic])
            if isinstance(event, _Rejection):
                out.dead_letter(record, event.error, event.cause)
                continue
            try:
                outputs = task.process(event, record.offset, now=now)
            except EventError as exc:  # too far ahead in time, over a limit, an unknown model
                out.dead_letter(record, str(exc), _refusal_cause(exc))
                continue
            except Exception as exc:
                # A bug must not stop the stream or lose the record: it goes to
                # the dead letters with the reason, and the log says so loudly.
                self._log.exception(
                    "engine.error", partition=record.partition, offset=record.offset
                )
                out.dead_letter(record, f"engine error: {type(exc).__name__}: {exc}", "bug")
                continue
            for output in outputs:
                send(
                    output_topics[type(output)],
                    output.model_id.encode(),
                    encode(output),
                    output.type,
                )
            # Alerts and retrain requests come last in a list of outputs.
            if outputs and type(outputs[-1]) in (DriftAlert, RetrainRequest):
                alerted = True
                self._log_alerts(outputs, record)
        for notice in task.take_notices():
            self._log.warning("engine.notice", partition=task.partition, notice=notice)
        if alerted:
            # Alerts and retrain requests are what downstream waits for: commit
            # at the end of this batch instead of at the interval. They are rare
            # (cooldowns, rate limits), so the extra commits are few.
            out.commit_soon()

    @staticmethod
    def _decode(record: Record, kind: Kind) -> InputEvent | _Rejection:
        assert record.value is not None  # the runtime dead-letters tombstones
        try:
            event = decode_input(record.value, default_type=kind)
        except EventError as exc:
            return _Rejection("invalid", str(exc))
        if event.type != kind:
            return _Rejection(
                "wrong_topic", f"a {event.type} event does not belong on topic {record.topic!r}"
            )
        return event

    def _log_alerts(self, outputs: Sequence[object], trigger: Record) -> None:
        for output in outputs:
            if self._on_alert is not None and isinstance(output, DriftAlert | RetrainRequest):
                self._on_alert(output, trigger)
            if isinstance(output, DriftAlert):
                self._log.info(
                    "alert",
                    alert_id=output.alert_id,
                    model_id=output.model_id,
                    model_version=output.model_version,
                    signal=output.signal,
                    detector=output.detector,
                    severity=output.severity,
                    trigger_event_id=output.trigger_event_id,
                )
            elif isinstance(output, RetrainRequest):
                self._log.info(
                    "retrain_request",
                    request_id=output.request_id,
                    model_id=output.model_id,
                    model_version=output.model_version,
                )

    def snapshot(self, task: Engine) -> bytes:
        return task.snapshot()

    def has_actions(self, task: Engine) -> bool:
        return False  # everything the engine decides is an output of its batch

    def act(self, task: Engine, out: Outputs) -> None:
        raise AssertionError("the engine never has actions")

    def describe(self, tasks: Sequence[Engine]) -> dict[str, object]:
        return {"pending": sum(engine.stats.pending for engine in tasks)}

    def totals(self) -> dict[str, object]:
        return {}
