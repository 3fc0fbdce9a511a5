"""Why a secured cluster refused a client, in one line that names no secret (pure).

Both client libraries report a refused login or TLS handshake in their own way,
and neither says it in words a user can act on:

* librdkafka (confluent-kafka) passes an error to the client's error callback
  within a second: ``_AUTHENTICATION`` ("SASL authentication error:
  Authentication failed during authentication due to invalid credentials with
  SASL mechanism SCRAM-SHA-512"), or ``_SSL`` / ``_TRANSPORT`` with "certificate
  verify failed". A wrong password and an unknown user look the same (the broker
  does not tell them apart, on purpose). Its clients then retry for ever.
* kafka-python 3.0.12 only logs the cause and retries until its bootstrap
  timeout, then raises ``KafkaTimeoutError: Unable to bootstrap``. A refused
  certificate is logged clearly (``CERTIFICATE_VERIFY_FAILED``); a refused
  password often only as "socket disconnected", because when the broker's close
  arrives in the same read as its SaslAuthenticate error, the transport drops the
  error's bytes. So a dropped connection during a SASL login is reported as what
  it most likely is, and says so.

The backends hand what their library said to ``librdkafka_refusal`` /
``kafka_python_refusal`` and raise what ``refusal_error`` builds.

>>> from stream_mlops.config import KafkaSecurity
>>> engine = KafkaSecurity.model_construct(
...     protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", username="engine", ca_file=None,
...     check_hostname=True, password=None)
>>> print(refusal_error("k:9093", engine, "login", "invalid credentials"))
Kafka at k:9093 refused the SCRAM-SHA-512 login of user 'engine' over SASL_SSL: \
a wrong password or an unknown user (invalid credentials)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from stream_mlops.config import KafkaSecurity
from stream_mlops.kafka.transport import AuthenticationFailedError

__all__ = ["Refusal", "kafka_python_refusal", "librdkafka_refusal", "refusal_error"]

#: ``login``: the SASL credentials were refused; ``certificate``: the broker's TLS
#: certificate is not trusted; ``dropped-login``: the broker closed the connection
#: during a SASL login and no library error said why (kafka-python).
Refusal = Literal["login", "certificate", "dropped-login"]

# librdkafka's error names that mean a refused login, whatever the text says.
_LOGIN_ERRORS = frozenset({"_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED"})
_CERTIFICATE = re.compile(r"certificate verify failed[^()\]]*", re.IGNORECASE)
_SASL_FAILURE = re.compile(
    r"SaslAuthenticationFailedError: (?!SaslAuthenticationFailedError)(.+?)"
    r"(?: \(backoff [^)]*\))?\)*$"
)
# A detail longer than this is cut: one line, not a log dump.
_MAX_DETAIL = 240


def librdkafka_refusal(name: str, text: str) -> tuple[Refusal, str] | None:
    """The refusal a librdkafka error (its ``name()`` and ``str()``) reports, if any.

    >>> librdkafka_refusal("_TRANSPORT", "ssl://b:9093/bootstrap: SSL handshake failed: "
    ...     "error:0A000086:SSL routines::certificate verify failed: broker certificate "
    ...     "could not be verified, verify that ssl.ca.location is correctly configured")
    ('certificate', 'certificate verify failed: broker certificate could not be verified, \
verify that ssl.ca.location is correctly configured')
    >>> librdkafka_refusal("_TRANSPORT", "Connection refused") is None
    True
    """
    certificate = _CERTIFICATE.search(text)
    if certificate is not None:
        return "certificate", certificate.group(0).strip()
    if name in _LOGIN_ERRORS:
        return "login", _detail(text)
    if name == "_SSL":
        return "certificate", _detail(text)
    return None


def kafka_python_refusal(
    messages: Iterable[str], security: KafkaSecurity
) -> tuple[Refusal, str] | None:
    """The refusal kafka-python's log lines of a failed bootstrap show, if any.

    >>> from stream_mlops.config import KafkaSecurity
    >>> sasl = KafkaSecurity.model_construct(protocol="SASL_SSL", sasl_mechanism="PLAIN")
    >>> kafka_python_refusal(["<KafkaSSLTransport>: socket disconnected"], sasl)
    ('dropped-login', 'socket disconnected')
    >>> kafka_python_refusal(["Connect attempt returned error 111"], sasl) is None
    True
    """
    seen = list(messages)
    for message in reversed(seen):
        login = _SASL_FAILURE.search(message)
        if login is not None:
            return "login", _detail(login.group(1))
    for message in reversed(seen):
        certificate = _CERTIFICATE.search(message)
        if certificate is not None:
            return "certificate", certificate.group(0).strip()
    # A dropped connection only means a refused login where one was attempted: over
    # TLS the handshake must have passed (a failed one is logged as such).
    if security.uses_sasl and any("socket disconnected" in m for m in seen):
        handshake_failed = any("Handshake failed" in m for m in seen)
        if not handshake_failed:
            return "dropped-login", "socket disconnected"
    return None


def refusal_error(
    servers: str, security: KafkaSecurity, refusal: Refusal, detail: str
) -> AuthenticationFailedError:
    """The one-line error for ``refusal``: who was refused, and what to check.

    ``detail`` is the library's own words; the password is scrubbed from it should
    a library ever echo it.
    """
    detail = _scrub(detail, security)
    if refusal == "certificate":
        trust = (
            f"ca_file {security.ca_file}"
            if security.ca_file is not None
            else "the system's trust store (set kafka.security.ca_file)"
        )
        name_check = ", or names another host (check_hostname)" if security.check_hostname else ""
        message = (
            f"the TLS handshake with Kafka at {servers} failed: the broker's certificate is "
            f"not trusted by {trust}{name_check} ({detail})"
        )
    else:
        login = (
            f"the {security.sasl_mechanism} login of user {security.username!r} "
            f"over {security.protocol}"
        )
        if refusal == "login":
            message = (
                f"Kafka at {servers} refused {login}: a wrong password or an unknown user "
                f"({detail})"
            )
        else:
            message = (
                f"Kafka at {servers} closed the connection during {login}: most likely a "
                "wrong password or an unknown user (kafka-python reports a refused login "
                f"only as '{detail}'; the broker's log says which)"
            )
    return AuthenticationFailedError(servers, message)


def _detail(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= _MAX_DETAIL else one_line[: _MAX_DETAIL - 3] + "..."


def _scrub(text: str, security: KafkaSecurity) -> str:
    for secret in (security.password, security.key_password):
        if secret is not None and secret.get_secret_value():
            text = text.replace(secret.get_secret_value(), "**********")
    return text
