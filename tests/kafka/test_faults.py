"""Faults on a real broker: kill -9 at random moments, a second process with the
same instance id, and fuzzed records among good ones (issue 13).

The lean versions of ``benchmarks/faults.py``: a few kills and a few hundred
fuzzed records, on both client backends. What must hold after each fault: the
alerts a ``read_committed`` reader sees are exactly those of the pure core
(``replay``) fed the good events, none lost and none twice.
"""

from __future__ import annotations

import base64
import random
import time
from pathlib import Path

import pytest

from tests.kafka.engine_process import EngineProcess
from tests.kafka.fuzz import OVERSIZED_LIMIT, fuzzed, interleave
from tests.kafka.streams import (
    Deployment,
    fraud_stream,
    produce,
    read_all,
    replay_outputs,
    wait_consumed,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 3
#: Longer than any restart may take: a restart that waited for the dead
#: member's session (a dynamic member) could not pass the tests' bounds.
SESSION_TIMEOUT_MS = 120_000


def alerts_by_id(events: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(e["alert_id"]): e for e in events if e["type"] == "drift_alert"}


def assert_each_outcome_labeled_once(dep: Deployment, outcomes: list[dict[str, object]]) -> None:
    labeled = read_all(dep.bootstrap, dep.topics["labeled_events"])
    assert sorted(str(e["event_id"]) for e in labeled) == sorted(
        str(o["event_id"]) for o in outcomes
    )


def wait_assigned_all(engine: EngineProcess, timeout: float) -> None:
    """Until the engine logs an assignment of every partition."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(
            e["event"] == "partitions.assigned" and len(e["partitions"]) == PARTITIONS
            for e in engine.log_events()
        ):
            return
        if not engine.running():
            break
        time.sleep(0.05)
    pytest.fail(f"not all partitions assigned in {timeout:.0f} s:\n{engine.log_tail()}")


def test_kill9_at_random_moments_restarts_before_the_session_timeout_exactly_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Three kill -9s while outcomes stream in, each restarted at once with the
    same instance id: the static member gets every partition back and commits
    long before the dead member's session would expire, and the alerts equal
    the replay's."""
    kills = 3
    config = deployment.write_config(
        tmp_path / "engine.toml", kafka_extra=f"session_timeout_ms = {SESSION_TIMEOUT_MS}"
    )
    predictions, outcomes = fraud_stream(
        4500, drift_at=1500, error_before=0.05, error_after=0.30, seed=5
    )
    expected = alerts_by_id(replay_outputs(config, predictions, outcomes, PARTITIONS))
    assert expected, "the stream must make the core alert"
    # Contiguous chunks keep each partition's outcomes in order.
    size = -(-len(outcomes) // (kills + 1))
    chunks = [outcomes[i : i + size] for i in range(0, len(outcomes), size)]
    offsets = [i * size for i in range(len(chunks))]
    rng = random.Random()
    restarts: list[tuple[float, float]] = []

    def produce_chunk(k: int) -> None:
        # Each outcome in its prediction's partition: index % PARTITIONS.
        placement = [(offsets[k] + j) % PARTITIONS for j in range(len(chunks[k]))]
        produce(
            deployment.bootstrap,
            deployment.topics["outcomes"],
            chunks[k],
            PARTITIONS,
            placement=placement,
        )

    engine = EngineProcess(config, "a", tmp_path / "engine-0.log").start()
    try:
        wait_assigned_all(engine, 60)
        produce(deployment.bootstrap, deployment.topics["predictions"], predictions, PARTITIONS)
        wait_consumed(deployment, kinds=("predictions",))
        produce_chunk(0)
        for k in range(1, kills + 1):
            time.sleep(rng.uniform(0.0, 1.5))
            assert engine.kill() == -9
            started = time.monotonic()
            engine = EngineProcess(config, "a", tmp_path / f"engine-{k}.log").start()
            produce_chunk(k)  # while it starts: work for its first commit
            wait_assigned_all(engine, SESSION_TIMEOUT_MS / 1000)
            assigned = time.monotonic() - started
            engine.wait_for_log("checkpoint", timeout=SESSION_TIMEOUT_MS / 1000, final=False)
            restarts.append((assigned, time.monotonic() - started))
        wait_consumed(deployment)
        assert engine.terminate() == 0
    finally:
        if engine.running():
            engine.kill()

    print(f"restart to assigned / first commit (s): {restarts}")
    for _assigned, committed in restarts:
        # A dynamic member waits for the old session to expire (120 s here); a
        # static one needs seconds on a quiet machine, more at a load of 20.
        assert committed < SESSION_TIMEOUT_MS / 1000 / 2, restarts
    alerts = read_all(deployment.bootstrap, deployment.topics["drift_alerts"])
    ids = [str(a["alert_id"]) for a in alerts]
    assert len(ids) == len(set(ids)), "an alert was published twice"
    assert alerts_by_id(alerts) == expected
    assert_each_outcome_labeled_once(deployment, outcomes)


def test_a_second_process_with_the_same_instance_id_fences_the_first(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The newer process wins: it gets the partitions at once, the older one's
    next commit is refused, it logs ``engine.failed`` ("another engine took
    over") and exits 1; nothing is published twice."""
    config = deployment.write_config(
        tmp_path / "engine.toml", kafka_extra=f"session_timeout_ms = {SESSION_TIMEOUT_MS}"
    )
    predictions, outcomes = fraud_stream(
        900, drift_at=900, error_before=0.05, error_after=0.05, seed=6
    )
    with EngineProcess(config, "same", tmp_path / "first.log") as first:
        wait_assigned_all(first, 60)
        with EngineProcess(config, "same", tmp_path / "second.log") as second:
            started = time.monotonic()
            wait_assigned_all(second, SESSION_TIMEOUT_MS / 1000)
            assert time.monotonic() - started < SESSION_TIMEOUT_MS / 1000 / 2
            produce(deployment.bootstrap, deployment.topics["predictions"], predictions, PARTITIONS)
            produce(deployment.bootstrap, deployment.topics["outcomes"], outcomes, PARTITIONS)
            assert first.wait_until_exit(60) == 1
            failed = first.wait_for_log("engine.failed", timeout=5)
            error = str(failed["error"])
            assert "took over" in error and "--instance-id" in error, failed
            wait_consumed(deployment)
            assert second.terminate() == 0
    assert_each_outcome_labeled_once(deployment, outcomes)


def test_fuzzed_records_all_become_dead_letters_and_the_good_ones_alert_as_replay(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = deployment.write_config(
        tmp_path / "engine.toml", kafka_extra=f"max_record_bytes = {OVERSIZED_LIMIT}"
    )
    predictions, outcomes = fraud_stream(
        3000, drift_at=1000, error_before=0.05, error_after=0.30, seed=7
    )
    expected = alerts_by_id(replay_outputs(config, predictions, outcomes, PARTITIONS))
    assert expected, "the stream must make the core alert"
    bad = fuzzed(predictions, 300, seed=7)
    values, placement, keys = interleave(predictions, bad, PARTITIONS, seed=7)
    with EngineProcess(config, "a", tmp_path / "engine.log") as engine:
        wait_assigned_all(engine, 60)
        produce(
            deployment.bootstrap,
            deployment.topics["predictions"],
            values,
            PARTITIONS,
            keys=keys,
            placement=placement,
        )
        wait_consumed(deployment, kinds=("predictions",))
        produce(deployment.bootstrap, deployment.topics["outcomes"], outcomes, PARTITIONS)
        wait_consumed(deployment)
        assert engine.terminate() == 0

    letters = read_all(deployment.bootstrap, deployment.topics["dead_letters"])
    assert len(letters) == len(bad)
    assert sorted(base64.b64decode(str(d["payload"])) for d in letters) == sorted(
        raw for _, raw in bad
    )
    assert all(str(d["error"]).strip() for d in letters)
    alerts = read_all(deployment.bootstrap, deployment.topics["drift_alerts"])
    assert len(alerts) == len(alerts_by_id(alerts))
    assert alerts_by_id(alerts) == expected
    labeled = read_all(deployment.bootstrap, deployment.topics["labeled_events"])
    assert len(labeled) == len(outcomes)
