"""The model registry: versions, lineage, search and the champion, over a ``ModelStore``."""

from __future__ import annotations

import builtins
import hashlib
import os
from collections.abc import Mapping

from pydantic import JsonValue

from stream_mlops.registry.exceptions import RegistryCorruptError, VersionNotFoundError
from stream_mlops.registry.records import (
    ChampionPointer,
    ModelVersion,
    Promotion,
    TrainingWindow,
)
from stream_mlops.registry.store import DirectoryStore, ModelStore

# A version name found taken is retried with the next one; more collisions than
# this in a row means something else is wrong (a runaway writer outside the lock).
_MAX_NAME_ATTEMPTS = 100


def content_hash(artifact: bytes) -> str:
    """sha256 of the artifact bytes, hex: the identity of a model's content.

    >>> content_hash(b"model")[:12]
    '9372c470eead'
    """
    return hashlib.sha256(artifact).hexdigest()


class ModelRegistry:
    """Versioned models with lineage, backed by a ``DirectoryStore`` unless told otherwise.

    >>> import tempfile
    >>> registry = ModelRegistry(tempfile.mkdtemp())
    >>> v1 = registry.register("fraud", b"weights-1", created_ts=1_700_000_000.0)
    >>> v2 = registry.register("fraud", b"weights-2", parent_version="v1",
    ...                        metrics={"loss": 0.08}, created_ts=1_700_000_600.0)
    >>> [v.version for v in registry.lineage("fraud", "v2")]
    ['v2', 'v1']
    >>> registry.register("fraud", b"weights-2", parent_version="v1",
    ...                   created_ts=1_700_000_900.0).version    # same content: same version
    'v2'
    >>> _ = registry.promote("fraud", "v2", ts=1_700_000_600.0, reason="beat v1")
    >>> registry.champion("fraud").version
    'v2'
    """

    def __init__(self, store: ModelStore | str | os.PathLike[str]) -> None:
        self.store: ModelStore = (
            DirectoryStore(os.fspath(store)) if isinstance(store, str | os.PathLike) else store
        )
        if isinstance(self.store, DirectoryStore):
            # Readers may clean too: only temp entries of dead writers go.
            self.store.clean_abandoned()

    # -- writing -----------------------------------------------------------

    def register(
        self,
        model_id: str,
        artifact: bytes,
        *,
        created_ts: float,
        parent_version: str | None = None,
        training_window: TrainingWindow | None = None,
        config: Mapping[str, JsonValue] | None = None,
        library_versions: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> ModelVersion:
        """Store a new version, or return the existing one with the same identity.

        The identity is (model_id, content hash, parent, training window): a
        retrainer restarted after a crash recomputes the same artifact from the
        same events and gets its earlier version back instead of a duplicate.
        Metrics, config and ``created_ts`` of a repeat are ignored.
        """
        window = training_window if training_window is not None else TrainingWindow()
        digest = content_hash(artifact)
        existing = self.find(model_id, digest, parent_version, window)
        if existing is not None:
            return existing
        if parent_version is not None:
            self.get(model_id, parent_version)  # raises for an unknown parent
        with self.store.writer(model_id):
            # Again under the lock: another writer may have stored it meanwhile.
            existing = self.find(model_id, digest, parent_version, window)
            if existing is not None:
                return existing
            # The loop only matters for a writer that does not take the lock (a
            # hand-made copy of a version): its name is taken, try the next.
            for _ in range(_MAX_NAME_ATTEMPTS):
                numbers = [v.number for v in self.store.versions(model_id)]
                record = ModelVersion(
                    model_id=model_id,
                    version=f"v{max(numbers, default=0) + 1}",
                    parent_version=parent_version,
                    training_window=window,
                    config=dict(config or {}),
                    library_versions=dict(library_versions or {}),
                    metrics=dict(metrics or {}),
                    created_ts=created_ts,
                    content_hash=digest,
                    artifact_bytes=len(artifact),
                )
                if self.store.create_version(record, artifact):
                    return record
        raise RuntimeError(f"{model_id}: no free version name after {_MAX_NAME_ATTEMPTS} tries")

    def promote(
        self, model_id: str, version: str, *, ts: float, reason: str = ""
    ) -> ChampionPointer:
        """Make ``version`` the champion (a no-op when it already is)."""
        self.get(model_id, version)
        with self.store.writer(model_id):
            current = self.store.read_champion(model_id)
            if current is not None and current.version == version:
                return current
            history = current.history if current is not None else ()
            pointer = ChampionPointer(
                model_id=model_id,
                version=version,
                history=(*history, Promotion(version=version, ts=ts, reason=reason)),
            )
            self.store.write_champion(pointer)
            return pointer

    # -- reading -----------------------------------------------------------

    def find(
        self,
        model_id: str,
        content_hash: str,
        parent_version: str | None,
        training_window: TrainingWindow,
    ) -> ModelVersion | None:
        """The version with this identity, if one was registered."""
        for record in self.store.versions(model_id):
            if (
                record.content_hash == content_hash
                and record.parent_version == parent_version
                and record.training_window == training_window
            ):
                return record
        return None

    def list(self, model_id: str | None = None) -> list[ModelVersion]:
        """Versions of one model or of all, by model then version number."""
        ids = [model_id] if model_id is not None else self.store.model_ids()
        return [record for mid in ids for record in self.store.versions(mid)]

    def get(self, model_id: str, version: str) -> ModelVersion:
        for record in self.store.versions(model_id):
            if record.version == version:
                return record
        raise VersionNotFoundError(f"{model_id} {version}: no such version")

    def artifact(self, model_id: str, version: str) -> bytes:
        """The artifact bytes, checked against the recorded content hash."""
        record = self.get(model_id, version)
        data = self.store.read_artifact(model_id, version)
        if content_hash(data) != record.content_hash:
            raise RegistryCorruptError(
                f"{model_id} {version}: artifact does not match its recorded sha256"
            )
        return data

    def champion(self, model_id: str) -> ModelVersion | None:
        """The promoted version now serving, None before the first promotion."""
        pointer = self.store.read_champion(model_id)
        return None if pointer is None else self.get(model_id, pointer.version)

    def promotions(self, model_id: str) -> tuple[Promotion, ...]:
        """Every champion change of a model, oldest first."""
        pointer = self.store.read_champion(model_id)
        return () if pointer is None else pointer.history

    def lineage(self, model_id: str, version: str) -> builtins.list[ModelVersion]:
        """The version, its parent, the parent's parent, ... down to a root."""
        by_name = {r.version: r for r in self.store.versions(model_id)}
        chain: builtins.list[ModelVersion] = []
        name: str | None = version
        while name is not None:
            record = by_name.get(name)
            if record is None:
                if not chain:
                    raise VersionNotFoundError(f"{model_id} {version}: no such version")
                raise RegistryCorruptError(
                    f"{model_id} {chain[-1].version}: parent {name} is missing"
                )
            if len(chain) > len(by_name):  # only a hand-edited store can loop
                raise RegistryCorruptError(f"{model_id} {version}: lineage has a cycle")
            chain.append(record)
            name = record.parent_version
        return chain

    def search(
        self,
        *,
        model_id: str | None = None,
        metric: str | None = None,
        min_value: float | None = None,
        max_value: float | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        parent: str | None = None,
    ) -> builtins.list[ModelVersion]:
        """Versions matching every given filter (bounds inclusive).

        With ``metric``, only versions that recorded that metric match, within
        ``min_value``/``max_value`` when given.
        """
        if (min_value is not None or max_value is not None) and metric is None:
            raise ValueError("min_value/max_value need a metric name")
        found = []
        for record in self.list(model_id):
            if metric is not None:
                value = record.metrics.get(metric)
                if value is None:
                    continue
                if min_value is not None and value < min_value:
                    continue
                if max_value is not None and value > max_value:
                    continue
            if created_after is not None and record.created_ts < created_after:
                continue
            if created_before is not None and record.created_ts > created_before:
                continue
            if parent is not None and record.parent_version != parent:
                continue
            found.append(record)
        return found
