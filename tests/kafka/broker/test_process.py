"""The broker lifecycle through the real command line, on its own ports and data dir."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_mlops.kafka.broker import EXIT_NOT_RUNNING, BrokerSettings
from stream_mlops.kafka.broker.process import metadata_answers, process_alive


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def broker_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a second broker beside any other: free ports, a temp data dir.

    The jar cache is shared with the default data dir so this test fetches nothing
    the session's broker already has.
    """
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    port, controller_port = free_port(), free_port()
    env.update(
        STREAM_MLOPS_BROKER_PORT=str(port),
        STREAM_MLOPS_CONTROLLER_PORT=str(controller_port),
        STREAM_MLOPS_BROKER_DATA_DIR=str(tmp_path / "kafka"),
        STREAM_MLOPS_BROKER_LIB=str(BrokerSettings.from_env().lib_dir.resolve()),
    )
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_mlops", "broker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def started_pids(broker_env: dict[str, str]) -> Iterator[list[int]]:
    """Pids this test started; whatever is still alive at the end is killed, by pid."""
    pids: list[int] = []
    try:
        yield pids
    finally:
        cli(broker_env, "stop")
        for pid in pids:
            if process_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.mark.kafka
@pytest.mark.slow
def test_start_status_stop_leaves_no_process(
    broker_env: dict[str, str], started_pids: list[int]
) -> None:
    data_dir = Path(broker_env["STREAM_MLOPS_BROKER_DATA_DIR"])
    address = f"127.0.0.1:{broker_env['STREAM_MLOPS_BROKER_PORT']}"

    started = cli(broker_env, "start")
    if (data_dir / "broker.pid").exists():
        started_pids.append(int((data_dir / "broker.pid").read_text()))
    assert started.returncode == 0, started.stderr
    assert f"broker started: running at {address}" in started.stdout
    [pid] = started_pids
    assert process_alive(pid)
    assert metadata_answers(address)

    again = cli(broker_env, "start")
    assert again.returncode == 0
    assert f"already running at {address} (pid {pid})" in again.stdout

    # The same data dir asked for other ports: refused, not reported as started.
    elsewhere = {**broker_env, "STREAM_MLOPS_BROKER_PORT": str(free_port())}
    refused = cli(elsewhere, "start")
    assert refused.returncode == 1
    assert f"already runs at {address}" in refused.stderr

    status = cli(broker_env, "status")
    assert (status.returncode, status.stdout.strip()) == (
        0,
        f"broker running at {address} (pid {pid})",
    )

    stopped = cli(broker_env, "stop")
    assert stopped.returncode == 0
    assert f"broker stopped (pid {pid})" in stopped.stdout
    assert not process_alive(pid)
    assert not (data_dir / "broker.pid").exists()
    assert cli(broker_env, "status").returncode == EXIT_NOT_RUNNING
    assert not metadata_answers(address, timeout_s=1.0)


@pytest.mark.kafka
def test_a_broker_that_cannot_start_reports_its_log_and_fails(
    broker_env: dict[str, str], started_pids: list[int]
) -> None:
    # A heap too small for Kafka makes the JVM exit during start-up.
    env = {**broker_env, "STREAM_MLOPS_BROKER_HEAP": "2m"}
    result = cli(env, "start")
    assert result.returncode == 1
    assert "the broker exited during start-up" in result.stderr
    assert "--- last lines of the broker log ---" in result.stderr
    assert not (Path(env["STREAM_MLOPS_BROKER_DATA_DIR"]) / "broker.pid").exists()
