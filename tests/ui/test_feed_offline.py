"""The feed without a broker: it keeps serving what it knows and says what is wrong."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from stream_mlops.config import Settings
from stream_mlops.kafka.transport import BrokerUnreachableError
from stream_mlops.registry import ModelRegistry
from stream_mlops.ui.feed import TopicFeed


class NoBroker:
    """A transport whose every client fails as when no broker answers."""

    def __getattr__(self, role: str) -> Any:
        def fail(*_args: object, **_kwargs: object) -> None:
            raise BrokerUnreachableError("127.0.0.1:1", "connection refused")

        return fail


def test_without_a_broker_the_page_shows_the_registry_and_says_why(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    registry.register("fraud", b"v1", created_ts=1.0)
    registry.promote("fraud", "v1", ts=1.0)
    feed = TopicFeed(
        NoBroker(),  # type: ignore[arg-type]
        Settings(),
        tmp_path / "registry",
        refresh_s=0.2,
        sample_events=10,
    )
    stop = threading.Event()
    thread = threading.Thread(target=feed.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not feed.view().notes:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        view = feed.view()
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert view.notes == (
        "Kafka: no Kafka broker answers at 127.0.0.1:1 (connection refused); retrying every 0.2 s",
    )
    assert [(m.model_id, m.champion) for m in view.models] == [("fraud", "v1")]
    assert feed.alive() and not feed.ready()


def test_a_feed_that_stops_looping_is_no_longer_alive(tmp_path: Path) -> None:
    now = [1000.0]
    feed = TopicFeed(
        NoBroker(),  # type: ignore[arg-type]
        Settings(),
        tmp_path / "missing-registry",
        refresh_s=2.0,
        sample_events=10,
        clock=lambda: now[0],
    )
    assert feed.alive()
    now[0] += 29.0
    assert feed.alive()  # five refreshes (10 s) or 30 s, whichever is longer
    now[0] += 2.0
    assert not feed.alive()
