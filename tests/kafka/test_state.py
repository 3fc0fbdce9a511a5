"""A forged state record on the real broker: the engine refuses it, runs nothing, and
stops with one line.

The record is what an attacker with write access to the state topic would plant:
a pickle that creates a file when unpickled, filed under the task's key. Before
snapshots were plain data, ``stream-mlops run`` unpickled it at restore.
"""

from __future__ import annotations

import pickle
import struct
import zlib
from pathlib import Path

import kafka
import pytest

from stream_mlops import snapshot
from stream_mlops.kafka.state import TaskSnapshot, task_key
from tests.kafka.engine_process import EngineProcess
from tests.kafka.streams import Deployment
from tests.kafka.test_retrainer import Setup

pytestmark = pytest.mark.kafka

# One partition: the state of one task (the shared `deployment` fixture reads it).
PARTITIONS = 1


class _Plant:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.target), "w"))


def _plant(dep: Deployment, value: bytes) -> None:
    producer = kafka.KafkaProducer(bootstrap_servers=dep.bootstrap)
    try:
        producer.send(dep.topics["state"], key=task_key(dep.group_id, 0), value=value, partition=0)
        producer.flush()
    finally:
        producer.close()


def _refused_at_start(dep: Deployment, tmp_path: Path, name: str) -> str:
    """Runs the engine on the planted record; its one error line."""
    config = dep.write_config(tmp_path / f"{name}.toml")
    with EngineProcess(config, "a", tmp_path / f"{name}.log") as engine:
        assert engine.proc is not None
        assert engine.proc.wait(timeout=120) == 1
        failed = [e for e in engine.log_events() if e.get("event") == "engine.failed"]
        assert len(failed) == 1, engine.log_path.read_text()[-3000:]
        assert "Traceback" not in engine.log_path.read_text()
        assert not any(e.get("event") == "state.restored" for e in engine.log_events())
    return str(failed[0]["error"])


def test_a_planted_pickle_on_the_state_topic_is_refused_and_runs_nothing(
    deployment: Deployment, tmp_path: Path
) -> None:
    target = tmp_path / "owned"
    payload = pickle.dumps({"river": snapshot.river_version(), "models": _Plant(target)})
    offsets = {deployment.topics["predictions"]: 0, deployment.topics["outcomes"]: 0}

    # The format this engine reads, with a valid checksum around a pickled body.
    engine_state = struct.pack(">6sH", b"SMLOPS", 3) + payload
    _plant(deployment, TaskSnapshot(deployment.group_id, 0, offsets, engine_state).to_bytes())
    error = _refused_at_start(deployment, tmp_path, "current-envelope")
    assert "partition 0" in error and "format 3 is not supported" in error
    assert not target.exists()

    # The envelope the pickling engine wrote.
    old = b"stream-mlops-state/1\n" + b'{"group_id": "g"}\n' + engine_state
    _plant(deployment, old)
    error = _refused_at_start(deployment, tmp_path, "old-envelope")
    assert "partition 0" in error and "format '1' is not supported" in error
    assert not target.exists()


def test_a_planted_pickle_is_refused_by_the_retrainer_and_runs_nothing(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The retrainer's sessions were pickles too: the same record stops it with one line."""
    setup = Setup(deployment, tmp_path)
    target = tmp_path / "owned"
    state = struct.pack(">6sH", b"SMLOPS", 4) + zlib.compress(
        pickle.dumps({"format": 1, "sessions": _Plant(target)})
    )
    offsets = {setup.topic("retrain_requests"): 0, setup.topic("labeled_events"): 0}
    producer = kafka.KafkaProducer(bootstrap_servers=deployment.bootstrap)
    try:
        record = TaskSnapshot(setup.group_id, 0, offsets, state).to_bytes()
        producer.send(
            setup.topic("state"), key=task_key(setup.group_id, 0), value=record, partition=0
        )
        producer.flush()
    finally:
        producer.close()
    with setup.retrainer() as retrainer:
        assert retrainer.proc is not None
        assert retrainer.proc.wait(timeout=120) == 1
        text = retrainer.log_path.read_text()
        failed = [e for e in retrainer.log_events() if e.get("event") == "retrainer.failed"]
        assert len(failed) == 1, text[-3000:]
        assert "Traceback" not in text
    assert "partition 0" in str(failed[0]["error"])
    assert not target.exists()
