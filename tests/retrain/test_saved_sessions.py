"""The retrainer's snapshot as plain data: sessions rebuilt from the registry and the
labeled events, refused on any mismatch, and never a pickle (no Kafka here)."""

from __future__ import annotations

import dataclasses
import pickle
import random
import shutil
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_mlops import snapshot
from stream_mlops.config import Settings
from stream_mlops.engine import Engine
from stream_mlops.kafka.state import TaskSnapshot
from stream_mlops.model_task import Task
from stream_mlops.plain_data import FieldError, Fields
from stream_mlops.registry import ModelRegistry
from stream_mlops.retrain import LabeledExample, ModelSpec, RetrainOrder
from stream_mlops.retrain.retrainer import Acted, Retrainer, RetrainStateError, RetrainTask
from stream_mlops.retrain.saved_sessions import (
    LabeledLog,
    SavedSession,
    SessionOutcome,
    encode_sessions,
    field_data,
    read_field,
    read_sessions,
    session_data,
)
from stream_mlops.snapshot import SnapshotError, StateError
from tests.retrain.conftest import bootstrap_fraud_champion
from tests.retrain.test_retrainer import (
    POLICY,
    PRE,
    REQUESTS,
    START_TS,
    drifted,
    labeled_log,
    request,
)
from tests.retrain.test_retrainer import settings as retrainer_settings
from tests.test_snapshot import _Plant

EXAMPLES = drifted(1500)


@pytest.fixture(scope="module")
def champion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bootstrap_fraud_champion(tmp_path_factory.mktemp("saved") / "registry", START_TS)


@pytest.fixture
def registry(tmp_path: Path, champion_dir: Path) -> ModelRegistry:
    shutil.copytree(champion_dir, tmp_path / "registry")
    return ModelRegistry(tmp_path / "registry")


def core(registry: ModelRegistry, **retrainer: object) -> Retrainer:
    return Retrainer(retrainer_settings(**retrainer), registry, POLICY)


def run(
    registry: ModelRegistry,
    *,
    restart_at: int | None = None,
    request_at: int = PRE,
    examples: list[LabeledExample] = EXAMPLES,
    window_ts: float = START_TS + PRE,
    **retrainer: object,
) -> tuple[Acted, RetrainTask]:
    """Labeled events, the request after ``request_at`` of them, the rest until a
    decision; snapshot and restore (a new process) before event ``restart_at``."""
    retrain = core(registry, **retrainer)
    task = retrain.fresh(0)
    for i, example in enumerate(examples):
        if i == restart_at:
            state = retrain.snapshot(task)
            retrain = core(registry, **retrainer)
            task = retrain.restore(0, state, labeled_log(examples[:i]))
        if i == request_at:
            retrain.request(task, request(window_ts=window_ts), REQUESTS)
        if retrain.has_actions(task):
            break
        retrain.labeled(task, example)
    if restart_at == len(examples):  # decided, committed, then the process died
        state = retrain.snapshot(task)
        retrain = core(registry, **retrainer)
        task = retrain.restore(0, state, labeled_log(examples))
    return retrain.act(task), task


def document(state: bytes) -> dict[str, Any]:
    assert state[:8] == struct.pack(">6sH", snapshot.MAGIC, snapshot.FORMAT)
    return orjson.loads(zlib.decompress(state[8:]))  # type: ignore[no-any-return]


def running_task(registry: ModelRegistry, events: int = PRE + 150) -> tuple[Retrainer, RetrainTask]:
    retrain = core(registry)
    task = retrain.fresh(0)
    for example in EXAMPLES[:PRE]:
        retrain.labeled(task, example)
    retrain.request(task, request(), REQUESTS)
    for example in EXAMPLES[PRE:events]:
        retrain.labeled(task, example)
    return retrain, task


# -- what a snapshot holds ---------------------------------------------------------


def test_the_snapshot_holds_each_session_as_plain_data(registry: ModelRegistry) -> None:
    retrain, task = running_task(registry)
    state = retrain.snapshot(task)
    (session,) = document(state)["sessions"]
    request = {f.name for f in dataclasses.fields(RetrainOrder)}  # the whole order, by name
    assert {k: session[k] for k in ("model_id", "model_version", "request_id")} == {
        "model_id": "fraud",
        "model_version": "v1",
        "request_id": "r1",
    }
    assert session["window_start_ts"] == START_TS + PRE
    assert session["window_start_event_id"] == "first-post"
    assert {k: v for k, v in session.items() if k not in request} == {
        "parent_version": "v1",
        "spec": {"task": "classification", "learning_rate": 0.05, "l2": 0.0},
        "policy": {
            "alpha": 0.01,
            "min_events": 200,
            "check_every": 100,
            "max_events": 600,
            "min_relative_improvement": 0.05,
            "warmup_events": 0,
        },
        "feed_from": 0,  # the buffer's first event of the model
        "status": "running",
        "learned_events": 150,
        "events_digest": task.sessions["fraud"].window.events_digest,
        "content_hash": None,
    }
    assert len(state) < 1_000, "the models are rebuilt, not carried"


def test_a_session_offered_nothing_yet_has_no_feed_from(registry: ModelRegistry) -> None:
    retrain = core(registry, buffer_events=0)
    task = retrain.fresh(0)
    retrain.request(task, request(), REQUESTS)
    assert document(retrain.snapshot(task))["sessions"][0]["feed_from"] is None
    retrain.labeled(task, EXAMPLES[PRE + 5])
    assert document(retrain.snapshot(task))["sessions"][0]["feed_from"] == PRE + 5


# -- restore equals the uninterrupted run --------------------------------------------


@pytest.mark.parametrize(
    "restart_at",
    [
        pytest.param(PRE, id="before-the-request"),
        pytest.param(PRE + 1, id="just-after-the-request"),
        pytest.param(PRE + 150, id="mid-session"),
        pytest.param(len(EXAMPLES), id="decided-not-acted-on"),
    ],
)
def test_a_restored_session_decides_as_the_uninterrupted_one(
    registry: ModelRegistry, tmp_path: Path, champion_dir: Path, restart_at: int
) -> None:
    other = tmp_path / "uninterrupted"
    shutil.copytree(champion_dir, other)
    expected, _ = run(ModelRegistry(other))
    acted, _ = run(registry, restart_at=restart_at)
    (update,) = acted.updates
    assert acted.updates == expected.updates
    assert (update.model_version, update.parent_version) == ("v2", "v1")
    assert (
        registry.get("fraud", "v2").content_hash
        == ModelRegistry(other).get("fraud", "v2").content_hash
    )


@pytest.mark.parametrize("buffer_events", [0, 100])
def test_a_short_or_no_buffer_restores_the_same_session(
    registry: ModelRegistry, tmp_path: Path, champion_dir: Path, buffer_events: int
) -> None:
    """The window starts at the first event, but the session was offered only what
    the buffer still held at the request: a restore offers it exactly that, not the
    older events still in the topic."""
    other = tmp_path / "uninterrupted"
    shutil.copytree(champion_dir, other)
    expected, _ = run(ModelRegistry(other), window_ts=START_TS, buffer_events=buffer_events)
    acted, _ = run(registry, restart_at=PRE + 250, window_ts=START_TS, buffer_events=buffer_events)
    assert acted.updates and acted.updates == expected.updates
    assert acted.notices == expected.notices
    (span,) = registry.get("fraud", "v2").training_window.ranges
    assert span.first_offset == PRE - buffer_events


def test_a_retired_session_restores_retired(registry: ModelRegistry) -> None:
    stationary = drifted(900, flipped=False)
    acted, _ = run(registry, restart_at=len(stationary), examples=stationary)
    assert acted.updates == ()
    assert [n.event for n in acted.notices] == ["retired"]


# -- refused, never reset --------------------------------------------------------------


def test_labeled_events_gone_from_the_topic_are_an_error(registry: ModelRegistry) -> None:
    retrain, task = running_task(registry)
    state = retrain.snapshot(task)
    log = labeled_log(EXAMPLES[: PRE + 150], start=10)
    with pytest.raises(
        RetrainStateError, match=r"partition 3: .*from offset 0 on, but they are gone"
    ):
        core(registry).restore(3, state, log)
    with pytest.raises(SnapshotError, match="retention must outlast the longest session"):
        core(registry).restore(3, state, log)


def test_a_version_missing_from_the_registry_is_an_error(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    retrain, task = running_task(registry)
    state = retrain.snapshot(task)
    empty = ModelRegistry(tmp_path / "empty")
    with pytest.raises(RetrainStateError, match="challenges version 'v1', which the registry"):
        Retrainer(retrainer_settings(), empty, POLICY).restore(
            0, state, labeled_log(EXAMPLES[: PRE + 150])
        )


def test_a_session_that_rebuilds_differently_is_an_error(registry: ModelRegistry) -> None:
    retrain, task = running_task(registry)
    log = EXAMPLES[: PRE + 150]
    state = retrain.snapshot(task)
    # An event missing from the topic (a gap the snapshot did not know about).
    holed = [e for e in log if e.source.offset != PRE + 40]
    holed_log = LabeledLog(
        0, PRE + 150, lambda first: [e for e in holed if e.source.offset >= first]
    )
    with pytest.raises(RetrainStateError, match="rebuilt from the registry and labeled-events"):
        core(registry).restore(0, state, holed_log)
    # A doctored record: another count, digest, status or hash than the rebuild gives.
    for field, value in [
        ("learned_events", 151),
        ("events_digest", "00" * 32),
        ("status", "promoted"),
        ("content_hash", "ab" * 32),
        ("feed_from", PRE + 10),
    ]:
        doc = document(state)
        doc["sessions"][0][field] = value
        with pytest.raises(RetrainStateError, match="partition 0: the session of model 'fraud'"):
            core(registry).restore(0, snapshot.encode(doc), labeled_log(log))
    assert core(registry).restore(0, state, labeled_log(log)).sessions["fraud"].window == (
        task.sessions["fraud"].window
    )


def test_a_doctored_field_names_itself(registry: ModelRegistry) -> None:
    retrain, task = running_task(registry)
    state = retrain.snapshot(task)
    for path, value, message in [
        (
            ("policy", "min_events"),
            200.0,
            r"sessions\[0\]\.policy\.min_events: expected an integer",
        ),
        (("spec", "task"), "ranking", r"sessions\[0\]\.spec\.task: 'ranking' is not one of"),
        (("parent_version",), "v0", r"sessions\[0\]\.parent_version: expected null"),
        (("feed_from",), -1, r"sessions\[0\]\.feed_from: expected an integer >= 0"),
    ]:
        doc = document(state)
        target = doc["sessions"][0]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(RetrainStateError, match=message):
            core(registry).restore(0, snapshot.encode(doc), labeled_log(EXAMPLES[: PRE + 150]))
    doc = document(state)
    doc["sessions"].append(doc["sessions"][0])
    with pytest.raises(RetrainStateError, match="a second session of model 'fraud'"):
        core(registry).restore(0, snapshot.encode(doc), labeled_log(EXAMPLES[: PRE + 150]))


def test_a_planted_pickle_is_refused_and_runs_nothing(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    target = tmp_path / "owned"
    payload = pickle.dumps({"format": 1, "sessions": _Plant(target)})
    header = struct.Struct(">6sH")
    forged = {
        "the pickled format": payload,
        "format 4 header, pickle body": header.pack(b"SMLOPS", 4) + payload,
        "format 4, zlib of a pickle": header.pack(b"SMLOPS", 4) + zlib.compress(payload),
    }
    for what, state in forged.items():
        with pytest.raises(RetrainStateError, match="partition 1") as info:
            core(registry).restore(1, state, labeled_log([]))
        assert isinstance(info.value, StateError)
        assert not target.exists(), what
        # In an envelope with a valid checksum (anyone can compute one), too.
        record = TaskSnapshot("g", 1, {"labeled-events": 0}, state).to_bytes()
        parsed = TaskSnapshot.from_bytes(record, partition=1)
        with pytest.raises(SnapshotError):
            core(registry).restore(1, parsed.engine_state, labeled_log([]))
        assert not target.exists(), what
    pickle.loads(payload)  # the control: what restore did before
    assert target.exists()


def test_every_bit_flip_of_a_retrainer_record_is_refused(registry: ModelRegistry) -> None:
    retrain, task = running_task(registry)
    state = retrain.snapshot(task)
    record = bytearray(TaskSnapshot("g", 0, {"labeled-events": PRE + 150}, state).to_bytes())
    for i in range(len(record)):
        for bit in range(8):
            record[i] ^= 1 << bit
            with pytest.raises(SnapshotError):
                TaskSnapshot.from_bytes(bytes(record))
            record[i] ^= 1 << bit
    assert TaskSnapshot.from_bytes(bytes(record)).engine_state == state


def test_bit_flips_below_the_envelope_give_snapshot_errors_only(registry: ModelRegistry) -> None:
    retrain, task = running_task(registry, events=PRE + 20)
    data = bytearray(retrain.snapshot(task))
    log = labeled_log(EXAMPLES[: PRE + 20])
    rng = random.Random(0)
    refused = 0
    for _ in range(100):
        i, bit = rng.randrange(len(data)), rng.randrange(8)
        data[i] ^= 1 << bit
        try:
            core(registry).restore(0, bytes(data), log)
        except SnapshotError:
            refused += 1
        data[i] ^= 1 << bit
    assert refused >= 95, refused


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_snapshot_error(data: bytes) -> None:
    retrain = Retrainer(retrainer_settings(), ModelRegistry(tempfile.mkdtemp()), POLICY)
    for state in (data, b"SMLOPS\x00\x04" + data, b"SMLOPS\x00\x04" + zlib.compress(data)):
        with pytest.raises(RetrainStateError):
            retrain.restore(0, state, labeled_log([]))


def test_another_snapshot_format_is_refused(registry: ModelRegistry) -> None:
    retrain, task = running_task(registry, events=PRE + 5)
    state = retrain.snapshot(task)
    for version in (3, 4, 5, 7):
        other = state[:6] + version.to_bytes(2, "big") + state[8:]
        with pytest.raises(RetrainStateError, match=f"format {version} is not supported"):
            core(registry).restore(0, other, labeled_log(EXAMPLES[: PRE + 5]))


def test_an_engine_snapshot_is_not_a_retrainer_snapshot(registry: ModelRegistry) -> None:
    with pytest.raises(RetrainStateError, match="sessions: missing"):
        core(registry).restore(0, Engine(Settings(), partition=0).snapshot(), labeled_log([]))


@pytest.mark.parametrize(
    ("kind", "value", "bad"),
    [
        ("str", "r-1", 1),
        ("int", 7, "7"),
        ("float", 1.8e9, "1.8e9"),
        ("float | None", None, True),
        ("float | None", 2.5, [2.5]),
        ("tuple[str, ...]", ("alert-1", "alert-2"), ["alert-1", 2]),
    ],
)
def test_every_kind_of_request_field_round_trips_and_is_checked(
    kind: str, value: object, bad: object
) -> None:
    data = orjson.loads(orjson.dumps({"x": field_data(kind, value)}))
    assert read_field(Fields(data, "sessions[0]"), "x", kind) == value
    with pytest.raises(FieldError, match=r"sessions\[0\]\.x"):
        read_field(Fields({"x": bad}, "sessions[0]"), "x", kind)


def test_the_whole_request_survives_a_snapshot(registry: ModelRegistry) -> None:
    """Every field of the order (what the experiment log keeps of a request, too)."""
    examples = {"str": "x-9", "int": 3, "float": 1.5e9, "float | None": 1.7e9}
    order = RetrainOrder(
        **{  # type: ignore[arg-type]
            f.name: examples.get(str(f.type), ("alert-7",))
            for f in dataclasses.fields(RetrainOrder)
        }
    )
    saved = SavedSession(
        order,
        None,
        ModelSpec.for_task(Task.CLASSIFICATION),
        POLICY,
        None,
        SessionOutcome("running", 0, None, None),
    )
    assert read_sessions(encode_sessions([session_data(saved)])) == [saved]
