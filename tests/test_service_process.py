"""ServiceProcess: start a child, wait for its log, SIGTERM, then SIGKILL, by pid.

The children here are small Python programs that behave like the services (JSON
log lines, SIGTERM handling), so no broker is needed; the engine and retrainer
integration tests and the demo run the real services through the same class.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from stream_mlops.service_process import ServiceError, ServiceProcess

# Logs two events, then waits for SIGTERM and logs a third on the way out
# (unless told to ignore SIGTERM, as a hung service would).
SERVICE = textwrap.dedent(
    """
    import json, signal, sys, time
    stop = []
    if sys.argv[1] == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("plain text from a client library", flush=True)
    print(json.dumps({"event": "started", "n": 1}), flush=True)
    print(json.dumps({"event": "started", "n": 2}), flush=True)
    if sys.argv[1] == "exit":
        sys.exit(3)
    while not stop:
        time.sleep(0.01)
    print(json.dumps({"event": "stopped"}), flush=True)
    """
)


def service(tmp_path: Path, mode: str) -> ServiceProcess:
    return ServiceProcess(
        "toy", [mode], tmp_path / "toy.log", program=[sys.executable, "-c", SERVICE]
    )


def test_waits_for_an_event_with_fields_and_stops_on_sigterm(tmp_path: Path) -> None:
    with service(tmp_path, "serve") as toy:
        assert toy.pid is not None and toy.running()
        assert toy.wait_for_log("started", timeout=30, n=2) == {"event": "started", "n": 2}
        assert toy.terminate() == 0
        assert not toy.running()
    assert [e["event"] for e in toy.log_events()] == ["started", "started", "stopped"]
    assert "plain text" in (tmp_path / "toy.log").read_text()


def test_a_child_that_exits_first_is_an_error_quoting_its_log(tmp_path: Path) -> None:
    with service(tmp_path, "exit") as toy, pytest.raises(ServiceError) as error:
        toy.wait_for_log("stopped", timeout=30)
    assert "exited with 3 before logging 'stopped'" in str(error.value)
    assert '"n": 2' in str(error.value)


def test_a_silent_child_times_out(tmp_path: Path) -> None:
    with service(tmp_path, "serve") as toy:
        with pytest.raises(ServiceError, match=r"did not log 'ready' in 1 s"):
            toy.wait_for_log("ready", timeout=1)
        assert toy.running()


def test_a_child_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    with service(tmp_path, "ignore") as toy:
        toy.wait_for_log("started", timeout=30)
        assert toy.terminate(timeout=0.5) == -9
    assert not toy.running()


def test_kill_is_immediate(tmp_path: Path) -> None:
    with service(tmp_path, "serve") as toy:
        toy.wait_for_log("started", timeout=30)
        assert toy.kill() == -9
    assert "stopped" not in [e["event"] for e in toy.log_events()]


def test_leaving_the_block_on_an_error_stops_the_child(tmp_path: Path) -> None:
    toy = service(tmp_path, "serve")
    with pytest.raises(KeyError), toy:
        toy.wait_for_log("started", timeout=30)
        raise KeyError("the test failed")
    assert toy.pid is not None
    assert not toy.running()
    assert [e["event"] for e in toy.log_events()][-1] == "stopped"  # by SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(toy.pid, 0)


def test_a_child_is_started_once(tmp_path: Path) -> None:
    with service(tmp_path, "serve") as toy, pytest.raises(ServiceError, match="already started"):
        toy.start()


def test_the_default_program_is_this_package_from_any_directory(tmp_path: Path) -> None:
    schema = ServiceProcess("schema", ["schema", "outcome"], tmp_path / "s.log", cwd=tmp_path)
    with schema:
        assert schema.wait_until_exit(timeout=60) == 0
    assert '"const": "outcome"' in (tmp_path / "s.log").read_text()
