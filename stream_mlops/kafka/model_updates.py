"""Scoring services follow ``model-updates``: hot-swap to each promoted version.

A ``ModelUpdate`` names a version the retrainer registered and promoted; the
artifact itself lives in the registry (content-hashed), not on the topic. The
follower reads updates with ``read_committed`` (an aborted promotion is never
served), loads the artifact and swaps it into the serving ``Champion``.

The topic only says *that* something was promoted; the registry says *what*
serves. So an update is carried out only when the version it names is the
registry's champion of its model right now: an update for a version that was
never registered, or for an older one (a replayed or forged record, or one a
later promotion overtook), is ignored with a log line, and so is one for the
version already served. Nothing an update names can stop the follower: each
one that is unreadable, ignored or fails to load is logged and counted
(``UpdateStats``), and the follower goes on to the next. A read that fails
(the cluster is away) is retried.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from stream_mlops.events import EventError, ModelUpdate, loads
from stream_mlops.kafka.transport import TimestampedRecord, Transport, TransportError
from stream_mlops.registry import ModelRegistry
from stream_mlops.simulate.champion import Champion

# How often the follower checks its stop flag while no update arrives.
_POLL_S = 0.2
# After a failed read, the follower waits this long before reading again.
_RETRY_S = 2.0


@dataclass
class UpdateStats:
    """What the follower did with the updates of its model (and unreadable records)."""

    swapped: int = 0
    #: readable updates for the model that were not carried out: the version is
    #: not the registry's champion, or is the one already served
    ignored: int = 0
    #: updates whose champion could not be loaded (a damaged registry, an
    #: artifact that does not unpickle): the served model stays
    failed: int = 0
    #: records that are not a ``ModelUpdate``
    unreadable: int = 0


def follow_model_updates(
    *,
    transport: Transport,
    topic: str,
    registry_dir: Path,
    champion: Champion,
    stop: threading.Event,
    on_swap: Callable[[ModelUpdate], None] | None = None,
    stats: UpdateStats | None = None,
) -> threading.Thread:
    """Start a daemon thread that swaps ``champion`` on each update for its model.

    ``stats``, if given, is updated as updates are handled. Raises
    ``TransportError`` (``TopicNotFoundError`` for a missing topic) before
    starting the thread if the topic cannot be read.
    """
    log = structlog.get_logger("stream_mlops.model_updates")
    counts = stats if stats is not None else UpdateStats()
    reader = transport.reader(read_committed=True)
    try:
        # Only promotions from now on: the serving model at start is already
        # the registry's champion. The reader resolves "latest" before assign()
        # returns, so no update published after this call is missed.
        reader.assign(dict.fromkeys(reader.partitions(topic), "latest"))
    except BaseException:
        reader.close()
        raise
    follower = _Follower(ModelRegistry(registry_dir), champion, counts, on_swap, log)

    def follow() -> None:
        try:
            while not stop.is_set():
                try:
                    records = reader.poll(_POLL_S)
                except TransportError as exc:
                    log.warning("model_update.read_failed", error=str(exc))
                    stop.wait(_RETRY_S)
                    continue
                for record in records:
                    follower.handle(record)
        finally:
            reader.close()

    thread = threading.Thread(target=follow, name="model-updates", daemon=True)
    thread.start()
    return thread


class _Follower:
    """Handles one update record at a time; never raises."""

    def __init__(
        self,
        registry: ModelRegistry,
        champion: Champion,
        stats: UpdateStats,
        on_swap: Callable[[ModelUpdate], None] | None,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._registry = registry
        self._champion = champion
        self._stats = stats
        self._on_swap = on_swap
        self._log = log

    def handle(self, record: TimestampedRecord) -> None:
        try:
            if record.value is None:
                raise EventError("record has no value (tombstone)")
            update = ModelUpdate.model_validate(loads(record.value))
        except (ValueError, EventError) as exc:
            self._stats.unreadable += 1
            self._log.warning("model_update.unreadable", offset=record.offset, error=str(exc))
            return
        if update.model_id != self._champion.model_id:
            return  # another model's: not ours to count
        fields = {
            "model_id": update.model_id,
            "model_version": update.model_version,
            "offset": record.offset,
        }
        try:
            reason = self._refusal(update)
            if reason is not None:
                self._stats.ignored += 1
                self._log.warning("model_update.ignored", reason=reason, **fields)
                return
            # The registry is local and each artifact is checked against its
            # recorded sha256: nothing read from Kafka is unpickled here.
            model = pickle.loads(self._registry.artifact(update.model_id, update.model_version))
            self._champion.swap(model, update.model_version)
        except Exception as exc:  # one bad update or artifact must not end the follower
            self._stats.failed += 1
            self._log.error("model_update.failed", error=f"{type(exc).__name__}: {exc}", **fields)
            return
        self._stats.swapped += 1
        self._log.info("model_update.swapped", parent_version=update.parent_version, **fields)
        if self._on_swap is not None:
            try:
                self._on_swap(update)
            except Exception:
                self._log.exception("model_update.callback_failed", **fields)

    def _refusal(self, update: ModelUpdate) -> str | None:
        """Why this update is not to be served, or None (raises ``RegistryError``)."""
        current = self._registry.champion(update.model_id)
        if current is None:
            return "the registry has no champion for this model"
        if current.version != update.model_version:
            return f"not the registry's champion ({current.version})"
        if self._champion.current().version == update.model_version:
            return "already served"
        return None
