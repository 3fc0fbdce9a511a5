"""What the registry keeps about one challenger session: the experiment log's records.

Every retrain session the retrainer decides, promoted or retired, becomes one
``Experiment``: the request that started it, the version it challenged and the
one it grew from, the model spec and the promotion test's parameters, the data
it learned (its training window), how many events were scored, both models'
mean losses, the sign test's p-value at each look, and the decision with its
reason. A promoted session's version record says what was registered; the
experiment is the only trace a retired one leaves.

An experiment is keyed by its model and its retrain request's id (one request
starts at most one session): a retrainer that acts on the same decision again
after a crash finds the record already there and writes nothing.
``experiment_key`` turns the request id, which comes from a topic and may hold
any character, into a safe file name.

Times are event times (epoch seconds), never a wall clock: the same decision
recomputed after a restart is the same record.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from stream_mlops.registry.records import ModelId, TrainingWindow, VersionName

__all__ = ["Experiment", "ExperimentLook", "Outcome", "experiment_key"]

Outcome = Literal["promoted", "retired"]


def experiment_key(request_id: str) -> str:
    """The file name stem of a request's experiment: sha256 of the request id, hex.

    >>> experiment_key("316a327f861d7d65c83251aa8c87ff16")[:16]
    'fc3f2258f25abb78'
    """
    return hashlib.sha256(request_id.encode()).hexdigest()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExperimentLook(_Frozen):
    """The promotion test at one look: the figures on all events scored so far."""

    look: int = Field(ge=1)
    scored_events: int = Field(ge=1)
    champion_loss: float
    challenger_loss: float
    relative_improvement: float
    challenger_better: int = Field(ge=0)
    champion_better: int = Field(ge=0)
    p_value: float = Field(ge=0, le=1)
    alpha_per_look: float
    #: the look met both the p-value bound and the margin
    promote: bool


class Experiment(_Frozen):
    """One challenger session and its outcome."""

    model_id: ModelId
    request_id: str
    reason_alert_ids: tuple[str, ...] = ()
    #: event time of the retrain request (None when the request did not say)
    requested_ts: float | None = None
    #: where the request placed post-drift data: event time and event id
    window_start_ts: float
    window_start_event_id: str
    #: the champion the challenger was scored against (the request's version)
    champion_version: VersionName
    #: what the challenger started from; None for a fresh model
    parent_version: VersionName | None
    outcome: Outcome
    #: the version registered for a promotion; None for a retirement
    version: VersionName | None = None
    #: sha256 of the promoted artifact; None for a retirement
    content_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    reason: str
    #: event time of the decision: the newest labeled event the challenger learned
    decided_ts: float
    #: the challenger's model (``ModelSpec``) and the test's parameters (``PromotionPolicy``)
    model_spec: dict[str, JsonValue]
    policy: dict[str, JsonValue]
    #: the labeled events the challenger learned (ranges, event count, digest)
    training_window: TrainingWindow
    #: events both models were scored on (after the warm-up)
    scored_events: int = Field(ge=0)
    #: mean losses on the scored events at the deciding look
    champion_loss: float
    challenger_loss: float
    relative_improvement: float
    #: the sign test's p-value at the deciding look
    p_value: float = Field(ge=0, le=1)
    #: every look, oldest first; the last one decided
    looks: tuple[ExperimentLook, ...]

    @model_validator(mode="after")
    def _outcome_matches(self) -> Experiment:
        if (self.outcome == "promoted") != (self.version is not None):
            raise ValueError("version: a promoted experiment names its version, a retired one none")
        if (self.version is None) != (self.content_hash is None):
            raise ValueError("content_hash: goes with the promoted version")
        return self

    @property
    def learned_events(self) -> int:
        return self.training_window.event_count
