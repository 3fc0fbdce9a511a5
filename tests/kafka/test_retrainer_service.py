"""The retrainer's wiring on the task runtime, on the in-memory transport (no broker).

The real-broker tests (``test_retrainer.py``) run kill -9 end to end; these check
the restore path in milliseconds: a session rebuilt from its plain-data snapshot,
the registry and the re-read labeled events decides exactly as an uninterrupted
one, and a planted pickle on the state topic stops the restore and runs nothing.
"""

from __future__ import annotations

import pickle
import shutil
import struct
import zlib
from pathlib import Path

import orjson
import pytest

from stream_mlops.config import Settings, parse_settings
from stream_mlops.events import encode
from stream_mlops.kafka.retrainer_service import RetrainerService
from stream_mlops.kafka.state import TaskSnapshot, task_key
from stream_mlops.kafka.task_runtime import RuntimeConfig, TaskRuntime
from stream_mlops.kafka.transport import TopicPartition
from stream_mlops.registry import ModelRegistry
from stream_mlops.retrain import PromotionPolicy
from stream_mlops.retrain.retrainer import Retrainer, RetrainStateError, RetrainTask
from stream_mlops.snapshot import SnapshotError
from tests.kafka.in_memory import TOPICS, MemoryCluster
from tests.kafka.test_retrainer import labeled_bytes, pre_and_post_drift
from tests.retrain.conftest import bootstrap_fraud_champion
from tests.retrain.test_retrainer import request
from tests.test_snapshot import _Plant

pytestmark = pytest.mark.usefixtures("process_settings")

START_TS = 1_800_000_000.0
PROMOTION = {"min_events": 200, "check_every": 100, "max_events": 600}


@pytest.fixture(scope="module")
def champion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bootstrap_fraud_champion(tmp_path_factory.mktemp("service") / "registry", START_TS)


class Deployment:
    """A one-partition in-memory cluster, a registry with the pre-drift champion."""

    def __init__(self, registry_dir: Path) -> None:
        self.cluster = MemoryCluster()
        self.cluster.create_topics(TOPICS.values(), 1)
        self.registry_dir = registry_dir
        self.settings: Settings = parse_settings(
            {"kafka": {"topics": TOPICS}, "retrainer": {"promotion": PROMOTION}}
        )
        self.events, self.change_ts = pre_and_post_drift(1500, flipped=True)

    def runtime(self) -> TaskRuntime[RetrainTask]:
        settings = self.settings
        core = Retrainer(settings, ModelRegistry(self.registry_dir), PromotionPolicy(**PROMOTION))
        config = RuntimeConfig.for_group(settings.kafka, settings.retrainer, instance_id="a")
        service = RetrainerService(core, settings)
        return TaskRuntime(service, self.cluster.transport(), config, clock=lambda: 0.0)

    def produce_labeled(self, start: int, end: int) -> None:
        for example in self.events[start:end]:
            self.cluster.produce("labeled-events", labeled_bytes(example), key=b"fraud")

    def produce_request(self) -> None:
        value = encode(request(window_ts=self.change_ts))
        self.cluster.produce("retrain-requests", value, key=b"fraud")

    def drain(self, runtime: TaskRuntime[RetrainTask], steps: int = 200) -> None:
        """Step and checkpoint until both inputs are committed and nothing is left to act on."""
        tps = [TopicPartition(t, 0) for t in ("labeled-events", "retrain-requests")]
        group = runtime.config.group_id
        for _ in range(steps):
            runtime.step()
            runtime.checkpoint()
            committed = self.cluster.committed_offsets(group)
            tasks = runtime.tasks.values()
            if all(committed.get(tp) == self.cluster.end_offset(tp) for tp in tps) and not any(
                runtime.service.has_actions(task) for task in tasks
            ):
                return
        raise AssertionError(f"inputs not consumed in {steps} steps")

    def updates(self) -> list[dict[str, object]]:
        return [
            orjson.loads(r.value or b"") for r in self.cluster.committed_records("model-updates")
        ]


def test_a_retrainer_killed_mid_session_decides_as_an_uninterrupted_one(
    tmp_path: Path, champion_dir: Path
) -> None:
    shutil.copytree(champion_dir, tmp_path / "uninterrupted")
    shutil.copytree(champion_dir, tmp_path / "killed")

    whole = Deployment(tmp_path / "uninterrupted")
    whole.produce_labeled(0, len(whole.events))
    whole.produce_request()
    with whole.runtime() as runtime:
        runtime.start()
        whole.drain(runtime)
    expected = whole.updates()
    assert [(u["model_version"], u["parent_version"]) for u in expected] == [("v2", "v1")]

    killed = Deployment(tmp_path / "killed")
    first = 300 + 150  # the session is still running when the process dies
    killed.produce_labeled(0, first)
    killed.produce_request()
    with killed.runtime() as runtime:
        runtime.start()
        killed.drain(runtime)
        (task,) = runtime.tasks.values()
        assert task.sessions["fraud"].decision.status == "running"
        killed.cluster.crash()  # kill -9: no commit, no goodbye
    killed.cluster.expire_sessions(killed.settings.retrainer.group_id)
    killed.produce_labeled(first, len(killed.events))
    with killed.runtime() as restarted:
        restarted.start()
        restarted.step()  # the assignment: restored from the snapshot
        (task,) = restarted.tasks.values()
        session = task.sessions["fraud"]
        assert session.window.event_count == 150 and session.feed_from == 0
        killed.drain(restarted)
        assert isinstance(restarted.service, RetrainerService)
        assert restarted.service.core.stats.requests == 0  # resumed, not asked again

    assert killed.updates() == expected
    registries = [ModelRegistry(tmp_path / d) for d in ("uninterrupted", "killed")]
    assert [r.get("fraud", "v2").content_hash for r in registries] == [
        registries[0].get("fraud", "v2").content_hash
    ] * 2
    assert [v.version for v in registries[1].list("fraud")] == ["v1", "v2"]


@pytest.mark.parametrize("body", ["pickle", "header-and-zlib-pickle"])
def test_a_planted_pickle_on_the_state_topic_stops_the_restore_and_runs_nothing(
    tmp_path: Path, champion_dir: Path, body: str
) -> None:
    shutil.copytree(champion_dir, tmp_path / "registry")
    dep = Deployment(tmp_path / "registry")
    target = tmp_path / "owned"
    payload = pickle.dumps({"format": 1, "sessions": _Plant(target)}, protocol=5)
    if body != "pickle":
        payload = struct.pack(">6sH", b"SMLOPS", 4) + zlib.compress(payload)
    group = dep.settings.retrainer.group_id
    offsets = {"retrain-requests": 0, "labeled-events": 0}
    record = TaskSnapshot(group, 0, offsets, payload).to_bytes()  # a valid checksum
    dep.cluster.produce("state", record, key=task_key(group, 0))
    with dep.runtime() as runtime:
        runtime.start()
        with pytest.raises(RetrainStateError, match="partition 0") as info:
            runtime.step()
    assert isinstance(info.value, SnapshotError)
    assert not target.exists()
