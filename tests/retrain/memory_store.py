"""A ``ModelStore`` in memory: the registry the retrainer's unit tests give the core.

``ModelRegistry(MemoryStore())`` is a ``RegistryView`` with the registry's own
rules (idempotent register, promote and record_experiment) and no disk. The
store counts the experiments it was asked to write, so a test can tell one
write from a repeated one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from stream_mlops.registry import (
    ChampionPointer,
    Experiment,
    ModelRegistry,
    ModelVersion,
    VersionNotFoundError,
)


class MemoryStore:
    def __init__(self) -> None:
        self._versions: dict[str, dict[str, tuple[ModelVersion, bytes]]] = {}
        self._champions: dict[str, ChampionPointer] = {}
        self._experiments: dict[str, dict[str, Experiment]] = {}
        #: every ``create_experiment`` call that stored a record
        self.experiment_writes = 0

    @classmethod
    def copy_of(cls, registry: ModelRegistry) -> MemoryStore:
        """The versions and champions of another registry."""
        store = cls()
        for record in registry.list():
            store.create_version(record, registry.artifact(record.model_id, record.version))
            pointer = registry.store.read_champion(record.model_id)
            if pointer is not None:
                store.write_champion(pointer)
        return store

    def model_ids(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, model_id: str) -> list[ModelVersion]:
        records = [record for record, _ in self._versions.get(model_id, {}).values()]
        return sorted(records, key=lambda r: r.number)

    def read_artifact(self, model_id: str, version: str) -> bytes:
        try:
            return self._versions[model_id][version][1]
        except KeyError:
            raise VersionNotFoundError(f"{model_id} {version}: no such version") from None

    def create_version(self, record: ModelVersion, artifact: bytes) -> bool:
        versions = self._versions.setdefault(record.model_id, {})
        if record.version in versions:
            return False
        versions[record.version] = (record, artifact)
        return True

    def read_champion(self, model_id: str) -> ChampionPointer | None:
        return self._champions.get(model_id)

    def write_champion(self, pointer: ChampionPointer) -> None:
        self._champions[pointer.model_id] = pointer

    def read_experiment(self, model_id: str, request_id: str) -> Experiment | None:
        return self._experiments.get(model_id, {}).get(request_id)

    def create_experiment(self, record: Experiment) -> bool:
        log = self._experiments.setdefault(record.model_id, {})
        if record.request_id in log:
            return False
        log[record.request_id] = record
        self.experiment_writes += 1
        return True

    def experiments(self, model_id: str, newest: int | None = None) -> list[Experiment]:
        log = list(self._experiments.get(model_id, {}).values())  # in written order
        return log if newest is None else log[max(0, len(log) - newest) :]

    @contextlib.contextmanager
    def writer(self, model_id: str) -> Iterator[None]:
        yield
