"""The retraining core's errors."""

from __future__ import annotations


class RetrainError(Exception):
    """Base of every error the retraining core raises."""


class RetrainInputError(RetrainError, ValueError):
    """A labeled event the task cannot learn from; str() is a one-line reason.

    Raised before any state changes, so the caller can dead-letter the event
    and keep going.
    """


class ReproduceError(RetrainError):
    """A version cannot be rebuilt: the events read back are not the recorded ones."""
