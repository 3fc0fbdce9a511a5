"""The one construction point: options reach every client, nothing reaches a broker by accident.

Broker-free: the client libraries' classes are replaced by recorders of the
configuration each client was built with, or the cluster is a port where
nothing listens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from stream_mlops.config import KafkaSecurity, KafkaSettings
from stream_mlops.kafka import backends
from stream_mlops.kafka.backends import BACKENDS, open_transport
from stream_mlops.kafka.transport import BrokerUnreachableError, Transport

REPO = Path(__file__).resolve().parents[2]

Made = list[tuple[str, dict[str, Any]]]


class _Recorded:
    """Stands in for a client class: records its configuration, does nothing."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return lambda *args, **kwargs: None


def _recorder(made: Made, kind: str, *, keywords: bool) -> type:
    class Recorded(_Recorded):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append((kind, dict(kwargs) if keywords else dict(args[0])))

    return Recorded


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> Made:
    """Every client either backend constructs, as (class, configuration)."""
    import confluent_kafka as ck
    import confluent_kafka.admin as ckadmin
    import kafka

    made: Made = []
    for name in ("KafkaConsumer", "KafkaProducer", "KafkaAdminClient"):
        monkeypatch.setattr(kafka, name, _recorder(made, name, keywords=True))
    monkeypatch.setattr(ck, "Consumer", _recorder(made, "Consumer", keywords=False))
    monkeypatch.setattr(ck, "Producer", _recorder(made, "Producer", keywords=False))
    monkeypatch.setattr(ckadmin, "AdminClient", _recorder(made, "AdminClient", keywords=False))
    return made


def every_role(transport: Transport) -> None:
    transport.group_consumer("g", max_poll_interval_ms=60_000)
    transport.transactional_producer("t")
    transport.partition_reader()
    transport.producer()
    transport.reader()
    transport.admin()


# What each role promises whatever the options say, in each library's spelling.
GUARANTEES = {
    "kafka-python": {
        "KafkaProducer": {"enable_idempotence": True, "acks": "all"},
        "KafkaConsumer": {"enable_auto_commit": False},
    },
    "confluent-kafka": {
        "Producer": {"enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random"},
        "Consumer": {"enable.auto.commit": False},
    },
}
# Options that try to switch those off, plus a connection option that must get through.
OPTIONS = {
    "kafka-python": {
        "enable_idempotence": False,
        "acks": 1,
        "enable_auto_commit": True,
        "security_protocol": "SSL",
    },
    "confluent-kafka": {
        "enable.idempotence": False,
        "acks": 1,
        "partitioner": "consistent_random",
        "enable.auto.commit": True,
        "security.protocol": "ssl",
    },
}
CONNECTION = {
    "kafka-python": ("security_protocol", "SSL"),
    "confluent-kafka": ("security.protocol", "ssl"),
}


@pytest.mark.parametrize("client", BACKENDS)
def test_client_options_reach_every_client_under_the_roles_own_settings(
    client: str, made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The spot where the connection security settings plug in.
    monkeypatch.setattr(backends, "client_options", lambda _kafka, _library: OPTIONS[client])
    transport = open_transport(
        KafkaSettings(bootstrap_servers="k:1", client=client), client_id="c-1"
    )
    every_role(transport)

    roles = [kind for kind, _config in made]
    if client == "kafka-python":
        # group consumer, transactional producer, partition reader, producer, reader, admin
        # (the producer checks topics with a consumer only when it sends)
        assert roles == ["KafkaConsumer", "KafkaProducer", "KafkaConsumer", "KafkaProducer",
                         "KafkaConsumer", "KafkaAdminClient"]  # fmt: skip
    else:
        assert roles == ["Consumer", "Producer", "Consumer", "Producer", "Consumer", "AdminClient"]
    key, value = CONNECTION[client]
    servers_key, id_key = (
        ("bootstrap_servers", "client_id") if client == "kafka-python" else
        ("bootstrap.servers", "client.id")
    )  # fmt: skip
    for kind, config in made:
        assert config[key] == value, kind
        assert (config[servers_key], config[id_key]) == ("k:1", "c-1"), kind
        for setting, promised in GUARANTEES[client].get(kind, {}).items():
            assert config[setting] == promised, (kind, setting)
    isolation = "isolation_level" if client == "kafka-python" else "isolation.level"
    consumers = [config for kind, config in made if "Consumer" in kind]
    assert {c[isolation] for c in consumers} == {"read_committed"}


PLAINTEXT = {
    "kafka-python": ("security_protocol", "PLAINTEXT"),
    "confluent-kafka": ("security.protocol", "plaintext"),
}


@pytest.mark.parametrize("client", BACKENDS)
def test_without_security_settings_a_client_gets_plaintext_and_its_role_settings(
    client: str, made: Made
) -> None:
    key, value = PLAINTEXT[client]
    assert backends.client_options(KafkaSettings(client=client), client) == {key: value}  # type: ignore[arg-type]
    every_role(open_transport(KafkaSettings(client=client), client_id="c"))
    assert made and all(config[key] == value for _kind, config in made)
    assert not any("sasl" in k or "ssl" in k for _kind, config in made for k in config)


# [kafka.security] as each library spells it, password included.
SASL_SSL = {
    "kafka-python": {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "engine",
        "sasl_plain_password": "pw-of-engine",
        "ssl_cafile": "/etc/ca.pem",
        "ssl_check_hostname": True,
    },
    "confluent-kafka": {
        "security.protocol": "sasl_ssl",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "engine",
        "sasl.password": "pw-of-engine",
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.endpoint.identification.algorithm": "https",
    },
}


@pytest.mark.parametrize("client", BACKENDS)
def test_the_security_settings_reach_every_client_of_every_role(client: str, made: Made) -> None:
    security = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        username="engine",
        ca_file=Path("/etc/ca.pem"),
    ).with_secrets(password=SecretStr("pw-of-engine"))
    kafka = KafkaSettings(bootstrap_servers="k:1", client=client, security=security)
    every_role(open_transport(kafka, client_id="c"))
    assert len(made) == 6
    for kind, config in made:
        assert {k: config.get(k) for k in SASL_SSL[client]} == SASL_SSL[client], kind


@pytest.mark.parametrize("client", BACKENDS)
@pytest.mark.parametrize("role", ["producer", "reader", "admin"])
def test_no_broker_is_one_line_within_the_connect_timeout(
    client: str, role: str, dead_servers: str
) -> None:
    transport = open_transport(
        KafkaSettings(bootstrap_servers=dead_servers, client=client),
        client_id="c",
        connect_timeout_s=1.0,
    )
    started = time.monotonic()
    with pytest.raises(BrokerUnreachableError) as unreachable:
        getattr(transport, role)()
    assert time.monotonic() - started < 10
    message = str(unreachable.value)
    assert message.startswith(f"no Kafka broker answers at {dead_servers}")
    assert "\n" not in message


@pytest.mark.slow
def test_commands_without_a_broker_end_with_one_line(dead_servers: str) -> None:
    """What a user sees: one line on stderr, exit 1, no traceback, in bounded time."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": dead_servers}
    commands = {
        (command[0], client): subprocess.Popen(
            [sys.executable, "-m", "stream_mlops", *command, "--client", client],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in (["topics", "create"], ["tail"])
        for client in BACKENDS
    }
    started = time.monotonic()
    try:
        results = {key: process.communicate(timeout=120) for key, process in commands.items()}
    finally:
        for process in commands.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    # The connect timeout is 10 s; the rest is interpreter start-up on a shared machine.
    assert time.monotonic() - started < 90
    for (command, client), (out, err) in results.items():
        assert commands[(command, client)].returncode == 1, (command, client, err)
        assert out == ""
        lines = err.splitlines()
        assert len(lines) == 1, (command, client, err)
        assert lines[0].startswith(f"stream-mlops {command}")
        assert f"no Kafka broker answers at {dead_servers}" in lines[0]


def test_the_confluent_engine_consumers_bound_their_prefetch(made: Made) -> None:
    # librdkafka's default prefetch is 64 MiB per partition: on a backlog that
    # was most of the confluent-kafka engine's RSS.
    transport = open_transport(KafkaSettings(client="confluent-kafka"), client_id="c")
    transport.group_consumer("g", max_poll_interval_ms=60_000)
    transport.partition_reader()
    assert [kind for kind, _config in made] == ["Consumer", "Consumer"]
    assert all(config["queued.max.messages.kbytes"] <= 16_384 for _kind, config in made)
