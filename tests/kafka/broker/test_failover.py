"""The engine, exactly once, on the three-node cluster while its brokers fail.

One cluster (``broker start --nodes 3``) for the module. Each test runs
``stream-mlops run`` on topics of its own with three replicas and
``min.insync.replicas`` 2, on a fraud stream with an injected drift, and
breaks the cluster while the engine processes the outcomes:

* ``kill -9`` of the broker that leads the outcomes being processed, then
  ``broker start`` brings it back and it rejoins every partition's ISR;
* a rolling restart: each broker stopped (SIGTERM) and started again in turn,
  each back in sync before the next.

Afterwards a ``read_committed`` reader sees every alert exactly once, and they
are the alerts the pure core gives on the same stream in the same order
(``replay``, as ``tests/kafka/test_runtime.py`` compares), and every labeled
event once. The figures (time from the broker's loss to the engine's next
commit, alerts seen, duplicates, missing) are printed for docs/security.md.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from stream_mlops.kafka.broker import BrokerSettings
from stream_mlops.kafka.broker.process import process_alive
from tests.kafka.broker.managed import cli, node_pids, own_broker
from tests.kafka.engine_process import EngineProcess
from tests.kafka.streams import (
    TOPIC_KEYS,
    Deployment,
    fraud_stream,
    partition_of,
    read_all,
    wait_consumed,
)
from tests.kafka.test_runtime import PARTITIONS, by_id, expected_outputs

# Part of `make test` (and CI); `make test-failover` or `-m failover` runs only
# these. STREAM_MLOPS_TEST_PORTS=LOW-HIGH moves the cluster's ports.
pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.failover]

NODES = 3
# A lost broker's session with the controller lapses after broker.session.timeout.ms
# (9 s) before its partitions move; a loaded machine stretches every step.
MOVE_TIMEOUT_S = 120.0
EVENTS = 18_000
DRIFT_AT = 6_000
# Outcomes are produced in these many chunks; the brokers fail between them, so
# the engine always has records to process while a broker is missing.
CHUNKS = 6


@dataclass(frozen=True)
class Cluster:
    env: dict[str, str]
    settings: BrokerSettings
    seen_pids: list[int]

    @property
    def servers(self) -> str:
        return self.settings.bootstrap_servers

    def pid(self, node_id: int) -> int:
        return int(self.settings.node(node_id).pid_file.read_text().strip())

    def start_missing(self) -> None:
        started = cli(self.env, "broker", "start")
        self.seen_pids.extend(node_pids(self.settings))
        assert started.returncode == 0, started.stderr
        assert f"{NODES} of {NODES} nodes running" in started.stdout


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with own_broker("failover", nodes=NODES) as (env, settings, seen_pids):
        started = cli(env, "broker", "start", "--nodes", str(NODES))
        seen_pids.extend(node_pids(settings))
        assert started.returncode == 0, started.stderr
        yield Cluster(env, settings, seen_pids)


@pytest.fixture
def admin(cluster: Cluster) -> Iterator[KafkaAdminClient]:
    # Every node up first: a test that failed between killing a broker and
    # starting it again must not fail the next one too.
    cluster.start_missing()
    client = KafkaAdminClient(bootstrap_servers=cluster.servers)
    try:
        yield client
    finally:
        client.close()


def replicated_deployment(admin: KafkaAdminClient, servers: str, client: str) -> Deployment:
    """The contract's topics with three replicas and min ISR 2, as `topics create` makes them."""
    suffix = uuid.uuid4().hex[:10]
    topics = {k: f"t-{k}-{suffix}" for k in TOPIC_KEYS}
    admin.create_topics(
        [
            NewTopic(
                name,
                PARTITIONS,
                NODES,
                topic_configs={
                    "min.insync.replicas": "2",
                    **({"cleanup.policy": "compact"} if key == "state" else {}),
                },
            )
            for key, name in topics.items()
        ]
    )
    deployment = Deployment(servers, topics, f"g-{suffix}", PARTITIONS, client)
    wait_in_sync(admin, deployment)
    return deployment


def wait_in_sync(admin: KafkaAdminClient, deployment: Deployment) -> float:
    """Seconds until every partition of the cluster has all its replicas in sync.

    Every topic, the internal ones included: the group and transaction
    coordinators live on ``__consumer_offsets`` and ``__transaction_state``, whose
    partitions (min ISR 2) a rolling restart must not leave with one replica in
    sync when it stops the next broker, or the engine cannot commit until the
    restarted node catches up.
    """
    started = time.monotonic()
    deadline = started + MOVE_TIMEOUT_S
    while True:
        described: list[dict[str, Any]] = admin.describe_topics()
        topics = {t["name"]: t for t in described}
        lagging = [
            f"{t['name']}[{p['partition_index']}] isr {p['isr_nodes']} of {p['replica_nodes']}"
            for t in described
            for p in t["partitions"]
            if p["leader_id"] < 0 or sorted(p["isr_nodes"]) != sorted(p["replica_nodes"])
        ]
        ours = [topics.get(name) for name in deployment.topics.values()]
        if not lagging and all(
            t is not None and t["error_code"] == 0 and len(t["partitions"]) == PARTITIONS
            for t in ours
        ):
            return time.monotonic() - started
        if time.monotonic() > deadline:
            pytest.fail(
                f"not all partitions in sync within {MOVE_TIMEOUT_S:.0f} s: "
                f"{len(lagging)} lagging, e.g. {lagging[:10]}"
            )
        time.sleep(0.5)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + MOVE_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {MOVE_TIMEOUT_S:.0f} s: {what}")
        time.sleep(0.5)


def leader_of(admin: KafkaAdminClient, topic: str, partition: int) -> int:
    [described] = admin.describe_topics([topic])
    leaders = {p["partition_index"]: p["leader_id"] for p in described["partitions"]}
    return int(leaders[partition])


def produce(servers: str, topic: str, events: list[tuple[int, dict[str, object]]]) -> None:
    """(index, event) pairs, each on its stream partition; acks=all and idempotent, so the
    test's own input survives a broker's loss whole and once."""
    producer = Producer(
        {"bootstrap.servers": servers, "acks": "all", "enable.idempotence": True, "linger.ms": 5}
    )
    failed: list[str] = []
    for index, event in events:
        producer.produce(
            topic,
            orjson.dumps(event),
            key=str(event["event_id"]).encode(),
            partition=partition_of(index, PARTITIONS),
            on_delivery=lambda err, _msg: err and failed.append(str(err)),
        )
        producer.poll(0)
    assert producer.flush(MOVE_TIMEOUT_S) == 0, "input not delivered"
    assert failed == []


def seconds_to_next_commit(engine: EngineProcess, after: int, timeout_s: float) -> float:
    """From now until the engine logs a checkpoint that committed records, past log entry
    ``after`` (the engine logs one line per committed transaction)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        entries = engine.log_events()[after:]
        if any(e.get("event") == "checkpoint" and e.get("events", 0) > 0 for e in entries):
            return time.monotonic() - start
        assert engine.running(), f"the engine died:\n{engine.log_tail()}"
        time.sleep(0.05)
    # Where it waits: every thread's stack (the services dump them on SIGUSR1).
    if engine.pid is not None:
        os.kill(engine.pid, signal.SIGUSR1)
        time.sleep(1.0)
    pytest.fail(f"no commit within {timeout_s:.0f} s:\n{engine.log_tail()}")


@dataclass
class Figures:
    scenario: str
    client: str
    to_next_commit_s: list[float]
    back_in_sync_s: list[float] = field(default_factory=list)
    alerts_expected: int = 0
    alerts_seen: int = 0
    duplicates: int = 0
    missing: int = 0
    aborted: int = 0

    def line(self) -> str:
        waits = ", ".join(f"{s:.1f}" for s in self.to_next_commit_s)
        syncs = ", ".join(f"{s:.1f}" for s in self.back_in_sync_s)
        return (
            f"FAILOVER {self.scenario} [{self.client}]: to next commit (s) {waits}; "
            f"restarted node back in sync (s) {syncs}; "
            f"alerts expected {self.alerts_expected}, seen {self.alerts_seen}, "
            f"duplicates {self.duplicates}, missing {self.missing}; "
            f"aborted checkpoints {self.aborted}"
        )


def check_exactly_once(
    deployment: Deployment,
    engine: EngineProcess,
    config: Path,
    stream: tuple[list[dict[str, object]], list[dict[str, object]]],
    figures: Figures,
) -> None:
    predictions, outcomes = stream
    wait_consumed(deployment, timeout_s=MOVE_TIMEOUT_S * 2)
    assert engine.running(), engine.log_tail()
    assert engine.terminate() == 0
    figures.aborted = sum(1 for e in engine.log_events() if e.get("event") == "checkpoint.aborted")

    alerts = read_all(deployment.bootstrap, deployment.topics["drift_alerts"], idle_s=3)
    expected = [
        e for e in expected_outputs(config, predictions, outcomes) if e["type"] == "drift_alert"
    ]
    assert any(int(str(e["trigger_event_id"]).rsplit("-", 1)[1]) >= DRIFT_AT for e in expected)
    ids = [str(a["alert_id"]) for a in alerts]
    figures.alerts_expected = len(expected)
    figures.alerts_seen = len(ids)
    figures.duplicates = len(ids) - len(set(ids))
    figures.missing = len(set(by_id(expected, "alert_id")) - set(ids))
    print(figures.line())
    assert figures.duplicates == 0, "an alert was published twice"
    assert by_id(alerts, "alert_id") == by_id(expected, "alert_id")
    labeled = read_all(deployment.bootstrap, deployment.topics["labeled_events"], idle_s=3)
    assert sorted(str(e["event_id"]) for e in labeled) == sorted(
        str(o["event_id"]) for o in outcomes
    )


def feed_predictions(
    deployment: Deployment, engine: EngineProcess, predictions: list[dict[str, object]]
) -> None:
    """Predictions first and consumed, then outcomes: the order replay runs in."""
    engine.wait_for_log("partitions.assigned", timeout=MOVE_TIMEOUT_S)
    produce(deployment.bootstrap, deployment.topics["predictions"], list(enumerate(predictions)))
    wait_consumed(deployment, kinds=("predictions",), timeout_s=MOVE_TIMEOUT_S)


def drifting_stream() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    return fraud_stream(EVENTS, drift_at=DRIFT_AT, error_before=0.05, error_after=0.30, seed=3)


def chunks(outcomes: list[dict[str, object]]) -> list[list[tuple[int, dict[str, object]]]]:
    size = -(-len(outcomes) // CHUNKS)
    indexed = list(enumerate(outcomes))
    return [indexed[i : i + size] for i in range(0, len(indexed), size)]


def test_kill9_of_the_leading_broker_loses_and_duplicates_no_alert(
    cluster: Cluster, admin: KafkaAdminClient, tmp_path: Path
) -> None:
    deployment = replicated_deployment(admin, cluster.servers, "confluent-kafka")
    config = deployment.write_config(tmp_path / "engine.toml")
    predictions, outcomes = events = drifting_stream()
    figures = Figures("kill -9 of the leader", deployment.client, [])
    with EngineProcess(config, "a", tmp_path / "engine.log") as engine:
        feed_predictions(deployment, engine, predictions)
        parts = chunks(outcomes)
        mark = len(engine.log_events())
        produce(deployment.bootstrap, deployment.topics["outcomes"], parts[0])
        seconds_to_next_commit(engine, mark, MOVE_TIMEOUT_S)
        # Every replica in sync first: a partition already short of one would
        # drop below min ISR 2 with the kill, and nothing could commit to it.
        wait_in_sync(admin, deployment)
        # The broker leading the outcomes the engine is reading, killed mid-stream.
        victim = leader_of(admin, deployment.topics["outcomes"], 0)
        victim_pid = cluster.pid(victim)
        mark = len(engine.log_events())
        os.kill(victim_pid, signal.SIGKILL)
        produce(deployment.bootstrap, deployment.topics["outcomes"], parts[1])
        figures.to_next_commit_s.append(seconds_to_next_commit(engine, mark, MOVE_TIMEOUT_S))
        assert not process_alive(victim_pid)
        wait_for(
            lambda: leader_of(admin, deployment.topics["outcomes"], 0) not in (victim, -1),
            "a surviving broker leads the outcomes",
        )
        for part in parts[2:4]:
            produce(deployment.bootstrap, deployment.topics["outcomes"], part)

        # Back: `broker start` restarts the killed node, which rejoins every ISR.
        cluster.start_missing()
        assert cluster.pid(victim) != victim_pid
        figures.back_in_sync_s.append(wait_in_sync(admin, deployment))
        for part in parts[4:]:
            produce(deployment.bootstrap, deployment.topics["outcomes"], part)
        check_exactly_once(deployment, engine, config, events, figures)


def test_a_rolling_restart_of_every_broker_loses_and_duplicates_no_alert(
    cluster: Cluster, admin: KafkaAdminClient, tmp_path: Path
) -> None:
    deployment = replicated_deployment(admin, cluster.servers, "kafka-python")
    config = deployment.write_config(tmp_path / "engine.toml")
    predictions, outcomes = events = drifting_stream()
    figures = Figures("rolling restart", deployment.client, [])
    with EngineProcess(config, "a", tmp_path / "engine.log") as engine:
        feed_predictions(deployment, engine, predictions)
        parts = iter(chunks(outcomes))
        mark = len(engine.log_events())
        produce(deployment.bootstrap, deployment.topics["outcomes"], next(parts))
        seconds_to_next_commit(engine, mark, MOVE_TIMEOUT_S)
        for node in range(1, NODES + 1):
            wait_in_sync(admin, deployment)
            pid = cluster.pid(node)
            mark = len(engine.log_events())
            os.kill(pid, signal.SIGTERM)
            produce(deployment.bootstrap, deployment.topics["outcomes"], next(parts))
            figures.to_next_commit_s.append(seconds_to_next_commit(engine, mark, MOVE_TIMEOUT_S))
            deadline = time.monotonic() + MOVE_TIMEOUT_S
            while process_alive(pid):
                assert time.monotonic() < deadline, f"node {node} did not stop"
                time.sleep(0.2)
            cluster.start_missing()
            figures.back_in_sync_s.append(wait_in_sync(admin, deployment))
        for part in parts:
            produce(deployment.bootstrap, deployment.topics["outcomes"], part)
        check_exactly_once(deployment, engine, config, events, figures)
