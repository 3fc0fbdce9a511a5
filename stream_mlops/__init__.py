"""stream-mlops: streaming drift detection for machine-learning models in production.

The package is a pure core (events, join, signals, detectors, controller,
engine, replay) with no Kafka import, plus a thin Kafka edge in
``stream_mlops.kafka``. Services in ``consumers/`` and ``producers/`` only wire.

Embedding the core takes four names (``docs/api.md``)::

    from stream_mlops import Engine, Settings, load_settings, replay

They are loaded on first use, so ``python -m stream_mlops --help`` and the
broker commands do not pay for river and pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream_mlops.config import Settings, load_settings
    from stream_mlops.engine import Engine
    from stream_mlops.offline import replay

__all__ = ["Engine", "Settings", "__version__", "load_settings", "replay"]

# Public name -> the module that defines it.
_API = {
    "Engine": "stream_mlops.engine",
    "Settings": "stream_mlops.config",
    "load_settings": "stream_mlops.config",
    "replay": "stream_mlops.offline",
}


def _version() -> str:
    # The installed distribution's metadata: pyproject.toml is the one place the
    # version is written.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stream-mlops")
    except PackageNotFoundError:  # imported from a checkout that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
    else:
        raise AttributeError(f"module 'stream_mlops' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
