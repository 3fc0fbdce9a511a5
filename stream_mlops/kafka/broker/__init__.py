"""The managed local Apache Kafka broker (``stream-mlops broker start|stop|status``).

A single KRaft node built from the Kafka jars on Maven (``pom.xml`` next to this
file), with its config, data, pid file and log under one data dir (``.kafka/``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# A module import, not a name import: bootstrap imports this package's settings.
from stream_mlops.kafka import bootstrap
from stream_mlops.kafka.broker.exceptions import BrokerError
from stream_mlops.kafka.broker.process import BrokerStatus, LocalBroker
from stream_mlops.kafka.broker.settings import BrokerSettings, BrokerSettingsError

__all__ = [
    "EXIT_NOT_RUNNING",
    "BrokerError",
    "BrokerSettings",
    "BrokerStatus",
    "LocalBroker",
    "command",
]

# `status` follows the LSB convention (0 running, 3 not running) so scripts can branch on it.
EXIT_NOT_RUNNING = 3


def command(action: str, data_dir: Path | None = None) -> int:
    """Run ``broker start|stop|status`` and return the process exit code."""
    try:
        broker = LocalBroker(BrokerSettings.from_env(data_dir))
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
    else:
        print(f"broker already {broker.status().describe()}")
    return 0


def _stop(broker: LocalBroker) -> int:
    pid = broker.status().pid
    if broker.stop():
        print(f"broker stopped (pid {pid})")
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
