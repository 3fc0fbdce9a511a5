"""A pinned reference against the stream's own start, on streams that start shifted.

Each stream is a classifier's predictions with outcomes (``tests/streams.py``:
features f0, f1 ~ N(0, 1), a uniform score, 5% errors) whose change is there
from the first prediction on: f0's mean moved by ``shift`` SD, or the error
rate stepped to ``error``. The pinned reference is a file's worth of the
unchanged stream (another seed). Side by side in one run, per change: how
many seeds found the changed signal within ``--length`` predictions, and the
median prediction it was found at; then false alarms on stationary streams
with a pinned reference from the same distribution, per million predictions.

    PYTHONPATH=. nice .venv/bin/python benchmarks/reference.py --seeds 5 [--jobs 2]

With no false alarm on the stationary streams, it prints the 95% upper bound
on their rate, 3 / N per prediction (the rule of three).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Iterator

from stream_mlops.config import Settings, parse_settings
from stream_mlops.engine import Engine
from stream_mlops.events import DriftAlert, InputEvent, OutcomeEvent, PredictionEvent
from stream_mlops.reference import ModelReference, ReferenceEvent
from tests.streams import classifier


def reference_of(events: Iterator[InputEvent]) -> dict[str, ModelReference]:
    """What ``load_references`` would give for a file of these events."""
    predictions: dict[str, PredictionEvent] = {}
    actual: dict[str, object] = {}
    for e in events:
        if isinstance(e, PredictionEvent):
            predictions[e.event_id] = e
        elif isinstance(e, OutcomeEvent):
            actual[e.event_id] = e.actual
    found = [
        ReferenceEvent(p.model_version, p.features, p.prediction, p.score, actual.get(i))  # type: ignore[arg-type]
        for i, p in predictions.items()
    ]
    return {"fraud": ModelReference("fraud", found, "benchmark")}


def first_alert(engine: Engine, events: Iterator[InputEvent], signal: str) -> int | None:
    """The prediction count at the first drift alert on ``signal`` (None: none)."""
    seen = 0
    for e in events:
        seen += isinstance(e, PredictionEvent)
        for out in engine.process(e):
            if isinstance(out, DriftAlert) and out.severity == "drift" and out.signal == signal:
                return seen
    return None


def false_alarms(engine: Engine, events: Iterator[InputEvent]) -> dict[str, int]:
    """Drift alerts by signal."""
    found: dict[str, int] = {}
    for e in events:
        for out in engine.process(e):
            if isinstance(out, DriftAlert) and out.severity == "drift":
                found[out.signal] = found.get(out.signal, 0) + 1
    return found


# (label, signal, kind, value): the change, there from the first prediction on.
CHANGES = [
    *((f"f0 mean +{shift} SD", "feature:f0", "mean", shift) for shift in (0.25, 0.5, 1.0)),
    *((f"error 5% -> {int(e * 100)}%", "error", "error", e) for e in (0.10, 0.20)),
]
STREAM_START = Settings()
PINNED = parse_settings({"models": {"fraud": {"reference": {"file": "benchmark"}}}})


def _changed(kind: str, value: float, n: int, seed: int) -> Iterator[InputEvent]:
    if kind == "mean":
        return classifier(n, seed=seed, feature_means=lambda i: [value, 0.0])
    return classifier(n, seed=seed, error_rate=lambda i: value)


def _change_one(job: tuple[int, bool, int, int, int]) -> tuple[int, bool, int | None, float]:
    """(change, pinned, prediction found at or None, CPU seconds) of one seed."""
    change, pinned, seed, length, reference = job
    started = time.process_time()
    _, signal, kind, value = CHANGES[change]
    engine = Engine(
        PINNED if pinned else STREAM_START,
        labeled_events=False,
        references=reference_of(classifier(reference, seed=1000 + seed)) if pinned else None,
    )
    at = first_alert(engine, _changed(kind, value, length, seed), signal)
    return change, pinned, at, time.process_time() - started


def _stationary_one(job: tuple[int, int, int]) -> tuple[int, dict[str, int], float]:
    """(predictions, alarms by signal, CPU seconds) of one stationary stream
    with a pinned reference of the same distribution."""
    seed, length, reference = job
    started = time.process_time()
    references = reference_of(classifier(reference, seed=2000 + seed))
    engine = Engine(PINNED, labeled_events=False, references=references)
    found = false_alarms(engine, classifier(length, seed=3000 + seed))
    return length, found, time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--length", type=int, default=5_000, help="predictions per change stream")
    parser.add_argument("--reference", type=int, default=4_000, help="predictions in the file")
    parser.add_argument("--stationary-seeds", type=int, default=3)
    parser.add_argument("--stationary-length", type=int, default=50_000)
    parser.add_argument("--jobs", type=int, default=1, help="processes")
    args = parser.parse_args()
    wall = time.perf_counter()
    jobs = [
        (change, pinned, seed, args.length, args.reference)
        for change in range(len(CHANGES))
        for pinned in (False, True)
        for seed in range(args.seeds)
    ]
    stationary = [
        (seed, args.stationary_length, args.reference) for seed in range(args.stationary_seeds)
    ]
    with multiprocessing.Pool(args.jobs) as pool:
        # The stationary streams are the long jobs: first, so none ends alone.
        still = pool.map_async(_stationary_one, stationary, chunksize=1)
        found = pool.map(_change_one, jobs, chunksize=1)
        quiet = still.get()
    print(f"{'change from the start':<22} {'stream start':>22} {'pinned reference':>22}")
    print(f"{'':<22} {'found   median at':>22} {'found   median at':>22}")
    for change, (label, _, _, _) in enumerate(CHANGES):
        cells = []
        for pinned in (False, True):
            at = [r[2] for r in found if r[0] == change and r[1] == pinned and r[2] is not None]
            median = f"{statistics.median(at):,.0f}" if at else "-"
            cells.append(f"{len(at):>2}/{args.seeds:<3} {median:>12}")
        print(f"{label:<22} {cells[0]:>22} {cells[1]:>22}")
    total = sum(r[0] for r in quiet)
    by_signal: dict[str, int] = {}
    for r in quiet:
        for signal, count in r[1].items():
            by_signal[signal] = by_signal.get(signal, 0) + count
    alarms = sum(by_signal.values())
    # No alarm in N: fewer than 3 / N per prediction at 95% (the rule of three).
    bound = f"; 95% bound < {3 / total * 1e6:.2f} per million" if total and not alarms else ""
    print(
        f"\nstationary, pinned reference of the same distribution: {alarms} false alarms in "
        f"{total:,} predictions ({args.stationary_seeds} streams; "
        f"{alarms / max(total, 1) * 1e6:.2f} per million{bound}; budget 1e-7 = 0.1 per million)"
        f"; by signal: {by_signal or 'none'}"
    )
    cpu = sum(r[3] for r in found) + sum(r[2] for r in quiet)
    print(f"{cpu:.0f} s CPU, {time.perf_counter() - wall:.0f} s wall on {args.jobs} processes")


if __name__ == "__main__":
    main()
