"""Replay throughput on a 1M-event file (8 numeric features), and where the time goes.

    PYTHONPATH=. python benchmarks/replay_throughput.py [--events 1000000] [--file PATH]
        [--repeat 3] [--breakdown] [--msgspec [--baseline REV]] [--quality-cost]

Writes the file (500,000 predictions, each followed 100 events later by its
outcome) unless it exists, then prints one table (issue 18's targets), a row
per configuration:

* ``default``: ``Settings()``, the shipped detector set;
* ``same job``: ADWIN on the error only (benchmarks/throughput.py's
  configuration, whose quality checks are switched off here: they watch
  signals of their own), tracking the unwatched label-free signals as shipped;
* ``same job, track_unwatched = false``: the same, without those tracks.

Each row has the pure core's CPU µs per event (``Engine.process`` over the
decoded events, in this process, best of ``--repeat`` interleaved runs) and
``stream-mlops replay``'s events/s through the CLI in a process of its own
(CPU time less the start-up's), each against the target and, for the core,
as a ratio to the ``same job`` row.

``--breakdown`` adds the older table: each over the whole file in one run:
parsing alone (orjson), parsing + validation (decode_input), the join alone, and
the whole replay (join + signals + detectors + controller), with the Python
garbage collector on and off. Validation and the replay are measured twice: as
shipped (decode_input's msgspec fast path, then pydantic for what it does not
take) and with every event through orjson and pydantic's model_validate (the
fast path switched off), so the saving is a ratio from one run; each of these
is the best of three interleaved runs, as the machine may be shared. Prints a
table. Target: 50,000 events/s on one core.

``--msgspec`` only compares decoding, CPU us per event, best of three
interleaved runs, as ratios to ``decode_input`` as shipped: ``decode_input``
with the fast path off (orjson, then pydantic's model_validate: what every
event cost before there was a fast path), msgspec's decoding of the bytes into
the fast path's Struct alone (parsing and the checks msgspec makes, no model
built), and ``orjson.loads`` alone. With ``--baseline REV``, also
``decode_input`` of ``stream_mlops/events.py`` as it was at the git revision
REV, loaded beside the current one (b41459a: the hand-written fast path that
msgspec replaced).

``--quality-cost`` only compares the core (join, signals, detectors) with the
defaults against the defaults without the data-quality and outcome signals
(``quality_checks = false``; no detectors on ``outcome``, ``miss_rate``,
``false_positive_rate``): best of three interleaved runs each, and the ratio.
"""

from __future__ import annotations

import argparse
import gc
import io
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from unittest import mock

from stream_mlops import events, outcomes
from stream_mlops.config import Settings, load_settings
from stream_mlops.engine import Engine
from stream_mlops.join import PendingJoin
from stream_mlops.offline import replay_lines

TARGET = 50_000
# Issue 18: the pure core, and the replay CLI on the same job and on the defaults.
TARGET_CORE_US = 5.0
TARGET_REPLAY = {"same job": 150_000, "default": 100_000}

# benchmarks/throughput.py's SAME_JOB_CONFIG, with the quality checks off.
SAME_JOB_TOML = """
[defaults]
distribution_checks = false
quality_checks = false
min_observations = 0
cooldown_observations = 0
retrain_on = []
track_unwatched = {track}

[defaults.detectors]
error = [{{name = "adwin", delta = 0.002}}]
estimated_error = []
score = []
prediction = []
"feature:*" = []
"""
CONFIGURATIONS = {
    "default": None,
    "same job": SAME_JOB_TOML.format(track="true"),
    "same job, track_unwatched = false": SAME_JOB_TOML.format(track="false"),
}


@contextmanager
def pydantic_only() -> Iterator[None]:
    """decode_input as before the fast path: every event through model_validate."""
    with mock.patch.object(events, "_fast_input", lambda raw, default_type: None):
        yield


def write_file(path: Path, n_events: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    pairs = n_events // 2
    lag = 100
    with path.open("wb") as out:
        pending: list[bytes] = []
        for i in range(pairs):
            label = rng.random() < 0.1
            prediction = {
                "type": "prediction",
                "event_id": f"txn-{i:08d}",
                "model_id": "fraud",
                "model_version": "v1",
                "ts": 1_800_000_000 + i * 0.01,
                "features": {f"x{k}": round(rng.gauss(k, 1.0), 6) for k in range(8)},
                "prediction": int(label),
                "score": round(rng.random(), 6),
            }
            out.write(events.dumps(prediction) + b"\n")
            wrong = rng.random() < 0.05
            outcome = {
                "type": "outcome",
                "event_id": f"txn-{i:08d}",
                "ts": 1_800_000_000 + i * 0.01 + 1.0,
                "actual": int(label != wrong),
            }
            pending.append(events.dumps(outcome) + b"\n")
            if len(pending) > lag:
                out.write(pending.pop(0))
        out.writelines(pending)


def quality_cost(path: Path) -> None:
    decoded = [events.decode_input(line) for line in path.read_bytes().splitlines()]
    # The defaults, less the new signals ([defaults.detectors] in a file would
    # replace the whole table, every default detector with it).
    shipped = Settings()
    defaults = shipped.defaults.model_copy(
        update={
            "quality_checks": False,
            "detectors": {
                signal: specs
                for signal, specs in shipped.defaults.detectors.items()
                if signal not in outcomes.SIGNALS
            },
        }
    )
    without = shipped.model_copy(update={"defaults": defaults})

    def core(settings: Settings) -> Callable[[], None]:
        def run() -> None:
            engine = Engine(settings, labeled_events=False)
            for event in decoded:
                engine.process(event)

        return run

    with_new, without_new = (
        min(times)
        for times in zip(
            *((timed(core(Settings()), True), timed(core(without), True)) for _ in range(3)),
            strict=True,
        )
    )
    n = len(decoded)
    print(f"\ncore (join + signals + detectors) on {n:,} events, CPU seconds, best of 3")
    print(f"{'configuration':<48} | {'seconds':>8} | {'events/s':>9}")
    for name, seconds in (
        ("defaults", with_new),
        ("without quality and outcome signals", without_new),
    ):
        print(f"{name:<48} | {seconds:7.2f}s | {n / seconds:9,.0f}")
    print(f"ratio defaults / without: {with_new / without_new:.3f}")


def events_at(rev: str) -> ModuleType:
    """``stream_mlops/events.py`` as it was at git revision ``rev``, as a module of its own."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "-C", str(root), "show", f"{rev}:stream_mlops/events.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = ModuleType(f"events_at_{rev}")
    sys.modules[module.__name__] = module  # pydantic resolves the models' annotations there
    exec(compile(source, f"{rev}:stream_mlops/events.py", "exec"), module.__dict__)
    return module


def msgspec_decode(path: Path, baseline: str | None) -> None:
    lines = path.read_bytes().splitlines()

    def each(decode: Callable[[bytes], object]) -> Callable[[], None]:
        def run() -> None:
            for line in lines:
                decode(line)

        return run

    def decode_pydantic() -> None:
        with pydantic_only():
            each(events.decode_input)()

    shipped = "decode_input (msgspec fast path)"
    runs = {
        shipped: each(events.decode_input),
        "decode_input, pydantic only (orjson + validate)": decode_pydantic,
        "msgspec into the fast path's Struct alone": each(events._decode_wire),
        "orjson.loads alone": each(events.loads),
    }
    if baseline is not None:
        runs[f"decode_input at {baseline}"] = each(events_at(baseline).decode_input)
    best = {
        name: min(times)
        for name, times in zip(
            runs,
            zip(*([timed(run, True) for run in runs.values()] for _ in range(3)), strict=True),
            strict=True,
        )
    }
    taken = sum(events._fast_input(line, None) is not None for line in lines)
    base = best[shipped]
    print(f"\ndecoding {len(lines):,} events, CPU us per event, best of 3 ({taken:,} fast)")
    for name, seconds in best.items():
        print(f"{name:<48} | {seconds * 1e6 / len(lines):6.2f} | x {seconds / base:4.2f}")
    if baseline is not None:
        print(f"(ratios to decode_input as shipped; the row at {baseline} is that revision's code)")


def timed(fn: Callable[[], object], gc_on: bool) -> float:
    gc.collect()
    if not gc_on:
        gc.disable()
    try:
        # CPU time of this process: the figure that matters for "one core", and
        # steadier than wall time when other work shares the machine.
        start = time.process_time()
        fn()
        return time.process_time() - start
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--file", type=Path, default=None)
    parser.add_argument(
        "--cli-only",
        action="store_true",
        help="only the `stream-mlops replay` process (for files too big to hold in memory)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="core runs per configuration")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also the older table: parse, validate, join, signals, replay (fast path or not)",
    )
    parser.add_argument(
        "--msgspec",
        action="store_true",
        help="only decoding: decode_input with and without its fast path, msgspec and orjson alone",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        default=None,
        help="with --msgspec: also decode_input of stream_mlops/events.py at git revision REV",
    )
    parser.add_argument(
        "--quality-cost",
        action="store_true",
        help="only the core with and without the data-quality and outcome signals",
    )
    args = parser.parse_args()
    path = args.file or Path(tempfile.gettempdir()) / f"stream-mlops-bench-{args.events}.jsonl"
    if not path.exists():
        print(f"writing {args.events:,} events to {path} ...", file=sys.stderr)
        write_file(path, args.events)
    if args.quality_cost:
        quality_cost(path)
        return
    if args.msgspec:
        msgspec_decode(path, args.baseline)
        return
    if args.cli_only:
        cli_row(path, args.events)
        return
    targets(path, args.events, args.repeat)
    if not args.breakdown:
        return
    cli_row(path, args.events)
    lines = path.read_bytes().splitlines()
    n = len(lines)
    decoded = [events.decode_input(line) for line in lines]

    def parse() -> None:
        for line in lines:
            events.loads(line)

    def decode() -> None:
        for line in lines:
            events.decode_input(line)

    def join_only() -> None:
        join = PendingJoin(86400.0, 1_000_000)
        for event in decoded:
            if event.type == "prediction":
                join.add_prediction(event, event.epoch)
            else:
                join.add_outcome(event, event.epoch)

    def core() -> None:
        engine = Engine(Settings(), labeled_events=False)
        for event in decoded:
            engine.process(event)

    def full() -> None:
        replay_lines(lines, Engine(Settings(), labeled_events=False), io.BytesIO(), io.StringIO())

    def decode_pydantic() -> None:
        with pydantic_only():
            decode()

    def full_pydantic() -> None:
        with pydantic_only():
            full()

    taken = sum(events._fast_input(line, None) is not None for line in lines)
    rows = []
    for gc_on in (True, False):
        # Validation is the difference of two runs, so noise from other work on
        # the machine lands on it twice: best of three, interleaved, for each.
        t_parse, t_decode_slow, t_decode = (
            min(times)
            for times in zip(
                *(
                    (timed(parse, gc_on), timed(decode_pydantic, gc_on), timed(decode, gc_on))
                    for _ in range(3)
                ),
                strict=True,
            )
        )
        t_join = timed(join_only, gc_on)
        t_core = timed(core, gc_on)
        t_full_slow, t_full = (
            min(times)
            for times in zip(
                *((timed(full_pydantic, gc_on), timed(full, gc_on)) for _ in range(3)),
                strict=True,
            )
        )
        rows.append((gc_on, t_parse, t_decode_slow, t_decode, t_join, t_core, t_full_slow, t_full))

    print(f"\nreplay of {n:,} events (8 numeric features, defaults), one process, CPU seconds")
    print(f"{taken:,} of {n:,} events take decode_input's fast path")
    print("validate and replay: as shipped / pydantic only = ratio (lower is better)\n")
    header = (
        f"{'gc':>4} | {'parse':>7} | {'validate: fast / pydantic':>25} | {'join':>7} "
        f"| {'signals+det.':>12} | {'replay total: fast / pydantic':>30} | {'events/s':>9} "
        f"| {'target':>6}"
    )
    print(header)
    print("-" * len(header))
    for gc_on, t_parse, t_dec_slow, t_dec, t_join, t_core, t_full_slow, t_full in rows:
        validate = t_dec - t_parse
        validate_slow = t_dec_slow - t_parse
        detect = t_core - t_join
        rate = n / t_full
        ok = "met" if rate >= TARGET else "missed"
        validate_cell = (
            f"{validate:5.2f}s / {validate_slow:5.2f}s = {validate / validate_slow:4.2f}"
        )
        full_cell = f"{t_full:6.2f}s / {t_full_slow:6.2f}s = {t_full / t_full_slow:4.2f}"
        print(
            f"{'on' if gc_on else 'off':>4} | {t_parse:6.2f}s | {validate_cell:>25} "
            f"| {t_join:6.2f}s | {detect:11.2f}s | {full_cell:>30} | {rate:9,.0f} | {ok:>6}"
        )
    _, t_parse, t_dec_slow, t_dec, t_join, t_core, t_full_slow, t_full = rows[0]
    us = 1e6 / n
    print(
        f"\nper event (gc on): parse {t_parse * us:.1f} us, "
        f"validate {(t_dec - t_parse) * us:.1f} us "
        f"(pydantic only {(t_dec_slow - t_parse) * us:.1f} us), join {t_join * us:.1f} us, "
        f"signals+detectors+controller {(t_core - t_join) * us:.1f} us, "
        f"total {t_full * us:.1f} us (pydantic only {t_full_slow * us:.1f} us)"
    )


# Runs the CLI and reports its peak memory from /proc (VmHWM): ru_maxrss would
# count the forked copy of this (large) benchmark process, and Linux carries it
# across exec.
_CLI = """
import sys
from stream_mlops.cli import main
code = main(["replay", sys.argv[1], *(["--config", sys.argv[2]] if sys.argv[2:] else [])])
with open("/proc/self/status") as status:
    peak = next(line for line in status if line.startswith("VmHWM"))
sys.stderr.write(peak)
sys.exit(code)
"""


def cli_row(path: Path, n: int, config: Path | None = None, *, quiet: bool = False) -> float:
    """The real command in its own process: CPU time and peak memory (it streams).

    Returns its events/s after start-up."""
    # Start-up (importing river and pydantic) is a fixed cost, measured apart.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-c", "import stream_mlops.engine, stream_mlops.offline"], check=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    startup = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    before = after
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CLI, str(path), *([] if config is None else [str(config)])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    *_, summary, peak = done.stderr.decode().strip().splitlines()
    peak_mib = int(peak.split()[1]) / 1024
    rate = n / (cpu - startup)
    if quiet:
        return rate
    print(
        f"\n`stream-mlops replay` process: {n:,} events, {cpu:.1f} s CPU of which start-up "
        f"{startup:.1f} s; {n / (cpu - startup):,.0f} events/s after start-up; "
        f"{wall:.1f} s wall; peak RSS {peak_mib:.0f} MiB"
    )
    print(summary)
    return rate


def targets(path: Path, n_events: int, repeat: int) -> None:
    """Issue 18's table: the core's µs per event and the replay CLI's events/s."""
    decoded = [events.decode_input(line) for line in path.read_bytes().splitlines()]
    n = len(decoded)
    with tempfile.TemporaryDirectory() as tmp:
        configs: dict[str, Path | None] = {}
        for name, text in CONFIGURATIONS.items():
            if text is None:
                configs[name] = None
                continue
            config = Path(tmp) / f"{len(configs)}.toml"
            config.write_text(text)
            configs[name] = config
        settings = {name: load_settings(config) for name, config in configs.items()}

        def core(name: str) -> Callable[[], None]:
            def run() -> None:
                process = Engine(settings[name], labeled_events=False).process
                for event in decoded:
                    process(event)

            return run

        # Interleaved, so that a change of the machine's load falls on every row.
        core_s = {
            name: min(times)
            for name, times in zip(
                CONFIGURATIONS,
                zip(
                    *([timed(core(name), True) for name in CONFIGURATIONS] for _ in range(repeat)),
                    strict=True,
                ),
                strict=True,
            )
        }
        cli = {
            name: cli_row(path, n_events, config, quiet=True) for name, config in configs.items()
        }
    base = core_s["same job"]
    print(f"\n{n:,} events (8 numeric features), CPU time; core: best of {repeat}")
    header = (
        f"{'configuration':<36} | {'core us/event':>13} | {'x same job':>10} | {'target':>14} "
        f"| {'replay CLI events/s':>19} | {'target':>16}"
    )
    print(header)
    print("-" * len(header))
    for name in CONFIGURATIONS:
        us = core_s[name] * 1e6 / n
        core_verdict = "met" if us <= TARGET_CORE_US else "missed"
        goal = TARGET_REPLAY["default" if name == "default" else "same job"]
        replay_verdict = "met" if cli[name] >= goal else "missed"
        print(
            f"{name:<36} | {us:13.2f} | {core_s[name] / base:10.2f} "
            f"| {f'<= {TARGET_CORE_US:g} ' + core_verdict:>14} | {cli[name]:19,.0f} "
            f"| {f'>= {goal:,} ' + replay_verdict:>16}"
        )


if __name__ == "__main__":
    main()
