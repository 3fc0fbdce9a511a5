"""Any other river drift detector, by name (KSWIN, DDM, EDDM, HDDM_A, ...)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any

from river import base as river_base
from river import drift as river_drift
from river.drift import binary as river_binary

from stream_mlops.detectors.base import Detection, Detector, ParamError
from stream_mlops.detectors.river_state import load_object_state, object_state, scalar_params
from stream_mlops.plain_data import Fields, float_data

__all__ = ["RiverDetector", "river_classes"]

# Not detectors of a signal: a classifier wrapper, and test doubles that fire on
# a schedule rather than on the data.
_EXCLUDED = {"DriftRetrainingClassifier", "DummyDriftDetector", "NoDrift"}
# Canonical names where snake_case of the class name reads badly.
_NAMES = {"HDDMA": "hddm_a", "HDDMW": "hddm_w", "PageHinkley": "page_hinkley"}


def _canonical(class_name: str) -> str:
    if class_name in _NAMES:
        return _NAMES[class_name]
    return class_name.lower()


@functools.cache
def river_classes() -> dict[str, type[Any]]:
    """river's drift detectors by canonical name (``ddm``, ``hddm_a``, ``kswin``...)."""
    found: dict[str, type[Any]] = {}
    for module in (river_drift, river_binary):
        for attr in module.__all__:
            # river 0.26 lists PeriodicTrigger in __all__ without defining it.
            cls = getattr(module, attr, None)
            if (
                isinstance(cls, type)
                and attr not in _EXCLUDED
                and issubclass(cls, river_base.DriftDetector | river_base.BinaryDriftDetector)
            ):
                found[_canonical(attr)] = cls
    return found


class RiverDetector(Detector):
    """A river detector used as is. Binary ones (DDM, HDDM...) take only 0/1.

    Parameters are checked against the class signature (unknown names and wrong
    types fail), then river checks the values. A ``seed`` defaults to 0, so runs
    are reproducible.

    >>> import random
    >>> rng = random.Random(3)
    >>> ddm = RiverDetector("ddm", {})
    >>> fired = [(i, d.severity) for i in range(6000)
    ...          if (d := ddm.update(float(rng.random() < (0.05 if i < 3000 else 0.3))))]
    >>> [(i, severity) for i, severity in fired if i >= 3000]  # the step at 3000
    [(3016, 'warning'), (3069, 'drift')]
    """

    def __init__(self, family: str, params: dict[str, Any]) -> None:
        super().__init__()
        classes = river_classes()
        if family not in classes:
            raise ParamError("name", f"unknown detector {family!r}")
        cls = classes[family]
        self._family = family
        self._params = _checked(cls, params)
        self._binary = issubclass(cls, river_base.BinaryDriftDetector)
        try:
            self._detector = cls(**self._params)
        except (ValueError, TypeError) as exc:
            raise ParamError(None, str(exc)) from None
        self._warns = hasattr(self._detector, "warning_detected")
        self._count = 0
        self._sum = 0.0
        self._in_warning = False

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._family

    @property
    def binary(self) -> bool:  # type: ignore[override]
        return self._binary

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def __repr__(self) -> str:
        return f"RiverDetector({self._family!r}, {self._params!r})"

    def state(self) -> dict[str, Any]:
        """The adapter's counters and river's detector, walked attribute by attribute
        (see ``stream_mlops.detectors.river_state``)."""
        detector = self._detector
        return {
            "observations": self.observations,
            "count": self._count,
            "sum": float_data(self._sum),
            "in_warning": self._in_warning,
            "river": object_state(detector, skip=scalar_params(detector)),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        fields = Fields(state, "state")
        self.observations = fields.integer("observations", low=0)
        self._count = fields.integer("count", low=0, high=self.observations)
        self._sum = fields.number("sum")
        self._in_warning = fields.boolean("in_warning")
        detector = self._detector
        load_object_state(
            detector, fields.raw("river"), fields.at("river"), skip=scalar_params(detector)
        )
        fields.done()

    def update(self, x: float) -> Detection | None:
        self.observations += 1
        detector = self._detector
        # Binary detectors take bools; the others numbers.
        detector.update(x == 1.0 if self._binary else x)
        self._count += 1
        self._sum += x
        if detector.drift_detected:
            detection = Detection(
                severity="drift",
                mean_before=self._sum / self._count,
                window_before=self._count,
            )
            self._count = 0
            self._sum = 0.0
            self._in_warning = False
            return detection
        if self._warns:
            warning = bool(detector.warning_detected)
            fired = warning and not self._in_warning
            # Report entering the warning zone, not every value inside it.
            self._in_warning = warning
            if fired:
                return Detection(severity="warning", mean_before=self._sum / self._count)
        return None


_ALLOWED: dict[type[Any], dict[str, inspect.Parameter]] = {}


def _allowed(cls: type[Any]) -> dict[str, inspect.Parameter]:
    # Cached: inspect.signature is slow, and a restore builds many detectors.
    found = _ALLOWED.get(cls)
    if found is None:
        found = _ALLOWED[cls] = {
            name: p
            for name, p in inspect.signature(cls).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != "window"
        }
    return found


def _checked(cls: type[Any], params: dict[str, Any]) -> dict[str, Any]:
    allowed = _allowed(cls)
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in allowed:
            raise ParamError(key, f"unexpected parameter; expected one of {', '.join(allowed)}")
        default = allowed[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ParamError(key, "must be a bool")
        if isinstance(default, int) and not isinstance(default, bool) and type(value) is not int:
            raise ParamError(key, "must be an integer")
        if isinstance(default, float) and type(value) not in (int, float):
            raise ParamError(key, "must be a number")
        if isinstance(default, str) and not isinstance(value, str):
            raise ParamError(key, "must be a string")
        out[key] = value
    if "seed" in allowed and "seed" not in out:
        out["seed"] = 0  # determinism: same input, same alerts
    return out
