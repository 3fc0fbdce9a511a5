"""ADWIN's false alarms per observation against its delta, on the values the engine feeds it.

    PYTHONPATH=. python benchmarks/adwin_calibration.py [--values 3000000]

ADWIN's theorem bounds a false cut at each check by delta (with a check every 32
values, false alarms per value <= delta / 32), but the bound is loose. This
measures the real rate on stationary streams of the kinds the engine gives
ADWIN: a classifier's 0/1 error (5% and 50%), values in [0, 1], and ranks of a
discrete feature (24 levels). stream_mlops.calibration takes its ADWIN constant
(false alarms per value per unit of delta) from the largest ratio printed here,
with a safety factor.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable

from river.drift import ADWIN

DELTAS = (0.2, 0.05, 0.01, 0.002)
STREAMS: dict[str, Callable[[random.Random], float]] = {
    "error 5%": lambda r: float(r.random() < 0.05),
    "error 50%": lambda r: float(r.random() < 0.5),
    "uniform [0, 1]": lambda r: r.random(),
    "ranks, 24 levels": lambda r: (r.randrange(24) + 0.5) / 24,
}


def false_alarms(values: list[float], delta: float) -> int:
    adwin = ADWIN(delta=delta)
    found = 0
    for x in values:
        adwin.update(x)
        if adwin.drift_detected:
            found += 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=3_000_000)
    args = parser.parse_args()
    n = args.values
    print(f"\nADWIN false alarms per value / delta, {n:,} stationary values per stream\n")
    header = f"{'stream':<18} | " + " | ".join(f"{f'delta {d}':>12}" for d in DELTAS)
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name, draw in STREAMS.items():
        rng = random.Random(1)
        values = [draw(rng) for _ in range(n)]
        cells = []
        for delta in DELTAS:
            ratio = false_alarms(values, delta) / n / delta
            worst = max(worst, ratio)
            cells.append(f"{ratio:12.1e}")
        print(f"{name:<18} | " + " | ".join(cells))
    print(f"\nlargest ratio {worst:.1e} (theorem: {1 / 32:.1e})")


if __name__ == "__main__":
    main()
