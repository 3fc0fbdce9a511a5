"""Where versions live: the ``ModelStore`` protocol and its directory implementation.

The store knows nothing about version numbering or idempotency (that is the
registry's job); it only promises that a version appears whole or not at all,
that the champion pointer is replaced in one step, and a per-model writer lock
under which the registry's read-then-write steps run one writer at a time.

Layout of a ``DirectoryStore``::

    <root>/<model_id>/versions/<version>/version.json   the ModelVersion record
    <root>/<model_id>/versions/<version>/model.pkl      the artifact bytes
    <root>/<model_id>/champion.json                     the ChampionPointer
    <root>/<model_id>/.writer.lock                      the writers' lock file
    <root>/<model_id>/.tmp-<pid>-<random>[...]          a write in progress

A version is written into a ``.tmp-`` directory, each file and the directory
fsynced, then renamed into ``versions/`` (``rename`` is atomic on POSIX and
fails when the target directory exists and is not empty, which doubles as the
lock for the version name), then ``versions/`` is fsynced so the rename itself
survives a power cut. Readers never look at dot-names, so a crash at any point
leaves either no version or a complete one; a ``.tmp-`` entry whose writer
process is gone is removed by ``clean_abandoned()``.

Writers of one model take an exclusive ``flock`` on ``.writer.lock`` for each
read-then-write step (``writer()``): without it, two processes promoting at
once each appended to the history they had read and one entry was lost, and
two registering the same artifact both found it absent and stored it twice.
The kernel drops the lock when its holder exits, so a killed writer leaves no
stale lock. ``flock`` works between processes on one host; a registry on a
network file system shared by several hosts is not covered.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from stream_mlops.registry.exceptions import RegistryCorruptError, VersionNotFoundError
from stream_mlops.registry.records import (
    MODEL_ID_PATTERN,
    ChampionPointer,
    ModelVersion,
    version_number,
)

RECORD_FILE = "version.json"
ARTIFACT_FILE = "model.pkl"
CHAMPION_FILE = "champion.json"
VERSIONS_DIR = "versions"
TEMP_PREFIX = ".tmp-"
LOCK_FILE = ".writer.lock"
_MODEL_ID_RE = re.compile(MODEL_ID_PATTERN)


class ModelStore(Protocol):
    """Durable storage of versions and champion pointers."""

    def model_ids(self) -> list[str]:
        """Models that have at least one version, sorted."""
        ...

    def versions(self, model_id: str) -> list[ModelVersion]:
        """All versions of a model, oldest first (empty for an unknown model)."""
        ...

    def read_artifact(self, model_id: str, version: str) -> bytes:
        """The artifact bytes; raises VersionNotFoundError."""
        ...

    def create_version(self, record: ModelVersion, artifact: bytes) -> bool:
        """Store a new version atomically; False when ``record.version`` is already taken."""
        ...

    def read_champion(self, model_id: str) -> ChampionPointer | None:
        """The current champion pointer, None when no version was promoted yet."""
        ...

    def write_champion(self, pointer: ChampionPointer) -> None:
        """Replace the champion pointer atomically."""
        ...

    def writer(self, model_id: str) -> AbstractContextManager[None]:
        """Held while a writer reads and then writes a model (blocks other writers)."""
        ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, it is just not ours
        return True
    return True


class DirectoryStore:
    """A ``ModelStore`` on a local directory (created on first write).

    Any number of readers (the CLI, producers loading a version) and writers;
    the registry's writes of one model take turns under ``writer()``.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"DirectoryStore({str(self.root)!r})"

    def _model_dir(self, model_id: str) -> Path:
        # Names become paths: refuse anything that could leave the root.
        if not _MODEL_ID_RE.fullmatch(model_id):
            raise ValueError(f"model_id {model_id!r}: must match {MODEL_ID_PATTERN}")
        return self.root / model_id

    def _version_dir(self, model_id: str, version: str) -> Path:
        return self._model_dir(model_id) / VERSIONS_DIR / version

    def model_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if not p.name.startswith(".") and (p / VERSIONS_DIR).is_dir()
        )

    def versions(self, model_id: str) -> list[ModelVersion]:
        versions_dir = self._model_dir(model_id) / VERSIONS_DIR
        if not versions_dir.is_dir():
            return []
        records = [
            self._read_record(model_id, p.name)
            for p in versions_dir.iterdir()
            if not p.name.startswith(".")
        ]
        return sorted(records, key=lambda r: r.number)

    def _read_record(self, model_id: str, version: str) -> ModelVersion:
        path = self._version_dir(model_id, version) / RECORD_FILE
        try:
            record = ModelVersion.model_validate_json(path.read_bytes())
        except FileNotFoundError as exc:
            raise RegistryCorruptError(f"{path}: missing version record") from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "record"
            raise RegistryCorruptError(f"{path}: {where}: {first['msg']}") from exc
        if record.model_id != model_id or record.version != version:
            raise RegistryCorruptError(
                f"{path}: holds {record.model_id} {record.version}, not {model_id} {version}"
            )
        return record

    def read_artifact(self, model_id: str, version: str) -> bytes:
        try:
            version_number(version)
            return (self._version_dir(model_id, version) / ARTIFACT_FILE).read_bytes()
        except (FileNotFoundError, ValueError) as exc:
            raise VersionNotFoundError(f"{model_id} {version}: no such version") from exc

    def create_version(self, record: ModelVersion, artifact: bytes) -> bool:
        model_dir = self._model_dir(record.model_id)
        versions_dir = model_dir / VERSIONS_DIR
        versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=model_dir))
        renamed = False
        try:
            _write_synced(tmp / ARTIFACT_FILE, artifact)
            _write_synced(tmp / RECORD_FILE, record.model_dump_json(indent=2).encode())
            _fsync_dir(tmp)
            try:
                tmp.rename(versions_dir / record.version)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    return False
                raise
            renamed = True
            _fsync_dir(versions_dir)
            return True
        finally:
            if not renamed:
                shutil.rmtree(tmp, ignore_errors=True)

    def read_champion(self, model_id: str) -> ChampionPointer | None:
        path = self._model_dir(model_id) / CHAMPION_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return ChampionPointer.model_validate_json(data)
        except ValidationError as exc:
            raise RegistryCorruptError(f"{path}: {exc.errors()[0]['msg']}") from exc

    def write_champion(self, pointer: ChampionPointer) -> None:
        model_dir = self._model_dir(pointer.model_id)
        model_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=model_dir)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pointer.model_dump_json(indent=2).encode())
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(model_dir / CHAMPION_FILE)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(model_dir)

    @contextlib.contextmanager
    def writer(self, model_id: str) -> Iterator[None]:
        """The model's writer lock: an exclusive ``flock`` on its ``.writer.lock``.

        Not re-entrant: a second ``writer()`` of the same model in the same
        process, while the first is held, waits forever.
        """
        model_dir = self._model_dir(model_id)
        model_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(model_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def clean_abandoned(self) -> list[Path]:
        """Remove temp entries whose writing process is gone; returns what was removed.

        A temp entry of a live process is a write in progress and is kept. (A
        reused pid only delays the cleaning; the entry is invisible either way.)
        """
        if not self.root.is_dir():
            return []
        removed: list[Path] = []
        for model_dir in sorted(self.root.iterdir()):
            if not model_dir.is_dir() or model_dir.name.startswith("."):
                continue
            for entry in sorted(model_dir.glob(f"{TEMP_PREFIX}*")):
                pid_text = entry.name[len(TEMP_PREFIX) :].split("-", 1)[0]
                if pid_text.isdigit() and _pid_alive(int(pid_text)):
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        entry.unlink()
                removed.append(entry)
        return removed
