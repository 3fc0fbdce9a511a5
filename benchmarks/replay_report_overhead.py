"""What ``replay --summary-json`` and ``--report`` cost over a plain replay, side by side.

    PYTHONPATH=. python benchmarks/replay_report_overhead.py [--events 200000]

Writes (or reuses) the file of ``replay_throughput.py`` (predictions with 8
numeric features, each followed 100 events later by its outcome), then replays
it in this process three ways, interleaved, best of three each, in CPU
seconds: plain (what ``stream-mlops replay FILE`` does), with the summary's
recorder, and with the report's recorder (every signal value bucketed, the
engine building labeled events for the error). Then the time to draw the
report and the recorder's memory. Prints a table with each as a ratio of the
plain replay.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from benchmarks.replay_throughput import timed, write_file
from stream_mlops.config import Settings
from stream_mlops.engine import Engine
from stream_mlops.offline import replay_lines
from stream_mlops.replay_report import ReplayRecorder, report_html, summary_document


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    path = Path(tempfile.gettempdir()) / f"stream-mlops-bench-{args.events}.jsonl"
    if not path.exists():
        print(f"writing {args.events:,} events to {path} ...", file=sys.stderr)
        write_file(path, args.events)
    lines = path.read_bytes().splitlines()
    n = len(lines)
    settings = Settings()

    def run(signals: bool | None) -> Callable[[], object]:
        def replay() -> object:
            recorder = None if signals is None else ReplayRecorder(settings, signals=signals)
            engine = Engine(settings, labeled_events=bool(signals))
            result = replay_lines(lines, engine, io.BytesIO(), io.StringIO(), recorder=recorder)
            return recorder, result

        return replay

    variants = {"plain": run(None), "--summary-json": run(False), "--report": run(True)}
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(3):  # interleaved: the machine may be shared
        for name, fn in variants.items():
            best[name] = min(best[name], timed(fn, gc_on=True))

    # What stays allocated after the replay: the recorder (the engine is gone).
    tracemalloc.start()
    recorder, result = run(True)()  # type: ignore[misc]
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    started = time.process_time()
    summary = summary_document(
        recorder, result.stats, file=str(path), config=None, lines=n, seconds=1.0
    )
    page = report_html(recorder, summary)
    drawing = time.process_time() - started

    print(f"\nreplay of {n:,} events (8 numeric features, defaults), one process, CPU seconds")
    print("best of three, interleaved; ratio to the plain replay (lower is better)\n")
    header = f"{'replay':>16} | {'CPU s':>7} | {'events/s':>9} | {'ratio':>5}"
    print(header)
    print("-" * len(header))
    for name, seconds in best.items():
        print(f"{name:>16} | {seconds:7.2f} | {n / seconds:9,.0f} | {seconds / best['plain']:5.2f}")
    print(
        f"\ndrawing the report: {drawing:.2f} s CPU, {len(page) / 1024:.0f} KiB of HTML; "
        f"held by the report's recorder after the replay: {kept / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
