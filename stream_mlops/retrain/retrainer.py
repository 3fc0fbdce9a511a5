"""The retraining service's decisions, pure: requests and labeled events in, model updates out.

Like ``stream_mlops.engine.Engine`` for the drift engine: no Kafka, no clock,
no logging. The Kafka edge (``stream_mlops.kafka.retrainer_service``) decodes
records, feeds them here one task (partition) at a time, and sends what comes
back: dead-letter reasons (``Rejected``), what to log (``Notice``) and, when
acting on a decision, ``ModelUpdate`` events. The registry is reached only
through ``RegistryView``.

One retrain, from a request to a model update:

1. ``request``: a request for a model without a champion, or for a version the
   registry does not know, is rejected; one for a version that is no longer the
   champion is stale and skipped; one for a model with a session already open
   on the partition is a duplicate and skipped. Otherwise a ``RetrainSession``
   starts, challenging the champion, and is first fed the buffered labeled
   events of its model (see "Why a buffer").
2. ``labeled``: an event whose label the model's task cannot learn is
   rejected; every other one is buffered and fed to its model's open session.
3. When a session decides (``Step.decided``), the edge commits it: the task's
   snapshot holds the decided session before anything is done about it.
4. ``act``, after that commit and in the next transaction: a promotion is
   registered and made the champion (``record_promotion``, idempotent) and
   becomes a ``ModelUpdate``; a retirement is counted. Either way the session
   is kept in the registry's experiment log (``record_experiment``, keyed by
   the request id, so a repeat writes nothing). The session leaves the task,
   so the transaction's snapshot no longer holds it.

Why this order gives exactly one version and one visible ``ModelUpdate``
across kill -9: a restarted retrainer restores the sessions of its last commit
and re-reads what followed. A crash before step 3 commits loses nothing but a
decision that is recomputed from the same state and records. A crash between
the registry writes and the commit of step 4 finds the decided session, with
its artifact, in the snapshot: registering it again returns the same version,
its experiment is found already recorded (or is recorded now, if the crash
came before), and the ``ModelUpdate`` of the aborted transaction was never
visible.

Why a buffer, not a seek by time: the request's ``window_start`` is an event
time, and labeled events reach their topic in outcome order, with broker
timestamps that say when the engine joined them, not when they happened, so
``offsets_for_times`` cannot find where a window begins. Each task keeps the
labeled events of the last ``[retrainer] buffer_events`` offsets instead; a
restore rebuilds it by re-reading the same offset range
(``restore(..., buffered=...)``), so a restarted retrainer holds the buffer it
held at its last commit.

Sessions are deterministic in the events they observe, and each records the
source offsets it learned (its training window): that is what ``reproduce``
re-reads, and what lets a snapshot carry a session as data (its order, parent,
spec, policy and the first offset it was offered) instead of a pickle: a
restore builds it again from the registry and offers it the same labeled
events (``stream_mlops.retrain.saved_sessions``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType

from stream_mlops.config import Settings
from stream_mlops.events import ModelUpdate, RetrainRequest, TrainingRange, utc_datetime
from stream_mlops.registry.exceptions import RegistryError, VersionNotFoundError
from stream_mlops.registry.experiments import Experiment
from stream_mlops.registry.records import ModelVersion
from stream_mlops.retrain.exceptions import RetrainError, RetrainInputError
from stream_mlops.retrain.inputs import LabeledExample, RetrainOrder, SourcePosition
from stream_mlops.retrain.models import ModelSpec, prepare_label
from stream_mlops.retrain.promotion import PromotionPolicy
from stream_mlops.retrain.registration import decision_ts, experiment_of, record_promotion
from stream_mlops.retrain.registry_view import RegistryView
from stream_mlops.retrain.saved_sessions import (
    LabeledLog,
    SavedSession,
    encode_sessions,
    outcome_of,
    read_sessions,
    saved_session,
    session_data,
)
from stream_mlops.retrain.session import Promoted, Retired, RetrainSession
from stream_mlops.snapshot import NEVER_CAUGHT, SnapshotError

__all__ = [
    "Acted",
    "Notice",
    "Rejected",
    "RetrainStateError",
    "RetrainTask",
    "Retrainer",
    "RetrainerStats",
    "Step",
    "retrain_order",
]


class RetrainStateError(SnapshotError, RetrainError):
    """A retrainer snapshot that cannot be restored: which partition's, and why.

    Never a silent reset: the bytes are not a retrainer snapshot, a session
    cannot be rebuilt (its version left the registry, its labeled events left
    the topic), or the rebuilt session is not the one the snapshot recorded.
    """


@dataclass(frozen=True, slots=True)
class Notice:
    """Something to log: an event name and its fields (``warning`` for the warning level)."""

    event: str
    fields: dict[str, object]
    warning: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input that goes to the dead letters: a short ``cause``, a readable ``error``."""

    cause: str
    error: str


@dataclass(frozen=True, slots=True)
class Step:
    """What one input did."""

    rejected: Rejected | None = None
    notices: tuple[Notice, ...] = ()
    #: a session reached its decision: commit it before acting on it
    decided: bool = False


_NOTHING = Step()
_DECIDED = Step(decided=True)


@dataclass(frozen=True, slots=True)
class Acted:
    """What acting on a task's decisions produced."""

    updates: tuple[ModelUpdate, ...]
    notices: tuple[Notice, ...]


@dataclass(slots=True)
class RetrainerStats:
    """Totals since the retrainer started (plain ints: safe to read from another thread)."""

    requests: int = 0
    stale_requests: int = 0
    sessions_started: int = 0
    promoted: int = 0
    retired: int = 0


@dataclass(slots=True)
class RetrainTask:
    """The retrainer's state for partition *p* of its input topics."""

    partition: int
    #: open sessions by model id; a decided one stays until ``act`` carries it out
    sessions: dict[str, RetrainSession] = field(default_factory=dict)
    #: the labeled events of the last ``buffer_events`` offsets (not snapshotted: re-read)
    buffer: deque[LabeledExample] = field(default_factory=deque)
    #: the buffer no longer reaches back to the first offset it was fed
    truncated: bool = False


def retrain_order(request: RetrainRequest) -> RetrainOrder:
    """The core's form of a retrain request (times as epoch seconds)."""
    return RetrainOrder(
        model_id=request.model_id,
        model_version=request.model_version,
        window_start_ts=request.window_start.ts.timestamp(),
        window_start_event_id=request.window_start.event_id,
        request_id=request.request_id,
        reason_alert_ids=tuple(request.reason_alert_ids),
        requested_ts=request.ts.timestamp(),
    )


class Retrainer:
    """The retrainer's decisions for every task of one process."""

    def __init__(self, settings: Settings, registry: RegistryView, policy: PromotionPolicy) -> None:
        self.settings = settings
        self.registry = registry
        self.policy = policy
        self.buffer_events = settings.retrainer.buffer_events
        self.fresh_challenger = settings.retrainer.fresh_challenger
        self.stats = RetrainerStats()
        self._specs: dict[str, ModelSpec | None] = {}
        # Replaced whole, never changed in place: another thread (metrics) may
        # read it while act() runs.
        self._latest: Mapping[str, Experiment] = MappingProxyType({})

    # -- tasks ------------------------------------------------------------------

    def fresh(self, partition: int) -> RetrainTask:
        return RetrainTask(partition)

    def snapshot(self, task: RetrainTask) -> bytes:
        """The open sessions as plain data (the models are rebuilt on restore, the
        buffer re-read)."""
        return encode_sessions(
            [session_data(saved_session(session)) for session in task.sessions.values()]
        )

    def restore(self, partition: int, state: bytes, labeled: LabeledLog) -> RetrainTask:
        """The task of ``snapshot``: its sessions rebuilt, its buffer refilled.

        Each session starts again from the registry and is offered the labeled
        events from its ``feed_from`` on; the buffer holds those of the last
        ``buffer_events`` offsets before ``labeled.end`` (events it rejected
        when they were live are left out again). Raises ``RetrainStateError``
        (a ``SnapshotError``) naming the partition and the cause.
        """
        try:
            saved = read_sessions(state)
        except NEVER_CAUGHT:
            raise
        except ValueError as exc:  # FieldError, orjson's, zlib's...
            raise RetrainStateError(str(exc), partition=partition) from None
        except BaseException as exc:  # a bug: still only a RetrainStateError
            raise RetrainStateError(f"{type(exc).__name__}: {exc}", partition=partition) from exc
        return self._rebuild(partition, saved, labeled)

    def _rebuild(
        self, partition: int, saved: list[SavedSession], labeled: LabeledLog
    ) -> RetrainTask:
        buffer_from = max(labeled.start, labeled.end - self.buffer_events)
        task = RetrainTask(partition, truncated=buffer_from > labeled.start)
        offered: dict[str, tuple[int, RetrainSession]] = {}
        for entry in saved:
            session = self._reopen(partition, entry)
            task.sessions[entry.order.model_id] = session
            if entry.feed_from is None:
                continue
            if not labeled.start <= entry.feed_from <= labeled.end:
                where = (
                    f"they are gone: the topic now begins at offset {labeled.start} "
                    "(labeled-events retention must outlast the longest session)"
                    if entry.feed_from < labeled.start
                    else f"the task resumes at offset {labeled.end}"
                )
                raise RetrainStateError(
                    f"the session of model {entry.order.model_id!r} learns labeled events "
                    f"from offset {entry.feed_from} on, but {where}",
                    partition=partition,
                )
            offered[entry.order.model_id] = (entry.feed_from, session)
        start = min([buffer_from, *(offset for offset, _ in offered.values())])
        if start < labeled.end:
            for example in labeled.read(start):
                offset = example.source.offset
                if offset >= labeled.end:
                    break
                if self._unlearnable(example) is not None:
                    continue  # rejected when it was live: neither buffered nor offered
                if offset >= buffer_from:
                    task.buffer.append(example)
                target = offered.get(example.model_id)
                if target is not None and offset >= target[0]:
                    try:
                        target[1].observe(example)
                    except RetrainInputError:
                        continue  # skipped when it was live, too
        for entry in saved:
            rebuilt = outcome_of(task.sessions[entry.order.model_id])
            if rebuilt != entry.outcome:
                raise RetrainStateError(
                    f"the session of model {entry.order.model_id!r} (request "
                    f"{entry.order.request_id!r}) rebuilt from the registry and labeled-events "
                    f"is {rebuilt}, the snapshot recorded {entry.outcome}",
                    partition=partition,
                )
        return task

    def _reopen(self, partition: int, entry: SavedSession) -> RetrainSession:
        """A saved session as it started: the registry's artifact, nothing learned."""
        try:
            return RetrainSession.from_registry(
                self.registry,
                entry.order,
                spec=entry.spec,
                policy=entry.policy,
                fresh=entry.parent_version is None,
            )
        except (RegistryError, ValueError) as exc:
            order = entry.order
            raise RetrainStateError(
                f"the session of model {order.model_id!r} challenges version "
                f"{order.model_version!r}, which the registry cannot give: {exc}",
                partition=partition,
            ) from None

    # -- inputs -------------------------------------------------------------------

    def labeled(self, task: RetrainTask, example: LabeledExample) -> Step:
        """Buffer a labeled event and feed it to its model's open session."""
        rejected = self._unlearnable(example)
        if rejected is not None:
            return Step(rejected)
        self._buffer(task, example)
        session = task.sessions.get(example.model_id)
        if session is None or session.finished:
            return _NOTHING
        try:
            session.observe(example)
        except RetrainInputError as exc:
            return Step(Rejected("unlearnable", str(exc)))
        return _DECIDED if session.finished else _NOTHING

    def request(self, task: RetrainTask, request: RetrainRequest, source: SourcePosition) -> Step:
        """Start a session for a request, or say why not."""
        self.stats.requests += 1
        model_id = request.model_id
        notices = [
            Notice(
                "request.received",
                {
                    "request_id": request.request_id,
                    "model_id": model_id,
                    "model_version": request.model_version,
                    "window_start_ts": request.window_start.ts.isoformat(),
                    "window_start_event_id": request.window_start.event_id,
                    "partition": source.partition,
                    "offset": source.offset,
                },
            )
        ]
        champion = self._champion(model_id)
        if champion is None:
            return Step(
                Rejected(
                    "unknown_model",
                    f"unknown model {model_id!r}: no champion in the registry "
                    "(register one with: stream-mlops models bootstrap)",
                ),
                tuple(notices),
            )
        if request.model_version != champion.version:
            try:
                self.registry.get(model_id, request.model_version)
            except VersionNotFoundError:
                error = f"unknown version {request.model_version!r} of model {model_id!r}"
                return Step(Rejected("unknown_version", error), tuple(notices))
            self.stats.stale_requests += 1
            notices.append(
                Notice(
                    "request.stale",
                    {
                        "request_id": request.request_id,
                        "model_id": model_id,
                        "model_version": request.model_version,
                        "champion_version": champion.version,
                    },
                )
            )
            return Step(notices=tuple(notices))
        running = task.sessions.get(model_id)
        if running is not None:
            notices.append(
                Notice(
                    "request.duplicate",
                    {
                        "request_id": request.request_id,
                        "model_id": model_id,
                        "running_request_id": running.order.request_id,
                    },
                )
            )
            return Step(notices=tuple(notices))
        spec = self.spec_of(model_id, refresh=True)
        if spec is None:
            error = (
                f"model {model_id!r} {champion.version}: the registry records no model spec "
                "and the config names no task for it"
            )
            return Step(Rejected("no_spec", error), tuple(notices))
        session = RetrainSession.from_registry(
            self.registry,
            retrain_order(request),
            spec=spec,
            policy=self.policy,
            fresh=self.fresh_challenger,
        )
        task.sessions[model_id] = session
        self.stats.sessions_started += 1
        fed = self._replay_buffer(task, session, notices)
        notices.append(
            Notice(
                "session.started",
                {
                    "request_id": request.request_id,
                    "model_id": model_id,
                    "champion_version": champion.version,
                    "fresh": self.fresh_challenger,
                    "buffered_events": fed,
                    "buffer_oldest_offset": task.buffer[0].source.offset if task.buffer else None,
                },
            )
        )
        truncation = self._truncation(task, session)
        if truncation is not None:
            notices.append(truncation)
        return Step(notices=tuple(notices), decided=session.finished)

    def _unlearnable(self, example: LabeledExample) -> Rejected | None:
        spec = self.spec_of(example.model_id)
        if spec is None:
            return None  # no champion yet: any label may do for the model it gets
        try:
            prepare_label(spec.task, example.actual)
        except RetrainInputError as exc:
            return Rejected("unlearnable", str(exc))
        return None

    def _buffer(self, task: RetrainTask, example: LabeledExample) -> None:
        limit = self.buffer_events
        if limit == 0:
            return
        buffer = task.buffer
        buffer.append(example)
        oldest_kept = example.source.offset + 1 - limit
        while buffer and buffer[0].source.offset < oldest_kept:
            buffer.popleft()
            task.truncated = True

    def _replay_buffer(
        self, task: RetrainTask, session: RetrainSession, notices: list[Notice]
    ) -> int:
        """Feed the buffered events of the session's model; returns how many it was fed."""
        model_id = session.order.model_id
        fed = 0
        for example in task.buffer:
            if session.finished:
                break
            if example.model_id != model_id:
                continue
            fed += 1
            try:
                session.observe(example)
            except RetrainInputError as exc:
                # Only possible for events buffered before the model's spec was
                # known; the live path rejects such events.
                notices.append(
                    Notice(
                        "session.skipped_event",
                        {
                            "model_id": model_id,
                            "event_id": example.event_id,
                            "offset": example.source.offset,
                            "error": str(exc),
                        },
                        warning=True,
                    )
                )
        return fed

    def _truncation(self, task: RetrainTask, session: RetrainSession) -> Notice | None:
        """A warning when the buffer has dropped events that may belong to the window."""
        if not task.truncated or not task.buffer:
            return None
        order = session.order
        oldest = next((e for e in task.buffer if e.model_id == order.model_id), None)
        if oldest is not None and oldest.ts <= order.window_start_ts:
            return None  # the buffer reaches back to the window's start
        return Notice(
            "session.window_truncated",
            {
                "request_id": order.request_id,
                "model_id": order.model_id,
                "buffer_events": self.buffer_events,
                "oldest_buffered_ts": oldest.ts if oldest is not None else None,
                "window_start_ts": order.window_start_ts,
            },
            warning=True,
        )

    # -- the registry -------------------------------------------------------------

    def _champion(self, model_id: str) -> ModelVersion | None:
        try:
            return self.registry.champion(model_id)
        except (RegistryError, ValueError):
            return None  # e.g. a model id the registry refuses as a directory name

    def spec_of(self, model_id: str, *, refresh: bool = False) -> ModelSpec | None:
        """The model's spec: from its champion's recorded config, else the configured task.

        Cached per model; a request refreshes it (the champion may have changed).
        """
        if not refresh and model_id in self._specs:
            return self._specs[model_id]
        spec: ModelSpec | None = None
        champion = self._champion(model_id)
        recorded = champion.config.get("model") if champion is not None else None
        if isinstance(recorded, dict):
            spec = ModelSpec.from_config(recorded)
        elif champion is not None:
            task = self.settings.model(model_id).task
            spec = ModelSpec.for_task(task) if task is not None else None
        self._specs[model_id] = spec
        return spec

    # -- decisions ----------------------------------------------------------------

    def has_actions(self, task: RetrainTask) -> bool:
        """A session of the task has decided (and the decision is committed, the
        caller makes sure): ``act`` carries it out."""
        return any(session.finished for session in task.sessions.values())

    def act(self, task: RetrainTask) -> Acted:
        """Register and promote the winners, retire the others, keep every decided
        session in the experiment log; the sessions leave the task."""
        updates: list[ModelUpdate] = []
        notices: list[Notice] = []
        for model_id, session in list(task.sessions.items()):
            decision = session.decision
            if isinstance(decision, Promoted):
                update, notice = self._promote(session, decision)
                updates.append(update)
                notices.append(notice)
            elif isinstance(decision, Retired):
                self._record(experiment_of(session))
                self.stats.retired += 1
                notices.append(
                    Notice(
                        "retired",
                        {
                            "model_id": model_id,
                            "champion_version": decision.champion_version,
                            "request_id": session.order.request_id,
                            "reason": decision.reason,
                            "scored_events": decision.verdict.events,
                            "retired_total": self.stats.retired,
                        },
                    )
                )
            else:
                continue  # still running
            del task.sessions[model_id]
        return Acted(tuple(updates), tuple(notices))

    def _record(self, experiment: Experiment) -> None:
        kept = self.registry.record_experiment(experiment)
        self._latest = MappingProxyType({**self._latest, kept.model_id: kept})

    def _promote(self, session: RetrainSession, promoted: Promoted) -> tuple[ModelUpdate, Notice]:
        window = promoted.training_window
        ts = decision_ts(window)
        version = record_promotion(self.registry, promoted, ts=ts)
        self._record(experiment_of(session, version))
        self._specs.pop(promoted.model_id, None)
        self.stats.promoted += 1
        update = ModelUpdate(
            model_id=promoted.model_id,
            model_version=version.version,
            parent_version=promoted.parent_version,
            ts=utc_datetime(ts),
            metrics={**promoted.metrics, "champion_version": promoted.champion_version},
            # end_offset is exclusive, as Kafka's end offsets are.
            training_window=[
                TrainingRange(
                    topic=r.topic,
                    partition=r.partition,
                    start_offset=r.first_offset,
                    end_offset=r.last_offset + 1,
                )
                for r in window.ranges
            ],
        )
        notice = Notice(
            "promotion",
            {
                "model_id": promoted.model_id,
                "request_id": session.order.request_id,
                "parent_version": promoted.parent_version,
                "champion_version": promoted.champion_version,
                "version": version.version,
                "content_hash": version.content_hash,
                "metrics": promoted.metrics,
                "events": window.event_count,
            },
        )
        return update, notice

    # -- reports ------------------------------------------------------------------

    def describe(self, tasks: Iterable[RetrainTask]) -> dict[str, object]:
        """Open sessions by model with their status, and buffered events."""
        sessions: dict[str, str] = {}
        buffered = 0
        for task in tasks:
            buffered += len(task.buffer)
            for model_id, session in task.sessions.items():
                sessions[model_id] = session.decision.status
        return {"sessions": sessions, "buffered": buffered}

    def totals(self) -> dict[str, object]:
        return dict(asdict(self.stats))

    def latest_experiments(self) -> Mapping[str, Experiment]:
        """By model, the experiment of the newest decision this retrainer acted on.

        Only this process's decisions (the registry's ``experiments`` holds all
        of them). Safe to read from another thread: the mapping is replaced
        whole, never changed in place.
        """
        return self._latest

    def latest_experiment(self, model_id: str) -> Experiment | None:
        """The model's entry of ``latest_experiments``, None before its first decision."""
        return self._latest.get(model_id)
