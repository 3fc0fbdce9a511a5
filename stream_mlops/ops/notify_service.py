"""The notifier (``stream-mlops notify``): drift alerts and promotions to webhooks, at least once.

One alert's path, from its topic to a webhook:

1. The notifier is a member of the consumer group ``[notify] group_id``,
   subscribed to ``drift-alerts`` and ``model-updates`` with
   ``read_committed`` (an alert of an aborted engine transaction never goes
   out). ``_accept`` reads the record (``read_notification``); one that is
   not the event its topic carries goes to ``dead-letters`` with the reason.
2. Each webhook whose filter wants it gets an attempt in its own queue
   (``DeliveryQueue``); the record is *held* until every one of them is
   settled.
3. ``_deliver`` POSTs each webhook's head when it is due: the body in the
   webhook's format, the notification's id as ``Idempotency-Key``. A failure
   that may pass is retried with backoff; a refusal, or ``max_attempts``
   failures, writes a dead letter (flushed) and settles it.
4. ``_commit`` stores, per partition, the offset of the first record not yet
   settled, right after the deliveries that moved it.

So a crash (or a kill) loses nothing: what was not settled is read again by
the next owner of the partition. It can repeat what was delivered after the
last commit: the receiver sees the same ``Idempotency-Key`` again. The
notifier keeps no state of its own beyond the group's offsets.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from stream_mlops.config import (
    ConfigError,
    NotifySettings,
    Settings,
    WebhookSettings,
    check_webhook_url,
)
from stream_mlops.events import encode
from stream_mlops.kafka.dead_letters import dead_letter, without_payload
from stream_mlops.kafka.transport import (
    AssignmentTracker,
    GroupConsumer,
    OffsetCommitFailedError,
    PartitionReader,
    Producer,
    Record,
    RecordTooLargeError,
    TopicPartition,
    Transport,
)
from stream_mlops.ops.notify_delivery import (
    Attempt,
    Backoff,
    DeliveryQueue,
    GiveUp,
    classify,
)
from stream_mlops.ops.notify_http import HttpResponse, post, redact_url
from stream_mlops.ops.notify_message import (
    Kind,
    Notification,
    NotificationError,
    read_notification,
    wanted_by,
    webhook_body,
    webhook_headers,
)

__all__ = ["Notifier", "NotifierStats", "Sender", "Webhook", "resolve_webhooks"]

#: ``post``'s signature: url, body, headers, timeout in seconds.
Sender = Callable[[str, bytes, Mapping[str, str], float], HttpResponse]

# A poll returns at least this often, so a stop request and due retries are
# seen promptly; alerts are rare, so an idle notifier wakes twice a second.
MAX_POLL_WAIT_S = 0.5
MAX_POLL_RECORDS = 500
# Deliveries in one go before the loop polls again: the group expects a poll
# well within max.poll.interval.ms (five minutes), and commits follow sooner.
DELIVERY_BUDGET_S = 5.0
# Notifications this process remembers having delivered, per webhook: a record
# read again after a rebalance is not sent again by the process that sent it.
# At alert rates, 10,000 covers days.
REMEMBERED = 10_000


@dataclass(frozen=True)
class Webhook:
    """A configured webhook with its URL resolved (from the file or the environment)."""

    #: what logs and dead letters call it: its ``name``, else
    #: ``webhooks[i] <scheme://host/…>``
    name: str
    url: str = field(repr=False)
    settings: WebhookSettings


def resolve_webhooks(notify: NotifySettings, environ: Mapping[str, str]) -> list[Webhook]:
    """The configured webhooks, ``url_env`` read from ``environ``.

    Raises ``ConfigError`` naming the field (never the URL) when there are
    none, or a variable is unset or holds no usable URL.

    >>> from stream_mlops.config import parse_settings
    >>> notify = parse_settings({"notify": {"webhooks": [{"url_env": "HOOK"}]}}).notify
    >>> [w.name for w in resolve_webhooks(notify, {"HOOK": "https://hooks.example.com/T/B/x"})]
    ['webhooks[0] https://hooks.example.com/…']
    >>> resolve_webhooks(notify, {})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    stream_mlops.config.ConfigError: notify.webhooks[0].url_env: environment variable HOOK ...
    """
    if not notify.webhooks:
        raise ConfigError("notify.webhooks: no webhook configured; add a [[notify.webhooks]] table")
    resolved = []
    for index, settings in enumerate(notify.webhooks):
        if settings.url is not None:
            url = settings.url.get_secret_value()
        else:
            where = f"notify.webhooks[{index}].url_env"
            variable = str(settings.url_env)
            url = environ.get(variable, "").strip()
            if not url:
                raise ConfigError(f"{where}: environment variable {variable} is not set")
            try:
                check_webhook_url(url)
            except ValueError as exc:
                raise ConfigError(f"{where}: {variable} {exc}") from None
        name = settings.name or f"webhooks[{index}] {redact_url(url)}"
        resolved.append(Webhook(name, url, settings))
    return resolved


@dataclass
class NotifierStats:
    records: int = 0
    delivered: int = 0
    retries: int = 0
    dead_letters: int = 0
    #: a webhook's filter did not want it
    filtered: int = 0
    #: read again after a rebalance, already delivered by this process
    not_repeated: int = 0
    commits: int = 0
    #: records held until their deliveries settle
    in_flight: int = 0
    #: the loop's clock at its last poll (None before the first): liveness
    last_poll: float | None = None
    #: partitions assigned and started at their committed offsets: readiness
    ready: bool = False


class Notifier:
    """Forwards the alerts and promotions its group reads to the webhooks."""

    def __init__(
        self,
        settings: Settings,
        webhooks: Sequence[Webhook],
        transport: Transport,
        *,
        send: Sender = post,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._notify = settings.notify
        self._topics = settings.kafka.topics
        self._payload_bytes = settings.kafka.dead_letter_max_payload_bytes
        self._webhooks = list(webhooks)
        self._transport = transport
        self._send = send
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._log = structlog.get_logger("stream_mlops.notifier")
        self._kinds: dict[str, Kind] = {
            self._topics.drift_alerts: "drift_alert",
            self._topics.model_updates: "model_update",
        }
        notify = self._notify
        self._queue: DeliveryQueue[tuple[Record, Notification]] = DeliveryQueue(
            Backoff(
                notify.backoff_initial_seconds,
                notify.backoff_multiplier,
                notify.backoff_max_seconds,
                notify.backoff_jitter,
            ),
            notify.max_attempts,
        )
        self._tracker = AssignmentTracker()
        self._committed: dict[tuple[str, int], int] = {}
        self._remembered: OrderedDict[tuple[int, str], None] = OrderedDict()
        self._paused = False
        self.stats = NotifierStats()
        self._consumer: GroupConsumer | None = None
        self._producer: Producer | None = None
        self._reader: PartitionReader | None = None

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set; then commit what is settled and leave the group."""
        self._producer = self._transport.producer()
        self._reader = self._transport.partition_reader()
        try:
            # Dead letters must have somewhere to go before anything is read.
            self._reader.partition_count(self._topics.dead_letters)
            self._consumer = self._transport.group_consumer(
                self._notify.group_id,
                max_poll_interval_ms=300_000,
                session_timeout_ms=self._notify.session_timeout_ms,
            )
            self._consumer.subscribe(list(self._kinds), self._tracker)
            self._log.info(
                "notifier.started",
                group_id=self._notify.group_id,
                topics=list(self._kinds),
                webhooks=[w.name for w in self._webhooks],
            )
            self._loop(stop)
            self._commit()
        finally:
            self._close()

    def _loop(self, stop: threading.Event) -> None:
        assert self._consumer is not None
        while not stop.is_set():
            due = self._queue.next_due()
            wait = MAX_POLL_WAIT_S
            if due is not None:
                wait = min(wait, max(0.0, due - self._clock()))
            room = max(
                1, min(MAX_POLL_RECORDS, self._notify.max_in_flight - self._queue.unsettled())
            )
            records = self._consumer.poll(wait, room)
            self.stats.last_poll = self._clock()
            if self._tracker.take():
                # Records in hand may be of partitions gone elsewhere, or
                # before the offsets the reassignment starts from: dropped,
                # they are read again from the committed offsets.
                self._reassigned()
                continue
            for record in records:
                self._accept(record)
            self._deliver()
            self._commit()
            self._hold_back()
            self.stats.in_flight = self._queue.unsettled()

    # -- reading ---------------------------------------------------------------

    def _accept(self, record: Record) -> None:
        kind = self._kinds.get(record.topic)
        if kind is None:
            return
        partition = (record.topic, record.partition)
        following = self._queue.next_offset(partition)
        if following is not None and record.offset < following:
            return  # fetched again; already held or settled here
        self.stats.records += 1
        now = self._clock()
        try:
            notification = read_notification(kind, record.value)
        except NotificationError as exc:
            self._dead_letter(record, f"not a readable {kind}: {exc}")
            self._queue.hold(partition, record.offset, None, [], now=now)
            return
        targets = []
        for index, webhook in enumerate(self._webhooks):
            if not wanted_by(webhook.settings, notification):
                self.stats.filtered += 1
            elif (index, notification.notification_id) in self._remembered:
                self.stats.not_repeated += 1
            else:
                targets.append(index)
        self._queue.hold(partition, record.offset, (record, notification), targets, now=now)

    # -- delivering ------------------------------------------------------------

    def _deliver(self) -> None:
        started = self._clock()
        while self._clock() - started < DELIVERY_BUDGET_S:
            due = self._queue.due(self._clock())
            if not due:
                return
            for attempt in due:
                self._attempt(attempt)

    def _attempt(self, attempt: Attempt[tuple[Record, Notification]]) -> None:
        index = attempt.webhook
        assert isinstance(index, int) and attempt.held.item is not None
        webhook = self._webhooks[index]
        record, notification = attempt.held.item
        started = self._clock()
        response = self._send(
            webhook.url,
            webhook_body(notification, webhook.settings.format),
            webhook_headers(notification),
            self._notify.timeout_seconds,
        )
        failure = classify(response.status, response.detail, response.retry_after_s)
        now = self._clock()
        fields = {
            "webhook": webhook.name,
            "notification_id": notification.notification_id,
            "kind": notification.kind,
            "model_id": notification.model_id,
            "attempt": attempt.failures + 1,
        }
        if failure is None:
            self._queue.settle(attempt)
            self._remember(index, notification.notification_id)
            self.stats.delivered += 1
            self._log.info(
                "notification.delivered",
                **fields,
                status=response.status,
                duration_ms=round((now - started) * 1000, 2),
            )
            return
        verdict = self._queue.failed(attempt, failure, now=now, rand=self._rng.random())
        if isinstance(verdict, GiveUp):
            reason = f"webhook {webhook.name}: {verdict.reason}"
            self._dead_letter(record, reason)
            self._queue.settle(attempt)
            return
        self.stats.retries += 1
        self._log.warning(
            "notification.retry",
            **fields,
            reason=failure.reason,
            retry_in_s=round(verdict.delay_s, 3),
        )

    def _remember(self, index: int, notification_id: str) -> None:
        key = (index, notification_id)
        self._remembered[key] = None
        self._remembered.move_to_end(key)
        while len(self._remembered) > REMEMBERED:
            self._remembered.popitem(last=False)

    def _dead_letter(self, record: Record, reason: str) -> None:
        """Write the dead letter and wait for the cluster to have it: only then
        may the record's offset be committed."""
        assert self._producer is not None
        topic = self._topics.dead_letters
        letter = encode(dead_letter(record, reason, max_payload_bytes=self._payload_bytes))
        try:
            self._producer.send(topic, record.key, letter)
        except RecordTooLargeError as exc:
            # Smaller client limits than the defaults (client options): the
            # payload goes, its length and hash stay.
            self._log.error("record.too_large", topic=topic, bytes=exc.size, error=str(exc))
            self._producer.send(topic, record.key, without_payload(letter))
        self._producer.flush()
        self.stats.dead_letters += 1
        self._log.warning(
            "dead_letter",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=reason,
        )

    # -- committing and holding back -------------------------------------------

    def _commit(self) -> None:
        assert self._consumer is not None
        moved = {
            TopicPartition(*partition): offset
            for partition, offset in self._queue.commit_offsets().items()
            if self._committed.get(partition) != offset
        }
        if not moved:
            return
        try:
            self._consumer.commit(moved)
        except OffsetCommitFailedError as exc:
            # The group moved on; the next poll reports the new assignment.
            self._log.warning("notifier.commit_failed", error=str(exc))
            return
        self.stats.commits += 1
        for tp, offset in moved.items():
            self._committed[(tp.topic, tp.partition)] = offset

    def _hold_back(self) -> None:
        """Stop fetching while ``max_in_flight`` records wait; go on once half are settled."""
        assert self._consumer is not None
        waiting = self._queue.unsettled()
        limit = self._notify.max_in_flight
        full = waiting >= limit or (self._paused and waiting > limit // 2)
        if full == self._paused:
            return
        assigned = self._consumer.assignment()
        if full:
            self._consumer.pause(assigned)
        else:
            self._consumer.resume(assigned)
        self._paused = full
        self._log.info("notifier.paused" if full else "notifier.resumed", waiting=waiting)

    def _reassigned(self) -> None:
        """Drop what was held and start each assigned partition at its committed offset."""
        assert self._consumer is not None and self._reader is not None
        self._queue.clear()
        assigned = self._consumer.assignment()
        # A rebalance may resume paused partitions, or keep them paused: say which.
        if assigned:
            self._consumer.resume(assigned)
        self._paused = False
        committed = self._consumer.committed(assigned)
        self._committed = {}
        starts = {}
        for tp in sorted(assigned):
            offset = committed.get(tp)
            if offset is None:
                offset = self._reader.beginning_offset(tp)
            else:
                self._committed[(tp.topic, tp.partition)] = offset
            self._consumer.seek(tp, offset)
            starts[f"{tp.topic}[{tp.partition}]"] = offset
        self._log.info("partitions.assigned", partitions=starts)
        self.stats.ready = True

    def _close(self) -> None:
        self.stats.ready = False
        for closer in (self._consumer, self._reader, self._producer):
            if closer is not None:
                try:
                    closer.close()
                except Exception:
                    self._log.exception("notifier.close_failed")
        s = self.stats
        self._log.info(
            "notifier.stopped",
            records=s.records,
            delivered=s.delivered,
            retries=s.retries,
            dead_letters=s.dead_letters,
            filtered=s.filtered,
            not_repeated=s.not_repeated,
            commits=s.commits,
            held=self._queue.unsettled(),
        )
