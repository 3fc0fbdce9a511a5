"""Drift detectors behind one interface, looked up by name.

``glr``, ``adwin``, ``page_hinkley`` and ``distribution`` are our adapters (a
CUSUM bank over shift sizes, window statistics, scale calibration,
whole-distribution tests); every other river
detector is available by its name, e.g.
``kswin``, ``ddm``, ``eddm``, ``hddm_a``, ``hddm_w``, ``fhddm``.

>>> build("ADWIN", {"delta": 0.01})
AdwinDetector(delta=0.01, clock=32, max_buckets=5, min_window_length=5, grace_period=10, \
warning_delta=None)
>>> canonical_name("HDDM_A"), is_binary("hddm_a"), is_binary("kswin")
('hddm_a', True, False)
>>> build("adwin", {"delta": 2})
Traceback (most recent call last):
...
stream_mlops.detectors.base.ParamError: delta: must be in (0, 1)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from river import base as river_base

from stream_mlops.detectors.adwin import AdwinDetector
from stream_mlops.detectors.base import Detection, Detector, ParamError
from stream_mlops.detectors.distribution import DistributionDetector
from stream_mlops.detectors.glr import GlrDetector
from stream_mlops.detectors.page_hinkley import PageHinkleyDetector
from stream_mlops.detectors.river_family import RiverDetector, river_classes
from stream_mlops.plain_data import FieldError, Fields

__all__ = [
    "AdwinDetector",
    "Detection",
    "Detector",
    "DistributionDetector",
    "GlrDetector",
    "PageHinkleyDetector",
    "ParamError",
    "RiverDetector",
    "build",
    "canonical_name",
    "is_binary",
    "known_names",
    "restore",
    "saved",
]

_ADAPTERS: dict[
    str, type[AdwinDetector | PageHinkleyDetector | DistributionDetector | GlrDetector]
] = {
    "adwin": AdwinDetector,
    "page_hinkley": PageHinkleyDetector,
    "distribution": DistributionDetector,
    "glr": GlrDetector,
}


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def known_names() -> list[str]:
    """Every canonical detector name, sorted."""
    return sorted(set(_ADAPTERS) | set(river_classes()))


def canonical_name(name: str) -> str:
    """``"PageHinkley"``, ``"page-hinkley"`` -> ``"page_hinkley"``; ParamError if unknown."""
    wanted = _key(name)
    for known in known_names():
        if _key(known) == wanted:
            return known
    raise ParamError("name", f"unknown detector {name!r}; known: {', '.join(known_names())}")


def is_binary(name: str) -> bool:
    """True for detectors that only take 0/1 values (DDM, EDDM, HDDM_A...)."""
    canonical = canonical_name(name)
    if canonical in _ADAPTERS:
        return False
    return issubclass(river_classes()[canonical], river_base.BinaryDriftDetector)


_SIGNATURES: dict[type[Detector], Mapping[str, inspect.Parameter]] = {}


def _signature(adapter: type[Detector]) -> Mapping[str, inspect.Parameter]:
    # Cached: a restore builds every detector of a snapshot (hundreds of
    # thousands for thousands of models), and inspect.signature is slow.
    found = _SIGNATURES.get(adapter)
    if found is None:
        found = _SIGNATURES[adapter] = inspect.signature(adapter).parameters
    return found


def build(name: str, params: dict[str, Any]) -> Detector:
    """A fresh detector; ParamError names the offending parameter."""
    canonical = canonical_name(name)
    adapter = _ADAPTERS.get(canonical)
    if adapter is None:
        return RiverDetector(canonical, params)
    allowed = _signature(adapter)
    for key, value in params.items():
        if key not in allowed:
            raise ParamError(key, f"unexpected parameter; expected one of {', '.join(allowed)}")
        default = allowed[key].default
        if isinstance(default, bool):
            if type(value) is not bool:
                raise ParamError(key, "must be a bool")
        elif isinstance(default, int) and type(value) is not int:
            raise ParamError(key, "must be an integer")
        if isinstance(default, float) and type(value) not in (int, float):
            raise ParamError(key, "must be a number")
    return adapter(**params)


def saved(detector: Detector) -> dict[str, Any]:
    """A detector as plain data: its name, parameters and state (``restore`` reads it)."""
    return {"name": detector.name, "params": detector.params(), "state": detector.state()}


def restore(state: object, path: str) -> Detector:
    """The detector ``saved`` wrote; FieldError (a ValueError) naming ``path`` otherwise."""
    fields = Fields(state, path)
    name = fields.string("name")
    params = fields.mapping("params")
    try:
        detector = build(name, dict(params))
        detector.load_state(fields.mapping("state"))
    except ValueError as exc:
        raise FieldError(f"{path} ({name}): {exc}") from None
    fields.done()
    return detector
