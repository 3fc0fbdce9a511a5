"""The one small interface every drift detector adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

__all__ = ["Detection", "Detector", "ParamError"]


class ParamError(ValueError):
    """A bad detector parameter; ``field`` names it (None: the detector as a whole)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Detection:
    """A detector fired: how severe, and what it saw (``None`` where it cannot tell).

    ``window_after`` is how many of the latest observations the detector holds to
    be post-change; ``before`` is the reference it compared them with.
    """

    severity: Literal["warning", "drift"]
    mean_before: float | None = None
    mean_after: float | None = None
    window_before: int | None = None
    window_after: int | None = None


class Detector(ABC):
    """One drift detector on one signal.

    ``update`` runs for every observation, so adapters keep it lean and only do
    real work on the rare update that fires. Every adapter writes its state as
    plain data for checkpoints (``state`` / ``load_state``).
    """

    #: Canonical name, the ``detector`` of an alert.
    name: ClassVar[str]
    #: Only fed 0/1 values (the error signal of a classifier).
    binary: ClassVar[bool] = False

    def __init__(self) -> None:
        self.observations = 0

    @abstractmethod
    def update(self, x: float) -> Detection | None:
        """Feed one value; a Detection when this value made the detector fire."""

    def prime(self, values: Sequence[float], raw: Sequence[float] | None = None) -> None:
        """Take ``values`` as the reference, before the stream (a pinned reference).

        The default feeds them through ``update`` and ignores any alarm: the
        detector's window starts with them, and they count in
        ``observations``. Detectors that estimate an explicit reference
        (``glr``, ``distribution``) take them as that reference. ``raw`` is
        the signal's own values where ``values`` are ranks (the GLR bank
        reports its located means in them).
        """
        for x in values:
            self.update(x)

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The constructor arguments, for ``repr`` and clones."""

    def state(self) -> dict[str, Any]:
        """What the detector has learned, as plain data (numbers, strings, lists, dicts).

        With ``params()`` it rebuilds the detector: ``build(name, params).load_state(state)``.
        Snapshots on the state topic carry this, never a pickle, so that a record
        read back from Kafka cannot carry code.
        """
        raise NotImplementedError(f"{type(self).__name__} has no data-only state yet")

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state()`` of a detector built with the same ``params()``.

        Raises ``ValueError`` (naming what is wrong) on anything it cannot trust:
        a missing key, a wrong type, a value out of range.
        """
        raise NotImplementedError(f"{type(self).__name__} has no data-only state yet")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
