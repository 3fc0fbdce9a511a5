"""Liveness and readiness of a service's loop: what ``/healthz`` and ``/readyz`` answer.

A service's loop polls Kafka over and over; between two polls it processes a
batch, commits, restores state or replays a retrain request's buffer. It is
**alive** while it polled within ``liveness_timeout_s`` (counted from the
probe's start until the first poll, so a service that is still connecting is
not yet stuck), and **ready** once its partitions are assigned and their state
restored. Kubernetes restarts a pod that is not alive and sends no traffic
to one that is not ready; our services take no traffic, so readiness tells an
operator (and a rollout) that the process has caught up with its assignment.

The answers come from a ``LoopStatus`` read on the HTTP server's thread:
``RuntimeStats.snapshot()`` for the services on the task runtime, the
notifier's own counters for the notifier. Both are safe to read there.

>>> now = [100.0]
>>> status = LoopStatus(ready=False, last_poll=None)
>>> probes = Probes(lambda: status, liveness_timeout_s=30, clock=lambda: now[0])
>>> probes.liveness()
Answer(ok=True, text='alive: started 0.0 s ago, no poll yet')
>>> probes.readiness()
Answer(ok=False, text='not ready: partitions not assigned and restored yet')
>>> status = LoopStatus(ready=True, last_poll=101.0)
>>> now[0] = 140.0
>>> probes.liveness()
Answer(ok=False, text='stuck: last poll 39.0 s ago (liveness_timeout_seconds=30)')
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from stream_mlops.kafka.observer import StatsSnapshot

__all__ = ["Answer", "LoopStatus", "Probes", "runtime_status"]


@dataclass(frozen=True, slots=True)
class LoopStatus:
    """A service loop's liveness and readiness facts at one instant."""

    #: partitions assigned and their state restored: processing
    ready: bool
    #: monotonic time of the last poll; None before the first
    last_poll: float | None


def runtime_status(snapshot: StatsSnapshot) -> LoopStatus:
    """The status of a service on the task runtime (``TaskRuntime.stats.snapshot()``)."""
    return LoopStatus(ready=snapshot.ready, last_poll=snapshot.last_poll)


class Answer(NamedTuple):
    """A probe's answer: 200 when ``ok``, else 503; ``text`` says why."""

    ok: bool
    text: str


class Probes:
    """Answers ``/healthz`` and ``/readyz`` from a ``LoopStatus`` source; any thread."""

    def __init__(
        self,
        status: Callable[[], LoopStatus],
        *,
        liveness_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if liveness_timeout_s <= 0:
            raise ValueError("liveness_timeout_s must be positive")
        self._status = status
        self.liveness_timeout_s = liveness_timeout_s
        self._clock = clock
        self._started = clock()

    def since_poll(self) -> float:
        """Seconds since the last poll (since the start, before the first one)."""
        last = self._status().last_poll
        return max(0.0, self._clock() - (self._started if last is None else last))

    def liveness(self) -> Answer:
        last = self._status().last_poll
        since = self.since_poll()
        if since > self.liveness_timeout_s:
            return Answer(
                False,
                f"stuck: last poll {since:.1f} s ago "
                f"(liveness_timeout_seconds={self.liveness_timeout_s:g})",
            )
        if last is None:
            return Answer(True, f"alive: started {since:.1f} s ago, no poll yet")
        return Answer(True, f"alive: last poll {since:.1f} s ago")

    def readiness(self) -> Answer:
        if self._status().ready:
            return Answer(True, "ready: partitions assigned and restored")
        return Answer(False, "not ready: partitions not assigned and restored yet")
