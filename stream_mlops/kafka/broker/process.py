"""The local broker as operating-system processes: start, stop, status.

Each node's JVM runs detached from the command that started it (its own session),
so ``stream-mlops broker start`` returns while the nodes keep running; the pid
file in each node's directory is how ``stop`` and ``status`` find them again.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stream_mlops.config import KafkaSecurity, Settings
from stream_mlops.kafka import acls
from stream_mlops.kafka.broker.admin import grant, live_brokers, metadata_answers
from stream_mlops.kafka.broker.artifacts import ensure_jars, log4j_config_text
from stream_mlops.kafka.broker.credentials import ADMIN_USER, USERS, BrokerCredentials
from stream_mlops.kafka.broker.exceptions import BrokerError
from stream_mlops.kafka.broker.layout import check_layout, record_layout
from stream_mlops.kafka.broker.prerequisites import JAVA_HINT, require_tool
from stream_mlops.kafka.broker.settings import (
    HOST,
    INTER_BROKER_USER,
    BrokerNode,
    BrokerSettings,
    render_server_properties,
)
from stream_mlops.kafka.broker.tls import write_private

__all__ = [
    "BrokerStatus",
    "LocalBroker",
    "NodeStatus",
    "metadata_answers",
    "process_alive",
]

# A warm start answers metadata after ~5 s on a 2-core machine; a loaded CI box
# can be several times slower, and failing early there costs a whole CI run.
READY_TIMEOUT_S = 90.0
# Three JVMs starting at once share the same two cores.
CLUSTER_READY_TIMEOUT_S = 180.0
# Kafka's controlled shutdown of a single node takes 1-3 s here; after this we SIGKILL.
STOP_TIMEOUT_S = 30.0
_KILL_WAIT_S = 10.0
_POLL_INTERVAL_S = 0.2
_LOG_TAIL_LINES = 40
_SERVER_MAIN_CLASS = "kafka.Kafka"
_STORAGE_MAIN_CLASS = "kafka.tools.StorageTool"
_FORMAT_TIMEOUT_S = 120.0
# kafka-run-class.sh's default heap for the command-line tools such as kafka-storage.sh.
_TOOL_HEAP = "256m"


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    running: bool
    pid: int | None
    address: str


@dataclass(frozen=True)
class BrokerStatus:
    """Every node's state; ``running`` only if all of them run."""

    nodes: tuple[NodeStatus, ...]
    secure: bool = False

    @property
    def running(self) -> bool:
        return all(node.running for node in self.nodes)

    @property
    def pid(self) -> int | None:
        """The single node's pid (the first node's, on a cluster)."""
        return self.nodes[0].pid

    @property
    def address(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def describe(self) -> str:
        tag = " [SASL_SSL]" if self.secure else ""
        if len(self.nodes) == 1:
            if self.running:
                return f"running at {self.address} (pid {self.pid}){tag}"
            return f"not running (would listen at {self.address}){tag}"
        up = [n for n in self.nodes if n.running]
        parts = [
            f"node {n.node_id} at {n.address} " + (f"(pid {n.pid})" if n.running else "not running")
            for n in self.nodes
        ]
        return f"{len(up)} of {len(self.nodes)} nodes running{tag}: " + ", ".join(parts)


class LocalBroker:
    """The local KRaft node or cluster of one data dir."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings

    @property
    def credentials(self) -> BrokerCredentials:
        return BrokerCredentials(self.settings)

    def client_security(self, user: str = ADMIN_USER) -> KafkaSecurity:
        """``[kafka.security]`` of a client of this broker (PLAINTEXT unless secured)."""
        if not self.settings.secure:
            return KafkaSecurity()
        return self.credentials.security(user)

    def status(self) -> BrokerStatus:
        nodes = []
        for node in self.settings.all_nodes:
            pid = self._running_pid(node)
            address = node.address if pid is None else self._running_address(node)
            nodes.append(NodeStatus(node.node_id, pid is not None, pid, address))
        return BrokerStatus(tuple(nodes), self.settings.secure)

    def start(self, ready_timeout_s: float | None = None) -> bool:
        """Start every node that is not running and wait until the cluster answers with
        all of them; False if all already ran."""
        s = self.settings
        status = self.status()
        for node, node_status in zip(s.all_nodes, status.nodes, strict=True):
            if node_status.running and node_status.address != node.address:
                raise BrokerError(
                    f"this data dir's node {node.node_id} already runs at "
                    f"{node_status.address}, not at {node.address}: stop it first, or use its ports"
                )
        if status.running:
            return False
        check_layout(s)
        java = require_tool("java", JAVA_HINT)
        down = [n for n, st in zip(s.all_nodes, status.nodes, strict=True) if not st.running]
        for node in down:
            self._refuse_taken_ports(node)
        self._prepare(java, down)
        record_layout(s)
        started: dict[int, subprocess.Popen[bytes]] = {}
        try:
            for node in down:
                started[node.node_id] = self._launch(java, node)
            timeout = ready_timeout_s or (
                READY_TIMEOUT_S if s.nodes == 1 else CLUSTER_READY_TIMEOUT_S
            )
            self._wait_ready(started, timeout)
            if s.secure:
                grant(acls.service_acls(Settings()), s.bootstrap_servers, self.client_security())
        except BaseException:
            for node_id, process in started.items():
                if process.poll() is None:
                    self._terminate(process.pid)
                s.node(node_id).pid_file.unlink(missing_ok=True)
            raise
        return True

    def _prepare(self, java: str, nodes: list[BrokerNode]) -> None:
        """Jars, certificates, users and each node's config; format what is new."""
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_jars(s.lib_dir)
        s.log4j_config.write_text(log4j_config_text(), encoding="utf-8")
        inter_broker_password = None
        if s.secure:
            s.certificates.ensure()
            self.credentials.ensure()
            self.credentials.write_client_files()
            inter_broker_password = self.credentials.password(INTER_BROKER_USER).get_secret_value()
        for node in nodes:
            node.directory.mkdir(parents=True, exist_ok=True)
            text = render_server_properties(s, node.node_id, inter_broker_password)
            if s.secure:
                write_private(node.server_properties, text.encode("utf-8"))
            else:
                node.server_properties.write_text(text, encoding="utf-8")
            if not (node.log_dirs / "meta.properties").is_file():
                # Every node of a cluster carries the same cluster id.
                self._format_storage(java, node, self._cluster_id() or _new_cluster_id())

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Stop every node (SIGTERM to all at once, SIGKILL after ``timeout_s``); False if
        none ran. All at once: a KRaft node stopped last, alone, would wait for a
        quorum that is gone."""
        running = {n.node_id: pid for n in self.settings.all_nodes if (pid := self._running_pid(n))}
        for pid in running.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for node_id, pid in running.items():
            self._terminate(pid, timeout_s)
            self.settings.node(node_id).pid_file.unlink(missing_ok=True)
        for node in self.settings.all_nodes:
            node.pid_file.unlink(missing_ok=True)
        return bool(running)

    def log_tail(self, node_id: int = 1, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            text = self.settings.node(node_id).log_file.read_text(
                encoding="utf-8", errors="replace"
            )
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _launch(self, java: str, node: BrokerNode) -> subprocess.Popen[bytes]:
        # Appended to: the log of a node that died is what explains it.
        with node.log_file.open("ab") as log:
            process = subprocess.Popen(
                self._java_command(java, _SERVER_MAIN_CLASS, str(node.server_properties.resolve())),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=node.directory,
                start_new_session=True,
            )
        node.pid_file.write_text(f"{process.pid}\n", encoding="utf-8")
        return process

    def _java_command(
        self, java: str, main_class: str, *args: str, heap: str | None = None
    ) -> list[str]:
        s = self.settings
        return [
            java,
            f"-Xmx{heap or s.node_heap}",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={s.log4j_config.resolve()}",
            "-cp",
            f"{s.lib_dir.resolve()}/*",
            main_class,
            *args,
        ]

    def _cluster_id(self) -> str | None:
        """The cluster id a node of this data dir was already formatted with, if any."""
        for node in self.settings.all_nodes:
            with contextlib.suppress(OSError):
                for line in (node.log_dirs / "meta.properties").read_text("utf-8").splitlines():
                    if line.startswith("cluster.id="):
                        return line.removeprefix("cluster.id=").strip()
        return None

    def _format_storage(self, java: str, node: BrokerNode, cluster_id: str) -> None:
        users = self.credentials.scram_format_arguments() if self.settings.secure else []
        command = self._java_command(
            java,
            _STORAGE_MAIN_CLASS,
            "format",
            "--ignore-formatted",
            "--cluster-id",
            cluster_id,
            "--config",
            str(node.server_properties.resolve()),
            *users,
            heap=_TOOL_HEAP,
        )
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=_FORMAT_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            if self.settings.secure:
                for user in USERS:
                    output = output.replace(
                        self.credentials.password(user).get_secret_value(), "**"
                    )
            raise BrokerError(
                f"formatting the broker storage in {node.log_dirs} failed "
                f"(exit {result.returncode})",
                log_tail=output,
            )

    def _refuse_taken_ports(self, node: BrokerNode) -> None:
        for port in (node.port, node.controller_port):
            if _port_answers(port):
                raise BrokerError(
                    f"{HOST}:{port} is taken by another process, not this data dir's broker: "
                    "set KAFKA_BOOTSTRAP_SERVERS to use that cluster, or "
                    "STREAM_MLOPS_BROKER_PORT / STREAM_MLOPS_CONTROLLER_PORT for free ports"
                )

    def _wait_ready(self, started: Mapping[int, subprocess.Popen[bytes]], timeout_s: float) -> None:
        s = self.settings
        deadline = time.monotonic() + timeout_s
        security = self.client_security()
        while time.monotonic() < deadline:
            for node_id, process in started.items():
                code = process.poll()
                if code is not None:
                    which = "the broker" if s.nodes == 1 else f"broker node {node_id}"
                    raise BrokerError(
                        f"{which} exited during start-up with code {code}; "
                        f"its log is {s.node(node_id).log_file}",
                        log_tail=self.log_tail(node_id),
                    )
            if all(_port_answers(n.port) for n in s.all_nodes) and (
                live_brokers(s.bootstrap_servers, 5.0, security) >= s.nodes
            ):
                return
            time.sleep(_POLL_INTERVAL_S)
        first = min(started)
        raise BrokerError(
            f"the broker did not answer a metadata request with all {s.nodes} node(s) within "
            f"{timeout_s:.0f} s; its log is {s.node(first).log_file}",
            log_tail=self.log_tail(first),
        )

    def _running_address(self, node: BrokerNode) -> str:
        """The address the running node was started with (its config on disk)."""
        with contextlib.suppress(OSError):
            for line in node.server_properties.read_text(encoding="utf-8").splitlines():
                if line.startswith("advertised.listeners="):
                    return line.split("://", 1)[1].split(",")[0]
        return node.address

    def _running_pid(self, node: BrokerNode) -> int | None:
        """The pid in the node's pid file if that process is alive and is this node."""
        try:
            pid = int(node.pid_file.read_text(encoding="utf-8").strip())
        except (FileNotFoundError, ValueError):
            return None
        if not process_alive(pid):
            return None
        # A stale pid file can name a recycled pid: only trust a Kafka server whose
        # command line points at this node's config.
        cmdline = _cmdline(pid)
        config = str(node.server_properties.resolve())
        if cmdline is not None and (_SERVER_MAIN_CLASS not in cmdline or config not in cmdline):
            return None
        return pid

    def _terminate(self, pid: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if _wait_gone(pid, timeout_s):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _wait_gone(pid, _KILL_WAIT_S):
            raise BrokerError(f"broker pid {pid} survived SIGKILL for {_KILL_WAIT_S:.0f} s")


def process_alive(pid: int) -> bool:
    """True if ``pid`` is a live process (a zombie counts as gone)."""
    # Our own child (a broker started in this process) turns into a zombie on exit
    # until reaped; reap it so it does not look alive forever.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True
    # The state letter follows the parenthesised command name.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while process_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL_S)
    return True


def _cmdline(pid: int) -> str | None:
    """The process's command line, or None where /proc is unavailable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", errors="replace")


def _port_answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Kafka's own ``random-uuid`` also never starts an id with '-' (it would read as
    a command-line flag), and so neither do we.

    >>> len(_new_cluster_id())
    22
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text
