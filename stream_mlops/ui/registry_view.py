"""What the model registry says about each model, as the page shows it.

Read through ``ModelRegistry`` (so the page sees exactly what ``stream-mlops
models`` sees): versions with their training data and promotion figures, the
champion, its lineage and the champion history. A model the registry cannot
read (a hand-edited or damaged directory) becomes a note on the page, and the
other models are still shown.

>>> import tempfile
>>> from stream_mlops.registry import ModelRegistry
>>> registry = ModelRegistry(tempfile.mkdtemp())
>>> _ = registry.register("fraud", b"v1", created_ts=1.0)
>>> _ = registry.register("fraud", b"v2", parent_version="v1", created_ts=2.0,
...                       metrics={"p_value": 0.001})
>>> _ = registry.promote("fraud", "v2", ts=3.0, reason="beat v1")
>>> [model], notes = read_registry(registry)
>>> model.champion, [v.version for v in model.lineage], model.promotions[0].reason, notes
('v2', ['v2', 'v1'], 'beat v1', [])
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from stream_mlops.registry import (
    ChampionPointer,
    DirectoryStore,
    ModelRegistry,
    ModelVersion,
    RegistryError,
)
from stream_mlops.ui.view import PromotionView, VersionView

__all__ = ["ReadOnlyStore", "RegistryModel", "open_read_only", "read_registry"]


@dataclass(frozen=True, slots=True)
class RegistryModel:
    model_id: str
    champion: str | None
    #: newest first
    versions: tuple[VersionView, ...]
    promotions: tuple[PromotionView, ...]
    #: the champion, its parent, ... (newest first); empty without a champion
    lineage: tuple[VersionView, ...]


class ReadOnlyStore:
    """A ``DirectoryStore`` that can only be read.

    A registry over a plain ``DirectoryStore`` removes the temp entries of
    writers whose process is gone when it opens; on a directory shared between
    machines another machine's live writer looks gone. The page only reads.
    """

    def __init__(self, root: Path) -> None:
        self._store = DirectoryStore(root)

    def model_ids(self) -> list[str]:
        return self._store.model_ids()

    def versions(self, model_id: str) -> list[ModelVersion]:
        return self._store.versions(model_id)

    def read_artifact(self, model_id: str, version: str) -> bytes:
        return self._store.read_artifact(model_id, version)

    def read_champion(self, model_id: str) -> ChampionPointer | None:
        return self._store.read_champion(model_id)

    def create_version(self, record: ModelVersion, artifact: bytes) -> bool:
        raise RegistryError("the operator page never writes to the registry")

    def write_champion(self, pointer: ChampionPointer) -> None:
        raise RegistryError("the operator page never writes to the registry")

    def writer(self, model_id: str) -> AbstractContextManager[None]:
        raise RegistryError("the operator page never writes to the registry")


def open_read_only(root: Path) -> ModelRegistry:
    """The registry at ``root``, for reading only: opening it changes nothing on disk."""
    return ModelRegistry(ReadOnlyStore(root))


def _version_view(record: ModelVersion) -> VersionView:
    return VersionView(
        version=record.version,
        parent_version=record.parent_version,
        created_ts=record.created_ts,
        training_events=record.training_window.event_count,
        metrics=dict(record.metrics),
    )


def read_registry(registry: ModelRegistry) -> tuple[list[RegistryModel], list[str]]:
    """Every model of the registry, and a note for each one it could not read."""
    models: list[RegistryModel] = []
    notes: list[str] = []
    for model_id in registry.store.model_ids():
        try:
            records = sorted(registry.list(model_id), key=lambda r: r.number, reverse=True)
            champion = registry.champion(model_id)
            promotions = registry.promotions(model_id)
            lineage = registry.lineage(model_id, champion.version) if champion else []
        except (RegistryError, ValueError) as exc:
            notes.append(f"registry: model {model_id}: {exc}")
            continue
        models.append(
            RegistryModel(
                model_id=model_id,
                champion=champion.version if champion else None,
                versions=tuple(_version_view(r) for r in records),
                promotions=tuple(PromotionView(p.version, p.ts, p.reason) for p in promotions),
                lineage=tuple(_version_view(r) for r in lineage),
            )
        )
    return models, notes
