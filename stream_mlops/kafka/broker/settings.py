"""Settings of the managed local broker and the ``server.properties`` they render to.

A single KRaft node that is broker and controller at once, listening on the
loopback interface only: it is a development and CI broker, never a production one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_DATA_DIR = Path(".kafka")
# An idle single-node broker with a few dozen partitions stays well under 300 MB of
# heap (measured on this project's 2-core machines); 512 MB leaves room for the
# 10k-message and transaction tests without taking memory from the engine.
DEFAULT_HEAP = "512m"
NODE_ID = 1

PORT_ENV = "STREAM_MLOPS_BROKER_PORT"
CONTROLLER_PORT_ENV = "STREAM_MLOPS_CONTROLLER_PORT"
DATA_DIR_ENV = "STREAM_MLOPS_BROKER_DATA_DIR"
HEAP_ENV = "STREAM_MLOPS_BROKER_HEAP"
LIB_DIR_ENV = "STREAM_MLOPS_BROKER_LIB"

_MAX_PORT = 65535


class BrokerSettingsError(ValueError):
    """A broker setting (argument or environment variable) is invalid."""


@dataclass(frozen=True)
class BrokerSettings:
    """Where the local broker listens and keeps its files.

    >>> s = BrokerSettings(data_dir=Path("/tmp/k"), port=29092, controller_port=29093)
    >>> s.bootstrap_servers
    '127.0.0.1:29092'
    >>> s.pid_file
    PosixPath('/tmp/k/broker.pid')
    """

    data_dir: Path = DEFAULT_DATA_DIR
    port: int = DEFAULT_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    heap: str = DEFAULT_HEAP
    # The jar cache. Defaults to <data_dir>/lib; a shared one saves 43 MB per data dir.
    lib_override: Path | None = field(default=None)

    def __post_init__(self) -> None:
        for name in ("port", "controller_port"):
            value = getattr(self, name)
            if not 0 < value <= _MAX_PORT:
                raise BrokerSettingsError(f"{name} must be in 1..{_MAX_PORT}, got {value}")
        if self.port == self.controller_port:
            raise BrokerSettingsError(f"port and controller_port must differ, both are {self.port}")
        if not self.heap or not self.heap[:-1].isdigit() or self.heap[-1] not in "kmgKMG":
            raise BrokerSettingsError(f"heap must look like 512m or 1g, got {self.heap!r}")

    @classmethod
    def from_env(
        cls, data_dir: Path | None = None, environ: Mapping[str, str] | None = None
    ) -> BrokerSettings:
        """Defaults, overridden by the ``STREAM_MLOPS_BROKER_*`` variables, then by ``data_dir``.

        >>> env = {"STREAM_MLOPS_BROKER_PORT": "29092", "STREAM_MLOPS_CONTROLLER_PORT": "29093"}
        >>> s = BrokerSettings.from_env(environ=env)
        >>> (s.port, s.controller_port, s.data_dir)
        (29092, 29093, PosixPath('.kafka'))
        """
        env = os.environ if environ is None else environ
        lib = env.get(LIB_DIR_ENV, "").strip()
        return cls(
            data_dir=data_dir or Path(env.get(DATA_DIR_ENV, "").strip() or DEFAULT_DATA_DIR),
            port=_port(env, PORT_ENV, DEFAULT_PORT),
            controller_port=_port(env, CONTROLLER_PORT_ENV, DEFAULT_CONTROLLER_PORT),
            heap=env.get(HEAP_ENV, "").strip() or DEFAULT_HEAP,
            lib_override=Path(lib) if lib else None,
        )

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def lib_dir(self) -> Path:
        return self.lib_override if self.lib_override is not None else self.data_dir / "lib"

    @property
    def server_properties(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_config(self) -> Path:
        return self.data_dir / "log4j2.properties"

    @property
    def log_dirs(self) -> Path:
        """Where Kafka keeps partition data (Kafka calls these "logs")."""
        return self.data_dir / "data"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        """The broker's own output (log4j2 writes to stdout, redirected here)."""
        return self.data_dir / "broker.log"


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise BrokerSettingsError(f"{name} must be a port number, got {raw!r}") from None


def render_server_properties(settings: BrokerSettings) -> str:
    """The broker's ``server.properties``.

    The controller quorum is the static one-voter set rather than a ``--standalone``
    format, so changing the controller port of an existing data dir keeps working:
    the voter address is read from this file at every start, not frozen at format time.

    >>> text = render_server_properties(BrokerSettings(data_dir=Path("/d")))
    >>> print(text.splitlines()[3])
    listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
    """
    data = settings.log_dirs.resolve()
    lines = [
        "# Written by `stream-mlops broker start` at every start; edits are overwritten.",
        "process.roles=broker,controller",
        f"node.id={NODE_ID}",
        f"listeners=PLAINTEXT://{HOST}:{settings.port},CONTROLLER://{HOST}:{settings.controller_port}",
        f"advertised.listeners=PLAINTEXT://{HOST}:{settings.port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"controller.quorum.voters={NODE_ID}@{HOST}:{settings.controller_port}",
        f"log.dirs={data}",
        # One node: every internal topic can only have one replica, and the
        # transaction log needs min ISR 1 or transactional producers never start.
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        # A consumer group's first rebalance otherwise waits 3 s for more members,
        # which every test and every engine start would pay.
        "group.initial.rebalance.delay.ms=0",
        "",
    ]
    return "\n".join(lines)
