"""``[kafka.security]`` -> each client library's options, checked against the libraries."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from pydantic import SecretStr

from stream_mlops.config import KafkaSecurity, SaslMechanism, SecurityProtocol
from stream_mlops.kafka.broker.tls import generate
from stream_mlops.kafka.security import kafka_python_options, librdkafka_options


@pytest.fixture
def pem_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A real CA and client certificate + key (PEM), as librdkafka loads them at construction."""
    ca_pem, key_and_chain = generate("client", ("localhost",), ())
    ca = tmp_path / "ca.pem"
    ca.write_bytes(ca_pem)
    both = tmp_path / "client.pem"
    both.write_bytes(key_and_chain)
    return ca, both, both


def security(
    protocol: SecurityProtocol,
    mechanism: SaslMechanism | None = None,
    **fields: object,
) -> KafkaSecurity:
    settings = KafkaSecurity.model_validate(
        {"protocol": protocol, "sasl_mechanism": mechanism, **fields}
    )
    if settings.uses_sasl:
        settings = settings.with_secrets(password=SecretStr("s3cret"))
    return settings


def test_sasl_ssl_with_scram_maps_to_both_libraries(pem_files: tuple[Path, Path, Path]) -> None:
    ca, _, _ = pem_files
    scram = security("SASL_SSL", "SCRAM-SHA-512", username="engine", ca_file=str(ca))
    assert kafka_python_options(scram) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "engine",
        "sasl_plain_password": "s3cret",
        "ssl_check_hostname": True,
        "ssl_cafile": str(ca),
    }
    assert librdkafka_options(scram) == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "engine",
        "sasl.password": "s3cret",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(ca),
    }


def test_mutual_tls_without_hostname_check(pem_files: tuple[Path, Path, Path]) -> None:
    ca, cert, key = pem_files
    mtls = security(
        "SSL", ca_file=str(ca), cert_file=str(cert), key_file=str(key), check_hostname=False
    ).with_secrets(key_password=SecretStr("k3y"))
    assert kafka_python_options(mtls) == {
        "security_protocol": "SSL",
        "ssl_check_hostname": False,
        "ssl_cafile": str(ca),
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
        "ssl_password": "k3y",
    }
    options = librdkafka_options(mtls)
    assert options["ssl.endpoint.identification.algorithm"] == "none"
    assert (options["ssl.certificate.location"], options["ssl.key.location"]) == (
        str(cert),
        str(key),
    )
    assert options["ssl.key.password"] == "k3y"
    assert "sasl.mechanisms" not in options


def test_sasl_plaintext_carries_no_tls_options() -> None:
    plain = security("SASL_PLAINTEXT", "PLAIN", username="u")
    assert not any(k.startswith("ssl") for k in kafka_python_options(plain))
    assert not any(k.startswith("ssl") for k in librdkafka_options(plain))


def test_sasl_settings_built_without_their_password_fail_without_a_secret() -> None:
    unresolved = KafkaSecurity.model_validate(
        {"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "username": "u"}
    )
    with pytest.raises(ValueError, match=r"kafka\.security\.password is not resolved"):
        kafka_python_options(unresolved)


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
def test_every_kafka_python_key_is_a_setting_of_every_client(
    protocol: SecurityProtocol, pem_files: tuple[Path, Path, Path]
) -> None:
    ca, cert, key = pem_files
    fields: dict[str, object] = {}
    if protocol in ("SSL", "SASL_SSL"):
        fields |= {"ca_file": str(ca), "cert_file": str(cert), "key_file": str(key)}
    if protocol.startswith("SASL"):
        fields["username"] = "u"
    settings = security(protocol, "SCRAM-SHA-256" if "SASL" in protocol else None, **fields)
    if settings.key_file is not None:
        settings = settings.with_secrets(key_password=SecretStr("k"))
    options = kafka_python_options(settings)
    for client in (KafkaProducer, KafkaConsumer, KafkaAdminClient):
        unknown = set(options) - set(client.DEFAULT_CONFIG)
        assert not unknown, f"{client.__name__} has no {sorted(unknown)}"


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL", "SASL_PLAINTEXT"])
def test_librdkafka_accepts_every_key_and_loads_the_files(
    protocol: SecurityProtocol, pem_files: tuple[Path, Path, Path]
) -> None:
    ca, cert, key = pem_files
    fields: dict[str, object] = {"username": "u"} if protocol.startswith("SASL") else {}
    if protocol != "SASL_PLAINTEXT":
        fields |= {"ca_file": str(ca), "cert_file": str(cert), "key_file": str(key)}
    settings = security(protocol, "SCRAM-SHA-512" if "SASL" in protocol else None, **fields)
    # librdkafka checks every property name and value, and reads the CA, certificate
    # and key, when the client is built; a wrong key raises KafkaException here.
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", **librdkafka_options(settings)})
    producer.flush(0)
