"""The compose files, which cannot run here (no Docker), kept true to the code they mirror."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from stream_mlops.config import Settings
from stream_mlops.kafka.acls import kafka_acls_commands, service_acls
from stream_mlops.kafka.broker.settings import BrokerSettings, render_server_properties

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILES = ["docker-compose.yml", "docker-compose.sasl-ssl.yml"]
SASL_SSL = ROOT / "docker" / "sasl-ssl"


def properties(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_published_ports_listen_on_the_loopback_interface_only(name: str) -> None:
    published: list[str] = []
    in_ports = False
    for line in (ROOT / name).read_text().splitlines():
        stripped = line.strip()
        if stripped == "ports:":
            in_ports = True
        elif in_ports and stripped.startswith("- "):
            published.append(stripped.removeprefix("- ").strip("'\""))
        elif in_ports and not stripped.startswith("#"):
            in_ports = False
    assert published, f"{name} publishes no port?"
    for port in published:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_the_secured_compose_names_no_secret() -> None:
    text = (ROOT / "docker-compose.sasl-ssl.yml").read_text()
    assert "KAFKA_SASL_PASSWORD:" not in text
    assert text.count("KAFKA_SASL_PASSWORD_FILE:") == 2
    for script in ("make-secrets.sh", "start-broker.sh", "acls.sh"):
        assert f"/etc/stream-mlops/{script}" in text


def test_the_acls_script_is_what_stream_mlops_acls_prints() -> None:
    rules = service_acls(Settings(), {"engine": "User:engine", "retrainer": "User:retrainer"})
    expected = kafka_acls_commands(rules, "kafka:19093", "/secrets/admin.properties")
    script = (SASL_SSL / "acls.sh").read_text().splitlines()
    assert [line for line in script if line.startswith("kafka-acls.sh")] == expected


def test_the_compose_broker_is_secured_like_the_managed_one() -> None:
    managed = properties(
        render_server_properties(
            BrokerSettings(data_dir=Path("/d"), secure=True), inter_broker_password="x"
        )
    )
    compose = properties((SASL_SSL / "server.properties").read_text())
    for key in (
        "sasl.enabled.mechanisms",
        "sasl.mechanism.inter.broker.protocol",
        "listener.name.controller.ssl.client.auth",
        "ssl.principal.mapping.rules",
        "authorizer.class.name",
        "allow.everyone.if.no.acl.found",
        "super.users",
        "transaction.state.log.min.isr",
    ):
        assert compose[key] == managed[key], key
    protocols = dict(
        item.split(":") for item in compose["listener.security.protocol.map"].split(",")
    )
    assert protocols == {"CONTROLLER": "SSL", "INTERNAL": "SASL_SSL", "EXTERNAL": "SASL_SSL"}


@pytest.mark.slow  # eight keytool JVMs
def test_make_secrets_builds_a_ca_a_broker_keystore_and_passwords_once(tmp_path: Path) -> None:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SASL_SSL / "make-secrets.sh")],
            env={"SECRETS": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/local/bin"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = run()
    assert first.returncode == 0, first.stderr
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    store = (tmp_path / "store.password").read_text()
    listing = subprocess.run(
        [
            "keytool",
            "-list",
            "-rfc",
            "-keystore",
            str(tmp_path / "broker.p12"),
            "-storepass",
            store,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    chain = x509.load_pem_x509_certificates(
        "".join(
            re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", listing, re.S)
        ).encode()
    )
    broker = next(c for c in chain if c.subject.rfc4514_string() == "CN=broker")
    broker.verify_directly_issued_by(ca)
    san = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"kafka", "localhost"}
    # The CA's key is gone; the users have distinct passwords; a second run changes nothing.
    assert not (tmp_path / "ca.p12").exists()
    passwords = {p.name: p.read_text() for p in tmp_path.glob("*.password")}
    assert set(passwords) == {
        f"{u}.password" for u in ("broker", "admin", "engine", "retrainer", "store")
    }
    assert len(set(passwords.values())) == len(passwords)
    admin = (tmp_path / "admin.properties").read_text()
    assert f'password="{passwords["admin.password"]}"' in admin
    second = run()
    assert second.returncode == 0
    assert "already" in second.stdout
    assert {p.name: p.read_text() for p in tmp_path.glob("*.password")} == passwords
