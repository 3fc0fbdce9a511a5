"""The alert policy: detector output -> drift alerts and retrain requests.

Per (model, version, signal): no alert before ``min_observations``; a drift
alert silences the signal for ``cooldown_observations`` (one alert per change,
whichever detector saw it first); a warning is reported once, then not again
until a drift alert or a cooldown has passed. Ids are derived from the alert's
content, so the same input always gives the same ``alert_id``. Retrain requests
are limited per model to one per ``retrain_interval_seconds`` of event time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stream_mlops.config import ModelSettings
from stream_mlops.detectors import Detection, Detector
from stream_mlops.events import AlertStats, DriftAlert, RetrainRequest, SignalShift, WindowStart
from stream_mlops.plain_data import (
    FieldError,
    Fields,
    check_int,
    check_list,
    float_data,
    read_float,
)
from stream_mlops.quality import RateTrack
from stream_mlops.signals import SignalTrack

__all__ = ["AlertPolicy", "content_id"]

# Label-free alerts list the signals that moved most; beyond that it is noise
# for an operator and bloats the alert.
_MAX_SHIFTS = 20


def content_id(*parts: object) -> str:
    """A stable id from the parts (blake2b, 128 bits, hex).

    >>> content_id("fraud", "v1", "error") == content_id("fraud", "v1", "error")
    True
    >>> len(content_id("x"))
    32
    """
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _moved_most(shift: SignalShift) -> tuple[bool, float, str]:
    # The distance sees every kind of change (mean, variance, shape, category
    # frequencies); signals without one yet come after, by |effect size|.
    if shift.distance is not None:
        return (False, -shift.distance, shift.signal)
    return (True, -abs(shift.effect_size), shift.signal)


@dataclass(slots=True)
class _SignalPolicy:
    last_drift: int | None = None  # the signal's observation count at the last drift alert
    last_warning: int | None = None


class AlertPolicy:
    """Decides which detections become alerts, and which alerts ask for retraining."""

    def __init__(self, partition: int | None = None) -> None:
        self.partition = partition
        self.suppressed = 0
        self.retrain_suppressed = 0
        self._signals: dict[tuple[str, str, str], _SignalPolicy] = {}
        self._last_retrain: dict[str, float] = {}

    def state(self) -> dict[str, Any]:
        """The policy as plain data (the partition is the task's, not the state's)."""
        return {
            "suppressed": self.suppressed,
            "retrain_suppressed": self.retrain_suppressed,
            "signals": [
                [*key, policy.last_drift, policy.last_warning]
                for key, policy in self._signals.items()
            ],
            "last_retrain": [[m, float_data(epoch)] for m, epoch in self._last_retrain.items()],
        }

    @classmethod
    def from_state(cls, fields: Fields, partition: int | None) -> AlertPolicy:
        """The policy ``state()`` wrote; FieldError (a ValueError) naming the field otherwise."""
        policy = cls(partition)
        policy.suppressed = fields.integer("suppressed", low=0)
        policy.retrain_suppressed = fields.integer("retrain_suppressed", low=0)
        for i, entry in enumerate(fields.items("signals")):
            at = f"{fields.at('signals')}[{i}]"
            parts = check_list(entry, at)
            if len(parts) != 5 or any(type(p) is not str for p in parts[:3]):
                raise FieldError(
                    f"{at}: expected [model_id, model_version, signal, last_drift, last_warning]"
                )
            last_drift, last_warning = (
                None if v is None else check_int(v, f"{at}[{j}]", low=0)
                for j, v in enumerate(parts[3:], start=3)
            )
            key = (str(parts[0]), str(parts[1]), str(parts[2]))
            policy._signals[key] = _SignalPolicy(last_drift, last_warning)
        for i, entry in enumerate(fields.items("last_retrain")):
            at = f"{fields.at('last_retrain')}[{i}]"
            parts = check_list(entry, at)
            if len(parts) != 2 or type(parts[0]) is not str:
                raise FieldError(f"{at}: expected [model_id, epoch]")
            policy._last_retrain[parts[0]] = read_float(parts[1], f"{at}[1]")
        fields.done()
        return policy

    def review(
        self,
        settings: ModelSettings,
        *,
        model_id: str,
        model_version: str,
        track: SignalTrack | RateTrack,
        detector: Detector,
        detection: Detection,
        effect_size: float,
        event_id: str,
        ts: datetime,
        shifts: Callable[[], list[SignalShift]],
    ) -> DriftAlert | None:
        """The alert for this detection, or None when the policy holds it back."""
        key = (model_id, model_version, track.name)
        state = self._signals.get(key)
        if state is None:
            state = self._signals[key] = _SignalPolicy()
        seen = track.observations
        cooldown = settings.cooldown_observations
        in_cooldown = state.last_drift is not None and seen - state.last_drift < cooldown
        if detector.observations < settings.min_observations or in_cooldown:
            self.suppressed += 1
            return None
        if detection.severity == "warning":
            if state.last_warning is not None and seen - state.last_warning < cooldown:
                self.suppressed += 1
                return None
            state.last_warning = seen
        else:
            state.last_drift = seen
            state.last_warning = None
        alert_id = content_id(
            model_id,
            model_version,
            track.name,
            detector.name,
            detection.severity,
            self.partition,
            event_id,
            detector.observations,
        )
        ranked = sorted(shifts(), key=_moved_most)
        return DriftAlert(
            alert_id=alert_id,
            model_id=model_id,
            model_version=model_version,
            signal=track.name,
            detector=detector.name,
            severity=detection.severity,
            ts=ts,
            trigger_event_id=event_id,
            observations=detector.observations,
            stats=AlertStats(
                mean_before=detection.mean_before,
                mean_after=detection.mean_after,
                window_before=detection.window_before,
                window_after=detection.window_after,
                effect_size=effect_size,
                partition=self.partition,
                shifts=ranked[:_MAX_SHIFTS],
            ),
        )

    def forget(
        self,
        versions: Iterable[tuple[str, str]],
        retrain_intervals: Mapping[str, float],
        *,
        now: float,
    ) -> None:
        """Drop what the policy keeps for retired model versions.

        ``retrain_intervals`` names the models that have no version left, with
        their ``retrain_interval_seconds``: a model's retrain rate limit goes
        once it has run out at ``now`` (event time), so a model that comes back
        is limited as before.
        """
        gone = set(versions)
        if gone:
            self._signals = {k: v for k, v in self._signals.items() if (k[0], k[1]) not in gone}
        for model_id, interval in retrain_intervals.items():
            last = self._last_retrain.get(model_id)
            if last is not None and now - last >= interval:
                del self._last_retrain[model_id]

    def forget_signals(self, model_id: str, model_version: str, signals: Iterable[str]) -> None:
        """Drop what the policy keeps for signals that are gone (a slice no longer tracked)."""
        for signal in signals:
            self._signals.pop((model_id, model_version, signal), None)

    def retrain(
        self,
        settings: ModelSettings,
        alerts: list[DriftAlert],
        window_start: WindowStart,
        *,
        epoch: float,
        ts: datetime,
    ) -> RetrainRequest | None:
        """One request for the drift alerts of one event, unless rate-limited."""
        first = alerts[0]
        last = self._last_retrain.get(first.model_id)
        if last is not None and epoch - last < settings.retrain_interval_seconds:
            self.retrain_suppressed += 1
            return None
        self._last_retrain[first.model_id] = epoch
        reasons = [alert.alert_id for alert in alerts]
        return RetrainRequest(
            request_id=content_id("retrain", *reasons),
            model_id=first.model_id,
            model_version=first.model_version,
            reason_alert_ids=reasons,
            window_start=window_start,
            ts=ts,
        )
