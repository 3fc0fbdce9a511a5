"""Settings of the managed local broker and the ``server.properties`` they render to.

One KRaft node that is broker and controller at once, or a cluster of such nodes
(``--nodes 3``), each its own JVM with its own directory; optionally secured
(``--secure``: SASL_SSL for clients, mutual TLS between the nodes). Every node
listens on the loopback interface only: a development and CI broker, never a
production one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from stream_mlops.kafka.broker.tls import NODE_COMMON_NAME, BrokerCertificates

HOST = "127.0.0.1"
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_DATA_DIR = Path(".kafka")
# An idle single-node broker with a few dozen partitions stays well under 300 MB of
# heap (measured on this project's 2-core machines); 512 MB leaves room for the
# 10k-message and transaction tests without taking memory from the engine.
DEFAULT_HEAP = "512m"
# Each node of a cluster holds a third of the leaders plus followers of the rest,
# so about the single node's working set; three JVMs of 384 MB stay far inside the
# 24 GB our machines have while leaving the engines and tests their share.
CLUSTER_HEAP = "384m"
NODE_ID = 1
# Node k (0-based) listens on port + 2k and controller_port + 2k: with the default
# adjacent pair (9092/9093) the nodes take 9092-9097 without overlapping.
PORT_STRIDE = 2
MAX_NODES = 5
# The replication the contract's topics and the internal ones get on a cluster.
MAX_REPLICATION = 3

#: The client listener's SASL mechanism on the secured broker.
SASL_MECHANISM: Final = "SCRAM-SHA-512"
#: The SCRAM user the nodes replicate as (a super user, like ``admin``).
INTER_BROKER_USER = NODE_COMMON_NAME
SUPER_USERS = (INTER_BROKER_USER, "admin")

PORT_ENV = "STREAM_MLOPS_BROKER_PORT"
CONTROLLER_PORT_ENV = "STREAM_MLOPS_CONTROLLER_PORT"
DATA_DIR_ENV = "STREAM_MLOPS_BROKER_DATA_DIR"
HEAP_ENV = "STREAM_MLOPS_BROKER_HEAP"
LIB_DIR_ENV = "STREAM_MLOPS_BROKER_LIB"
NODES_ENV = "STREAM_MLOPS_BROKER_NODES"
SECURE_ENV = "STREAM_MLOPS_BROKER_SECURE"

_MAX_PORT = 65535
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class BrokerSettingsError(ValueError):
    """A broker setting (argument or environment variable) is invalid."""


@dataclass(frozen=True)
class BrokerNode:
    """One node of the local cluster: its id, ports and files."""

    node_id: int
    port: int
    controller_port: int
    directory: Path

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def server_properties(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_dirs(self) -> Path:
        """Where Kafka keeps partition data (Kafka calls these "logs")."""
        return self.directory / "data"

    @property
    def pid_file(self) -> Path:
        return self.directory / "broker.pid"

    @property
    def log_file(self) -> Path:
        """The node's own output (log4j2 writes to stdout, redirected here)."""
        return self.directory / "broker.log"


@dataclass(frozen=True)
class BrokerSettings:
    """Where the local broker listens and keeps its files.

    >>> s = BrokerSettings(data_dir=Path("/tmp/k"), port=29092, controller_port=29093)
    >>> s.bootstrap_servers
    '127.0.0.1:29092'
    >>> s.pid_file
    PosixPath('/tmp/k/broker.pid')
    >>> cluster = BrokerSettings(Path("/tmp/k"), port=29110, controller_port=29111, nodes=3)
    >>> cluster.bootstrap_servers
    '127.0.0.1:29110,127.0.0.1:29112,127.0.0.1:29114'
    >>> cluster.node(3).directory, cluster.node(3).controller_port
    (PosixPath('/tmp/k/node-3'), 29115)
    """

    data_dir: Path = DEFAULT_DATA_DIR
    port: int = DEFAULT_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    #: JVM -Xmx per node; None: DEFAULT_HEAP for one node, CLUSTER_HEAP for more.
    heap: str | None = None
    # The jar cache. Defaults to <data_dir>/lib; a shared one saves 43 MB per data dir.
    lib_override: Path | None = field(default=None)
    nodes: int = 1
    secure: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= MAX_NODES:
            raise BrokerSettingsError(f"nodes must be in 1..{MAX_NODES}, got {self.nodes}")
        for name in ("port", "controller_port"):
            value = getattr(self, name)
            last = value + PORT_STRIDE * (self.nodes - 1)
            if value <= 0 or last > _MAX_PORT:
                raise BrokerSettingsError(f"{name} must be in 1..{_MAX_PORT}, got {value}")
        if self.port == self.controller_port:
            raise BrokerSettingsError(f"port and controller_port must differ, both are {self.port}")
        ports = [p for node in self.all_nodes for p in (node.port, node.controller_port)]
        if len(set(ports)) != len(ports):
            raise BrokerSettingsError(
                f"the {self.nodes} nodes' ports overlap (port {self.port}, controller_port "
                f"{self.controller_port}, {PORT_STRIDE} apart per node): pick ports further apart"
            )
        if self.heap is not None and (
            not self.heap or not self.heap[:-1].isdigit() or self.heap[-1] not in "kmgKMG"
        ):
            raise BrokerSettingsError(f"heap must look like 512m or 1g, got {self.heap!r}")

    @classmethod
    def from_env(
        cls,
        data_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        nodes: int | None = None,
        secure: bool | None = None,
    ) -> BrokerSettings:
        """Defaults, overridden by the ``STREAM_MLOPS_BROKER_*`` variables, then by arguments.

        >>> env = {"STREAM_MLOPS_BROKER_PORT": "29092", "STREAM_MLOPS_CONTROLLER_PORT": "29093"}
        >>> s = BrokerSettings.from_env(environ=env)
        >>> (s.port, s.controller_port, s.data_dir, s.nodes, s.secure)
        (29092, 29093, PosixPath('.kafka'), 1, False)
        """
        env = os.environ if environ is None else environ
        lib = env.get(LIB_DIR_ENV, "").strip()
        return cls(
            data_dir=data_dir or Path(env.get(DATA_DIR_ENV, "").strip() or DEFAULT_DATA_DIR),
            port=_port(env, PORT_ENV, DEFAULT_PORT),
            controller_port=_port(env, CONTROLLER_PORT_ENV, DEFAULT_CONTROLLER_PORT),
            heap=env.get(HEAP_ENV, "").strip() or None,
            lib_override=Path(lib) if lib else None,
            nodes=nodes if nodes is not None else _count(env, NODES_ENV, 1),
            secure=secure if secure is not None else _flag(env, SECURE_ENV),
        )

    @property
    def all_nodes(self) -> tuple[BrokerNode, ...]:
        return tuple(self.node(node_id) for node_id in range(1, self.nodes + 1))

    def node(self, node_id: int) -> BrokerNode:
        """Node ``node_id`` (1-based). A single node lives in the data dir itself, as it
        always has; the nodes of a cluster each in ``node-<id>/``."""
        if not 1 <= node_id <= self.nodes:
            raise ValueError(f"node ids are 1..{self.nodes}, got {node_id}")
        offset = PORT_STRIDE * (node_id - 1)
        directory = self.data_dir if self.nodes == 1 else self.data_dir / f"node-{node_id}"
        return BrokerNode(node_id, self.port + offset, self.controller_port + offset, directory)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.all_nodes)

    @property
    def node_heap(self) -> str:
        return self.heap or (DEFAULT_HEAP if self.nodes == 1 else CLUSTER_HEAP)

    @property
    def replication_factor(self) -> int:
        """What topics, the internal ones included, get on this cluster: min(3, nodes)."""
        return min(MAX_REPLICATION, self.nodes)

    @property
    def min_insync_replicas(self) -> int:
        """2 with three replicas (a write survives one node's loss), else 1."""
        return 2 if self.replication_factor >= MAX_REPLICATION else 1

    @property
    def lib_dir(self) -> Path:
        return self.lib_override if self.lib_override is not None else self.data_dir / "lib"

    @property
    def log4j_config(self) -> Path:
        return self.data_dir / "log4j2.properties"

    @property
    def layout_file(self) -> Path:
        """What the data dir was formatted as (node count, secured or not)."""
        return self.data_dir / "layout.json"

    @property
    def certificates(self) -> BrokerCertificates:
        return BrokerCertificates(self.data_dir / "tls")

    @property
    def secrets_dir(self) -> Path:
        """The SCRAM users' passwords, one 0600 file each (``<user>.password``)."""
        return self.data_dir / "secrets"

    @property
    def client_dir(self) -> Path:
        """Ready-made client configurations for the secured broker."""
        return self.data_dir / "client"

    # The single node's files, under the names they always had.
    @property
    def server_properties(self) -> Path:
        return self.node(1).server_properties

    @property
    def log_dirs(self) -> Path:
        return self.node(1).log_dirs

    @property
    def pid_file(self) -> Path:
        return self.node(1).pid_file

    @property
    def log_file(self) -> Path:
        return self.node(1).log_file


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise BrokerSettingsError(f"{name} must be a port number, got {raw!r}") from None


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise BrokerSettingsError(f"{name} must be a whole number, got {raw!r}") from None


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE or not raw:
        return False
    raise BrokerSettingsError(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def render_server_properties(
    settings: BrokerSettings, node_id: int = NODE_ID, inter_broker_password: str | None = None
) -> str:
    """One node's ``server.properties``.

    The controller quorum is a static voter set rather than a ``--standalone``
    format, so changing the controller ports of an existing data dir keeps working:
    the voter addresses are read from this file at every start, not frozen at format
    time. A secured broker (``settings.secure``) needs the inter-broker SCRAM user's
    password; the file then holds a secret and is written readable by its owner only.

    >>> text = render_server_properties(BrokerSettings(data_dir=Path("/d")))
    >>> print(text.splitlines()[3])
    listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
    """
    node = settings.node(node_id)
    client = "SASL_SSL" if settings.secure else "PLAINTEXT"
    voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in settings.all_nodes)
    replication, min_isr = settings.replication_factor, settings.min_insync_replicas
    lines = [
        "# Written by `stream-mlops broker start` at every start; edits are overwritten.",
        "process.roles=broker,controller",
        f"node.id={node.node_id}",
        f"listeners={client}://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
        f"advertised.listeners={client}://{HOST}:{node.port}",
        "controller.listener.names=CONTROLLER",
        f"inter.broker.listener.name={client}",
        f"listener.security.protocol.map=CONTROLLER:{'SSL' if settings.secure else 'PLAINTEXT'},"
        f"{client}:{client}",
        f"controller.quorum.voters={voters}",
        f"log.dirs={node.log_dirs.resolve()}",
        # The internal topics get the cluster's replication: one node allows only one
        # replica, and the transaction log needs min ISR 1 there or transactional
        # producers never start; three nodes give 3 replicas, of which 2 must ack.
        f"offsets.topic.replication.factor={replication}",
        f"transaction.state.log.replication.factor={replication}",
        f"transaction.state.log.min.isr={min_isr}",
        f"share.coordinator.state.topic.replication.factor={replication}",
        f"share.coordinator.state.topic.min.isr={min_isr}",
        # Topics created without an explicit factor (tests, auto-created) too.
        f"default.replication.factor={replication}",
        f"min.insync.replicas={min_isr}",
        # A consumer group's first rebalance otherwise waits 3 s for more members,
        # which every test and every engine start would pay.
        "group.initial.rebalance.delay.ms=0",
    ]
    if settings.secure:
        lines += _security_properties(settings, inter_broker_password)
    return "\n".join([*lines, ""])


def _security_properties(settings: BrokerSettings, inter_broker_password: str | None) -> list[str]:
    """Clients: SASL_SSL with SCRAM-SHA-512. Nodes: the same listener between brokers
    (as the SCRAM user ``broker``), and mutual TLS on the controller listener.

    The controller listener cannot use SCRAM: KRaft controllers keep the SCRAM
    credentials in the very metadata log they must first replicate. Its client
    certificate maps to the principal ``User:broker``. ACLs are enforced by
    StandardAuthorizer, deny by default; ``broker`` and ``admin`` are super users.
    """
    if inter_broker_password is None:
        raise ValueError("a secured broker needs the inter-broker user's password")
    certificates = settings.certificates
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{INTER_BROKER_USER}" password="{inter_broker_password}";'
    )
    return [
        f"sasl.enabled.mechanisms={SASL_MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={SASL_MECHANISM}",
        f"listener.name.sasl_ssl.{SASL_MECHANISM.lower()}.sasl.jaas.config={jaas}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={certificates.node_file.resolve()}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={certificates.ca_file.resolve()}",
        "listener.name.controller.ssl.client.auth=required",
        "ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=false",
        "super.users=" + ";".join(f"User:{user}" for user in SUPER_USERS),
    ]
