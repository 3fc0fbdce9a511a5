"""The fault benchmark (issue 13, "Done when"): kill -9, restarts, fuzzed records.

Prints one table, one column per client backend (kafka-python,
confluent-kafka), from runs on a real broker (random topic and group names):

* ``kill -9``: a fraud stream with an injected drift (the error rate steps
  from 5% to 30%). All predictions are produced and consumed first (a fixed
  processing order, as ``replay`` runs), then a thread produces the outcomes
  at ``--rate`` per second while the engine is killed ``--kills`` times at
  random moments (0.5 to 3 s after the restarted engine's first commit) and
  restarted at once with the same instance id. Afterwards the alerts a
  ``read_committed`` reader sees must be free of duplicates and equal those
  of an uncrashed engine fed the same records, and the pure core's replay.
* ``restart to first commit``: from spawning the new process to its first
  committed checkpoint (the outcomes keep coming, so there is always work),
  median and worst, with where the median time goes (the stages below, from
  the engine's own log timestamps).
* ``dynamic``: the same restart with ``[kafka] static_membership = false``
  (``--dynamic-kills`` times): the group waits for the dead member's session.
* ``fuzz``: ``--fuzz`` fuzzed prediction records (``tests/kafka/fuzz.py``:
  random bytes, JSON mutations, wrong types, far-future timestamps, huge
  feature maps, records over ``max_record_bytes``) spread among the good
  ones: every fuzzed record must be in the dead-letter topic with a reason, and
  the alerts equal the replay of the good records alone. The engine's peak
  RSS on that stream (its ``engine.stopped`` log) is beside the uncrashed
  good-only run's.
* then ``benchmarks/adversarial_memory.py``'s table for ``--adversarial``
  streams: the pure core's peak RSS under the streams of finding 6.

Stages of a restart: ``boot`` (spawn to the ``engine.config`` line: the
interpreter and the imports), ``clients`` (to ``engine.started``: the
transactional producer's init, which fences the dead process, and the
subscription), ``join`` (until the assignment, less the restore), ``restore``
(snapshots read and the pending join re-read, summed over partitions),
``to commit`` (from the assignment to the first commit).

Usage: PYTHONPATH=. python benchmarks/faults.py [--kills 20] [--rate 75]
           [--events 40000] [--fuzz 10000] [--dynamic-kills 2]
           [--clients kafka-python,confluent-kafka] [--adversarial STREAMS]
Needs a broker (KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:9092).
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import adversarial_memory
from tests.kafka.engine_process import EngineProcess
from tests.kafka.fuzz import OVERSIZED_LIMIT, fuzzed, interleave
from tests.kafka.streams import (
    Deployment,
    create_deployment,
    delete_deployment,
    fraud_stream,
    produce,
    read_all,
    replay_outputs,
    wait_consumed,
)

PARTITIONS = 3
STAGES = ("boot", "clients", "join", "restore", "to commit")
#: a restart that takes longer is reported as failed, not waited for
RESTART_TIMEOUT_S = 180.0


def _ts(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(entry["timestamp"])).timestamp()


@dataclass
class Restart:
    seconds: float
    stages: dict[str, float]


@dataclass
class KillRun:
    restarts: list[Restart] = field(default_factory=list)
    outcomes_sent: int = 0
    alerts: dict[str, dict[str, object]] = field(default_factory=dict)
    duplicates: int = 0


def _alerts(events: list[dict[str, object]]) -> tuple[dict[str, dict[str, object]], int]:
    alerts = [e for e in events if e["type"] == "drift_alert"]
    by_id = {str(a["alert_id"]): a for a in alerts}
    return by_id, len(alerts) - len(by_id)


def _restart(log: Path, spawned_wall: float, engine: EngineProcess) -> Restart:
    """Wait for the restarted engine's full assignment and first commit; its stages."""
    deadline = time.monotonic() + RESTART_TIMEOUT_S
    started = time.monotonic()
    while True:
        events = engine.log_events()
        commit = next(
            (e for e in events if e["event"] == "checkpoint" and e.get("final") is False), None
        )
        if commit is not None:
            break
        if not engine.running() or time.monotonic() > deadline:
            raise SystemExit(f"restart failed or took over {RESTART_TIMEOUT_S:.0f} s:\n{log}")
        time.sleep(0.02)
    seconds = time.monotonic() - started
    by_name: dict[str, dict[str, Any]] = {}
    for e in events:
        by_name.setdefault(str(e["event"]), e)
    assigned = next(
        e
        for e in events
        if e["event"] == "partitions.assigned" and len(e["partitions"]) == PARTITIONS
    )
    restore = sum(
        float(e["duration_ms"]) / 1000
        for e in events
        if e["event"] in ("state.restored", "state.fresh") and _ts(e) <= _ts(assigned)
    )
    config_at, started_at = _ts(by_name["engine.config"]), _ts(by_name["engine.started"])
    stages = {
        "boot": config_at - spawned_wall,
        "clients": started_at - config_at,
        "join": _ts(assigned) - started_at - restore,
        "restore": restore,
        "to commit": _ts(commit) - _ts(assigned),
    }
    return Restart(seconds, stages)


class OutcomeFeed(threading.Thread):
    """Produces outcomes at a fixed rate, in order, until told to stop or out of them."""

    def __init__(self, dep: Deployment, outcomes: list[dict[str, object]], rate: float) -> None:
        super().__init__(daemon=True)
        self.dep, self.outcomes, self.rate = dep, outcomes, rate
        self.sent = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        import kafka
        import orjson

        producer = kafka.KafkaProducer(bootstrap_servers=self.dep.bootstrap, linger_ms=5)
        try:
            step = max(1, int(self.rate / 10))
            next_at = time.monotonic()
            while self.sent < len(self.outcomes) and not self.stop.is_set():
                for i in range(self.sent, min(self.sent + step, len(self.outcomes))):
                    event = self.outcomes[i]
                    producer.send(
                        self.dep.topics["outcomes"],
                        value=orjson.dumps(event),
                        key=str(event["event_id"]).encode(),
                        partition=i % PARTITIONS,
                    )
                producer.flush()
                self.sent = min(self.sent + step, len(self.outcomes))
                next_at += step / self.rate
                time.sleep(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # reported by the caller
            self.error = exc
        finally:
            producer.close()


def kill_run(
    dep: Deployment,
    work: Path,
    predictions: list[dict[str, object]],
    outcomes: list[dict[str, object]],
    *,
    kills: int,
    rate: float,
    static: bool,
    rng: random.Random,
    name: str,
) -> KillRun:
    config = dep.write_config(
        work / f"{name}.toml", kafka_extra=f"static_membership = {str(static).lower()}"
    )
    run = KillRun()
    engine = EngineProcess(config, "faults", work / f"{name}-0.log").start()
    feed = OutcomeFeed(dep, outcomes, rate)
    try:
        engine.wait_for_log("partitions.assigned", timeout=120)
        produce(dep.bootstrap, dep.topics["predictions"], predictions, PARTITIONS)
        wait_consumed(dep, kinds=("predictions",), timeout_s=300)
        feed.start()
        engine.wait_for_log("checkpoint", timeout=120, final=False)
        for k in range(1, kills + 1):
            time.sleep(rng.uniform(0.5, 3.0))
            if feed.sent >= len(outcomes):
                print(f"  {name}: outcomes ran out after {k - 1} kills", file=sys.stderr)
                break
            engine.kill()
            spawned = time.time()
            log = work / f"{name}-{k}.log"
            engine = EngineProcess(config, "faults", log).start()
            run.restarts.append(_restart(log, spawned, engine))
            print(f"  {name} kill {k}: {run.restarts[-1].seconds:.1f} s", file=sys.stderr)
        feed.stop.set()
        feed.join()
        if feed.error is not None:
            raise feed.error
        run.outcomes_sent = feed.sent
        wait_consumed(dep, timeout_s=600)
        engine.terminate()
    finally:
        feed.stop.set()
        if engine.running():
            engine.kill()
    run.alerts, run.duplicates = _alerts(read_all(dep.bootstrap, dep.topics["drift_alerts"]))
    return run


def uncrashed_run(
    dep: Deployment,
    work: Path,
    predictions: list[dict[str, object]],
    outcomes: list[dict[str, object]],
    extra: str = "",
    values: tuple[list[bytes], list[int], list[bytes]] | None = None,
    name: str = "uncrashed",
) -> tuple[dict[str, dict[str, object]], int, float, list[dict[str, object]]]:
    """Alerts, duplicates, the engine's peak RSS (MB) and the dead letters of one run."""
    config = dep.write_config(work / f"{name}.toml", kafka_extra=extra)
    with EngineProcess(config, "faults", work / f"{name}.log") as engine:
        engine.wait_for_log("partitions.assigned", timeout=120)
        if values is None:
            produce(dep.bootstrap, dep.topics["predictions"], predictions, PARTITIONS)
        else:
            raw, placement, keys = values
            produce(
                dep.bootstrap,
                dep.topics["predictions"],
                raw,
                PARTITIONS,
                keys=keys,
                placement=placement,
            )
        wait_consumed(dep, kinds=("predictions",), timeout_s=600)
        produce(dep.bootstrap, dep.topics["outcomes"], outcomes, PARTITIONS)
        wait_consumed(dep, timeout_s=600)
        engine.terminate()
        stopped = engine.wait_for_log("engine.stopped", timeout=5)
    alerts, dups = _alerts(read_all(dep.bootstrap, dep.topics["drift_alerts"]))
    letters = read_all(dep.bootstrap, dep.topics["dead_letters"], idle_s=3, timeout_s=300)
    return alerts, dups, float(stopped["peak_rss_mb"]), letters


def _fresh(bootstrap: str, client: str, deployments: list[Deployment]) -> Deployment:
    dep = create_deployment(bootstrap, PARTITIONS, client=client)
    deployments.append(dep)
    return dep


def bench_client(
    client: str, args: argparse.Namespace, bootstrap: str, work: Path
) -> dict[str, str]:
    rng = random.Random(args.seed)
    deployments: list[Deployment] = []
    row: dict[str, str] = {}
    try:
        predictions, outcomes = fraud_stream(
            args.events,
            drift_at=args.drift_at,
            error_before=0.05,
            error_after=0.30,
            seed=args.seed,
        )
        print(f"{client}: kill -9 run", file=sys.stderr)
        crashed = kill_run(
            _fresh(bootstrap, client, deployments),
            work,
            predictions,
            outcomes,
            kills=args.kills,
            rate=args.rate,
            static=True,
            rng=rng,
            name=f"{client}-static",
        )
        sent = outcomes[: crashed.outcomes_sent]
        expected, _ = _alerts(
            replay_outputs(work / f"{client}-static.toml", predictions, sent, PARTITIONS)
        )
        print(f"{client}: uncrashed run", file=sys.stderr)
        clean, clean_dups, clean_rss, _ = uncrashed_run(
            _fresh(bootstrap, client, deployments), work, predictions, sent, name=f"{client}-clean"
        )
        seconds = [r.seconds for r in crashed.restarts]
        row["kills"] = str(len(crashed.restarts))
        row["outcomes (of which after the drift)"] = (
            f"{len(sent):,} ({max(0, len(sent) - args.drift_at):,})"
        )
        row["alerts: crashed / uncrashed / replay"] = (
            f"{len(crashed.alerts)} / {len(clean)} / {len(expected)}"
        )
        row["duplicates (crashed, uncrashed)"] = f"{crashed.duplicates}, {clean_dups}"
        row["crashed == uncrashed == replay"] = str(crashed.alerts == clean == expected)
        row["restart to first commit: median"] = (
            f"{statistics.median(seconds):.1f} s" if seconds else "-"
        )
        row["restart to first commit: worst"] = f"{max(seconds):.1f} s" if seconds else "-"
        for stage in STAGES:
            values = [r.stages[stage] for r in crashed.restarts]
            row[f"  median {stage}"] = f"{statistics.median(values):.2f} s" if values else "-"
        if args.dynamic_kills:
            print(f"{client}: dynamic membership", file=sys.stderr)
            n = max(args.drift_at, int(args.rate * 60 * (args.dynamic_kills + 1)))
            dyn_p, dyn_o = predictions[:n], outcomes[:n]
            dynamic = kill_run(
                _fresh(bootstrap, client, deployments),
                work,
                dyn_p,
                dyn_o,
                kills=args.dynamic_kills,
                rate=args.rate,
                static=False,
                rng=rng,
                name=f"{client}-dynamic",
            )
            dyn = [r.seconds for r in dynamic.restarts]
            row["dynamic: restart to first commit"] = ", ".join(f"{s:.1f} s" for s in dyn)
            row["dynamic / static median"] = (
                f"{statistics.median(dyn) / statistics.median(seconds):.1f}x"
                if dyn and seconds
                else "-"
            )
        print(f"{client}: fuzz run", file=sys.stderr)
        good_p, good_o = fraud_stream(
            args.fuzz_good,
            drift_at=args.fuzz_good // 3,
            error_before=0.05,
            error_after=0.30,
            seed=7,
        )
        bad = fuzzed(good_p, args.fuzz, seed=args.seed)
        dep = _fresh(bootstrap, client, deployments)
        extra = f"max_record_bytes = {OVERSIZED_LIMIT}"
        f_alerts, f_dups, f_rss, letters = uncrashed_run(
            dep,
            work,
            good_p,
            good_o,
            extra=extra,
            values=interleave(good_p, bad, PARTITIONS, seed=args.seed),
            name=f"{client}-fuzz",
        )
        f_expected, _ = _alerts(
            replay_outputs(work / f"{client}-fuzz.toml", good_p, good_o, PARTITIONS)
        )
        payloads = sorted(base64.b64decode(str(d["payload"])) for d in letters)
        row["fuzzed records / dead letters"] = f"{len(bad):,} / {len(letters):,}"
        row["every fuzzed record a dead letter with a reason"] = str(
            payloads == sorted(raw for _, raw in bad)
            and all(str(d["error"]).strip() for d in letters)
        )
        row["fuzz: alerts == replay of the good records"] = (
            f"{f_alerts == f_expected} ({len(f_alerts)}, {f_dups} duplicates)"
        )
        row["engine peak RSS: good stream / fuzzed stream"] = f"{clean_rss:.0f} / {f_rss:.0f} MB"
    finally:
        for dep in deployments:
            try:
                delete_deployment(dep)
            except Exception as exc:  # cleanup must not hide the figures
                print(f"could not delete {dep.group_id}'s topics: {exc}", file=sys.stderr)
    return row


def _table(columns: dict[str, dict[str, str]]) -> None:
    names = list(columns)
    rows = list(next(iter(columns.values())))
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for r in rows:
        print(f"| {r} | " + " | ".join(columns[n].get(r, "-") for n in names) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--rate", type=float, default=75.0, help="outcomes per second")
    parser.add_argument("--events", type=int, default=40_000, help="stream length (pool)")
    parser.add_argument("--drift-at", type=int, default=1500)
    parser.add_argument("--dynamic-kills", type=int, default=2)
    parser.add_argument("--fuzz", type=int, default=10_000)
    parser.add_argument("--fuzz-good", type=int, default=3000)
    parser.add_argument("--clients", default="kafka-python,confluent-kafka")
    parser.add_argument(
        "--adversarial",
        default="baseline,features,string,version,name",
        help="adversarial_memory.py streams ('' for none; 'models' takes minutes)",
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    columns: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        for client in [c for c in args.clients.split(",") if c]:
            columns[client] = bench_client(client, args, args.bootstrap, Path(tmp))
    load = os.getloadavg()[0]
    print(
        f"\nfaults: {args.kills} kills at {args.rate:.0f} outcomes/s, {args.fuzz:,} fuzzed records,"
        f" {PARTITIONS} partitions; {time.monotonic() - started:.0f} s,"
        f" load average {load:.1f} on {os.cpu_count()} cores\n"
    )
    _table(columns)
    if args.adversarial:
        print("\npure core under the adversarial streams (benchmarks/adversarial_memory.py):\n")
        adversarial_memory.main(["--streams", args.adversarial])
    ok: Callable[[dict[str, str]], bool] = lambda row: (  # noqa: E731
        row.get("crashed == uncrashed == replay") == "True"
        and row.get("every fuzzed record a dead letter with a reason") == "True"
        and str(row.get("fuzz: alerts == replay of the good records", "")).startswith("True")
    )
    return 0 if all(ok(row) for row in columns.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
