"""A service (``stream-mlops run``, ``retrainer``, ...) as a child process, tracked by its pid.

The child is ``python -m stream_mlops COMMAND ...`` with the parent's interpreter
and this package's code (or any other program that logs JSON lines, such as a
benchmark's competitor), its stdout and stderr appended to a log file. A caller
waits for an event of its JSON log (``wait_for_log("partitions.assigned")``),
stops it with SIGTERM (a service then finishes its open transaction and leaves
its group) and, if it has not exited in time, with SIGKILL. A ``with`` block
stops the child also when the block fails. ``stream-mlops demo`` and the
integration tests run their services through it.

>>> import tempfile
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as tmp:
...     with ServiceProcess("schema", ["schema", "outcome"], Path(tmp) / "schema.log") as child:
...         child.wait_until_exit(timeout=60)
0
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

__all__ = ["ServiceError", "ServiceProcess", "read_log_events"]

# The directory that holds the stream_mlops package (a checkout, or site-packages):
# first on the child's PYTHONPATH, so it runs the same code as its parent.
_CODE_ROOT = Path(__file__).resolve().parents[1]
# How much of the log an error message quotes.
_LOG_TAIL_CHARS = 3000
# How often a wait looks at the log: far below a service's own start-up time.
_POLL_S = 0.1


class ServiceError(RuntimeError):
    """A child service that exited, or did not log what was waited for, in time."""


def read_log_events(data: bytes) -> list[dict[str, Any]]:
    """The JSON objects among ``data``'s complete lines; other lines are skipped.

    stdout and stderr share the log file: a client library's plain-text warning
    is not an event, and one written in the middle of a line can garble that line.

    >>> read_log_events(b'{"event": "a"}\\nWARNING: x\\n{"event": "b"}\\n{"event":')
    [{'event': 'a'}, {'event': 'b'}]
    """
    events = []
    for line in data.splitlines(keepends=True):
        if not line.startswith(b"{") or not line.endswith(b"\n"):
            continue
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            events.append(parsed)
    return events


class ServiceProcess:
    """One child service; ``start()`` (or ``with``) runs it, ``terminate()`` stops it."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        log_path: Path,
        *,
        program: Sequence[str] | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``args`` follow ``program``, by default this interpreter running
        ``stream-mlops`` (so ``["run", "--config", "x.toml"]``); ``env`` is added
        to this process's environment."""
        self.name = name
        self.program = tuple(program or (sys.executable, "-m", "stream_mlops"))
        self.args = tuple(args)
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self._events: list[dict[str, Any]] = []
        self._read_upto = 0

    def start(self) -> Self:
        if self.proc is not None:
            raise ServiceError(f"{self.name} was already started (pid {self.proc.pid})")
        python_path = [str(_CODE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, **self.env, "PYTHONPATH": os.pathsep.join(python_path)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.program, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
            )
        return self

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_events(self) -> list[dict[str, Any]]:
        """Every JSON event of the log so far, oldest first (reads only what is new)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._read_upto)
                data = log.read()
        except FileNotFoundError:
            return list(self._events)
        # Only complete lines: the child may be writing the last one right now.
        complete = data.rfind(b"\n") + 1
        self._events += read_log_events(data[:complete])
        self._read_upto += complete
        return list(self._events)

    def wait_for_log(self, event: str, timeout: float = 60.0, **fields: object) -> dict[str, Any]:
        """The first log entry named ``event`` whose ``fields`` have the given values.

        Raises ``ServiceError`` (quoting the log's end) if the child exits first or
        nothing matches within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.log_events():
                if entry.get("event") == event and all(
                    entry.get(k) == v for k, v in fields.items()
                ):
                    return entry
            wanted = f"{event!r}" + (f" with {fields}" if fields else "")
            if not self.running():
                code = None if self.proc is None else self.proc.returncode
                raise ServiceError(
                    f"{self.name} exited with {code} before logging {wanted}; "
                    f"{self.log_path} ends with:\n{self.log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise ServiceError(
                    f"{self.name} did not log {wanted} in {timeout:.0f} s; "
                    f"{self.log_path} ends with:\n{self.log_tail()}"
                )
            time.sleep(_POLL_S)

    def wait_until_exit(self, timeout: float) -> int:
        """The exit code of a child that ends by itself; SIGKILL and error if it does not."""
        proc = self._started()
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServiceError(f"{self.name} did not exit in {timeout:.0f} s; killed") from None

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` s; the exit code."""
        proc = self._started()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return self.kill()
        return proc.returncode

    def kill(self) -> int:
        """SIGKILL now, as a crash would end it; the exit code (``-9``)."""
        proc = self._started()
        if proc.poll() is None:
            proc.kill()
        return proc.wait(timeout=10)

    def _started(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise ServiceError(f"{self.name} was not started")
        return self.proc

    def log_tail(self) -> str:
        """The end of the log as text, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return text[-_LOG_TAIL_CHARS:]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.running():
            self.terminate()
