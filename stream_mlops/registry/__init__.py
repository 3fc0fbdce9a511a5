"""The model registry: versioned artifacts with lineage and an atomic directory store."""

from stream_mlops.registry.exceptions import (
    RegistryCorruptError,
    RegistryError,
    VersionNotFoundError,
)
from stream_mlops.registry.location import DEFAULT_REGISTRY, REGISTRY_ENV, resolve_registry
from stream_mlops.registry.records import (
    ChampionPointer,
    ModelVersion,
    OffsetRange,
    Promotion,
    TrainingWindow,
    version_number,
)
from stream_mlops.registry.registry import ModelRegistry, content_hash
from stream_mlops.registry.store import DirectoryStore, ModelStore

__all__ = [
    "DEFAULT_REGISTRY",
    "REGISTRY_ENV",
    "ChampionPointer",
    "DirectoryStore",
    "ModelRegistry",
    "ModelStore",
    "ModelVersion",
    "OffsetRange",
    "Promotion",
    "RegistryCorruptError",
    "RegistryError",
    "TrainingWindow",
    "VersionNotFoundError",
    "content_hash",
    "resolve_registry",
    "version_number",
]
