"""``stream-mlops run --workers 2`` against a real broker: one command, two group members."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.kafka.engine_process import EngineProcess
from tests.kafka.streams import (
    Deployment,
    create_deployment,
    delete_deployment,
    fraud_stream,
    produce,
    read_all,
    replay_outputs,
    wait_consumed,
)
from tests.test_worker_pool import alive

pytestmark = pytest.mark.kafka

PARTITIONS = 2


def _wait_split(command: EngineProcess, timeout: float = 90) -> dict[str, list[Any]]:
    """Each worker's latest assignment, once both hold one partition of each input topic."""
    deadline = time.monotonic() + timeout
    latest: dict[str, list[Any]] = {}
    while time.monotonic() < deadline:
        for event in command.log_events():
            if event["event"] == "partitions.assigned":
                latest[str(event["worker"])] = list(event["partitions"])
        if sorted(latest) == ["w-0", "w-1"] and all(len(p) == 1 for p in latest.values()):
            return latest
        time.sleep(0.2)
    pytest.fail(f"the two workers did not split the partitions: {latest}")


def _worker_pids(command: EngineProcess) -> list[int]:
    started = command.wait_for_log("workers.started")
    return [int(w["pid"]) for w in started["workers"]]


def _wait_gone(pids: list[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)], "a worker outlived its command"


def test_two_workers_split_the_partitions_and_publish_each_alert_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = deployment.write_config(tmp_path / "engine.toml")
    predictions, outcomes = fraud_stream(
        12000, drift_at=6000, error_before=0.05, error_after=0.30, seed=3
    )
    log = tmp_path / "workers.log"
    with EngineProcess(config, "w", log, extra_args=["--workers", "2"]) as command:
        pids = _worker_pids(command)
        assert len(pids) == 2 and command.pid not in pids
        _wait_split(command)
        produce(deployment.bootstrap, deployment.topics["predictions"], predictions, PARTITIONS)
        wait_consumed(deployment, kinds=("predictions",))
        produce(deployment.bootstrap, deployment.topics["outcomes"], outcomes, PARTITIONS)
        wait_consumed(deployment)
        assert command.terminate(timeout=90) == 0
    _wait_gone(pids)

    events = command.log_events()
    started = {e["worker"] for e in events if e["event"] == "engine.started"}
    assert started == {"w-0", "w-1"}
    stopped = {e["worker"] for e in events if e["event"] == "engine.stopped"}
    assert stopped == {"w-0", "w-1"}
    alerts = read_all(deployment.bootstrap, deployment.topics["drift_alerts"])
    expected = [
        e
        for e in replay_outputs(config, predictions, outcomes, PARTITIONS)
        if e["type"] == "drift_alert"
    ]
    assert expected, "the stream must drift for this test to mean anything"
    assert len(alerts) == len({a["alert_id"] for a in alerts})
    assert {a["alert_id"]: a for a in alerts} == {e["alert_id"]: e for e in expected}
    # Both workers did part of the work: each logged a checkpoint with events.
    worked = {e["worker"] for e in events if e["event"] == "checkpoint" and e["events"]}
    assert worked == {"w-0", "w-1"}


def test_a_worker_killed_ends_the_command_and_stops_the_other(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    dep = create_deployment(kafka_bootstrap, PARTITIONS)
    try:
        config = dep.write_config(tmp_path / "engine.toml")
        with EngineProcess(config, "w", tmp_path / "w.log", extra_args=["--workers", "2"]) as cmd:
            pids = _worker_pids(cmd)
            cmd.wait_for_log("partitions.assigned")
            os.kill(pids[1], signal.SIGKILL)
            assert cmd.wait_until_exit(timeout=90) == 128 + signal.SIGKILL
            exited = cmd.wait_for_log("worker.exited")
            assert exited["pid"] == pids[1] and exited["instance_id"] == "w-1"
            _wait_gone(pids)
    finally:
        delete_deployment(dep)
