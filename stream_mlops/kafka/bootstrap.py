"""Which Kafka cluster the project talks to, and with which settings.

``KAFKA_BOOTSTRAP_SERVERS`` names an existing cluster; without it, the project
uses the managed local broker (``stream-mlops broker start``) at its address.
``connection_settings`` is what a command passes to ``open_transport``: the
configuration's ``[kafka]`` settings with the cluster resolved and the
command line's choices on top.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from stream_mlops.config import KafkaSettings, Settings
from stream_mlops.kafka.broker.settings import BrokerSettings

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"


def external_bootstrap_servers(environ: Mapping[str, str] | None = None) -> str | None:
    """The cluster named by ``KAFKA_BOOTSTRAP_SERVERS``, or None if it is unset or blank.

    >>> external_bootstrap_servers({"KAFKA_BOOTSTRAP_SERVERS": " kafka:9092 "})
    'kafka:9092'
    >>> external_bootstrap_servers({}) is None
    True
    """
    env = os.environ if environ is None else environ
    value = env.get(BOOTSTRAP_ENV, "").strip()
    return value or None


def bootstrap_servers(environ: Mapping[str, str] | None = None) -> str:
    """The external cluster if one is named, else the managed local broker's address.

    >>> bootstrap_servers({})
    '127.0.0.1:9092'
    >>> bootstrap_servers({"STREAM_MLOPS_BROKER_PORT": "29092"})
    '127.0.0.1:29092'
    """
    env = os.environ if environ is None else environ
    external = external_bootstrap_servers(env)
    if external is not None:
        return external
    return BrokerSettings.from_env(environ=env).bootstrap_servers


def configured_bootstrap_servers(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> str:
    """The cluster of a configuration: ``KAFKA_BOOTSTRAP_SERVERS``, else the
    config's ``[kafka] bootstrap_servers`` if it names one, else the local broker.

    >>> from stream_mlops.config import parse_settings
    >>> configured_bootstrap_servers(parse_settings({}), {"STREAM_MLOPS_BROKER_PORT": "29092"})
    '127.0.0.1:29092'
    >>> configured_bootstrap_servers(parse_settings({"kafka": {"bootstrap_servers": "k:9092"}}), {})
    'k:9092'
    """
    external = external_bootstrap_servers(environ)
    if external is not None:
        return external
    if "bootstrap_servers" in settings.kafka.model_fields_set:
        return settings.kafka.bootstrap_servers
    return bootstrap_servers(environ)


def connection_settings(
    settings: Settings,
    *,
    bootstrap_servers: str | None = None,
    client: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> KafkaSettings:
    """The ``[kafka]`` settings a command connects with.

    The cluster is ``bootstrap_servers`` (a command's ``--bootstrap``) if
    given, else as ``configured_bootstrap_servers`` finds it; ``client`` (a
    command's ``--client``) replaces ``[kafka] client`` if given. Everything
    else (and later the connection security) comes from the configuration.

    >>> from stream_mlops.config import parse_settings
    >>> settings = parse_settings({"kafka": {"client": "confluent-kafka"}})
    >>> kafka = connection_settings(settings, environ={})
    >>> kafka.bootstrap_servers, kafka.client
    ('127.0.0.1:9092', 'confluent-kafka')
    >>> kafka = connection_settings(settings, bootstrap_servers="k:1", client="kafka-python")
    >>> kafka.bootstrap_servers, kafka.client
    ('k:1', 'kafka-python')
    """
    update: dict[str, str] = {
        "bootstrap_servers": bootstrap_servers or configured_bootstrap_servers(settings, environ)
    }
    if client is not None:
        update["client"] = client
    return settings.kafka.model_copy(update=update)
