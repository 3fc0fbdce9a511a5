"""The three-node local cluster (``broker start --nodes 3``) through the real command line.

The first test, in the order an operator would meet things: start, status, topics with
three replicas, a node killed with SIGKILL while clients keep producing and
consuming, the node restarted and back in sync, stop. The second runs the
cluster secured (``--secure``). Every node started is stopped by pid at the end,
also when the test fails.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from typing import Any

import kafka.errors as kerrors
import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from stream_mlops.kafka.broker import EXIT_NOT_RUNNING, BrokerSettings
from stream_mlops.kafka.broker.credentials import BrokerCredentials
from stream_mlops.kafka.broker.process import process_alive
from stream_mlops.kafka.security import kafka_python_options, librdkafka_options
from tests.kafka.broker.managed import cli, node_pids, own_broker

NODES = 3
# The broker's session with the controller lapses after broker.session.timeout.ms
# (9 s by default); leadership moves then, so waits are counted in tens of seconds.
MOVE_TIMEOUT_S = 90.0


def partitions(admin: KafkaAdminClient, topic: str) -> list[dict[str, Any]]:
    described: list[dict[str, Any]] = admin.describe_topics([topic])[0]["partitions"]
    return described


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.5)


def produce_confluent(servers: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": servers, "acks": "all", "enable.idempotence": True})
    errors: list[KafkaError] = []
    for value in values:
        producer.produce(topic, value, on_delivery=lambda err, _m: err and errors.append(err))
    assert producer.flush(60) == 0
    assert errors == []


def consume_confluent(servers: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"cluster-test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    values: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + MOVE_TIMEOUT_S
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                values.append(message.value())
    finally:
        consumer.close()
    return values


@pytest.mark.kafka
@pytest.mark.slow
def test_three_nodes_survive_a_killed_node_and_take_it_back() -> None:
    with own_broker("cluster", nodes=NODES) as (env, settings, seen_pids):
        run_cluster_scenario(env, settings, settings.bootstrap_servers, seen_pids)


def run_cluster_scenario(
    env: dict[str, str], settings: BrokerSettings, servers: str, seen_pids: list[int]
) -> None:
    started = cli(env, "broker", "start", "--nodes", str(NODES))
    seen_pids += node_pids(settings)
    assert started.returncode == 0, started.stderr
    assert f"{NODES} of {NODES} nodes running" in started.stdout
    assert len(set(seen_pids)) == NODES
    for node in settings.all_nodes:
        assert node.log_file.is_file()
        assert node.server_properties.is_file()

    # Status without --nodes covers every node the data dir holds.
    status = cli(env, "broker", "status")
    assert status.returncode == 0, status.stdout
    for pid in seen_pids:
        assert f"(pid {pid})" in status.stdout

    # Topics: three replicas and min ISR 2, and a lower-replicated existing topic reported.
    admin = KafkaAdminClient(bootstrap_servers=servers)
    try:
        suffix = uuid.uuid4().hex[:8]
        alerts = f"drift-alerts-{suffix}"
        admin.create_topics({alerts: {"num_partitions": 1, "replication_factor": 1}})
        config = (
            "[kafka]\npartitions = 2\n[kafka.topics]\n"
            f'predictions = "predictions-{suffix}"\noutcomes = "outcomes-{suffix}"\n'
            f'drift_alerts = "{alerts}"\n'
        )
        config_file = settings.data_dir / "topics.toml"
        config_file.write_text(config)
        created = cli(
            {**env, "KAFKA_BOOTSTRAP_SERVERS": servers},
            "topics",
            "create",
            "--config",
            str(config_file),
        )
        assert created.returncode == 0, created.stderr
        assert f"created predictions-{suffix}: 2 partitions, 3 replicas" in created.stdout
        assert f"exists  {alerts}: 1 partitions, 1 replica (not 2 partitions" in created.stdout
        assert "fewer than 3 replicas" in created.stdout
        resource = ConfigResource(ConfigResourceType.TOPIC, f"predictions-{suffix}")
        described = admin.describe_configs([resource])["topic"][f"predictions-{suffix}"]
        assert described["min.insync.replicas"]["value"] == "2"

        # A replicated topic; the node leading its partition is killed mid-stream.
        topic = f"failover-{suffix}"
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": NODES}})
        before = [f"before-{i}".encode() for i in range(200)]
        producer = KafkaProducer(bootstrap_servers=servers, acks="all", enable_idempotence=True)
        for value in before:
            producer.send(topic, value)
        producer.flush(timeout=60)
        [partition] = partitions(admin, topic)
        assert sorted(partition["replica_nodes"]) == [1, 2, 3]
        leader = partition["leader_id"]
        victim = settings.node(leader)
        victim_pid = int(victim.pid_file.read_text())
        os.kill(victim_pid, signal.SIGKILL)
        wait_until(lambda: not process_alive(victim_pid), 10, "the killed node is gone")

        down = cli(env, "broker", "status")
        assert down.returncode == EXIT_NOT_RUNNING
        assert f"2 of {NODES} nodes running" in down.stdout
        assert f"node {leader} at {victim.address} not running" in down.stdout

        # Both clients carry on against the two survivors (min ISR 2 still met).
        during = [f"during-{i}".encode() for i in range(200)]
        for value in during[:100]:
            producer.send(topic, value)
        producer.flush(timeout=MOVE_TIMEOUT_S)
        produce_confluent(servers, topic, during[100:])
        producer.close(timeout=10)
        assert consume_confluent(servers, topic, 400) == before + during
        wait_until(
            lambda: partitions(admin, topic)[0]["leader_id"] not in (leader, -1),
            MOVE_TIMEOUT_S,
            "a surviving node leads the partition",
        )

        # `broker start` restarts the missing node, which catches up and rejoins the ISR.
        restarted = cli(env, "broker", "start")
        seen_pids += node_pids(settings)
        assert restarted.returncode == 0, restarted.stderr
        assert f"{NODES} of {NODES} nodes running" in restarted.stdout
        assert int(victim.pid_file.read_text()) != victim_pid
        wait_until(
            lambda: sorted(partitions(admin, topic)[0]["isr_nodes"]) == [1, 2, 3],
            MOVE_TIMEOUT_S,
            f"node {leader} back in sync",
        )
    finally:
        admin.close()

    running = node_pids(settings)
    stopped = cli(env, "broker", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"broker stopped (pids {', '.join(map(str, running))})" in stopped.stdout
    for pid in running:
        assert not process_alive(pid)
    assert all(not node.pid_file.exists() for node in settings.all_nodes)
    assert cli(env, "broker", "status").returncode == EXIT_NOT_RUNNING


@pytest.mark.kafka
@pytest.mark.slow
def test_a_secured_three_node_cluster_replicates_and_enforces_the_acls() -> None:
    with own_broker("secure-cluster", nodes=NODES, secure=True) as (env, settings, seen_pids):
        started = cli(env, "broker", "start", "--nodes", str(NODES), "--secure")
        seen_pids.extend(node_pids(settings))
        assert started.returncode == 0, started.stderr
        assert f"{NODES} of {NODES} nodes running [SASL_SSL]" in started.stdout
        credentials = BrokerCredentials(settings)
        servers = settings.bootstrap_servers

        admin = KafkaAdminClient(
            bootstrap_servers=servers, **kafka_python_options(credentials.security("admin"))
        )
        try:
            admin.create_topics(
                {"stream-mlops-state": {"num_partitions": 1, "replication_factor": NODES}},
                wait_for_metadata=True,
            )
            wait_until(
                lambda: (
                    sorted(partitions(admin, "stream-mlops-state")[0]["isr_nodes"]) == [1, 2, 3]
                ),
                MOVE_TIMEOUT_S,
                "three in-sync replicas",
            )
        finally:
            admin.close()

        # The engine writes its state with librdkafka (acks=all: all three in sync)...
        engine = {
            "bootstrap.servers": servers,
            **librdkafka_options(credentials.security("engine")),
        }
        producer = Producer({**engine, "acks": "all"})
        producer.produce("stream-mlops-state", b"snapshot", key=b"0")
        assert producer.flush(30) == 0
        consumer = Consumer(
            {**engine, "group.id": "stream-mlops-engine", "auto.offset.reset": "earliest"}
        )
        try:
            consumer.subscribe(["stream-mlops-state"])
            deadline = time.monotonic() + MOVE_TIMEOUT_S
            message = None
            while message is None and time.monotonic() < deadline:
                polled = consumer.poll(1.0)
                if polled is not None and polled.error() is None:
                    message = polled
        finally:
            consumer.close()
        assert message is not None
        assert message.value() == b"snapshot"
        # ...and an operator may not.
        refused = KafkaProducer(
            bootstrap_servers=servers,
            **kafka_python_options(credentials.security("operator")),
        )
        try:
            with pytest.raises(kerrors.TopicAuthorizationFailedError):
                refused.send("stream-mlops-state", b"forged", key=b"0").get(timeout=15)
        finally:
            refused.close(timeout=5)

        stopped = cli(env, "broker", "stop")
        assert stopped.returncode == 0
        for pid in seen_pids:
            assert not process_alive(pid)
