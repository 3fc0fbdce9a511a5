"""The registry's errors: one root, so callers can catch registry trouble in one place."""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every error the model registry raises."""


class VersionNotFoundError(RegistryError, LookupError):
    """A model or version that the registry does not hold."""


class RegistryCorruptError(RegistryError):
    """Stored data that cannot be read back as written (edited or damaged on disk)."""
