"""The pure core: one event in, the events to publish out.

join -> signals -> detectors -> controller, with no I/O and no clock: the same
settings and the same events give the same outputs, byte for byte.

>>> from stream_mlops.config import Settings
>>> from stream_mlops.events import OutcomeEvent, PredictionEvent
>>> engine = Engine(Settings())
>>> engine.process(PredictionEvent(event_id="a", model_id="fraud", model_version="v1",
...                                ts=0, features={"amount": 3.5}, prediction=1, score=0.8))
[]
>>> [out.type for out in engine.process(OutcomeEvent(event_id="a", ts=60, actual=0))]
['labeled_event']
>>> engine.stats.joined, engine.stats.pending
(1, 0)
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Final, Literal, NamedTuple

from stream_mlops import calibration, detectors, outcomes, snapshot
from stream_mlops.config import DetectorSpec, ModelSettings, Settings
from stream_mlops.controller import AlertPolicy, content_id
from stream_mlops.detectors import Detection, Detector, GlrDetector
from stream_mlops.estimation import ErrorEstimator, PerformanceEstimation
from stream_mlops.event_time import EventTimeBound, EventTimeCounts
from stream_mlops.events import (
    DriftAlert,
    EventError,
    InputEvent,
    LabeledEvent,
    OutcomeEvent,
    PerformanceEstimate,
    PredictionEvent,
    RetrainRequest,
    WindowStart,
    utc_datetime,
)
from stream_mlops.join import DUPLICATE, Duplicate, JoinCounts, Match, PendingJoin
from stream_mlops.limits import EventLimitError, EventLimits
from stream_mlops.model_task import Task
from stream_mlops.offsets import OffsetSet
from stream_mlops.plain_data import FieldError, Fields, check_list, float_data
from stream_mlops.quality import QualityMonitor, RateTrack, budget_signals
from stream_mlops.reference import MIN_VALUES, ModelReference
from stream_mlops.signals import (
    ModelState,
    SignalTrack,
    error_value,
    estimated_error,
    infer_task,
    numeric,
)
from stream_mlops.slices import Slice, SliceField, Slices, signal_name, slice_value
from stream_mlops.snapshot import SnapshotError

__all__ = ["Engine", "EngineHolding", "EngineStats", "Output", "SnapshotError", "UnknownModelError"]

Output = DriftAlert | RetrainRequest | LabeledEvent | PerformanceEstimate

# How often (in events) idle model versions are looked for: a scan of the few
# (model, version) states, so every 10,000 events costs nothing measurable.
_SWEEP_EVERY: Final = 10_000
# Notices waiting for the edge to take them: one per model version that hit a
# counted limit; beyond this many untaken, only the counts go on.
_MAX_NOTICES: Final = 100


class UnknownModelError(EventError):
    """An event for a model the configuration does not list, with unknown_models=reject."""


@dataclass(slots=True)
class EngineStats:
    predictions: int = 0
    outcomes: int = 0
    joined: int = 0
    duplicates: int = 0
    expired_predictions: int = 0
    orphan_outcomes_expired: int = 0
    evicted: int = 0
    pending: int = 0
    alerts_by_signal: dict[str, int] = field(default_factory=dict)
    retrain_requests: int = 0
    suppressed_alerts: int = 0
    suppressed_retrain_requests: int = 0
    unscored_joins: int = 0
    #: model versions whose state was dropped after their traffic stopped
    versions_retired: int = 0
    #: signal values beyond +-signals.LARGEST_VALUE, taken at that size (or NaN, ignored)
    clamped_values: int = 0
    #: feature values not tracked: their model version had max_features_per_model already
    untracked_feature_values: int = 0
    #: events refused for their time (stream_mlops.event_time), and jumps let through
    refused_ahead_of_watermark: int = 0
    refused_ahead_of_wall_clock: int = 0
    watermark_jumps: int = 0
    #: predictions with each data-quality problem (stream_mlops.quality), by signal
    quality_problems: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class EngineHolding:
    """What an engine holds now, read without a pass over its detectors (metrics)."""

    pending_predictions: int
    pending_outcomes: int
    #: the latest event time the join has seen (epoch seconds); -inf before it starts
    watermark: float
    #: a copy of the join's counts (joined, expired, orphaned, evicted)
    join: JoinCounts
    #: signal tracks per model id, summed over its versions
    signals: dict[str, int]
    #: model versions with state
    model_versions: int


class Engine:
    """The drift engine for one input partition (or one replay)."""

    def __init__(
        self,
        settings: Settings,
        *,
        partition: int | None = None,
        labeled_events: bool = True,
        references: Mapping[str, ModelReference] | None = None,
    ) -> None:
        """``references``: the pinned references by model id (``reference`` set to a
        file or "champion": ``stream_mlops.reference.load_references``,
        ``stream_mlops.reference_window.champion_references``). A model with a section of its own
        and a pinned reference needs one here (ValueError otherwise)."""
        #: False skips building LabeledEvents (replay publishes none; saves time).
        self.labeled_events = labeled_events
        self.settings = settings
        self._references: Mapping[str, ModelReference] = references or {}
        for model_id in settings.models:
            if settings.model(model_id).pinned and model_id not in self._references:
                raise ValueError(
                    f"models.{model_id}.reference: pinned, but the engine was given "
                    "no reference events of the model"
                )
        self.partition = partition
        join = settings.join
        self._join = PendingJoin(
            join.ttl_seconds, join.max_pending, start_within=join.max_ahead_of_watermark_seconds
        )
        self._event_time = EventTimeBound(
            max_ahead=join.max_ahead_of_watermark_seconds,
            max_ahead_of_wall_clock=join.max_ahead_of_wall_clock_seconds,
            jump_after=join.jump_after_events,
        )
        self._policy = AlertPolicy(partition)
        self._models: dict[tuple[str, str], ModelState] = {}
        self._model_settings: dict[str, ModelSettings] = {}
        # Per model id with track_unwatched = false: which features have a
        # detector (ModelSettings.watched_features); none with it true.
        self._watched_features: dict[str, _FeatureWatch | None] = {}
        self._predictions = 0
        self._outcomes = 0
        self._unscored = 0
        self._alerts_by_signal: dict[str, int] = {}
        self._retrain_requests = 0
        self._versions_retired = 0
        # clamped_values and untracked_feature_values of the versions already retired
        self._retired_clamped = 0
        self._retired_untracked = 0
        self._retired_quality: dict[str, int] = {}
        self._limits = EventLimits(settings.limits)
        self._reject_unknown = settings.unknown_models == "reject"
        self._max_features = settings.limits.max_features_per_model
        self._notices: list[str] = []
        self._until_sweep = _SWEEP_EVERY
        # Drift alerts of the current event that ask for retraining, with where
        # their post-drift data starts (epoch, event_id), if known.
        self._retrain_reasons: list[tuple[DriftAlert, tuple[float, str] | None]] = []
        # Performance estimates of windows the current event closed.
        self._estimates: list[PerformanceEstimate] = []

    # -- the core -----------------------------------------------------------------

    def process(
        self, event: InputEvent, offset: int | None = None, *, now: float | None = None
    ) -> list[Output]:
        """Join, signals, detectors, controller for one event.

        Returns the LabeledEvent of a join, then the performance estimate of a
        window this prediction closed, then alerts, then a retrain request.
        ``now`` is the wall clock (epoch seconds) where the caller has one: an
        event too far ahead of it is refused (``stream_mlops.event_time``).
        An event the engine refuses raises an ``EventError`` (``UnknownModelError``,
        ``EventLimitError``, ``EventTimeError``) before the join or a detector
        has seen it.
        """
        if type(event) is PredictionEvent:
            if self._reject_unknown:
                self._check_model(event.model_id)
            self._limits.check_prediction(event)
            epoch = event.epoch
            self._event_time.check(epoch, watermark=self._join.watermark, now=now)
            found = self._models.get((event.model_id, event.model_version))
            if found is None:
                self._make_room(event, epoch)
            result = self._join.add_prediction(event, epoch, offset)
            self._predictions += 1
            if result is DUPLICATE:
                return []
            state = found or self._state(event.model_id, event.model_version, event)
            state.last_prediction_epoch = max(state.last_prediction_epoch, epoch)
            alerts = self._label_free(state, event, epoch)
        else:
            assert isinstance(event, OutcomeEvent)
            epoch = event.epoch
            result = self._accept_outcome(event, epoch, offset, now)
            if result is DUPLICATE:
                return []
            alerts = []
        self._until_sweep -= 1
        if self._until_sweep <= 0:
            self._until_sweep = _SWEEP_EVERY
            self._retire_idle_versions()
        outputs: list[Output] = []
        if type(result) is Match:
            prediction = result.prediction
            state = self._models.get(
                (prediction.model_id, prediction.model_version)
            ) or self._state(prediction.model_id, prediction.model_version, prediction)
            if self.labeled_events:
                outputs.append(LabeledEvent.joined(prediction, result.outcome))
            alerts += self._error(state, result, event, epoch)
        if self._estimates:
            outputs += self._estimates
            self._estimates = []
        if not alerts:
            return outputs
        outputs += alerts
        request = self._retrain(event, epoch)
        if request is not None:
            outputs.append(request)
        return outputs

    def _accept_outcome(
        self, event: OutcomeEvent, epoch: float, offset: int | None, now: float | None
    ) -> Match | Duplicate | None:
        """The checks an outcome passes before the join, then the join."""
        if event.model_id is not None and self._reject_unknown:
            self._check_model(event.model_id)
        self._limits.check_outcome(event)
        self._event_time.check(epoch, watermark=self._join.watermark, now=now)
        result = self._join.add_outcome(event, epoch, offset)
        self._outcomes += 1
        return result

    def _retire_idle_versions(self, epoch: float = -math.inf) -> None:
        """Drop the state of every model version whose traffic stopped.

        A version is retired once its last prediction is older than the join's
        time-to-live behind the watermark: no outcome can join it any more, so
        its detectors have nothing left to see. A model update therefore gets
        fresh detectors (new version, new state) and the old state goes when
        its traffic stops; a model that falls silent for longer than the TTL
        goes too (before, the newest version of every model ever seen stayed
        for good), and starts afresh if it comes back (a new reference, its
        first ``min_observations`` without alerts). ``epoch`` is the time of an
        accepted event the watermark is about to move to.
        """
        watermark = max(self._join.watermark, epoch)
        horizon = watermark - self.settings.join.ttl_seconds
        retired = [
            key for key, state in self._models.items() if state.last_prediction_epoch < horizon
        ]
        if not retired:
            return
        for key in retired:
            state = self._models.pop(key)
            self._versions_retired += 1
            self._retired_clamped += sum(t.clamped for t in state.tracks())
            self._retired_untracked += state.untracked
            _add_problems(self._retired_quality, state)
        remaining = {model_id for model_id, _ in self._models}
        gone = {model_id for model_id, _ in retired} - remaining
        self._policy.forget(
            retired,
            {m: self._settings(m).retrain_interval_seconds for m in gone},
            now=watermark,
        )
        for model_id in gone:
            self._model_settings.pop(model_id, None)
            self._watched_features.pop(model_id, None)

    def _make_room(self, event: PredictionEvent, epoch: float) -> None:
        """Room for the state of a new model version, or ``EventLimitError``.

        At ``[limits] max_models_per_task`` the versions idle at the event's
        time are retired first; a new version is refused only when all of them
        still serve.
        """
        limit = self.settings.limits.max_models_per_task
        if len(self._models) < limit:
            return
        self._retire_idle_versions(epoch)
        if len(self._models) >= limit:
            raise EventLimitError(
                f"model_version: {event.model_id} {event.model_version} is new, and this "
                f"engine keeps {limit} model versions already, [limits] "
                f"max_models_per_task={limit} (none idle for the join's TTL)"
            )

    def take_notices(self) -> list[str]:
        """One-line notices since the last call, for the edge to log (the core has no I/O).

        Each says once per model version what the engine counts instead of
        refusing (features beyond ``max_features_per_model``); the counts are
        in ``stats``.
        """
        notices, self._notices = self._notices, []
        return notices

    def _untracked(self, state: ModelState) -> None:
        state.untracked += 1
        if state.untracked == 1 and len(self._notices) < _MAX_NOTICES:
            limit = self.settings.limits.max_features_per_model
            self._notices.append(
                f"{state.model_id} {state.model_version}: more than {limit} features; the "
                "others are counted, not tracked ([limits] max_features_per_model)"
            )

    def _check_model(self, model_id: str) -> None:
        if self.settings.unknown_models == "reject" and model_id not in self.settings.models:
            raise UnknownModelError(f"model_id: {model_id!r} is not in the configuration")

    def _settings(self, model_id: str) -> ModelSettings:
        found = self._model_settings.get(model_id)
        if found is None:
            found = self._model_settings[model_id] = self.settings.model(model_id)
        return found

    def _features_watched(self, model_id: str) -> _FeatureWatch | None:
        """Which features of a model with track_unwatched = false get a track
        (None: track_unwatched, every feature does)."""
        try:
            return self._watched_features[model_id]
        except KeyError:
            model = self._settings(model_id)
            found = None
            if not model.track_unwatched:
                own, star = model.watched_features()
                # Without distribution checks a categorical feature has a track
                # only where a detector watches it, as a numeric one.
                some = star or any(own.values()) or model.distribution_checks
                found = _FeatureWatch(own, star, some)
            self._watched_features[model_id] = found
            return found

    def _state(self, model_id: str, version: str, first: PredictionEvent) -> ModelState:
        state = self._models.get((model_id, version))
        if state is None:
            task: Task = self._settings(model_id).task or infer_task(first)
            state = self._models[(model_id, version)] = ModelState(model_id, version, task)
            model = self._settings(model_id)
            budget = model.false_alarm_budget
            if model.slices:
                state.slices = self._new_slices(model, state, first)
                if budget is not None:
                    budget *= 1.0 - model.slice_budget_share
            if budget is not None:
                retrain, other = _detector_count(model, task, first)
                state.retrain_false_alarm_rate, state.false_alarm_rate = calibration.split(
                    budget,
                    retrain=retrain,
                    other=other,
                    retrain_share=model.retrain_budget_share,
                )
            state.score = self._track(model, "score", state)
            state.prediction = self._track(model, "prediction", state)
            if not model.track_unwatched:
                # Slices take their score signals where the model has a score track.
                if not state.score.detectors and not (
                    model.slices and "score" in model.slice_signals
                ):
                    state.score = None
                if not state.prediction.detectors:
                    state.prediction = None
            state.error = self._track(model, "error", state)
            # Not a label-free shift in alerts: without a detector or a retrain
            # on it, the estimated error would be computed for nothing.
            if task == "classification" and (
                model.detectors_for("estimated_error") or model.retrains_on("estimated_error")
            ):
                state.estimation = PerformanceEstimation(
                    calibration_events=model.estimate_calibration_events,
                    window=model.estimate_window,
                )
                calibrated = self._calibrate_on_reference(model, state)
                state.estimated_error = self._track(
                    model, "estimated_error", state, probabilities=calibrated
                )
            for signal in outcomes.signals_for(task):
                if model.detectors_for(signal):
                    state.outcomes[signal] = self._track(model, signal, state)
            if model.quality_checks:
                state.quality = QualityMonitor(
                    reference_observations=model.reference_observations,
                    margin=model.quality_range_margin,
                    max_features=self._max_features,
                )
                self._watch_quality(model, state)
                reference = self._reference(model, state)
                if reference is not None and len(reference.events) >= MIN_VALUES:
                    state.quality.pin(reference.features())
        return state

    def _reference(self, model: ModelSettings, state: ModelState) -> ModelReference | None:
        """The model's pinned reference (None: the stream's)."""
        if not model.pinned:
            return None
        found = self._references.get(state.model_id)
        if found is None and len(self._notices) < _MAX_NOTICES:
            source = model.reference
            named = source if isinstance(source, str) else source.file
            notice = (
                f"{state.model_id} {state.model_version}: reference {named} holds no "
                "events of this model: its signals take the stream's first values"
            )
            if notice not in self._notices:
                self._notices.append(notice)
        return found

    def _pin(self, track: SignalTrack, model: ModelSettings, state: ModelState) -> None:
        """Pin a new track to the model's reference, where it has enough of the signal."""
        reference = self._reference(model, state)
        if reference is None:
            return
        if track.categorical:
            strings = reference.categories(track.name.removeprefix("feature:"))
            if len(strings) >= MIN_VALUES:
                track.pin([float(track.code(value)) for value in strings])
            return
        estimator = None if state.estimation is None else state.estimation.estimator
        if track.name == "estimated_error" and estimator is not None:
            # Calibrated: the reference's values on the same scale as the stream's.
            values = [
                estimator.probability(e.prediction, e.score)
                for e in reference.of_version(state.model_version)
                if e.prediction is not None and e.score is not None
            ]
        else:
            values = reference.values(track.name, state.model_version, state.task)
        if len(values) >= MIN_VALUES:
            track.pin(values)

    def _new_slices(
        self, model: ModelSettings, state: ModelState, first: PredictionEvent
    ) -> Slices:
        """The slices of a new model version; their detectors share
        ``slice_budget_share`` of the budget, over every slice there can be."""
        rate = None
        if model.false_alarm_budget is not None:
            per_slice = sum(
                _slice_detectors(model, state.task, signal, first) for signal in model.slice_signals
            )
            rate = calibration.share(
                model.false_alarm_budget * model.slice_budget_share,
                len(model.slices) * (model.slice_top_k + 1) * per_slice,
            )
        slices = Slices(
            list(model.slices),
            top_k=model.slice_top_k,
            review_every=model.reference_observations,
            false_alarm_rate=rate,
        )
        self._bind(slices, model, state)
        return slices

    def _bind(self, slices: Slices, model: ModelSettings, state: ModelState) -> None:
        """How ``slices`` builds the signals of a newly tracked value (not state)."""

        def make(feature: str, value: str, head: int, start: int) -> Slice:
            found = Slice(value, head=head, start=start)
            for signal in model.slice_signals:
                if signal == "score" and state.score is None:
                    continue
                track = self._track(
                    model,
                    signal,
                    state,
                    name=signal_name(feature, value, signal),
                    rate=slices.false_alarm_rate,
                )
                setattr(found, signal, track)
            return found

        slices.make = make

    def _watch_quality(self, model: ModelSettings, state: ModelState) -> None:
        """How the quality signals of a model version get their detector: a
        rising-rate GLR bank for rare events, at the signal's budget share."""
        assert state.quality is not None

        def build(signal: str) -> list[Detector]:
            rate = (
                state.retrain_false_alarm_rate
                if model.retrains_on(signal)
                else state.false_alarm_rate
            )
            params: dict[str, Any] = {"model": "bernoulli", "direction": "up", "rare": True}
            if rate is not None:
                params["false_alarm_rate"] = rate
            return [GlrDetector(**params)]

        state.quality.build = build
        state.quality.kinds = model.quality_kinds()

    def _track(
        self,
        model: ModelSettings,
        signal: str,
        state: ModelState,
        *,
        categorical: bool = False,
        name: str | None = None,
        rate: float | None = None,
        probabilities: bool = False,
    ) -> SignalTrack:
        """``signal``'s track; ``name`` makes it a slice's (``rate``: its detectors' share).

        ``probabilities``: the values are calibrated probabilities of being
        wrong (``estimated_error`` once calibrated), which a GLR bank reads as
        Bernoulli rates, not as ranks.
        """
        task = state.task
        in_slice = name is not None
        specs = model.detectors_for(signal)
        if categorical:
            # Only the GLR bank (per-category rates) reads category codes.
            specs = [spec for spec in specs if spec.name == "glr"]
        # Label-free signals get the distribution test too (a feature whose
        # detectors are disabled does not); a categorical feature only it.
        label_free = not in_slice and (
            signal in ("score", "prediction") or signal.startswith("feature:")
        )
        wants_distribution = (
            categorical or signal == "score" or (signal.startswith("feature:") and bool(specs))
        )
        if model.distribution_checks and wants_distribution and not in_slice:
            spec = DetectorSpec.model_validate({"name": "distribution", "categorical": categorical})
            specs = [*specs, spec]
        retrains = not in_slice and model.retrains_on(signal)
        if not in_slice:
            rate = state.retrain_false_alarm_rate if retrains else state.false_alarm_rate
        binary = signal in outcomes.CLASS_SIGNALS or (
            signal in ("error", "outcome") and task == "classification"
        )
        built: list[Detector] = []
        for spec in specs:
            # Binary detectors only see 0/1: a regression's error or target is not.
            if (
                signal in ("error", "outcome")
                and task == "regression"
                and detectors.is_binary(spec.name)
            ):
                continue
            params = spec.params
            if spec.name == "glr":
                params = _glr_model(
                    params,
                    signal,
                    binary=binary or probabilities,
                    categorical=categorical,
                )
                # A slice's error rate is estimated from few errors: its upper
                # bound (glr, "Rare events") lets the CUSUMs start.
                rare = params.get("model") == "bernoulli" and params.get("direction") == "up"
                if in_slice and rare and "null" not in params:
                    params["null"] = "upper"
            if not model.rebases and spec.name in ("glr", "distribution"):
                # Compare with the same reference after an alert too.
                params.setdefault("keep_reference", True)
            if rate is not None:
                params = calibration.calibrated(spec.name, params, rate)
            built.append(detectors.build(spec.name, params))
        # Values outside [0, 1] reach detectors as ranks (see SignalTrack); so do
        # those in it where a GLR bank reads them as normal scores (all but 0/1
        # values and calibrated probabilities, which it reads as Bernoulli rates).
        bounded = signal in ("score", "estimated_error") or binary
        glr = any(spec.name == "glr" for spec in specs) and not probabilities
        track = SignalTrack(
            name or signal,
            built,
            reference_observations=model.reference_observations,
            recent_span=model.recent_span,
            marks=retrains,
            # Where a detector does not place the change it finds, the track does.
            history=any(type(d) is not GlrDetector for d in built),
            ranked=not bounded or (glr and not binary),
            binned=label_free,
            categorical=categorical,
        )
        if not in_slice:
            # Slices keep the stream's reference: a slice's own events in a
            # reference are too few to pin it.
            self._pin(track, model, state)
        return track

    # One flat function on purpose: it runs for every prediction and signal.
    def _label_free(  # noqa: PLR0912
        self, state: ModelState, event: PredictionEvent, epoch: float
    ) -> list[Output]:
        alerts: list[Output] = []
        event_id = event.event_id
        quality = state.quality
        if quality is not None:
            problems = quality.observe(event.features)
            if problems:
                for problem, detections in problems:
                    alerts += self._review(state, problem, detections, event, epoch)
        if event.score is not None and state.score is not None:
            fired = state.score.observe(event.score, event_id, epoch)
            if fired:
                alerts += self._review(state, state.score, fired, event, epoch)
        if event.score is not None and state.estimated_error is not None:
            expected = self._expected_error(state, event, event.score, epoch)
            fired = state.estimated_error.observe(expected, event_id, epoch)
            if fired:
                alerts += self._review(state, state.estimated_error, fired, event, epoch)
        kind = type(event.prediction)
        if (kind is float or kind is int or kind is bool) and state.prediction is not None:
            fired = state.prediction.observe(float(event.prediction), event_id, epoch)
            if fired:
                alerts += self._review(state, state.prediction, fired, event, epoch)
        tracks = state.features
        watch = self._features_watched(state.model_id)
        features = event.features.items() if watch is None or watch.some else ()
        for name, value in features:
            value_kind = type(value)
            if value_kind is float or value_kind is int or value_kind is bool:
                track = tracks.get(name)
                if track is None:
                    if name in state.categorical:
                        continue  # a string feature first: stays categorical
                    if watch is not None and not watch.own.get(name, watch.star):
                        continue  # track_unwatched = false, and no detector on it
                    model = self._settings(state.model_id)
                    if len(tracks) + len(state.categorical) >= self._max_features:
                        self._untracked(state)
                        continue
                    track = tracks[name] = self._track(model, f"feature:{name}", state)
                fired = track.observe(float(value), event_id, epoch)  # type: ignore[arg-type]
            elif value_kind is str:
                track = state.categorical.get(name) or self._categorical(state, name)
                if track is None:
                    continue
                fired = track.observe(float(track.code(value)), event_id, epoch)  # type: ignore[arg-type]
            else:
                continue
            if fired:
                alerts += self._review(state, track, fired, event, epoch)
        if state.slices is not None:
            alerts += self._slice_scores(state, state.slices, event, epoch)
        return alerts

    def _expected_error(
        self, state: ModelState, event: PredictionEvent, score: float, epoch: float
    ) -> float:
        """The prediction's probability of being wrong; its window's estimate
        goes out when it closes one."""
        estimator = None if state.estimation is None else state.estimation.estimator
        if estimator is None:
            # Until the warm-up calibrates them, the scores are taken as they are.
            return estimated_error(event.prediction, score)
        expected, estimate = estimator.observe(event.prediction, score, event.event_id, epoch)
        if estimate is not None:
            self._estimates.append(self._estimate(state, estimator, event))
        return expected

    def _estimate(
        self, state: ModelState, estimator: ErrorEstimator, last: PredictionEvent
    ) -> PerformanceEstimate:
        """The event of the estimate of the window ``last`` closed."""
        assert estimator.latest is not None
        start_epoch, start_id = estimator.window_start
        return PerformanceEstimate(
            estimate_id=content_id(
                state.model_id, state.model_version, self.partition, last.event_id, start_id
            ),
            model_id=state.model_id,
            model_version=state.model_version,
            ts=last.ts,
            window_start=WindowStart(ts=utc_datetime(start_epoch), event_id=start_id),
            last_event_id=last.event_id,
            partition=self.partition,
            estimate=estimator.latest,
        )

    def _calibrate_on_reference(self, model: ModelSettings, state: ModelState) -> bool:
        """A pinned reference's labeled, scored events of this version are the
        first of its calibration warm-up; True if they complete it."""
        reference = self._reference(model, state)
        if reference is None or state.estimation is None:
            return False
        estimation = state.estimation
        return any(
            estimation.learn(prediction, score, actual)
            for prediction, score, actual in reference.labeled(state.model_version)
        )

    def _calibrate(self, state: ModelState, match: Match) -> None:
        """A labeled prediction for the model version's calibration warm-up.

        Once the warm-up is complete the ``estimated_error`` signal starts
        afresh (a new track, a new reference) on calibrated probabilities: its
        values before were raw scores, on another scale.
        """
        prediction = match.prediction
        assert state.estimation is not None
        if prediction.score is None:
            return
        if state.estimation.learn(prediction.prediction, prediction.score, match.outcome.actual):
            model = self._settings(state.model_id)
            state.estimated_error = self._track(model, "estimated_error", state, probabilities=True)
            self._policy.forget_signals(state.model_id, state.model_version, ["estimated_error"])

    def _slice_scores(
        self, state: ModelState, slices: Slices, event: PredictionEvent, epoch: float
    ) -> list[Output]:
        """Count the prediction's slice values; each slice's score signal."""
        alerts: list[Output] = []
        features = event.features
        score = event.score
        for sliced in slices.fields:
            raw = features.get(sliced.name)
            value = slice_value(raw)
            if value is None:
                if raw is not None:
                    self._unsliced(state, sliced)
                continue
            sliced.hitters.add(value)
            sliced.sliced += 1
            found = sliced.route(value)
            if found is None:
                continue  # before the first review
            found.predictions += 1
            track = found.score
            if track is not None and score is not None:
                fired = track.observe(score, event.event_id, epoch)
                if fired:
                    alerts += self._review(
                        state, track, fired, event, epoch, in_slice=(sliced, found)
                    )
        dropped = slices.count_prediction()
        if dropped:
            self._policy.forget_signals(state.model_id, state.model_version, dropped)
        return alerts

    def _slice_errors(
        self, state: ModelState, value: float, match: Match, event: InputEvent, epoch: float
    ) -> list[Output]:
        """A joined prediction's error, on the error signal of each of its slices."""
        alerts: list[Output] = []
        prediction = match.prediction
        assert state.slices is not None
        for sliced in state.slices.fields:
            key = slice_value(prediction.features.get(sliced.name))
            found = None if key is None else sliced.route(key)
            track = None if found is None else found.error
            if track is None:
                continue
            fired = track.observe(value, prediction.event_id, match.prediction_epoch)
            if fired:
                alerts += self._review(state, track, fired, event, epoch, in_slice=(sliced, found))  # type: ignore[arg-type]
        return alerts

    def _unsliced(self, state: ModelState, field: SliceField) -> None:
        field.unsliced += 1
        if field.unsliced == 1 and len(self._notices) < _MAX_NOTICES:
            self._notices.append(
                f"{state.model_id} {state.model_version}: slice feature {field.name!r} has "
                "values that are not strings, bools or integers: those predictions are not "
                "sliced by it (counted)"
            )

    def _categorical(self, state: ModelState, name: str) -> SignalTrack | None:
        """A new categorical feature's track (None: not watched)."""
        model = self._settings(state.model_id)
        if name in state.features or not (
            model.distribution_checks or _watches_categories(model, f"feature:{name}")
        ):
            return None
        if len(state.features) + len(state.categorical) >= self._max_features:
            self._untracked(state)
            return None
        track = self._track(model, f"feature:{name}", state, categorical=True)
        state.categorical[name] = track
        return track

    def _error(
        self, state: ModelState, match: Match, event: InputEvent, epoch: float
    ) -> list[Output]:
        value = error_value(state.task, match.prediction.prediction, match.outcome.actual)
        if state.estimation is not None and state.estimation.estimator is None:
            self._calibrate(state, match)
        alerts = self._outcome_signals(state, match, value, event, epoch) if state.outcomes else []
        track = state.error
        if value is None or track is None:
            self._unscored += 1
            return alerts
        # The error belongs to the prediction: marks carry its id and event time,
        # where a retrainer finds the labeled event.
        prediction = match.prediction
        fired = track.observe(value, prediction.event_id, match.prediction_epoch)
        if fired:
            alerts += self._review(state, track, fired, event, epoch)
        if state.slices is not None:
            alerts += self._slice_errors(state, value, match, event, epoch)
        return alerts

    def _outcome_signals(
        self,
        state: ModelState,
        match: Match,
        error: float | None,
        event: InputEvent,
        epoch: float,
    ) -> list[Output]:
        """The outcome itself, then the error of its actual class (stream_mlops.outcomes)."""
        actual = outcomes.outcome_value(state.task, match.outcome.actual)
        if actual is None:
            return []
        alerts: list[Output] = []
        event_id, at = match.prediction.event_id, match.prediction_epoch
        track = state.outcomes.get("outcome")
        if track is not None:
            fired = track.observe(actual, event_id, at)
            if fired:
                alerts += self._review(state, track, fired, event, epoch)
        if error is not None and state.task == "classification":
            track = state.outcomes.get(outcomes.class_signal(actual))
            if track is not None:
                fired = track.observe(error, event_id, at)
                if fired:
                    alerts += self._review(state, track, fired, event, epoch)
        return alerts

    def _review(
        self,
        state: ModelState,
        track: SignalTrack | RateTrack,
        fired: list[tuple[Detector, Detection]],
        event: InputEvent,
        epoch: float,
        *,
        in_slice: tuple[SliceField, Slice] | None = None,
    ) -> list[Output]:
        model = self._settings(state.model_id)
        alerts: list[Output] = []
        for detector, found in fired:
            # Means either side of the located change point, not a window cut.
            detection, effect = track.located(detector, found)
            alert = self._policy.review(
                model,
                model_id=state.model_id,
                model_version=state.model_version,
                track=track,
                detector=detector,
                detection=detection,
                effect_size=effect,
                event_id=event.event_id,
                ts=event.ts,
                shifts=lambda: [t.shift() for t in state.label_free()],
            )
            if alert is None:
                continue
            if in_slice is not None:
                stats = alert.stats.model_copy(update={"slice": in_slice[0].stats(in_slice[1])})
                alert = alert.model_copy(update={"stats": stats})
            estimator = None if state.estimation is None else state.estimation.estimator
            if estimator is not None and estimator.latest is not None:
                stats = alert.stats.model_copy(update={"estimate": estimator.latest})
                alert = alert.model_copy(update={"stats": stats})
            self._alerts_by_signal[track.name] = self._alerts_by_signal.get(track.name, 0) + 1
            alerts.append(alert)
            if detection.severity == "drift":
                if model.rebases:
                    track.rebase()
                if model.retrains_on(track.name):
                    # The located change: the GLR bank's own, or CUSUM's over the track's values.
                    post_change = detection.window_after
                    start = track.window_start(post_change)
                    self._retrain_reasons.append((alert, start))
        return alerts

    def _retrain(self, event: InputEvent, epoch: float) -> Output | None:
        if not self._retrain_reasons:
            return None
        reasons = [alert for alert, _ in self._retrain_reasons]
        known = [start for _, start in self._retrain_reasons if start is not None]
        self._retrain_reasons = []
        if known:
            epoch_start, start_id = min(known)
            window = WindowStart(ts=utc_datetime(epoch_start), event_id=start_id)
        else:
            window = WindowStart(ts=event.ts, event_id=event.event_id)
        # Alerts of one event belong to one model version.
        request = self._policy.retrain(
            self._settings(reasons[0].model_id), reasons, window, epoch=epoch, ts=event.ts
        )
        if request is not None:
            self._retrain_requests += 1
        return request

    # -- statistics ---------------------------------------------------------------

    @property
    def stats(self) -> EngineStats:
        counts = self._join.counts
        return EngineStats(
            predictions=self._predictions,
            outcomes=self._outcomes,
            joined=counts.joined,
            duplicates=counts.duplicate_predictions + counts.duplicate_outcomes,
            expired_predictions=counts.expired_predictions,
            orphan_outcomes_expired=counts.orphan_outcomes_expired,
            evicted=counts.evicted_predictions + counts.evicted_outcomes,
            pending=self._join.pending_predictions + self._join.pending_outcomes,
            alerts_by_signal=dict(sorted(self._alerts_by_signal.items())),
            retrain_requests=self._retrain_requests,
            suppressed_alerts=self._policy.suppressed,
            suppressed_retrain_requests=self._policy.retrain_suppressed,
            unscored_joins=self._unscored,
            versions_retired=self._versions_retired,
            clamped_values=self._retired_clamped
            + sum(t.clamped for state in self._models.values() for t in state.tracks()),
            untracked_feature_values=self._retired_untracked
            + sum(state.untracked for state in self._models.values()),
            **self._event_time.counts.as_dict(),
            quality_problems=self._quality_problems(),
        )

    def holding(self) -> EngineHolding:
        """Pending entries, watermark, join counts and tracked signals: cheap
        enough for every checkpoint (``stats`` also sums over every track)."""
        join = self._join
        signals: dict[str, int] = {}
        for state in self._models.values():
            signals[state.model_id] = signals.get(state.model_id, 0) + len(state.tracks())
        return EngineHolding(
            pending_predictions=join.pending_predictions,
            pending_outcomes=join.pending_outcomes,
            watermark=join.watermark,
            join=replace(join.counts),
            signals=signals,
            model_versions=len(self._models),
        )

    def _quality_problems(self) -> dict[str, int]:
        counts = dict(self._retired_quality)
        for state in self._models.values():
            _add_problems(counts, state)
        return dict(sorted(counts.items()))

    # -- checkpoints --------------------------------------------------------------

    def pending_offsets(self, kind: Literal["prediction", "outcome"]) -> OffsetSet:
        """Source offsets of the entries still pending (live, not a copy)."""
        if kind == "prediction":
            return self._join.prediction_offsets
        return self._join.outcome_offsets

    def snapshot(self) -> bytes:
        """Detectors, controller, counters, watermark, pending offsets; no pending entries.

        Plain data (``stream_mlops.snapshot``; "Snapshot format" in
        docs/runtime.md): restoring one runs no code from the record. Not
        included: the join's memory of already-joined ids (it can be as large as
        the pending entries). After a restore, a duplicate of an event joined
        before the snapshot is not recognised as one.
        """
        with snapshot.collector_paused():
            return self._snapshot()

    def _snapshot(self) -> bytes:
        join = self._join
        return snapshot.encode(
            {
                "river": snapshot.river_version(),
                "counters": {
                    "predictions": self._predictions,
                    "outcomes": self._outcomes,
                    "unscored_joins": self._unscored,
                    "retrain_requests": self._retrain_requests,
                    "versions_retired": self._versions_retired,
                    "alerts_by_signal": dict(self._alerts_by_signal),
                    "retired_clamped": self._retired_clamped,
                    "retired_untracked": self._retired_untracked,
                    "retired_quality": dict(self._retired_quality),
                },
                "event_time": {
                    "run": self._event_time.run,
                    **self._event_time.counts.as_dict(),
                },
                "join": {
                    "watermark": float_data(join.watermark),
                    "first_epoch": None
                    if join.first_epoch is None
                    else float_data(join.first_epoch),
                    "counts": join.counts.as_dict(),
                    "prediction_offsets": _offsets_data(join.prediction_offsets),
                    "outcome_offsets": _offsets_data(join.outcome_offsets),
                },
                "policy": self._policy.state(),
                "models": [state.state() for state in self._models.values()],
                # Only when a model has slices: snapshots without stay as they were.
                **self._slices_data(),
            }
        )

    def _slices_data(self) -> dict[str, Any]:
        found = [
            [state.model_id, state.model_version, state.slices.state()]
            for state in self._models.values()
            if state.slices is not None
        ]
        return {"slices": found} if found else {}

    def _load_slices(self, document: Fields) -> None:
        if "slices" not in document.keys():  # noqa: SIM118 (Fields)
            return
        limit = self.settings.limits.max_models_per_task
        for i, entry in enumerate(document.items("slices", max_len=limit)):
            at = f"{document.at('slices')}[{i}]"
            parts = check_list(entry, at)
            if len(parts) != 3 or type(parts[0]) is not str or type(parts[1]) is not str:
                raise FieldError(f"{at}: expected [model_id, model_version, slices]")
            state = self._models.get((parts[0], parts[1]))
            if state is None or state.slices is not None:
                raise FieldError(f"{at}: no model version {parts[0]} {parts[1]} to slice")
            model = self._settings(state.model_id)
            found = Slices.from_state(Fields(parts[2], f"{at}[2]"))
            if [f.name for f in found.fields] != list(model.slices):
                raise FieldError(f"{at}[2]: slice features differ from the configuration's")
            self._bind(found, model, state)
            state.slices = found

    @classmethod
    def restore(
        cls,
        settings: Settings,
        data: bytes,
        *,
        partition: int | None = None,
        labeled_events: bool = True,
        references: Mapping[str, ModelReference] | None = None,
    ) -> Engine:
        """An engine in the state of ``snapshot()``; pending entries come from
        ``restore_pending``. ``references`` as for a new engine: the model
        versions in the snapshot keep the reference they were pinned to, new
        ones are pinned to these.

        Any bytes that are not such a snapshot (another format or river version,
        corrupt, forged) raise ``SnapshotError`` naming ``partition`` and the
        cause, and nothing else: never another exception, never a reset.
        """
        try:
            with snapshot.collector_paused():
                document = snapshot.decode(data)
                engine = cls(
                    settings,
                    partition=partition,
                    labeled_events=labeled_events,
                    references=references,
                )
                engine._load(document)
        except snapshot.NEVER_CAUGHT:
            raise
        except ValueError as exc:  # FieldError, SnapshotError, orjson's, zlib's...
            raise SnapshotError(str(exc), partition=partition) from None
        except BaseException as exc:  # a bug or a native panic: still only a SnapshotError
            raise SnapshotError(f"{type(exc).__name__}: {exc}", partition=partition) from exc
        return engine

    def _load(self, document: Fields) -> None:
        counters = document.child("counters")
        self._predictions = counters.integer("predictions", low=0)
        self._outcomes = counters.integer("outcomes", low=0)
        self._unscored = counters.integer("unscored_joins", low=0)
        self._retrain_requests = counters.integer("retrain_requests", low=0)
        self._versions_retired = counters.integer("versions_retired", low=0)
        alerts = counters.child("alerts_by_signal")
        self._alerts_by_signal = {name: alerts.integer(name, low=0) for name in alerts.keys()}  # noqa: SIM118 (Fields)
        self._retired_clamped = counters.integer("retired_clamped", low=0)
        self._retired_untracked = counters.integer("retired_untracked", low=0)
        quality = counters.child("retired_quality")
        self._retired_quality = {
            name: quality.integer(name, low=0)
            for name in quality.keys()  # noqa: SIM118 (Fields)
        }
        quality.done()
        counters.done()
        event_time = document.child("event_time")
        bound = self._event_time
        bound.run = event_time.integer("run", low=0, high=bound.jump_after)
        bound.counts = EventTimeCounts(
            **{f.name: event_time.integer(f.name, low=0) for f in fields(EventTimeCounts)}
        )
        event_time.done()
        join_fields = document.child("join")
        join = self._join
        join.watermark = join_fields.number("watermark")
        join.first_epoch = join_fields.optional_number("first_epoch")
        counts = join_fields.child("counts")
        join.counts = JoinCounts(
            **{f.name: counts.integer(f.name, low=0) for f in fields(JoinCounts)}
        )
        counts.done()
        # pending_offsets() answers with the restored sets at once, so the edge
        # knows where to re-read from; restore_pending re-adds the same offsets.
        join.prediction_offsets = _offsets(join_fields, "prediction_offsets")
        join.outcome_offsets = _offsets(join_fields, "outcome_offsets")
        join_fields.done()
        self._policy = AlertPolicy.from_state(document.child("policy"), self.partition)
        for i, model in enumerate(document.items("models")):
            state = ModelState.from_state(Fields(model, f"models[{i}]"))
            key = (state.model_id, state.model_version)
            if key in self._models:
                raise FieldError(f"models[{i}]: {key} appears twice")
            self._models[key] = state
            if state.quality is not None:
                self._watch_quality(self._settings(state.model_id), state)
        self._load_slices(document)
        document.done()

    def restore_pending(self, event: InputEvent, offset: int) -> None:
        """Re-insert one entry pending at the snapshot: no outputs, counters or detectors."""
        if type(event) is PredictionEvent:
            self._join.restore_prediction(event, event.epoch, offset)
        else:
            assert isinstance(event, OutcomeEvent)
            self._join.restore_outcome(event, event.epoch, offset)


def _add_problems(counts: dict[str, int], state: ModelState) -> None:
    if state.quality is not None:
        for name, track in state.quality.tracks.items():
            counts[name] = counts.get(name, 0) + track.problems


def _offsets_data(offsets: OffsetSet) -> str:
    return base64.b64encode(offsets.to_bytes()).decode("ascii")


def _offsets(fields: Fields, key: str) -> OffsetSet:
    text = fields.string(key)
    try:
        return OffsetSet.from_bytes(base64.b64decode(text, validate=True))
    except ValueError as exc:  # binascii.Error is one
        raise FieldError(f"{fields.at(key)}: {exc}") from None


def _glr_model(
    params: dict[str, Any], signal: str, *, binary: bool, categorical: bool
) -> dict[str, Any]:
    """The GLR bank's model for a signal, unless the configuration names one.

    A classifier's error, and its miss and false-positive rates, are 0/1 rates
    that matter when they rise; a regression's absolute error matters when it
    grows (half-normal scores of its ranks); the estimated error when it
    rises (once calibrated, ``binary``: the Bernoulli rate of its probabilities);
    a classifier's positive rate both ways; categorical features by their
    categories; every other signal (ranks, a regression's target) both ways,
    mean and spread.
    """
    out = dict(params)
    if "model" in out:
        return out
    if categorical:
        out["model"] = "categorical"
    elif signal == "error" or signal in outcomes.CLASS_SIGNALS:
        out["model"] = "bernoulli" if binary else "halfnormal"
        out.setdefault("direction", "up")
    elif signal == "outcome" and binary:
        out["model"] = "bernoulli"  # the positive rate, both ways
    elif signal == "estimated_error" and binary:
        # Calibrated probabilities of being wrong: the Bernoulli likelihood
        # ratio on them drifts as it would on the 0/1 errors themselves, and
        # stays calibrated (glr, "bernoulli"). Ranks would turn the small steps
        # between calibrated levels into large shifts.
        out["model"] = "bernoulli"
        out.setdefault("direction", "up")
    else:
        out["model"] = "normal"
        if signal == "estimated_error":
            out.setdefault("direction", "up")
    return out


def _slice_detectors(model: ModelSettings, task: Task, signal: str, first: PredictionEvent) -> int:
    """The detectors of one slice signal (as ``Engine._track`` builds them)."""
    if signal == "score" and first.score is None:
        return 0
    specs = model.detectors_for(signal)
    if signal == "error" and task == "regression":
        return sum(1 for spec in specs if not detectors.is_binary(spec.name))
    return len(specs)


class _FeatureWatch(NamedTuple):
    """The features that get a track with track_unwatched = false."""

    #: features with a detectors entry of their own: whether it has a detector
    own: dict[str, bool]
    #: whether feature:* has a detector (the features without an entry)
    star: bool
    #: whether any feature may get a track (numeric or categorical)
    some: bool


def _watches_categories(model: ModelSettings, signal: str) -> bool:
    return any(spec.name == "glr" for spec in model.detectors_for(signal))


def _detector_count(model: ModelSettings, task: Task, first: PredictionEvent) -> tuple[int, int]:
    """How many detectors the budget is split across, from the model's first
    prediction: (those of signals that retrain, the others).

    Features that first appear later get the same share (so the budget holds as
    long as the first prediction carries the usual features).
    """
    distribution = 1 if model.distribution_checks else 0
    counts = [0, 0]

    def add(signal: str, detectors_: int) -> None:
        counts[0 if model.retrains_on(signal) else 1] += detectors_

    if model.quality_checks:
        for signal in budget_signals(first.features, model.quality_kinds()):
            add(signal, 1)
    add("error", len(model.detectors_for("error")))
    for signal in outcomes.signals_for(task):
        add(signal, len(model.detectors_for(signal)))
    add("prediction", len(model.detectors_for("prediction")))
    if first.score is not None:
        add("score", len(model.detectors_for("score")) + distribution)
        if task == "classification":
            add("estimated_error", len(model.detectors_for("estimated_error")))
    for name, value in first.features.items():
        signal = f"feature:{name}"
        if numeric(value) is not None:
            specs = len(model.detectors_for(signal))
            add(signal, specs + (distribution if specs else 0))
        elif type(value) is str:
            add(signal, distribution + (1 if _watches_categories(model, signal) else 0))
    return counts[0], counts[1]
