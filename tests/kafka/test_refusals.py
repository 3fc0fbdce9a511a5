"""What each client library says when a secured cluster refuses it, and the line we make of it.

The messages are what kafka-python 3.0.12 logged and librdkafka 2.x reported
against the secured local broker (``broker start --secure``); the real refusals
are exercised end to end in ``tests/kafka/broker/test_secure_services.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from stream_mlops.config import KafkaSecurity
from stream_mlops.kafka.backends.refusals import (
    kafka_python_refusal,
    librdkafka_refusal,
    refusal_error,
)
from stream_mlops.kafka.transport import AuthenticationFailedError, TransportError

SECRET = "pw-51c0-never-shown"
ENGINE = KafkaSecurity(
    protocol="SASL_SSL",
    sasl_mechanism="SCRAM-SHA-512",
    username="engine",
    ca_file=Path("/run/ca.pem"),
).with_secrets(password=SecretStr(SECRET))

KP_SASL_ABORT = (
    "<KafkaSSLTransport [127.0.0.1:29150<-56602]>: Abort ([Error 58] "
    "SaslAuthenticationFailedError: SaslAuthenticationFailedError: Authentication failed "
    "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512)"
)
KP_SASL_BOOTSTRAP = (
    "Bootstrap connection to bootstrap-0 failed: SaslAuthenticationFailedError: Authentication "
    "failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 "
    "(backoff 0.05 secs)"
)
KP_DISCONNECTED = [
    "<KafkaSSLTransport [127.0.0.1:29150<-56588]>: socket disconnected",
    "<KafkaConnection node_id=bootstrap-0 broker_version=(4, 1) (disconnected)>: Connection lost: "
    "KafkaConnectionError: socket disconnected",
    "Bootstrap failed: KafkaTimeoutError: Unable to bootstrap from 127.0.0.1:29150",
]
KP_CERTIFICATE = (
    "Connection failed: KafkaConnectionError: Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] "
    "certificate verify failed: self-signed certificate in certificate chain (_ssl.c:1006)"
)
RD_LOGIN = (
    "sasl_ssl://127.0.0.1:29150/bootstrap: SASL authentication error: Authentication failed during "
    "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 318ms in "
    "state AUTH_REQ)"
)
RD_CERTIFICATE = (
    "ssl://127.0.0.1:29150/bootstrap: SSL handshake failed: error:0A000086:SSL routines::"
    "certificate verify failed: broker certificate could not be verified, verify that "
    "ssl.ca.location is correctly configured or root CA certificates are installed "
    "(install ca-certificates package) (after 12ms in state SSL_HANDSHAKE)"
)
WHY = (
    "Authentication failed during authentication due to invalid credentials with SASL mechanism "
    "SCRAM-SHA-512"
)


@pytest.mark.parametrize("message", [KP_SASL_ABORT, KP_SASL_BOOTSTRAP])
def test_kafka_python_login_refusals_keep_the_brokers_reason(message: str) -> None:
    assert kafka_python_refusal([*KP_DISCONNECTED, message], ENGINE) == ("login", WHY)


def test_kafka_python_dropped_login_is_reported_as_its_likely_cause() -> None:
    assert kafka_python_refusal(KP_DISCONNECTED, ENGINE) == ("dropped-login", "socket disconnected")
    # Without SASL a dropped connection is no login failure; nor is a failed TLS handshake.
    tls_only = KafkaSecurity(protocol="SSL")
    assert kafka_python_refusal(KP_DISCONNECTED, tls_only) is None
    assert kafka_python_refusal(["Handshake failed: EOF", *KP_DISCONNECTED], ENGINE) is None


def test_kafka_python_untrusted_certificate() -> None:
    refusal = kafka_python_refusal([KP_CERTIFICATE], ENGINE)
    assert refusal == (
        "certificate",
        "certificate verify failed: self-signed certificate in certificate chain",
    )


def test_nothing_is_a_refusal_when_the_broker_is_just_down() -> None:
    down = ["Connect attempt to 127.0.0.1:1 returned error 111. Disconnecting."]
    assert kafka_python_refusal(down, ENGINE) is None
    assert librdkafka_refusal("_TRANSPORT", "Connect to ipv4#127.0.0.1:1 failed") is None
    assert librdkafka_refusal("_ALL_BROKERS_DOWN", "1/1 brokers are down") is None


def test_librdkafka_refusals() -> None:
    assert librdkafka_refusal("_AUTHENTICATION", RD_LOGIN) == ("login", RD_LOGIN)
    kind, detail = librdkafka_refusal("_TRANSPORT", RD_CERTIFICATE) or ("", "")
    assert kind == "certificate"
    assert detail.startswith("certificate verify failed: broker certificate could not be verified")


@pytest.mark.parametrize("refusal", ["login", "dropped-login", "certificate"])
def test_the_error_is_one_line_naming_what_to_check_and_never_the_secret(refusal: str) -> None:
    error = refusal_error("127.0.0.1:29150", ENGINE, refusal, f"echoed {SECRET} back")  # type: ignore[arg-type]
    assert isinstance(error, AuthenticationFailedError)
    assert isinstance(error, TransportError)
    text = str(error)
    assert "\n" not in text
    assert SECRET not in text
    assert "127.0.0.1:29150" in text
    if refusal == "certificate":
        assert "not trusted by ca_file /run/ca.pem" in text
    else:
        assert "user 'engine'" in text
        assert "SCRAM-SHA-512" in text
        assert "wrong password or an unknown user" in text
