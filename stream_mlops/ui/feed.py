"""The page's feed: reads the contract's topics and the registry into a ``StreamDigest``.

One thread (``TopicFeed.run``) does all the reading, through the project's
transport (so ``[kafka] client`` and the connection settings apply; no Kafka
client is imported here), and publishes a fresh ``OperatorView`` for the web
app to show:

* continuously, every record of ``drift-alerts``, ``retrain-requests``,
  ``model-updates`` and ``dead-letters`` from the oldest on, with
  ``read_committed`` (an aborted alert or promotion is never shown);
* every refresh (``[ui] refresh_seconds``): the end offset of each partition
  of the engine's and the retrainer's input topics and both groups' committed
  offsets (lag and throughput, ``stream_mlops.ui.throughput``); the newest
  ``[ui] sample_events`` records per partition of ``labeled-events`` (or of
  ``predictions`` when the engine does not publish labeled events) that
  arrived since the last refresh, whose means are the signals' recent values,
  so the page's cost does not grow with the stream's rate; and the registry
  directory, read without writing anything to it.

A broker that does not answer, or a topic that does not exist yet, is a note
on the page, and the feed retries every refresh; the page keeps serving what
it knew.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import structlog

from stream_mlops.config import Settings
from stream_mlops.events import loads
from stream_mlops.kafka.transport import (
    Admin,
    PartitionReader,
    TopicNotFoundError,
    TopicPartition,
    TopicReader,
    Transport,
    TransportError,
)
from stream_mlops.ui.digest import DigestLimits, RecordKind, StreamDigest
from stream_mlops.ui.registry_view import RegistryModel, open_read_only, read_registry
from stream_mlops.ui.throughput import ConsumerGroup, OffsetHistory, OffsetSample
from stream_mlops.ui.view import OperatorView

__all__ = ["TopicFeed"]

# How long one poll of the event topics waits: short, so a refresh is never
# late by more than this.
_POLL_S: Final = 0.25
# Records per poll of the event topics.
_POLL_RECORDS: Final = 2000
# A burst of records (catching up on a long dead-letters topic) rebuilds the
# view at most this often.
_REBUILD_S: Final = 0.5
# How long a refresh may spend reading its sample of labeled events.
_SAMPLE_BUDGET_S: Final = 1.0
# The feed counts as stuck (/healthz 503) after this many refreshes without a
# loop, or after this many seconds, whichever is longer.
_STUCK_REFRESHES: Final = 5
_STUCK_MIN_S: Final = 30.0


class TopicFeed:
    """Keeps an ``OperatorView`` of one deployment up to date; ``view()`` is thread-safe."""

    def __init__(
        self,
        transport: Transport,
        settings: Settings,
        registry_dir: Path,
        *,
        refresh_s: float,
        sample_events: int,
        limits: DigestLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        topics = settings.kafka.topics
        self._transport = transport
        self._registry_dir = registry_dir
        self._refresh_s = refresh_s
        self._sample_events = sample_events
        self._clock = clock
        self._kinds: dict[str, RecordKind] = {
            topics.drift_alerts: "alert",
            topics.retrain_requests: "request",
            topics.model_updates: "update",
            topics.dead_letters: "dead_letter",
        }
        self._sampled_topic = (
            topics.labeled_events if settings.kafka.publish_labeled_events else topics.predictions
        )
        self._groups = (
            ConsumerGroup("engine", settings.kafka.group_id, (topics.predictions, topics.outcomes)),
            ConsumerGroup(
                "retrainer",
                settings.retrainer.group_id,
                (topics.retrain_requests, topics.labeled_events),
            ),
        )
        self.digest = StreamDigest(
            limits,
            tasks={mid: m.task for mid, m in settings.models.items() if m.task is not None},
        )
        self._offsets = OffsetHistory(keep=self.digest.limits.points)
        self._sources = {
            "cluster": settings.kafka.bootstrap_servers,
            "registry": str(registry_dir),
        }
        self._log = structlog.get_logger("stream_mlops.ui")
        self._lock = threading.Lock()
        self._notes: dict[str, str] = {}
        self._registry_models: list[RegistryModel] = []
        # Where reading resumes after a reconnection: a record is folded into
        # the digest once, however often the connection drops.
        self._positions: dict[TopicPartition, int] = {}
        self._sample_from: dict[TopicPartition, int] = {}
        self._heartbeat = clock()
        self._ready = False
        self._view = self._build()
        self._built_at = 0.0

    # -- what the web app asks ---------------------------------------------

    def view(self) -> OperatorView:
        with self._lock:
            return self._view

    def alive(self) -> bool:
        silent = self._clock() - self._heartbeat
        return silent < max(_STUCK_MIN_S, _STUCK_REFRESHES * self._refresh_s)

    def ready(self) -> bool:
        return self._ready

    # -- the reading thread --------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Read until ``stop`` is set; connection failures are retried, never raised."""
        while not stop.is_set():
            try:
                self._read(stop)
            except TransportError as exc:
                self._note("kafka", f"Kafka: {exc}; retrying every {self._refresh_s:g} s")
                self._log.warning("ui.kafka_unavailable", error=str(exc))
            except Exception as exc:  # a bug must not take the page down with it
                self._note("feed", f"feed: {type(exc).__name__}: {exc}; retrying")
                self._log.exception("ui.feed_failed")
            self._heartbeat = self._clock()
            self._refresh_registry()
            self._publish()
            stop.wait(self._refresh_s)

    def _read(self, stop: threading.Event) -> None:
        events = self._transport.reader(read_committed=True)
        sampler: TopicReader | None = None
        ends: PartitionReader | None = None
        admin: Admin | None = None
        try:
            sampler = self._transport.reader(read_committed=True)
            ends = self._transport.partition_reader()
            admin = self._transport.admin()
            self._notes.pop("kafka", None)
            self._notes.pop("feed", None)
            self._log.info("ui.kafka_connected", sources=self._sources)
            positions = self._positions
            assigned: set[str] = set()
            next_refresh = 0.0
            while not stop.is_set():
                now = self._clock()
                self._heartbeat = now
                if now >= next_refresh:
                    next_refresh = now + self._refresh_s
                    self._assign_new_topics(events, assigned, positions)
                    sample = self._sample_offsets(events, ends, admin, now)
                    self._sample_events_of(sampler, sample, self._sample_from, now)
                    self._refresh_registry()
                    self._ready = True
                    self._publish()
                if not assigned:
                    stop.wait(_POLL_S)
                    continue
                records = events.poll(_POLL_S, _POLL_RECORDS)
                for record in records:
                    positions[TopicPartition(record.topic, record.partition)] = record.offset + 1
                    seen = record.timestamp_ms / 1000 if record.timestamp_ms else now
                    self.digest.add_record(
                        self._kinds[record.topic],
                        record.value,
                        seen,
                        where=f"{record.topic}[{record.partition}]@{record.offset}",
                    )
                if records and self._clock() - self._built_at >= _REBUILD_S:
                    self._publish()
        finally:
            for client in (events, sampler, ends, admin):
                if client is not None:
                    try:
                        client.close()
                    except TransportError:
                        self._log.warning("ui.close_failed")

    def _assign_new_topics(
        self, events: TopicReader, assigned: set[str], positions: Mapping[TopicPartition, int]
    ) -> None:
        """Start reading the event topics that exist now, from their oldest record."""
        found = []
        for topic in self._kinds:
            if topic in assigned:
                continue
            try:
                found.append(events.partitions(topic))
            except TopicNotFoundError:
                self._note(f"topic:{topic}", f"topic {topic} does not exist (yet)")
                continue
            self._notes.pop(f"topic:{topic}", None)
            assigned.add(topic)
        if found:
            # assign() replaces the assignment: the topics read so far resume
            # where they were.
            every = [tp for topic in sorted(assigned) for tp in events.partitions(topic)]
            events.assign({tp: positions.get(tp, "earliest") for tp in every})

    def _sample_offsets(
        self, events: TopicReader, ends: PartitionReader, admin: Admin, now: float
    ) -> OffsetSample:
        end_offsets: dict[TopicPartition, int] = {}
        for topic in sorted({t for g in self._groups for t in g.topics} | {self._sampled_topic}):
            try:
                partitions = events.partitions(topic)
            except TopicNotFoundError:
                continue
            for tp in partitions:
                end_offsets[tp] = ends.end_offset(tp)
        committed = {g.group_id: admin.group_offsets(g.group_id) for g in self._groups}
        sample = OffsetSample(now, end_offsets, committed)
        self._offsets.add(sample)
        return sample

    def _sample_events_of(
        self,
        sampler: TopicReader,
        sample: OffsetSample,
        sample_from: dict[TopicPartition, int],
        now: float,
    ) -> None:
        """The newest records of the sampled topic since the last refresh, at most
        ``sample_events`` per partition, into the digest as one sample."""
        starts: dict[TopicPartition, int] = {}
        for tp, end in sample.ends.items():
            if tp.topic != self._sampled_topic:
                continue
            start = max(sample_from.get(tp, 0), end - self._sample_events, 0)
            if start < end:
                starts[tp] = start
            sample_from[tp] = end
        if not starts:
            return
        sampler.assign(starts)
        wanted = {tp: sample.ends[tp] for tp in starts}
        read: list[dict[str, Any]] = []
        deadline = time.monotonic() + _SAMPLE_BUDGET_S
        idle_polls = 0
        # read_committed skips aborted records and commit markers, so a
        # partition may end without a record at end - 1: two empty polls end it.
        while wanted and idle_polls < 2 and time.monotonic() < deadline:
            records = sampler.poll(0.2, max(self._sample_events, 100))
            idle_polls = 0 if records else idle_polls + 1
            for record in records:
                tp = TopicPartition(record.topic, record.partition)
                if tp not in wanted or record.offset >= wanted[tp]:
                    continue
                if record.offset >= wanted[tp] - 1:
                    del wanted[tp]
                if record.value is None:
                    continue
                try:
                    event = loads(record.value)
                except ValueError:
                    continue  # the engine's labeled events are JSON; a sample can skip one
                if isinstance(event, dict):
                    read.append(event)
        if read:
            self.digest.add_sample(read, now)

    def _refresh_registry(self) -> None:
        if not self._registry_dir.is_dir():
            self._note("registry", f"registry {self._registry_dir} does not exist (yet)")
            return
        self._notes.pop("registry", None)
        try:
            models, notes = read_registry(open_read_only(self._registry_dir))
        except OSError as exc:
            self._note("registry", f"registry {self._registry_dir}: {exc}")
            return
        self._registry_models = models
        for key in [k for k in self._notes if k.startswith("registry:")]:
            del self._notes[key]
        for note in notes:
            self._notes[f"registry:{note}"] = note

    def _note(self, key: str, text: str) -> None:
        if self._notes.get(key) != text:
            self._notes[key] = text

    def _build(self) -> OperatorView:
        return self.digest.view(
            now=self._clock(),
            registry=self._registry_models,
            groups=[self._offsets.progress(g) for g in self._groups],
            notes=sorted(self._notes.values()),
            sources=self._sources,
        )

    def _publish(self) -> None:
        view = self._build()
        self._built_at = self._clock()
        with self._lock:
            self._view = view
