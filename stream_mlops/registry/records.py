"""What the registry keeps about one model version, as frozen pydantic models.

The records are stored as JSON next to the artifact. They carry everything a
reader needs to trust and rebuild a version: where its training data came from
(the training window), what it started from (the parent), how it was configured
and with which library versions, how it scored, and the sha256 of its bytes.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

# The contract's model_id rule (docs/contract.md), and no leading dot: it becomes
# a directory name, so it must stay free of path separators and must not look
# like one of the store's dot-named temp files.
MODEL_ID_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"
VERSION_PATTERN = r"^v[1-9][0-9]*$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"

ModelId = Annotated[str, Field(pattern=MODEL_ID_PATTERN)]
VersionName = Annotated[str, Field(pattern=VERSION_PATTERN)]

_VERSION_RE = re.compile(VERSION_PATTERN)


def version_number(version: str) -> int:
    """The number in a version name, for ordering ("v10" sorts after "v9").

    >>> version_number("v12")
    12
    """
    if not _VERSION_RE.fullmatch(version):
        raise ValueError(f"version {version!r}: expected 'v' followed by a positive integer")
    return int(version[1:])


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OffsetRange(_Frozen):
    """Inclusive offsets of one topic partition that a version was trained from."""

    topic: str = Field(min_length=1)
    partition: int = Field(ge=0)
    first_offset: int = Field(ge=0)
    last_offset: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> OffsetRange:
        if self.last_offset < self.first_offset:
            raise ValueError("last_offset must not be below first_offset")
        return self


class TrainingWindow(_Frozen):
    """The data a version learned from, precise enough to read it back.

    ``ranges`` bound the records; within them, the events that were learned are
    those of the version's model with an event time at or after ``start_ts``
    (the retrain request's ``window_start``), each ``event_id`` once, in offset
    order. ``event_count`` and ``events_digest`` (sha256 over the learned event
    ids in learning order) let a reproduction prove it read the same events.
    An empty window (no ranges) marks a version that was not trained here, such
    as an initial model registered by hand.
    """

    ranges: tuple[OffsetRange, ...] = ()
    start_ts: float | None = None
    start_event_id: str | None = None
    first_event_ts: float | None = None
    last_event_ts: float | None = None
    event_count: int = Field(default=0, ge=0)
    events_digest: str | None = Field(default=None, pattern=SHA256_PATTERN)


class ModelVersion(_Frozen):
    """One registered version: metadata of an immutable artifact."""

    model_id: ModelId
    version: VersionName
    parent_version: VersionName | None = None
    training_window: TrainingWindow = TrainingWindow()
    config: dict[str, JsonValue] = Field(default_factory=dict)
    library_versions: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    created_ts: float
    content_hash: str = Field(pattern=SHA256_PATTERN)
    artifact_bytes: int = Field(ge=0)

    @property
    def number(self) -> int:
        return version_number(self.version)


class Promotion(_Frozen):
    """One change of champion, kept in the champion pointer's history."""

    version: VersionName
    ts: float
    reason: str = ""


class ChampionPointer(_Frozen):
    """Which version of a model is the champion now, and how it got there."""

    model_id: ModelId
    version: VersionName
    history: tuple[Promotion, ...]
