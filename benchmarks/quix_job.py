"""The engine's "same job" in Quix Streams: the competitor of benchmarks/throughput.py.

    python benchmarks/quix_job.py --bootstrap HOST:PORT --predictions T --outcomes T \
        --alerts T --group G --state-dir DIR [--commit-interval 5] [--delta 0.002]

Reads the engine's predictions and outcomes topics (JSON values as
``tests.kafka.streams.fraud_stream`` writes them, keys are event ids, the two
topics co-partitioned) with ``processing_guarantee="exactly-once"`` (a
transactional producer, offsets committed in the transaction, ``read_committed``
input), and does what the engine does on the error signal:

* join each prediction with its outcome by event id in Quix state (RocksDB,
  with its changelog topic): whichever arrives first is stored under the
  record's key, the second one emits the pair and deletes the entry;
* the error of the pair (``prediction != actual``, 0 or 1) feeds a river
  ``ADWIN`` per model;
* a detection is produced as a drift alert (JSON, keyed by model id) to the
  alerts topic, in the same transaction as the offsets.

The Quix idioms, to be a fair competitor rather than a crippled one: one
StreamingDataFrame over both topics (``concat``, so both sides share one state
store), one stateful ``apply`` with ``expand=True`` (an alert list, usually
empty: no separate filter step), ``to_topic``. Quix's own JSON codec (orjson),
bytes keys (not decoded).

Simplification in Quix's favour: the ADWIN detectors live in a process dict
keyed by (partition, model_id), not in Quix state, so they are neither
checkpointed nor restored (the engine snapshots its detectors in every
transaction). That is the cheapest honest version: putting a pickled ADWIN in
Quix state per record would cost far more than the join itself.

After a SIGTERM, writes one JSON line to stdout: ``quix.stopped`` with the
pairs joined, the alerts produced, the wall-clock time of the last record
processed and the peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from typing import Any

import orjson
from quixstreams import Application, State, message_context
from river.drift import ADWIN

# Under this key, in each event id's state, waits the side that arrived first.
PENDING = "pending"


class ErrorDriftJob:
    """Join, error, ADWIN per (partition, model): the body of the stateful apply."""

    def __init__(self, delta: float) -> None:
        self.delta = delta
        self.detectors: dict[tuple[int, str], ADWIN] = {}
        self.observations: dict[tuple[int, str], int] = {}
        self.joined = 0
        self.alerts = 0
        # Wall-clock time of the last record processed: with a 5 s commit
        # interval the last commit can come seconds after it, so the benchmark
        # ends Quix's clock here (in Quix's favour).
        self.last_record_at = 0.0

    def process(self, value: dict[str, Any], state: State) -> list[dict[str, Any]]:
        self.last_record_at = time.time()
        pending = state.get(PENDING)
        kind = value["type"]
        if pending is None or pending[0] == kind:
            # First side of the pair (or a duplicate of it: the later copy wins).
            if kind == "prediction":
                side = [kind, value["model_id"], value["model_version"], value["prediction"]]
            else:
                side = [kind, value["actual"]]
            state.set(PENDING, side)
            return []
        state.delete(PENDING)
        if kind == "prediction":
            model_id, version, prediction, actual = (
                value["model_id"],
                value["model_version"],
                value["prediction"],
                pending[1],
            )
        else:
            _, model_id, version, prediction = pending
            actual = value["actual"]
        self.joined += 1
        key = (message_context().partition, model_id)
        detector = self.detectors.get(key)
        if detector is None:
            detector = self.detectors[key] = ADWIN(delta=self.delta)
            self.observations[key] = 0
        detector.update(int(prediction != actual))
        self.observations[key] += 1
        if not detector.drift_detected:
            return []
        self.alerts += 1
        return [
            {
                "type": "drift_alert",
                "model_id": model_id,
                "model_version": version,
                "signal": "error",
                "detector": "adwin",
                "severity": "drift",
                "ts": value["ts"],
                "trigger_event_id": value["event_id"],
                "observations": self.observations[key],
                "stats": {"window_after": int(detector.width), "mean_after": detector.estimation},
            }
        ]


def emit(entry: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(entry) + b"\n")
    sys.stdout.flush()


def build(args: argparse.Namespace, job: ErrorDriftJob) -> Application:
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        # Quix's stock 5 s (the headline), or the engine's checkpoint interval
        # in the benchmark, 100 ms: the same transaction rate.
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        # librdkafka's default already; explicit because the comparison depends on it.
        consumer_extra_config={"isolation.level": "read_committed"},
        loglevel="WARNING",
    )
    predictions = app.topic(args.predictions)
    outcomes = app.topic(args.outcomes)
    alerts = app.topic(args.alerts, key_serializer="str")
    sdf = app.dataframe(predictions).concat(app.dataframe(outcomes))
    sdf = sdf.apply(job.process, stateful=True, expand=True)
    sdf.to_topic(alerts, key=lambda alert: alert["model_id"])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--predictions", required=True)
    parser.add_argument("--outcomes", required=True)
    parser.add_argument("--alerts", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument(
        "--commit-interval", type=float, default=5.0, help="seconds (Quix's default: 5)"
    )
    parser.add_argument("--delta", type=float, default=0.002, help="ADWIN delta (river's default)")
    args = parser.parse_args()
    job = ErrorDriftJob(args.delta)
    build(args, job).run()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    emit(
        {
            "event": "quix.stopped",
            "joined": job.joined,
            "alerts": job.alerts,
            "last_record_at": job.last_record_at,
            "peak_rss_mb": peak_kb // 1024,
        }
    )


if __name__ == "__main__":
    main()
