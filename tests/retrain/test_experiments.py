"""The experiment log from the retrainer's core: every decided session, kept once.

The core runs against ``ModelRegistry(MemoryStore())``, an in-memory registry
view with the registry's own idempotence rules; the store counts the
experiments it was asked to write.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from stream_mlops.config import parse_settings
from stream_mlops.events import RetrainRequest, WindowStart, utc_datetime
from stream_mlops.model_task import Task
from stream_mlops.registry import Experiment, ModelRegistry
from stream_mlops.retrain import (
    LabeledExample,
    ModelSpec,
    PromotionPolicy,
    Running,
    SourcePosition,
    Verdict,
)
from stream_mlops.retrain.bootstrap import bootstrap_champion
from stream_mlops.retrain.retrainer import Retrainer, RetrainTask
from tests.retrain.memory_store import MemoryStore
from tests.retrain.streams import fraud_stream
from tests.retrain.test_retrainer import labeled_log

START_TS = 1_800_000_000.0
PRE = 300  # pre-change events before the request's window
POLICY = PromotionPolicy(min_events=200, check_every=100, max_events=600)
SETTINGS = parse_settings({})
REQUEST = RetrainRequest(
    request_id="rq-7",
    model_id="fraud",
    model_version="v1",
    reason_alert_ids=["alert-1", "alert-2"],
    window_start=WindowStart(ts=utc_datetime(START_TS + PRE), event_id="first-post"),
    ts=utc_datetime(START_TS + PRE + 600),
)


@pytest.fixture(scope="module")
def champion() -> ModelRegistry:
    """A registry whose champion v1 learned the pre-change concept (trained once)."""
    registry = ModelRegistry(MemoryStore())
    bootstrap_champion(
        registry,
        "fraud",
        ModelSpec.for_task(Task.CLASSIFICATION),
        ((e.features, e.actual) for e in fraud_stream(1, 3000, start_ts=START_TS - 3000)),
        created_ts=START_TS,
    )
    return registry


@pytest.fixture
def store(champion: ModelRegistry) -> MemoryStore:
    return MemoryStore.copy_of(champion)


def labeled(post: int, *, flipped: bool) -> tuple[list[LabeledExample], list[LabeledExample]]:
    """Events before the request's window start, and ``post`` events from it on."""
    before = list(fraud_stream(2, PRE, start_ts=START_TS))
    after = list(fraud_stream(3, post, start_ts=START_TS, start_offset=PRE, flipped=flipped))
    return before, after


def decide(
    core: Retrainer, examples: tuple[Iterable[LabeledExample], Iterable[LabeledExample]]
) -> tuple[RetrainTask, list[Verdict]]:
    """Feed a task until its session decides; the verdicts of the looks, as they happened."""
    before, after = examples
    task = core.fresh(0)
    for example in before:
        core.labeled(task, example)
    core.request(task, REQUEST, SourcePosition("retrain-requests", 0, 7))
    session = task.sessions["fraud"]
    seen: list[Verdict] = []
    for example in after:
        step = core.labeled(task, example)
        decision = session.decision
        verdict = decision.verdict
        if verdict is not None and (not seen or seen[-1].look != verdict.look):
            seen.append(verdict)
        if step.decided:
            assert not isinstance(decision, Running)
            return task, seen
    raise AssertionError("the session did not decide")


def test_a_promoted_session_leaves_one_experiment_with_what_it_was_decided_on(
    store: MemoryStore,
) -> None:
    registry = ModelRegistry(store)
    core = Retrainer(SETTINGS, registry, POLICY)
    task, live_looks = decide(core, labeled(1500, flipped=True))

    acted = core.act(task)

    (update,) = acted.updates
    (experiment,) = registry.experiments()
    assert store.experiment_writes == 1
    version = registry.get("fraud", "v2")
    # The request.
    assert (experiment.model_id, experiment.request_id) == ("fraud", "rq-7")
    assert experiment.reason_alert_ids == ("alert-1", "alert-2")
    assert experiment.requested_ts == START_TS + PRE + 600
    assert (experiment.window_start_ts, experiment.window_start_event_id) == (
        START_TS + PRE,
        "first-post",
    )
    # Parent, champion, the model and the test's parameters.
    assert (experiment.champion_version, experiment.parent_version) == ("v1", "v1")
    assert experiment.model_spec == ModelSpec.for_task(Task.CLASSIFICATION).to_config()
    assert experiment.policy == POLICY.to_config()
    # The outcome, and the version it became.
    assert (experiment.outcome, experiment.version) == ("promoted", "v2")
    assert experiment.content_hash == version.content_hash
    assert experiment.reason.startswith("beat v1: loss ")
    assert registry.promotions("fraud")[-1].reason == experiment.reason
    # The data, the scores and the time, as the version and the update say.
    assert experiment.training_window == version.training_window
    assert experiment.training_window.ranges[0].first_offset == PRE
    assert experiment.decided_ts == version.training_window.last_event_ts
    assert utc_datetime(experiment.decided_ts) == update.ts
    metrics = update.metrics
    assert experiment.learned_events == metrics["learned_events"]
    assert experiment.scored_events == metrics["scored_events"]
    assert experiment.champion_loss == metrics["champion_loss"]
    assert experiment.challenger_loss == metrics["loss"] < experiment.champion_loss
    assert experiment.p_value == metrics["p_value"]
    # Every look's p-value, as the test computed it live; only the last one promoted.
    assert [(look.scored_events, look.p_value) for look in experiment.looks] == [
        (v.events, v.p_value) for v in live_looks
    ]
    assert [look.promote for look in experiment.looks][-1] is True
    assert not any(look.promote for look in experiment.looks[:-1])
    assert experiment.looks[-1].p_value == experiment.p_value
    # The notice names the request; the core keeps the latest per model.
    assert acted.notices[0].fields["request_id"] == "rq-7"
    assert core.latest_experiment("fraud") == experiment
    assert dict(core.latest_experiments()) == {"fraud": experiment}


def test_a_retired_session_leaves_one_experiment_and_no_version(store: MemoryStore) -> None:
    registry = ModelRegistry(store)
    core = Retrainer(SETTINGS, registry, POLICY)
    task, live_looks = decide(core, labeled(900, flipped=False))
    assert core.latest_experiment("fraud") is None

    acted = core.act(task)

    assert acted.updates == ()
    assert [v.version for v in registry.list("fraud")] == ["v1"]
    (experiment,) = registry.experiments("fraud", outcome="retired")
    assert registry.experiments("fraud", outcome="promoted") == []
    assert store.experiment_writes == 1
    (notice,) = acted.notices
    assert notice.event == "retired" and experiment.reason == notice.fields["reason"]
    assert (experiment.outcome, experiment.version, experiment.content_hash) == (
        "retired",
        None,
        None,
    )
    assert (experiment.request_id, experiment.champion_version) == ("rq-7", "v1")
    # It ran to the bound: every look, none promoting.
    assert [look.scored_events for look in experiment.looks] == [200, 300, 400, 500, 600]
    assert len(experiment.looks) == POLICY.looks == len(live_looks)
    assert [look.p_value for look in experiment.looks] == [v.p_value for v in live_looks]
    assert not any(look.promote for look in experiment.looks)
    # What it learned: the window's events up to the decision, nothing before the start.
    window = experiment.training_window
    assert window.event_count == experiment.scored_events == POLICY.max_events
    assert window.ranges[0].first_offset == PRE
    assert window.ranges[0].last_offset == PRE + POLICY.max_events - 1
    assert experiment.decided_ts == window.last_event_ts == START_TS + PRE + POLICY.max_events - 1
    assert core.latest_experiment("fraud") == experiment


@pytest.mark.parametrize("flipped", [True, False], ids=["promoted", "retired"])
def test_acting_again_after_a_crash_keeps_the_experiment_once(
    store: MemoryStore, flipped: bool
) -> None:
    core = Retrainer(SETTINGS, ModelRegistry(store), POLICY)
    events = labeled(1500, flipped=flipped)
    task, _ = decide(core, events)
    committed = core.snapshot(task)  # the decision's commit
    core.act(task)  # then the process dies before this transaction commits
    (first,) = ModelRegistry(store).experiments()

    restarted = Retrainer(SETTINGS, ModelRegistry(store), POLICY)
    restored = restarted.restore(0, committed, labeled_log([*events[0], *events[1]]))
    assert restarted.has_actions(restored)
    restarted.act(restored)

    assert store.experiment_writes == 1
    assert ModelRegistry(store).experiments() == [first]
    assert restarted.latest_experiment("fraud") == first


class Crash(BaseException):
    """Not an Exception: nothing may catch it, as nothing catches kill -9."""


class CrashBeforeExperiment(ModelRegistry):
    """A registry whose process "dies" after the promotion, before its experiment."""

    def record_experiment(self, experiment: Experiment) -> Experiment:
        raise Crash(f"killed before recording {experiment.request_id}")


def test_a_crash_between_the_promotion_and_its_experiment_records_it_on_restart(
    store: MemoryStore,
) -> None:
    core = Retrainer(SETTINGS, CrashBeforeExperiment(store), POLICY)
    events = labeled(1500, flipped=True)
    task, _ = decide(core, events)
    committed = core.snapshot(task)
    with pytest.raises(Crash):
        core.act(task)
    registry = ModelRegistry(store)
    champion = registry.champion("fraud")
    assert champion is not None and champion.version == "v2"
    assert registry.experiments() == []

    restarted = Retrainer(SETTINGS, registry, POLICY)
    acted = restarted.act(restarted.restore(0, committed, labeled_log([*events[0], *events[1]])))

    assert [u.model_version for u in acted.updates] == ["v2"]
    assert [v.version for v in registry.list("fraud")] == ["v1", "v2"]
    (experiment,) = registry.experiments()
    assert (experiment.outcome, experiment.version) == ("promoted", "v2")
    assert store.experiment_writes == 1
    # Written from the restored session: the snapshot carried the whole request.
    assert experiment.reason_alert_ids == ("alert-1", "alert-2")
    assert experiment.requested_ts == START_TS + PRE + 600
    assert experiment.window_start_event_id == "first-post"
