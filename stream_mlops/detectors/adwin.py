"""ADWIN (adaptive windowing), river's implementation, with window statistics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from river.drift import ADWIN

from stream_mlops.detectors.base import Detection, Detector, ParamError
from stream_mlops.detectors.river_state import load_object_state, object_state, scalar_params
from stream_mlops.plain_data import FieldError, Fields, float_data

__all__ = ["AdwinDetector"]

# 0.00002 rather than river's 0.002, because the engine runs one ADWIN per
# feature for as long as a model version lives. Measured on stationary streams:
# river's 0.002 raised a false drift in one of three 1M-value streams (uniform,
# Bernoulli 0.05, Gaussian); 0.0002 in one of three 5M-value Gaussian streams,
# and twice on a 10M-event replay (8 features, 40M values). 0.00002 raised none
# in three 5M-value Gaussian streams, and still found an error-rate step from 5%
# to 10% within 431-1,519 values (20 seeds; 335-1,263 at 0.0002).
DEFAULT_DELTA = 0.00002


class AdwinDetector(Detector):
    """ADWIN on any numeric signal.

    river's ADWIN forgets its whole window on the update after a detection, so
    the adapter counts values and their sum since the last reset itself: at a
    detection, ADWIN's remaining window is the post-change part and the rest of
    what it saw since its reset is the "before" part.

    ``warning_delta`` (larger than ``delta``) runs a second, more sensitive ADWIN
    whose detections are reported as warnings; ADWIN itself has no warning zone.

    >>> import random
    >>> rng = random.Random(0)
    >>> detector = AdwinDetector()
    >>> fired = [d for i in range(4000)
    ...          if (d := detector.update(rng.gauss(0.0 if i < 2000 else 1.0, 1.0)))]
    >>> [(d.severity, d.window_before, d.window_after) for d in fired]
    [('drift', 1280, 768)]
    >>> round(fired[0].mean_before, 2), round(fired[0].mean_after, 2)
    (0.02, 0.05)

    ADWIN cuts its window at bucket boundaries and stops cutting as soon as no
    split is significant, so the "after" window may still hold many pre-change
    values (above: 768 values of which 48 are post-change): its mean understates
    the shift, and a small ``delta`` makes that worse. The signal's effect size
    (see ``stream_mlops.signals``) measures the shift itself.
    """

    name = "adwin"

    def __init__(
        self,
        *,
        delta: float = DEFAULT_DELTA,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
        warning_delta: float | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < delta < 1.0:
            raise ParamError("delta", "must be in (0, 1)")
        if warning_delta is not None and not delta < warning_delta < 1.0:
            raise ParamError("warning_delta", "must be in (delta, 1)")
        for field, value in (
            ("clock", clock),
            ("min_window_length", min_window_length),
            ("grace_period", grace_period),
        ):
            if value < 1:
                raise ParamError(field, "must be at least 1")
        if max_buckets < 2:
            # river 0.26's Rust window panics (a BaseException, past any
            # `except Exception`) on the first cut after a drift with one bucket
            # per level: the engine would die on an ordinary value.
            raise ParamError("max_buckets", "must be at least 2")
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self.warning_delta = warning_delta
        self._adwin = self._new(delta)
        self._warning = None if warning_delta is None else self._new(warning_delta)
        self._count = 0  # values since the last reset of the main ADWIN
        self._sum = 0.0

    def _new(self, delta: float) -> ADWIN:
        return ADWIN(  # type: ignore[no-untyped-call]
            delta=delta,
            clock=self.clock,
            max_buckets=self.max_buckets,
            min_window_length=self.min_window_length,
            grace_period=self.grace_period,
        )

    def params(self) -> dict[str, Any]:
        return {
            "delta": self.delta,
            "clock": self.clock,
            "max_buckets": self.max_buckets,
            "min_window_length": self.min_window_length,
            "grace_period": self.grace_period,
            "warning_delta": self.warning_delta,
        }

    def state(self) -> dict[str, Any]:
        warning = self._warning
        return {
            "observations": self.observations,
            "count": self._count,
            "sum": float_data(self._sum),
            "adwin": object_state(self._adwin, skip=scalar_params(self._adwin)),
            "warning": None
            if warning is None
            else object_state(warning, skip=scalar_params(warning)),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        fields = Fields(state, "state")
        self.observations = fields.integer("observations", low=0)
        self._count = fields.integer("count", low=0, high=self.observations)
        self._sum = fields.number("sum")
        adwin = self._adwin
        load_object_state(adwin, fields.raw("adwin"), fields.at("adwin"), skip=scalar_params(adwin))
        warning = fields.raw("warning")
        if self._warning is None:
            if warning is not None:
                raise FieldError("state.warning: this detector has no warning_delta")
        else:
            if warning is None:
                raise FieldError("state.warning: missing (the detector has a warning_delta)")
            load_object_state(
                self._warning, warning, fields.at("warning"), skip=scalar_params(self._warning)
            )
        fields.done()

    def update(self, x: float) -> Detection | None:
        # The hot path: river's Rust window directly (its update returns whether
        # the window was cut), skipping ADWIN.update's Python wrapper and the
        # drift_detected property, a third of the cost per value. We then reset
        # on detection, as ADWIN.update would on the next value;
        # tests/test_detectors.py checks both give the same detections.
        self.observations += 1
        self._count += 1
        self._sum += x
        if self._adwin._helper.update(x):
            return self._detected()
        if self._warning is not None and self._warning._helper.update(x):
            self._warning = self._new(self._warning.delta)
            return Detection(severity="warning")
        return None

    def _detected(self) -> Detection:
        width = int(self._adwin.width)
        after_sum = self._adwin.total
        before = self._count - width
        detection = Detection(
            severity="drift",
            mean_before=(self._sum - after_sum) / before if before > 0 else None,
            mean_after=after_sum / width if width > 0 else None,
            window_before=before,
            window_after=width,
        )
        # river resets ADWIN on its next update; reset now to match, and let the
        # warning ADWIN follow the same reset.
        self._adwin = self._new(self.delta)
        self._count = 0
        self._sum = 0.0
        if self._warning is not None:
            self._warning = self._new(self._warning.delta)
        return detection
