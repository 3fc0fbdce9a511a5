"""The operator page's view model: what the page shows, as plain frozen data.

An ``OperatorView`` is one consistent picture of the deployment, built by
``StreamDigest.view`` from what the topics and the registry said. The page's
panels are rendered from it (``stream_mlops.ui.render``) and ``/api/view``
serves it as JSON, so a script sees exactly what the on-call engineer sees.

Times are Unix epoch seconds. ``seen_ts`` is when a record reached its topic
(the Kafka record timestamp: wall-clock time); ``ts`` is an event's own event
time, which a replayed or simulated stream may place anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: What the alerts say about a signal of the version being served: no alert,
#: a detector warned, or a detector found a drift.
SignalState = Literal["ok", "warning", "drift"]

__all__ = [
    "AlertView",
    "DeadLetterReason",
    "DeadLetterView",
    "GroupProgress",
    "ModelView",
    "OperatorView",
    "PartitionLag",
    "Point",
    "PromotionView",
    "RetrainView",
    "ShiftView",
    "SignalState",
    "SignalView",
    "TimelineMark",
    "VersionView",
]


@dataclass(frozen=True, slots=True)
class Point:
    """One value of a series at a wall-clock time; ``n`` values were averaged into it."""

    t: float
    value: float
    n: int = 1


@dataclass(frozen=True, slots=True)
class VersionView:
    """A registered version, as the registry records it."""

    version: str
    parent_version: str | None
    created_ts: float
    #: labeled events it learned from (0: registered by hand, e.g. a bootstrap)
    training_events: int
    #: the promotion test's figures (p_value, relative_improvement, ...)
    metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class PromotionView:
    """One change of champion (the registry's champion history)."""

    version: str
    ts: float
    reason: str


@dataclass(frozen=True, slots=True)
class SignalView:
    """One signal of a model: its recent values and what its detectors said."""

    signal: str
    state: SignalState
    #: sampled means over time (empty for signals without numeric values)
    recent: tuple[Point, ...]
    #: alerts on this signal for the version being served
    alerts: int
    last_alert_seen_ts: float | None
    last_alert_detector: str | None


@dataclass(frozen=True, slots=True)
class ModelView:
    """A model: champion, lineage, promotions, and its signals."""

    model_id: str
    #: the registry's champion (None: not in the registry, or never promoted)
    champion: str | None
    #: the version the scoring system serves, as the latest sampled events say
    serving: str | None
    state: SignalState
    #: a retrain request for the served version is waiting for an outcome
    retraining: bool
    #: the champion, its parent, ... down to a root (newest first)
    lineage: tuple[VersionView, ...]
    #: every registered version, newest first (bounded)
    versions: tuple[VersionView, ...]
    versions_total: int
    promotions: tuple[PromotionView, ...]
    signals: tuple[SignalView, ...]
    alerts_total: int


@dataclass(frozen=True, slots=True)
class ShiftView:
    """A label-free signal's move at an alert (``stats.shifts``, largest first)."""

    signal: str
    distance: float | None
    effect_size: float | None
    reference_mean: float | None
    recent_mean: float | None


@dataclass(frozen=True, slots=True)
class AlertView:
    alert_id: str
    model_id: str
    model_version: str
    signal: str
    detector: str
    severity: Literal["warning", "drift"]
    ts: float
    seen_ts: float
    observations: int
    mean_before: float | None
    mean_after: float | None
    effect_size: float | None
    shifts: tuple[ShiftView, ...]


@dataclass(frozen=True, slots=True)
class RetrainView:
    """A retrain of one model version: its requests and what came of them.

    The retrainer runs one challenger per model at a time and publishes only
    promotions; a challenger it retires is in its log, not on a topic or in the
    registry, so a request without a promotion reads ``open``.
    """

    model_id: str
    model_version: str
    #: requests seen for this version (0: the promotion's request was not seen,
    #: e.g. dropped by retention)
    requests: int
    first_request_id: str | None
    first_seen_ts: float | None
    #: event time where the request placed the change
    window_start_ts: float | None
    outcome: Literal["open", "promoted"]
    promoted_version: str | None = None
    promoted_seen_ts: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeadLetterReason:
    """Dead letters with one reason (positions in it read as ``#``, so they group)."""

    reason: str
    example: str
    count: int
    last_seen_ts: float
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    source_topic: str
    partition: int
    offset: int
    error: str
    seen_ts: float


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    #: the partition's end (last stable offset)
    end: int
    #: the group's committed offset, None before its first commit
    committed: int | None
    lag: int


@dataclass(frozen=True, slots=True)
class GroupProgress:
    """A consumer group (the engines, the retrainers): how far behind, how fast."""

    role: str
    group_id: str
    topics: tuple[str, ...]
    partitions: tuple[PartitionLag, ...]
    lag: int
    #: records per second the group committed, and arriving on its topics,
    #: over the last few samples (None until two samples exist)
    consumed_per_s: float | None
    arriving_per_s: float | None
    consumed_series: tuple[Point, ...]
    arriving_series: tuple[Point, ...]
    lag_series: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class TimelineMark:
    """A marker on the page's timeline: an alert or a promotion."""

    t: float
    kind: Literal["warning", "drift", "promotion"]
    model_id: str
    label: str


@dataclass(frozen=True, slots=True)
class OperatorView:
    generated_ts: float
    #: "ok", "warning" or "drift": the worst model state (the page's title says it)
    state: SignalState
    models: tuple[ModelView, ...]
    #: newest first, at most the configured number
    alerts: tuple[AlertView, ...]
    alerts_total: int
    timeline: tuple[TimelineMark, ...]
    retrains: tuple[RetrainView, ...]
    dead_letter_reasons: tuple[DeadLetterReason, ...]
    dead_letters_recent: tuple[DeadLetterView, ...]
    dead_letters_total: int
    groups: tuple[GroupProgress, ...]
    #: things the operator should know about the page itself (a topic that
    #: does not exist, no broker, unreadable records), one line each
    notes: tuple[str, ...] = ()
    #: the Kafka cluster and registry the page reads
    sources: dict[str, str] = field(default_factory=dict)
