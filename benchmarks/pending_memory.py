"""Memory and garbage-collector cost of 1M pending predictions, before and after packing.

    PYTHONPATH=. python benchmarks/pending_memory.py [--events 1000000] [--steady 200000]
        [--side-by-side 200000]

Each variant runs in a fresh child process, so its RSS is its own. A child
decodes predictions like the engine does (``decode_input`` of the JSON a producer
writes: event ids ``txn-0-0000001``, 8 float features, increasing ``ts``,
offsets 0..N-1, no outcomes) one at a time and inserts each into a PendingJoin
whose TTL and bound keep them all. It reports:

* RSS growth over the same process before the first insert, and peak RSS
  (VmHWM; it includes the interpreter and imports, about 35 MB);
* insertion CPU time per event (thread CPU time around each call, less the
  cost of reading the clock; collector pauses left out: they are a column of
  their own). All times are CPU times, steadier than wall time on a shared
  machine;
* one full ``gc.collect()`` with that state held;
* a steady phase after the build, as after a restore: ``--steady`` steps of one
  new prediction plus the outcome of the oldest pending one (a match), each
  decoded from bytes (timed with the join calls), with the collector's pauses
  summed (``gc.callbacks``), their share of the phase, the full (generation 2)
  collections among them and the longest pause.

Variants: ``before`` is the join as of commit cd5b76a (read from the git
history, so this needs a checkout that has that commit), ``after`` the current
one; each with the collector at
its defaults, with ``freeze_long_lived()`` after the build, and with
``tune_gc()`` from the start (stream_mlops/kafka/memory.py). Rows run one after
another, so their CPU columns move with the machine's load; a last child
therefore runs both joins in one process on the same events, alternating call
by call with the collector off, for a fair CPU ratio of the join alone.
Target: 1M pending predictions in under 500 MB RSS. About 12 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

TARGET_MB = 500
T0 = 1_800_000_000.0
REPO = Path(__file__).resolve().parents[1]
#: The join before pending predictions were packed; its source comes from the
#: git history, so the tree keeps no copy of old code.
BEFORE_COMMIT = "cd5b76a3ac850a1e302a529f85b61b16b2fa5453"
BEFORE_PATH = "stream_mlops/join.py"


class HistoryError(RuntimeError):
    """An old version of a module that cannot be read from the git history here."""


def historic_module(commit: str, path: str, name: str, repo: Path = REPO) -> types.ModuleType:
    """``path`` as it was at ``commit`` (``git show``), imported as the module ``name``.

    The module runs against today's package: it may import only what still exists.
    """
    git = shutil.which("git")
    what = f"{path} as of commit {commit[:7]}"
    if git is None:
        raise HistoryError(f"{what} is read from the git history, and git is not installed")
    shown = subprocess.run(
        [git, "-C", str(repo), "show", f"{commit}:{path}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if shown.returncode != 0:
        raise HistoryError(
            f"{what} is not in the git history of {repo} ({shown.stderr.strip()}); "
            "run from a clone with full history (git fetch --unshallow)"
        )
    module = types.ModuleType(name)
    module.__file__ = f"{commit[:7]}:{path}"
    # Registered before it runs: dataclasses look their module up in sys.modules.
    sys.modules[name] = module
    exec(compile(shown.stdout, module.__file__, "exec"), module.__dict__)
    return module


def join_before() -> Any:
    """The ``PendingJoin`` class of ``BEFORE_COMMIT``."""
    return historic_module(BEFORE_COMMIT, BEFORE_PATH, "pending_join_before").PendingJoin


def _status(field: str) -> int:
    """A /proc/self/status figure in bytes (VmRSS now, VmHWM the peak)."""
    with Path("/proc/self/status").open() as status:
        line = next(line for line in status if line.startswith(field))
    return int(line.split()[1]) * 1024


def _raw(i: int, rng: Any) -> bytes:
    from stream_mlops.events import dumps

    return dumps(
        {
            "type": "prediction",
            "event_id": f"txn-0-{i:07d}",
            "model_id": "fraud",
            "model_version": "v1",
            "ts": T0 + i * 0.01,
            "features": {f"x{k}": round(rng.gauss(k, 1.0), 6) for k in range(8)},
            "prediction": int(rng.random() < 0.1),
            "score": round(rng.random(), 6),
        },
        sort_keys=False,
    )


def _outcome(i: int) -> bytes:
    from stream_mlops.events import dumps

    return dumps(
        {"type": "outcome", "event_id": f"txn-0-{i:07d}", "ts": T0 + i * 0.01 + 1, "actual": 0},
        sort_keys=False,
    )


def child(variant: str, gc_mode: str, n: int, steady: int) -> dict[str, Any]:
    import random

    from stream_mlops.events import decode_input
    from stream_mlops.kafka.memory import freeze_long_lived, tune_gc

    if variant == "before":
        PendingJoin = join_before()  # noqa: N806 (a class)
    else:
        from stream_mlops.join import PendingJoin

    if gc_mode == "tuned":
        tune_gc()
    paused = [0.0, 0, 0.0, 0]  # total seconds, collections, longest, full collections
    started = [0.0]

    # CPU time of this thread, not wall time: the machine is shared, and a
    # preempted process would otherwise be charged for someone else's work.
    clock = time.thread_time

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = clock()
        else:
            pause = clock() - started[0]
            paused[0] += pause
            paused[1] += 1
            paused[2] = max(paused[2], pause)
            paused[3] += info["generation"] == 2

    gc.callbacks.append(on_gc)
    rng = random.Random(0)
    join = PendingJoin(ttl_seconds=10 * 86400, max_pending=4 * n)
    gc.collect()
    baseline = _status("VmRSS")
    insert_s = 0.0
    # What reading the clock twice costs (about 0.5 us), taken off each insert.
    pairs = []
    for _ in range(2000):
        t = clock()
        pairs.append(clock() - t)
    overhead = sorted(pairs)[len(pairs) // 2]
    # One event decoded, then inserted, as the engine and a restore do: decoding
    # a whole chunk first would leave the survivors scattered among freed blocks
    # (measured: 400 instead of 306 bytes per entry).
    for offset in range(n):
        event = decode_input(_raw(offset, rng))
        gc_before = paused[0]
        t = clock()
        join.add_prediction(event, event.epoch, offset)  # type: ignore[arg-type]
        insert_s += clock() - t - overhead - (paused[0] - gc_before)
    build_gc = paused[0]
    assert join.pending_predictions == n
    grown = _status("VmRSS") - baseline
    peak = _status("VmHWM")
    if gc_mode == "frozen":
        freeze_long_lived()
    full = []
    for _ in range(3):
        t = clock()
        gc.collect()
        full.append(clock() - t)
    paused[:] = [0.0, 0, 0.0, 0]

    # Steady: one new prediction and one match per step, pending stays at n.
    steady_s = 0.0
    chunk = 5_000
    for first in range(0, steady, chunk):
        steps = range(first, min(steady, first + chunk))
        raws = [(_raw(n + i, rng), _outcome(i)) for i in steps]
        t = clock()
        for i, (prediction, outcome) in zip(steps, raws, strict=True):
            p = decode_input(prediction)
            join.add_prediction(p, p.epoch, n + i)  # type: ignore[arg-type]
            o = decode_input(outcome)
            match = join.add_outcome(o, o.epoch, i)  # type: ignore[arg-type]
            assert match is not None and match.prediction.event_id == o.event_id  # type: ignore[union-attr]
        steady_s += clock() - t
    offsets = join.prediction_offsets
    return {
        "grown": grown,
        "peak": peak,
        "insert_us": insert_s / n * 1e6,
        "build_gc_s": build_gc,
        "full_gc_s": sorted(full)[1],
        "steady_us": steady_s / max(steady, 1) * 1e6,
        "steady_gc_s": paused[0],
        "steady_gc_share": paused[0] / steady_s if steady else 0.0,
        "steady_full": paused[3],
        "steady_longest_ms": paused[2] * 1000,
        "offset_set_bytes": sys.getsizeof(offsets._bits),
        "pending": join.pending_predictions,
    }


def side_by_side(n: int, steady: int) -> dict[str, float]:
    """Join CPU time of both variants on the same events, alternating per call.

    Rows of the main table run one after the other; on a shared machine (or
    two hyperthreads of one core) the load can change between them. Here both
    joins see the same moment, so their ratio holds. The collector is off: its
    cost is measured in the main table.
    """
    import random

    from stream_mlops.events import decode_input
    from stream_mlops.join import PendingJoin

    Before = join_before()  # noqa: N806 (a class)
    rng = random.Random(0)
    joins = [Before(10 * 86400, 4 * n), PendingJoin(10 * 86400, 4 * n)]
    spent = {"insert": [0.0, 0.0], "steady": [0.0, 0.0]}
    clock = time.thread_time
    gc.disable()

    def timed(phase: str, which: int, call: Any, *call_args: Any) -> Any:
        t = clock()
        result = call(*call_args)
        spent[phase][which] += clock() - t
        return result

    for offset in range(n):
        event = decode_input(_raw(offset, rng))
        for which in (offset % 2, 1 - offset % 2):
            timed("insert", which, joins[which].add_prediction, event, event.epoch, offset)
    for i in range(steady):
        p = decode_input(_raw(n + i, rng))
        o = decode_input(_outcome(i))
        for which in (i % 2, 1 - i % 2):
            join = joins[which]
            timed("steady", which, join.add_prediction, p, p.epoch, n + i)
            match = timed("steady", which, join.add_outcome, o, o.epoch, i)
            assert match.prediction.event_id == o.event_id
    gc.enable()
    return {
        "insert_before": spent["insert"][0] / n * 1e6,
        "insert_after": spent["insert"][1] / n * 1e6,
        "steady_before": spent["steady"][0] / steady * 1e6,
        "steady_after": spent["steady"][1] / steady * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--steady", type=int, default=200_000)
    parser.add_argument("--side-by-side", type=int, default=200_000, metavar="N")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "GC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "both":
            print(json.dumps(side_by_side(args.events, args.steady)))
        else:
            print(json.dumps(child(*args.child, args.events, args.steady)))
        return
    try:
        join_before()  # fail now, not after the first rows
    except HistoryError as exc:
        sys.exit(f"pending_memory: {exc}")
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    jobs = [(v, g) for v in ("before", "after") for g in ("default", "frozen", "tuned")]
    jobs.append(("both", "off"))
    for variant, gc_mode in jobs:
        print(f"running {variant} / gc {gc_mode} ...", file=sys.stderr)
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--events",
                str(args.side_by_side if variant == "both" else args.events),
                "--steady",
                str(args.steady // 4 if variant == "both" else args.steady),
                "--child",
                variant,
                gc_mode,
            ],
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        if done.returncode:
            sys.exit(f"child failed:\n{done.stderr}")
        runs[variant, gc_mode] = json.loads(done.stdout.strip().splitlines()[-1])
    mb = 1e6
    n = args.events
    print(f"\n{n:,} pending predictions (8 float features), one child process per row\n")
    header = (
        f"{'join':>6} | {'gc':>7} | {'RSS growth':>10} | {'per entry':>9} | {'peak RSS':>8} "
        f"| {'insert':>8} | {'gc in build':>11} | {'gc.collect()':>12} | {'steady step':>11} "
        f"| {'gc in steady':>12} | {'full gcs':>8} | {'longest':>8}"
    )
    print(header)
    print("-" * len(header))
    both = runs.pop(("both", "off"))
    for (variant, gc_mode), r in runs.items():
        print(
            f"{variant:>6} | {gc_mode:>7} | {r['grown'] / mb:7.0f} MB | {r['grown'] / n:7.0f} B "
            f"| {r['peak'] / mb:5.0f} MB | {r['insert_us']:5.2f} us | {r['build_gc_s']:9.2f} s "
            f"| {r['full_gc_s'] * 1000:9.1f} ms | {r['steady_us']:8.2f} us "
            f"| {r['steady_gc_s']:6.2f} s {r['steady_gc_share']:3.0%} | {r['steady_full']:8d} "
            f"| {r['steady_longest_ms']:5.0f} ms"
        )
    before, after = runs["before", "default"], runs["after", "default"]
    print(
        f"\nafter/before (gc default): RSS growth {after['grown'] / before['grown']:.2f}x, "
        f"gc in build {after['build_gc_s'] / before['build_gc_s']:.3f}x, full gc.collect() "
        f"{after['full_gc_s'] / before['full_gc_s']:.3f}x "
        "(insert and steady columns: rows ran at different times, see below)"
    )
    print(
        f"side by side, one process, same events, calls alternating, gc off "
        f"({args.side_by_side:,} inserts, {args.steady // 4:,} steady steps): join CPU per insert "
        f"before {both['insert_before']:.2f} us, after {both['insert_after']:.2f} us "
        f"({both['insert_after'] / both['insert_before']:.2f}x); per steady step (prediction + "
        f"matching outcome, decoding not counted) before {both['steady_before']:.2f} us, after "
        f"{both['steady_after']:.2f} us ({both['steady_after'] / both['steady_before']:.2f}x)"
    )
    verdict = "met" if after["peak"] < TARGET_MB * mb else "missed"
    print(
        f"target: {n:,} pending in under {TARGET_MB} MB RSS: peak {after['peak'] / mb:.0f} MB "
        f"(before: {before['peak'] / mb:.0f} MB) -> {verdict}"
    )
    print(
        f"pending offsets (OffsetSet bitmap, {n:,} consecutive): "
        f"{after['offset_set_bytes'] / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()
