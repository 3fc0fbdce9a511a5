"""The secured local broker (``broker start --secure``), over TCP, with both client libraries.

The session's secured broker (``conftest.py``): SASL_SSL with SCRAM-SHA-512, the
users and ACLs it creates. Each client library is used directly (this tests the
broker, not our transport), configured from the client files the broker writes;
``test_secure_services.py`` runs our commands on it.
"""

from __future__ import annotations

import logging
import stat
import time
import uuid
from pathlib import Path
from typing import Any

import kafka.errors as kerrors
import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from pydantic import SecretStr

from stream_mlops.config import KafkaSecurity
from stream_mlops.kafka.broker.tls import generate
from stream_mlops.kafka.security import kafka_python_options, librdkafka_options
from tests.kafka.broker.conftest import SecureBroker
from tests.kafka.broker.managed import broker_env, cli

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# A refused client must say so within seconds, not after a default half-minute wait.
FAIL_FAST_S = 10.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(broker: SecureBroker, name: str) -> None:
    admin = KafkaAdminClient(
        bootstrap_servers=broker.servers, **kafka_python_options(broker.security("admin"))
    )
    try:
        admin.create_topics({name: {"num_partitions": 1}}, wait_for_metadata=True)
    finally:
        admin.close()


def test_start_writes_the_client_files_with_private_secrets(secure_broker: SecureBroker) -> None:
    s = secure_broker.settings
    assert "[SASL_SSL]" in secure_broker.start_output
    assert f"--config {s.client_dir / 'engine.toml'}" in secure_broker.start_output
    for private in (
        s.secrets_dir / "engine.password",
        s.certificates.node_file,
        s.client_dir / "admin.properties",
        s.client_dir / "admin-kcat.conf",
        s.server_properties,
    ):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    assert stat.S_IMODE(s.secrets_dir.stat().st_mode) == 0o700
    admin_password = (s.secrets_dir / "admin.password").read_text().strip()
    assert f'password="{admin_password}"' in (s.client_dir / "admin.properties").read_text()
    # Our own configs point at the password file instead of carrying the password.
    engine_toml = (s.client_dir / "engine.toml").read_text()
    assert (s.secrets_dir / "engine.password").read_text().strip() not in engine_toml
    # Nothing secret in the broker's own log.
    assert admin_password not in s.log_file.read_text()


def test_kafka_python_produces_and_consumes_over_sasl_ssl(secure_broker: SecureBroker) -> None:
    topic = unique("secure-kp")
    create_topic(secure_broker, topic)
    options = kafka_python_options(secure_broker.security("admin"))
    producer = KafkaProducer(bootstrap_servers=secure_broker.servers, **options)
    try:
        for i in range(20):
            producer.send(topic, value=f"kp-{i}".encode())
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=secure_broker.servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15_000,
        **options,
    )
    values: list[bytes] = []
    try:
        for record in consumer:
            values.append(record.value)
            if len(values) == 20:
                break
    finally:
        consumer.close()
    assert values == [f"kp-{i}".encode() for i in range(20)]


def test_confluent_kafka_produces_and_consumes_over_sasl_ssl(secure_broker: SecureBroker) -> None:
    topic = unique("secure-ck")
    create_topic(secure_broker, topic)
    options: dict[str, Any] = {
        "bootstrap.servers": secure_broker.servers,
        **librdkafka_options(secure_broker.security("admin")),
    }
    producer = Producer(options)
    delivered: list[KafkaError | None] = []
    for i in range(20):
        producer.produce(
            topic, f"ck-{i}".encode(), on_delivery=lambda err, _m: delivered.append(err)
        )
    assert producer.flush(30) == 0
    assert delivered == [None] * 20
    consumer = Consumer(
        {**options, "group.id": unique("secure-group"), "auto.offset.reset": "earliest"}
    )
    values: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(values) < 20 and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                values.append(message.value())
    finally:
        consumer.close()
    assert values == [f"ck-{i}".encode() for i in range(20)]


def test_only_the_services_may_write_the_state_topic(secure_broker: SecureBroker) -> None:
    # The ACLs are granted on the contract's default names; this broker is ours alone.
    create_topic(secure_broker, "stream-mlops-state")
    create_topic(secure_broker, "drift-alerts")

    def send(user: str, topic: str) -> None:
        options = kafka_python_options(secure_broker.security(user))
        producer = KafkaProducer(bootstrap_servers=secure_broker.servers, **options)
        try:
            producer.send(topic, key=b"0", value=b"{}").get(timeout=15)
        finally:
            producer.close(timeout=5)

    send("engine", "stream-mlops-state")
    send("retrainer", "stream-mlops-state")
    send("engine", "drift-alerts")
    for user, topic in [
        ("operator", "stream-mlops-state"),
        ("scorer", "stream-mlops-state"),
        ("retrainer", "drift-alerts"),
    ]:
        with pytest.raises(kerrors.TopicAuthorizationFailedError):
            send(user, topic)


def kafka_python_refusal(
    broker: SecureBroker, security: KafkaSecurity, caplog: pytest.LogCaptureFixture
) -> tuple[float, str]:
    """How long kafka-python took to give up, and what it logged on the way."""
    caplog.set_level(logging.WARNING, logger="kafka")
    started = time.monotonic()
    # kafka-python retries a refused bootstrap until bootstrap_timeout_ms (30 s by
    # default) and logs each cause; the first is logged within the first second.
    with pytest.raises(kerrors.KafkaTimeoutError):
        KafkaProducer(
            bootstrap_servers=broker.servers,
            bootstrap_timeout_ms=3000,
            **kafka_python_options(security),
        )
    return time.monotonic() - started, caplog.text


def librdkafka_refusal(broker: SecureBroker, security: KafkaSecurity) -> tuple[float, KafkaError]:
    errors: list[KafkaError] = []
    producer = Producer(
        {
            "bootstrap.servers": broker.servers,
            **librdkafka_options(security),
            "error_cb": errors.append,
            "log_level": 0,
        }
    )
    started = time.monotonic()
    while not errors and time.monotonic() - started < FAIL_FAST_S:
        producer.poll(0.1)
    assert errors, f"librdkafka reported nothing within {FAIL_FAST_S} s"
    return time.monotonic() - started, errors[0]


WRONG_PASSWORD = "wrong-password-c0ffee"


def refused_users(broker: SecureBroker) -> dict[str, KafkaSecurity]:
    engine = broker.security("engine")
    return {
        "wrong password": engine.with_secrets(password=SecretStr(WRONG_PASSWORD)),
        "unknown user": engine.model_copy(update={"username": "mallory"}),
    }


@pytest.mark.parametrize("case", ["wrong password", "unknown user"])
def test_bad_credentials_fail_fast_and_say_so(
    secure_broker: SecureBroker, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    security = refused_users(secure_broker)[case]
    refusals_before = secure_broker.settings.log_file.read_text().count("Failed authentication")
    elapsed, logged = kafka_python_refusal(secure_broker, security, caplog)
    assert elapsed < FAIL_FAST_S
    # The broker refused the credential (and says why in its log). kafka-python 3.0.12
    # often reports only "socket disconnected": it drops the bytes of the
    # SaslAuthenticate error when the broker's close arrives in the same read
    # (KafkaTCPTransport._sock_recv), so its own log is no reliable witness.
    broker_log = secure_broker.settings.log_file.read_text()
    assert broker_log.count("Failed authentication") > refusals_before
    assert "due to invalid credentials with SASL mechanism SCRAM-SHA-512" in broker_log
    elapsed, error = librdkafka_refusal(secure_broker, security)
    assert elapsed < FAIL_FAST_S
    assert error.code() == KafkaError._AUTHENTICATION
    assert "invalid credentials" in error.str()
    real = secure_broker.security("engine").password
    assert real is not None
    for text in (logged, error.str(), broker_log):
        assert WRONG_PASSWORD not in text
        assert real.get_secret_value() not in text


def test_an_untrusted_ca_fails_fast_and_says_so(
    secure_broker: SecureBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other_ca, _ = generate("elsewhere", ("localhost",), ("127.0.0.1",))
    (tmp_path / "other-ca.pem").write_bytes(other_ca)
    security = secure_broker.security("engine").model_copy(
        update={"ca_file": tmp_path / "other-ca.pem"}
    )
    elapsed, logged = kafka_python_refusal(secure_broker, security, caplog)
    assert elapsed < FAIL_FAST_S
    assert "CERTIFICATE_VERIFY_FAILED" in logged
    elapsed, error = librdkafka_refusal(secure_broker, security)
    assert elapsed < FAIL_FAST_S
    # librdkafka files a failed handshake under _SSL or _TRANSPORT; the text says why.
    assert error.code() in (KafkaError._SSL, KafkaError._TRANSPORT)
    assert "certificate verify failed" in error.str()


def test_status_and_start_without_flags_keep_what_the_data_dir_holds(
    secure_broker: SecureBroker,
) -> None:
    env = broker_env(secure_broker.settings.data_dir, secure_broker.settings.port)
    status = cli(env, "broker", "status")
    assert status.returncode == 0
    assert "[SASL_SSL]" in status.stdout
    # The broker runs, so start reports it as it is rather than restarting it.
    again = cli(env, "broker", "start")
    assert again.returncode == 0
    assert "already running" in again.stdout
