"""The notifier's loop on an in-memory group consumer and a fake clock (no broker, no network).

The fake consumer serves records from lists and records commits, pauses and
seeks; the fake sender answers from a script and records each request with
the fake time it was made. What these tests pin down is the order of effects:
an offset is committed only after its record was delivered or dead-lettered.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import orjson
import pytest

from stream_mlops.config import Settings, parse_settings
from stream_mlops.kafka.transport import (
    AssignmentTracker,
    Record,
    RecordTooLargeError,
    TopicPartition,
)
from stream_mlops.ops.notify_http import HttpResponse
from stream_mlops.ops.notify_service import Notifier, resolve_webhooks
from tests.ops.notices import alert, update

ALERTS = "drift-alerts"
UPDATES = "model-updates"
SECRET_URL = "https://hooks.test/services/T0/B0/s3cr3t"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeConsumer:
    clock: Clock
    topics: dict[TopicPartition, list[bytes | None]]
    effects: list[tuple[object, ...]]
    on_poll: Callable[[FakeConsumer], None]
    stored: dict[TopicPartition, int] = field(default_factory=dict)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    paused: set[TopicPartition] = field(default_factory=set)
    max_records_seen: list[int] = field(default_factory=list)
    tracker: AssignmentTracker | None = None
    rebalance_pending: bool = True
    polls: int = 0

    def subscribe(self, topics: Iterable[str], tracker: AssignmentTracker) -> None:
        assert set(topics) == {ALERTS, UPDATES}
        self.tracker = tracker

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        self.polls += 1
        assert self.polls < 10_000, "the loop did not finish"
        self.on_poll(self)
        self.clock.now += timeout_s  # the time a real poll would wait
        assert self.tracker is not None
        if self.rebalance_pending:
            self.rebalance_pending = False
            self.positions = {}
            self.tracker.assigned()
            return []
        self.max_records_seen.append(max_records)
        out: list[Record] = []
        for tp, values in sorted(self.topics.items()):
            if tp in self.paused:
                continue
            position = self.positions.get(tp, 0)
            while position < len(values) and len(out) < max_records:
                out.append(Record(tp.topic, tp.partition, position, b"fraud", values[position]))
                position += 1
            self.positions[tp] = position
        return out

    def assignment(self) -> set[TopicPartition]:
        return set(self.topics)

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        return {tp: self.stored.get(tp) for tp in partitions}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def group_metadata(self) -> object:
        return None

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.stored.update(offsets)
        self.effects.append(("commit", dict(offsets)))

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self.paused |= set(partitions)
        self.effects.append(("pause",))

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self.paused -= set(partitions)

    def close(self) -> None:
        self.effects.append(("close",))


@dataclass
class FakeProducer:
    effects: list[tuple[object, ...]]
    sent: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    #: refuse larger records at send, as the clients do (RecordTooLargeError)
    limit: int | None = None

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        assert value is not None
        if self.limit is not None and len(value) > self.limit:
            raise RecordTooLargeError(topic, len(value), "over the fake's limit")
        self.sent.append((topic, key, value))

    def flush(self, timeout_s: float = 30.0) -> None:
        self.effects.append(("dead_letter", len(self.sent)))

    def close(self, timeout_s: float = 5.0) -> None:
        pass


class FakeReader:
    def partition_count(self, topic: str) -> int:
        return 1

    def beginning_offset(self, tp: TopicPartition) -> int:
        return 0

    def close(self) -> None:
        pass


@dataclass
class Harness:
    """A notifier over ``topics``; ``answer(url, key, attempt_time)`` scripts the webhooks."""

    topics: dict[TopicPartition, list[bytes | None]]
    answer: Callable[[str, str, float], int]
    config: dict[str, object]
    done: Callable[[Harness], bool]
    #: the [kafka] section
    kafka: dict[str, object] = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock)
    effects: list[tuple[object, ...]] = field(default_factory=list)
    requests: list[tuple[str, str, float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.notifier: Notifier | None = None
        self.stop = threading.Event()
        self.consumer = FakeConsumer(self.clock, self.topics, self.effects, self._polled)
        self.producer = FakeProducer(self.effects)
        self.settings: Settings = parse_settings({"notify": self.config, "kafka": self.kafka})

    def _polled(self, _consumer: FakeConsumer) -> None:
        if self.done(self):
            self.stop.set()

    def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> HttpResponse:
        key = headers["Idempotency-Key"]
        status = self.answer(url, key, self.clock.now)
        self.requests.append((url, key, self.clock.now, status))
        self.effects.append(("send", url, key, status))
        self.clock.now += 0.01
        return HttpResponse(status, f"HTTP {status}")

    def run(self) -> Notifier:
        harness = self

        class Transport:
            def group_consumer(self, group_id: str, **_: object) -> FakeConsumer:
                assert group_id == "stream-mlops-notifier"
                return harness.consumer

            def producer(self) -> FakeProducer:
                return harness.producer

            def partition_reader(self) -> FakeReader:
                return FakeReader()

        webhooks = resolve_webhooks(self.settings.notify, {})
        notifier = Notifier(
            self.settings,
            webhooks,
            Transport(),
            send=self.send,
            clock=self.clock,  # type: ignore[arg-type]
        )
        self.notifier = notifier
        notifier.run(self.stop)
        return notifier

    def delivered(self, url: str | None = None) -> list[str]:
        return [k for u, k, _t, s in self.requests if s == 200 and (url is None or u == url)]


def hook(url: str = SECRET_URL, **settings: object) -> dict[str, object]:
    return {"url": url, **settings}


FAST = {"backoff_initial_seconds": 1.0, "backoff_multiplier": 2.0, "backoff_jitter": 0.0}


def test_an_offset_is_committed_only_after_its_alert_was_delivered() -> None:
    keys = ["a0", "a1", "a2"]
    failures = {"a1": 2}  # a1 fails twice (503), then goes through

    def answer(_url: str, key: str, _t: float) -> int:
        if failures.get(key):
            failures[key] -= 1
            return 503
        return 200

    h = Harness(
        {TopicPartition(ALERTS, 0): [alert(k) for k in keys]},
        answer,
        {**FAST, "webhooks": [hook()]},
        done=lambda h: len(h.delivered()) == 3,
    )
    notifier = h.run()
    assert h.delivered() == keys
    # Retries waited the schedule: 1 s, then 2 s, after the first failure.
    a1 = [t for _u, k, t, _s in h.requests if k == "a1"]
    assert a1[1] - a1[0] == pytest.approx(1.0, abs=0.02)
    assert a1[2] - a1[1] == pytest.approx(2.0, abs=0.02)
    # Each commit moves the offset only past alerts already delivered.
    delivered_so_far: set[str] = set()
    for effect in h.effects:
        if effect[0] == "send" and effect[3] == 200:
            delivered_so_far.add(str(effect[2]))
        if effect[0] == "commit":
            offset = effect[1][TopicPartition(ALERTS, 0)]  # type: ignore[index]
            assert set(keys[:offset]) <= delivered_so_far, (effect, delivered_so_far)
    assert h.consumer.stored == {TopicPartition(ALERTS, 0): 3}
    assert notifier.stats.retries == 2 and notifier.stats.delivered == 3
    assert h.effects[-1] == ("close",)


def test_after_max_attempts_a_dead_letter_names_the_webhook_but_not_its_url() -> None:
    h = Harness(
        {TopicPartition(ALERTS, 0): [alert("a0"), b"{broken", alert("a2")]},
        lambda url, key, t: 503 if key == "a0" else 200,
        {**FAST, "max_attempts": 3, "webhooks": [hook()]},
        done=lambda h: h.consumer.stored.get(TopicPartition(ALERTS, 0)) == 3,
    )
    notifier = h.run()
    # A webhook's notifications go in order: a2 waits behind a0's attempts.
    assert [k for _u, k, _t, _s in h.requests] == ["a0", "a0", "a0", "a2"]
    assert notifier.stats.dead_letters == 2
    letters = [orjson.loads(value) for topic, _key, value in h.producer.sent]
    assert all(topic == "dead-letters" for topic, _key, _value in h.producer.sent)
    by_offset = {letter["offset"]: letter for letter in letters}
    assert by_offset[1]["error"].startswith("not a readable drift_alert: (event): not JSON")
    assert by_offset[0]["error"] == (
        "webhook webhooks[0] https://hooks.test/…: gave up after 3 attempts; last: HTTP 503"
    )
    assert all("s3cr3t" not in letter["error"] for letter in letters)
    assert by_offset[0]["source_topic"] == ALERTS and by_offset[0]["partition"] == 0
    # The dead letter was flushed before the commit that moved past its record.
    flushed = h.effects.index(("dead_letter", 2))
    commits = [(i, e[1]) for i, e in enumerate(h.effects) if e[0] == "commit"]
    first_past = next(i for i, offsets in commits if offsets[TopicPartition(ALERTS, 0)] >= 1)  # type: ignore[index]
    assert flushed < first_past


def test_a_rebalance_reads_again_from_the_committed_offset_without_resending_what_was_sent() -> (
    None
):
    up, down = "https://up.test/hook", "https://down.test/hook"
    rebalanced = []

    def answer(url: str, _key: str, t: float) -> int:
        return 503 if url == down and t < 1010 else 200

    def done(h: Harness) -> bool:
        if len(h.delivered(up)) == 2 and not rebalanced:
            rebalanced.append(h.clock.now)
            h.consumer.rebalance_pending = True  # the group moves on: drop, read again
        return len(h.delivered(down)) == 2

    h = Harness(
        {TopicPartition(ALERTS, 0): [alert("a0"), alert("a1")]},
        answer,
        {**FAST, "max_attempts": 20, "webhooks": [hook(up), hook(down)]},
        done,
    )
    notifier = h.run()
    assert rebalanced
    assert h.delivered(up) == ["a0", "a1"]  # not sent again after the rebalance
    assert h.delivered(down) == ["a0", "a1"]
    assert notifier.stats.not_repeated == 2
    assert h.consumer.stored == {TopicPartition(ALERTS, 0): 2}


def test_fetching_pauses_while_max_in_flight_records_wait() -> None:
    values = [alert(f"a{i}") for i in range(6)]
    h = Harness(
        {TopicPartition(ALERTS, 0): values},
        lambda url, key, t: 503 if t < 1020 else 200,
        {**FAST, "max_in_flight": 2, "max_attempts": 50, "webhooks": [hook()]},
        done=lambda h: len(h.delivered()) == 6,
    )
    h.run()
    assert ("pause",) in h.effects
    assert max(h.consumer.max_records_seen) <= 2
    assert h.delivered() == [f"a{i}" for i in range(6)]
    assert not h.consumer.paused


def test_filtered_and_unwanted_records_are_committed_without_a_request() -> None:
    h = Harness(
        {
            TopicPartition(ALERTS, 0): [alert("w", severity="warning"), alert("d")],
            TopicPartition(UPDATES, 0): [update()],
        },
        lambda url, key, t: 200,
        {"webhooks": [hook(min_severity="drift", format="json")]},
        done=lambda h: (
            len(h.consumer.stored) == 2 and h.consumer.stored[TopicPartition(ALERTS, 0)] == 2
        ),
    )
    notifier = h.run()
    assert h.delivered() == ["d", "model_update:fraud:v2"]
    assert notifier.stats.filtered == 1
    assert h.consumer.stored == {TopicPartition(ALERTS, 0): 2, TopicPartition(UPDATES, 0): 1}


def test_the_probes_facts_follow_the_loop() -> None:
    """Ready once assigned and not after closing; the last poll and what is in flight."""
    seen: list[tuple[bool, float | None, int]] = []

    def watch(h: Harness) -> bool:
        assert h.notifier is not None
        stats = h.notifier.stats
        seen.append((stats.ready, stats.last_poll, stats.in_flight))
        return len(h.delivered()) == 2

    failures = {"a1": 1}

    def answer(_url: str, key: str, _t: float) -> int:
        if failures.get(key):
            failures[key] -= 1
            return 503
        return 200

    h = Harness(
        {TopicPartition(ALERTS, 0): [alert("a0"), alert("a1")]},
        answer,
        {**FAST, "webhooks": [hook()]},
        done=watch,
    )
    notifier = h.run()
    assert seen[0] == (False, None, 0), "not ready, no poll yet, at the first poll"
    assert any(ready for ready, _poll, _held in seen[1:])
    assert any(held > 0 for _ready, _poll, held in seen), "a1 waited for its retry"
    polls = [poll for _ready, poll, _held in seen[1:]]
    assert all(p is not None for p in polls) and polls == sorted(polls)
    assert notifier.stats.ready is False, "a closed notifier is not ready"


@pytest.mark.parametrize(
    ("payload_bytes", "client_limit", "kept"),
    [(100, None, 100), (262_144, 3000, 0)],
    ids=["truncated", "refused-then-sent-without-payload"],
)
def test_a_large_bad_record_is_a_dead_letter_that_fits(
    payload_bytes: int, client_limit: int | None, kept: int
) -> None:
    bad = b"{" + b"x" * 9999
    h = Harness(
        {TopicPartition(ALERTS, 0): [bad, alert("a1")]},
        lambda url, key, t: 200,
        {**FAST, "webhooks": [hook()]},
        done=lambda h: h.consumer.stored.get(TopicPartition(ALERTS, 0)) == 2,
        kafka={"dead_letter_max_payload_bytes": payload_bytes},
    )
    h.producer.limit = client_limit
    notifier = h.run()
    assert notifier.stats.dead_letters == 1 and h.delivered() == ["a1"]
    [(_topic, _key, value)] = h.producer.sent
    letter = orjson.loads(value)
    assert len(base64.b64decode(letter["payload"])) == kept
    assert letter["payload_truncated"] is True and letter["payload_bytes"] == len(bad)
    assert letter["payload_sha256"] == hashlib.sha256(bad).hexdigest()
