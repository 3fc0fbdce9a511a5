"""Detection quality on generated streams with known change points.

    PYTHONPATH=. python benchmarks/detection.py [--seeds 30] [--stationary-seeds 5]
        [--stationary-length 100000] [--jobs 2] [--family-wise 20000000]
        [--calibration 1000000] [--replay-check 10]

Every stream runs through the engine's core exactly as ``stream-mlops replay``
runs it (events in file order), twice: with the default settings (``new``: the
GLR CUSUM bank, half the budget to the error) and with the previous defaults
(``old``: ADWIN on the error, score, estimated error and features, the budget
split equally); and, side by side on the same values, through river's
``ADWIN()`` and ``PageHinkley()`` with their default parameters, fed the raw
signal (for a categorical feature: one detector per category indicator, the
feature alarms when any of them does).

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
the CUSUM bound on the delay of a detector with that false-alarm rate that
knows both distributions (Lorden 1971). For the engine's two configurations
ARL is the changed signal's calibrated run length (1 / the false-alarm rate its
detectors were given from the model's budget); for raw river detectors, which
have no calibration, it is their achieved mean run length to a false alarm
over all stationary observations of the run (with no false alarm, the number
of observations). Gradual changes have no single KL: "-".

``--family-wise N`` also runs the new default alone on N stationary predictions
(the stationary stream: error, score, estimated error, five features) and
reports its false alarms per 10M predictions of the model against the budget
(1 per 10M). ``--calibration N`` runs each GLR model on N stationary values at a
high rate (1e-4, so that false alarms can be counted) and reports the achieved
rate and average run length next to the target. ``--replay-check S`` runs
``stream-mlops replay`` (the CLI, default configuration) on S generated files
per change: a classifier's error steps at prediction 20,000 of 40,000, outcomes
arrive 20 predictions late.

``--slices S`` runs the slice signals (``slices = ["merchant_category"]``,
``slice_top_k = 50``, otherwise the defaults) on S seeds of a stream with 50
merchant categories of 2% each and 1% errors everywhere, where at prediction
50,000 the error of one category ("jewelry") goes to 37% (the aggregate error
from 1% to about 1.7%); outcomes follow their prediction at once. Reported:
the share of seeds where ``slice:merchant_category=jewelry:error`` alarmed
within 2,000 of that category's labeled events, the delay in those events,
and alarms of every other signal. ``--slices-stationary N`` runs N stationary
predictions of the same stream (no change; 4 streams of N / 4) and reports the
alarms on slice signals per million predictions.

``--depth S`` gives a row per monitoring-depth signal (issue 16: data quality,
outcomes, class-conditional errors, slices) at S seeds, with the default
configuration only. The rows' streams come in families (``FAMILIES``): a
calibrated classifier with five features (``cards``, change at prediction
10,000), a fraud classifier at 1% prevalence (``fraud``, at 60,000: enough
frauds before it for the miss rate's first 500), a regression whose target
and prediction move together (``regression``, at 10,000), the slice stream
above (``slices``, at 50,000), and a scored classifier whose outcomes stop
after a labeled warm-up of 1,000 predictions (the default
``estimate_calibration_events``), so that ``estimated_error`` is calibrated
and then watched without labels (``estimate``, at 10,000): traffic moves
towards the decision boundary (the error 14% -> 26%), or between two
confident regions that are wrong equally often (the error stays 14%: a quiet
row, ``DepthRow.quiet``, whose "detected" seeds are alarms it must not
raise). A family's changes share one pre-change prefix per seed: the engine
runs it once, a copy continues with each change, and stops when the row's
signal alarms or after the family's horizon (10,000, 40,000, 10,000
predictions; 2,000 of the slice's labeled events; 10,000 predictions). Reported per
row: detected seeds / seeds, median and p90 delay (predictions after the
change, or the slice's labeled events), and over the stationary data (every
prefix, and ``--depth-stationary`` more predictions per family) the false
alarms of the row's signal kind (``quality:<kind>`` over every feature,
``slice:error`` over every slice value, ``estimated_error`` over every scored
classifier's stream), their number per million predictions of the
families that have that kind, and with none the 95% upper bound 3 / N (the
rule of three). Alarms on other signals after the change are listed, not
counted as false alarms (the change may move them). ``--depth-examples``
prints each row's first alert of seed 0 as the engine emits it. A new signal
gets its row with one ``DepthRow`` (and its change in a family's ``make``).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from river.drift import ADWIN, PageHinkley

from stream_mlops.config import Settings, parse_settings
from stream_mlops.detectors import GlrDetector
from stream_mlops.engine import Engine
from stream_mlops.events import DriftAlert, InputEvent, OutcomeEvent, PredictionEvent, encode

T0 = 1_800_000_000.0
MERCHANTS = ("grocery", "fuel", "travel", "online", "cash")
MERCHANT_BEFORE = (0.40, 0.25, 0.15, 0.12, 0.08)
MERCHANT_AFTER = (0.32, 0.25, 0.15, 0.12, 0.16)
RAMP = 5_000  # predictions over which a gradual change ramps up
DETECTORS = ("old", "new", "adwin", "page_hinkley")
ENGINES = ("old", "new")
# The defaults before the GLR bank: ADWIN everywhere, the budget split equally.
OLD_DEFAULTS = {
    "defaults": {
        "retrain_budget_share": None,
        "detectors": {
            signal: [{"name": "adwin"}]
            for signal in ("error", "estimated_error", "score", "feature:*")
        },
    }
}

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
    # Predictions before the change and horizon, where --tau / --horizon give too
    # few observations of the signal (a class-conditional error at 1% prevalence).
    tau: int | None = None
    horizon: int | None = None


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


def label_free(change: str, shift: float = 0.25) -> Scenario:
    """4 N(0, 1) features and a categorical one, no outcomes; one changes at tau."""

    def x0(rng: random.Random, changed: bool) -> float:
        if not changed or change in ("merchant",):
            return rng.gauss(0.0, 1.0)
        if change == "mean":
            return rng.gauss(shift, 1.0)
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
        "mean": normal_pdf(shift, 1.0),
        "variance": normal_pdf(0.0, 1.5),
        "shape": bimodal_pdf,
    }[change]
    label = {"mean": f"mean +{shift:g} SD", "variance": "SD x1.5", "shape": "shape (bimodal)"}[
        change
    ]
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


def _card_features(rng: random.Random) -> dict[str, Any]:
    """Five features of different shapes (lognormal, normal, uniform, integer, categorical)."""
    return {
        "amount": rng.lognormvariate(3.0, 1.0),
        "age": rng.gauss(40.0, 12.0),
        "ratio": rng.random(),
        "hour": rng.randrange(24),
        "merchant": _merchant(rng, MERCHANT_BEFORE),
    }


def stationary() -> Scenario:
    """A calibrated classifier with outcomes, a score and 5 features of various shapes."""

    def make(rng: random.Random, tau: int, length: int) -> Iterator[Step]:
        for i in range(length):
            score = rng.betavariate(1.0, 12.0)
            actual = int(rng.random() < score)
            pred = int(score >= 0.5)
            features: dict[str, Any] = _card_features(rng)
            signals: dict[str, float | str] = {f"feature:{k}": v for k, v in features.items()}
            signals["error"] = float(pred != actual)
            signals["score"] = score
            signals["estimated_error"] = min(score, 1.0 - score)
            yield [prediction(i, features, pred, score), outcome(i, actual)], signals

    return Scenario("stationary", "", None, make)


def data_quality(kind: str) -> Scenario:
    """5 features; from the change on, one of them breaks (stream_mlops.quality)."""
    problems = {
        "missing": ("amount 60% null", "quality:amount:missing"),
        "type": ("amount as strings", "quality:amount:type"),
        "range": ("1% of amount at -1e9", "quality:amount:range"),
        "unseen": ("5% unseen merchant", "quality:merchant:unseen"),
    }
    label, target = problems[kind]

    def make(rng: random.Random, tau: int, length: int) -> Iterator[Step]:
        for i in range(length):
            features: dict[str, Any] = _card_features(rng)
            problem = False
            if i >= tau:
                draw = rng.random()
                if kind == "missing" and draw < 0.6:
                    features["amount"], problem = None, True
                elif kind == "type":
                    features["amount"], problem = f"{features['amount']:.2f}", True
                elif kind == "range" and draw < 0.01:
                    features["amount"], problem = -1e9, True
                elif kind == "unseen" and draw < 0.05:
                    features["merchant"], problem = "crypto", True
            yield [prediction(i, features, 0, None)], {target: float(problem)}

    return Scenario(
        f"quality: {label}",
        target,
        None,  # the rate before is 0: no KL, no bound
        make,
        # The feature's own distribution moves too.
        also_changed=("feature:merchant",) if kind == "unseen" else (),
    )


def fraud(change: str) -> Scenario:
    """A fraud classifier at 1% prevalence: the fraud rate or the recall changes."""
    before = (0.01, 0.8)
    after = (0.03, 0.8) if change == "prior" else (0.01, 0.4)
    target = "outcome" if change == "prior" else "miss_rate"

    def make(rng: random.Random, tau: int, length: int) -> Iterator[Step]:
        for i in range(length):
            prevalence, recall = before if i < tau else after
            actual = rng.random() < prevalence
            flagged = rng.random() < (recall if actual else 0.02)
            score = rng.uniform(0.5, 1.0) if flagged else rng.uniform(0.0, 0.5)
            signals: dict[str, float | str] = {
                "outcome": float(actual),
                "error": float(flagged != actual),
            }
            signals["miss_rate" if actual else "false_positive_rate"] = float(flagged != actual)
            events: list[InputEvent] = [
                prediction(i, {"amount": rng.lognormvariate(3.0, 1.0)}, int(flagged), score),
                outcome(i, int(actual)),
            ]
            yield events, signals

    if change == "prior":
        return Scenario(
            "outcome: fraud rate 1% -> 3%",
            target,
            kl_bernoulli(0.03, 0.01),
            make,
            # More frauds: more errors and misses, a higher score.
            also_changed=("error", "score", "false_positive_rate", "miss_rate"),
        )
    # Enough frauds before the change for min_observations (500) of the miss rate.
    return Scenario(
        "miss_rate: recall 80% -> 40% at 1% fraud",
        target,
        kl_bernoulli(0.6, 0.2),
        make,
        also_changed=("error", "score"),
        tau=60_000,
        horizon=40_000,
    )


def scenarios() -> list[Scenario]:
    found = []
    for after in (0.075, 0.10, 0.20):
        found.append(classifier_error(0.05, after, gradual=False))
    for after in (0.075, 0.10, 0.20):
        found.append(classifier_error(0.05, after, gradual=True))
    found.append(regression_error(0.5, 1.0, "mean (bias 0.5 SD)"))
    found.append(regression_error(0.0, 1.5, "variance (SD x1.5)"))
    for shift in (0.25, 0.5, 1.0):
        found.append(label_free("mean", shift))
    for change in ("variance", "shape", "merchant"):
        found.append(label_free(change))
    found.append(estimated_error())
    for kind in ("missing", "type", "range", "unseen"):
        found.append(data_quality(kind))
    found.append(fraud("prior"))
    found.append(fraud("recall"))
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
    # the engines: the changed signal's calibrated false alarms per observation
    calibrated: dict[str, float] = field(default_factory=dict)
    # stationary signal observations (every signal but the changed one after tau)
    observations: int = 0
    seconds: float = 0.0


def _calibrated_rate(engine: Engine, signal: str) -> float | None:
    """False alarms per observation the engine's budget gave ``signal``'s detectors."""
    state = engine._models.get(("m", "v1"))
    if state is None or not signal:
        return None
    model = engine.settings.model("m")
    per = state.retrain_false_alarm_rate if model.retrains_on(signal) else state.false_alarm_rate
    if signal.startswith("quality:"):
        return per  # one detector each
    if signal.startswith("feature:"):
        name = signal.removeprefix("feature:")
        track = state.features.get(name) or state.categorical.get(name)
    elif signal in state.outcomes:
        track = state.outcomes[signal]
    else:
        track = getattr(state, signal, None)
    if track is None:
        return None
    return None if per is None else per * len(track.detectors)


def run_one(job: tuple[str, int, int, int, int, tuple[str, ...]]) -> RunResult:
    scenario_name, seed, tau, horizon, length, names = job
    scenario = SCENARIOS[scenario_name]
    start = time.process_time()
    rng = random.Random(seed * 1_000_003 + zlib.crc32(scenario.name.encode()))
    engines = {
        "old": Engine(parse_settings(OLD_DEFAULTS), labeled_events=False),
        "new": Engine(Settings(), labeled_events=False),
    }
    engines = {name: engine for name, engine in engines.items() if name in names}
    raw = {"adwin": RawBank(ADWIN), "page_hinkley": RawBank(PageHinkley)}
    raw = {name: bank for name, bank in raw.items() if name in names}
    result = RunResult(scenario.name, seed)
    result.delay = dict.fromkeys(names)
    result.false_alarms = dict.fromkeys(names, 0)
    result.by_signal = {name: {} for name in names}
    changed = {scenario.target, *scenario.also_changed}
    target_seen = 0  # observations of the target signal after the change
    for i, (events, signals) in enumerate(scenario.make(rng, tau, length)):
        after = bool(scenario.target) and i >= tau
        if after:
            target_seen += 1
        # Signals the engine watches are those it has detectors for; the raw
        # detectors watch every value we hand them, counted the same way.
        result.observations += sum(1 for s in signals if not (after and s in changed))
        outcomes: dict[str, set[str]] = {}
        for name, engine in engines.items():
            fired: set[str] = set()
            for event in events:
                for out in engine.process(event):
                    if isinstance(out, DriftAlert) and out.severity == "drift":
                        fired.add(out.signal)
            outcomes[name] = fired
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
    for name, engine in engines.items():
        rate = _calibrated_rate(engine, scenario.target)
        if rate is not None:
            result.calibrated[name] = rate
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
    parser.add_argument(
        "--family-wise", type=int, default=0, help="stationary predictions for the new default"
    )
    parser.add_argument("--calibration", type=int, default=0, help="values per GLR model")
    parser.add_argument("--replay-check", type=int, default=0, help="seeds per change")
    parser.add_argument("--cost", type=int, default=0, help="values per detector, us per update")
    parser.add_argument("--skip-table", action="store_true", help="only the extra checks")
    parser.add_argument("--slices", type=int, default=0, help="seeds of the slice stream")
    parser.add_argument(
        "--slices-stationary", type=int, default=0, help="stationary predictions, 50 slices"
    )
    parser.add_argument(
        "--depth", type=int, default=0, help="seeds per monitoring-depth row (issue 16)"
    )
    parser.add_argument(
        "--depth-examples",
        action="store_true",
        help="print each --depth row's first alert (seed 0) as the engine emits it",
    )
    parser.add_argument(
        "--depth-stationary",
        type=int,
        default=1_000_000,
        help="stationary predictions per stream family of --depth, beyond the prefixes",
    )
    args = parser.parse_args()

    wall = time.perf_counter()
    cpu = 0.0
    with multiprocessing.Pool(args.jobs) as pool:
        if not args.skip_table:
            cpu += table(pool, args)
        if args.calibration:
            cpu += calibration(pool, args.calibration)
        if args.family_wise:
            cpu += family_wise(pool, args.family_wise, args.jobs)
        if args.replay_check:
            cpu += replay_check(pool, args.replay_check)
        if args.slices or args.slices_stationary:
            cpu += slices(pool, args.slices, args.slices_stationary)
        if args.depth:
            cpu += depth(pool, args.depth, args.depth_stationary, args.only)
    if args.cost:
        cpu += cost(args.cost)
    if args.depth_examples:
        cpu += depth_examples(args.only)
    wall = time.perf_counter() - wall
    print(f"\n{cpu:.0f} s CPU, {wall:.0f} s wall on {args.jobs} processes")


def table(pool: Any, args: argparse.Namespace) -> float:
    change = [s for s in scenarios() if args.only in s.name]
    jobs: list[tuple[str, int, int, int, int, tuple[str, ...]]] = [
        (
            s.name,
            seed,
            s.tau or args.tau,
            s.horizon or args.horizon,
            (s.tau or args.tau) + (s.horizon or args.horizon),
            DETECTORS,
        )
        for s in change
        for seed in range(args.seeds)
    ]
    still = stationary()
    jobs += [
        (still.name, seed, 0, 0, args.stationary_length, DETECTORS)
        for seed in range(args.stationary_seeds)
    ]
    # Longest first, so the pool does not end waiting for one long job.
    jobs.sort(key=lambda job: -job[4])
    results = pool.map(run_one, jobs, chunksize=1)
    report(results, [*change, still], args)
    return sum(r.seconds for r in results)


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
        "old: the previous defaults (ADWIN, equal split); new: the defaults (GLR bank); "
        "adwin, page_hinkley: river's, on their defaults\n"
        "bound: ln(ARL) / KL, ARL calibrated (old, new) or achieved (adwin, page_hinkley)\n"
    )
    header = (
        f"{'stream':<40} | {'detector':<12} | {'detected':>8} | {'median':>6} | {'mean':>6} "
        f"| {'FA':>4} | {'FA/1M':>7} | {'ARL':>8} | {'bound':>6} | {'ratio':>5}"
    )
    print(header)
    print("-" * len(header))
    slower: list[str] = []
    for s in streams:
        runs = by_scenario.get(s.name)
        if not runs:
            continue
        obs = sum(r.observations for r in runs)
        means: dict[str, float | None] = {}
        alarms_of: dict[str, int] = {}
        for name in DETECTORS:
            alarms = sum(r.false_alarms[name] for r in runs)
            alarms_of[name] = alarms
            fa = alarms / obs * 1e6
            calibrated = [r.calibrated[name] for r in runs if name in r.calibrated]
            run_length = 1.0 / statistics.fmean(calibrated) if calibrated else arl[name]
            if s.target:
                delays = [r.delay[name] for r in runs if r.delay[name] is not None]
                rate = f"{len(delays)}/{len(runs)}"
                median = statistics.median(delays) if delays else None
                mean = statistics.fmean(delays) if delays else None
                bound = math.log(run_length) / s.kl if s.kl else None
                ratio = mean / bound if mean is not None and bound else None
            else:
                rate, median, mean, bound, ratio = "", None, None, None, None
            means[name] = mean
            print(
                f"{s.name:<40} | {name:<12} | {rate:>8} | {fmt(median):>6} | {fmt(mean):>6} "
                f"| {alarms:>4} | {fa:7.2f} | {run_length:8.1e} | {fmt(bound):>6} "
                f"| {fmt(ratio, '.2f'):>5}"
            )
        new, adwin = means.get("new"), means.get("adwin")
        quiet = alarms_of.get("new") == 0 and alarms_of.get("adwin") == 0
        if s.target and quiet and new is not None and adwin is not None and new > adwin:
            slower.append(f"{s.name} ({new:,.0f} vs {adwin:,.0f})")
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
            f"({alarms / total_obs * 1e6:.2f} per million); by signal: {top or 'none'}"
        )
    print(
        "\nnew default slower than raw ADWIN where neither raised a false alarm: "
        + ("; ".join(slower) if slower else "none")
    )


# -- calibration by simulation --------------------------------------------------------

CALIBRATION_RATE = 1e-4


def _calibration_one(job: tuple[str, int, int]) -> tuple[str, int, int, float]:
    kind, n, seed = job
    rng = random.Random(seed)
    params, draw = CALIBRATION_STREAMS[kind]
    detector = GlrDetector(false_alarm_rate=CALIBRATION_RATE, **params)
    start = time.process_time()
    alarms = sum(1 for _ in range(n) if detector.update(draw(rng)))
    return kind, n, alarms, time.process_time() - start


def _codes(rng: random.Random) -> float:
    return float(MERCHANTS.index(_merchant(rng, MERCHANT_BEFORE)))


CALIBRATION_STREAMS: dict[str, tuple[dict[str, Any], Callable[[random.Random], float]]] = {
    "bernoulli up, 0/1 at 5%": (
        {"model": "bernoulli", "direction": "up"},
        lambda r: float(r.random() < 0.05),
    ),
    "bernoulli both, 0/1 at 30%": (
        {"model": "bernoulli", "direction": "both"},
        lambda r: float(r.random() < 0.3),
    ),
    "normal both, continuous ranks": ({"model": "normal"}, lambda r: r.random()),
    "normal both, mid-ranks of 24 values": (
        {"model": "normal"},
        lambda r: (int(r.random() * 24) + 0.5) / 24,
    ),
    "normal both, a 5% flag's mid-ranks": (
        {"model": "normal"},
        lambda r: 0.975 if r.random() < 0.05 else 0.475,
    ),
    "halfnormal up, continuous ranks": (
        {"model": "halfnormal", "direction": "up"},
        lambda r: r.random(),
    ),
    "categorical, 5 categories": ({"model": "categorical"}, _codes),
}


def calibration(pool: Any, n: int) -> float:
    jobs = [(kind, n, seed) for kind in CALIBRATION_STREAMS for seed in (1, 2)]
    results = pool.map(_calibration_one, jobs, chunksize=1)
    print(
        f"\nGLR calibration by simulation: target {CALIBRATION_RATE:g} false alarms per value "
        f"(ARL {1 / CALIBRATION_RATE:,.0f}), {2 * n:,} stationary values per model"
    )
    print(f"{'stream':<34} | {'alarms':>6} | {'per value':>9} | {'ARL':>9} | {'/target':>7}")
    for kind in CALIBRATION_STREAMS:
        mine = [r for r in results if r[0] == kind]
        values = sum(r[1] for r in mine)
        alarms = sum(r[2] for r in mine)
        rate = alarms / values
        run_length = values / alarms if alarms else math.inf
        print(
            f"{kind:<34} | {alarms:>6} | {rate:9.2e} | {run_length:9,.0f} | "
            f"{rate / CALIBRATION_RATE:7.2f}"
        )
    return sum(r[3] for r in results)


# -- cost per update --------------------------------------------------------------------


def cost(n: int) -> float:
    """CPU microseconds per update, side by side in one process (best of 3)."""
    from stream_mlops import detectors

    rng = random.Random(0)
    ranks = [rng.random() for _ in range(n)]
    errors = [float(rng.random() < 0.05) for _ in range(n)]
    codes = [_codes(rng) for _ in range(n)]
    rows: list[tuple[str, Callable[[], Any], list[float]]] = [
        ("river ADWIN(), ranks", ADWIN, ranks),
        (
            "adwin adapter (engine delta), ranks",
            lambda: detectors.build("adwin", {"delta": 1e-5}),
            ranks,
        ),
        ("distribution, ranks", lambda: detectors.build("distribution", {}), ranks),
        ("glr normal both (features, score)", GlrDetector, ranks),
        (
            "glr halfnormal up (regression error)",
            lambda: GlrDetector(model="halfnormal", direction="up"),
            ranks,
        ),
        ("river ADWIN(), 0/1 at 5%", ADWIN, errors),
        (
            "adwin adapter (engine delta), 0/1",
            lambda: detectors.build("adwin", {"delta": 5e-5}),
            errors,
        ),
        (
            "glr bernoulli up (classifier error)",
            lambda: GlrDetector(model="bernoulli", direction="up"),
            errors,
        ),
        ("glr categorical (5 categories)", lambda: GlrDetector(model="categorical"), codes),
    ]
    total = 0.0
    print(f"\ncost per update, {n:,} values each, CPU time, best of 3")
    for label, make, values in rows:
        best = math.inf
        for _ in range(3):
            detector = make()
            start = time.process_time()
            for x in values:
                detector.update(x)
            spent = time.process_time() - start
            total += spent
            best = min(best, spent)
        print(f"{label:<40} {best / n * 1e6:6.2f} us")
    return total


# -- the family-wise false-alarm rate of the new default -----------------------------


def family_wise(pool: Any, predictions: int, jobs: int) -> float:
    still = stationary()
    chunks = max(jobs, 1) * 2
    size = predictions // chunks
    work = [(still.name, 1000 + seed, 0, 0, size, ("new",)) for seed in range(chunks)]
    results = pool.map(run_one, work, chunksize=1)
    alarms = sum(r.false_alarms["new"] for r in results)
    total = size * chunks
    where: dict[str, int] = {}
    for r in results:
        for signal, count in r.by_signal["new"].items():
            where[signal] = where.get(signal, 0) + count
    cpu = sum(r.seconds for r in results)
    print(
        f"\nfamily-wise, new default: {alarms} false alarms in {total:,} stationary "
        f"predictions of one model ({chunks} streams; error, score, estimated error and "
        f"5 features): {alarms / total * 1e7:.2f} per 10M predictions (budget 1); "
        f"by signal: {where or 'none'}; {cpu:,.0f} s CPU"
    )
    return cpu


# -- slices ------------------------------------------------------------------------

SLICE_VALUES = ["jewelry", *(f"cat{k:02d}" for k in range(49))]
SLICE_TAU = 50_000
SLICE_HORIZON = 2_000  # labeled events of the failing category after the change
SLICE_SETTINGS = {"defaults": {"slices": ["merchant_category"], "slice_top_k": 50}}


def _slice_one(job: tuple[int, int, bool]) -> tuple[int | None, int, int, dict[str, int], float]:
    """(delay in the category's labeled events or None, predictions, slice alarms
    elsewhere, alarms by signal, CPU seconds) of one slice stream."""
    seed, n, change = job
    started = time.process_time()
    rng = random.Random(zlib.crc32(b"slices") + seed)
    engine = Engine(parse_settings(SLICE_SETTINGS))
    target = "slice:merchant_category=jewelry:error"
    delay: int | None = None
    after = 0
    others = 0
    by_signal: dict[str, int] = {}
    for i in range(n):
        category = SLICE_VALUES[rng.randrange(len(SLICE_VALUES))]
        label = int(rng.random() < 0.5)
        failing = change and i >= SLICE_TAU and category == "jewelry"
        wrong = rng.random() < (0.37 if failing else 0.01)
        features = {"merchant_category": category}
        outputs = engine.process(prediction(i, features, label, rng.random()))
        if failing:
            after += 1
        outputs += engine.process(outcome(i, int(label != wrong)))
        for alert in outputs:
            if not isinstance(alert, DriftAlert) or alert.severity != "drift":
                continue
            by_signal[alert.signal] = by_signal.get(alert.signal, 0) + 1
            if alert.signal == target and failing and delay is None:
                delay = after
            elif alert.signal.startswith("slice:"):
                others += 1
        if change and (delay is not None or after >= SLICE_HORIZON):
            break
    return delay, i + 1, others, by_signal, time.process_time() - started


def slices(pool: Any, seeds: int, stationary_n: int) -> float:
    cpu = 0.0
    if seeds:
        # enough predictions for SLICE_HORIZON of the category's events after the change
        n = SLICE_TAU + SLICE_HORIZON * len(SLICE_VALUES) * 2
        results = pool.map(_slice_one, [(seed, n, True) for seed in range(seeds)], chunksize=1)
        delays = [r[0] for r in results if r[0] is not None]
        others = sum(r[2] for r in results)
        before = sum(r[3].get("error", 0) for r in results)
        cpu += sum(r[4] for r in results)
        print(
            f"\nslices: one of 50 categories 1% -> 37% errors at prediction {SLICE_TAU:,}, "
            f"{seeds} seeds"
        )
        print(
            f"{'signal':<40} | {'detected':>8} | {'median':>6} | {'mean':>6} | {'max':>5} | "
            f"{'other slice alarms':>18} | {'aggregate error alarms':>22}"
        )
        print(
            f"{'slice:merchant_category=jewelry:error':<40} | {len(delays) / seeds:8.0%} | "
            f"{fmt(statistics.median(delays) if delays else None):>6} | "
            f"{fmt(statistics.mean(delays) if delays else None):>6} | "
            f"{fmt(max(delays) if delays else None):>5} | {others:>18} | {before:>22}"
        )
        print("(delay: the category's labeled events from the change to the alarm)")
    if stationary_n:
        chunks = 4
        work = [(1000 + seed, stationary_n // chunks, False) for seed in range(chunks)]
        results = pool.map(_slice_one, work, chunksize=1)
        total = sum(r[1] for r in results)
        slice_alarms = sum(r[2] for r in results)
        where: dict[str, int] = {}
        for r in results:
            for signal, count in r[3].items():
                where[signal] = where.get(signal, 0) + count
        cpu += sum(r[4] for r in results)
        print(
            f"\nslices, stationary: {total:,} predictions with 50 slice values, "
            f"{slice_alarms} alarms on slice signals ({slice_alarms / total * 1e6:.2f} per "
            f"million predictions); all alarms by signal: {where or 'none'}"
        )
    return cpu


# -- monitoring depth (issue 16): a row per signal kind --------------------------------
#
# Each family is one generated stream; its changes share the pre-change prefix
# of a seed: the engine runs the prefix once, is copied at the change point and
# each copy continues with one change until its signal alarms (or the horizon
# passes). The prefix is stationary data, counted with the family's stationary
# streams for the false-alarm column. Only the default configuration runs
# here (no raw river detectors): the rows are about the engine's signals.
# Parts 5 and 6 of the issue add a row with one DepthRow (and, for a new kind
# of change, its branch in a family's make, or one Family).

# (events, counts): whether the prediction counts in the row's delay unit
DepthStep = tuple[list[InputEvent], bool]


@dataclass(frozen=True)
class Family:
    name: str
    tau: int  # predictions before the change
    horizon: int  # delay units after it; a change not found by then is missed
    settings: dict[str, Any]
    # (rng, start, stop, change): predictions start..stop-1; change None: stationary
    make: Callable[[random.Random, int, int, str | None], Iterator[DepthStep]]
    # signal kinds (signal_kind) the engine watches on this stream
    watched: tuple[str, ...]


@dataclass(frozen=True)
class DepthRow:
    label: str
    family: str
    change: str
    target: str  # the signal that must alarm
    unit: str = "predictions"
    # A change the target must not alarm on (its "detected" seeds are failures).
    quiet: bool = False


def signal_kind(signal: str) -> str:
    """quality:<feature>:<kind> -> quality:<kind>; slice:<f>=<v>:<s> -> slice:<s>."""
    if signal.startswith("quality:") and signal != "quality:schema":
        return "quality:" + signal.rsplit(":", 1)[1]
    if signal.startswith("slice:"):
        return "slice:" + signal.rsplit(":", 1)[1]
    if signal.startswith("feature:"):
        return "feature"
    return signal


QUALITY_KINDS = tuple(f"quality:{k}" for k in ("missing", "type", "range", "unseen", "schema"))
CLASS_KINDS = ("outcome", "miss_rate", "false_positive_rate")


def _cards(rng: random.Random, start: int, stop: int, change: str | None) -> Iterator[DepthStep]:
    """A calibrated classifier (outcomes at once, a score, 5 features); from the
    change on, one feature breaks."""
    for i in range(start, stop):
        score = rng.betavariate(1.0, 12.0)
        actual = int(rng.random() < score)
        features: dict[str, Any] = _card_features(rng)
        draw = rng.random()
        if change == "missing" and draw < 0.6:
            features["amount"] = None
        elif change == "type":
            features["amount"] = f"{features['amount']:.2f}"
        elif change == "range" and draw < 0.01:
            features["amount"] = -1e9
        elif change == "unseen" and draw < 0.05:
            features["merchant"] = "crypto"
        elif change == "schema":
            features["device"] = "mobile" if draw < 0.5 else "web"
        yield [prediction(i, features, int(score >= 0.5), score), outcome(i, actual)], True


def _fraud(rng: random.Random, start: int, stop: int, change: str | None) -> Iterator[DepthStep]:
    """A fraud classifier: 1% frauds, recall 80%, 2% false positives, unless changed."""
    prevalence = 0.03 if change == "prior" else 0.01
    recall = 0.4 if change == "recall" else 0.8
    false_positives = 0.04 if change == "fpr" else 0.02
    for i in range(start, stop):
        actual = rng.random() < prevalence
        flagged = rng.random() < (recall if actual else false_positives)
        score = rng.uniform(0.5, 1.0) if flagged else rng.uniform(0.0, 0.5)
        features = {"amount": rng.lognormvariate(3.0, 1.0)}
        yield [prediction(i, features, int(flagged), score), outcome(i, int(actual))], True


def _regression(
    rng: random.Random, start: int, stop: int, change: str | None
) -> Iterator[DepthStep]:
    """A regression whose target moves with its inputs; the model follows (the
    error does not change), so only the outcome and prediction signals move."""
    shift = 2.5 if change == "target" else 0.0  # 0.25 SD of the target
    for i in range(start, stop):
        pred = rng.gauss(100.0 + shift, 10.0)
        features = {"x": (pred - 100.0) / 10.0}
        yield [prediction(i, features, pred, None), outcome(i, pred + rng.gauss(0.0, 1.0))], True


def _slices(rng: random.Random, start: int, stop: int, change: str | None) -> Iterator[DepthStep]:
    """50 merchant categories of 2% each at 1% errors; from the change on, the
    error of "jewelry" is 37%. The delay unit is that category's labeled events."""
    for i in range(start, stop):
        category = SLICE_VALUES[rng.randrange(len(SLICE_VALUES))]
        label = int(rng.random() < 0.5)
        failing = change == "jewelry" and category == "jewelry"
        wrong = rng.random() < (0.37 if failing else 0.01)
        features = {"merchant_category": category}
        events: list[InputEvent] = [
            prediction(i, features, label, rng.random()),
            outcome(i, int(label != wrong)),
        ]
        yield events, category == "jewelry"


# The estimate stream (tests/test_estimation.py's regions): confident negatives
# (scores 0-0.4, positive 10% of the time), confident positives (0.9-1.0, 90%)
# and the decision boundary (0.4-0.6, 50%); each confident region is wrong 10%
# of the time, the boundary 50%. Weights of (negative, positive, boundary):
ESTIMATE_REGIONS = ((0.0, 0.4, 0.1), (0.9, 1.0, 0.9), (0.4, 0.6, 0.5))
ESTIMATE_WEIGHTS = {
    None: (0.3, 0.6, 0.1),  # 14% errors
    "degrade": (0.2, 0.4, 0.4),  # four times the boundary's traffic: 26% errors
    "flat": (0.7, 0.2, 0.1),  # positives become negatives: still 14% errors
}
ESTIMATE_WARM_UP = 1_000  # labeled predictions: the default estimate_calibration_events


def _estimate(rng: random.Random, start: int, stop: int, change: str | None) -> Iterator[DepthStep]:
    """A classifier whose outcomes stop after its labeled warm-up (which
    calibrates the scores); from the change on, traffic moves between regions."""
    weights = ESTIMATE_WEIGHTS[change]
    for i in range(start, stop):
        low, high, positive_rate = rng.choices(ESTIMATE_REGIONS, weights)[0]
        score = rng.uniform(low, high)
        events: list[InputEvent] = [
            prediction(i, {"amount": rng.gauss(100.0 * score, 5.0)}, int(score >= 0.5), score)
        ]
        if i < ESTIMATE_WARM_UP:
            events.append(outcome(i, int(rng.random() < positive_rate)))
        yield events, True


FAMILIES = {
    f.name: f
    for f in (
        Family(
            "cards",
            10_000,
            10_000,
            {},
            _cards,
            (*QUALITY_KINDS, *CLASS_KINDS, "estimated_error"),
        ),
        # Enough frauds before the change for min_observations (500) of the miss rate.
        Family(
            "fraud",
            60_000,
            40_000,
            {},
            _fraud,
            (
                "quality:missing",
                "quality:type",
                "quality:range",
                "quality:schema",
                *CLASS_KINDS,
                "estimated_error",
            ),
        ),
        Family(
            "regression",
            10_000,
            10_000,
            {},
            _regression,
            ("quality:missing", "quality:type", "quality:range", "quality:schema", "outcome"),
        ),
        Family(
            "slices",
            SLICE_TAU,
            SLICE_HORIZON,
            SLICE_SETTINGS,
            _slices,
            # a string feature only: no range
            (
                "slice:error",
                "slice:score",
                *QUALITY_KINDS[:2],
                *QUALITY_KINDS[3:],
                *CLASS_KINDS,
                "estimated_error",
            ),
        ),
        # A labeled warm-up, then predictions only; the change well after the
        # calibration (the estimated error's track starts afresh there).
        Family(
            "estimate",
            10_000,
            10_000,
            {},
            _estimate,
            (*QUALITY_KINDS[:3], QUALITY_KINDS[4], "estimated_error"),
        ),
    )
}

DEPTH_ROWS = (
    DepthRow("quality: amount 60% null", "cards", "missing", "quality:amount:missing"),
    DepthRow("quality: amount as strings", "cards", "type", "quality:amount:type"),
    DepthRow("quality: 1% of amount at -1e9", "cards", "range", "quality:amount:range"),
    DepthRow("quality: 5% unseen merchant", "cards", "unseen", "quality:merchant:unseen"),
    DepthRow("quality: a new feature (schema)", "cards", "schema", "quality:schema"),
    DepthRow("outcome: fraud rate 1% -> 3%", "fraud", "prior", "outcome"),
    DepthRow("outcome: regression target +0.25 SD", "regression", "target", "outcome"),
    DepthRow("miss_rate: recall 80% -> 40%, 1% fraud", "fraud", "recall", "miss_rate"),
    DepthRow("false_positive_rate: 2% -> 4%, 1% fraud", "fraud", "fpr", "false_positive_rate"),
    DepthRow(
        "slice: one category 1% -> 37% errors",
        "slices",
        "jewelry",
        "slice:merchant_category=jewelry:error",
        "labeled events of the slice",
    ),
    DepthRow("estimated_error: 14% -> 26% (no labels)", "estimate", "degrade", "estimated_error"),
    DepthRow(
        "estimated_error quiet: flat at 14%",
        "estimate",
        "flat",
        "estimated_error",
        quiet=True,
    ),
)


@dataclass
class DepthResult:
    family: str
    seed: int
    delay: dict[str, int | None] = field(default_factory=dict)  # by change
    # alarms on other signals after the change (not false alarms: it may move them)
    after: dict[str, dict[str, int]] = field(default_factory=dict)
    stationary: int = 0  # stationary predictions (the prefix, or a stationary stream)
    alarms: dict[str, int] = field(default_factory=dict)  # stationary alarms by signal
    seconds: float = 0.0


def _alarms(engine: Engine, events: list[InputEvent]) -> list[str]:
    return [
        out.signal
        for event in events
        for out in engine.process(event)
        if isinstance(out, DriftAlert) and out.severity == "drift"
    ]


def _depth_one(job: tuple[str, int, tuple[str, ...], int]) -> DepthResult:
    """One seed of a family: the prefix once, then each change from a copy of
    the engine; or (no changes) ``length`` stationary predictions."""
    name, seed, changes, length = job
    family = FAMILIES[name]
    started = time.process_time()
    result = DepthResult(name, seed)
    rng = random.Random(seed * 1_000_003 + zlib.crc32(name.encode()))
    engine = Engine(parse_settings(family.settings), labeled_events=False)
    prefix = family.tau if changes else length
    for events, _ in family.make(rng, 0, prefix, None):
        for signal in _alarms(engine, events):
            result.alarms[signal] = result.alarms.get(signal, 0) + 1
    result.stationary = prefix
    targets = {row.change: row.target for row in DEPTH_ROWS if row.family == name}
    for change in changes:
        copy = deepcopy(engine)
        rng = random.Random(seed * 1_000_003 + zlib.crc32(f"{name}/{change}".encode()))
        seen = 0
        others: dict[str, int] = {}
        delay: int | None = None
        # A unit may be rare (a slice's events): generate until the horizon's worth.
        for events, counts in family.make(rng, family.tau, 10**9, change):
            seen += counts
            for signal in _alarms(copy, events):
                if signal == targets[change] and delay is None:
                    delay = seen
                elif signal != targets[change]:
                    others[signal] = others.get(signal, 0) + 1
            if delay is not None or seen >= family.horizon:
                break
        result.delay[change] = delay
        result.after[change] = others
    result.seconds = time.process_time() - started
    return result


def _p90(values: list[int]) -> float:
    if len(values) < 2:
        return float(values[0])
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def depth(pool: Any, seeds: int, stationary_n: int, only: str) -> float:
    rows = [row for row in DEPTH_ROWS if only in row.label]
    families = sorted({row.family for row in rows}, key=list(FAMILIES).index)
    jobs: list[tuple[str, int, tuple[str, ...], int]] = [
        (name, seed, tuple(r.change for r in rows if r.family == name), 0)
        for name in families
        for seed in range(seeds)
    ]
    # Stationary streams of each family, beyond the prefixes: stationary_n
    # predictions per family, in chunks of at most 100,000.
    for name in families:
        chunks = max(1, math.ceil(stationary_n / 100_000)) if stationary_n else 0
        jobs += [(name, 10_000 + k, (), stationary_n // chunks) for k in range(chunks)]
    jobs.sort(key=lambda job: -(job[3] or FAMILIES[job[0]].tau))
    results = pool.map(_depth_one, jobs, chunksize=1)
    stationary_of = {
        name: sum(r.stationary for r in results if r.family == name) for name in families
    }
    alarms_of: dict[str, int] = {}
    for r in results:
        for signal, count in r.alarms.items():
            kind = signal_kind(signal)
            alarms_of[kind] = alarms_of.get(kind, 0) + count
    print(
        f"\nmonitoring-depth signals (issue 16), default configuration, {seeds} seeds per row; "
        "delay: units after the change to the signal's first drift alert, over the "
        "detected seeds (a seed counts as detected within the family's horizon)"
    )
    for name in families:
        f = FAMILIES[name]
        print(
            f"  {name}: change at prediction {f.tau:,}, horizon {f.horizon:,}; stationary: "
            f"{stationary_of[name]:,} predictions (prefixes and stationary streams)"
        )
    header = (
        f"{'row':<42} | {'signal kind':<19} | {'detected':>8} | {'median':>6} | {'p90':>6} "
        f"| {'FA':>3} | {'stationary N':>12} | {'FA/1M':>6} | {'95% bound/1M':>12} | after"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        mine = [r for r in results if r.family == row.family and row.change in r.delay]
        delays = [d for r in mine if (d := r.delay[row.change]) is not None]
        kind = signal_kind(row.target)
        n = sum(stationary_of[name] for name in families if kind in FAMILIES[name].watched)
        alarms = alarms_of.get(kind, 0)
        # No alarm in n: fewer than 3 / n at 95% (the rule of three); else the
        # exact Poisson bound is left to the reader: print the rate.
        bound = f"< {3 / n * 1e6:.2f}" if alarms == 0 and n else "-"
        after: dict[str, int] = {}
        for r in mine:
            for signal, count in r.after[row.change].items():
                after[signal_kind(signal)] = after.get(signal_kind(signal), 0) + count
        print(
            f"{row.label:<42} | {kind:<19} | {len(delays):>3}/{len(mine):<4} | "
            f"{fmt(statistics.median(delays) if delays else None):>6} | "
            f"{fmt(_p90(delays) if delays else None):>6} | {alarms:>3} | {n:>12,} | "
            f"{alarms / n * 1e6 if n else 0:6.2f} | {bound:>12} | "
            + (", ".join(f"{k} {c}" for k, c in sorted(after.items())) or "none")
        )
    units = sorted({(row.label, row.unit) for row in rows if row.unit != "predictions"})
    for label, unit in units:
        print(f"({label}: delay in {unit})")
    for row in rows:
        if row.quiet:
            print(
                f"({row.label}: a change the signal must not alarm on; detected = seeds where "
                f"it alarmed within {FAMILIES[row.family].horizon:,} predictions)"
            )
    other = {
        k: c for k, c in alarms_of.items() if not any(k == signal_kind(r.target) for r in rows)
    }
    print(
        "stationary alarms of the other signals: "
        + (", ".join(f"{k} {c}" for k, c in sorted(other.items())) or "none")
    )
    return sum(r.seconds for r in results)


def depth_examples(only: str) -> float:
    """Each row's first alert on its signal (seed 0), as the engine emits it."""
    started = time.process_time()
    for row in DEPTH_ROWS:
        if only not in row.label or row.quiet:
            continue
        family = FAMILIES[row.family]
        rng = random.Random(zlib.crc32(row.family.encode()))
        engine = Engine(parse_settings(family.settings), labeled_events=False)
        for events, _ in family.make(rng, 0, family.tau, None):
            _alarms(engine, events)
        rng = random.Random(zlib.crc32(f"{row.family}/{row.change}".encode()))
        found: DriftAlert | None = None
        for events, _ in family.make(rng, family.tau, family.tau + 10**6, row.change):
            for event in events:
                for out in engine.process(event):
                    if isinstance(out, DriftAlert) and out.signal == row.target and not found:
                        found = out
            if found is not None:
                break
        print(f"\n{row.label}:")
        print(json.dumps(json.loads(encode(found)), indent=1) if found else "no alert")
    return time.process_time() - started


# -- held-out style: the CLI's replay on generated files ------------------------------

REPLAY_TAU = 20_000
REPLAY_LAG = 20


def _replay_one(job: tuple[float, int]) -> tuple[float, int, int | None, int, float]:
    """(after, seed, delay, false alarms, wall seconds) of one replay file."""
    after, seed = job
    rng = random.Random(seed * 7919 + int(after * 1000))
    lines: list[str] = []
    waiting: list[tuple[int, str]] = []
    for i in range(2 * REPLAY_TAU):
        label = int(rng.random() < 0.5)
        wrong = rng.random() < (0.05 if i < REPLAY_TAU else after)
        score = rng.betavariate(2.0, 5.0) if label == 0 else rng.betavariate(5.0, 2.0)
        event = {
            "type": "prediction",
            "event_id": f"e{i}",
            "model_id": "m",
            "model_version": "v1",
            "ts": T0 + i,
            "features": {"amount": rng.lognormvariate(3.0, 1.0), "hour": rng.randrange(24)},
            "prediction": label,
            "score": score,
        }
        lines.append(json.dumps(event))
        actual = label ^ int(wrong)
        waiting.append(
            (
                i,
                json.dumps(
                    {"type": "outcome", "event_id": f"e{i}", "ts": T0 + i + 0.5, "actual": actual}
                ),
            )
        )
        if len(waiting) > REPLAY_LAG:
            lines.append(waiting.pop(0)[1])
    lines += [line for _, line in waiting]
    start = time.perf_counter()
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
        handle.write("\n".join(lines) + "\n")
        path = handle.name
    try:
        done = subprocess.run(
            [sys.executable, "-m", "stream_mlops", "replay", path],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        Path(path).unlink()
    seconds = time.perf_counter() - start
    delay: int | None = None
    false_alarms = 0
    for line in done.stdout.splitlines():
        out = json.loads(line)
        if out.get("type") != "drift_alert" or out.get("severity") != "drift":
            continue
        index = int(out["trigger_event_id"].removeprefix("e"))
        if out["signal"] == "error" and index >= REPLAY_TAU:
            if delay is None:
                delay = index - REPLAY_TAU + 1
        else:
            false_alarms += 1
    return after, seed, delay, false_alarms, seconds


def replay_check(pool: Any, seeds: int) -> float:
    changes = (0.075, 0.10, 0.20)
    results = pool.map(_replay_one, [(a, s) for a in changes for s in range(seeds)], chunksize=1)
    rate = 0.5 * Settings().defaults.false_alarm_budget  # type: ignore[operator]
    print(
        f"\nstream-mlops replay (default configuration) on generated files: error steps at "
        f"prediction {REPLAY_TAU:,} of {2 * REPLAY_TAU:,}, outcomes {REPLAY_LAG} predictions "
        f"late, {seeds} seeds; bound ln(ARL) / KL at the error's calibrated ARL "
        f"({1 / rate:,.0f})"
    )
    print(
        f"{'change':<12} | {'detected':>8} | {'mean':>6} | {'bound':>6} | {'ratio':>5} | {'FA':>3}"
    )
    for after in changes:
        mine = [r for r in results if r[0] == after]
        delays = [r[2] for r in mine if r[2] is not None]
        mean = statistics.fmean(delays) if delays else None
        bound = math.log(1 / rate) / kl_bernoulli(after, 0.05)
        ratio = mean / bound if mean is not None else None
        print(
            f"5% -> {after:<6.1%} | {len(delays):>4}/{len(mine):<3} | {fmt(mean):>6} | "
            f"{bound:6,.0f} | {fmt(ratio, '.2f'):>5} | {sum(r[3] for r in mine):>3}"
        )
    return sum(r[4] for r in results)


if __name__ == "__main__":
    sys.exit(main())
