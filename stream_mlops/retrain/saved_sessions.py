"""The retrainer's snapshot: its open sessions as plain data, rebuilt on restore.

A session is deterministic in what it is given: the same request, parent
artifact, spec, policy and labeled events in the same order give the same
decision and the same artifact bytes (``stream_mlops.retrain.session``). So a
snapshot does not carry the models: per open session it holds what started
it (the whole order, the parent version or none for a fresh challenger, the
spec and policy) and ``feed_from``, the ``labeled-events`` offset of the first
event it was offered. A restore builds the session again from the registry's
artifact and offers it every labeled event from ``feed_from`` up to the
committed offset, in offset order, as the live retrainer did (the buffered
events at the request, then each new one).

The snapshot also records what the session had become (its status, how many
events it learned, the digest of their ids, and a promoted challenger's
content hash); the rebuilt session must match it, or the restore fails with a
``SnapshotError``. So do a registry without the version, and ``labeled-events``
records deleted by retention before ``feed_from``: the topic's retention must
outlast the longest session (``docs/runtime.md``).

The bytes are ``stream_mlops.snapshot``'s (versioned header, zlib JSON with the
river version) and the fields are read back with ``plain_data.Fields``: a
forged record can be refused, never run.

>>> from stream_mlops.model_task import Task
>>> from stream_mlops.retrain.inputs import RetrainOrder
>>> saved = SavedSession(
...     RetrainOrder("fraud", "v1", 1.8e9, "e-1", "r1"), "v1",
...     ModelSpec.for_task(Task.CLASSIFICATION), PromotionPolicy(), feed_from=300,
...     outcome=SessionOutcome("running", 150, "ab12", None))
>>> read_sessions(encode_sessions([session_data(saved)])) == [saved]
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from stream_mlops import snapshot
from stream_mlops.model_task import Task
from stream_mlops.plain_data import FieldError, Fields, float_data, kind_of
from stream_mlops.retrain.inputs import LabeledExample, RetrainOrder
from stream_mlops.retrain.models import ModelSpec
from stream_mlops.retrain.promotion import PromotionPolicy
from stream_mlops.retrain.session import Promoted, RetrainSession

__all__ = [
    "LabeledLog",
    "SavedSession",
    "SessionOutcome",
    "encode_sessions",
    "outcome_of",
    "read_sessions",
    "saved_session",
    "session_data",
]

_STATUSES = ("running", "promoted", "retired")


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    """What a session had become; a rebuilt one must come out the same."""

    status: Literal["running", "promoted", "retired"]
    learned_events: int
    #: the training window's digest of the learned event ids (None before the first)
    events_digest: str | None
    #: a promoted challenger's artifact hash
    content_hash: str | None


@dataclass(frozen=True, slots=True)
class SavedSession:
    """One open session as the snapshot holds it."""

    order: RetrainOrder
    #: the version the challenger continues from; None for a fresh challenger
    parent_version: str | None
    spec: ModelSpec
    policy: PromotionPolicy
    #: the labeled-events offset of the first event offered to it; None before any
    feed_from: int | None
    outcome: SessionOutcome


@dataclass(frozen=True, slots=True)
class LabeledLog:
    """The task's ``labeled-events`` partition, as a restore re-reads it."""

    #: the first offset still in the topic (retention deletes older ones)
    start: int
    #: the committed offset: where the task resumes
    end: int
    #: the events from an offset up to ``end``, in offset order (records that do
    #: not decode are left out: they were dead-lettered when first consumed)
    read: Callable[[int], Iterable[LabeledExample]]


def outcome_of(session: RetrainSession) -> SessionOutcome:
    decision = session.decision
    window = session.window
    return SessionOutcome(
        status=decision.status,
        learned_events=window.event_count,
        events_digest=window.events_digest,
        content_hash=decision.content_hash if isinstance(decision, Promoted) else None,
    )


def saved_session(session: RetrainSession) -> SavedSession:
    return SavedSession(
        order=session.order,
        parent_version=session.parent_version,
        spec=session.spec,
        policy=session.policy,
        feed_from=session.feed_from,
        outcome=outcome_of(session),
    )


def session_data(saved: SavedSession) -> dict[str, object]:
    """A saved session as plain data (``read_sessions`` reads it back)."""
    order, outcome = saved.order, saved.outcome
    return {
        **{
            f.name: field_data(str(f.type), getattr(order, f.name))
            for f in dataclasses.fields(RetrainOrder)
        },
        "parent_version": saved.parent_version,
        "spec": {
            "task": saved.spec.task.value,
            "learning_rate": float(saved.spec.learning_rate),
            "l2": float(saved.spec.l2),
        },
        "policy": {
            f.name: _policy_value(f, getattr(saved.policy, f.name))
            for f in dataclasses.fields(PromotionPolicy)
        },
        "feed_from": saved.feed_from,
        "status": outcome.status,
        "learned_events": outcome.learned_events,
        "events_digest": outcome.events_digest,
        "content_hash": outcome.content_hash,
    }


def encode_sessions(sessions: Sequence[dict[str, object]]) -> bytes:
    """The snapshot bytes of a task's sessions (each from ``session_data``), in task order."""
    return snapshot.encode({"river": snapshot.river_version(), "sessions": list(sessions)})


def read_sessions(data: bytes) -> list[SavedSession]:
    """The sessions of ``encode_sessions``; ValueError naming the cause and field otherwise."""
    document = snapshot.decode(data, "retrainer")
    sessions = [
        _read_session(Fields(item, f"sessions[{i}]"))
        for i, item in enumerate(document.items("sessions"))
    ]
    document.done()
    seen: set[str] = set()
    for i, saved in enumerate(sessions):
        if saved.order.model_id in seen:
            raise FieldError(f"sessions[{i}]: a second session of model {saved.order.model_id!r}")
        seen.add(saved.order.model_id)
    return sessions


def _read_session(fields: Fields) -> SavedSession:
    request: dict[str, Any] = {
        f.name: read_field(fields, f.name, str(f.type)) for f in dataclasses.fields(RetrainOrder)
    }
    order = RetrainOrder(**request)
    parent = fields.raw("parent_version")
    if parent is not None and parent != order.model_version:
        raise FieldError(
            f"{fields.at('parent_version')}: expected null (a fresh challenger) or the "
            f"challenged version {order.model_version!r}"
        )
    parent_version = None if parent is None else order.model_version
    spec_fields = fields.child("spec")
    spec = ModelSpec(
        task=Task(spec_fields.string("task", choices=[t.value for t in Task])),
        learning_rate=spec_fields.number("learning_rate"),
        l2=spec_fields.number("l2"),
    )
    spec_fields.done()
    policy_fields = fields.child("policy")
    values: dict[str, Any] = {
        f.name: policy_fields.integer(f.name) if _is_int(f) else policy_fields.number(f.name)
        for f in dataclasses.fields(PromotionPolicy)
    }
    policy = PromotionPolicy(**values)
    policy_fields.done()
    feed_from = fields.optional_integer("feed_from", low=0)
    status = fields.string("status", choices=_STATUSES)
    outcome = SessionOutcome(
        status=status,  # type: ignore[arg-type]  # checked against _STATUSES
        learned_events=fields.integer("learned_events", low=0),
        events_digest=_optional_string(fields, "events_digest"),
        content_hash=_optional_string(fields, "content_hash"),
    )
    fields.done()
    return SavedSession(order, parent_version, spec, policy, feed_from, outcome)


# The request is written whole, field by field, so what the experiment log
# keeps of it (alerts, times) survives a restore too: these are the field types
# a RetrainOrder may have.
_ORDER_KINDS: Final = ("str", "float", "float | None", "int", "tuple[str, ...]")


def field_data(kind: str, value: object) -> object:
    """A request field of type ``kind`` (its annotation) as plain data.

    >>> field_data("float | None", None), field_data("tuple[str, ...]", ("a-1",))
    (None, ['a-1'])
    """
    if kind in {"str", "int"}:
        return value
    if kind in ("float", "float | None"):
        return None if value is None else float_data(float(value))  # type: ignore[arg-type]
    if kind == "tuple[str, ...]":
        return list(value)  # type: ignore[call-overload]
    raise TypeError(
        f"a request field of type {kind} has no plain-data form (one of {_ORDER_KINDS})"
    )


def read_field(fields: Fields, key: str, kind: str) -> object:
    """``field_data``'s value read back with the checks of its ``kind``."""
    if kind == "str":
        return fields.string(key)
    if kind == "int":
        return fields.integer(key)
    if kind == "float":
        return fields.number(key)
    if kind == "float | None":
        return fields.optional_number(key)
    if kind == "tuple[str, ...]":
        items = fields.items(key)
        for i, item in enumerate(items):
            if type(item) is not str:
                raise FieldError(f"{fields.at(key)}[{i}]: expected a string, got {kind_of(item)}")
        return tuple(items)
    raise TypeError(
        f"a request field of type {kind} has no plain-data form (one of {_ORDER_KINDS})"
    )


def _optional_string(fields: Fields, key: str) -> str | None:
    value = fields.raw(key)
    if value is not None and type(value) is not str:
        raise FieldError(f"{fields.at(key)}: expected a string or null")
    return value


def _is_int(f: dataclasses.Field[object]) -> bool:
    return f.type in ("int", int)


def _policy_value(f: dataclasses.Field[object], value: object) -> int | float | str:
    # A policy from the config may hold 0 where a float is meant; the reader
    # checks each field by its type, so write each as its type.
    if _is_int(f):
        return int(value)  # type: ignore[call-overload,no-any-return]
    return float_data(float(value))  # type: ignore[arg-type]
