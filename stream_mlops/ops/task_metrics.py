"""What a service's own metrics share: counting only what commits.

A service's core announces outputs (an engine's alerts, a retrainer's
decisions) as it makes them, inside the open transaction. They are held until
the checkpoint ends: counted if it committed, dropped if it aborted (the
rewind makes them again) or if a rebalance aborted the transaction. After each
commit and restore the subclass reads the tasks' states on the runtime's
thread (``watch`` says where), for the gauges a scrape reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from stream_mlops.kafka.observer import BatchReport, CheckpointReport, RestoreReport

__all__ = ["CommittedOutputs"]

Output = TypeVar("Output")  # announced in the open transaction
Task = TypeVar("Task")  # a task's state


class CommittedOutputs(Generic[Output, Task]):
    """A ``RuntimeObserver`` that counts announced outputs once their transaction commits."""

    def __init__(self) -> None:
        self._tasks: Callable[[], Mapping[int, Task]] = dict
        self._pending: list[Output] = []

    def watch(self, tasks: Callable[[], Mapping[int, Task]]) -> None:
        """Where to read the tasks: ``lambda: runtime.tasks`` (on the runtime's thread)."""
        self._tasks = tasks

    def _announced(self, output: Output) -> None:
        self._pending.append(output)

    def _committed(self, outputs: list[Output]) -> None:
        """Count the outputs of a committed transaction."""

    def _read(self, *, count: bool) -> None:
        """Read the tasks (``count``: after a commit, not a restore)."""

    # -- RuntimeObserver ----------------------------------------------------------

    def polled(self, at: float) -> None:
        pass

    def batch_processed(self, report: BatchReport) -> None:
        pass

    def checkpoint_ended(self, report: CheckpointReport) -> None:
        pending, self._pending = self._pending, []
        if report.outcome != "committed":
            return  # void: produced again after the rewind
        if pending:
            self._committed(pending)
        self._read(count=True)

    def assigned(self, partitions: frozenset[int]) -> None:
        self._pending = []  # the runtime aborted the open transaction first

    def restored(self, report: RestoreReport) -> None:
        self._read(count=False)
