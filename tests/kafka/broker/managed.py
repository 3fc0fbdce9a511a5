"""Brokers a test starts for itself: free ports, a data dir in the checkout, cleanup by pid.

Ports come from 29092-29199 (this project's range for extra brokers), or the
range ``STREAM_MLOPS_TEST_PORTS`` names (``LOW-HIGH``), each block checked free,
so runs sharing a machine do not collide. Data dirs live under the
git-ignored ``.brokers/`` of the checkout and are removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from stream_mlops.kafka.broker import BrokerSettings
from stream_mlops.kafka.broker.process import process_alive

PORT_RANGE = (29092, 29199)
PORT_RANGE_ENV = "STREAM_MLOPS_TEST_PORTS"
CHECKOUT = Path(__file__).resolve().parents[3]


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_range() -> tuple[int, int]:
    """PORT_RANGE, or the ``LOW-HIGH`` of ``STREAM_MLOPS_TEST_PORTS``."""
    raw = os.environ.get(PORT_RANGE_ENV, "").strip()
    if not raw:
        return PORT_RANGE
    low, _, high = raw.partition("-")
    try:
        return int(low), int(high)
    except ValueError:
        raise ValueError(f"{PORT_RANGE_ENV} must look like 29300-29399, got {raw!r}") from None


def free_port_block(size: int) -> int:
    """The first of ``size`` consecutive free ports in the port range (an even start)."""
    low, high = port_range()
    starts = list(range(low, high - size + 2, 2))
    random.shuffle(starts)
    for start in starts:
        if all(_free(port) for port in range(start, start + size)):
            return start
    raise RuntimeError(f"no {size} consecutive free ports in {low}-{high}")


@contextlib.contextmanager
def data_dir(name: str) -> Iterator[Path]:
    path = CHECKOUT / ".brokers" / f"{name}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def broker_env(directory: Path, port: int) -> dict[str, str]:
    """Environment for ``stream-mlops broker`` on ``directory`` at ``port`` / ``port + 1``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env.update(
        STREAM_MLOPS_BROKER_PORT=str(port),
        STREAM_MLOPS_CONTROLLER_PORT=str(port + 1),
        STREAM_MLOPS_BROKER_DATA_DIR=str(directory),
        # The session's jar cache, so no test fetches jars again.
        STREAM_MLOPS_BROKER_LIB=str(BrokerSettings.from_env().lib_dir.resolve()),
    )
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_mlops", *args],
        env=env,
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def node_pids(settings: BrokerSettings) -> list[int]:
    pids = []
    for node in settings.all_nodes:
        with contextlib.suppress(FileNotFoundError, ValueError):
            pids.append(int(node.pid_file.read_text().strip()))
    return pids


def kill(pids: list[int]) -> None:
    """SIGKILL whichever of ``pids`` still runs (a test's last resort)."""
    for pid in pids:
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def own_broker(
    name: str, nodes: int = 1, secure: bool = False
) -> Iterator[tuple[dict[str, str], BrokerSettings, list[int]]]:
    """(environment, settings, pids seen) of a broker this test starts itself.

    Afterwards ``broker stop`` runs, and whatever pid the test saw or the data dir
    names that still lives is SIGKILLed; the data dir is removed.
    """
    with data_dir(name) as directory:
        env = broker_env(directory, free_port_block(2 * nodes))
        settings = BrokerSettings.from_env(directory, environ=env, nodes=nodes, secure=secure)
        seen: list[int] = []
        try:
            yield env, settings, seen
        finally:
            seen += node_pids(settings)
            cli(env, "broker", "stop")
            kill(seen)
