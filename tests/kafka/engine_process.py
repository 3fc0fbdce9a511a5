"""Run a service (``stream-mlops run``, ``retrainer``) as a real child process, tracked
and stopped by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import orjson

REPO = Path(__file__).resolve().parents[2]


class EngineProcess:
    """A child engine; always stopped on exit from its ``with`` block."""

    def __init__(
        self,
        config: Path,
        instance_id: str,
        log_path: Path,
        command: str = "run",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.instance_id = instance_id
        self.log_path = log_path
        self.command = command
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> EngineProcess:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "stream_mlops",
                    self.command,
                    "--config",
                    str(self.config),
                    "--instance-id",
                    self.instance_id,
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait; SIGKILL if it does not stop in time. Returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def log_events(self) -> list[dict[str, object]]:
        events = []
        for line in self.log_path.read_bytes().splitlines():
            if line.startswith(b"{"):
                # stdout and stderr share the file: a client warning written
                # mid-line can garble one line; skip it rather than fail.
                try:
                    events.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue
        return events

    def wait_for_log(self, event: str, timeout: float = 60, **fields: object) -> dict[str, object]:
        """The first log entry named ``event`` whose ``fields`` have the given values."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.log_events():
                if entry.get("event") == event and all(
                    entry.get(k) == v for k, v in fields.items()
                ):
                    return entry
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"engine exited with {self.proc.returncode} before logging {event!r}:\n"
                    + self.log_path.read_text()[-4000:]
                )
            time.sleep(0.1)
        raise AssertionError(f"no {event!r} in the engine log within {timeout}s")

    def __enter__(self) -> EngineProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.terminate()
