"""The model-update follower on a real broker, on both client backends."""

from __future__ import annotations

import pickle
import threading
import time
import uuid
from pathlib import Path

import pytest

from stream_mlops.config import KafkaSettings
from stream_mlops.events import ModelUpdate, encode
from stream_mlops.kafka.backends import BACKENDS, open_transport
from stream_mlops.kafka.model_updates import UpdateStats, follow_model_updates
from stream_mlops.kafka.transport import TopicNotFoundError
from stream_mlops.registry import ModelRegistry
from stream_mlops.simulate.champion import Champion
from tests.kafka.cluster import temporary_topics, write_transactions

pytestmark = pytest.mark.kafka


class Constant:
    """A picklable model that always predicts its value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict_one(self, x: dict[str, object]) -> float:
        return self.value


def update(version: str, model_id: str = "fraud") -> bytes:
    return encode(
        ModelUpdate(
            model_id=model_id, model_version=version, parent_version="v1", ts=1_790_000_000.0
        )
    )


@pytest.mark.parametrize("client", BACKENDS)
def test_follower_swaps_to_each_committed_promotion_of_its_model_only(
    client: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    for version_value in (1.0, 2.0, 3.0, 4.0):
        registry.register("fraud", pickle.dumps(Constant(version_value)), created_ts=0.0)
    # The retrainer promotes in the registry before it publishes the update.
    registry.promote("fraud", "v2", ts=1.0)
    champion = Champion("fraud", "v1", Constant(1.0))
    swapped: list[str] = []
    stop = threading.Event()
    transport = open_transport(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, client=client), client_id="test-updates"
    )
    with temporary_topics(kafka_bootstrap, "model-updates", partitions=2) as (topic,):
        # Before the follower starts: already served, never replayed.
        write_transactions(kafka_bootstrap, topic, [(update("v4"), True)], key=b"fraud")
        thread = follow_model_updates(
            transport=transport,
            topic=topic,
            registry_dir=tmp_path / "registry",
            champion=champion,
            stop=stop,
            on_swap=lambda u: swapped.append(u.model_version),
        )
        try:
            write_transactions(
                kafka_bootstrap,
                topic,
                [
                    (update("v3"), False),  # aborted: never served
                    (b"not an update", True),  # logged and skipped
                    (update("v2", model_id="demand"), True),  # another model's
                    (update("v2"), True),
                ],
                key=b"fraud",
            )
            deadline = time.monotonic() + 30
            while not swapped and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)  # anything else that would (wrongly) follow
        finally:
            stop.set()
            thread.join(timeout=10)
    assert not thread.is_alive()
    assert swapped == ["v2"]
    served = champion.current()
    assert served.version == "v2"
    assert isinstance(served.model, Constant) and served.model.value == 2.0
    assert champion.swaps == 1


@pytest.mark.parametrize("client", BACKENDS)
def test_follower_of_a_missing_topic_fails_before_starting(
    client: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    transport = open_transport(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, client=client), client_id="test-updates"
    )
    with pytest.raises(TopicNotFoundError):
        follow_model_updates(
            transport=transport,
            topic=f"model-updates-missing-{uuid.uuid4().hex[:8]}",
            registry_dir=tmp_path,
            champion=Champion("fraud", "v1", Constant(1.0)),
            stop=threading.Event(),
        )


def wait_handled(stats: UpdateStats, count: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while handled(stats) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} updates not handled in {timeout_s} s: {stats}")
        time.sleep(0.05)


def handled(stats: UpdateStats) -> int:
    return stats.swapped + stats.ignored + stats.failed + stats.unreadable


@pytest.mark.parametrize("client", BACKENDS)
def test_follower_survives_bad_updates_and_serves_only_the_registrys_champion(
    client: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """An unknown version used to raise VersionNotFoundError and end the follower
    for good; any older registered version was swapped in."""
    registry = ModelRegistry(tmp_path / "registry")
    for version_value in (1.0, 2.0, 3.0, 4.0):
        registry.register("fraud", pickle.dumps(Constant(version_value)), created_ts=0.0)
    registry.promote("fraud", "v1", ts=1.0)
    champion = Champion("fraud", "v1", Constant(1.0))
    stats = UpdateStats()
    stop = threading.Event()
    transport = open_transport(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, client=client), client_id="test-updates"
    )
    steps: list[tuple[str | None, bytes]] = [
        (None, update("v9")),  # never registered: ignored
        (None, update("v3")),  # registered, not the champion: ignored
        (None, b"not an update"),  # unreadable
        ("v2", update("v2")),  # promoted: swapped
        (None, update("v1")),  # an older version (a replay, a forgery): ignored
        (None, update("v2")),  # served already: ignored
        ("v3", update("v3")),  # the champion, but its artifact is damaged: failed
        ("v4", update("v4")),  # the follower is still there: swapped
    ]
    with temporary_topics(kafka_bootstrap, "model-updates", partitions=1) as (topic,):
        thread = follow_model_updates(
            transport=transport,
            topic=topic,
            registry_dir=tmp_path / "registry",
            champion=champion,
            stop=stop,
            stats=stats,
        )
        try:
            for count, (promote, value) in enumerate(steps, start=1):
                if promote is not None:
                    registry.promote("fraud", promote, ts=float(count))
                if promote == "v3":
                    artifact = tmp_path / "registry" / "fraud" / "versions" / "v3" / "model.pkl"
                    artifact.write_bytes(pickle.dumps(Constant(666.0)))
                write_transactions(kafka_bootstrap, topic, [(value, True)], key=b"fraud")
                wait_handled(stats, count)
            assert thread.is_alive()
        finally:
            stop.set()
            thread.join(timeout=10)
    assert stats == UpdateStats(swapped=2, ignored=4, failed=1, unreadable=1)
    served = champion.current()
    assert served.version == "v4"
    assert isinstance(served.model, Constant) and served.model.value == 4.0
