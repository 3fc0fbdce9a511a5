"""The retrainer's decisions, without Kafka: requests, labeled events, acting on decisions."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

from stream_mlops.config import Settings, parse_settings
from stream_mlops.events import RetrainRequest, WindowStart, utc_datetime
from stream_mlops.model_task import Task
from stream_mlops.registry import ModelRegistry
from stream_mlops.retrain import (
    LabeledExample,
    ModelSpec,
    PromotionPolicy,
    SourcePosition,
)
from stream_mlops.retrain.retrainer import (
    Rejected,
    Retrainer,
    RetrainStateError,
    RetrainTask,
    Step,
)
from stream_mlops.retrain.saved_sessions import LabeledLog
from stream_mlops.snapshot import SnapshotError
from tests.retrain.conftest import bootstrap_fraud_champion, register_champion
from tests.retrain.streams import fraud_stream

START_TS = 1_800_000_000.0
PRE = 300  # pre-change events before the request's window
POLICY = PromotionPolicy(min_events=200, check_every=100, max_events=600)
REQUESTS = SourcePosition("retrain-requests", 0, 7)


def settings(**retrainer: object) -> Settings:
    return parse_settings({"retrainer": retrainer})


@pytest.fixture(scope="module")
def champion_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry whose champion v1 was trained on the pre-change concept (built once)."""
    return bootstrap_fraud_champion(tmp_path_factory.mktemp("champion") / "registry", START_TS)


def request(
    model_id: str = "fraud", version: str = "v1", window_ts: float = START_TS + PRE, rid: str = "r1"
) -> RetrainRequest:
    return RetrainRequest(
        request_id=rid,
        model_id=model_id,
        model_version=version,
        reason_alert_ids=["alert-1"],
        window_start=WindowStart(ts=utc_datetime(window_ts), event_id="first-post"),
        ts=utc_datetime(window_ts + 600),
    )


def drifted(post: int, *, flipped: bool = True) -> list[LabeledExample]:
    """Pre-change events, then ``post`` events from the window start on."""
    pre = fraud_stream(2, PRE, start_ts=START_TS)
    after = fraud_stream(3, post, start_ts=START_TS, start_offset=PRE, flipped=flipped)
    return [*pre, *after]


def labeled_log(examples: list[LabeledExample], *, start: int = 0) -> LabeledLog:
    """A labeled-events partition holding ``examples`` (offsets ascending), resumed after them."""
    end = examples[-1].source.offset + 1 if examples else start
    return LabeledLog(
        start=start, end=end, read=lambda first: [e for e in examples if e.source.offset >= first]
    )


def feed(core: Retrainer, task: RetrainTask, examples: Iterable[LabeledExample]) -> list[Step]:
    return [core.labeled(task, e) for e in examples]


def retrain(core: Retrainer, post: int, *, flipped: bool = True) -> tuple[RetrainTask, list[Step]]:
    """Pre-change events, a request from the change on, then ``post`` events: the steps of those."""
    task = core.fresh(0)
    examples = drifted(post, flipped=flipped)
    feed(core, task, examples[:PRE])
    core.request(task, request(), REQUESTS)
    return task, feed(core, task, examples[PRE:])


def events(step: Step) -> list[str]:
    return [n.event for n in step.notices]


@pytest.fixture
def registry(tmp_path: Path, champion_registry: Path) -> ModelRegistry:
    """A copy of the champion's registry, for this test to change."""
    shutil.copytree(champion_registry, tmp_path / "registry")
    return ModelRegistry(tmp_path / "registry")


def test_a_request_for_a_model_without_a_champion_is_rejected(registry: ModelRegistry) -> None:
    core = Retrainer(settings(), registry, POLICY)
    step = core.request(core.fresh(0), request("ghost"), REQUESTS)
    assert step.rejected is not None and step.rejected.cause == "unknown_model"
    assert step.rejected.error.startswith("unknown model 'ghost': no champion")
    assert events(step) == ["request.received"]
    assert step.notices[0].fields["offset"] == 7
    assert core.stats.requests == 1 and core.stats.sessions_started == 0


def test_a_request_for_an_unknown_version_is_rejected(registry: ModelRegistry) -> None:
    core = Retrainer(settings(), registry, POLICY)
    step = core.request(core.fresh(0), request(version="v9"), REQUESTS)
    assert step.rejected == Rejected("unknown_version", "unknown version 'v9' of model 'fraud'")


def test_a_request_for_a_replaced_champion_is_stale(registry: ModelRegistry) -> None:
    v2 = registry.register("fraud", b"another model", created_ts=START_TS, parent_version="v1")
    registry.promote("fraud", v2.version, ts=START_TS)
    core = Retrainer(settings(), registry, POLICY)
    task = core.fresh(0)
    step = core.request(task, request(version="v1"), REQUESTS)
    assert step.rejected is None and events(step) == ["request.received", "request.stale"]
    assert step.notices[1].fields["champion_version"] == "v2"
    assert task.sessions == {} and core.stats.stale_requests == 1


def test_a_second_request_while_a_session_runs_is_a_duplicate(registry: ModelRegistry) -> None:
    core = Retrainer(settings(), registry, POLICY)
    task = core.fresh(0)
    first = core.request(task, request(rid="r1"), REQUESTS)
    assert events(first)[-1] == "session.started"
    second = core.request(task, request(rid="r2"), REQUESTS)
    assert events(second) == ["request.received", "request.duplicate"]
    assert second.notices[1].fields["running_request_id"] == "r1"
    assert list(task.sessions) == ["fraud"] and task.sessions["fraud"].order.request_id == "r1"


def test_the_spec_comes_from_the_champion_else_from_the_configured_task(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    # A champion registered from outside, recording no model spec.
    register_champion(
        registry, ModelSpec.for_task(Task.CLASSIFICATION), fraud_stream(1, 500, start_ts=0.0)
    )
    unconfigured = Retrainer(settings(), registry, POLICY)
    step = unconfigured.request(unconfigured.fresh(0), request(), REQUESTS)
    assert step.rejected is not None and step.rejected.cause == "no_spec"
    assert "records no model spec and the config names no task" in step.rejected.error

    configured = Retrainer(
        parse_settings({"models": {"fraud": {"task": "classification"}}}), registry, POLICY
    )
    task = configured.fresh(0)
    assert events(configured.request(task, request(), REQUESTS))[-1] == "session.started"
    assert task.sessions["fraud"].spec == ModelSpec.for_task(Task.CLASSIFICATION)


def test_a_label_the_task_cannot_learn_is_rejected_and_not_buffered(
    registry: ModelRegistry,
) -> None:
    core = Retrainer(settings(), registry, POLICY)
    task = core.fresh(0)
    (good,) = fraud_stream(5, 1, start_ts=START_TS)
    bad = dataclasses.replace(good, actual=7)
    assert core.labeled(task, bad).rejected == Rejected(
        "unlearnable", "actual: classification learns binary labels (bool or 0/1), got 7"
    )
    assert core.labeled(task, good) == Step()
    assert list(task.buffer) == [good]


def test_a_new_session_first_learns_the_buffered_events_from_its_window_start(
    registry: ModelRegistry,
) -> None:
    core = Retrainer(settings(), registry, POLICY)
    task = core.fresh(0)
    examples = drifted(150)
    assert all(s == Step() for s in feed(core, task, examples))
    step = core.request(task, request(), REQUESTS)
    started = step.notices[-1]
    assert started.event == "session.started"
    assert started.fields["buffered_events"] == len(examples)  # offered; admitted from the start
    session = task.sessions["fraud"]
    assert session.decision.learned_events == 150  # type: ignore[union-attr]
    assert not step.decided and not core.has_actions(task)


def test_a_window_older_than_the_buffer_is_trained_on_what_is_kept_and_said_so(
    registry: ModelRegistry,
) -> None:
    core = Retrainer(settings(buffer_events=100), registry, POLICY)
    task = core.fresh(0)
    examples = drifted(10, flipped=False)
    feed(core, task, examples)
    assert len(task.buffer) == 100 and task.truncated
    step = core.request(task, request(window_ts=START_TS), REQUESTS)
    assert events(step) == ["request.received", "session.started", "session.window_truncated"]
    warning = step.notices[-1]
    assert warning.warning and warning.fields["oldest_buffered_ts"] == examples[-100].ts
    # A window that starts inside the buffer is not truncated.
    other = Retrainer(settings(buffer_events=100), registry, POLICY)
    kept = other.fresh(0)
    feed(other, kept, examples)
    assert events(other.request(kept, request(window_ts=examples[-50].ts), REQUESTS))[-1] == (
        "session.started"
    )


def test_a_promotion_is_registered_and_published_only_when_acted_on(
    registry: ModelRegistry,
) -> None:
    core = Retrainer(settings(), registry, POLICY)
    task, steps = retrain(core, 1500)
    decided_at = next(i for i, s in enumerate(steps) if s.decided)
    assert all(not s.decided for s in steps[decided_at + 1 :]), "decided once"
    assert core.has_actions(task)
    assert [v.version for v in registry.list("fraud")] == ["v1"], "nothing acted on yet"

    acted = core.act(task)

    (update,) = acted.updates
    record = registry.get("fraud", "v2")
    assert registry.champion("fraud") == record
    assert (update.model_id, update.model_version, update.parent_version) == ("fraud", "v2", "v1")
    assert update.metrics["champion_version"] == "v1"
    assert update.metrics["loss"] < update.metrics["champion_loss"]
    (span,) = record.training_window.ranges
    assert [(r.start_offset, r.end_offset) for r in update.training_window] == [
        (span.first_offset, span.last_offset + 1)
    ]
    assert span.first_offset == PRE
    assert update.ts == utc_datetime(record.training_window.last_event_ts or 0.0)
    assert [n.event for n in acted.notices] == ["promotion"]
    assert acted.notices[0].fields["content_hash"] == record.content_hash
    assert task.sessions == {} and not core.has_actions(task)
    assert core.stats.promoted == 1
    assert core.totals()["promoted"] == 1


def test_acting_again_after_a_crash_registers_nothing_new_and_repeats_the_same_update(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    core = Retrainer(settings(), registry, POLICY)
    task, _ = retrain(core, 1500)
    committed = core.snapshot(task)  # the decision's commit
    first = core.act(task)  # then the process dies before this transaction commits

    restarted = Retrainer(settings(), ModelRegistry(tmp_path / "registry"), POLICY)
    restored = restarted.restore(0, committed, labeled_log(drifted(1500)))
    assert restarted.has_actions(restored)
    again = restarted.act(restored)

    assert again.updates == first.updates
    assert [v.version for v in registry.list("fraud")] == ["v1", "v2"]


def test_a_challenger_that_does_not_win_is_retired(registry: ModelRegistry) -> None:
    core = Retrainer(settings(), registry, POLICY)
    task, steps = retrain(core, 900, flipped=False)
    assert any(s.decided for s in steps)
    acted = core.act(task)
    assert acted.updates == ()
    (retired,) = acted.notices
    assert retired.event == "retired" and retired.fields["retired_total"] == 1
    assert "no promotion after 600 scored events" in str(retired.fields["reason"])
    assert task.sessions == {} and [v.version for v in registry.list("fraud")] == ["v1"]


def test_a_restored_task_continues_as_the_uninterrupted_one_would(
    registry: ModelRegistry,
) -> None:
    examples = drifted(1500)

    def run(*, restart_at: int | None) -> bytes:
        core = Retrainer(settings(buffer_events=500), registry, POLICY)
        task = core.fresh(0)
        feed(core, task, examples[:PRE])
        core.request(task, request(), REQUESTS)
        for i, example in enumerate(examples[PRE:], start=PRE):
            if i == restart_at:
                core = Retrainer(settings(buffer_events=500), registry, POLICY)
                task = core.restore(0, core.snapshot(task), labeled_log(examples[:i]))
            if core.labeled(task, example).decided:
                break
        (session,) = task.sessions.values()
        promoted = session.decision
        assert promoted.status == "promoted"
        return promoted.artifact  # type: ignore[union-attr]

    assert run(restart_at=PRE + 120) == run(restart_at=None)


def test_restore_refills_the_buffer_without_what_was_rejected(registry: ModelRegistry) -> None:
    core = Retrainer(settings(), registry, POLICY)
    good = list(fraud_stream(5, 3, start_ts=START_TS))
    bad = dataclasses.replace(good[1], actual=7)
    task = core.restore(2, core.snapshot(core.fresh(2)), labeled_log([good[0], bad, good[2]]))
    assert task.partition == 2 and list(task.buffer) == [good[0], good[2]]
    assert not task.truncated
    assert core.describe([task]) == {"sessions": {}, "buffered": 2}
    # A buffer shorter than what the topic holds says so.
    short = Retrainer(settings(buffer_events=1), registry, POLICY)
    task = short.restore(2, short.snapshot(short.fresh(2)), labeled_log([good[0], bad, good[2]]))
    assert list(task.buffer) == [good[2]] and task.truncated


@pytest.mark.parametrize("state", [b"garbage", b"\x80\x05K\x01."])
def test_an_unreadable_snapshot_is_an_error_naming_the_partition(
    registry: ModelRegistry, state: bytes
) -> None:
    core = Retrainer(settings(), registry, POLICY)
    with pytest.raises(RetrainStateError, match="partition 4: ") as info:
        core.restore(4, state, labeled_log([]))
    assert isinstance(info.value, SnapshotError)
