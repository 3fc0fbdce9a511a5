"""What a secured data dir holds before any JVM runs: layout, certificates, users."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from stream_mlops.kafka.broker import BrokerSettings
from stream_mlops.kafka.broker.credentials import USERS, BrokerCredentials
from stream_mlops.kafka.broker.exceptions import BrokerError
from stream_mlops.kafka.broker.layout import Layout, check_layout, record_layout, recorded_layout


def test_a_data_dir_is_only_started_as_what_it_was_formatted_as(tmp_path: Path) -> None:
    plain = BrokerSettings(data_dir=tmp_path)
    assert recorded_layout(plain) is None
    record_layout(BrokerSettings(data_dir=tmp_path, nodes=3, secure=True))
    assert recorded_layout(plain) == Layout(3, secure=True)
    with pytest.raises(
        BrokerError, match=r"holds a secured \(SASL_SSL\) 3-node cluster, not a plain"
    ):
        check_layout(plain)
    check_layout(BrokerSettings(data_dir=tmp_path, nodes=3, secure=True))


def test_a_data_dir_formatted_before_layouts_were_recorded_is_a_plain_node(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.properties").write_text("node.id=1\n")
    assert recorded_layout(BrokerSettings(data_dir=tmp_path)) == Layout(1, secure=False)


def test_certificates_name_the_loopback_and_keep_the_key_private(tmp_path: Path) -> None:
    certificates = BrokerSettings(data_dir=tmp_path, secure=True).certificates
    assert certificates.ensure() is True
    assert certificates.ensure() is False  # made once
    assert stat.S_IMODE(certificates.node_file.stat().st_mode) == 0o600
    node_pem = certificates.node_file.read_bytes()
    assert b"-----BEGIN PRIVATE KEY-----" in node_pem  # PKCS#8, as Kafka's PEM keystore wants
    node, ca = x509.load_pem_x509_certificates(node_pem)
    assert ca == x509.load_pem_x509_certificate(certificates.ca_file.read_bytes())
    san = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usage = node.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    node.verify_directly_issued_by(ca)
    assert b"PRIVATE KEY" not in certificates.ca_file.read_bytes()


def test_users_get_random_private_passwords_once(tmp_path: Path) -> None:
    credentials = BrokerCredentials(BrokerSettings(data_dir=tmp_path, secure=True))
    assert credentials.ensure() is True
    first = {user: credentials.password(user).get_secret_value() for user in USERS}
    assert credentials.ensure() is False
    assert {user: credentials.password(user).get_secret_value() for user in USERS} == first
    assert len(set(first.values())) == len(USERS)
    assert all(len(p) >= 40 for p in first.values())
    for user in USERS:
        assert stat.S_IMODE(credentials.password_file(user).stat().st_mode) == 0o600
    arguments = credentials.scram_format_arguments()
    assert arguments[:2] == [
        "--add-scram",
        f"SCRAM-SHA-512=[name=broker,password={first['broker']}]",
    ]
    assert len(arguments) == 2 * len(USERS)
    security = credentials.security("engine")
    assert security.protocol == "SASL_SSL"
    assert security.password is not None
    assert first["engine"] not in repr(security)
