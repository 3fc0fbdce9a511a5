"""What the engine's Prometheus metrics cost per record, and what a scrape costs.

    PYTHONPATH=. python benchmarks/metrics_overhead.py [--events 100000] [--repeat 5]

One process, no broker: the engine on the task runtime over the in-memory
transport (tests/kafka/in_memory.py), on the records of
``benchmarks/runtime_overhead.py`` (predictions and their outcomes 100 events
later, 2 partitions), with and without the metrics a ``--metrics-port``
engine adds (``RuntimeMetrics`` and ``EngineMetrics`` as runtime observers,
the alert listener). CPU time (``time.process_time``) from the end of the
restore to the last commit, best of ``--repeat``, the two variants
interleaved within each repeat; the ratio column is the median of each
repeat's on/off (they ran back to back). Both variants must publish the same
alerts. The last line times one scrape (``generate_latest`` of the engine's
registry after the run), which happens once per scrape interval, not per
record.

``benchmarks/throughput.py`` has the same comparison end to end on a broker
(events/s, metrics on and scraped vs off); on a loaded machine its noise is
larger than this difference, which is why this one exists.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import generate_latest

from benchmarks.runtime_overhead import (
    PARTITIONS,
    SAME_JOB,
    TOPICS,
    DrainingTransport,
    alerts,
    deployment,
    quiet_logs,
    records,
    steady_phase,
)
from stream_mlops.config import Settings, parse_settings
from stream_mlops.kafka import task_runtime
from stream_mlops.kafka.engine_service import EngineService
from stream_mlops.kafka.observer import RuntimeObserver
from stream_mlops.kafka.task_runtime import RuntimeConfig, TaskRuntime
from stream_mlops.ops.engine_metrics import EngineMetrics
from stream_mlops.ops.metrics import RuntimeMetrics, service_registry

SCRAPES = 200


def run(settings: Settings, inputs: list[tuple[str, int, bytes]], metered: bool) -> Any:
    cluster, stop = deployment(inputs), threading.Event()
    kafka = settings.kafka
    config = RuntimeConfig.for_group(kafka, kafka, instance_id="bench")
    transport = DrainingTransport(cluster, len(inputs), stop)
    registry = service_registry("engine")
    observers: list[RuntimeObserver] = []
    service = EngineService(settings)
    engine_metrics: EngineMetrics | None = None
    if metered:
        engine_metrics = EngineMetrics(registry)
        observers = [RuntimeMetrics(registry, "engine"), engine_metrics]
        service = EngineService(settings, on_alert=engine_metrics.alerted)
    with steady_phase(task_runtime) as marks:
        runtime = TaskRuntime(service, transport, config, observers=observers)
        if engine_metrics is not None:
            engine_metrics.watch(lambda: runtime.tasks)
        runtime.run(stop)
        elapsed = time.process_time() - marks[0]
    return elapsed, alerts(cluster), registry


def scrape_cost(registry: Any) -> tuple[float, int]:
    """CPU µs of one scrape of ``registry``, and the scrape's size in bytes."""
    started = time.process_time()
    for _ in range(SCRAPES):
        body = generate_latest(registry)
    return (time.process_time() - started) / SCRAPES * 1e6, len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    quiet_logs()
    inputs = records(args.events)
    configs = {
        "default detectors": parse_settings({"kafka": {"topics": TOPICS}}),
        "same job": parse_settings(
            {"kafka": {"topics": TOPICS, "publish_labeled_events": False}, **SAME_JOB}
        ),
    }
    rows = []
    registry = None
    for name, settings in configs.items():
        variants: dict[str, Callable[[], Any]] = {
            "off": lambda s=settings: run(s, inputs, metered=False),
            "on": lambda s=settings: run(s, inputs, metered=True),
        }
        times: dict[str, list[float]] = {v: [] for v in variants}
        seen: dict[str, set[str]] = {}
        for _ in range(args.repeat):
            for variant, go in variants.items():
                gc.collect()
                elapsed, found, used = go()
                times[variant].append(elapsed)
                seen[variant] = found
                if variant == "on":
                    registry = used
                gc.unfreeze()
        assert seen["on"] == seen["off"], "metrics changed what the engine published"
        us = {v: min(t) / len(inputs) * 1e6 for v, t in times.items()}
        paired = statistics.median(a / b for a, b in zip(times["on"], times["off"], strict=True))
        rows.append((name, us, paired, len(seen["on"])))
    print(
        f"{len(inputs):,} records (predictions + outcomes) on {PARTITIONS} partitions, "
        f"in-memory transport, CPU µs per record, best of {args.repeat}"
    )
    print(
        f"{'configuration':<20} {'metrics off':>12} {'metrics on':>11} {'on - off':>9} "
        f"{'on/off paired median':>21} {'alerts':>7}"
    )
    for name, us, paired, n_alerts in rows:
        print(
            f"{name:<20} {us['off']:>12.2f} {us['on']:>11.2f} {us['on'] - us['off']:>9.2f} "
            f"{paired:>21.3f} {n_alerts:>7}"
        )
    assert registry is not None
    cost, size = scrape_cost(registry)
    print(f"one scrape of the engine's /metrics: {cost:,.0f} CPU µs, {size:,} bytes")


if __name__ == "__main__":
    main()
