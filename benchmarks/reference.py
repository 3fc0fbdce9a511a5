"""A pinned reference against the stream's own start, on streams that start shifted.

Each stream is a classifier's predictions with outcomes (``tests/streams.py``:
features f0, f1 ~ N(0, 1), a uniform score, 5% errors) whose change is there
from the first prediction on: f0's mean moved by ``shift`` SD, or the error
rate stepped to ``error``. The pinned reference is a file's worth of the
unchanged stream (another seed). Side by side in one run, per change: how
many seeds found the changed signal within ``--length`` predictions, and the
median prediction it was found at; then false alarms on stationary streams
with a pinned reference from the same distribution, per million predictions.

    PYTHONPATH=. nice .venv/bin/python benchmarks/reference.py --seeds 5
"""

from __future__ import annotations

import argparse
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


def false_alarms(engine: Engine, events: Iterator[InputEvent]) -> int:
    return sum(
        1
        for e in events
        for out in engine.process(e)
        if isinstance(out, DriftAlert) and out.severity == "drift"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--length", type=int, default=5_000, help="predictions per change stream")
    parser.add_argument("--reference", type=int, default=4_000, help="predictions in the file")
    parser.add_argument("--stationary-seeds", type=int, default=3)
    parser.add_argument("--stationary-length", type=int, default=50_000)
    args = parser.parse_args()
    stream_start = Settings()
    pinned = parse_settings({"models": {"fraud": {"reference": {"file": "benchmark"}}}})
    changes = [
        *(
            (f"f0 mean +{shift} SD", "feature:f0", {"feature_means": lambda i, s=shift: [s, 0.0]})
            for shift in (0.25, 0.5, 1.0)
        ),
        *(
            (f"error 5% -> {int(e * 100)}%", "error", {"error_rate": lambda i, e=e: e})
            for e in (0.10, 0.20)
        ),
    ]
    print(f"{'change from the start':<22} {'stream start':>22} {'pinned reference':>22}")
    print(f"{'':<22} {'found   median at':>22} {'found   median at':>22}")
    started = time.process_time()
    for label, signal, kwargs in changes:
        cells = []
        for settings in (stream_start, pinned):
            found = []
            for seed in range(args.seeds):
                references = reference_of(classifier(args.reference, seed=1000 + seed))
                engine = Engine(
                    settings,
                    labeled_events=False,
                    references=references if settings is pinned else None,
                )
                at = first_alert(engine, classifier(args.length, seed=seed, **kwargs), signal)
                if at is not None:
                    found.append(at)
            median = f"{statistics.median(found):,.0f}" if found else "-"
            cells.append(f"{len(found):>2}/{args.seeds:<3} {median:>12}")
        print(f"{label:<22} {cells[0]:>22} {cells[1]:>22}")
    total = alarms = 0
    for seed in range(args.stationary_seeds):
        references = reference_of(classifier(args.reference, seed=2000 + seed))
        engine = Engine(pinned, labeled_events=False, references=references)
        alarms += false_alarms(engine, classifier(args.stationary_length, seed=3000 + seed))
        total += args.stationary_length
    per_million = alarms / total * 1e6
    print(
        f"\nstationary, pinned reference of the same distribution: {alarms} false alarms in "
        f"{total:,} predictions ({per_million:.1f} per million; budget 1e-7 = 0.1 per million)"
    )
    print(f"cpu {time.process_time() - started:.0f} s")


if __name__ == "__main__":
    main()
