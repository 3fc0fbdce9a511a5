"""``WorkerPool``: N children of one command, stopped together (no broker needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
import structlog

from consumers import engine
from consumers.engine import worker_commands
from stream_mlops.cli import build_parser
from stream_mlops.worker_pool import WORKER_ENV, Worker, WorkerPool

# A child that exits 0 on SIGTERM (as a service does after its last commit) and
# writes its pid and $STREAM_MLOPS_WORKER to a file named after its argument.
_CHILD = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {os.environ.get('STREAM_MLOPS_WORKER')}")
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 120)
sys.exit(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
"""


def alive(pid: int) -> bool:
    """Whether a process with this pid exists (tests/kafka/test_workers.py uses it too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_files(paths: list[Path], timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while not all(p.exists() and p.read_text() for p in paths):
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.05)
    return [p.read_text() for p in paths]


def _workers(tmp_path: Path, *extra: list[str]) -> list[Worker]:
    return [
        Worker(f"w-{i}", [sys.executable, "-c", _CHILD, str(tmp_path / f"w-{i}"), *args])
        for i, args in enumerate(extra)
    ]


def test_sigterm_to_the_pool_stops_every_worker(tmp_path: Path) -> None:
    pool = WorkerPool(_workers(tmp_path, [], []), stop_timeout=30)
    started: list[str] = []

    def signal_pool() -> None:
        started.extend(_wait_files([tmp_path / "w-0", tmp_path / "w-1"]))
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=signal_pool)
    thread.start()
    previous = signal.getsignal(signal.SIGTERM)
    assert pool.run() == 0
    thread.join()
    assert signal.getsignal(signal.SIGTERM) is previous
    pids = [int(line.split()[0]) for line in started]
    assert sorted(pids) == sorted(pool.pids)
    assert [line.split()[1] for line in started] == ["w-0", "w-1"]  # $STREAM_MLOPS_WORKER
    assert not any(alive(pid) for pid in pids)


def test_a_worker_that_exits_ends_the_command_with_its_code(tmp_path: Path) -> None:
    # w-1 exits by itself with code 3 after half a second; w-0 would run on.
    pool = WorkerPool(_workers(tmp_path, [], ["0.5", "3"]), stop_timeout=30)
    started = time.monotonic()
    assert pool.run() == 3
    assert time.monotonic() - started < 60
    assert not any(alive(pid) for pid in pool.pids)


def test_a_worker_that_exits_0_unasked_still_fails_the_command(tmp_path: Path) -> None:
    pool = WorkerPool(_workers(tmp_path, ["0.2", "0"], []), stop_timeout=30)
    assert pool.run() == 1


def test_a_worker_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    stubborn = Worker(
        "w-0",
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('up', flush=True); time.sleep(120)",
        ],
    )
    quitter = Worker("w-1", [sys.executable, "-c", "import time; time.sleep(1)"])
    pool = WorkerPool([stubborn, quitter], stop_timeout=1)
    assert pool.run() == 1  # w-1 exited 0 unasked
    assert not any(alive(pid) for pid in pool.pids)


def test_the_workers_die_with_a_killed_pool(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("the death signal is Linux's prctl")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from stream_mlops.worker_pool import Worker, WorkerPool\n"
        f"child = {_CHILD!r}\n"
        "tmp = Path(sys.argv[1])\n"
        "WorkerPool([Worker(f'w-{i}', [sys.executable, '-c', child, str(tmp / f'w-{i}')])"
        " for i in range(2)]).run()\n"
    )
    pool = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])
    try:
        pids = [int(line.split()[0]) for line in _wait_files([tmp_path / "w-0", tmp_path / "w-1"])]
        pool.kill()
        pool.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in pids)
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait()


def test_an_empty_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        WorkerPool([])


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_run_refuses_a_worker_count_below_one(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["run", "--workers", value])
    assert exited.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_each_worker_gets_its_instance_id_and_metrics_port() -> None:
    commands = worker_commands(
        3,
        config_path=Path("e.toml"),
        log_format="console",
        instance_id="eu",
        client="confluent-kafka",
        metrics_host="0.0.0.0",
        metrics_port=9100,
    )
    assert [w.instance_id for w in commands] == ["eu-0", "eu-1", "eu-2"]
    for index, worker in enumerate(commands):
        args = list(worker.argv)
        assert args[1:4] == ["-m", "stream_mlops", "run"]
        assert args[args.index("--instance-id") + 1] == f"eu-{index}"
        assert args[args.index("--metrics-port") + 1] == str(9100 + index)
        assert args[args.index("--metrics-address") + 1] == "0.0.0.0"
        assert args[args.index("--client") + 1] == "confluent-kafka"
        assert args[args.index("--config") + 1] == "e.toml"
        assert args[args.index("--log-format") + 1] == "console"
    free = worker_commands(
        2,
        config_path=None,
        log_format="json",
        instance_id="x",
        client=None,
        metrics_host=None,
        metrics_port=0,
    )
    assert [w.argv[w.argv.index("--metrics-port") + 1] for w in free] == ["0", "0"]
    assert "--config" not in free[0].argv


def test_the_engine_names_its_worker_in_every_log_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bad config ends main() at its first log line, which must carry the worker.
    monkeypatch.setenv(WORKER_ENV, "eu-1")
    try:
        assert engine.main(Path("/nonexistent/engine.toml")) == 2
    finally:
        structlog.contextvars.clear_contextvars()
    line = orjson.loads(capsys.readouterr().out.splitlines()[-1])
    assert line["event"] == "config.invalid"
    assert line["worker"] == "eu-1"
