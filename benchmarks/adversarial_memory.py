"""Peak RSS of one engine under the adversarial streams of issue 13 (finding 6).

    PYTHONPATH=. python benchmarks/adversarial_memory.py [--main-src DIR] [--streams a,b]

Each stream runs in a fresh child process, which decodes every record as the
Kafka runtime does (``decode_input`` of the JSON bytes) and hands it to one
``Engine`` with the default settings; an ``EventError`` (a dead letter on
Kafka) is counted as refused. The child reports its peak RSS (VmHWM, which
includes the interpreter and imports) and what the engine kept. Streams:

* ``models``: 30,000 distinct ``model_id``s over ten days of event time, each
  with 5 predictions (8 numeric features and a score) a minute apart and their
  outcomes 30 s later;
* ``features``: ten predictions carrying 50,000 new feature names each;
* ``string``: one prediction with a 10 MB string feature;
* ``version``: one prediction with a 1 MB ``model_version``;
* ``name``: one prediction with a 100,000-character feature name;
* ``baseline``: 100 ordinary predictions and outcomes: the process's floor.

Each adversarial stream is followed by the same 100 ordinary events, so the
table also shows the engine still working (``joined``).

Bound: a stream may raise the peak by at most ``BOUND_MB`` over the baseline
child. The largest cost these streams may legitimately cause is the
``models`` one at ``[limits] max_models_per_task``: 1,000 model versions with
10 signal tracks each at 4 to 20 KB a track (up to 200 MB), plus the pending
join of one TTL of their traffic; the decoded 10 MB record costs its own size
a few times over while it is read. (On main the ``models`` stream kept every
model id and the ``features`` stream 500,000 tracks.)

``--main-src DIR`` also runs each stream on another checkout (e.g. main,
exported with ``git archive main | tar -x -C DIR``) in its own child, and adds
its figures side by side with the ratio (main's ``features`` child needs 2 GB).
With main, one run took about 27 minutes on 2 shared cores at a load average
of 14.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BOUND_MB = 200
T0 = 1_800_000_000.0
DAY = 86400.0
STREAMS = ("baseline", "models", "features", "string", "version", "name")
ROOT = Path(__file__).resolve().parents[1]


def _peak_mb() -> float:
    with Path("/proc/self/status").open() as status:
        line = next(line for line in status if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def _prediction(
    event_id: str, ts: float, features: dict[str, Any], *, model_id: str = "fraud", **extra: Any
) -> dict[str, Any]:
    return {
        "type": "prediction",
        "event_id": event_id,
        "model_id": model_id,
        "model_version": "v1",
        "ts": ts,
        "features": features,
        "prediction": 1,
        "score": 0.25,
        **extra,
    }


def _ordinary(start: float) -> Iterator[dict[str, Any]]:
    for i in range(100):
        ts = start + i
        yield _prediction(f"ok-{i}", ts, {"amount": float(i % 13), "merchant": "grocery"})
        yield {"type": "outcome", "event_id": f"ok-{i}", "ts": ts + 0.5, "actual": i % 2}


def _models() -> Iterator[dict[str, Any]]:
    count = 30_000
    for m in range(count):
        start = T0 + m * (10 * DAY / count)
        for k in range(5):
            ts = start + 60.0 * k
            features = {f"f{j}": (m * 7 + k * 3 + j) % 17 / 4.0 for j in range(8)}
            event_id = f"m{m}-{k}"
            yield _prediction(event_id, ts, features, model_id=f"model-{m}")
            yield {"type": "outcome", "event_id": event_id, "ts": ts + 30.0, "actual": k % 2}


def _stream(name: str) -> tuple[Iterator[dict[str, Any]], float]:
    """The stream's documents and the event time its ordinary tail starts at."""
    if name == "baseline":
        return iter(()), T0
    if name == "models":
        return _models(), T0 + 10 * DAY + 3600
    if name == "features":
        docs = (
            _prediction(f"wide-{r}", T0 + r, {f"r{r}-feature-{i}": 1.0 for i in range(50_000)})
            for r in range(10)
        )
        return docs, T0 + 20
    if name == "string":
        return iter([_prediction("long", T0, {"note": "x" * 10_000_000})]), T0 + 20
    if name == "version":
        return iter([_prediction("long", T0, {"a": 1.0}, model_version="v" * 1_000_000)]), T0 + 20
    if name == "name":
        return iter([_prediction("long", T0, {"n" * 100_000: 1.0})]), T0 + 20
    raise ValueError(f"unknown stream {name!r}")


def child(name: str) -> None:
    """Run one stream through one engine; print a JSON line of what happened."""
    from stream_mlops.config import Settings
    from stream_mlops.engine import Engine
    from stream_mlops.events import EventError, decode_input, dumps

    engine = Engine(Settings())
    records = refused = 0
    reasons: dict[str, int] = {}
    docs, tail = _stream(name)
    started = time.perf_counter()
    for source in (docs, _ordinary(tail)):
        for doc in source:
            records += 1
            raw = dumps(doc, sort_keys=False)
            try:
                engine.process(decode_input(raw))
            except EventError as exc:
                refused += 1
                reason = str(exc).split(":", 1)[0]
                reasons[reason] = reasons.get(reason, 0) + 1
            del raw
    stats = engine.stats
    tracks = sum(len(state.features) + len(state.categorical) for state in engine._models.values())
    print(
        json.dumps(
            {
                "stream": name,
                "records": records,
                "refused": refused,
                "reasons": reasons,
                "model_states": len(engine._models),
                "feature_tracks": tracks,
                "retired": stats.versions_retired,
                "joined": stats.joined,
                "peak_mb": round(_peak_mb(), 1),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


def _run(name: str, src: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", name],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{name} on {src}: child failed\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--main-src", type=Path, default=None, help="another checkout to compare")
    parser.add_argument("--streams", default=",".join(STREAMS), help="comma-separated streams")
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child)
        return 0
    names = [n for n in args.streams.split(",") if n]
    if "baseline" not in names:
        names.insert(0, "baseline")
    rows = []
    for name in names:
        here = _run(name, ROOT)
        there = _run(name, args.main_src) if args.main_src is not None else None
        rows.append((name, here, there))
    floor = rows[0][1]["peak_mb"]
    header = [
        "stream",
        "records",
        "refused",
        "states",
        "retired",
        "tracks",
        "joined",
        "peak MB",
        "+MB",
        "bound",
    ]
    if args.main_src is not None:
        header += ["main: states", "tracks", "joined", "peak MB", "main/this"]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    over = False
    for name, here, there in rows:
        grown = here["peak_mb"] - floor
        within = grown <= BOUND_MB
        over |= not within
        cells = [
            name,
            str(here["records"]),
            str(here["refused"]),
            str(here["model_states"]),
            str(here["retired"]),
            str(here["feature_tracks"]),
            str(here["joined"]),
            f"{here['peak_mb']:.0f}",
            f"{grown:+.0f}",
            f"{'ok' if within else 'OVER'} (<= +{BOUND_MB})",
        ]
        if there is not None:
            cells += [
                str(there["model_states"]),
                str(there["feature_tracks"]),
                str(there["joined"]),
                f"{there['peak_mb']:.0f}",
                f"{there['peak_mb'] / here['peak_mb']:.1f}x",
            ]
        print(" | ".join(cells))
    print()
    for name, here, _ in rows:
        if here["reasons"]:
            print(f"{name}: refused by field {here['reasons']}")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
