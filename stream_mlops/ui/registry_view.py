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

from dataclasses import dataclass

from stream_mlops.registry import ModelRegistry, ModelVersion, RegistryError
from stream_mlops.ui.view import PromotionView, VersionView

__all__ = ["RegistryModel", "read_registry"]


@dataclass(frozen=True, slots=True)
class RegistryModel:
    model_id: str
    champion: str | None
    #: newest first
    versions: tuple[VersionView, ...]
    promotions: tuple[PromotionView, ...]
    #: the champion, its parent, ... (newest first); empty without a champion
    lineage: tuple[VersionView, ...]


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
