"""End-to-end engine throughput and alert latency on a real broker.

Prints one table. Side by side, in the same run and on the same topics:

* ``raw consume``: a plain kafka-python consumer reading the input topics
  (the client's ceiling: nothing decoded, nothing produced);
* ``engine``: ``stream-mlops run`` with exactly-once on, from the first
  assignment until the group has committed the end of both input topics.

The ratio engine / raw is the figure of merit (target >= 0.8).

Then the latency from producing an outcome to its results being visible to a
``read_committed`` reader, with a producer running at half the engine's
measured rate: for labeled events (every joined outcome: thousands of
samples, committed in the same transaction as any alert it triggers) and for
the drift alerts themselves (few samples: alerts are rare by design).

Usage: python benchmarks/engine_throughput.py [--events 50000] [--bootstrap HOST:PORT]
Needs a broker (``stream-mlops broker start``, or KAFKA_BOOTSTRAP_SERVERS).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import kafka
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.kafka.engine_process import EngineProcess
from tests.kafka.streams import (
    create_deployment,
    delete_deployment,
    fraud_stream,
    produce,
    wait_consumed,
)


def raw_consume_rate(client: str, bootstrap: str, topics: list[str], expected: int) -> float:
    if client == "confluent-kafka":
        return raw_confluent_rate(bootstrap, topics, expected)
    consumer = kafka.KafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    seen = 0
    started = None
    try:
        while seen < expected:
            batch = consumer.poll(timeout_ms=500, max_records=2000)
            if started is None and batch:
                started = time.perf_counter()
            seen += sum(len(v) for v in batch.values())
    finally:
        consumer.close()
    assert started is not None
    return seen / (time.perf_counter() - started)


def raw_confluent_rate(bootstrap: str, topics: list[str], expected: int) -> float:
    import confluent_kafka as ck

    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe(topics)
    seen = 0
    started = None
    try:
        while seen < expected:
            batch = consumer.consume(5000, 0.5)
            if started is None and batch:
                started = time.perf_counter()
            seen += sum(1 for m in batch if m.error() is None)
    finally:
        consumer.close()
    assert started is not None
    return seen / (time.perf_counter() - started)


def paced_producer(
    bootstrap: str, topics: dict[str, str], pairs_per_s: float, seconds: float, queue: mp.Queue
) -> None:  # type: ignore[type-arg]
    """Predictions, and each outcome 0.5 s later, at a steady rate; reports send times."""
    n = int(pairs_per_s * seconds)
    predictions, outcomes = fraud_stream(
        n, drift_at=n // 2, error_before=0.05, error_after=0.4, seed=11
    )
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    sent: dict[str, float] = {}
    start = time.perf_counter()
    lag = int(0.5 * pairs_per_s)
    for i in range(n + lag):
        due = start + i / pairs_per_s
        while (now := time.perf_counter()) < due:
            time.sleep(min(0.001, due - now))
        if i < n:
            p = predictions[i]
            producer.send(
                topics["predictions"], key=str(p["event_id"]).encode(), value=orjson.dumps(p)
            )
        j = i - lag
        if 0 <= j < n:
            o = outcomes[j]
            producer.send(
                topics["outcomes"], key=str(o["event_id"]).encode(), value=orjson.dumps(o)
            )
            sent[str(o["event_id"])] = time.time()
    producer.flush()
    queue.put(sent)


def visibility_times(
    bootstrap: str, topics: list[str], until: float
) -> dict[str, dict[str, float]]:
    """Per topic: when each event (by trigger or event id) became visible."""
    consumer = kafka.KafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="latest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    seen: dict[str, dict[str, float]] = {t: {} for t in topics}
    try:
        consumer.poll(timeout_ms=100)
        while time.time() < until:
            for tp, records in consumer.poll(timeout_ms=100).items():
                now = time.time()
                for r in records:
                    event = orjson.loads(r.value)
                    key = str(event.get("trigger_event_id") or event.get("event_id"))
                    seen[tp.topic].setdefault(key, now)
    finally:
        consumer.close()
    return seen


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def p50_p99(values: list[float], empty: str) -> str:
    if not values:
        return empty
    return f"{percentile(values, 0.5):.0f} / {percentile(values, 0.99):.0f} (n={len(values)})"


def measure(client: str, args: argparse.Namespace, tmp: Path) -> list[tuple[str, str]]:
    dep = create_deployment(args.bootstrap, args.partitions, client=client)
    try:
        predictions, outcomes = fraud_stream(
            args.events, drift_at=args.events // 2, error_before=0.05, error_after=0.3, seed=7
        )
        produce(args.bootstrap, dep.topics["predictions"], predictions, args.partitions)
        produce(args.bootstrap, dep.topics["outcomes"], outcomes, args.partitions)
        total = 2 * args.events
        inputs = [dep.topics["predictions"], dep.topics["outcomes"]]
        raw = raw_consume_rate(client, args.bootstrap, inputs, total)

        config = dep.write_config(tmp / f"engine-{client}.toml")
        with EngineProcess(config, f"bench-{client}", tmp / f"engine-{client}.log") as engine:
            engine.wait_for_log("engine.started")
            t0 = time.perf_counter()
            wait_consumed(dep, timeout_s=900)
            engine_rate = total / (time.perf_counter() - t0)

            # Latency at half the engine's rate (rate counts records; a pair is two).
            pairs_per_s = engine_rate / 2 / 2
            queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
            until = time.time() + args.latency_seconds + 5
            proc = mp.Process(
                target=paced_producer,
                args=(args.bootstrap, dep.topics, pairs_per_s, args.latency_seconds, queue),
            )
            proc.start()
            seen = visibility_times(
                args.bootstrap, [dep.topics["labeled_events"], dep.topics["drift_alerts"]], until
            )
            labeled_seen = seen[dep.topics["labeled_events"]]
            alerts_seen = seen[dep.topics["drift_alerts"]]
            sent = queue.get(timeout=120)
            proc.join(timeout=60)
            engine.terminate()
            peak_rss = max(
                (int(str(e.get("peak_rss_mb", 0))) for e in engine.log_events()), default=0
            )
        latencies = [(labeled_seen[k] - sent[k]) * 1000 for k in sent if k in labeled_seen]
        alert_lat = [(v - sent[k]) * 1000 for k, v in alerts_seen.items() if k in sent]
        return [
            ("raw consume (records/s)", f"{raw:,.0f}"),
            ("engine end-to-end, exactly-once (records/s)", f"{engine_rate:,.0f}"),
            ("ratio engine / raw", f"{engine_rate / raw:.2f}"),
            ("latency load (records/s)", f"{2 * pairs_per_s:,.0f}"),
            ("labeled-event visibility p50 / p99 (ms)", p50_p99(latencies, "no samples")),
            ("alert visibility p50 / p99 (ms)", p50_p99(alert_lat, "no alerts in the window")),
            ("engine peak RSS (MB)", str(peak_rss) if peak_rss else "n/a"),
        ]
    finally:
        delete_deployment(dep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--events", type=int, default=50_000, help="predictions (and as many outcomes)"
    )
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument(
        "--clients", default="kafka-python,confluent-kafka", help="comma-separated backends"
    )
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    args = parser.parse_args()
    clients = args.clients.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="smlops-bench-"))
    results = {client: measure(client, args, tmp) for client in clients}
    names = [name for name, _ in results[clients[0]]]
    width = max(len(n) for n in names)
    colw = [max(len(c), *(len(v) for _, v in results[c])) for c in clients]
    print(f"engine throughput: {2 * args.events:,} input records, {args.partitions} partition(s)")
    print(f"{'':<{width}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(clients, colw, strict=True)))
    for i, name in enumerate(names):
        cells = [f"{results[c][i][1]:>{w}}" for c, w in zip(clients, colw, strict=True)]
        print(f"{name:<{width}}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
