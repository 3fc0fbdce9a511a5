"""A soak of broker faults (issues 13 and 18): kills and restarts of a three-node cluster.

One cluster of its own (``stream-mlops broker start --nodes 3``, ports from
``STREAM_MLOPS_TEST_PORTS``, default 31000-31099, data under the checkout's
git-ignored ``.brokers/``), and per client backend (``--clients``, one after the
other) one engine process (``stream-mlops run``) on topics with three replicas
and ``min.insync.replicas`` 2, fed a fraud stream with an injected drift (the
error rate steps from 5% to 30% at ``--drift-at``). The predictions are
produced and consumed first (the order ``replay`` runs in); then a thread
produces the outcomes at ``--rate`` per second (idempotent, ``acks=all``: the
input itself survives every fault whole and once) while the script breaks the
cluster ``--rounds`` times, at random moments (``--seed``):

* the fault, in turn: ``kill -9`` of the broker leading one of the engine's
  outcome partitions, ``kill -9`` of a random broker, ``SIGTERM`` of a random
  broker (a clean shutdown, as a rolling upgrade does);
* the engine's next commit of records is waited for (at most ``--bound``
  seconds; longer is a stall, a finding);
* ``broker start`` starts the node again and the script waits until every
  partition of the cluster (internal topics included) has all its replicas in
  sync, before the next round ("back in sync" counts from ``broker start``:
  the node's boot and its catching up).

The engine is never restarted: if it exits, that is a finding, its log tail
is printed and that backend stops. At the end the outcomes stop, the engine
finishes the input and stops, and a ``read_committed`` reader must see every
alert exactly once, equal to the pure core's replay of the records produced,
and every labeled event once.

The helpers are the failover tests' (``tests/kafka/broker/test_failover.py``:
the cluster, the replicated topics, ``wait_in_sync``, the commit wait), so the
soak and the tests break and judge the cluster the same way.

Usage: STREAM_MLOPS_BROKER_LIB=<jar cache> PYTHONPATH=. python benchmarks/broker_faults.py
           [--rounds 20] [--rate 40] [--bound 120] [--drift-at 1500] [--seed 13]
           [--clients kafka-python,confluent-kafka] [--logs DIR]
Exits 1 if a backend crashed, stalled, lost or duplicated anything.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson
from confluent_kafka import Producer
from kafka import KafkaAdminClient

from stream_mlops.kafka.broker.process import process_alive
from tests.kafka.broker.managed import PORT_RANGE_ENV, cli, node_pids, own_broker
from tests.kafka.broker.test_failover import (
    NODES,
    Cluster,
    feed_predictions,
    leader_of,
    replicated_deployment,
    seconds_to_next_commit,
    wait_in_sync,
)
from tests.kafka.engine_process import EngineProcess
from tests.kafka.streams import Deployment, fraud_stream, partition_of, read_all, wait_consumed
from tests.kafka.test_runtime import PARTITIONS, by_id, expected_outputs

#: this benchmark's own brokers' ports unless STREAM_MLOPS_TEST_PORTS names others
DEFAULT_PORTS = "31000-31099"
FAULTS = (
    "kill -9 of the input's leader",
    "kill -9 of a random broker",
    "SIGTERM of a random broker",
)
#: outcomes are produced in ticks of this many seconds
TICK_S = 0.5
#: a tick's flush waits at most this long for a partition's new leader
FLUSH_TIMEOUT_S = 120.0


class EngineStalledError(Exception):
    """The engine did not commit within the bound after a fault."""


class EngineExitedError(Exception):
    """The engine process exited."""


class ClusterError(Exception):
    """The cluster did not get back in sync within the tests' bound."""


def _in_sync(admin: KafkaAdminClient, dep: Deployment) -> None:
    try:
        wait_in_sync(admin, dep)
    except BaseException as exc:  # pytest's Failed is a BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise ClusterError(str(exc)[:2000]) from None


@dataclass
class Soak:
    """One backend's figures."""

    client: str
    rounds: int = 0
    faults: list[str] = field(default_factory=list)
    to_commit_s: list[float] = field(default_factory=list)
    in_sync_s: list[float] = field(default_factory=list)
    crashes: int = 0
    stalls: int = 0
    aborted: int = 0
    outcomes_sent: int = 0
    alerts_expected: int | None = None
    alerts_seen: int | None = None
    duplicates: int | None = None
    missing: int | None = None
    unexpected: int | None = None
    labeled_ok: bool | None = None
    wall_s: float = 0.0
    finding: str = ""

    @property
    def clean(self) -> bool:
        return (
            self.crashes == 0
            and self.stalls == 0
            and self.duplicates == 0
            and self.missing == 0
            and self.unexpected == 0
            and self.labeled_ok is True
        )


class OutcomeFeed(threading.Thread):
    """Outcomes at a steady rate, in order, each on its stream partition, until stopped.

    One idempotent producer with acks=all, as the failover tests' ``produce``
    (so the input survives every fault whole and once), flushed each tick:
    while a partition has no leader the tick waits and the feed falls behind,
    then catches up, as a real upstream does.
    """

    def __init__(self, dep: Deployment, outcomes: list[dict[str, object]], rate: float) -> None:
        super().__init__(daemon=True)
        self.dep, self.outcomes, self.rate = dep, outcomes, rate
        self.sent = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        failed: list[str] = []

        def delivered(err: object, _msg: object) -> None:
            if err is not None:
                failed.append(str(err))

        producer = Producer(
            {
                "bootstrap.servers": self.dep.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
            }
        )
        step = max(1, round(self.rate * TICK_S))
        next_at = time.monotonic()
        try:
            while self.sent < len(self.outcomes) and not self.stop.is_set():
                end = min(self.sent + step, len(self.outcomes))
                for i in range(self.sent, end):
                    event = self.outcomes[i]
                    producer.produce(
                        self.dep.topics["outcomes"],
                        orjson.dumps(event),
                        key=str(event["event_id"]).encode(),
                        partition=partition_of(i, PARTITIONS),
                        on_delivery=delivered,
                    )
                if producer.flush(FLUSH_TIMEOUT_S) != 0 or failed:
                    raise RuntimeError(f"outcomes not delivered: {failed[:3]}")
                self.sent = end
                next_at += TICK_S
                self.stop.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # reported by the caller
            self.error = exc

    @property
    def ran_out(self) -> bool:
        return self.sent >= len(self.outcomes)


def _victim(
    kind: int, cluster: Cluster, admin: KafkaAdminClient, dep: Deployment, rng: random.Random
) -> int:
    if kind == 0:
        return leader_of(admin, dep.topics["outcomes"], rng.randrange(PARTITIONS))
    return rng.randrange(1, NODES + 1)


def _wait_gone(pid: int, bound_s: float) -> None:
    deadline = time.monotonic() + bound_s
    while process_alive(pid):
        if time.monotonic() > deadline:
            # A SIGTERM the node did not finish: a broker problem, not the engine's.
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _next_commit(engine: EngineProcess, mark: int, bound_s: float) -> float:
    """``seconds_to_next_commit``, its failures told apart: the engine exited, or stalled."""
    try:
        return seconds_to_next_commit(engine, mark, bound_s)
    except BaseException as exc:  # AssertionError, or pytest's Failed (a BaseException)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        if not engine.running():
            raise EngineExitedError(str(exc)) from None
        raise EngineStalledError(str(exc)) from None


def soak(
    client: str, cluster: Cluster, admin: KafkaAdminClient, work: Path, args: argparse.Namespace
) -> Soak:
    rng = random.Random(args.seed)
    result = Soak(client)
    started = time.monotonic()
    dep = replicated_deployment(admin, cluster.servers, client)
    config = dep.write_config(work / f"{client}.toml", checkpoint_interval_ms=200)
    events = args.events or int(args.rate * (args.rounds * 60 + 120)) + args.drift_at
    predictions, outcomes = fraud_stream(
        events, drift_at=args.drift_at, error_before=0.05, error_after=0.30, seed=args.seed
    )
    log = work / f"{client}-engine.log"
    # The engine appends to its log, and the waits read it from the start.
    log.unlink(missing_ok=True)
    with EngineProcess(config, "soak", log) as engine:
        feed_predictions(dep, engine, predictions)
        feed = OutcomeFeed(dep, outcomes, args.rate)
        feed.start()
        try:
            _next_commit(engine, 0, args.bound)
            for n in range(args.rounds):
                time.sleep(rng.uniform(1.0, 5.0))
                if feed.ran_out:
                    result.finding = f"the outcomes ran out after {n} rounds (raise --events)"
                    break
                kind = n % len(FAULTS)
                victim = _victim(kind, cluster, admin, dep, rng)
                pid = cluster.pid(victim)
                mark = len(engine.log_events())
                os.kill(pid, signal.SIGTERM if kind == 2 else signal.SIGKILL)
                result.faults.append(f"{FAULTS[kind]} (node {victim})")
                result.to_commit_s.append(_next_commit(engine, mark, args.bound))
                _wait_gone(pid, args.bound)
                restarted = time.monotonic()
                cluster.start_missing()
                _in_sync(admin, dep)
                result.in_sync_s.append(time.monotonic() - restarted)
                result.rounds += 1
                print(
                    f"  {client} round {result.rounds}: {result.faults[-1]}; next commit "
                    f"{result.to_commit_s[-1]:.1f} s, in sync {result.in_sync_s[-1]:.1f} s",
                    file=sys.stderr,
                )
        except ClusterError as exc:
            result.finding = f"the cluster was not back in sync in round {result.rounds + 1}: {exc}"
            print(f"\n{client}: {result.finding}\n", file=sys.stderr)
            result.wall_s = time.monotonic() - started
            return result
        except (EngineExitedError, EngineStalledError) as exc:
            crashed = isinstance(exc, EngineExitedError)
            result.crashes += crashed
            result.stalls += not crashed
            result.finding = (
                f"the engine {'exited' if crashed else 'stalled'} in round {result.rounds + 1}"
            )
            print(
                f"\n{client}: {result.finding}; its log's tail:\n{engine.log_tail()}\n",
                file=sys.stderr,
            )
        finally:
            feed.stop.set()
            feed.join()
        if feed.error is not None:
            raise feed.error
        result.outcomes_sent = feed.sent
        if result.crashes or result.stalls:
            result.aborted = _aborted(engine)
            result.wall_s = time.monotonic() - started
            return result
        wait_consumed(dep, timeout_s=args.bound * 2)
        if engine.terminate() != 0:
            result.crashes += 1
            result.finding = "the engine did not stop cleanly"
        result.aborted = _aborted(engine)
    _tally(result, dep, config, predictions, outcomes[: result.outcomes_sent])
    result.wall_s = time.monotonic() - started
    return result


def _aborted(engine: EngineProcess) -> int:
    return sum(1 for e in engine.log_events() if e.get("event") == "checkpoint.aborted")


def _tally(
    result: Soak,
    dep: Deployment,
    config: Path,
    predictions: list[dict[str, object]],
    outcomes: list[dict[str, object]],
) -> None:
    """The failover tests' ``check_exactly_once``, counted instead of asserted."""
    alerts = read_all(dep.bootstrap, dep.topics["drift_alerts"], idle_s=3)
    expected = by_id(
        [e for e in expected_outputs(config, predictions, outcomes) if e["type"] == "drift_alert"],
        "alert_id",
    )
    seen = by_id(alerts, "alert_id")
    result.alerts_expected = len(expected)
    result.alerts_seen = len(alerts)
    result.duplicates = len(alerts) - len(seen)
    result.missing = len(set(expected) - set(seen))
    # An alert the replay does not publish, or one that differs from it.
    result.unexpected = sum(1 for k, a in seen.items() if expected.get(k) != a)
    labeled = read_all(dep.bootstrap, dep.topics["labeled_events"], idle_s=3)
    result.labeled_ok = sorted(str(e["event_id"]) for e in labeled) == sorted(
        str(o["event_id"]) for o in outcomes
    )


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {max(values):.1f} s"


def _rows(s: Soak) -> dict[str, str]:
    def count(v: int | None) -> str:
        return "-" if v is None else str(v)

    return {
        "rounds": str(s.rounds),
        "engine crashes": str(s.crashes),
        "stalls past the bound": str(s.stalls),
        "aborted checkpoints": str(s.aborted),
        "fault to next commit: median / worst": _spread(s.to_commit_s),
        "back in sync: median / worst": _spread(s.in_sync_s),
        "outcomes produced": f"{s.outcomes_sent:,}",
        "alerts expected / seen": f"{count(s.alerts_expected)} / {count(s.alerts_seen)}",
        "duplicates / missing / unexpected": (
            f"{count(s.duplicates)} / {count(s.missing)} / {count(s.unexpected)}"
        ),
        "labeled events: each once": "-" if s.labeled_ok is None else str(s.labeled_ok),
        "wall time": f"{s.wall_s:.0f} s",
    }


def _table(results: list[Soak]) -> None:
    columns = {s.client: _rows(s) for s in results}
    print("| | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for row in next(iter(columns.values())):
        print(f"| {row} | " + " | ".join(c[row] for c in columns.values()) + " |")


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # Unwinds through the `with` blocks: the engine and every broker stopped by pid.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="faults per backend")
    parser.add_argument("--rate", type=float, default=40.0, help="outcomes per second")
    parser.add_argument(
        "--bound",
        type=float,
        default=120.0,
        help="seconds a fault may keep the engine from committing",
    )
    parser.add_argument(
        "--drift-at", type=int, default=1500, help="outcome where the error rate steps"
    )
    parser.add_argument(
        "--events", type=int, default=0, help="stream length (default: enough for the rounds)"
    )
    parser.add_argument("--clients", default="kafka-python,confluent-kafka")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--logs", type=Path, help="keep the engines' logs and configs here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault(PORT_RANGE_ENV, DEFAULT_PORTS)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started = time.monotonic()
    results: list[Soak] = []
    with (
        tempfile.TemporaryDirectory(prefix="broker-faults-") as tmp,
        own_broker("soak", nodes=NODES) as (env, settings, seen_pids),
    ):
        up = cli(env, "broker", "start", "--nodes", str(NODES))
        seen_pids.extend(node_pids(settings))
        if up.returncode != 0:
            print(up.stdout, up.stderr, file=sys.stderr)
            return 1
        cluster = Cluster(env, settings, seen_pids)
        work = args.logs or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        admin = KafkaAdminClient(bootstrap_servers=cluster.servers)
        try:
            for client in [c for c in args.clients.split(",") if c]:
                print(f"{client}: {args.rounds} rounds", file=sys.stderr)
                try:
                    results.append(soak(client, cluster, admin, work, args))
                except BaseException as exc:  # pytest's Failed too, from the tests' helpers
                    if isinstance(exc, KeyboardInterrupt | SystemExit):
                        raise
                    # The cluster, not the engine, failed (e.g. not back in sync
                    # within the bound): a finding too; the table still prints.
                    results.append(Soak(client, finding=f"the cluster failed: {exc}"[:2000]))
                cluster.start_missing()  # a backend that stopped mid-round left a node down
        finally:
            admin.close()
    print(
        f"\nbroker faults: {NODES} nodes, {PARTITIONS} partitions, {args.rate:.0f} outcomes/s,"
        f" bound {args.bound:.0f} s, seed {args.seed}; {time.monotonic() - started:.0f} s,"
        f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n"
    )
    _table(results)
    for s in results:
        if s.finding:
            print(f"\n{s.client}: {s.finding}")
    return 0 if all(s.clean for s in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
