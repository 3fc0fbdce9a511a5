"""Data quality per feature: what arrives broken, as rates the detectors watch.

A model fed nulls, strings where it expects numbers, or sentinel values like
-1e9 keeps scoring, and the label-free signals (``stream_mlops.signals``) skip
what is not a number or a category. Here every prediction is checked against
what the model version's first ``reference_observations`` predictions showed
(its *quality reference*), and each kind of problem is a 0/1 signal per event:

* ``quality:<feature>:missing``: the feature is absent or null, for a feature
  present (not null) in at least half of the reference;
* ``quality:<feature>:type``: a numeric feature (numbers or bools in the
  reference) arrives as a string, a categorical one (strings) as anything else;
* ``quality:<feature>:range``: a numeric value outside the reference's
  [q0.001, q0.999] widened on each side by ``quality_range_margin`` times that
  width (a constant reference: any other value);
* ``quality:<feature>:unseen``: a category the reference never showed, for a
  categorical feature with at most ``_MAX_KNOWN_CATEGORIES`` of them (more are
  identifiers, not categories);
* ``quality:schema``: the event's feature names differ from the reference's: a
  name it never showed, or one it showed in every event is gone.

The rates are watched by the GLR bank's rising-rate CUSUMs (``glr``, model
``bernoulli``, direction ``up``, ``rare``): a problem that never happened before
is found as soon as it starts, and one with a steady rate when that rate rises.
Problems are counted (``RateTrack.problems``; ``EngineStats.quality_problems``).

Cost: per prediction, one dict lookup, a type test and for numbers two
comparisons per feature, plain arithmetic. A signal's track and detector exist
only from its first problem on (the zeros before it are fed at once,
``GlrDetector.zeros``), and a 0 costs nothing until the next 1: a clean feature
costs no detector time and no state.

>>> monitor = QualityMonitor(reference_observations=3, margin=0.5, max_features=10)
>>> for amount in (10.0, 20.0, 30.0):
...     monitor.observe({"amount": amount, "merchant": "grocery"})
>>> monitor.observe({"amount": None, "merchant": "grocery"})
>>> monitor.observe({"amount": "12,5", "merchant": "fuel", "new": 1})
>>> sorted((t.name, t.problems) for t in monitor.tracks.values())  # doctest: +NORMALIZE_WHITESPACE
[('quality:amount:missing', 1), ('quality:amount:type', 1),
 ('quality:merchant:unseen', 1), ('quality:schema', 1)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from stream_mlops import detectors as detector_registry
from stream_mlops.changepoint import effect_size
from stream_mlops.detectors import Detection, Detector, GlrDetector
from stream_mlops.plain_data import FieldError, Fields, check_list, float_data, read_float

__all__ = [
    "ALL_KINDS",
    "KINDS",
    "SCHEMA",
    "QualityMonitor",
    "RateTrack",
    "budget_signals",
    "is_quality_signal",
    "signal_name",
]

KINDS: Final = ("missing", "type", "range", "unseen")
SCHEMA: Final = "quality:schema"
#: Every kind of problem, the schema included (``quality_checks = true``).
ALL_KINDS: Final = frozenset((*KINDS, "schema"))
# The reference quantiles a numeric feature's range starts from (then widened).
_LOW_QUANTILE: Final = 0.001
_HIGH_QUANTILE: Final = 0.999
# A categorical feature with more distinct values in its reference is an
# identifier (a card number, a user id): its values are not checked for being
# seen before. Also bounds the strings kept per feature.
_MAX_KNOWN_CATEGORIES: Final = 100
# A feature is expected (its absence is a problem) when present and not null in
# at least this share of the reference.
_EXPECTED_SHARE: Final = 0.5

FeatureValue = float | int | bool | str | None
Fired = list[tuple[Detector, Detection]]
#: Builds the detectors of a quality signal (the engine's, from the model's settings).
DetectorFactory = Callable[[str], list[Detector]]


def signal_name(feature: str, kind: str) -> str:
    """``quality:<feature>:<kind>``.

    >>> signal_name("amount", "missing")
    'quality:amount:missing'
    """
    return f"quality:{feature}:{kind}"


def is_quality_signal(signal: str) -> bool:
    return signal.startswith("quality:")


def budget_signals(
    features: Mapping[str, FeatureValue], kinds: frozenset[str] = ALL_KINDS
) -> list[str]:
    """The quality signals a prediction with these features may raise.

    Three per feature (missing, type, and range for a number or unseen for a
    string; range for a null) and the schema, of the ``kinds`` watched: what
    the model's false-alarm budget is split over (``engine._detector_count``),
    one detector each.

    >>> budget_signals({"amount": 1.0, "merchant": "fuel"})  # doctest: +NORMALIZE_WHITESPACE
    ['quality:schema', 'quality:amount:missing', 'quality:amount:type',
     'quality:amount:range', 'quality:merchant:missing', 'quality:merchant:type',
     'quality:merchant:unseen']
    >>> budget_signals({"amount": 1.0}, frozenset({"missing"}))
    ['quality:amount:missing']
    """
    signals = [SCHEMA] if "schema" in kinds else []
    for name, value in features.items():
        third = "unseen" if type(value) is str else "range"
        signals += [signal_name(name, k) for k in ("missing", "type", third) if k in kinds]
    return signals


class RateTrack:
    """One quality signal of one model version: how often its problem occurs.

    Fed only on a problem (a 1): ``problem(n)`` says that the ``n``-th event
    since the quality reference had it, and the zeros since the previous one
    are given to the detectors at once (every detector here is a rising-rate
    GLR bank, ``GlrDetector.zeros``). ``observations`` is the events seen as of
    the last problem; the controller reads it when this track fires, when it is
    current.
    """

    __slots__ = ("detectors", "name", "observations", "problems")

    # What the engine's alert path asks of any track.
    categorical: Final = False
    ranked: Final = False

    def __init__(self, name: str, detectors: list[Detector]) -> None:
        self.name = name
        self.detectors = detectors
        self.observations = 0
        #: events that had the problem
        self.problems = 0

    def problem(self, n: int) -> Fired | None:
        """Event ``n`` had the problem: what fired, if anything."""
        gap = n - self.observations - 1
        self.observations = n
        self.problems += 1
        fired: Fired | None = None
        for detector in self.detectors:
            if gap and type(detector) is GlrDetector:
                detector.zeros(gap)
            detection = detector.update(1.0)
            if detection is not None:
                if fired is None:
                    fired = []
                fired.append((detector, detection))
        return fired

    def rebase(self) -> None:
        """Nothing to restart: the detector restarts itself after a detection."""

    def window_start(self, post_change: int | None) -> None:
        """No marks kept: a retrain on a quality signal starts at the alert."""

    def located(self, detector: Detector, found: Detection) -> tuple[Detection, float]:
        """The rates before and after the change the GLR bank placed, and the
        change in binomial SDs of the rate before.

        The rate before is often exactly 0 (a problem that never happened):
        its SD is taken at the rate ``(k + 1/2) / (n + 1)`` of ``k`` problems in
        ``n`` events (a finite size, not an unbounded one).
        """
        before, after = found.mean_before, found.mean_after
        if before is None or after is None:
            return found, 0.0
        n = found.window_before or 0
        rate = (before * n + 0.5) / (n + 1)
        return found, effect_size(after - before, math.sqrt(rate * (1.0 - rate)))

    def state(self) -> dict[str, Any]:
        return {
            "observations": self.observations,
            "problems": self.problems,
            "detectors": [detector_registry.saved(d) for d in self.detectors],
        }

    @classmethod
    def from_state(cls, name: str, fields: Fields) -> RateTrack:
        detectors = [
            detector_registry.restore(f, fields.at(f"detectors[{i}]"))
            for i, f in enumerate(fields.items("detectors"))
        ]
        if any(type(d) is not GlrDetector for d in detectors):
            raise FieldError(f"{fields.at('detectors')}: quality signals take glr only")
        track = cls(name, detectors)
        track.observations = fields.integer("observations", low=0)
        track.problems = fields.integer("problems", low=0, high=track.observations)
        fields.done()
        return track


class _FeatureReference:
    """What the quality reference saw of one feature."""

    __slots__ = ("categories", "non_null", "numbers", "present", "sample", "strings")

    def __init__(self) -> None:
        self.present = 0  # events with the name (null or not)
        self.non_null = 0
        self.numbers = 0  # numbers and bools
        self.strings = 0
        self.sample: list[float] = []
        #: distinct strings, None beyond _MAX_KNOWN_CATEGORIES
        self.categories: set[str] | None = set()


# A feature's checks after the reference, as a tuple for the hot path:
# (kind: True numeric, False categorical, None unchecked; low; high;
#  known categories or None; expected (missing is a problem); required (schema)).
_Spec = tuple[bool | None, float, float, frozenset[str] | None, bool, bool]


class QualityMonitor:
    """The quality reference and signals of one model version."""

    __slots__ = (
        "_expected",
        "_reference",
        "_required",
        "_specs",
        "build",
        "events",
        "kinds",
        "margin",
        "max_features",
        "pinned",
        "reference_observations",
        "seen",
        "tracks",
    )

    def __init__(self, *, reference_observations: int, margin: float, max_features: int) -> None:
        self.reference_observations = reference_observations
        self.margin = margin
        #: features whose values are checked (as many as the model's tracked features)
        self.max_features = max_features
        #: predictions seen, the reference's included
        self.seen = 0
        #: predictions checked (after the reference)
        self.events = 0
        #: the reference is a pinned one (``pin``), not the stream's first predictions
        self.pinned = False
        self._reference: dict[str, _FeatureReference] | None = {}
        self._specs: dict[str, _Spec] = {}
        self._expected: list[str] = []
        self._required = 0
        self.tracks: dict[str, RateTrack] = {}
        #: how new signals get their detectors (none: counted, not watched)
        self.build: DetectorFactory | None = None
        #: the kinds of problem counted and watched (the others are ignored)
        self.kinds: frozenset[str] = ALL_KINDS

    # -- the hot path -------------------------------------------------------------

    # One flat function on purpose: it runs for every prediction.
    def observe(  # noqa: PLR0912
        self, features: Mapping[str, FeatureValue]
    ) -> list[tuple[RateTrack, Fired]] | None:
        """Check one prediction's features; the signals whose detectors fired."""
        if self._reference is not None:
            self._learn(features)
            return None
        n = self.events = self.events + 1
        self.seen += 1
        specs = self._specs
        fired: list[tuple[RateTrack, Fired]] | None = None
        known = expected = required = 0
        for name, value in features.items():
            spec = specs.get(name)
            if spec is None:
                continue
            known += 1
            numeric, low, high, categories, is_expected, is_required = spec
            if is_required:
                required += 1
            if value is None:
                continue  # missing: found below
            if is_expected:
                expected += 1
            kind = type(value)
            if numeric:
                if kind is float or kind is int or kind is bool:
                    if not low <= value <= high:  # type: ignore[operator]
                        fired = self._problem(name, "range", n, fired)
                else:
                    fired = self._problem(name, "type", n, fired)
            elif numeric is False:
                if kind is str:
                    if categories is not None and value not in categories:
                        fired = self._problem(name, "unseen", n, fired)
                else:
                    fired = self._problem(name, "type", n, fired)
        if expected < len(self._expected):
            for name in self._expected:
                if features.get(name) is None:
                    fired = self._problem(name, "missing", n, fired)
        if (known < len(features) or required < self._required) and "schema" in self.kinds:
            fired = self._track_problem(SCHEMA, n, fired)
        return fired

    def _problem(
        self, feature: str, kind: str, n: int, fired: list[tuple[RateTrack, Fired]] | None
    ) -> list[tuple[RateTrack, Fired]] | None:
        if kind not in self.kinds:
            return fired
        return self._track_problem(signal_name(feature, kind), n, fired)

    def _track_problem(
        self, signal: str, n: int, fired: list[tuple[RateTrack, Fired]] | None
    ) -> list[tuple[RateTrack, Fired]] | None:
        track = self.tracks.get(signal)
        if track is None:
            detectors = self.build(signal) if self.build is not None else []
            track = self.tracks[signal] = RateTrack(signal, detectors)
        found = track.problem(n)
        if found is None:
            return fired
        if fired is None:
            fired = []
        fired.append((track, found))
        return fired

    # -- the reference --------------------------------------------------------------

    def pin(self, reference: Sequence[Mapping[str, FeatureValue]]) -> None:
        """Take these events' features as the quality reference, before the stream
        (a pinned reference, ``stream_mlops.reference``): the ranges, known
        categories and schema come from them, and the stream is checked from
        its first prediction on."""
        if self._reference is None or self.seen:
            raise ValueError("quality: only a fresh monitor takes a pinned reference")
        for features in reference:
            self._take(features)
        if self.seen:
            self.pinned = True
            self._settle()

    def _learn(self, features: Mapping[str, FeatureValue]) -> None:
        self._take(features)
        if self.seen >= self.reference_observations:
            self._settle()

    def _take(self, features: Mapping[str, FeatureValue]) -> None:
        reference = self._reference
        assert reference is not None
        for name, value in features.items():
            stats = reference.get(name)
            if stats is None:
                # Names beyond max_features are still learnt as names (for the
                # schema), up to a bound: an event has at most so many.
                if len(reference) >= 10 * self.max_features:
                    continue
                stats = reference[name] = _FeatureReference()
            stats.present += 1
            if value is None:
                continue
            stats.non_null += 1
            kind = type(value)
            if kind is str:
                stats.strings += 1
                known = stats.categories
                if known is not None and value not in known:
                    if len(known) >= _MAX_KNOWN_CATEGORIES:
                        stats.categories = None
                    else:
                        known.add(value)  # type: ignore[arg-type]
            else:
                stats.numbers += 1
                stats.sample.append(float(value))
        self.seen += 1

    def _settle(self) -> None:
        """The reference is complete: each feature's checks from what it showed."""
        reference = self._reference
        assert reference is not None
        self._reference = None
        n = self.seen
        checked = 0
        for name, stats in reference.items():
            numeric: bool | None = None
            if checked < self.max_features and stats.non_null:
                numeric = stats.numbers >= stats.strings
                checked += 1
            low, high = _range(stats.sample, self.margin) if numeric else (0.0, 0.0)
            categories = None
            if numeric is False and stats.categories is not None:
                categories = frozenset(stats.categories)
            expected = numeric is not None and stats.non_null >= _EXPECTED_SHARE * n
            required = stats.present == n
            self._specs[name] = (numeric, low, high, categories, expected, required)
        self._index()

    def _index(self) -> None:
        self._expected = [name for name, spec in self._specs.items() if spec[4]]
        self._required = sum(1 for spec in self._specs.values() if spec[5])

    # -- snapshots ------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The monitor as plain data: its reference (or checks) and its tracks."""
        reference = None
        if self._reference is not None:
            reference = {
                name: {
                    "present": s.present,
                    "non_null": s.non_null,
                    "numbers": s.numbers,
                    "strings": s.strings,
                    "sample": [float_data(v) for v in s.sample],
                    "categories": None if s.categories is None else sorted(s.categories),
                }
                for name, s in self._reference.items()
            }
        return {
            "reference_observations": self.reference_observations,
            "margin": self.margin,
            "max_features": self.max_features,
            "seen": self.seen,
            "events": self.events,
            "pinned": self.pinned,
            "reference": reference,
            # Pairs in the reference's own order: the order problems are found in.
            "checks": [
                [
                    name,
                    numeric,
                    float_data(low),
                    float_data(high),
                    None if categories is None else sorted(categories),
                    expected,
                    required,
                ]
                for name, (numeric, low, high, categories, expected, required) in (
                    self._specs.items()
                )
            ],
            "tracks": {name: track.state() for name, track in self.tracks.items()},
        }

    @classmethod
    def from_state(cls, fields: Fields) -> QualityMonitor:
        """The monitor ``state()`` wrote; FieldError (a ValueError) naming the field otherwise."""
        monitor = cls(
            reference_observations=fields.integer("reference_observations", low=1),
            margin=fields.number("margin"),
            max_features=fields.integer("max_features", low=1),
        )
        monitor.seen = fields.integer("seen", low=0)
        monitor.events = fields.integer("events", low=0, high=monitor.seen)
        monitor.pinned = fields.boolean("pinned")
        reference = fields.optional_child("reference")
        checks = fields.items("checks")
        filling = monitor.seen < monitor.reference_observations and not monitor.pinned
        if monitor.pinned and reference is not None:
            raise FieldError(f"{fields.at('reference')}: a pinned reference is complete")
        if (reference is None) == filling:
            raise FieldError(f"{fields.at('reference')}: expected it while the reference fills")
        if reference is not None:
            if checks or monitor.events:
                raise FieldError(f"{fields.at('checks')}: none while the reference fills")
            monitor._reference = {
                name: _feature_reference(Fields(data, f"{reference.path}[{name!r}]"), monitor.seen)
                for name, data in fields.mapping("reference").items()
            }
        else:
            monitor._reference = None
            for i, entry in enumerate(checks):
                name, spec = _check(entry, f"{fields.at('checks')}[{i}]")
                monitor._specs[name] = spec
            monitor._index()
        at = fields.at("tracks")
        for name, data in fields.mapping("tracks").items():
            if not is_quality_signal(name):
                raise FieldError(f"{at}: {name!r} is not a quality signal")
            track = RateTrack.from_state(name, Fields(data, f"{at}[{name!r}]"))
            if track.observations > monitor.events:
                raise FieldError(f"{at}[{name!r}].observations: beyond the events seen")
            monitor.tracks[name] = track
        fields.done()
        return monitor


def _range(sample: list[float], margin: float) -> tuple[float, float]:
    """The reference's [q0.001, q0.999], widened by ``margin`` times its width each side."""
    ordered = sorted(sample)
    n = len(ordered)
    low = ordered[round(_LOW_QUANTILE * (n - 1))]
    high = ordered[round(_HIGH_QUANTILE * (n - 1))]
    width = high - low
    if not math.isfinite(width):  # values near the float limits
        return low, high
    return low - margin * width, high + margin * width


def _feature_reference(fields: Fields, seen: int) -> _FeatureReference:
    stats = _FeatureReference()
    stats.present = fields.integer("present", low=0, high=seen)
    stats.non_null = fields.integer("non_null", low=0, high=stats.present)
    stats.numbers = fields.integer("numbers", low=0, high=stats.non_null)
    stats.strings = fields.integer("strings", low=0, high=stats.non_null - stats.numbers)
    stats.sample = fields.numbers("sample", max_len=stats.numbers)
    if len(stats.sample) != stats.numbers:
        raise FieldError(f"{fields.at('sample')}: expected one value per number seen")
    categories = fields.optional_items("categories", max_len=_MAX_KNOWN_CATEGORIES)
    if categories is not None and any(type(c) is not str for c in categories):
        raise FieldError(f"{fields.at('categories')}: expected strings")
    stats.categories = None if categories is None else {str(c) for c in categories}
    fields.done()
    return stats


def _check(entry: object, at: str) -> tuple[str, _Spec]:
    parts = check_list(entry, at)
    if len(parts) != 7 or type(parts[0]) is not str:
        raise FieldError(
            f"{at}: expected [name, numeric, low, high, categories, expected, required]"
        )
    name, numeric, low, high, categories, expected, required = parts
    assert type(name) is str
    if numeric is not None and type(numeric) is not bool:
        raise FieldError(f"{at}[1]: expected true, false or null")
    bounds = [read_float(v, f"{at}[{j}]") for j, v in ((2, low), (3, high))]
    known: frozenset[str] | None = None
    if categories is not None:
        values = check_list(categories, f"{at}[4]", max_len=_MAX_KNOWN_CATEGORIES)
        if any(type(c) is not str for c in values):
            raise FieldError(f"{at}[4]: expected strings")
        known = frozenset(str(c) for c in values)
    if type(expected) is not bool or type(required) is not bool:
        raise FieldError(f"{at}[5], [6]: expected true or false")
    return name, (numeric, bounds[0], bounds[1], known, expected, required)
