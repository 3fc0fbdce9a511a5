"""Scoring services follow ``model-updates``: hot-swap to each promoted version.

A ``ModelUpdate`` names a version the retrainer registered and promoted; the
artifact itself lives in the registry (content-hashed), not on the topic. The
follower reads updates with ``read_committed`` (an aborted promotion is never
served), loads the artifact and swaps it into the serving ``Champion``.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from pathlib import Path

import kafka
import structlog

from stream_mlops.events import EventError, ModelUpdate, loads
from stream_mlops.registry import ModelRegistry
from stream_mlops.simulate.champion import Champion

# How often the follower checks its stop flag while no update arrives.
_POLL_MS = 200


def follow_model_updates(
    *,
    bootstrap_servers: str,
    topic: str,
    registry_dir: Path,
    champion: Champion,
    stop: threading.Event,
    on_swap: Callable[[ModelUpdate], None] | None = None,
) -> threading.Thread:
    """Start a daemon thread that swaps ``champion`` on each update for its model."""
    log = structlog.get_logger("stream_mlops.model_updates")
    consumer = kafka.KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        # Only promotions from now on: the serving model at start is already
        # the registry's champion.
        auto_offset_reset="latest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    registry = ModelRegistry(registry_dir)

    def follow() -> None:
        try:
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=_POLL_MS).values():
                    for record in records:
                        try:
                            update = ModelUpdate.model_validate(loads(record.value))
                        except (ValueError, EventError) as exc:
                            log.warning(
                                "model_update.unreadable", offset=record.offset, error=str(exc)
                            )
                            continue
                        if update.model_id != champion.model_id:
                            continue
                        model = pickle.loads(
                            registry.artifact(update.model_id, update.model_version)
                        )
                        champion.swap(model, update.model_version)
                        log.info(
                            "model_update.swapped",
                            model_id=update.model_id,
                            model_version=update.model_version,
                            parent_version=update.parent_version,
                        )
                        if on_swap is not None:
                            on_swap(update)
        finally:
            consumer.close()

    # Join the partitions before returning, so no update published after this
    # call is missed by "latest".
    consumer.poll(timeout_ms=0)
    while not consumer.assignment():
        consumer.poll(timeout_ms=_POLL_MS)
    for tp in consumer.assignment():
        consumer.position(tp)
    thread = threading.Thread(target=follow, name="model-updates", daemon=True)
    thread.start()
    return thread
