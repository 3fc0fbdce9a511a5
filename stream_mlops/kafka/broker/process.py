"""The local broker as an operating-system process: start, stop, status.

The JVM runs detached from the command that started it (its own session), so
``stream-mlops broker start`` returns while the broker keeps running; the pid
file under the data dir is how ``stop`` and ``status`` find it again.
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
from dataclasses import dataclass
from pathlib import Path

from stream_mlops.kafka.broker.artifacts import ensure_jars, log4j_config_text
from stream_mlops.kafka.broker.exceptions import BrokerError
from stream_mlops.kafka.broker.prerequisites import JAVA_HINT, require_tool
from stream_mlops.kafka.broker.settings import HOST, BrokerSettings, render_server_properties

# A warm start answers metadata after ~5 s on a 2-core machine; a loaded CI box
# can be several times slower, and failing early there costs a whole CI run.
READY_TIMEOUT_S = 90.0
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
class BrokerStatus:
    running: bool
    pid: int | None
    address: str

    def describe(self) -> str:
        if self.running:
            return f"running at {self.address} (pid {self.pid})"
        return f"not running (would listen at {self.address})"


class LocalBroker:
    """One single-node KRaft broker, identified by its data dir."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings

    def status(self) -> BrokerStatus:
        pid = self._running_pid()
        if pid is None:
            return BrokerStatus(False, None, self.settings.bootstrap_servers)
        return BrokerStatus(True, pid, self._running_address())

    def start(self, ready_timeout_s: float = READY_TIMEOUT_S) -> bool:
        """Start the broker and wait until it answers metadata; False if it already ran."""
        status = self.status()
        if status.running:
            if status.address != self.settings.bootstrap_servers:
                raise BrokerError(
                    f"this data dir's broker already runs at {status.address}, not at "
                    f"{self.settings.bootstrap_servers}: stop it first, or use its ports"
                )
            return False
        java = require_tool("java", JAVA_HINT)
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self._refuse_taken_ports()
        ensure_jars(s.lib_dir)
        s.server_properties.write_text(render_server_properties(s), encoding="utf-8")
        s.log4j_config.write_text(log4j_config_text(), encoding="utf-8")
        if not (s.log_dirs / "meta.properties").is_file():
            self._format_storage(java)
        with s.log_file.open("wb") as log:
            process = subprocess.Popen(
                self._java_command(java, _SERVER_MAIN_CLASS, str(s.server_properties.resolve())),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=s.data_dir,
                start_new_session=True,
            )
        s.pid_file.write_text(f"{process.pid}\n", encoding="utf-8")
        try:
            self._wait_ready(process, ready_timeout_s)
        except BrokerError:
            if process.poll() is None:
                self._terminate(process.pid)
            s.pid_file.unlink(missing_ok=True)
            raise
        return True

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Stop the broker (SIGTERM, SIGKILL after ``timeout_s``); False if none ran."""
        pid = self._running_pid()
        if pid is None:
            self.settings.pid_file.unlink(missing_ok=True)
            return False
        self._terminate(pid, timeout_s)
        self.settings.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            text = self.settings.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _java_command(
        self, java: str, main_class: str, *args: str, heap: str | None = None
    ) -> list[str]:
        s = self.settings
        return [
            java,
            f"-Xmx{heap or s.heap}",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={s.log4j_config.resolve()}",
            "-cp",
            f"{s.lib_dir.resolve()}/*",
            main_class,
            *args,
        ]

    def _format_storage(self, java: str) -> None:
        s = self.settings
        command = self._java_command(
            java,
            _STORAGE_MAIN_CLASS,
            "format",
            "--ignore-formatted",
            "--cluster-id",
            _new_cluster_id(),
            "--config",
            str(s.server_properties.resolve()),
            heap=_TOOL_HEAP,
        )
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=_FORMAT_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            raise BrokerError(
                f"formatting the broker storage in {s.log_dirs} failed (exit {result.returncode})",
                log_tail=(result.stdout + result.stderr).strip(),
            )

    def _refuse_taken_ports(self) -> None:
        for port in (self.settings.port, self.settings.controller_port):
            if _port_answers(port):
                raise BrokerError(
                    f"{HOST}:{port} is taken by another process, not this data dir's broker: "
                    "set KAFKA_BOOTSTRAP_SERVERS to use that cluster, or "
                    "STREAM_MLOPS_BROKER_PORT / STREAM_MLOPS_CONTROLLER_PORT for free ports"
                )

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                raise BrokerError(
                    f"the broker exited during start-up with code {code}; "
                    f"its log is {self.settings.log_file}",
                    log_tail=self.log_tail(),
                )
            if _port_answers(self.settings.port) and metadata_answers(
                self.settings.bootstrap_servers
            ):
                return
            time.sleep(_POLL_INTERVAL_S)
        raise BrokerError(
            f"the broker did not answer a metadata request within {timeout_s:.0f} s; "
            f"its log is {self.settings.log_file}",
            log_tail=self.log_tail(),
        )

    def _running_address(self) -> str:
        """The address the running broker was started with (its config on disk)."""
        prefix = "advertised.listeners=PLAINTEXT://"
        with contextlib.suppress(OSError):
            for line in self.settings.server_properties.read_text(encoding="utf-8").splitlines():
                if line.startswith(prefix):
                    return line.removeprefix(prefix).split(",")[0]
        return self.settings.bootstrap_servers

    def _running_pid(self) -> int | None:
        """The pid in the pid file if that process is alive and is this data dir's broker."""
        try:
            pid = int(self.settings.pid_file.read_text(encoding="utf-8").strip())
        except (FileNotFoundError, ValueError):
            return None
        if not process_alive(pid):
            return None
        # A stale pid file can name a recycled pid: only trust a Kafka server whose
        # command line points at this data dir's config.
        cmdline = _cmdline(pid)
        config = str(self.settings.server_properties.resolve())
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


def metadata_answers(bootstrap_servers: str, timeout_s: float = 5.0) -> bool:
    """True if the cluster answers a metadata request listing at least one broker."""
    # Imported here so `broker status` and `--help` do not pay for a Kafka client.
    from stream_mlops.config import KafkaSettings
    from stream_mlops.kafka.backends import open_transport
    from stream_mlops.kafka.transport import TransportError

    transport = open_transport(
        KafkaSettings(bootstrap_servers=bootstrap_servers),
        client_id="stream-mlops-broker-check",
        connect_timeout_s=timeout_s,
    )
    try:
        admin = transport.admin()
    except (TransportError, OSError):
        return False
    try:
        return admin.broker_count() > 0
    except (TransportError, OSError):
        return False
    finally:
        admin.close()


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
