"""The page's feed on a real broker, on both client backends: what it reads is what the page shows.

The test writes the contract's topics as the engine and the retrainer would
(alerts in transactions, one of them aborted), commits offsets for the engine's
group, registers a champion, runs ``TopicFeed`` in a thread and reads its view.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kafka
import orjson
import pytest
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTopicPartition

from stream_mlops.config import load_settings
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.transport import TimestampedRecord, TopicReader, Transport, TransportError
from stream_mlops.registry import ModelRegistry
from stream_mlops.ui.feed import TopicFeed
from stream_mlops.ui.view import OperatorView
from tests.kafka.cluster import admin_client, write_transactions
from tests.kafka.streams import Deployment, produce
from tests.ui import events

pytestmark = pytest.mark.kafka

REFRESH_S = 0.5
LABELED = 60


class FlakyTransport:
    """The real transport, whose first reader fails once, right after it read something."""

    def __init__(self, real: Transport) -> None:
        self._real = real
        self.readers = 0

    def reader(self, *, read_committed: bool = True) -> TopicReader:
        self.readers += 1
        reader = self._real.reader(read_committed=read_committed)
        return FlakyReader(reader) if self.readers == 1 else reader

    def __getattr__(self, role: str) -> Any:
        return getattr(self._real, role)


class FlakyReader:
    def __init__(self, reader: TopicReader) -> None:
        self._reader = reader
        self._read_something = False

    def poll(self, timeout_s: float, max_records: int = 500) -> list[TimestampedRecord]:
        if self._read_something:
            raise TransportError("read failed: the connection dropped")
        records = self._reader.poll(timeout_s, max_records)
        self._read_something = bool(records)
        return records

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


def start_feed(
    dep: Deployment, tmp_path: Path, wrap: Callable[[Transport], Any] = lambda t: t
) -> tuple[TopicFeed, threading.Event, threading.Thread]:
    config = dep.write_config(
        tmp_path / "ui.toml", extra=f'[retrainer]\ngroup_id = "{dep.group_id}-r"'
    )
    settings = load_settings(config)
    feed = TopicFeed(
        wrap(open_transport(settings.kafka, client_id="test-ui-feed")),
        settings,
        tmp_path / "registry",
        refresh_s=REFRESH_S,
        sample_events=1000,
    )
    stop = threading.Event()
    thread = threading.Thread(target=feed.run, args=(stop,), daemon=True)
    thread.start()
    return feed, stop, thread


def wait_view(
    feed: TopicFeed, ready: Callable[[OperatorView], bool], timeout_s: float = 60
) -> OperatorView:
    deadline = time.monotonic() + timeout_s
    while True:
        view = feed.view()
        if ready(view):
            return view
        assert time.monotonic() < deadline, f"the view never got there: {view}"
        time.sleep(0.2)


def commit(dep: Deployment, group: str, offsets: dict[tuple[str, int], int]) -> None:
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=dep.bootstrap, group_id=group, enable_auto_commit=False
    )
    try:
        consumer.commit(
            {
                KafkaTopicPartition(topic, p): OffsetAndMetadata(offset, "", -1)
                for (topic, p), offset in offsets.items()
            }
        )
    finally:
        consumer.close(autocommit=False)


def test_the_feed_shows_committed_events_lag_samples_and_the_registry(
    deployment: Deployment, tmp_path: Path
) -> None:
    topics = deployment.topics
    registry = ModelRegistry(tmp_path / "registry")
    registry.register("fraud", b"v1", created_ts=1.0)
    registry.promote("fraud", "v1", ts=1.0, reason="bootstrap")
    write_transactions(
        deployment.bootstrap,
        topics["drift_alerts"],
        [(events.alert("shown"), True), (events.alert("rolled-back"), False)],
        key=b"fraud",
    )
    produce(
        deployment.bootstrap, topics["retrain_requests"], [events.request()], 2, keys=[b"fraud"]
    )
    produce(deployment.bootstrap, topics["model_updates"], [events.update()], 2, keys=[b"fraud"])
    letters = [events.dead_letter("score: too big", offset=i) for i in range(3)]
    produce(deployment.bootstrap, topics["dead_letters"], letters, 2, keys=[b"k"] * 3)
    # Labeled events: every third one wrong, so the error's mean is 1/3.
    labeled = [
        orjson.dumps(
            {
                "type": "labeled_event",
                "model_id": "fraud",
                "model_version": "v1",
                "prediction": 0,
                "actual": int(i % 3 == 0),
                "score": 0.1,
                "features": {"amount": 10.0},
            }
        )
        for i in range(LABELED)
    ]
    produce(deployment.bootstrap, topics["labeled_events"], labeled, 2, keys=[b"fraud"] * LABELED)
    predictions = [orjson.dumps({"event_id": f"e{i}"}) for i in range(40)]
    produce(deployment.bootstrap, topics["predictions"], predictions, 2, keys=[b"e"] * 40)
    commit(deployment, deployment.group_id, {(topics["predictions"], 0): 15})

    feed, stop, thread = start_feed(deployment, tmp_path)
    try:
        view = wait_view(
            feed,
            lambda v: (
                bool(v.alerts and v.retrains and v.dead_letters_total == 3 and v.models)
                and any(s.recent for s in v.models[0].signals)
                and any(g.partitions for g in v.groups)
            ),
        )
        assert feed.ready() and feed.alive()
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()

    assert [a.alert_id for a in view.alerts] == ["shown"]  # read_committed
    (retrain,) = view.retrains
    assert (retrain.outcome, retrain.promoted_version) == ("promoted", "v2")
    assert [(r.reason, r.count) for r in view.dead_letter_reasons] == [("score: too big", 3)]
    (fraud,) = view.models
    assert (fraud.champion, fraud.serving) == ("v1", "v1")
    error = next(s for s in fraud.signals if s.signal == "error")
    assert error.recent[0].value == pytest.approx(1 / 3)
    assert error.recent[0].n == LABELED
    engine = next(g for g in view.groups if g.role == "engine")
    lags = {(p.topic, p.partition): (p.end, p.committed, p.lag) for p in engine.partitions}
    assert lags[(topics["predictions"], 0)] == (20, 15, 5)
    assert lags[(topics["predictions"], 1)] == (20, None, 20)
    assert lags[(topics["outcomes"], 0)] == (0, None, 0)
    assert engine.lag == 25
    assert view.notes == ()


def test_a_topic_created_later_is_read_once_it_exists(
    deployment: Deployment, tmp_path: Path
) -> None:
    late = f"{deployment.topics['dead_letters']}-late"
    renamed = dataclasses.replace(deployment, topics={**deployment.topics, "dead_letters": late})
    feed, stop, thread = start_feed(renamed, tmp_path)
    try:
        wait_view(feed, lambda v: any(late in note for note in v.notes))
        with admin_client(deployment.bootstrap) as admin:
            admin.create_topics({late: {"num_partitions": 1}}, wait_for_metadata=True)
        try:
            produce(deployment.bootstrap, late, [events.dead_letter("late")], 1, keys=[b"k"])
            view = wait_view(feed, lambda v: v.dead_letters_total == 1)
            assert not any(late in note for note in view.notes)
        finally:
            with admin_client(deployment.bootstrap) as admin:
                admin.delete_topics([late])
    finally:
        stop.set()
        thread.join(timeout=30)


def test_after_a_dropped_connection_the_feed_resumes_where_it_was(
    deployment: Deployment, tmp_path: Path
) -> None:
    topic = deployment.topics["drift_alerts"]
    write_transactions(deployment.bootstrap, topic, [(events.alert("first"), True)], key=b"f")
    flaky: list[FlakyTransport] = []

    def wrap(transport: Transport) -> FlakyTransport:
        flaky.append(FlakyTransport(transport))
        return flaky[0]

    feed, stop, thread = start_feed(deployment, tmp_path, wrap)
    try:
        wait_view(feed, lambda v: v.alerts_total == 1)
        wait_view(feed, lambda v: flaky[0].readers >= 3)  # reconnected: a new pair of readers
        write_transactions(deployment.bootstrap, topic, [(events.alert("second"), True)], key=b"f")
        wait_view(feed, lambda v: v.alerts_total >= 2)
        time.sleep(3 * REFRESH_S)  # a re-read from the start would show up by now
        view = feed.view()
    finally:
        stop.set()
        thread.join(timeout=30)
    assert [a.alert_id for a in view.alerts] == ["second", "first"]
    assert view.alerts_total == 2
    assert not [note for note in view.notes if "Kafka" in note]
