"""What the engine's Kafka runtime costs per record: before and after the one task runtime.

    PYTHONPATH=. python benchmarks/runtime_overhead.py [--events 100000] [--repeat 5]
        [--before-rev f6d69e4]

One process, no broker: every row runs on the in-memory transport of the unit
tests (tests/kafka/in_memory.py), so what differs between the rows is Python
on the runtime's side, not the network. The transport's own cost (building
records, appending outputs) is in both runtime rows alike. Rows, each on the
same records (predictions and their outcomes 100 events later, on 2
partitions):

* ``core``: ``decode_input`` and ``Engine.process`` over each partition's
  records in the order the runtimes see them: the work no runtime can avoid;
* ``before``: ``EngineRuntime`` of ``stream_mlops/kafka/runtime.py`` as of
  ``--before-rev`` (read from git; the restore helpers it took from
  ``kafka/state.py`` now live in ``kafka/restore.py``, and are handed to it);
* ``after``: ``TaskRuntime`` with ``EngineService``.

Each under three configurations: the default detector set; the throughput
benchmark's "same job" (ADWIN on the error only, no labeled events), where the
core is cheaper and the runtime's share larger; and a "null core" (an engine
that decides nothing), where what is left is the runtimes' own loops, decoding
and the transport. A runtime row times its processing, from the end of its
restore (a full garbage collection, whose length varies with the heap) to
its last commit. Times are CPU times
(``time.process_time``, steadier than wall time on a shared machine), best of
``--repeat`` runs, the variants interleaved within each repeat. Both runtimes
must publish the same alerts as the core (checked). Prints a table: µs per
event, the runtime's own µs per event (row minus core), after/before of the
best times, and the median of each repeat's after/before (the two ran back to
back, so the ratio moves less with the machine's load).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import orjson

from stream_mlops.config import Settings, parse_settings
from stream_mlops.engine import Engine
from stream_mlops.events import DriftAlert, decode_input
from stream_mlops.kafka import engine_service, restore, state, task_runtime
from stream_mlops.kafka.engine_service import EngineService
from stream_mlops.kafka.task_runtime import RuntimeConfig, TaskRuntime
from stream_mlops.kafka.transport import Record
from stream_mlops.logging import configure
from tests.kafka.in_memory import TOPICS, MemoryCluster, MemoryGroupConsumer, MemoryTransport

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 2
LAG = 100
SAME_JOB: dict[str, Any] = {
    "defaults": {
        "distribution_checks": False,
        "min_observations": 0,
        "cooldown_observations": 0,
        "retrain_on": [],
        "detectors": {
            "error": [{"name": "adwin", "delta": 0.002}],
            "estimated_error": [],
            "score": [],
            "prediction": [],
            "feature:*": [],
        },
    },
}


class NullEngine:
    """An engine that decides nothing, quickly: what is left is the runtime's own work
    (and decoding, which both runtimes do)."""

    def __init__(self, settings: Settings, **_: object) -> None:
        self.stats = types.SimpleNamespace(pending=0)

    def process(self, event: object, offset: int | None = None) -> list[object]:
        return []

    def snapshot(self) -> bytes:
        return b""


def records(n_events: int) -> list[tuple[str, int, bytes]]:
    """(topic, partition, value) of ``n_events`` predictions and outcomes, in production order."""
    import random

    rng = random.Random(0)
    out: list[tuple[str, int, bytes]] = []
    pending: list[tuple[str, int, bytes]] = []
    for i in range(n_events // 2):
        drifted = i > n_events // 4
        prediction = int(rng.random() < 0.1)
        wrong = rng.random() < (0.3 if drifted else 0.05)
        partition = i % PARTITIONS
        event = {
            "event_id": f"txn-{i:08d}",
            "model_id": "fraud",
            "model_version": "v1",
            "ts": 1_790_000_000.0 + i,
            "features": {f"f{k}": round(rng.gauss(50, 10), 3) for k in range(8)},
            "prediction": prediction,
            "score": round(min(1.0, max(0.0, rng.gauss(0.1 + 0.6 * prediction, 0.1))), 4),
        }
        outcome = {
            "event_id": event["event_id"],
            "ts": event["ts"] + 60,
            "actual": 1 - prediction if wrong else prediction,
        }
        out.append(("predictions", partition, orjson.dumps(event)))
        pending.append(("outcomes", partition, orjson.dumps(outcome)))
        if len(pending) > LAG:
            out.append(pending.pop(0))
    return out + pending


def old_runtime_module(rev: str) -> Any:
    """``kafka/runtime.py`` as of ``rev``, with the restore helpers it imported from state.py."""
    source = subprocess.run(
        ["git", "show", f"{rev}:stream_mlops/kafka/runtime.py"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    def snapshot_or_fresh(consumer: Any, reader: Any, **kw: Any) -> Any:
        resume = restore.task_snapshot_or_fresh(consumer, reader, **kw)
        if isinstance(resume, dict):  # it seeked fresh tasks itself then
            for tp in kw["inputs"]:
                consumer.seek(tp, resume[tp.topic])
        return resume

    module = types.ModuleType("runtime_before")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    helpers = {
        "require_copartitioned": restore.require_copartitioned,
        "state_partition": restore.state_partition,
        "task_snapshot_or_fresh": snapshot_or_fresh,
    }
    with mock.patch.multiple(state, create=True, **helpers):
        exec(compile(source, f"{rev}:stream_mlops/kafka/runtime.py", "exec"), module.__dict__)
    return module


class DrainingTransport(MemoryTransport):
    """Sets ``stop`` once every input record was delivered and a poll came back empty."""

    def __init__(self, cluster: MemoryCluster, total: int, stop: threading.Event) -> None:
        super().__init__(cluster)
        self._total, self._stop = total, stop

    def group_consumer(self, group_id: str, **settings: Any) -> MemoryGroupConsumer:
        consumer = super().group_consumer(group_id, **settings)
        poll, delivered = consumer.poll, [0]

        def draining_poll(timeout_s: float, max_records: int) -> list[Record]:
            got = poll(timeout_s, max_records)
            delivered[0] += len(got)
            if not got and delivered[0] >= self._total:
                self._stop.set()
            return got

        consumer.poll = draining_poll  # type: ignore[method-assign]
        return consumer


def deployment(inputs: list[tuple[str, int, bytes]]) -> MemoryCluster:
    cluster = MemoryCluster()
    cluster.create_topics(TOPICS.values(), PARTITIONS)
    for topic, partition, value in inputs:
        cluster.produce(topic, value, key=b"k", partition=partition)
    return cluster


@contextlib.contextmanager
def steady_phase(module: Any) -> Iterator[list[float]]:
    """Marks the CPU time when the runtime in ``module`` has restored its tasks.

    Both runtimes end their (one) restore with ``freeze_long_lived()``, a full
    collection of the whole heap that takes as long as thousands of records
    and varies with it: the rows time what follows, the processing.
    """
    marks: list[float] = []
    freeze = module.freeze_long_lived

    def marking() -> int:
        frozen: int = freeze()
        marks.append(time.process_time())
        return frozen

    with mock.patch.object(module, "freeze_long_lived", marking):
        yield marks


def run_before(
    settings: Settings, inputs: list[tuple[str, int, bytes]], module: Any, engine: type
) -> Any:
    cluster, stop = deployment(inputs), threading.Event()
    transport = DrainingTransport(cluster, len(inputs), stop)
    with mock.patch.object(module, "Engine", engine), steady_phase(module) as marks:
        module.EngineRuntime(settings, transport, instance_id="bench").run(stop)
        elapsed = time.process_time() - marks[0]
    return elapsed, alerts(cluster)


def run_after(settings: Settings, inputs: list[tuple[str, int, bytes]], engine: type) -> Any:
    cluster, stop = deployment(inputs), threading.Event()
    kafka = settings.kafka
    config = RuntimeConfig.for_group(kafka, kafka, instance_id="bench")
    transport = DrainingTransport(cluster, len(inputs), stop)
    with mock.patch.object(engine_service, "Engine", engine), steady_phase(task_runtime) as marks:
        TaskRuntime(EngineService(settings), transport, config).run(stop)
        elapsed = time.process_time() - marks[0]
    return elapsed, alerts(cluster)


def run_core(settings: Settings, inputs: list[tuple[str, int, bytes]], engine: type) -> Any:
    """The core on each partition's records, in the order the memory consumer delivers them."""
    cluster = deployment(inputs)
    consumer = MemoryGroupConsumer(cluster, "core")
    consumer.subscribe(["predictions", "outcomes"], mock.Mock())
    consumer.poll(0, 1)  # takes the assignment
    for tp in consumer.assignment():
        consumer.seek(tp, 0)
    batches = []
    while batch := consumer.poll(0, 2000):
        batches.append(batch)
    kinds = {"predictions": "prediction", "outcomes": "outcome"}
    labeled = settings.kafka.publish_labeled_events
    started = time.process_time()
    engines = {p: engine(settings, partition=p, labeled_events=labeled) for p in range(PARTITIONS)}
    found: set[str] = set()
    for batch in batches:
        for r in batch:
            event = decode_input(r.value or b"", default_type=kinds[r.topic])  # type: ignore[arg-type]
            for output in engines[r.partition].process(event, r.offset):
                if isinstance(output, DriftAlert):
                    found.add(output.alert_id)
    return time.process_time() - started, found


def quiet_logs() -> None:
    """The services' JSON logs, rendered as in production, written to nowhere."""
    sink = Path(os.devnull).open("w")  # noqa: SIM115 - open for the whole run
    with contextlib.redirect_stdout(sink):
        configure("json")


def alerts(cluster: MemoryCluster) -> set[str]:
    return {
        str(orjson.loads(r.value or b"")["alert_id"])
        for r in cluster.committed_records("drift-alerts")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before-rev", default="f6d69e4")
    args = parser.parse_args()
    quiet_logs()
    inputs = records(args.events)
    before = old_runtime_module(args.before_rev)
    configs: dict[str, tuple[Settings, type]] = {
        "default detectors": (parse_settings({"kafka": {"topics": TOPICS}}), Engine),
        "same job": (
            parse_settings(
                {"kafka": {"topics": TOPICS, "publish_labeled_events": False}, **SAME_JOB}
            ),
            Engine,
        ),
        "null core": (parse_settings({"kafka": {"topics": TOPICS}}), NullEngine),
    }
    rows = []
    for name, (settings, engine) in configs.items():
        variants: dict[str, Callable[[], Any]] = {
            "core": lambda s=settings, e=engine: run_core(s, inputs, e),
            "before": lambda s=settings, e=engine: run_before(s, inputs, before, e),
            "after": lambda s=settings, e=engine: run_after(s, inputs, e),
        }
        times: dict[str, list[float]] = {v: [] for v in variants}
        seen: dict[str, set[str]] = {}
        for _ in range(args.repeat):
            for variant, run in variants.items():
                gc.collect()
                elapsed, found = run()
                times[variant].append(elapsed)
                seen[variant] = found
                gc.unfreeze()
        assert seen["before"] == seen["core"] == seen["after"], (
            "the runtimes disagree with the core"
        )
        us = {v: min(t) / len(inputs) * 1e6 for v, t in times.items()}
        # Each repeat's before and after ran back to back: their ratio is less
        # exposed to the machine's load changing over the run than the best times.
        pairs = zip(times["after"], times["before"], strict=True)
        paired = statistics.median(a / b for a, b in pairs)
        rows.append((name, us, paired, len(seen["core"])))
    print(
        f"{len(inputs):,} records (predictions + outcomes) on {PARTITIONS} partitions, "
        f"in-memory transport, CPU µs per record, best of {args.repeat}"
    )
    print(
        f"{'configuration':<20} {'core':>7} {'before':>8} {'after':>7} "
        f"{'runtime before':>15} {'runtime after':>14} {'after/before':>13} "
        f"{'paired median':>14} {'alerts':>7}"
    )
    for name, us, paired, n_alerts in rows:
        own_before, own_after = us["before"] - us["core"], us["after"] - us["core"]
        print(
            f"{name:<20} {us['core']:>7.2f} {us['before']:>8.2f} {us['after']:>7.2f} "
            f"{own_before:>15.2f} {own_after:>14.2f} {us['after'] / us['before']:>13.3f} "
            f"{paired:>14.3f} {n_alerts:>7}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
