"""Where the registry lives: a flag, the configuration, the environment, or ``./registry``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT_REGISTRY", "REGISTRY_ENV", "resolve_registry"]

REGISTRY_ENV: Final = "STREAM_MLOPS_REGISTRY"
DEFAULT_REGISTRY: Final = Path("registry")


def resolve_registry(
    flag: Path | None, configured: str | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The registry directory: ``--registry``, else the config's, else the environment's.

    >>> resolve_registry(None, None, {})
    PosixPath('registry')
    >>> resolve_registry(None, "/srv/models", {REGISTRY_ENV: "/tmp/r"})
    PosixPath('/srv/models')
    >>> resolve_registry(Path("here"), "/srv/models", {})
    PosixPath('here')
    """
    env = os.environ if environ is None else environ
    if flag is not None:
        return flag
    if configured:
        return Path(configured)
    return Path(env.get(REGISTRY_ENV) or DEFAULT_REGISTRY)
