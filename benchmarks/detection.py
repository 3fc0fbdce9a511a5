"""Detection quality on generated streams with known change points.

    PYTHONPATH=. python benchmarks/detection.py [--seeds 30] [--stationary-seeds 5]
        [--stationary-length 100000] [--jobs 2]

Every stream runs through the engine's core exactly as ``stream-mlops replay``
runs it (``Engine(Settings())``, default settings, events in file order) and,
side by side on the same values, through river's ``ADWIN()`` and
``PageHinkley()`` with their default parameters, fed the raw signal (for a
categorical feature: one detector per category indicator, the feature alarms
when any of them does).

Streams (the change is at prediction ``--tau``, default 10,000; the horizon is
the ``--horizon`` observations of the signal after it, default 10,000):

* classification error 5% -> 7.5%, 10%, 20%: abrupt, and gradual (a linear
  ramp over 5,000 predictions); outcomes follow their prediction at once;
* regression absolute error: residual N(0, 1) -> N(0.5, 1) (mean) and
  N(0, 1.5^2) (variance);
* label-free, no outcomes at all, 4 numeric features and a categorical one, one
  of them changes: mean +0.25 SD, SD x1.5, shape (a bimodal mixture with the
  same mean and variance), category frequencies;
* the estimated error of calibrated scores, no outcomes: hard cases (score in
  0.1-0.9) go from 10% to 35% of traffic, the expected error from 6.5% to 11.75%;
* long stationary streams of a calibrated classifier with outcomes, a score and
  5 features of different shapes (lognormal, normal, uniform, integer,
  categorical).

Reported per stream and detector: the share of seeds where the changed signal
alarmed within the horizon, the median and mean delay (signal observations
from the change to the alarm, over the detected seeds), false alarms (alarms
on any signal that did not change, and on the changed one before the change)
per million signal observations, and mean delay / (ln(ARL) / KL(after||before)),
the CUSUM lower bound on the delay of any detector with that false-alarm rate
that even knows both distributions (Lorden 1971). ARL is the detector's
achieved mean run length to a false alarm over all stationary observations of
the run (stationary streams and pre-change parts); with no false alarm it is
the number of observations, an underestimate, so the ratio is then an upper
bound (pessimistic for the detector). Gradual changes have no single KL: "-".
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import random
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from river.drift import ADWIN, PageHinkley

from stream_mlops.config import Settings
from stream_mlops.engine import Engine
from stream_mlops.events import DriftAlert, InputEvent, OutcomeEvent, PredictionEvent

T0 = 1_800_000_000.0
MERCHANTS = ("grocery", "fuel", "travel", "online", "cash")
MERCHANT_BEFORE = (0.40, 0.25, 0.15, 0.12, 0.08)
MERCHANT_AFTER = (0.32, 0.25, 0.15, 0.12, 0.16)
RAMP = 5_000  # predictions over which a gradual change ramps up
DETECTORS = ("engine", "adwin", "page_hinkley")

# One prediction of a generated stream: the event(s) for the engine, and the
# signal values the raw detectors see (the same values the engine derives).
Step = tuple[list[InputEvent], dict[str, float | str]]


@dataclass(frozen=True)
class Scenario:
    name: str
    target: str  # the signal that changes ("" for stationary streams)
    kl: float | None  # KL(after || before) of the target signal's values; None: gradual
    make: Callable[[random.Random, int, int], Iterator[Step]]  # (rng, tau, length)
    also_changed: tuple[str, ...] = ()  # other signals that move with it (not false alarms)


# -- KL divergences -----------------------------------------------------------------


def kl_bernoulli(p: float, q: float) -> float:
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def kl_categorical(p: tuple[float, ...], q: tuple[float, ...]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def kl_numeric(after: Callable[[float], float], before: Callable[[float], float]) -> float:
    """KL of two densities on the real line by the midpoint rule on [-12, 12]."""
    lo, hi, n = -12.0, 12.0, 48_000
    h = (hi - lo) / n
    total = 0.0
    for i in range(n):
        x = lo + (i + 0.5) * h
        p = after(x)
        if p > 1e-300:
            total += p * math.log(p / before(x)) * h
    return total


def normal_pdf(mu: float, sd: float) -> Callable[[float], float]:
    c = 1.0 / (sd * math.sqrt(2 * math.pi))
    return lambda x: c * math.exp(-0.5 * ((x - mu) / sd) ** 2)


def folded(mu: float, sd: float) -> Callable[[float], float]:
    """Density of |N(mu, sd^2)| (the absolute error of a regression)."""
    pdf = normal_pdf(mu, sd)
    return lambda x: pdf(x) + pdf(-x) if x >= 0 else 0.0


# Bimodal with mean 0 and variance 1: 0.5 N(-0.8, 0.6^2) + 0.5 N(0.8, 0.6^2).
BIMODAL_MU, BIMODAL_SD = 0.8, 0.6


def bimodal_pdf(x: float) -> float:
    return 0.5 * normal_pdf(-BIMODAL_MU, BIMODAL_SD)(x) + 0.5 * normal_pdf(BIMODAL_MU, BIMODAL_SD)(
        x
    )


# -- streams ------------------------------------------------------------------------


def prediction(i: int, features: dict[str, Any], pred: Any, score: float | None) -> PredictionEvent:
    return PredictionEvent(
        event_id=f"e{i}",
        model_id="m",
        model_version="v1",
        ts=T0 + i,
        features=features,
        prediction=pred,
        score=score,
    )


def outcome(i: int, actual: Any) -> OutcomeEvent:
    return OutcomeEvent(event_id=f"e{i}", ts=T0 + i + 0.5, actual=actual)


def classifier_error(before: float, after: float, gradual: bool) -> Scenario:
    def rate(i: int, tau: int) -> float:
        if i < tau:
            return before
        if gradual and i < tau + RAMP:
            return before + (after - before) * (i - tau) / RAMP
        return after

    def make(rng: random.Random, tau: int, length: int) -> Iterator[Step]:
        for i in range(length):
            label = int(rng.random() < 0.5)
            wrong = rng.random() < rate(i, tau)
            events: list[InputEvent] = [
                prediction(i, {}, label, None),
                outcome(i, label ^ int(wrong)),
            ]
            yield events, {"error": float(wrong)}

    kind = "gradual" if gradual else "abrupt"
    return Scenario(
        f"error {before:.1%}->{after:.1%} {kind}",
        "error",
        None if gradual else kl_bernoulli(after, before),
        make,
    )


def regression_error(bias: float, sd: float, label: str) -> Scenario:
    def make(rng: random.Random, tau: int, length: int) -> Iterator[Step]:
        for i in range(length):
            pred = rng.gauss(100.0, 10.0)
            residual = rng.gauss(bias, sd) if i >= tau else rng.gauss(0.0, 1.0)
            events: list[InputEvent] = [prediction(i, {}, pred, None), outcome(i, pred + residual)]
            yield events, {"error": abs(residual)}

    return Scenario(
        f"regression |error| {label}",
        "error",
        kl_numeric(folded(bias, sd), folded(0.0, 1.0)),
        make,
    )


def _merchant(rng: random.Random, probs: tuple[float, ...]) -> str:
    u = rng.random()
    for name, p in zip(MERCHANTS, probs, strict=True):
        u -= p
        if u < 0:
            return name
    return MERCHANTS[-1]


def label_free(change: str) -> Scenario:
    """4 N(0, 1) features and a categorical one, no outcomes; one changes at tau."""

    def x0(rng: random.Random, changed: bool) -> float:
        if not changed or change in ("merchant",):
            return rng.gauss(0.0, 1.0)
        if change == "mean":
            return rng.gauss(0.25, 1.0)
        if change == "variance":
            return rng.gauss(0.0, 1.5)
        return rng.gauss(BIMODAL_MU if rng.random() < 0.5 else -BIMODAL_MU, BIMODAL_SD)

    def make(rng: random.Random, tau: int, length: int) -> Iterator[Step]:
        for i in range(length):
            changed = i >= tau
            features: dict[str, Any] = {
                "x0": x0(rng, changed),
                "x1": rng.gauss(0.0, 1.0),
                "x2": rng.gauss(0.0, 1.0),
                "x3": rng.gauss(0.0, 1.0),
                "merchant": _merchant(
                    rng, MERCHANT_AFTER if changed and change == "merchant" else MERCHANT_BEFORE
                ),
            }
            signals: dict[str, float | str] = {f"feature:{k}": v for k, v in features.items()}
            yield [prediction(i, features, int(rng.random() < 0.5), None)], signals

    if change == "merchant":
        return Scenario(
            "categorical frequencies",
            "feature:merchant",
            kl_categorical(MERCHANT_AFTER, MERCHANT_BEFORE),
            make,
        )
    after = {
        "mean": normal_pdf(0.25, 1.0),
        "variance": normal_pdf(0.0, 1.5),
        "shape": bimodal_pdf,
    }[change]
    label = {"mean": "mean +0.25 SD", "variance": "SD x1.5", "shape": "shape (bimodal)"}[change]
    return Scenario(f"feature {label}", "feature:x0", kl_numeric(after, normal_pdf(0.0, 1.0)), make)


HARD_BEFORE, HARD_AFTER = 0.10, 0.35


def estimated_error() -> Scenario:
    """Calibrated scores, no outcomes: the share of hard cases rises."""

    def make(rng: random.Random, tau: int, length: int) -> Iterator[Step]:
        for i in range(length):
            hard = rng.random() < (HARD_AFTER if i >= tau else HARD_BEFORE)
            score = rng.uniform(0.1, 0.9) if hard else rng.uniform(0.0, 0.1)
            if rng.random() < 0.5:
                score = 1.0 - score
            features = {"x0": rng.gauss(0.0, 1.0)}
            events: list[InputEvent] = [prediction(i, features, int(score >= 0.5), score)]
            yield (
                events,
                {
                    "estimated_error": min(score, 1.0 - score),
                    "score": score,
                    "feature:x0": features["x0"],
                },
            )

    # min(score, 1 - score) is U(0, 0.1) for easy and U(0.1, 0.5) for hard cases:
    # disjoint supports, so the KL is that of the hard/easy indicator.
    return Scenario(
        f"estimated error {HARD_BEFORE:.0%}->{HARD_AFTER:.0%} hard (no labels)",
        "estimated_error",
        kl_bernoulli(HARD_AFTER, HARD_BEFORE),
        make,
        also_changed=("score",),
    )


def stationary() -> Scenario:
    """A calibrated classifier with outcomes, a score and 5 features of various shapes."""

    def make(rng: random.Random, tau: int, length: int) -> Iterator[Step]:
        for i in range(length):
            score = rng.betavariate(1.0, 12.0)
            actual = int(rng.random() < score)
            pred = int(score >= 0.5)
            features: dict[str, Any] = {
                "amount": rng.lognormvariate(3.0, 1.0),
                "age": rng.gauss(40.0, 12.0),
                "ratio": rng.random(),
                "hour": rng.randrange(24),
                "merchant": _merchant(rng, MERCHANT_BEFORE),
            }
            signals: dict[str, float | str] = {f"feature:{k}": v for k, v in features.items()}
            signals["error"] = float(pred != actual)
            signals["score"] = score
            signals["estimated_error"] = min(score, 1.0 - score)
            yield [prediction(i, features, pred, score), outcome(i, actual)], signals

    return Scenario("stationary", "", None, make)


def scenarios() -> list[Scenario]:
    found = []
    for after in (0.075, 0.10, 0.20):
        found.append(classifier_error(0.05, after, gradual=False))
    for after in (0.075, 0.10, 0.20):
        found.append(classifier_error(0.05, after, gradual=True))
    found.append(regression_error(0.5, 1.0, "mean (bias 0.5 SD)"))
    found.append(regression_error(0.0, 1.5, "variance (SD x1.5)"))
    for change in ("mean", "variance", "shape", "merchant"):
        found.append(label_free(change))
    found.append(estimated_error())
    return found


SCENARIOS = {s.name: s for s in [*scenarios(), stationary()]}


# -- running ------------------------------------------------------------------------


class RawBank:
    """One river detector per signal (per category for categorical ones)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self.detectors: dict[str, Any] = {}

    def update(self, signal: str, value: float | str) -> bool:
        if isinstance(value, str):
            fired = False
            for category in MERCHANTS:
                fired |= self._one(f"{signal}={category}", float(value == category))
            return fired
        return self._one(signal, value)

    def _one(self, key: str, value: float) -> bool:
        detector = self.detectors.get(key)
        if detector is None:
            detector = self.detectors[key] = self.factory()
        detector.update(value)
        return bool(detector.drift_detected)


@dataclass
class RunResult:
    scenario: str
    seed: int
    # per detector: delay (observations of the target after the change) or None
    delay: dict[str, int | None] = field(default_factory=dict)
    false_alarms: dict[str, int] = field(default_factory=dict)
    # per detector: false alarms by signal (where the false alarms come from)
    by_signal: dict[str, dict[str, int]] = field(default_factory=dict)
    # stationary signal observations (every signal but the changed one after tau)
    observations: int = 0
    seconds: float = 0.0


def run_one(job: tuple[str, int, int, int, int]) -> RunResult:
    scenario_name, seed, tau, horizon, length = job
    scenario = SCENARIOS[scenario_name]
    start = time.process_time()
    rng = random.Random(seed * 1_000_003 + zlib.crc32(scenario.name.encode()))
    engine = Engine(Settings(), labeled_events=False)
    raw = {"adwin": RawBank(ADWIN), "page_hinkley": RawBank(PageHinkley)}
    result = RunResult(scenario.name, seed)
    result.delay = dict.fromkeys(DETECTORS)
    result.false_alarms = dict.fromkeys(DETECTORS, 0)
    result.by_signal = {name: {} for name in DETECTORS}
    changed = {scenario.target, *scenario.also_changed}
    target_seen = 0  # observations of the target signal after the change
    for i, (events, signals) in enumerate(scenario.make(rng, tau, length)):
        after = bool(scenario.target) and i >= tau
        if after:
            target_seen += 1
        # Signals the engine watches are those it has detectors for; the raw
        # detectors watch every value we hand them, counted the same way.
        result.observations += sum(1 for s in signals if not (after and s in changed))
        fired: set[str] = set()
        for event in events:
            for out in engine.process(event):
                if isinstance(out, DriftAlert) and out.severity == "drift":
                    fired.add(out.signal)
        outcomes = {"engine": fired}
        for name, bank in raw.items():
            outcomes[name] = {s for s, v in signals.items() if bank.update(s, v)}
        for name, signals_fired in outcomes.items():
            for signal in signals_fired:
                if after and signal == scenario.target:
                    if result.delay[name] is None and target_seen <= horizon:
                        result.delay[name] = target_seen
                elif not (after and signal in changed):
                    result.false_alarms[name] += 1
                    counts = result.by_signal[name]
                    counts[signal] = counts.get(signal, 0) + 1
        if after and target_seen >= horizon and all(d is not None for d in result.delay.values()):
            break
    result.seconds = time.process_time() - start
    return result


def fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=30, help="seeds per change stream")
    parser.add_argument("--stationary-seeds", type=int, default=5)
    parser.add_argument("--stationary-length", type=int, default=100_000, help="predictions")
    parser.add_argument("--tau", type=int, default=10_000, help="predictions before the change")
    parser.add_argument("--horizon", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default="", help="run only scenarios whose name contains this")
    args = parser.parse_args()

    change = [s for s in scenarios() if args.only in s.name]
    jobs: list[tuple[str, int, int, int, int]] = [
        (s.name, seed, args.tau, args.horizon, args.tau + args.horizon)
        for s in change
        for seed in range(args.seeds)
    ]
    still = stationary()
    jobs += [
        (still.name, seed, 0, 0, args.stationary_length) for seed in range(args.stationary_seeds)
    ]
    # Longest first, so the pool does not end waiting for one long job.
    jobs.sort(key=lambda job: -job[4])
    wall = time.perf_counter()
    with multiprocessing.Pool(args.jobs) as pool:
        results = pool.map(run_one, jobs, chunksize=1)
    wall = time.perf_counter() - wall

    report(results, [*change, still], args)
    cpu = sum(r.seconds for r in results)
    print(f"\n{len(jobs)} runs, {cpu:.0f} s CPU, {wall:.0f} s wall on {args.jobs} processes")


def report(results: list[RunResult], streams: list[Scenario], args: argparse.Namespace) -> None:
    by_scenario: dict[str, list[RunResult]] = {}
    for r in results:
        by_scenario.setdefault(r.scenario, []).append(r)
    # Achieved false-alarm rate per detector, over every stationary observation.
    total_obs = sum(r.observations for r in results)
    arl = {}
    for name in DETECTORS:
        alarms = sum(r.false_alarms[name] for r in results)
        arl[name] = total_obs / max(alarms, 1)

    print(
        f"\ndetection on generated streams: change at prediction {args.tau:,}, horizon "
        f"{args.horizon:,} observations, {args.seeds} seeds per stream; stationary: "
        f"{args.stationary_seeds} x {args.stationary_length:,} predictions\n"
    )
    header = (
        f"{'stream':<44} | {'detector':<12} | {'detected':>8} | {'median':>6} | {'mean':>6} "
        f"| {'FA/1M':>7} | {'bound':>6} | {'ratio':>5}"
    )
    print(header)
    print("-" * len(header))
    for s in streams:
        runs = by_scenario.get(s.name)
        if not runs:
            continue
        obs = sum(r.observations for r in runs)
        for name in DETECTORS:
            alarms = sum(r.false_alarms[name] for r in runs)
            fa = alarms / obs * 1e6
            if s.target:
                delays = [r.delay[name] for r in runs if r.delay[name] is not None]
                rate = f"{len(delays)}/{len(runs)}"
                median = statistics.median(delays) if delays else None
                mean = statistics.fmean(delays) if delays else None
                bound = math.log(arl[name]) / s.kl if s.kl else None
                ratio = mean / bound if mean is not None and bound else None
            else:
                rate, median, mean, bound, ratio = "", None, None, None, None
            print(
                f"{s.name:<44} | {name:<12} | {rate:>8} | {fmt(median):>6} | {fmt(mean):>6} "
                f"| {fa:7.2f} | {fmt(bound):>6} | {fmt(ratio, '.2f'):>5}"
            )
    print()
    for name in DETECTORS:
        alarms = sum(r.false_alarms[name] for r in results)
        where: dict[str, int] = {}
        for r in results:
            for signal, count in r.by_signal[name].items():
                where[signal] = where.get(signal, 0) + count
        top = ", ".join(f"{s} {c}" for s, c in sorted(where.items(), key=lambda kv: -kv[1])[:6])
        print(
            f"{name:<12}: {alarms} false alarms in {total_obs:,} stationary signal observations "
            f"({alarms / total_obs * 1e6:.2f} per million), ARL used for the bound "
            f"{arl[name]:,.0f}; by signal: {top or 'none'}"
        )


if __name__ == "__main__":
    sys.exit(main())
