"""A large engine's checkpoint and restore on a real broker: snapshot, chunks, commit, read.

    PYTHONPATH=. python benchmarks/state_checkpoint.py [--models 5000] \\
        [--bootstrap 127.0.0.1:9092] [--repeat 1]

Builds one engine of ``--models`` models (20 numeric features and a score, 3
predictions and outcomes each: ``benchmarks/snapshot_size.build``), then, for
each client backend side by side, on a state topic of its own created with the
cluster's defaults:

* ``snapshot``: ``Engine.snapshot()``, the bytes (what every checkpoint of a
  changed task pays first);
* ``commit``: the runtime's ``Checkpoint`` writes the chunk records and the
  head in one transaction and commits it;
* ``checkpoint``: the two together;
* ``read``: ``latest_snapshot`` finds the head and reassembles the chunks (what
  a restarting engine does first);
* ``restore``: ``Engine.restore`` of those bytes (client-independent: measured
  once, shown on each row).

Wall-clock seconds, the best of ``--repeat`` runs; on a shared machine, say how
loaded it was next to the figures.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import structlog

from benchmarks.snapshot_size import build
from stream_mlops.config import KafkaSettings
from stream_mlops.engine import Engine
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.checkpoint import Checkpoint
from stream_mlops.kafka.restore import latest_snapshot
from stream_mlops.kafka.state import DEFAULT_CHUNK_BYTES, TaskSnapshot
from stream_mlops.kafka.transport import TopicPartition, TopicSpec

T = TypeVar("T")
CLIENTS = ("kafka-python", "confluent-kafka")


def best(repeat: int, call: Callable[[], T]) -> tuple[float, T]:
    times: list[float] = []
    results: list[T] = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        results.append(call())
        times.append(time.perf_counter() - start)
    return min(times), results[-1]


def on_broker(
    client: str, bootstrap: str, state: bytes, repeat: int
) -> tuple[int, float, float, bytes]:
    """Records written, commit and read seconds, and the bytes read back."""
    transport = open_transport(
        KafkaSettings(bootstrap_servers=bootstrap, client=client), client_id="bench-state"
    )
    topic = f"bench-state-{uuid.uuid4().hex[:8]}"
    admin = transport.admin()
    admin.create_topics([TopicSpec(topic, 1, {"cleanup.policy": "compact"})])
    producer = transport.transactional_producer(f"bench-state-{uuid.uuid4().hex[:8]}")
    reader = transport.partition_reader()
    tp = TopicPartition(topic, 0)
    try:
        checkpoint = Checkpoint(
            producer,
            dead_letter_topic=topic,
            state_topic=topic,
            state_partition=lambda p: 0,
            owner="engine",
            transactional_id="bench",
            clock=time.monotonic,
            log=structlog.get_logger("bench"),
        )
        snap = TaskSnapshot("bench", 0, {"predictions": 1, "outcomes": 1}, state)

        def commit() -> None:
            checkpoint.begin()
            report = checkpoint.commit([snap], {}, None, {})
            assert report.outcome == "committed", report.reason

        commit_s, _ = best(repeat, commit)
        read_s, restored = best(repeat, lambda: latest_snapshot(reader, tp, "bench", 0))
        assert restored is not None and restored.engine_state == state
        return len(snap.records()), commit_s, read_s, restored.engine_state
    finally:
        producer.close()
        reader.close()
        admin.delete_topics([topic], missing_ok=True)
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=5000)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))

    started = time.perf_counter()
    engine = build(args.models, 3)
    print(f"built {args.models} models in {time.perf_counter() - started:.1f} s")
    snapshot_s, state = best(args.repeat, engine.snapshot)
    restore_s, _ = best(args.repeat, lambda: Engine.restore(engine.settings, state, partition=0))
    print(
        f"snapshot: {len(state):,} bytes, chunks of at most {DEFAULT_CHUNK_BYTES:,} "
        f"([kafka] snapshot_chunk_bytes)\n"
    )
    header = ["client", "records", "snapshot s", "commit s", "checkpoint s", "read s", "restore s"]
    rows = []
    for client in CLIENTS:
        records, commit_s, read_s, _ = on_broker(client, args.bootstrap, state, args.repeat)
        rows.append(
            [
                client,
                str(records),
                f"{snapshot_s:.2f}",
                f"{commit_s:.2f}",
                f"{snapshot_s + commit_s:.2f}",
                f"{read_s:.2f}",
                f"{restore_s:.2f}",
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
