"""The managed local Apache Kafka broker (``stream-mlops broker start|stop|status``).

A single KRaft node, or a cluster of them (``--nodes 3``), built from the Kafka
jars on Maven (``pom.xml`` next to this file), with config, data, pid files and
logs under one data dir (``.kafka/``); ``--secure`` adds SASL_SSL, SCRAM users and
ACLs (docs/security.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# A module import, not a name import: bootstrap imports this package's settings.
from stream_mlops.kafka import bootstrap
from stream_mlops.kafka.broker.exceptions import BrokerError
from stream_mlops.kafka.broker.layout import recorded_layout
from stream_mlops.kafka.broker.process import BrokerStatus, LocalBroker
from stream_mlops.kafka.broker.settings import (
    NODES_ENV,
    SECURE_ENV,
    BrokerSettings,
    BrokerSettingsError,
)

__all__ = [
    "EXIT_NOT_RUNNING",
    "BrokerError",
    "BrokerSettings",
    "BrokerStatus",
    "LocalBroker",
    "broker_settings",
    "command",
]

# `status` follows the LSB convention (0 running, 3 not running) so scripts can branch on it.
EXIT_NOT_RUNNING = 3


def command(
    action: str,
    data_dir: Path | None = None,
    *,
    nodes: int | None = None,
    secure: bool | None = None,
) -> int:
    """Run ``broker start|stop|status`` and return the process exit code.

    ``nodes`` and ``secure`` (``--nodes``, ``--secure``) matter to ``start``; unset,
    they come from ``STREAM_MLOPS_BROKER_NODES`` / ``_SECURE``, else from what the data
    dir already holds. ``stop`` and ``status`` always cover what the data dir holds.
    """
    try:
        broker = LocalBroker(broker_settings(action, data_dir, nodes, secure))
        if action == "start":
            return _start(broker)
        if action == "stop":
            return _stop(broker)
        if action == "status":
            return _status(broker)
    except BrokerSettingsError as exc:
        print(f"stream-mlops broker: {exc}", file=sys.stderr)
        return 2
    except BrokerError as exc:
        if exc.log_tail:
            print(f"--- last lines of the broker log ---\n{exc.log_tail}\n---", file=sys.stderr)
        print(f"stream-mlops broker {action}: {exc}", file=sys.stderr)
        return 1
    raise ValueError(f"unknown broker action {action!r}")


def broker_settings(
    action: str, data_dir: Path | None, nodes: int | None, secure: bool | None
) -> BrokerSettings:
    """The settings of a command: the arguments, else the environment, else the data dir's
    recorded layout (for ``stop`` and ``status``, the recorded layout always wins)."""
    settings = BrokerSettings.from_env(data_dir, nodes=nodes, secure=secure)
    recorded = recorded_layout(settings)
    if recorded is None:
        return settings
    if action != "start":
        return BrokerSettings.from_env(data_dir, nodes=recorded.nodes, secure=recorded.secure)
    if nodes is None and not os.environ.get(NODES_ENV, "").strip():
        nodes = recorded.nodes
    if secure is None and not os.environ.get(SECURE_ENV, "").strip():
        secure = recorded.secure
    return BrokerSettings.from_env(data_dir, nodes=nodes, secure=secure)


def _start(broker: LocalBroker) -> int:
    external = bootstrap.external_bootstrap_servers()
    if external is not None:
        print(
            f"{bootstrap.BOOTSTRAP_ENV} is set: using the Kafka cluster at {external}, "
            "starting nothing"
        )
        return 0
    if broker.start():
        print(f"broker started: {broker.status().describe()}, data in {broker.settings.data_dir}")
        if broker.settings.secure:
            client_dir = broker.settings.client_dir
            print(
                f"clients: CA {broker.settings.certificates.ca_file}, passwords in "
                f"{broker.settings.secrets_dir}/, configs in {client_dir}/ "
                f"(e.g. --config {broker.credentials.client_config('engine')})"
            )
    else:
        print(f"broker already {broker.status().describe()}")
    return 0


def _stop(broker: LocalBroker) -> int:
    pids = [node.pid for node in broker.status().nodes if node.pid is not None]
    if broker.stop():
        print(f"broker stopped (pid{'s' if len(pids) > 1 else ''} {', '.join(map(str, pids))})")
    else:
        print(f"broker not running (data dir {broker.settings.data_dir})")
    return 0


def _status(broker: LocalBroker) -> int:
    status = broker.status()
    print(f"broker {status.describe()}")
    external = bootstrap.external_bootstrap_servers()
    if external is not None:
        print(f"{bootstrap.BOOTSTRAP_ENV} is set: the project uses the Kafka cluster at {external}")
    return 0 if status.running else EXIT_NOT_RUNNING
