"""Kafka client backends behind ``stream_mlops.kafka.transport``: the one construction point.

Every command builds its Kafka clients from ``open_transport(settings.kafka,
client_id=...)``, so ``[kafka] client`` and every connection setting reach all
of them (engine, retrainer, ``tail``, ``topics``, the simulators, the demo, the
model-update follower) at once. Nothing outside this package imports a Kafka
client library.
"""

from __future__ import annotations

from typing import Any, Literal

from stream_mlops.config import KafkaSettings
from stream_mlops.kafka.backends.connection import Connection
from stream_mlops.kafka.security import kafka_python_options, librdkafka_options
from stream_mlops.kafka.transport import CONNECT_TIMEOUT_S, Transport

BACKENDS = ("kafka-python", "confluent-kafka")

#: The client libraries, by the name ``[kafka] client`` gives them.
Library = Literal["kafka-python", "confluent-kafka"]


def client_options(kafka: KafkaSettings, library: Library) -> dict[str, Any]:
    """Options from the settings that every client of ``library`` gets, in its own spelling.

    kafka-python takes keyword names (``security_protocol``), librdkafka dotted
    ones (``security.protocol``). The backends merge these into each client they
    create, under the role's own settings. Today they are the connection
    security of ``[kafka.security]`` (``stream_mlops.kafka.security``): the
    protocol, the SASL login and the TLS files. The mapping holds the secrets in
    clear, as the libraries need them: it goes to a client and nowhere else.

    >>> client_options(KafkaSettings(), "kafka-python")
    {'security_protocol': 'PLAINTEXT'}
    >>> client_options(KafkaSettings(), "confluent-kafka")
    {'security.protocol': 'plaintext'}
    """
    if library == "kafka-python":
        return kafka_python_options(kafka.security)
    return dict(librdkafka_options(kafka.security))


def open_transport(
    kafka: KafkaSettings, *, client_id: str, connect_timeout_s: float = CONNECT_TIMEOUT_S
) -> Transport:
    """The transport of ``kafka.client`` on ``kafka.bootstrap_servers``, with its options.

    Constructing it connects to nothing; each client it makes connects, and
    fails with ``BrokerUnreachableError`` if no broker answers within
    ``connect_timeout_s`` (the producer, reader and admin roles).

    >>> open_transport(KafkaSettings.model_construct(client="carrier-pigeon"), client_id="x")
    Traceback (most recent call last):
    ...
    ValueError: unknown Kafka client 'carrier-pigeon' (known: kafka-python, confluent-kafka)
    """
    if kafka.client == "kafka-python":
        from stream_mlops.kafka.backends.kafka_python import KafkaPythonTransport

        return KafkaPythonTransport(
            Connection(
                kafka.bootstrap_servers,
                client_id,
                client_options(kafka, "kafka-python"),
                connect_timeout_s,
                kafka.security,
            )
        )
    if kafka.client == "confluent-kafka":
        try:
            from stream_mlops.kafka.backends.confluent import ConfluentTransport
        except ImportError as exc:
            raise ValueError(
                "client 'confluent-kafka' needs the optional package: "
                "pip install 'stream-mlops[fast]'"
            ) from exc
        return ConfluentTransport(
            Connection(
                kafka.bootstrap_servers,
                client_id,
                client_options(kafka, "confluent-kafka"),
                connect_timeout_s,
                kafka.security,
            )
        )
    known = ", ".join(BACKENDS)
    raise ValueError(f"unknown Kafka client {kafka.client!r} (known: {known})")
