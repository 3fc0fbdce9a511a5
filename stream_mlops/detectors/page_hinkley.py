"""Page-Hinkley on a standardised signal, so one threshold fits every scale."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from river.drift import PageHinkley

from stream_mlops.detectors.base import Detection, Detector, ParamError
from stream_mlops.detectors.river_state import load_object_state, object_state, scalar_params
from stream_mlops.plain_data import Fields, float_data

__all__ = ["PageHinkleyDetector"]

# In units of the warm-up standard deviation. river's raw defaults (delta 0.005,
# threshold 50, alpha 0.9999) are in the signal's own units and, even on a
# standardised N(0, 1) stream, fired 188 times in 300,000 values: the fading
# factor keeps the cumulative sum's noise near sqrt(1 / (1 - alpha^2)) ~ 70. With
# no fading, delta 0.5 (half the 1-SD shift worth catching) and threshold 20, no
# false detection in 300,000 standard normal values (seed 0), and a 1-SD mean
# shift was found 26-66 values after it happened (5 seeds).
DEFAULT_WARMUP = 1000
DEFAULT_DELTA = 0.5
DEFAULT_THRESHOLD = 20.0


class PageHinkleyDetector(Detector):
    """Page-Hinkley on ``(x - mean) / sd``, both estimated from a warm-up.

    The first ``warmup`` values (and again the first ``warmup`` after each
    detection, since a drift may change the scale too) only estimate the mean
    and standard deviation; detection starts after them.

    >>> import random
    >>> rng = random.Random(1)
    >>> detector = PageHinkleyDetector()
    >>> scale = 1e6  # the same settings work whatever the signal's units
    >>> fired = [i for i in range(20000)
    ...          if detector.update(scale * rng.gauss(0.0 if i < 10000 else 1.0, 1.0))]
    >>> [i - 10000 for i in fired]
    [61]
    """

    name = "page_hinkley"

    def __init__(
        self,
        *,
        warmup: int = DEFAULT_WARMUP,
        delta: float = DEFAULT_DELTA,
        threshold: float = DEFAULT_THRESHOLD,
        alpha: float = 1.0,
        min_instances: int = 30,
        mode: str = "both",
    ) -> None:
        super().__init__()
        if warmup < 2:
            raise ParamError("warmup", "must be at least 2 (a standard deviation needs two values)")
        if delta < 0.0:
            raise ParamError("delta", "must be at least 0")
        if threshold <= 0.0:
            raise ParamError("threshold", "must be greater than 0")
        if not 0.0 < alpha <= 1.0:
            raise ParamError("alpha", "must be in (0, 1]")
        if min_instances < 1:
            raise ParamError("min_instances", "must be at least 1")
        if mode not in ("up", "down", "both"):
            raise ParamError("mode", "must be 'up', 'down' or 'both'")
        self.warmup = warmup
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.min_instances = min_instances
        self.mode = mode
        self._ph = self._new()
        self._calibrate()

    def _new(self) -> PageHinkley:
        return PageHinkley(
            min_instances=self.min_instances,
            delta=self.delta,
            threshold=self.threshold,
            alpha=self.alpha,
            mode=self.mode,
        )

    def _calibrate(self) -> None:
        # Welford over the warm-up; _scale stays 0 until it is complete.
        self._n = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._center = 0.0
        self._scale = 0.0
        self._count = 0  # values fed to Page-Hinkley since calibration
        self._sum = 0.0

    def params(self) -> dict[str, Any]:
        return {
            "warmup": self.warmup,
            "delta": self.delta,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "min_instances": self.min_instances,
            "mode": self.mode,
        }

    def state(self) -> dict[str, Any]:
        return {
            "observations": self.observations,
            "warmup_seen": self._n,
            "warmup_mean": float_data(self._mean),
            "warmup_m2": float_data(self._m2),
            "center": float_data(self._center),
            "scale": float_data(self._scale),
            "count": self._count,
            "sum": float_data(self._sum),
            "page_hinkley": object_state(self._ph, skip=scalar_params(self._ph)),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        fields = Fields(state, "state")
        self.observations = fields.integer("observations", low=0)
        self._n = fields.integer("warmup_seen", low=0, high=self.warmup)
        self._mean = fields.number("warmup_mean")
        self._m2 = fields.number("warmup_m2")
        self._center = fields.number("center")
        self._scale = fields.number("scale")
        self._count = fields.integer("count", low=0, high=self.observations)
        self._sum = fields.number("sum")
        ph = self._ph
        load_object_state(
            ph, fields.raw("page_hinkley"), fields.at("page_hinkley"), skip=scalar_params(ph)
        )
        fields.done()

    def update(self, x: float) -> Detection | None:
        self.observations += 1
        if self._scale == 0.0:
            self._n += 1
            d = x - self._mean
            self._mean += d / self._n
            self._m2 += d * (x - self._mean)
            if self._n == self.warmup:
                sd = math.sqrt(self._m2 / (self._n - 1))
                # A constant warm-up has no spread: any later change is real, so
                # measure it against a tiny fraction of the level instead.
                self._scale = sd if sd > 0.0 else max(abs(self._mean) * 1e-6, 1e-12)
                self._center = self._mean
            return None
        self._count += 1
        self._sum += x
        ph = self._ph
        ph.update((x - self._center) / self._scale)  # type: ignore[no-untyped-call]
        if not ph.drift_detected:
            return None
        detection = Detection(
            severity="drift",
            mean_before=self._center,
            mean_after=self._sum / self._count,
            window_before=self.warmup,
            window_after=self._count,
        )
        self._ph = self._new()
        self._calibrate()
        return detection
