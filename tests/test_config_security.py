"""``[kafka.security]``: validation, environment overrides, secrets and their redaction."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import structlog

from stream_mlops import logging as sm_logging
from stream_mlops.config import ConfigError, KafkaSecurity, load_settings, parse_settings

SECRET = "pw-7f3a9c-do-not-leak"


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    return write(tmp_path, "-----BEGIN CERTIFICATE-----\n", "ca.pem")


def scram_toml(tmp_path: Path, extra: str = "") -> Path:
    return write(
        tmp_path,
        f"""
[kafka.security]
protocol = "SASL_SSL"
sasl_mechanism = "SCRAM-SHA-512"
username = "engine"
{extra}
""",
    )


def test_the_default_is_plaintext_without_secrets() -> None:
    security = load_settings(None, environ={}).kafka.security
    assert security.protocol == "PLAINTEXT"
    assert security.password is None
    assert security.check_hostname is True


@pytest.mark.parametrize(
    ("field", "source"),
    [("password", "KAFKA_SASL_PASSWORD"), ("key_password", "KAFKA_SSL_KEY_PASSWORD")],
)
def test_a_secret_written_in_the_file_is_refused_without_repeating_it(
    tmp_path: Path, field: str, source: str
) -> None:
    path = scram_toml(tmp_path, f'{field} = "{SECRET}"')
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={"KAFKA_SASL_PASSWORD": "x"})
    message = str(raised.value)
    assert message.startswith(f"kafka.security.{field}: a secret is not read from the config")
    assert source in message
    assert SECRET not in message


def test_the_password_comes_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(scram_toml(tmp_path), environ={"KAFKA_SASL_PASSWORD": SECRET})
    assert settings.kafka.security.password is not None
    assert settings.kafka.security.password.get_secret_value() == SECRET


def test_the_password_comes_from_a_file_without_its_final_newline(tmp_path: Path) -> None:
    secret_file = write(tmp_path, SECRET + "\n", "engine.password")
    path = scram_toml(tmp_path, f'password_file = "{secret_file}"')
    security = load_settings(path, environ={}).kafka.security
    assert security.password is not None
    assert security.password.get_secret_value() == SECRET
    # The environment wins over the file.
    again = load_settings(path, environ={"KAFKA_SASL_PASSWORD": "other"}).kafka.security
    assert again.password is not None
    assert again.password.get_secret_value() == "other"


def test_sasl_without_a_password_names_where_to_put_one(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^kafka\.security\.password_file: .*KAFKA_SASL_PASSWORD"
    ):
        load_settings(scram_toml(tmp_path), environ={})


@pytest.mark.parametrize(
    ("security", "message"),
    [
        ({"protocol": "SASL_SSL", "username": "u"}, r"^kafka\.security\.sasl_mechanism: "),
        (
            {"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"},
            r"^kafka\.security\.username: .* needs a user name",
        ),
        ({"protocol": "TLS"}, r"^kafka\.security\.protocol: Input should be"),
        (
            {"protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "username": "u"},
            r"^kafka\.security\.sasl_mechanism: Input should be",
        ),
        # A forgotten protocol would connect in plain text with the file looking secured.
        ({"username": "u"}, r"^kafka\.security\.username: only used with protocol SASL_"),
        (
            {
                "protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "username": "u",
                "ca_file": "ca.pem",
            },
            r"^kafka\.security\.ca_file: only used with protocol SSL or SASL_SSL",
        ),
        ({"protocol": "SSL", "cert_file": "/etc/hostname"}, r"^kafka\.security\.key_file: mutual"),
        ({"protocol": "SSL", "check_hostname": "maybe"}, r"^kafka\.security\.check_hostname: "),
        ({"tls": True}, r"^kafka\.security\.tls: Extra inputs are not permitted"),
    ],
)
def test_bad_security_settings_name_the_field(security: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings({"kafka": {"security": security}})


def test_a_missing_file_is_named_at_load_time(tmp_path: Path) -> None:
    path = write(tmp_path, '[kafka.security]\nprotocol = "SSL"\nca_file = "/no/such/ca.pem"\n')
    parse_settings({"kafka": {"security": {"protocol": "SSL", "ca_file": "/no/such/ca.pem"}}})
    with pytest.raises(ConfigError, match=r"^kafka\.security\.ca_file: no such file: /no/such"):
        load_settings(path, environ={})


def test_environment_overrides_the_connection_settings(tmp_path: Path, ca: Path) -> None:
    env = {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "KAFKA_SASL_USERNAME": "retrainer",
        "KAFKA_SASL_PASSWORD": SECRET,
        "KAFKA_SSL_CAFILE": str(ca),
        "KAFKA_SSL_CHECK_HOSTNAME": "false",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9093",
    }
    path = write(tmp_path, '[kafka.security]\nusername = "engine"\nprotocol = "SASL_PLAINTEXT"\n')
    settings = load_settings(path, environ=env)
    security = settings.kafka.security
    assert (security.protocol, security.sasl_mechanism, security.username) == (
        "SASL_SSL",
        "SCRAM-SHA-256",
        "retrainer",
    )
    assert (security.ca_file, security.check_hostname) == (ca, False)
    assert settings.kafka.bootstrap_servers == "kafka-1:9093"


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(
        ConfigError, match=r"^kafka\.security\.protocol \(KAFKA_SECURITY_PROTOCOL\)"
    ):
        load_settings(None, environ={"KAFKA_SECURITY_PROTOCOL": "SASL_TLS"})


def test_a_password_for_a_protocol_without_sasl_is_refused() -> None:
    # Most likely the protocol was forgotten: refusing beats connecting unauthenticated.
    with pytest.raises(
        ConfigError, match=r"^kafka\.security\.protocol: KAFKA_SASL_PASSWORD is set"
    ):
        load_settings(None, environ={"KAFKA_SASL_PASSWORD": SECRET})


def test_mutual_tls_with_an_encrypted_key(tmp_path: Path, ca: Path) -> None:
    cert = write(tmp_path, "cert", "client.pem")
    key = write(tmp_path, "key", "client.key")
    key_password = write(tmp_path, SECRET + "\n", "client.key.password")
    path = write(
        tmp_path,
        f"""
[kafka.security]
protocol = "SSL"
ca_file = "{ca}"
cert_file = "{cert}"
key_file = "{key}"
key_password_file = "{key_password}"
""",
    )
    security = load_settings(path, environ={}).kafka.security
    assert (security.cert_file, security.key_file) == (cert, key)
    assert security.key_password is not None
    assert security.key_password.get_secret_value() == SECRET


def test_secrets_appear_in_no_repr_dump_or_log_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = write(tmp_path, "from-a-file-" + SECRET, "pw")
    path = scram_toml(tmp_path, f'password_file = "{secret_file}"')
    settings = load_settings(path, environ={"KAFKA_SASL_PASSWORD": SECRET})
    security = settings.kafka.security
    assert security.password is not None  # resolved...
    shown = [
        repr(settings),
        str(settings),
        repr(security),
        json.dumps(settings.model_dump(mode="json")),
        settings.model_dump_json(),
        f"{security}",
    ]
    for text in shown:
        assert SECRET not in text
    assert "password" not in settings.model_dump()["kafka"]["security"]

    # Log lines that carry the whole section (as an engine.config event might).
    sm_logging.configure("json")  # after capsys took stdout, so the lines land there
    try:
        structlog.get_logger("test").info("engine.config", security=security, kafka=settings.kafka)
    finally:
        structlog.reset_defaults()
    logging.getLogger("test").warning("settings %r", settings)
    captured = capsys.readouterr()
    assert '"event": "engine.config"' in captured.out
    assert "SecretStr('**********')" in captured.out
    assert SECRET not in captured.out + captured.err


def test_with_secrets_keeps_what_is_not_replaced() -> None:
    from pydantic import SecretStr

    security = KafkaSecurity().with_secrets(password=SecretStr("a"))
    again = security.with_secrets(key_password=SecretStr("b"))
    assert again.password is not None
    assert again.password.get_secret_value() == "a"


def test_redacted_shows_what_is_set_and_stars_for_each_secret(tmp_path: Path) -> None:
    key_password = write(tmp_path, "key-" + SECRET, "kp")
    cert, key = write(tmp_path, "cert", "c.pem"), write(tmp_path, "key", "k.pem")
    path = scram_toml(
        tmp_path,
        f'cert_file = "{cert}"\nkey_file = "{key}"\nkey_password_file = "{key_password}"',
    )
    settings = load_settings(path, environ={"KAFKA_SASL_PASSWORD": SECRET})
    shown = settings.kafka.security.redacted()
    assert shown["password"] == shown["key_password"] == "**********"
    assert shown["username"] == "engine"
    assert shown["key_password_file"] == str(key_password)
    assert SECRET not in json.dumps(shown)
