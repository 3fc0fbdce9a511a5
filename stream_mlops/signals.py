"""Signals: the numbers detectors watch, per model and version.

``error`` (0/1 misclassification, or absolute error for regression) once an
outcome is joined; label-free ``score``, ``prediction`` and ``feature:<name>``
for every numeric (or bool) feature. Each signal is a :class:`SignalTrack`: its
detectors, plus a reference-versus-recent mean that measures how far the signal
moved (the effect sizes an alert ranks features by).

>>> track = SignalTrack("feature:amount", [], reference_observations=100, recent_span=20)
>>> for i in range(100):
...     _ = track.observe(float(i % 2), "e", 0.0)   # reference: mean 0.5, sd ~0.5
>>> for i in range(100):
...     _ = track.observe(1.0, "e", 0.0)            # moves up by one sd
>>> round(track.shift().effect_size, 1)
1.0
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from stream_mlops import detectors as detector_registry
from stream_mlops.changepoint import block_post_change_count, effect_size
from stream_mlops.detectors import Detection, Detector, GlrDetector
from stream_mlops.estimation import PerformanceEstimation
from stream_mlops.events import LabelValue, PredictionEvent, SignalShift
from stream_mlops.model_task import Task

if TYPE_CHECKING:
    from stream_mlops.slices import Slices
from stream_mlops.plain_data import (
    FieldError,
    Fields,
    check_int,
    check_list,
    float_data,
    floats_data,
    read_float,
)
from stream_mlops.quality import QualityMonitor

__all__ = [
    "ModelState",
    "SignalTrack",
    "error_value",
    "estimated_error",
    "infer_task",
    "numeric",
]

# Where post-change data starts is found from marks taken every _MARK_EVERY
# observations (ADWIN checks for change every 32 values by default, so finer
# marks would not be more exact), keeping the last _MARKS_KEPT of them: about
# 260,000 observations back, 8,192 small tuples per retrain-triggering signal.
_MARK_EVERY: Final = 32
_MARKS_KEPT: Final = 8192
# Where a detector that does not place the change itself (all but the GLR bank)
# saw one, the change point is placed by CUSUM (``stream_mlops.changepoint``)
# over sums of _BLOCK values (as fine as the marks), the last _BLOCKS_KEPT to
# twice that: 8,192 to 16,384 values since the last drift alert, 256-512 floats
# per track. ADWIN's windows at a first drift on a classifier's error are a few
# hundred to a few thousand values; the distribution detector's at most 4,000.
_BLOCK: Final = _MARK_EVERY
_BLOCKS_KEPT: Final = 256
# Ranks are taken against 65 quantiles of the first reference (1/64 resolution is
# finer than any mean shift worth an alert; 65 floats per signal in a snapshot).
_RANK_EDGES: Final = 64
# A value's mid-rank is (j + k) / (2 * (_RANK_EDGES + 1)), from the two bisections
# of the edges (j, k in 0.._RANK_EDGES + 1): every rank and its decile bin, as
# tables shared by all tracks (the hot path looks them up by j + k).
_HALF_STEP: Final = 1.0 / (2.0 * (_RANK_EDGES + 1))
_RANKS: Final = tuple(s * _HALF_STEP for s in range(2 * (_RANK_EDGES + 1) + 1))
_DECILES: Final = tuple(min(int(u * 10.0), 9) for u in _RANKS)
# Categorical features: codes for the first 20 distinct values, the rest "other"
# (a frequency test needs tens of values per category; IDs are not categories).
_MAX_CATEGORIES: Final = 20
# Values are taken at most this large (about 3e144): the square of a difference
# of two such values is below 2**962, so the reference's sum of squares stays
# finite for any reference sample below 2**60 values, and so do every mean and
# effect size. Near 1e308 a difference alone overflowed to inf, then to NaN,
# and an alert went out with "reference_mean": null. No real feature is that
# large; the detectors see ranks anyway, which clamping leaves in place.
LARGEST_VALUE: Final = 2.0**480
# A pinned reference primes the detectors with at most its last _PRIMED values
# (the track's own reference statistics take all of them): enough for the
# pre-change estimates, and priming a new model version's signals costs at
# most that many detector updates each, however large the reference.
_PRIMED: Final = 10_000


def numeric(value: LabelValue | None) -> float | None:
    """A feature, prediction or label as a number; None for strings and nulls."""
    kind = type(value)
    if kind is float or kind is int or kind is bool:
        return float(value)  # type: ignore[arg-type]
    return None


def infer_task(event: PredictionEvent) -> Task:
    """A float prediction without a score is a regression; anything else a class.

    >>> from stream_mlops.events import PredictionEvent
    >>> def p(prediction, score=None):
    ...     return PredictionEvent(event_id="e", model_id="m", model_version="v", ts=0,
    ...                            features={}, prediction=prediction, score=score)
    >>> [str(infer_task(e)) for e in (p(12.5), p(1), p(1.0, score=0.9))]
    ['regression', 'classification', 'classification']
    """
    if type(event.prediction) is float and event.score is None:
        return Task.REGRESSION
    return Task.CLASSIFICATION


def error_value(task: Task, prediction: LabelValue, actual: LabelValue) -> float | None:
    """0/1 misclassification, or absolute error; None when it cannot be scored.

    >>> error_value(Task.CLASSIFICATION, 1, 1), error_value(Task.CLASSIFICATION, "a", "b")
    (0.0, 1.0)
    >>> error_value(Task.REGRESSION, 10.0, 7.5), error_value(Task.REGRESSION, 1.0, "x")
    (2.5, None)
    """
    if task == Task.CLASSIFICATION:
        return 0.0 if prediction == actual else 1.0
    predicted, observed = numeric(prediction), numeric(actual)
    if predicted is None or observed is None:
        return None
    return abs(predicted - observed)


class SignalTrack:
    """One signal of one model version: its detectors and how far it moved.

    The reference is the mean and standard deviation of the first
    ``reference_observations`` values (again after each drift alert, via
    ``rebase``); the recent mean is an exponentially weighted mean with span
    ``recent_span``. ``shift()`` is their standardised difference.

    Label-free tracks (``binned=True``) also keep the distribution: their values
    are binned (numeric: at the deciles of the first reference; categorical:
    one bin per category) and ``shift()`` adds the Hellinger distance between
    the reference's bin frequencies and those of the last ``recent_span``
    values, the effect size alerts rank features by.

    ``ranked=True`` (unbounded signals: features, a regression's error) feeds the
    detectors the value's mid-rank in the first reference sample, in [0, 1],
    instead of the value: ADWIN's false-alarm bound holds only for values in
    [0, 1], and heavy tails (amounts) otherwise set it off; the GLR bank
    reads ranks as normal scores, so the engine ranks every signal it watches
    but a 0/1 error. Detectors start after that first reference.

    ``categorical=True`` takes strings: the first ``_MAX_CATEGORIES`` distinct
    values get codes 0, 1, ...; later ones share one "other" code. Detectors get
    the code.

    ``history=True`` (a track with a detector that does not place the change it
    finds: ADWIN, the distribution test, river's) keeps the sums of blocks of
    32 values, so that ``located`` reports the means on either side of the
    change point, not of a detector's window cut.

    ``pin(values)`` (a pinned reference, ``stream_mlops.reference``) takes
    known-good values as the reference before the stream starts: the mean,
    SD, rank edges and bins come from them, the detectors are primed with
    them, and the stream's first values no longer form the reference (until a
    ``rebase``).

    Values beyond ``LARGEST_VALUE`` in size are taken as ``LARGEST_VALUE`` (with
    their sign) and counted in ``clamped``; a NaN (only the Python API can
    pass one: JSON has none) is counted there and otherwise ignored. Every
    statistic stays finite, so every alert validates against its own schema.
    """

    __slots__ = (
        "_alpha",
        "_block_sum",
        "_blocks",
        "_codes",
        "_edges",
        "_rebased_at",
        "_recent",
        "_recent_bins",
        "_ref_bins",
        "_ref_limit",
        "_ref_m2",
        "_ref_mean",
        "_ref_n",
        "_sample",
        "binned",
        "categorical",
        "clamped",
        "detectors",
        "marks",
        "name",
        "observations",
        "ranked",
        "recent_span",
        "reference_observations",
    )

    def __init__(
        self,
        name: str,
        detectors: list[Detector],
        *,
        reference_observations: int,
        recent_span: int,
        marks: bool = False,
        ranked: bool = False,
        binned: bool = False,
        categorical: bool = False,
        history: bool = False,
    ) -> None:
        self.name = name
        self.detectors = detectors
        self.reference_observations = reference_observations
        self.recent_span = recent_span
        self._alpha = 2.0 / (recent_span + 1.0)
        self.observations = 0
        #: values taken at +-LARGEST_VALUE, or ignored (NaN)
        self.clamped = 0
        self.marks: deque[tuple[int, float, str]] | None = (
            deque(maxlen=_MARKS_KEPT) if marks else None
        )
        #: sums of the latest blocks of _BLOCK values (a list, trimmed in chunks:
        #: cheaper to append to than a deque), and of the block being filled
        self._blocks: list[float] | None = [] if history and not categorical else None
        self._block_sum = 0.0
        #: observations at the last rebase (drift alert): changes are placed after it
        self._rebased_at = 0
        self.categorical = categorical
        self.ranked = ranked and not categorical
        self.binned = binned or categorical
        self._codes: dict[str, int] | None = {} if categorical else None
        # Rank edges: quantiles of the first reference sample (kept for life, so
        # detectors see one scale).
        self._edges: list[float] | None = None
        self._sample: list[float] | None = [] if (self.ranked or self.binned) else None
        self._recent_bins: deque[int] | None = deque(maxlen=recent_span) if self.binned else None
        self._ref_bins: dict[int, int] = {}
        self.rebase()

    def rebase(self) -> None:
        """Start a new reference from the next value (after a change was reported)."""
        self._ref_limit = self.reference_observations  # a pinned one too
        self._rebased_at = self.observations
        self._ref_n = 0
        self._ref_mean = 0.0
        self._ref_m2 = 0.0
        self._recent = 0.0
        self._ref_bins = {}
        if self._recent_bins is not None:
            self._recent_bins.clear()

    def code(self, value: str) -> int:
        """A categorical value's code (new values get the next, up to "other")."""
        codes = self._codes
        assert codes is not None
        found = codes.get(value)
        if found is None:
            found = len(codes) if len(codes) < _MAX_CATEGORIES else _MAX_CATEGORIES
            if found < _MAX_CATEGORIES:
                codes[value] = found
        return found

    def categories(self) -> int | None:
        """Distinct values seen by a categorical track (None: numeric)."""
        return None if self._codes is None else len(self._codes)

    # Inlined on purpose: it runs for every value of every signal.
    def observe(  # noqa: PLR0912, PLR0915
        self, x: float, event_id: str, epoch: float
    ) -> list[tuple[Detector, Detection]] | None:
        """Feed one value to the tracker and every detector; what fired, if any."""
        if not -LARGEST_VALUE <= x <= LARGEST_VALUE:
            self.clamped += 1
            if math.isnan(x):  # nothing to learn from
                return None
            x = LARGEST_VALUE if x > 0.0 else -LARGEST_VALUE
        observations = self.observations = self.observations + 1
        in_reference = self._ref_n < self._ref_limit
        if in_reference:
            self._ref_n += 1
            d = x - self._ref_mean
            self._ref_mean += d / self._ref_n
            self._ref_m2 += d * (x - self._ref_mean)
            self._recent = self._ref_mean
        else:
            self._recent += self._alpha * (x - self._recent)
        if self.marks is not None and observations % _MARK_EVERY == 1:
            self.marks.append((observations, epoch, event_id))
        blocks = self._blocks
        if blocks is not None:
            total = self._block_sum + x
            if observations % _BLOCK == 0:
                blocks.append(total)
                total = 0.0
                if len(blocks) > 2 * _BLOCKS_KEPT:
                    del blocks[:-_BLOCKS_KEPT]
            self._block_sum = total
        if self._sample is not None:
            # The first reference: collected for rank edges and decile bins.
            self._sample.append(x)
            if len(self._sample) >= self.reference_observations:
                self._first_reference()
            if self.ranked:
                return None
            value = x
        else:
            # The hot path, inlined: one rank (mid-rank for ties), one bin.
            edges = self._edges
            if edges is not None:
                j = bisect_right(edges, x)
                k = bisect_left(edges, x) if j and edges[j - 1] == x else j
                value = _RANKS[j + k] if self.ranked else x
                b = _DECILES[j + k]
            else:
                value = x
                b = int(x)  # a categorical code
            if self.binned:
                if in_reference:
                    self._ref_bins[b] = self._ref_bins.get(b, 0) + 1
                else:
                    self._recent_bins.append(b)  # type: ignore[union-attr]
        fired = None
        for detector in self.detectors:
            # The GLR bank locates the change: it also takes the signal's own
            # value, to report the means before and after in its units.
            if type(detector) is GlrDetector:
                detection = detector.observe(value, x)
            else:
                detection = detector.update(value)
            if detection is not None:
                if fired is None:
                    fired = []
                fired.append((detector, detection))
        return fired

    @property
    def pinned(self) -> bool:
        """The reference is a pinned one (``pin``), not the stream's."""
        return self._ref_limit == 0

    def pin(self, values: Sequence[float]) -> None:
        """Take ``values`` as the reference, before the stream's first value.

        The reference mean and SD, the rank edges and the bins are theirs; the
        detectors are primed with the last ``_PRIMED`` of them (as ranks where
        the detectors see ranks); the stream's values are compared with them
        and never join them (until ``rebase``). A categorical track takes
        codes (``code``). Values are clamped as in ``observe``; NaN is skipped.
        """
        if self.observations or self._ref_n:
            raise ValueError(f"{self.name}: only a fresh track takes a pinned reference")
        kept = [
            x if -LARGEST_VALUE <= x <= LARGEST_VALUE else math.copysign(LARGEST_VALUE, x)
            for x in values
            if not math.isnan(x)
        ]
        if not kept:
            return
        mean = math.fsum(kept) / len(kept)
        self._ref_n = len(kept)
        self._ref_mean = self._recent = mean
        self._ref_m2 = math.fsum((x - mean) ** 2 for x in kept)
        self._ref_limit = 0
        if self._sample is not None:
            self._sample = kept
            self._first_reference()
        primed = kept[-_PRIMED:]
        seen = [self._rank(x) for x in primed] if self.ranked else primed
        for detector in self.detectors:
            detector.prime(seen, primed)

    def _first_reference(self) -> None:
        sample = self._sample
        assert sample is not None
        self._sample = None
        if not self.categorical:
            ordered = sorted(sample)
            n = len(ordered)
            self._edges = [ordered[(n - 1) * j // _RANK_EDGES] for j in range(_RANK_EDGES + 1)]
        if self.binned:
            for value in sample:
                b = int(value) if self.categorical else self._decile(value)
                self._ref_bins[b] = self._ref_bins.get(b, 0) + 1

    def _rank(self, x: float) -> float:
        """Mid-rank of x among the reference quantiles, in [0, 1] (ties share it)."""
        edges = self._edges
        assert edges is not None
        return (bisect_left(edges, x) + bisect_right(edges, x)) * _HALF_STEP

    def _decile(self, x: float) -> int:
        return min(int(self._rank(x) * 10.0), 9)

    def distance(self) -> float | None:
        """Hellinger distance of reference and recent bin frequencies (None: too early)."""
        recent = self._recent_bins
        ref = self._ref_bins
        if recent is None or not recent or not ref:
            return None
        counts: dict[int, int] = {}
        for b in recent:
            counts[b] = counts.get(b, 0) + 1
        n_ref = sum(ref.values())
        n_recent = len(recent)
        total = 0.0
        for b in ref.keys() | counts.keys():
            root_ref = math.sqrt(ref.get(b, 0) / n_ref)
            total += (root_ref - math.sqrt(counts.get(b, 0) / n_recent)) ** 2
        return math.sqrt(total / 2.0)

    def shift(self) -> SignalShift:
        """Recent mean minus reference mean, in reference standard deviations.

        Categorical tracks have no mean: their effect size is the distance.
        """
        distance = self.distance() if self.binned else None
        if self.categorical:
            return SignalShift(
                signal=self.name,
                effect_size=distance or 0.0,
                reference_mean=0.0,
                recent_mean=0.0,
                reference_observations=self._ref_n,
                distance=distance,
            )
        n = self._ref_n
        return SignalShift(
            signal=self.name,
            effect_size=effect_size(self._recent - self._ref_mean, self._reference_sd()),
            reference_mean=self._ref_mean,
            recent_mean=self._recent,
            reference_observations=n,
            distance=distance,
        )

    def _reference_sd(self) -> float:
        n = self._ref_n
        return math.sqrt(self._ref_m2 / (n - 1)) if n > 1 else 0.0

    def located(self, detector: Detector, found: Detection) -> tuple[Detection, float]:
        """The detection as an alert reports it, and its effect size.

        Means in the signal's own units on either side of the change point:
        the GLR bank's own (the CUSUM that fired placed it), else placed by
        CUSUM over the block sums since the last drift alert (``window_before``
        and ``window_after`` become the values on either side). The effect size
        is their difference in reference SDs. A categorical track has no mean:
        its effect size is the distance (``shift``). Without a place (too few
        values, a constant stretch), the detector's own figures, and for ranks
        the reference and recent means, stand.
        """
        if self.categorical:
            # Codes, not values: no mean to report.
            shift = self.shift()
            detection = replace(
                found, mean_before=shift.reference_mean, mean_after=shift.recent_mean
            )
            return detection, shift.effect_size
        detection = found
        if type(detector) is not GlrDetector:
            placed = self._place()
            if placed is not None:
                detection = replace(found, **placed)
            elif self.ranked:
                # The detector saw ranks: report the signal's own means.
                shift = self.shift()
                detection = replace(
                    found, mean_before=shift.reference_mean, mean_after=shift.recent_mean
                )
        before, after = detection.mean_before, detection.mean_after
        if before is None or after is None:
            return detection, self.shift().effect_size
        return detection, effect_size(after - before, self._reference_sd())

    def _place(self) -> dict[str, Any] | None:
        """Means and counts either side of the change since the last rebase (None: no place)."""
        blocks = self._blocks
        if blocks is None:
            return None
        full = self.observations // _BLOCK
        kept_from = full - len(blocks)
        # Whole blocks that start after the last rebase, and the one being filled.
        first = max(-(-self._rebased_at // _BLOCK), kept_from)
        sums = blocks[first - kept_from :]
        counts = [_BLOCK] * len(sums)
        partial = self.observations - full * _BLOCK
        if partial:
            sums.append(self._block_sum)
            counts.append(partial)
        if self._ref_limit == 0 and sums:
            # A pinned reference comes before the stream: a change from the
            # stream's first value on is placed there, against the reference.
            sums.insert(0, self._ref_mean * self._ref_n)
            counts.insert(0, self._ref_n)
        after = block_post_change_count(sums, counts, min_segment=_BLOCK)
        if after is None:
            return None
        total = sum(counts)
        split, tail = len(counts), 0
        while tail < after:  # the split is at a block boundary
            split -= 1
            tail += counts[split]
        before_sum = math.fsum(sums[:split])
        after_sum = math.fsum(sums[split:])
        return {
            "mean_before": before_sum / (total - after),
            "mean_after": after_sum / after,
            "window_before": total - after,
            "window_after": after,
        }

    def window_start(self, post_change: int | None) -> tuple[float, str] | None:
        """(epoch, event_id) near where the last ``post_change`` observations began."""
        if self.marks is None or not self.marks or post_change is None:
            return None
        target = self.observations - post_change + 1
        found = self.marks[0]
        for mark in reversed(self.marks):
            if mark[0] <= target:
                found = mark
                break
        return found[1], found[2]

    # -- snapshots ------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The track as plain data (see ``stream_mlops.plain_data``), detectors included."""
        marks = self.marks
        return {
            "name": self.name,
            "reference_observations": self.reference_observations,
            "recent_span": self.recent_span,
            "keeps_marks": marks is not None,
            "ranked": self.ranked,
            "binned": self.binned,
            "categorical": self.categorical,
            "observations": self.observations,
            "clamped": self.clamped,
            "reference_seen": self._ref_n,
            "pinned": self.pinned,
            "reference_mean": float_data(self._ref_mean),
            "reference_m2": float_data(self._ref_m2),
            "recent": float_data(self._recent),
            "marks": None if marks is None else [[n, float_data(e), i] for n, e, i in marks],
            "rebased_at": self._rebased_at,
            "blocks": None if self._blocks is None else floats_data(self._blocks),
            "block_sum": float_data(self._block_sum),
            # Codes are 0, 1, ... in the order values first came: the list says it all.
            "categories": None if self._codes is None else list(self._codes),
            "edges": None if self._edges is None else floats_data(self._edges),
            "sample": None if self._sample is None else floats_data(self._sample),
            "recent_bins": None if self._recent_bins is None else list(self._recent_bins),
            # Pairs in the reference's own order: dict order is part of the state.
            "reference_bins": [[b, c] for b, c in self._ref_bins.items()],
            "detectors": [detector_registry.saved(d) for d in self.detectors],
        }

    @classmethod
    def from_state(cls, fields: Fields) -> SignalTrack:
        """The track ``state()`` wrote; FieldError (a ValueError) naming the field otherwise."""
        track = cls(
            fields.string("name"),
            [
                detector_registry.restore(f, fields.at(f"detectors[{i}]"))
                for i, f in enumerate(fields.items("detectors"))
            ],
            reference_observations=fields.integer("reference_observations", low=1),
            recent_span=fields.integer("recent_span", low=1),
            marks=fields.boolean("keeps_marks"),
            ranked=fields.boolean("ranked"),
            binned=fields.boolean("binned"),
            categorical=fields.boolean("categorical"),
        )
        track.observations = fields.integer("observations", low=0)
        track.clamped = fields.integer("clamped", low=0)
        if fields.boolean("pinned"):
            track._ref_limit = 0
            track._ref_n = fields.integer("reference_seen", low=1)
        else:
            track._ref_n = fields.integer(
                "reference_seen", low=0, high=track.reference_observations
            )
        track._ref_mean = fields.number("reference_mean")
        track._ref_m2 = fields.number("reference_m2")
        track._recent = fields.number("recent")
        track._load_history(fields)
        track._load_distribution(fields)
        fields.done()
        return track

    def _load_history(self, fields: Fields) -> None:
        marks = fields.optional_items("marks", max_len=_MARKS_KEPT)
        if (marks is None) != (self.marks is None):
            expected = "a list" if self.marks is not None else "null"
            raise FieldError(f"{fields.at('marks')}: expected {expected} (keeps_marks)")
        if self.marks is not None and marks is not None:
            for i, mark in enumerate(marks):
                at = f"{fields.at('marks')}[{i}]"
                parts = check_list(mark, at)
                if len(parts) != 3 or type(parts[2]) is not str:
                    raise FieldError(f"{at}: expected [observation, epoch, event_id]")
                observation = check_int(parts[0], f"{at}[0]", low=1)
                self.marks.append((observation, read_float(parts[1], f"{at}[1]"), parts[2]))
        self._rebased_at = fields.integer("rebased_at", low=0, high=self.observations)
        blocks = fields.optional_numbers("blocks", max_len=min(2 * _BLOCKS_KEPT, self.observations))
        if blocks is not None and (self.categorical or len(blocks) > self.observations // _BLOCK):
            raise FieldError(
                f"{fields.at('blocks')}: at most one sum per {_BLOCK} observations, "
                "numeric tracks only"
            )
        self._blocks = blocks
        self._block_sum = fields.number("block_sum")

    def _load_distribution(self, fields: Fields) -> None:
        categories = fields.optional_items("categories", max_len=_MAX_CATEGORIES)
        if (categories is None) != (self._codes is None):
            raise FieldError(f"{fields.at('categories')}: expected a list exactly when categorical")
        if categories is not None:
            if any(type(v) is not str for v in categories) or len(set(categories)) != len(
                categories
            ):
                raise FieldError(f"{fields.at('categories')}: expected distinct strings")
            self._codes = {str(value): code for code, value in enumerate(categories)}
        edges = fields.optional_numbers("edges", max_len=_RANK_EDGES + 1)
        sample = fields.optional_numbers("sample", max_len=self.reference_observations - 1)
        if edges is not None:
            if self.categorical or len(edges) != _RANK_EDGES + 1 or edges != sorted(edges):
                raise FieldError(
                    f"{fields.at('edges')}: expected {_RANK_EDGES + 1} ascending numbers "
                    "(numeric tracks only)"
                )
            self._edges = edges
        if sample is not None and (edges is not None or self._sample is None):
            raise FieldError(f"{fields.at('sample')}: no sample is kept here")
        self._sample = sample
        bins = fields.optional_items("recent_bins", max_len=self.recent_span)
        if (bins is None) != (self._recent_bins is None):
            raise FieldError(f"{fields.at('recent_bins')}: expected a list exactly when binned")
        if self._recent_bins is not None and bins is not None:
            self._recent_bins.extend(
                check_int(b, f"{fields.at('recent_bins')}[{i}]", low=0, high=_MAX_CATEGORIES)
                for i, b in enumerate(bins)
            )
        self._ref_bins = fields.counts(
            "reference_bins", max_len=_MAX_CATEGORIES + 1, high=_MAX_CATEGORIES
        )


class ModelState:
    """Everything the engine keeps for one (model_id, model_version)."""

    __slots__ = (
        "categorical",
        "error",
        "estimated_error",
        "estimation",
        "false_alarm_rate",
        "features",
        "last_prediction_epoch",
        "model_id",
        "model_version",
        "outcomes",
        "prediction",
        "quality",
        "retrain_false_alarm_rate",
        "score",
        "slices",
        "task",
        "untracked",
    )

    def __init__(self, model_id: str, model_version: str, task: Task) -> None:
        self.model_id = model_id
        self.model_version = model_version
        self.task = task
        #: event time of this version's latest prediction: its traffic
        self.last_prediction_epoch = -math.inf
        self.error: SignalTrack | None = None
        self.estimated_error: SignalTrack | None = None
        #: The calibration of the scores and the estimate windows behind
        #: ``estimated_error`` (stream_mlops.estimation); None: not estimated.
        self.estimation: PerformanceEstimation | None = None
        self.score: SignalTrack | None = None
        self.prediction: SignalTrack | None = None
        #: Numeric (and bool) features, and categorical (string) ones.
        self.features: dict[str, SignalTrack] = {}
        self.categorical: dict[str, SignalTrack] = {}
        #: Each detector's share of the model's false-alarm budget (None:
        #: uncalibrated), for the signals that retrain and for the others.
        self.false_alarm_rate: float | None = None
        self.retrain_false_alarm_rate: float | None = None
        #: Feature values not tracked: the version had [limits] max_features_per_model.
        self.untracked = 0
        #: The version's slices (``slices`` configured), kept in the engine's
        #: snapshot next to this state (``stream_mlops.engine``).
        self.slices: Slices | None = None
        #: Data-quality checks (None: quality_checks off).
        self.quality: QualityMonitor | None = None
        #: The outcome signals with detectors (stream_mlops.outcomes), by name.
        self.outcomes: dict[str, SignalTrack] = {}

    def tracks(self) -> list[SignalTrack]:
        """Every signal track of this model version."""
        fixed = (self.score, self.prediction, self.error, self.estimated_error)
        tracks = [t for t in fixed if t is not None]
        return [
            *tracks,
            *self.outcomes.values(),
            *self.features.values(),
            *self.categorical.values(),
        ]

    def label_free(self) -> list[SignalTrack]:
        """The tracks alerts rank by how far they moved.

        A categorical feature that has shown one value only has no distribution
        to compare yet; it joins once a second value appears.
        """
        tracks = [t for t in (self.score, self.prediction) if t is not None]
        tracks += self.features.values()
        return tracks + [t for t in self.categorical.values() if t.categories() != 1]

    def state(self) -> dict[str, Any]:
        """The model version's state as plain data: its tracks and their detectors."""

        def track(t: SignalTrack | None) -> dict[str, Any] | None:
            return None if t is None else t.state()

        return {
            "model_id": self.model_id,
            "model_version": self.model_version,
            "task": self.task,
            "last_prediction_epoch": float_data(self.last_prediction_epoch),
            "false_alarm_rate": None
            if self.false_alarm_rate is None
            else float_data(self.false_alarm_rate),
            "retrain_false_alarm_rate": None
            if self.retrain_false_alarm_rate is None
            else float_data(self.retrain_false_alarm_rate),
            "error": track(self.error),
            "estimated_error": track(self.estimated_error),
            "estimation": None if self.estimation is None else self.estimation.state(),
            "score": track(self.score),
            "prediction": track(self.prediction),
            "features": {name: t.state() for name, t in self.features.items()},
            "categorical": {name: t.state() for name, t in self.categorical.items()},
            "untracked": self.untracked,
            "quality": None if self.quality is None else self.quality.state(),
            "outcomes": {name: t.state() for name, t in self.outcomes.items()},
        }

    @classmethod
    def from_state(cls, fields: Fields) -> ModelState:
        """The state ``state()`` wrote; FieldError (a ValueError) naming the field otherwise."""
        state = cls(
            fields.string("model_id"),
            fields.string("model_version"),
            Task(fields.string("task", choices=tuple(Task))),
        )
        state.untracked = fields.integer("untracked", low=0)
        state.last_prediction_epoch = fields.number("last_prediction_epoch")
        state.false_alarm_rate = fields.optional_number("false_alarm_rate")
        state.retrain_false_alarm_rate = fields.optional_number("retrain_false_alarm_rate")
        for signal in ("error", "estimated_error", "score", "prediction"):
            found = fields.optional_child(signal)
            if found is not None:
                setattr(state, signal, _named_track(found, signal))
        estimation = fields.optional_child("estimation")
        if estimation is not None:
            state.estimation = PerformanceEstimation.from_state(estimation)
        for group, tracks in (("features", state.features), ("categorical", state.categorical)):
            at = fields.at(group)
            for name, data in fields.mapping(group).items():
                tracks[name] = _named_track(Fields(data, f"{at}[{name!r}]"), f"feature:{name}")
        quality = fields.optional_child("quality")
        if quality is not None:
            state.quality = QualityMonitor.from_state(quality)
        at = fields.at("outcomes")
        for name, data in fields.mapping("outcomes").items():
            if name not in ("outcome", "miss_rate", "false_positive_rate"):
                raise FieldError(f"{at}: {name!r} is not an outcome signal")
            state.outcomes[name] = _named_track(Fields(data, f"{at}[{name!r}]"), name)
        fields.done()
        return state


def _named_track(fields: Fields, name: str) -> SignalTrack:
    track = SignalTrack.from_state(fields)
    if track.name != name:
        raise FieldError(f"{fields.at('name')}: expected {name!r}, got {track.name!r}")
    return track


def estimated_error(prediction: LabelValue, score: float) -> float:
    """The probability that a calibrated classifier's prediction is wrong.

    ``score`` is the positive class's probability. A 1/True prediction is wrong
    with probability 1 - score, a 0/False one with probability score; for other
    labels the threshold is taken to be 0.5: min(score, 1 - score).

    >>> estimated_error(1, 0.75), estimated_error(0, 0.25), estimated_error("cat", 0.75)
    (0.25, 0.25, 0.25)
    """
    if prediction is True or (type(prediction) is int and prediction == 1):
        return 1.0 - score
    if prediction is False or (type(prediction) is int and prediction == 0):
        return score
    return min(score, 1.0 - score)
