"""The kafka-python engine against the raw kafka-python consumer, code trees side by side.

For issue 18's kafka-python target (>= 0.8x the raw consume rate of both input
topics): one deployment, produced once, then alternating rounds of

* ``raw``: a bare kafka-python consumer of both input topics (as
  ``benchmarks/throughput.py`` runs it), in this process;
* ``engine <tree>``: ``stream-mlops run`` on throughput.py's same-job
  configuration (exactly-once, ADWIN on the error only, no labeled events),
  started from each ``--tree`` (a checkout of another commit: its own
  ``stream_mlops`` package runs, with this interpreter), one worker.

Each row gives the wall-clock rate (throughput.py's clock: the group's first
commit to its commit of both topics' ends) and the CPU time per record of the
process over the same window (user + system, from /proc), with its ratio to
the raw consumer's. On a machine shared with other work the wall-clock rates
move by 2x between runs; the CPU time per record moves much less, and its
ratio is the one to compare across trees.

Usage: python benchmarks/kafka_python_edge.py --tree main=/path/to/checkout
           [--tree other=DIR ...] [--events 30000] [--rounds 3] [--bootstrap HOST:PORT]
This checkout always runs, as ``this``. Needs a broker (127.0.0.1:9092 by default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import kafka
from kafka.structs import TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.throughput import SAME_JOB_CONFIG, delete_topics, fresh_run
from stream_mlops.service_process import ServiceProcess
from tests.kafka.streams import (
    Deployment,
    create_deployment,
    delete_deployment,
    fraud_stream,
    produce,
)

COMMIT_POLL_S = 0.05
TIMEOUT_S = 600
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def raw(dep: Deployment, expected: int) -> tuple[float, float]:
    """Records/s and CPU us per record of a bare consumer of both input topics."""
    consumer = kafka.KafkaConsumer(
        dep.topics["predictions"],
        dep.topics["outcomes"],
        bootstrap_servers=dep.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    seen = 0
    started: tuple[float, float, int] | None = None
    try:
        while seen < expected:
            batch = consumer.poll(timeout_ms=500, max_records=2000)
            count = sum(len(v) for v in batch.values())
            if started is None and count:
                # The clock starts after the first batch, as throughput.py's.
                started = (time.perf_counter(), time.process_time(), count)
            seen += count
        wall, cpu = time.perf_counter(), time.process_time()
    finally:
        consumer.close()
    assert started is not None
    done = seen - started[2]
    return done / (wall - started[0]), (cpu - started[1]) / done * 1e6


def engine(dep: Deployment, tree: Path, tmp: Path, name: str) -> tuple[float, float]:
    """Records/s and CPU us per record of the engine of ``tree`` on the same job."""
    run = fresh_run(dep, "kafka-python", f"edge-{name}")
    try:
        config = run.write_config(
            tmp / f"engine-{name}.toml",
            extra=SAME_JOB_CONFIG,
            kafka_extra="publish_labeled_events = false",
        )
        service = ServiceProcess(
            f"the engine of {tree}",
            ["run", "--config", str(config), "--instance-id", f"edge-{name}"],
            tmp / f"engine-{name}.log",
            # `python -m` puts the working directory first on sys.path: the
            # tree's package runs, whatever else is on PYTHONPATH.
            cwd=tree,
        )
        with service:
            assert service.pid is not None
            return window(run, service)
    finally:
        delete_topics(dep.bootstrap, [run.topics["state"]])


def window(run: Deployment, service: ServiceProcess) -> tuple[float, float]:
    """From the group's first commit to its commit of both topics' ends."""
    assert service.pid is not None
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=run.bootstrap, group_id=run.group_id, enable_auto_commit=False
    )
    try:
        tps = [
            TopicPartition(run.topics[kind], p)
            for kind in ("predictions", "outcomes")
            for p in range(run.partitions)
        ]
        total = sum(consumer.end_offsets(tps).values())
        first: tuple[float, float, int] | None = None
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            done = sum(consumer.committed(tp) or 0 for tp in tps)
            now, cpu = time.perf_counter(), cpu_s(service.pid)
            if first is None and done > 0:
                first = (now, cpu, done)
            if done == total:
                break
            if not service.running() or time.monotonic() > deadline:
                raise AssertionError(f"the engine stopped or stalled at {done}/{total}")
            time.sleep(COMMIT_POLL_S)
    finally:
        consumer.close(autocommit=False)
    assert first is not None
    records = total - first[2]
    if records <= 0:
        raise AssertionError("one commit took every record: raise --events")
    return records / (now - first[0]), (cpu - first[1]) / records * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", default=[], help="LABEL=DIR, repeatable")
    parser.add_argument("--events", type=int, default=30_000, help="pairs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    args = parser.parse_args()
    trees = {"this": REPO}
    for spec in args.tree:
        label, _, path = spec.partition("=")
        if not path or not (Path(path) / "stream_mlops").is_dir():
            parser.error(f"--tree {spec}: want LABEL=DIR, DIR a checkout with stream_mlops/")
        trees[label] = Path(path).resolve()
    records = 2 * args.events
    dep = create_deployment(args.bootstrap, 1)
    results: dict[str, list[tuple[float, float]]] = {"raw": []}
    results.update({label: [] for label in trees})
    try:
        predictions, outcomes = fraud_stream(
            args.events, drift_at=args.events // 2, error_before=0.05, error_after=0.3, seed=7
        )
        produce(args.bootstrap, dep.topics["predictions"], predictions, 1)
        produce(args.bootstrap, dep.topics["outcomes"], outcomes, 1)
        del predictions, outcomes
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(args.rounds):
                results["raw"].append(raw(dep, records))
                for label, tree in trees.items():
                    results[label].append(engine(dep, tree, Path(tmp), f"{label}-{round_}"))
                print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr)
    finally:
        delete_deployment(dep)

    raw_rate = statistics.median(r for r, _ in results["raw"])
    raw_cpu = statistics.median(c for _, c in results["raw"])
    print(
        f"{records:,} input records on one partition per topic, same job, 1 worker, "
        f"{args.rounds} alternating rounds, medians; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end"
    )
    print(f"{'':24} | {'records/s':>10} | {'x raw':>6} | {'CPU us/record':>13} | {'x raw CPU':>9}")
    for label, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        name = "raw kafka-python" if label == "raw" else f"engine {label}"
        print(
            f"{name:24} | {rate:10,.0f} | {rate / raw_rate:6.2f} | {cpu:13.2f} | "
            f"{raw_cpu / cpu:9.2f}"
        )


if __name__ == "__main__":
    main()
