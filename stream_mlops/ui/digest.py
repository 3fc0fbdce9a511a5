"""Topic records and sampled events in, the operator page's view out (pure, bounded).

``StreamDigest`` folds what the page reads into a few bounded structures and
builds an ``OperatorView`` from them on demand, whatever the stream's length:

* ``add_record``: a record of ``drift-alerts``, ``retrain-requests``,
  ``model-updates`` or ``dead-letters`` (every record; read with
  ``read_committed``). Alerts: the newest ``limits.alerts`` in full, and per
  model version and signal the latest state. Requests and updates: the latest
  ``limits.retrains`` retrains. Dead letters: counts by reason (at most
  ``limits.dead_letter_reasons`` reasons; the rest pooled) and the newest few.
* ``add_sample``: a sample of the engine's labeled events (or, without them,
  of the predictions): each signal's mean over the sample (over the last few
  samples when they hold fewer than ``limits.events_per_point`` values)
  becomes one point of its series (``limits.points`` kept), computed with the
  engine's own signal functions (``stream_mlops.signals``).
* ``view``: the picture, with the registry's models and the groups' progress.

A record that is not a readable event of its topic is counted, never fatal:
the page says how many and why. Events are read tolerantly (fields a newer
engine adds are ignored), since the contract only ever grows.

>>> from stream_mlops.events import encode, DriftAlert, AlertStats
>>> digest = StreamDigest()
>>> alert = DriftAlert(alert_id="a1", model_id="fraud", model_version="v1", signal="error",
...                    detector="adwin", severity="drift", ts=100, trigger_event_id="t1",
...                    observations=900, stats=AlertStats(mean_before=0.05, mean_after=0.2))
>>> digest.add_record("alert", encode(alert), seen_ts=1000.0)
>>> view = digest.view(now=1001.0)
>>> view.state, view.models[0].model_id, view.models[0].signals[0].state
('drift', 'fraud', 'drift')
"""

from __future__ import annotations

import re
import types
import typing
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel, ValidationError

from stream_mlops.events import DeadLetter, DriftAlert, ModelUpdate, RetrainRequest, loads
from stream_mlops.model_task import Task
from stream_mlops.signals import error_value, estimated_error, numeric
from stream_mlops.ui.registry_view import RegistryModel
from stream_mlops.ui.view import (
    AlertView,
    DeadLetterReason,
    DeadLetterView,
    GroupProgress,
    ModelView,
    OperatorView,
    Point,
    RetrainView,
    ShiftView,
    SignalState,
    SignalView,
    TimelineMark,
)

__all__ = ["DigestLimits", "RecordKind", "StreamDigest", "known_fields"]

#: The topics whose every record the digest reads.
RecordKind = Literal["alert", "request", "update", "dead_letter"]

_MODELS: Final[dict[RecordKind, type[BaseModel]]] = {
    "alert": DriftAlert,
    "request": RetrainRequest,
    "update": ModelUpdate,
    "dead_letter": DeadLetter,
}
_SEVERITY_RANK: Final[dict[SignalState, int]] = {"ok": 0, "warning": 1, "drift": 2}
# Signals first in a model's table, in this order; features follow by name.
_LEADING_SIGNALS: Final = ("error", "estimated_error", "score", "prediction")
# Positions in a dead letter's reason ("line 1 column 57", "at byte 3") differ
# from record to record: grouping without them keeps one row per kind of
# defect. Other numbers ("less than or equal to 1") are part of the reason.
_POSITION: Final = re.compile(r"\b(line|column|char|byte|position|offset) \d+")
_OTHER_REASONS: Final = "(other reasons)"
_REASON_CHARS: Final = 200
_SHIFTS_SHOWN: Final = 5


@dataclass(frozen=True, slots=True)
class DigestLimits:
    """How much the digest keeps: each bound caps memory whatever the stream's length."""

    #: newest alerts kept in full (the timeline and the alert table)
    alerts: int = 200
    #: retrains (a model version's requests and promotion) kept
    retrains: int = 50
    #: distinct dead-letter reasons counted; further reasons are pooled
    dead_letter_reasons: int = 30
    #: newest dead letters listed
    dead_letters_recent: int = 20
    #: points per signal series (at a 2 s refresh, five minutes)
    points: int = 150
    #: sampled values averaged into one point of a signal's series
    events_per_point: int = 30
    #: signals per model with a series (the first seen)
    signals_per_model: int = 40
    #: models tracked from the stream (the registry's are always shown)
    models: int = 50
    #: versions per model listed on the page
    versions_shown: int = 8
    #: (model, version, signal) alert states kept, least recently alerted dropped first
    signal_states: int = 5000


@dataclass(slots=True)
class _SignalAlerts:
    state: SignalState
    count: int
    last_seen_ts: float
    detector: str


@dataclass(slots=True)
class _SignalSeries:
    """A signal's points, and the values not yet averaged into one."""

    points: deque[Point]
    total: float = 0.0
    count: int = 0


@dataclass(slots=True)
class _Retrain:
    model_id: str
    model_version: str
    requests: int = 0
    first_request_id: str | None = None
    first_seen_ts: float | None = None
    window_start_ts: float | None = None
    promoted_version: str | None = None
    promoted_seen_ts: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _Reason:
    example: str
    count: int
    last_seen_ts: float
    topics: set[str]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class inside ``Model``, ``Model | None`` or ``list[Model]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def known_fields(model: type[BaseModel], value: Any) -> Any:
    """``value`` without the fields ``model`` (and its nested models) does not define.

    Outputs are validated strictly (``extra="forbid"``); a reader of topics a
    newer engine writes must ignore what it does not know.

    >>> known_fields(RetrainRequest, {"request_id": "r", "new_field": 1})
    {'request_id': 'r'}
    """
    if isinstance(value, list):
        return [known_fields(model, item) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {}
    for name, info in model.model_fields.items():
        if name in value:
            nested = _model_of(info.annotation)
            kept[name] = value[name] if nested is None else known_fields(nested, value[name])
    return kept


def _decode(kind: RecordKind, value: bytes | None) -> BaseModel:
    if value is None:
        raise ValueError("record has no value (tombstone)")
    try:
        obj = loads(value)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    model = _MODELS[kind]
    try:
        return model.model_validate(known_fields(model, obj))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(event)"
        raise ValueError(f"{where}: {first['msg']}") from None


def _reason_key(reason: str) -> str:
    """The reason a dead letter is counted under: positions in it as ``#``.

    >>> _reason_key("(event): not JSON (unexpected end of data: line 1 column 57 (char 56))")
    '(event): not JSON (unexpected end of data: line # column # (char #))'
    >>> _reason_key("(event): not UTF-8 (invalid start byte at byte 0)")
    '(event): not UTF-8 (invalid start byte at byte #)'
    """
    return _POSITION.sub(r"\1 #", reason[:_REASON_CHARS])


def _task_of(prediction: Any, score: Any, configured: Task | None) -> Task:
    # The engine's rule (stream_mlops.signals.infer_task) on a raw event.
    if configured is not None:
        return configured
    if type(prediction) is float and score is None:
        return Task.REGRESSION
    return Task.CLASSIFICATION


def _signal_values(event: Mapping[str, Any], task: Task) -> dict[str, float]:
    """The numeric signal values of one labeled event (or prediction), as the engine computes."""
    values: dict[str, float] = {}
    prediction, score = event.get("prediction"), event.get("score")
    if not isinstance(prediction, bool | int | float | str):
        return values  # not an event the engine wrote
    actual = event.get("actual")
    if isinstance(actual, bool | int | float | str):
        error = error_value(task, prediction, actual)
        if error is not None:
            values["error"] = error
    score_value = numeric(score) if type(score) is not bool else None
    if score_value is not None:
        values["score"] = score_value
        if task == Task.CLASSIFICATION:
            values["estimated_error"] = estimated_error(prediction, score_value)
    predicted = numeric(prediction)
    if predicted is not None:
        values["prediction"] = predicted
    features = event.get("features")
    if isinstance(features, dict):
        for name, raw in features.items():
            number = numeric(raw)
            if number is not None and isinstance(name, str):
                values[f"feature:{name}"] = number
    return values


def _signal_order(signal: str) -> tuple[int, str]:
    if signal in _LEADING_SIGNALS:
        return (_LEADING_SIGNALS.index(signal), "")
    return (len(_LEADING_SIGNALS), signal)


def _worst(states: Iterable[SignalState]) -> SignalState:
    return max(states, key=_SEVERITY_RANK.__getitem__, default="ok")


class StreamDigest:
    """What the page has read so far, in bounded memory; ``view()`` pictures it."""

    def __init__(
        self, limits: DigestLimits | None = None, tasks: Mapping[str, Task] | None = None
    ) -> None:
        self.limits = limits or DigestLimits()
        #: configured tasks by model (``[models.<id>] task``); others are inferred
        self._tasks = dict(tasks or {})
        self._alerts: deque[AlertView] = deque(maxlen=self.limits.alerts)
        self._alerts_total = 0
        self._alerts_by_model: Counter[str] = Counter()
        self._signal_alerts: OrderedDict[tuple[str, str, str], _SignalAlerts] = OrderedDict()
        self._retrains: OrderedDict[tuple[str, str], _Retrain] = OrderedDict()
        self._promotions: deque[TimelineMark] = deque(maxlen=self.limits.alerts)
        self._reasons: dict[str, _Reason] = {}
        self._dead_recent: deque[DeadLetterView] = deque(maxlen=self.limits.dead_letters_recent)
        self._dead_total = 0
        self._unreadable: dict[str, tuple[int, str]] = {}
        self._series: dict[str, dict[str, _SignalSeries]] = {}
        self._serving: dict[str, str] = {}

    # -- records ------------------------------------------------------------

    def add_record(
        self, kind: RecordKind, value: bytes | None, seen_ts: float, where: str = ""
    ) -> None:
        """One record of a topic read whole; ``where`` (``topic[partition]@offset``)
        names it if it cannot be read."""
        try:
            event = _decode(kind, value)
        except ValueError as exc:
            count, _ = self._unreadable.get(kind, (0, ""))
            self._unreadable[kind] = (count + 1, f"{where} {exc}".strip())
            return
        if isinstance(event, DriftAlert):
            self._add_alert(event, seen_ts)
        elif isinstance(event, RetrainRequest):
            self._add_request(event, seen_ts)
        elif isinstance(event, ModelUpdate):
            self._add_update(event, seen_ts)
        elif isinstance(event, DeadLetter):
            self._add_dead_letter(event, seen_ts)

    def _add_alert(self, alert: DriftAlert, seen_ts: float) -> None:
        stats = alert.stats
        shifts = sorted(
            stats.shifts,
            key=lambda s: -(s.distance if s.distance is not None else abs(s.effect_size)),
        )
        self._alerts.append(
            AlertView(
                alert_id=alert.alert_id,
                model_id=alert.model_id,
                model_version=alert.model_version,
                signal=alert.signal,
                detector=alert.detector,
                severity=alert.severity,
                ts=alert.ts.timestamp(),
                seen_ts=seen_ts,
                observations=alert.observations,
                mean_before=stats.mean_before,
                mean_after=stats.mean_after,
                effect_size=stats.effect_size,
                shifts=tuple(
                    ShiftView(s.signal, s.distance, s.effect_size, s.reference_mean, s.recent_mean)
                    for s in shifts[:_SHIFTS_SHOWN]
                ),
            )
        )
        self._alerts_total += 1
        if alert.model_id in self._alerts_by_model or len(self._alerts_by_model) < (
            self.limits.models
        ):
            self._alerts_by_model[alert.model_id] += 1
        key = (alert.model_id, alert.model_version, alert.signal)
        known = self._signal_alerts.pop(key, None)
        # A drift stays the signal's state until the version is replaced: the
        # detector restarts after a drift, the model stays drifted.
        state: SignalState = (
            "drift"
            if alert.severity == "drift" or (known and known.state == "drift")
            else "warning"
        )
        self._signal_alerts[key] = _SignalAlerts(
            state, (known.count if known else 0) + 1, seen_ts, alert.detector
        )
        while len(self._signal_alerts) > self.limits.signal_states:
            self._signal_alerts.popitem(last=False)

    def _retrain(self, model_id: str, version: str) -> _Retrain:
        key = (model_id, version)
        entry = self._retrains.get(key)
        if entry is None:
            entry = self._retrains[key] = _Retrain(model_id, version)
            while len(self._retrains) > self.limits.retrains:
                self._retrains.popitem(last=False)
        return entry

    def _add_request(self, request: RetrainRequest, seen_ts: float) -> None:
        entry = self._retrain(request.model_id, request.model_version)
        entry.requests += 1
        if entry.first_request_id is None:
            entry.first_request_id = request.request_id
            entry.first_seen_ts = seen_ts
            entry.window_start_ts = request.window_start.ts.timestamp()

    def _add_update(self, update: ModelUpdate, seen_ts: float) -> None:
        challenged = update.metrics.get("champion_version") or update.parent_version
        if isinstance(challenged, str):
            entry = self._retrain(update.model_id, challenged)
            entry.promoted_version = update.model_version
            entry.promoted_seen_ts = seen_ts
            entry.metrics = {
                k: float(v)
                for k, v in update.metrics.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
        self._promotions.append(
            TimelineMark(seen_ts, "promotion", update.model_id, f"{update.model_version} promoted")
        )

    def _add_dead_letter(self, letter: DeadLetter, seen_ts: float) -> None:
        self._dead_total += 1
        key = _reason_key(letter.error)
        if key not in self._reasons and len(self._reasons) >= self.limits.dead_letter_reasons:
            key = _OTHER_REASONS
        reason = self._reasons.get(key)
        if reason is None:
            reason = self._reasons[key] = _Reason(letter.error[:_REASON_CHARS], 0, seen_ts, set())
        reason.count += 1
        reason.last_seen_ts = max(reason.last_seen_ts, seen_ts)
        reason.topics.add(letter.source_topic)
        self._dead_recent.append(
            DeadLetterView(
                letter.source_topic,
                letter.partition,
                letter.offset,
                letter.error[:_REASON_CHARS],
                seen_ts,
            )
        )

    # -- samples ------------------------------------------------------------

    def add_sample(self, events: Iterable[Mapping[str, Any]], at: float) -> None:
        """Labeled events (or predictions) sampled at wall-clock time ``at``.

        Each signal's values are averaged into a point at ``at`` once it has
        ``limits.events_per_point`` of them (a quiet stream's few events wait
        for the next samples, so one event does not make a spike). An event
        without a model id is ignored.
        """
        for event in events:
            model_id = event.get("model_id")
            if not isinstance(model_id, str):
                continue
            tracks = self._series.get(model_id)
            if tracks is None:
                if len(self._series) >= self.limits.models:
                    continue
                tracks = self._series[model_id] = {}
            task = _task_of(event.get("prediction"), event.get("score"), self._tasks.get(model_id))
            for signal, value in _signal_values(event, task).items():
                track = tracks.get(signal)
                if track is None:
                    if len(tracks) >= self.limits.signals_per_model:
                        continue
                    track = tracks[signal] = _SignalSeries(deque(maxlen=self.limits.points))
                track.total += value
                track.count += 1
            version = event.get("model_version")
            if isinstance(version, str):
                self._serving[model_id] = version
        for tracks in self._series.values():
            for track in tracks.values():
                if track.count >= self.limits.events_per_point:
                    track.points.append(Point(at, track.total / track.count, track.count))
                    track.total, track.count = 0.0, 0

    # -- the picture --------------------------------------------------------

    def view(
        self,
        *,
        now: float,
        registry: Sequence[RegistryModel] = (),
        groups: Sequence[GroupProgress] = (),
        notes: Sequence[str] = (),
        sources: Mapping[str, str] | None = None,
    ) -> OperatorView:
        by_id = {m.model_id: m for m in registry}
        model_ids = sorted(
            set(by_id)
            | set(self._alerts_by_model)
            | set(self._series)
            | {k[0] for k in self._retrains}
        )
        models = tuple(self._model_view(mid, by_id.get(mid)) for mid in model_ids)
        retrains = tuple(
            RetrainView(
                model_id=r.model_id,
                model_version=r.model_version,
                requests=r.requests,
                first_request_id=r.first_request_id,
                first_seen_ts=r.first_seen_ts,
                window_start_ts=r.window_start_ts,
                outcome="promoted" if r.promoted_version else "open",
                promoted_version=r.promoted_version,
                promoted_seen_ts=r.promoted_seen_ts,
                metrics=dict(r.metrics),
            )
            for r in reversed(self._retrains.values())
        )
        alerts = tuple(reversed(self._alerts))
        timeline = sorted(
            [
                *(
                    TimelineMark(a.seen_ts, a.severity, a.model_id, f"{a.model_version} {a.signal}")
                    for a in alerts
                ),
                *self._promotions,
            ],
            key=lambda m: m.t,
        )
        reasons = sorted(
            (
                DeadLetterReason(key, r.example, r.count, r.last_seen_ts, tuple(sorted(r.topics)))
                for key, r in self._reasons.items()
            ),
            key=lambda r: (-r.count, r.reason),
        )
        unreadable = [
            f"{kind}: {count} unreadable record{'s' if count != 1 else ''} (last: {last})"
            for kind, (count, last) in sorted(self._unreadable.items())
        ]
        return OperatorView(
            generated_ts=now,
            state=_worst(m.state for m in models),
            models=models,
            alerts=alerts,
            alerts_total=self._alerts_total,
            timeline=tuple(timeline),
            retrains=retrains,
            dead_letter_reasons=tuple(reasons),
            dead_letters_recent=tuple(reversed(self._dead_recent)),
            dead_letters_total=self._dead_total,
            groups=tuple(groups),
            notes=(*notes, *unreadable),
            sources=dict(sources or {}),
        )

    def _model_view(self, model_id: str, registered: RegistryModel | None) -> ModelView:
        champion = registered.champion if registered else None
        serving = self._serving.get(model_id)
        # Detectors are per version: the signals' state is that of the version
        # being served (else the champion, else the newest alerted one).
        current = serving or champion or self._latest_alerted_version(model_id)
        series = self._series.get(model_id, {})
        alerted = {
            signal: state
            for (mid, version, signal), state in self._signal_alerts.items()
            if mid == model_id and version == current
        }
        signals = tuple(
            SignalView(
                signal=signal,
                state=alerted[signal].state if signal in alerted else "ok",
                recent=tuple(series[signal].points) if signal in series else (),
                alerts=alerted[signal].count if signal in alerted else 0,
                last_alert_seen_ts=alerted[signal].last_seen_ts if signal in alerted else None,
                last_alert_detector=alerted[signal].detector if signal in alerted else None,
            )
            for signal in sorted(set(series) | set(alerted), key=_signal_order)
        )
        # A request for the version in service (any, when none is known yet)
        # that no promotion answered.
        retraining = any(
            r.model_id == model_id
            and r.promoted_version is None
            and (current is None or r.model_version == current)
            for r in self._retrains.values()
        )
        shown = self.limits.versions_shown
        return ModelView(
            model_id=model_id,
            champion=champion,
            serving=serving,
            state=_worst(s.state for s in signals),
            retraining=retraining,
            lineage=registered.lineage[:shown] if registered else (),
            versions=registered.versions[:shown] if registered else (),
            versions_total=len(registered.versions) if registered else 0,
            promotions=tuple(reversed(registered.promotions[-shown:])) if registered else (),
            signals=signals,
            alerts_total=self._alerts_by_model.get(model_id, 0),
        )

    def _latest_alerted_version(self, model_id: str) -> str | None:
        for alert in reversed(self._alerts):
            if alert.model_id == model_id:
                return alert.model_version
        return None
