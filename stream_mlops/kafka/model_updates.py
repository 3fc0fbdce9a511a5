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

import structlog

from stream_mlops.events import EventError, ModelUpdate, loads
from stream_mlops.kafka.transport import Transport
from stream_mlops.registry import ModelRegistry
from stream_mlops.simulate.champion import Champion

# How often the follower checks its stop flag while no update arrives.
_POLL_S = 0.2


def follow_model_updates(
    *,
    transport: Transport,
    topic: str,
    registry_dir: Path,
    champion: Champion,
    stop: threading.Event,
    on_swap: Callable[[ModelUpdate], None] | None = None,
) -> threading.Thread:
    """Start a daemon thread that swaps ``champion`` on each update for its model.

    Raises ``TransportError`` (``TopicNotFoundError`` for a missing topic)
    before starting the thread if the topic cannot be read.
    """
    log = structlog.get_logger("stream_mlops.model_updates")
    reader = transport.reader(read_committed=True)
    try:
        # Only promotions from now on: the serving model at start is already
        # the registry's champion. The reader resolves "latest" before assign()
        # returns, so no update published after this call is missed.
        reader.assign(dict.fromkeys(reader.partitions(topic), "latest"))
    except BaseException:
        reader.close()
        raise
    registry = ModelRegistry(registry_dir)

    def follow() -> None:
        try:
            while not stop.is_set():
                for record in reader.poll(_POLL_S):
                    try:
                        if record.value is None:
                            raise EventError("record has no value (tombstone)")
                        update = ModelUpdate.model_validate(loads(record.value))
                    except (ValueError, EventError) as exc:
                        log.warning("model_update.unreadable", offset=record.offset, error=str(exc))
                        continue
                    if update.model_id != champion.model_id:
                        continue
                    model = pickle.loads(registry.artifact(update.model_id, update.model_version))
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
            reader.close()

    thread = threading.Thread(target=follow, name="model-updates", daemon=True)
    thread.start()
    return thread
