"""Kafka client backends behind ``stream_mlops.kafka.transport``, looked up by name."""

from __future__ import annotations

from stream_mlops.kafka.transport import Transport

BACKENDS = ("kafka-python", "confluent-kafka")


def transport_for(client: str, bootstrap_servers: str, *, client_id: str) -> Transport:
    """The transport of the named client library.

    >>> transport_for("carrier-pigeon", "127.0.0.1:9092", client_id="x")
    Traceback (most recent call last):
    ...
    ValueError: unknown Kafka client 'carrier-pigeon' (known: kafka-python, confluent-kafka)
    """
    if client == "kafka-python":
        from stream_mlops.kafka.backends.kafka_python import KafkaPythonTransport

        return KafkaPythonTransport(bootstrap_servers, client_id=client_id)
    if client == "confluent-kafka":
        try:
            from stream_mlops.kafka.backends.confluent import ConfluentTransport
        except ImportError as exc:
            raise ValueError(
                "client 'confluent-kafka' needs the optional package: "
                "pip install 'stream-mlops[fast]'"
            ) from exc
        return ConfluentTransport(bootstrap_servers, client_id=client_id)
    known = ", ".join(BACKENDS)
    raise ValueError(f"unknown Kafka client {client!r} (known: {known})")
