"""GLR CUSUM: a bank of CUSUMs over a grid of shift sizes, near-optimal for every size.

Page's CUSUM is the fastest detector of a change from a known distribution to
another known one at a given false-alarm rate (Lorden 1971; Moustakides 1986):
its delay is about ``ln(ARL) / KL``. A drift's size is never known, so this
detector runs one CUSUM per shift size on a geometric grid (neighbours a
factor sqrt(2) apart: a shift between two of them is found with at least 96%
of the efficiency of its own CUSUM) and alarms when any of them crosses its
threshold. That is the generalized likelihood ratio over the grid (Lai 1998:
the window-limited GLR and the CUSUM bank are first-order equivalent), at
O(grid) per value, and less since the CUSUMs of larger shifts, which are at
zero most of the time, are skipped (see ``observe``).

Four models, by what the signal is:

* ``bernoulli``: 0/1 values (a classifier's error). Exact Bernoulli
  log-likelihood ratios; shifts of the rate by ``delta`` binomial standard
  deviations. Values in [0, 1] are accepted too: for them the Bernoulli ratio is
  a supermartingale under the null (convexity), so the calibration still holds.
  The CUSUMs of a rising rate only move on a 1, so a 0 costs O(1).
* ``normal``: ranks in [0, 1] (the engine's rank of a value among quantiles of
  its first reference, ``stream_mlops.signals``), turned into normal scores
  ``z = Phi^-1(rank)``: whatever the signal's own distribution, z is close to
  N(0, 1) before a change. CUSUMs for a mean shift of z (up, down) and for a
  change of its variance (up, down): mean, spread and scale changes of the
  signal alike.
* ``halfnormal``: ranks of a non-negative signal whose growth matters (a
  regression's absolute error): half-normal scores ``Phi^-1((1 + rank) / 2)``
  and CUSUMs for their scale (up; ``direction`` as for the others).
* ``categorical``: category codes; one bank of rising-rate Bernoulli CUSUMs per
  category. A change of frequencies makes some category more frequent.

**Rare events** (``rare=True``, bernoulli ``up`` only): the rate of something
that should hardly ever happen (a null, a value out of range; see
``stream_mlops.quality``), whose pre-change rate is often exactly 0. Below
30 events the rate is not estimated but bounded: the reference rate is the
99% upper confidence bound of a Poisson count, ``(k + ...) / n`` (4.6 / n for
k = 0), so the CUSUMs start at the first refresh and a rate that was zero
before is found as soon as it rises, while a small true rate that the first
values happened to miss is not taken for a change. From 30 events on, the
rate is estimated as for any 0/1 signal. ``zeros(k)`` feeds k zeros at once
(the same state as k updates, in O(1) between refreshes): a signal that is 0
for almost every event costs nothing until it is 1.

A ranked signal with at most 12 distinct values in its first reference (a flag,
a small count) is watched like a categorical one, by the frequencies of its
values: its normal scores would jump between a few levels far in the tails,
which the normal model's calibration does not allow for.

**The pre-change distribution is estimated, not assumed.** Its parameters come
from every value since the detector (re)started, refreshed each time that count
doubles (the first ``reference`` values, then 2x, 4x...), so they are ever more
precise and a change contaminates them little. An excursion of ``n1`` values
judged against a reference of ``n0`` has ``1 + n1 / n0`` times the variance of
one against a known distribution, and its threshold is raised by that factor (a
two-sample correction: early on, the CUSUMs of small shifts are held back).

**Calibration.** ``false_alarm_rate`` (alarms per value) is split equally over
the CUSUMs (a union bound). A CUSUM whose log-likelihood ratio drifts down at
``I0 = KL(before || shift)`` per value under no change has an average run length
to a false alarm of about ``(e^h - h - 1) / I0`` at threshold h (Wald's
approximation without the overshoot, which only lengthens it; Siegmund 1985),
so h solves that for each CUSUM's share. For a small shift, 1/I0 is large: its
threshold is ``ln(1 / I0)`` below the ``ln(ARL)`` of Lorden's bound, which is
what makes small shifts fast. ``tests/detectors/test_glr.py`` and
``benchmarks/detection.py`` check the achieved rate by simulation.

**Where the change began.** The alarming CUSUM's last zero is the maximum-
likelihood change point for its shift (the CUSUM maximises the likelihood ratio
over the change point), so a detection reports the post-change count
(``window_after``) and the means before and after it.

**Keeping the reference** (``keep_reference=True``, the engine's
``rebase_after_alert = false``): after a detection the CUSUMs restart from
zero against the same pre-change estimate, which is no longer refreshed,
instead of the detector starting afresh on what follows. A change that
persists is then reported again once the controller's cooldown has passed.

**A pinned reference** (``prime``): values known to come from before any
change (a model's training or validation data) can be handed over before the
stream starts. No CUSUM runs on them; the pre-change distribution is
estimated from them at once and stays fixed (never refreshed from the stream),
so the stream is compared with them, not with its own first values. Too few
of them to estimate from (a rate with fewer than 30 events of either kind),
and the stream's values complete the estimate as usual.

**Rare events** (``null="upper"``, the Bernoulli model rising only): a rate
estimated from few events (a slice of the traffic with a handful of errors) is
too rough for the two-sample correction, and the CUSUMs would wait for
``_MIN_EVENTS`` of them. Instead the pre-change rate is taken at its upper
confidence bound (the KL bound of Chernoff: ``n KL(p_hat || p0) = ln(1 /
_UPPER_LEVEL)``), so the CUSUMs run from the first estimate on. The true rate
lies below the bound except with probability ``_UPPER_LEVEL`` per estimate,
and a CUSUM against a higher rate than the true one raises fewer false alarms
than its calibration, so the budget holds; what it costs is sensitivity to
rises of the size of the bound's margin, which matter little for the large
failures of a slice.

>>> import random
>>> rng = random.Random(0)
>>> detector = GlrDetector(model="bernoulli", direction="up", false_alarm_rate=1e-8)
>>> fired = [(i, d) for i in range(20000)
...          if (d := detector.update(float(rng.random() < (0.05 if i < 10000 else 0.2))))]
>>> [(i - 10000, d.window_after) for i, d in fired]  # 191 values after the change
[(190, 207)]
>>> round(fired[0][1].mean_before, 3), round(fired[0][1].mean_after, 3)
(0.054, 0.174)

It fired 191 values after the change (a slow draw: over 30 seeds at this rate
the mean is near the bound ln(1e8) / KL(20% || 5%) = 132), and placed the change
16 values early.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any, Final

from scipy.stats import chi2

from stream_mlops.detectors.base import Detection, Detector, ParamError

__all__ = ["GlrDetector", "threshold"]

MODELS: Final = ("bernoulli", "normal", "halfnormal", "categorical")
DIRECTIONS: Final = ("up", "down", "both")
NULLS: Final = ("estimate", "upper")
# Default false-alarm rate per value when no budget calibrates the detector: the
# default per-model budget (1e-7, stream_mlops.config) shared by about ten signals.
DEFAULT_RATE: Final = 1e-8

# Mean shifts in standard deviations of the (normal-score) signal, neighbours
# 2^(3/4) apart (at worst 91% efficiency between two; fewer CUSUMs per value
# than sqrt(2)): from 0.125 SD (found within a few thousand values at the
# default budget) to 1.7 SD (a handful); larger and smaller shifts are found by
# the nearest CUSUM, less efficiently.
_LOCATION: Final = tuple(0.125 * 2.0 ** (3 * k / 4) for k in range(6))
# Rate shifts of a 0/1 signal in binomial SDs: 0.088 is 5% -> 7%, 1.41 is
# 5% -> 36%.
_RATE: Final = tuple(0.088 * 2.0 ** (k / 2) for k in range(9))
# Standard-deviation ratios (of the normal scores): 1.15x to 2.2x up, 0.8x and
# 0.6x down (a feature that gets stuck is the usual fall).
_SCALE_UP: Final = (1.15, 1.35, 1.65, 2.2)
_SCALE_DOWN: Final = (0.8, 0.6)
# Ranks are read at 1/1024 resolution (the engine's ranks have 1/130).
_LEVELS: Final = 1024
# A Bernoulli reference needs this many of each outcome before its CUSUMs run:
# with fewer, the rate's estimate is too rough for the Gaussian two-sample
# correction.
_MIN_EVENTS: Final = 30
# A ranked signal that shows at most this many distinct values in its first
# reference (a flag, a small count) is not near-normal in any score: its normal
# scores jump between few levels, far in the tails for rare ones. The normal
# models watch its levels' frequencies instead, as categories; later levels get
# codes up to _MAX_LEVELS.
_DISCRETE_LEVELS: Final = 12
_MAX_LEVELS: Final = 32
# null="upper": the probability, per estimate, that the true pre-change rate
# lies above the bound the CUSUMs are laid against (a few estimates per
# detector over its life: the doubling refreshes).
_UPPER_LEVEL: Final = 1e-6
# A pre-change estimate that is never refreshed (a pinned reference, or one
# kept after a detection): the refresh count is pushed beyond any stream.
_FROZEN: Final = 1 << 62
# Rare events: the 99% upper confidence bound of a Poisson mean after k events,
# k < _MIN_EVENTS (chi-square quantile / 2; Garwood 1936). Beyond a 1% chance
# the true rate is below it, and an underestimate is corrected at the next
# refresh.
_RARE_UPPER: Final = tuple(float(chi2.ppf(0.99, 2 * (k + 1))) / 2.0 for k in range(_MIN_EVENTS))

_UNIT: Final = NormalDist()


def _score_table(half: bool) -> tuple[float, ...]:
    out = []
    for i in range(_LEVELS + 1):
        u = min(max(i / _LEVELS, 0.5 / _LEVELS), 1.0 - 0.5 / _LEVELS)
        out.append(_UNIT.inv_cdf((1.0 + u) / 2.0) if half else _UNIT.inv_cdf(u))
    return tuple(out)


_NORMAL_SCORES: Final = _score_table(half=False)
_HALF_SCORES: Final = _score_table(half=True)


def threshold(arl_times_drift: float) -> float:
    """h with ``(e^h - h - 1) / I0 = ARL``, given ``ARL * I0``.

    >>> round(threshold(1e8 * 0.5), 2), round(threshold(1e8 * 0.005), 2)
    (17.73, 13.12)
    """
    x = max(arl_times_drift, 1e-12)
    # Newton's method from above converges monotonically (the function is
    # convex and increasing for h > 0); this start is above the root.
    lead = math.log1p(x)
    h = lead + math.log(lead + 2.0)
    for _ in range(50):
        grown = math.exp(h)
        step = (grown - h - 1.0 - x) / (grown - 1.0)
        h -= step
        if step < 1e-12 * h:
            break
    return h


def _kl_bernoulli(p: float, q: float) -> float:
    return p * math.log(p / q) + (1.0 - p) * math.log((1.0 - p) / (1.0 - q))


def upper_rate(ones: float, n: int, level: float = _UPPER_LEVEL) -> float:
    """The upper confidence bound of a rate from ``ones`` in ``n`` (Chernoff's KL bound).

    The largest p with ``n KL(ones / n || p) <= ln(1 / level)``: the true rate
    is above it with probability at most ``level``.

    >>> round(upper_rate(10, 1000), 4), round(upper_rate(0, 500), 4)
    (0.0364, 0.0273)
    """
    p_hat = min(max(ones / n, 0.0), 1.0)
    budget = math.log(1.0 / level) / n
    lo, hi = p_hat, 1.0 - 1e-9
    if p_hat >= hi:
        return hi

    def divergence(q: float) -> float:
        if p_hat == 0.0:
            return -math.log1p(-q)
        return _kl_bernoulli(p_hat, q)

    if divergence(hi) <= budget:
        return hi
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if divergence(mid) > budget:
            hi = mid
        else:
            lo = mid
    return hi


class GlrDetector(Detector):
    """A CUSUM bank on one signal (see the module docstring for the models).

    ``reference``: values before the first CUSUM runs (the first estimate of the
    pre-change distribution). ``direction``: which changes to watch ("up": the
    mean, rate or scale rises; categorical banks always watch each category
    rise). ``scale``: the normal model's variance CUSUMs (False: mean only).
    ``null``: "estimate" (the pre-change rate is its estimate) or "upper" (its
    upper confidence bound: rare events, Bernoulli up only). ``keep_reference``:
    after a detection, keep the pre-change estimate (see the module docstring).
    ``rare``: a bernoulli ``up`` rate that may be 0 before a change (see the
    module docstring).
    """

    name = "glr"
    #: Class defaults, for the instance attributes set only when different.
    null: str = "estimate"
    keep_reference: bool = False
    rare: bool = False
    _r0: float = 0.0  # the raw sum of a kept or pinned reference

    def __init__(
        self,
        *,
        model: str = "normal",
        direction: str = "both",
        false_alarm_rate: float = DEFAULT_RATE,
        reference: int = 500,
        scale: bool = True,
        null: str = "estimate",
        keep_reference: bool = False,
        rare: bool = False,
    ) -> None:
        super().__init__()
        if model not in MODELS:
            raise ParamError("model", f"must be one of {', '.join(MODELS)}")
        if direction not in DIRECTIONS:
            raise ParamError("direction", f"must be one of {', '.join(DIRECTIONS)}")
        if null not in NULLS:
            raise ParamError("null", f"must be one of {', '.join(NULLS)}")
        if null == "upper" and (model != "bernoulli" or direction != "up"):
            raise ParamError("null", '"upper" needs model = "bernoulli" and direction = "up"')
        if not 0.0 < false_alarm_rate < 1.0:
            raise ParamError("false_alarm_rate", "must be in (0, 1)")
        if reference < 20:
            raise ParamError("reference", "must be at least 20")
        if rare and (model != "bernoulli" or direction != "up"):
            raise ParamError("rare", 'only for model = "bernoulli" with direction = "up"')
        self.model = model
        self.direction = direction
        self.false_alarm_rate = false_alarm_rate
        self.reference = reference
        self.scale = scale
        # Set on the instance only when not the default: CPython shares the
        # keys of instance dicts (and specialises attribute loads on them) up
        # to 30 attributes, which the hot path's detector already has.
        if null != "estimate":
            self.null = null
        if keep_reference:
            self.keep_reference = True
        if rare:
            self.rare = True
        self._down = direction in ("down", "both")
        # The normal models' score of each rank level (None: not a normal model).
        self._scores: tuple[float, ...] | None = (
            _NORMAL_SCORES if model == "normal" else _HALF_SCORES if model == "halfnormal" else None
        )
        self._banks = self._bank_layout()
        self._reset()

    @property
    def _up(self) -> bool:
        return self.direction in ("up", "both")

    def params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "direction": self.direction,
            "false_alarm_rate": self.false_alarm_rate,
            "reference": self.reference,
            "scale": self.scale,
            "null": self.null,
            "keep_reference": self.keep_reference,
            "rare": self.rare,
        }

    # -- layout and calibration -------------------------------------------------

    def _bank_layout(self) -> list[tuple[str, tuple[float, ...]]]:
        """(kind, grid) of each bank; categorical banks are laid out per category."""
        model = self.model
        banks: list[tuple[str, tuple[float, ...]]] = []
        if model == "bernoulli":
            if self._up:
                banks.append(("rate_up", _RATE))
            if self._down:
                banks.append(("rate_down", _RATE))
        elif model == "normal":
            if self._up:
                banks.append(("mean_up", _LOCATION))
            if self._down:
                banks.append(("mean_down", _LOCATION))
            if self.scale and self._up:
                banks.append(("scale", _SCALE_UP))
            if self.scale and self._down:
                banks.append(("scale", _SCALE_DOWN))
        elif model == "halfnormal":
            if self._up:
                banks.append(("scale", _SCALE_UP))
            if self._down:
                banks.append(("scale", _SCALE_DOWN))
        return banks

    def _reset(self) -> None:
        """Forget everything: a new reference starts with the next value."""
        self._n = 0  # values since the reset
        self._r = 0.0  # their raw sum (the located means)
        self._s1 = 0.0  # sum of the statistic (z, zh or x)
        self._s2 = 0.0  # sum of its square
        self._counts: list[int] = []  # categorical: values per code
        # Normal models: 0 while the first reference decides, 1 for a discrete
        # signal (watched as categories of its rank levels), -1 otherwise.
        self._discrete = 0 if self.model in ("normal", "halfnormal") else -1
        self._levels: list[int] = []  # the rank levels seen, by code
        self._code_of: dict[int, int] = {}
        self._n0 = 0  # size of the current reference (0: CUSUMs not running)
        self._next = self.reference  # refresh the reference at this count
        self._m = 0.0  # reference mean of the statistic
        self._last: list[int] = []  # lazy banks: position of their last update
        # Per CUSUM: the increment is a * d + q * d * d + b, with d the statistic
        # minus the reference mean (0/1 or the code's indicator for rates).
        self._a: list[float] = []
        self._q: list[float] = []
        self._b: list[float] = []
        self._t: list[float] = []  # thresholds
        self._w: list[float] = []  # statistics (0 = at rest)
        self._start: list[int] = []  # position before the excursion began
        self._rstart: list[float] = []  # raw sum up to that position
        self._ranges: list[tuple[int, int]] = []  # [lo, hi) of each bank
        self._owner: list[int] = []  # categorical: the code of each bank

    def _refresh(self) -> None:
        """Re-estimate the pre-change distribution from every value so far."""
        self._estimate()
        if self.keep_reference and self._n0 == self._n:
            self._r0 = self._r  # the raw sum of the reference: its mean, when kept

    def _estimate(self) -> None:
        n = self._n
        self._next = 2 * n
        if self._discrete == 0:
            self._discrete = 1 if len(self._levels) <= _DISCRETE_LEVELS else -1
        if self.model == "categorical" or self._discrete == 1:
            self._refresh_categorical()
            return
        if self.model == "bernoulli":
            ones = self._s1
            if self.null == "upper":
                self._flush_all()
                self._m = upper_rate(ones, n)
                self._lay_rates([(-1, self._m)])
                self._n0 = n
                return
            if self.rare and ones < _MIN_EVENTS:
                rate = _RARE_UPPER[min(math.ceil(ones), _MIN_EVENTS - 1)] / n
                if rate >= 0.5:
                    return  # too few values to bound the rate usefully
            elif self._enough(ones, n):
                rate = ones / n
            else:
                return
            self._flush_all()
            self._m = rate
            self._lay_rates([(-1, rate)])
            self._n0 = n
            return
        mean = self._s1 / n if self.model == "normal" else 0.0
        var = self._s2 / n - mean * mean
        if not var > 1e-9:
            return  # constant so far: nothing to standardise by yet
        sd = math.sqrt(var)
        first = self._n0 == 0
        self._m = mean
        self._n0 = n
        if first:
            self._lay_normal(sd, var)
        else:
            self._recoefficient_normal(sd, var)

    def _enough(self, ones: float, n: int) -> bool:
        need_up = ones >= _MIN_EVENTS or not self._up
        need_down = n - ones >= _MIN_EVENTS or not self._down
        return need_up and need_down and 0.0 < ones < n

    def _normal_coefficients(
        self, kind: str, size: float, sd: float, var: float
    ) -> tuple[float, float, float, float]:
        """(a, q, b, I0) of one CUSUM of the normal or half-normal model."""
        if kind == "mean_up":
            return size / sd, 0.0, -size * size / 2.0, size * size / 2.0
        if kind == "mean_down":
            return -size / sd, 0.0, -size * size / 2.0, size * size / 2.0
        # Variance ratio size^2: log-likelihood ratio of N(0, size^2 var) to N(0, var).
        q = (1.0 - 1.0 / (size * size)) / (2.0 * var)
        drift = math.log(size) + 1.0 / (2.0 * size * size) - 0.5
        return 0.0, q, -math.log(size), drift

    def _lay_normal(self, sd: float, var: float) -> None:
        total = sum(len(grid) for _, grid in self._banks)
        arl = total / self.false_alarm_rate
        for kind, grid in self._banks:
            lo = len(self._w)
            for size in grid:
                a, q, b, drift = self._normal_coefficients(kind, size, sd, var)
                self._append(a, q, b, threshold(arl * drift))
            self._ranges.append((lo, len(self._w)))

    def _recoefficient_normal(self, sd: float, var: float) -> None:
        j = 0
        for kind, grid in self._banks:
            for size in grid:
                self._a[j], self._q[j], self._b[j], _ = self._normal_coefficients(
                    kind, size, sd, var
                )
                j += 1

    def _append(self, a: float, q: float, b: float, t: float) -> None:
        self._a.append(a)
        self._q.append(q)
        self._b.append(b)
        self._t.append(t)
        self._w.append(0.0)
        self._start.append(self._n)
        self._rstart.append(self._r)

    def _lay_rates(self, rates: list[tuple[int, float]]) -> None:
        """Rate banks for (code, reference rate) pairs (code -1: the 0/1 signal).

        Existing CUSUMs keep their statistics when only their coefficients change.
        """
        kinds = [kind for kind, _ in self._banks] if self.model == "bernoulli" else ["rate_up"]
        total = sum(len(_RATE) for _ in kinds) * len(rates)
        arl = total / self.false_alarm_rate
        previous = self._snapshot_cusums()
        self._a, self._q, self._b, self._t = [], [], [], []
        self._w, self._start, self._rstart = [], [], []
        self._ranges, self._owner, self._last = [], [], []
        for code, p0 in rates:
            for kind in kinds:
                lo = len(self._w)
                for size in _RATE:
                    step = size * math.sqrt(p0 * (1.0 - p0))
                    p1 = min(p0 + step, 1.0 - 1e-9) if kind == "rate_up" else max(p0 - step, 1e-9)
                    zero = math.log((1.0 - p1) / (1.0 - p0))
                    one = math.log(p1 / p0)
                    self._append(one - zero, 0.0, zero, threshold(arl * _kl_bernoulli(p0, p1)))
                    kept = previous.get((code, kind, size))
                    if kept is not None:
                        self._w[-1], self._start[-1], self._rstart[-1] = kept
                self._ranges.append((lo, len(self._w)))
                self._owner.append(code)
                self._last.append(self._n)

    def _snapshot_cusums(self) -> dict[tuple[int, str, float], tuple[float, int, float]]:
        out: dict[tuple[int, str, float], tuple[float, int, float]] = {}
        kinds = [kind for kind, _ in self._banks] if self.model == "bernoulli" else ["rate_up"]
        for k, (lo, hi) in enumerate(self._ranges):
            kind = kinds[k % len(kinds)]
            code = self._owner[k]
            for size, j in zip(_RATE, range(lo, hi), strict=True):
                out[(code, kind, size)] = (self._w[j], self._start[j], self._rstart[j])
        return out

    def _refresh_categorical(self) -> None:
        n = self._n
        self._flush_all()
        rates = [
            (code, count / n)
            for code, count in enumerate(self._counts)
            if count >= _MIN_EVENTS and n - count >= _MIN_EVENTS
        ]
        if rates:
            self._lay_rates(rates)
            self._n0 = n

    # -- a pinned reference ---------------------------------------------------------

    def prime(self, values: Sequence[float], raw: Sequence[float] | None = None) -> None:
        """Take ``values`` (``raw``: the signal's own values, for the located
        means) as the pre-change reference, before any stream value.

        No CUSUM runs on them. The pre-change estimate is made from them at
        once and kept (never refreshed from the stream); if they cannot give
        one (a constant signal, too few events of a rate), the stream's values
        complete it as without them. They count in ``observations``.
        """
        if self._n:
            raise ValueError("glr: only a fresh detector takes a reference")
        raws = values if raw is None else raw
        self._next = _FROZEN  # no estimate while they are taken
        for x, r in zip(values, raws, strict=True):
            self.observe(x, r)
        if not self._n:
            self._next = self.reference
            return
        self._refresh()
        if self._n0:
            self._next = _FROZEN
            self._r0 = self._r

    # -- the hot path -------------------------------------------------------------

    def update(self, x: float) -> Detection | None:
        return self.observe(x, x)

    def zeros(self, k: int) -> None:
        """``k`` updates with 0, at once: the same state, in O(1) between refreshes.

        Only for a rising rate (bernoulli, direction "up"), where a 0 never fires.
        """
        if self.model != "bernoulli" or self._down:
            raise ValueError('zeros() is for model = "bernoulli" with direction = "up"')
        while k > 0:
            step = min(k, self._next - self._n) if self._next > self._n else 1
            self._n += step
            self.observations += step
            k -= step
            if self._n >= self._next:
                self._refresh()

    # One flat function on purpose, the normal models' CUSUM loop inlined (no
    # call per value): it runs for every value of every signal.
    def observe(self, x: float, raw: float) -> Detection | None:  # noqa: PLR0912, PLR0915
        """``update`` with the signal's own value too: located means in its units."""
        self.observations += 1
        n = self._n = self._n + 1
        r = self._r
        self._r = r + raw
        scores = self._scores
        if scores is not None:
            i = int(x * _LEVELS + 0.5)
            if i < 0:
                i = 0
            elif i > _LEVELS:
                i = _LEVELS
            if self._discrete >= 0:
                found = self._level(i, n, r)
                if found is not None:
                    return found
                if self._discrete == 1:
                    if n >= self._next:
                        self._refresh()
                    return None
            z = scores[i]
            self._s1 += z
            self._s2 += z * z
            if self._n0:
                a, q, b, t, w = self._a, self._q, self._b, self._t, self._w
                d = z - self._m
                d2 = d * d
                hits: list[int] | None = None
                for lo, hi in self._ranges:
                    # A bank watches the mean (q = 0: the increment is a * d + b) or
                    # the scale (a = 0: q * d * d + b); the other term is an exact zero
                    # (see _banks_separate), so leaving it out changes no bit of a sum.
                    if q[lo] == 0.0:
                        c, v = a, d
                    else:
                        c, v = q, d2
                    for j in range(lo, hi):
                        old = w[j]
                        new = old + c[j] * v + b[j]
                        if old:
                            if new > 0.0:
                                w[j] = new
                                if new >= t[j]:
                                    if hits is None:
                                        hits = []
                                    hits.append(j)
                            else:
                                w[j] = 0.0
                        elif new > 0.0:
                            w[j] = new
                            self._start[j] = n - 1
                            self._rstart[j] = r
                            if new >= t[j]:
                                if hits is None:
                                    hits = []
                                hits.append(j)
                        else:
                            # At rest and staying there: so are the bank's later CUSUMs
                            # (larger shifts, larger drift allowances).
                            break
                if hits is not None:
                    found = self._fire(hits, n)
                    if found is not None:
                        return found
        elif self.model == "bernoulli":
            self._s1 += x
            if self._n0 and not (x == 0.0 and self._down is False):
                found = self._rates(0, x, n, r)
                if found is not None:
                    return found
        else:
            found = self._category(int(x), n, r)
            if found is not None:
                return found
        if n >= self._next:
            self._refresh()
        return None

    def _category(self, code: int, n: int, r: float) -> Detection | None:
        counts = self._counts
        if code >= len(counts):
            counts.extend([0] * (code + 1 - len(counts)))
        counts[code] += 1
        if self._n0:
            owner = self._owner
            for k in range(len(owner)):
                if owner[k] == code:
                    return self._rates(k, 1.0, n, r)
        return None

    def _level(self, i: int, n: int, r: float) -> Detection | None:
        """A rank level of a signal that may be discrete (see _DISCRETE_LEVELS)."""
        code = self._code_of.get(i)
        if code is None:
            if len(self._levels) >= _MAX_LEVELS:
                return None  # beyond the codes: counted nowhere
            code = self._code_of[i] = len(self._levels)
            self._levels.append(i)
            if self._discrete == 0 and len(self._levels) > _DISCRETE_LEVELS:
                # Not discrete after all: the normal scores take over.
                self._discrete = -1
                self._levels, self._code_of, self._counts = [], {}, []
                return None
        if self._discrete == 0:
            counts = self._counts
            if code >= len(counts):
                counts.append(0)
            counts[code] += 1
            return None
        return self._category(code, n, r)

    def _rates(self, k: int, x: float, n: int, r: float) -> Detection | None:
        """A value of rate bank ``k`` (and its partner bank, for "both")."""
        hits: list[int] | None = None
        a, b, t, w = self._a, self._b, self._t, self._w
        ranges = self._ranges
        banks = range(len(ranges)) if self.model == "bernoulli" else (k,)
        for bank in banks:
            lo, hi = ranges[bank]
            # Values since this bank's last update were zeros: their steps
            # (b each) are applied at once; the bank's CUSUM rests at 0 no later
            # than the value before this one.
            zeros = n - 1 - self._last[bank]
            self._last[bank] = n
            for j in range(lo, hi):
                old = w[j]
                if zeros:
                    old += zeros * b[j]
                    old = max(0.0, old)
                new = old + a[j] * x + b[j]
                if new > 0.0:
                    if old == 0.0:
                        self._start[j] = n - 1
                        self._rstart[j] = r
                    w[j] = new
                    if new >= t[j]:
                        if hits is None:
                            hits = []
                        hits.append(j)
                else:
                    w[j] = 0.0
        return None if hits is None else self._fire(hits, n)

    def _flush_all(self) -> None:
        """Bring the lazy banks up to date (before their coefficients change)."""
        n = self._n
        for bank, (lo, hi) in enumerate(self._ranges):
            zeros = n - self._last[bank]
            self._last[bank] = n
            if zeros:
                for j in range(lo, hi):
                    value = self._w[j] + zeros * self._b[j]
                    if value <= 0.0:
                        self._w[j] = 0.0
                        self._start[j] = n
                        self._rstart[j] = self._r
                    else:
                        self._w[j] = value

    def _fire(self, hits: list[int], n: int) -> Detection | None:
        """The strongest CUSUM over its two-sample threshold, if any: a detection."""
        best, best_j = 1.0, -1
        n0 = self._n0
        for j in hits:
            excess = self._w[j] / (self._t[j] * (1.0 + (n - self._start[j]) / n0))
            if excess >= best:
                best, best_j = excess, j
        if best_j < 0:
            return None
        start = self._start[best_j]
        before = self._rstart[best_j]
        if self._next == _FROZEN:
            # Against a pinned or kept reference: the values before the
            # excursion may be changed ones already (the stream's start, or
            # the rest of a change reported before); the reference is what
            # it was compared with.
            mean_before: float | None = self._r0 / self._n0
        else:
            mean_before = before / start if start > 0 else None
        detection = Detection(
            severity="drift",
            mean_before=mean_before,
            mean_after=(self._r - before) / (n - start),
            window_before=start,
            window_after=n - start,
        )
        if self.keep_reference:
            self._restart_cusums()
        else:
            self._reset()
        return detection

    def _restart_cusums(self) -> None:
        """Every CUSUM back to zero, against the same pre-change estimate, kept from now on."""
        n, r = self._n, self._r
        for j in range(len(self._w)):
            self._w[j] = 0.0
            self._start[j] = n
            self._rstart[j] = r
        for bank in range(len(self._last)):
            self._last[bank] = n
        self._next = _FROZEN

    # -- checkpoints --------------------------------------------------------------

    _FLOATS: Final = ("_r", "_s1", "_s2", "_m")
    _INTS: Final = ("_n", "_n0", "_next", "_discrete")
    _FLOAT_LISTS: Final = ("_a", "_q", "_b", "_t", "_w", "_rstart")
    _INT_LISTS: Final = ("_counts", "_last", "_start", "_owner", "_levels")

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"observations": self.observations}
        for key in (*self._FLOATS, *self._INTS):
            out[key.lstrip("_")] = getattr(self, key)
        for key in (*self._FLOAT_LISTS, *self._INT_LISTS):
            out[key.lstrip("_")] = list(getattr(self, key))
        out["ranges"] = [list(pair) for pair in self._ranges]
        if self.keep_reference or self._next == _FROZEN:  # only then: others stay as they were
            out["r0"] = self._r0
        return out

    def load_state(self, state: Mapping[str, Any]) -> None:
        def number(key: str, kind: type) -> Any:
            if key not in state:
                raise ValueError(f"glr state: missing {key!r}")
            value = state[key]
            if kind is int and type(value) is not int:
                raise ValueError(f"glr state: {key!r} must be an integer")
            if kind is float and type(value) not in (int, float):
                raise ValueError(f"glr state: {key!r} must be a number")
            return kind(value)

        def listed(key: str, kind: type) -> list[Any]:
            value = state.get(key)
            if not isinstance(value, list):
                raise ValueError(f"glr state: {key!r} must be a list")
            return [number_of(key, item, kind) for item in value]

        def number_of(key: str, item: Any, kind: type) -> Any:
            if kind is int and type(item) is not int:
                raise ValueError(f"glr state: {key!r} must hold integers")
            if kind is float and type(item) not in (int, float):
                raise ValueError(f"glr state: {key!r} must hold numbers")
            return kind(item)

        observations = number("observations", int)
        scalars = {key: number(key.lstrip("_"), float) for key in self._FLOATS}
        counts = {key: number(key.lstrip("_"), int) for key in self._INTS}
        floats = {key: listed(key.lstrip("_"), float) for key in self._FLOAT_LISTS}
        ints = {key: listed(key.lstrip("_"), int) for key in self._INT_LISTS}
        raw_ranges = state.get("ranges")
        if not isinstance(raw_ranges, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(type(v) is int for v in p)
            for p in raw_ranges
        ):
            raise ValueError("glr state: 'ranges' must be a list of [lo, hi] integer pairs")
        size = len(floats["_w"])
        if any(len(v) != size for v in (*floats.values(), ints["_start"])):
            raise ValueError("glr state: per-CUSUM lists differ in length")
        ranges = [(lo, hi) for lo, hi in raw_ranges]
        if any(not 0 <= lo <= hi <= size for lo, hi in ranges):
            raise ValueError("glr state: a bank range lies outside the CUSUMs")
        if self._scores is not None and not _banks_separate(floats["_a"], floats["_q"], ranges):
            raise ValueError(
                "glr state: each bank's CUSUMs must all watch the mean (q = 0) "
                "or all the scale (a = 0)"
            )
        if counts["_discrete"] not in (-1, 0, 1) or any(v < 0 for v in ints["_levels"]):
            raise ValueError("glr state: 'discrete' and 'levels' out of range")
        if counts["_n"] < 0 or counts["_n0"] < 0 or observations < 0:
            raise ValueError("glr state: counts must not be negative")
        if counts["_n0"] and any(not math.isfinite(v) for v in floats["_t"]):
            raise ValueError("glr state: thresholds must be finite")
        self.observations = observations
        for key, value in (*scalars.items(), *counts.items(), *floats.items(), *ints.items()):
            setattr(self, key, value)
        self._ranges = ranges
        self._code_of = {level: code for code, level in enumerate(self._levels)}
        if self.keep_reference or self._next == _FROZEN:
            self._r0 = number("r0", float)


def _banks_separate(
    a: Sequence[float], q: Sequence[float], ranges: Sequence[tuple[int, int]]
) -> bool:
    """Every bank of the normal models watches the mean or the scale, not both.

    ``observe`` takes one term per bank (``a * d`` where ``q[lo]`` is 0, else
    ``q * d * d``): the other is an exact zero, so leaving it out gives the
    same sums to the last bit. The layout makes banks so; a loaded state must be.
    """
    for lo, hi in ranges:
        if lo < hi:
            dropped = q if q[lo] == 0.0 else a
            if any(dropped[j] != 0.0 for j in range(lo, hi)):
                return False
    return True
