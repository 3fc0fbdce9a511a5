"""``[kafka.security]`` as the options of each client library (pure: no client import).

A backend merges the mapping for its library into every client it builds
(producer, consumer, admin), so one setting reaches every command. The keys are
the libraries' own:

* kafka-python 3.x: ``security_protocol``, ``sasl_mechanism``,
  ``sasl_plain_username`` / ``sasl_plain_password`` (also used by SCRAM),
  ``ssl_cafile``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_password`` (the key's),
  ``ssl_check_hostname``; all in ``DEFAULT_CONFIG`` of ``KafkaProducer``,
  ``KafkaConsumer`` and ``KafkaAdminClient``.
* librdkafka (confluent-kafka), from its CONFIGURATION.md: ``security.protocol``,
  ``sasl.mechanisms``, ``sasl.username``, ``sasl.password``, ``ssl.ca.location``,
  ``ssl.certificate.location``, ``ssl.key.location``, ``ssl.key.password``, and
  ``ssl.endpoint.identification.algorithm`` (``https`` checks the host name,
  ``none`` does not; the certificate chain is verified either way).

The returned mappings hold the secrets in clear, because the libraries need them
so: hand them to a client and nowhere else (never to a log line or an error).

>>> from stream_mlops.config import KafkaSecurity
>>> from pydantic import SecretStr
>>> scram = KafkaSecurity.model_construct(
...     protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", username="engine"
... ).with_secrets(password=SecretStr("s3cret"))
>>> options = librdkafka_options(scram)
>>> options["security.protocol"], options["sasl.mechanisms"], options["sasl.username"]
('sasl_ssl', 'SCRAM-SHA-512', 'engine')
>>> kafka_python_options(KafkaSecurity())
{'security_protocol': 'PLAINTEXT'}
"""

from __future__ import annotations

from typing import Any

from stream_mlops.config import KafkaSecurity

__all__ = ["kafka_python_options", "librdkafka_options"]


def kafka_python_options(security: KafkaSecurity) -> dict[str, Any]:
    """Keyword arguments for kafka-python's producer, consumer and admin client."""
    options: dict[str, Any] = {"security_protocol": security.protocol}
    if security.uses_sasl:
        options["sasl_mechanism"] = security.sasl_mechanism
        options["sasl_plain_username"] = security.username
        options["sasl_plain_password"] = _reveal(security, "password")
    if security.uses_tls:
        options["ssl_check_hostname"] = security.check_hostname
        # Unset: kafka-python loads the system's default trust store.
        if security.ca_file is not None:
            options["ssl_cafile"] = str(security.ca_file)
        if security.cert_file is not None:
            options["ssl_certfile"] = str(security.cert_file)
            options["ssl_keyfile"] = str(security.key_file)
        if security.key_password is not None:
            options["ssl_password"] = security.key_password.get_secret_value()
    return options


def librdkafka_options(security: KafkaSecurity) -> dict[str, str]:
    """Configuration properties for confluent-kafka's producer, consumer and admin client."""
    options = {"security.protocol": security.protocol.lower()}
    if security.uses_sasl:
        options["sasl.mechanisms"] = str(security.sasl_mechanism)
        options["sasl.username"] = str(security.username)
        options["sasl.password"] = _reveal(security, "password")
    if security.uses_tls:
        options["ssl.endpoint.identification.algorithm"] = (
            "https" if security.check_hostname else "none"
        )
        # Unset: librdkafka probes the system's CA locations.
        if security.ca_file is not None:
            options["ssl.ca.location"] = str(security.ca_file)
        if security.cert_file is not None:
            options["ssl.certificate.location"] = str(security.cert_file)
            options["ssl.key.location"] = str(security.key_file)
        if security.key_password is not None:
            options["ssl.key.password"] = security.key_password.get_secret_value()
    return options


def _reveal(security: KafkaSecurity, field: str) -> str:
    secret = getattr(security, field)
    if secret is None:
        # load_settings refuses SASL without a password; this is a programming error
        # (settings built without resolve_security), and the message carries no secret.
        raise ValueError(
            f"kafka.security.{field} is not resolved: load the settings with load_settings "
            "or resolve_security"
        )
    value: str = secret.get_secret_value()
    return value
