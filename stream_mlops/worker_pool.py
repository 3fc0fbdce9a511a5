"""N copies of a service as child processes of one command (``stream-mlops run --workers N``).

Python runs one thread of bytecode at a time, so one engine process uses one
core however many it has; a machine's other cores need other processes. Each
worker is an ordinary ``stream-mlops run`` with its own instance id (so its own
transactional id and static group membership), a member of the same consumer
group: the group spreads the partitions over them as over engines on separate
hosts, and exactly-once holds as it does there.

The pool only starts, watches and stops its children, by pid:

* their stdout and stderr are the pool's own (one JSON log stream; a line is
  written whole, so lines of different workers do not mix within a line), and
  each has ``$STREAM_MLOPS_WORKER`` set to its instance id (the engine then
  adds ``worker`` to each of its log lines);
* SIGTERM or SIGINT to the pool forwards SIGTERM to every worker (each then
  commits its open transaction and exits) and waits for them, SIGKILL after
  ``stop_timeout`` seconds;
* a worker that exits while the pool is not stopping **ends the command**:
  the pool logs ``worker.exited``, stops the others and returns that worker's
  exit code (128 + the signal's number if a signal ended it; 1 if it was 0).
  The pool does not restart workers itself: a worker that failed once
  (fenced, an unreadable snapshot, a bad config) mostly fails again, and a
  process manager (systemd, Kubernetes, the container runtime) that restarts
  the whole command brings every worker back with the same instance ids,
  which as static members take their partitions back without a rebalance;
* on Linux each worker gets SIGTERM if the pool itself dies (``kill -9``), so
  no worker outlives it unnoticed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

__all__ = ["WORKER_ENV", "Worker", "WorkerPool"]

#: Set in each worker's environment to its instance id.
WORKER_ENV = "STREAM_MLOPS_WORKER"

# How often the pool looks for a worker that exited: far below a restart's cost.
_WATCH_S = 0.2
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Worker:
    """One child's identity and command line."""

    instance_id: str
    argv: Sequence[str]


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send SIGTERM to the child when the
    pool dies; None where ``prctl`` is not available (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    parent = os.getpid()

    def set_death_signal() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the pool died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return set_death_signal


def _exit_status(code: int | None) -> int:
    """A failed worker's exit code as the command's: a signal's as a shell
    reports it (128 + its number), and never 0."""
    if code is None or code == 0:
        return 1
    return 128 - code if code < 0 else code


class WorkerPool:
    """Start ``workers``, wait until a signal or a worker's exit, stop them all."""

    def __init__(
        self,
        workers: Sequence[Worker],
        *,
        stop_timeout: float = 60.0,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        if not workers:
            raise ValueError("a pool needs at least one worker")
        self._workers = list(workers)
        self._stop_timeout = stop_timeout
        self._log = log or structlog.get_logger("stream_mlops.workers")
        self._children: list[subprocess.Popen[bytes]] = []
        self._stop = threading.Event()
        self._signal: str | None = None

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self._children]

    def request_stop(self, signum: int, _frame: object = None) -> None:
        """Signal handler: stop every worker (from the main loop, not here)."""
        self._signal = signal.Signals(signum).name
        self._stop.set()

    def run(self) -> int:
        """Install SIGTERM/SIGINT handlers, run the workers; the command's exit code."""
        previous = {
            signum: signal.signal(signum, self.request_stop)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            return self._run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _run(self) -> int:
        preexec = _die_with_parent()
        try:
            for worker in self._workers:
                # Signals may arrive while starting: stop what has started.
                if self._stop.is_set():
                    break
                # The pool runs no threads of its own, so preexec_fn is safe here.
                env = {**os.environ, WORKER_ENV: worker.instance_id}
                child = subprocess.Popen(worker.argv, env=env, preexec_fn=preexec)  # noqa: PLW1509
                self._children.append(child)
            self._log.info(
                "workers.started",
                workers=[
                    {"instance_id": w.instance_id, "pid": c.pid}
                    for w, c in zip(self._workers, self._children, strict=False)
                ],
            )
            failed = self._watch()
        finally:
            codes = self._stop_all()
        if failed is not None:
            return _exit_status(codes[failed])
        self._log.info("workers.stopped", signal=self._signal, exit_codes=codes)
        return 0 if all(code == 0 for code in codes) else 1

    def _watch(self) -> int | None:
        """Wait for a stop signal (None) or a worker's exit (its index)."""
        while not self._stop.wait(_WATCH_S):
            for index, child in enumerate(self._children):
                code = child.poll()
                if code is not None:
                    self._log.error(
                        "worker.exited",
                        instance_id=self._workers[index].instance_id,
                        pid=child.pid,
                        exit_code=code,
                        action="stopping the other workers; the command exits non-zero",
                    )
                    return index
        self._log.info("workers.stopping", signal=self._signal, pids=self.pids)
        return None

    def _stop_all(self) -> list[int | None]:
        """SIGTERM every running worker, wait, SIGKILL what is left; the exit codes."""
        for child in self._children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._stop_timeout
        codes: list[int | None] = []
        for child in self._children:
            try:
                codes.append(child.wait(timeout=max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                self._log.error("worker.killed", pid=child.pid, after_seconds=self._stop_timeout)
                child.kill()
                codes.append(child.wait())
        return codes
