"""The model registry as the retraining core uses it: a Protocol ``ModelRegistry`` satisfies.

The core reads champions, versions and artifacts, and writes a promotion
(register, then move the champion). Naming only these calls keeps the core
testable with any store and keeps it from depending on where versions live.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import JsonValue

from stream_mlops.registry.records import ChampionPointer, ModelVersion, TrainingWindow


class RegistryView(Protocol):
    def champion(self, model_id: str) -> ModelVersion | None:
        """The promoted version now serving, None before the first promotion."""
        ...

    def get(self, model_id: str, version: str) -> ModelVersion:
        """Raises ``VersionNotFoundError`` for an unknown model or version."""
        ...

    def artifact(self, model_id: str, version: str) -> bytes: ...

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
        """Idempotent: the same identity gives back the version registered before."""
        ...

    def promote(
        self, model_id: str, version: str, *, ts: float, reason: str = ""
    ) -> ChampionPointer:
        """Make ``version`` the champion (a no-op when it already is)."""
        ...
