"""Whole-distribution change: a two-sample G-test of bin frequencies, windowed.

Mean detectors (ADWIN, Page-Hinkley) do not see a feature whose variance or
shape changes while its mean stays, nor a categorical feature whose category
frequencies change. This detector compares the frequencies of a recent window
with those of a reference: numeric values are binned at the reference's
quantiles, categorical ones arrive as category codes (see
``stream_mlops.signals``), one bin each.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Final

from scipy.stats import chi2

from stream_mlops.detectors.base import Detection, Detector, ParamError
from stream_mlops.plain_data import (
    FieldError,
    Fields,
    check_int,
    check_list,
    float_data,
    floats_data,
)

__all__ = ["DistributionDetector"]

# Bin edges come from the first _EDGE_SAMPLE reference values: 512 values put
# about 51 in each of 10 bins, enough for deciles, and bound the state kept
# while the reference builds (it is checkpointed).
_EDGE_SAMPLE: Final = 512
# Default false-alarm rate per observation when no budget calibrates the
# detector: the default per-model budget (1e-7, see stream_mlops.config)
# shared by about ten signals.
DEFAULT_RATE: Final = 1e-8


class DistributionDetector(Detector):
    """Reference frequencies versus tumbling windows of several sizes.

    The first ``reference`` values form the reference (numeric: binned at the
    deciles of its first 512 values; ``categorical=True``: each code its own
    bin). After that, every window size in ``windows`` keeps a tumbling window;
    every ``windows[0]`` values, each size's window of the latest values gets a
    G-test of homogeneity against the reference (the 2 x K table of counts,
    Williams' correction), and the detector fires when G exceeds the chi-square
    quantile at ``alpha = false_alarm_rate * windows[0] / len(windows)``:
    ``len(windows)`` tests per ``windows[0]`` values, so by the union bound the
    false alarms per observation stay below ``false_alarm_rate`` (the
    chi-square approximation of G holds as bins keep tens of counts).

    Small windows find large changes fast; large windows find small ones. After a
    detection the reference starts again from the next value.

    >>> import random
    >>> rng = random.Random(2)
    >>> detector = DistributionDetector()
    >>> # Same mean, the standard deviation doubles at 6,000.
    >>> fired = [i for i in range(12000)
    ...          if detector.update(rng.gauss(0.0, 1.0 if i < 6000 else 2.0))]
    >>> [i - 6000 for i in fired]
    [249]
    """

    name = "distribution"

    def __init__(
        self,
        *,
        reference: int = 2000,
        windows: tuple[int, ...] | list[int] = (250, 500, 1000, 2000, 4000),
        bins: int = 10,
        categorical: bool = False,
        false_alarm_rate: float = DEFAULT_RATE,
        keep_reference: bool = False,
    ) -> None:
        super().__init__()
        if reference < 20:
            raise ParamError("reference", "must be at least 20")
        if not windows or any(type(w) is not int or w < 10 for w in windows):
            raise ParamError("windows", "must be a non-empty list of integers of at least 10")
        ordered = sorted(windows)
        if any(w % ordered[0] or a == w for a, w in itertools.pairwise(ordered)):
            raise ParamError("windows", "sizes must differ and be multiples of the smallest")
        if bins < 2:
            raise ParamError("bins", "must be at least 2")
        if not 0.0 < false_alarm_rate < 1.0:
            raise ParamError("false_alarm_rate", "must be in (0, 1)")
        self.reference = reference
        self.windows = tuple(sorted(windows))
        self.bins = bins
        self.categorical = categorical
        self.false_alarm_rate = false_alarm_rate
        #: After a detection, keep the reference (and start the windows afresh)
        #: instead of forming a new one from the values that follow.
        self.keep_reference = keep_reference
        alpha = false_alarm_rate * self.windows[0] / len(self.windows)
        self._alpha = [alpha for _ in self.windows]
        self._blocks_per_window = [w // self.windows[0] for w in self.windows]
        self._thresholds: dict[tuple[int, int], float] = {}
        self._reset()

    def _reset(self) -> None:
        self._sample: list[float] | None = None if self.categorical else []
        self._edges: list[float] = []
        self._ref: dict[int, int] = {}
        self._ref_n = 0
        # Counts per bin of the current block, and of the latest full blocks.
        self._block: list[int] = []
        self._blocks: deque[list[int]] = deque(maxlen=self._blocks_per_window[-1])
        self._filled = 0  # values in the current block
        self._count = 0  # values since the reference was complete
        self._sum = 0.0
        self._ref_sum = 0.0

    def params(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "windows": list(self.windows),
            "bins": self.bins,
            "categorical": self.categorical,
            "false_alarm_rate": self.false_alarm_rate,
            "keep_reference": self.keep_reference,
        }

    def state(self) -> dict[str, Any]:
        sample = self._sample
        return {
            "observations": self.observations,
            "sample": None if sample is None else floats_data(sample),
            "edges": floats_data(self._edges),
            # Pairs, in the reference's own order (dict order is part of the state).
            "reference_bins": [[b, c] for b, c in self._ref.items()],
            "reference_seen": self._ref_n,
            "reference_sum": float_data(self._ref_sum),
            "block": list(self._block),
            "blocks": [list(block) for block in self._blocks],
            "block_filled": self._filled,
            "count": self._count,
            "sum": float_data(self._sum),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        fields = Fields(state, "state")
        self.observations = fields.integer("observations", low=0)
        sample = fields.optional_numbers("sample", max_len=min(_EDGE_SAMPLE, self.reference))
        if sample is not None and self.categorical:
            raise FieldError("state.sample: a categorical detector keeps no sample")
        self._sample = sample
        self._edges = fields.numbers("edges", max_len=self.bins - 1)
        if self._edges != sorted(self._edges):
            raise FieldError("state.edges: expected ascending bin edges")
        self._ref = fields.counts("reference_bins")
        self._ref_n = fields.integer("reference_seen", low=0, high=self.reference)
        self._ref_sum = fields.number("reference_sum")
        self._block = fields.integers("block", low=0)
        kept = self._blocks_per_window[-1]
        self._blocks = deque(maxlen=kept)
        for i, block in enumerate(fields.items("blocks", max_len=kept)):
            at = f"state.blocks[{i}]"
            counts = check_list(block, at)
            self._blocks.append([check_int(c, f"{at}[{j}]", low=0) for j, c in enumerate(counts)])
        self._filled = fields.integer("block_filled", low=0, high=self.windows[0] - 1)
        self._count = fields.integer("count", low=0, high=self.observations)
        self._sum = fields.number("sum")
        fields.done()

    def _bin(self, x: float) -> int:
        if self.categorical:
            return int(x)
        return bisect_right(self._edges, x)

    def update(self, x: float) -> Detection | None:
        self.observations += 1
        if self._ref_n < self.reference:
            self._reference(x)
            return None
        self._count += 1
        self._sum += x
        counts = self._block
        b = int(x) if self.categorical else bisect_right(self._edges, x)
        if b < len(counts):
            counts[b] += 1
        else:
            counts.extend([0] * (b + 1 - len(counts)))
            counts[b] = 1
        filled = self._filled = self._filled + 1
        if filled < self.windows[0]:
            return None
        return self._block_full()

    def _block_full(self) -> Detection | None:
        self._blocks.append(self._block)
        self._block = [0] * len(self._block)
        self._filled = 0
        # Windows of the latest 1, 2, 4... blocks, smallest first.
        window: dict[int, int] = {}
        fired: int | None = None
        k = 0
        for used, block in enumerate(reversed(self._blocks), start=1):
            for b, c in enumerate(block):
                if c:
                    window[b] = window.get(b, 0) + c
            if used == self._blocks_per_window[k]:
                if self._significant(k, window):
                    fired = k
                    break
                k += 1
                if k == len(self.windows):
                    break
        if fired is None:
            return None
        detection = Detection(
            severity="drift",
            mean_before=self._ref_sum / self._ref_n,
            mean_after=self._sum / self._count,
            window_before=self._ref_n,
            window_after=self.windows[fired],
        )
        if self.keep_reference:
            self._block = [0] * len(self._block)
            self._blocks.clear()
            self._count = 0
            self._sum = 0.0
        else:
            self._reset()
        return detection

    def prime(self, values: Sequence[float], raw: Sequence[float] | None = None) -> None:
        """Take the last ``reference`` of ``values`` as the reference, before the
        stream (a pinned reference); with fewer, the stream completes it."""
        if self.observations:
            raise ValueError("distribution: only a fresh detector takes a reference")
        for x in values[-self.reference :]:
            self.observations += 1
            self._reference(x)

    def _reference(self, x: float) -> None:
        self._ref_n += 1
        self._ref_sum += x
        sample = self._sample
        if sample is not None:
            sample.append(x)
            if len(sample) < min(_EDGE_SAMPLE, self.reference) and self._ref_n < self.reference:
                return
            # The sample is complete: cut it at its quantiles (ties merge bins,
            # so a discrete feature gets one bin per value at most), then bin it.
            sample.sort()
            n = len(sample)
            edges = {sample[min(n - 1, (n * j) // self.bins)] for j in range(1, self.bins)}
            self._edges = sorted(edges)
            self._sample = None
            for value in sample:
                b = self._bin(value)
                self._ref[b] = self._ref.get(b, 0) + 1
            return
        b = self._bin(x)
        self._ref[b] = self._ref.get(b, 0) + 1

    def _significant(self, k: int, window: dict[int, int]) -> bool:
        return g_statistic(self._ref, window) > self._threshold(k, len(self._ref.keys() | window))

    def _threshold(self, k: int, cells: int) -> float:
        key = (k, cells)
        found = self._thresholds.get(key)
        if found is None:
            df = max(cells - 1, 1)
            found = self._thresholds[key] = float(chi2.isf(self._alpha[k], df))
        return found


def g_statistic(a: dict[int, int], b: dict[int, int]) -> float:
    """G of the 2 x K homogeneity test of two count vectors, Williams-corrected.

    >>> round(g_statistic({0: 50, 1: 50}, {0: 50, 1: 50}), 6)
    0.0
    >>> g_statistic({0: 90, 1: 10}, {0: 10, 1: 90}) > 100
    True
    """
    na = sum(a.values())
    nb = sum(b.values())
    n = na + nb
    if na == 0 or nb == 0:
        return 0.0
    g = 0.0
    cells = a.keys() | b.keys()
    inv_cols = 0.0
    for key in cells:
        ca = a.get(key, 0)
        cb = b.get(key, 0)
        col = ca + cb
        inv_cols += 1.0 / col
        if ca:
            g += ca * math.log(ca * n / (na * col))
        if cb:
            g += cb * math.log(cb * n / (nb * col))
    g *= 2.0
    k = len(cells)
    if k < 2:
        return 0.0
    # Williams (1976): divide by q so G follows chi-square more closely in small samples.
    q = 1.0 + (n * (1.0 / na + 1.0 / nb) - 1.0) * (n * inv_cols - 1.0) / (6.0 * n * (k - 1))
    return g / q
