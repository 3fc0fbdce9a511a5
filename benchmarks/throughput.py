"""Engine throughput against the raw clients and Quix Streams, and alert latency.

Prints one table, one column per client backend (kafka-python,
confluent-kafka). In one run and on the same input topics (one deployment,
produced once):

* ``raw consume``: a bare consumer of the predictions topic, and of both
  input topics (the client's ceiling: nothing decoded, nothing produced);
* ``engine same job``: ``stream-mlops run`` with exactly-once on and only
  what the Quix job below does: ADWIN (river's delta 0.002) on the error
  signal, no label-free detectors, no distribution checks, no minimum
  observations or cooldown, no retrain requests, and no labeled events
  (``publish_labeled_events = false``);
* ``engine same job, track_unwatched = false``: the same job with
  ``[defaults] track_unwatched = false`` (no label-free tracks without a
  detector), what a user running only an error detector would choose;
* ``engine default config``: the engine as shipped (detectors on the error,
  the estimated error, the score and every feature, distribution checks);
* ``engine default config, metrics on``: the same, with ``[metrics]`` on
  and ``/metrics`` scraped every ``--scrape-interval`` seconds (1 s by
  default, a busier scraper than Prometheus' usual 15 s), run right after
  the metrics-off run of each repetition; the ratio row is the metrics'
  overhead (``--no-metrics`` skips it);
* ``Quix Streams same job`` (benchmarks/quix_job.py): join by event id in
  Quix state, ADWIN per model on the error, alerts to a topic, exactly-once.
  Quix always runs on confluent-kafka (librdkafka): measured once, shown in
  both columns, and each backend's engine is compared with it.

Rates are input records (predictions + outcomes) per second, the same clock
for the engine and Quix: from the group's first committed offsets until they
reach the end of both input topics (start-up and group join left out). Peak RSS is the
child process's VmHWM, read just before it is stopped.

Then, per backend, on a fresh deployment: the latency from producing an
outcome to its labeled event, and to the error-signal drift alert it
triggered, being visible to a ``read_committed`` reader, with the engine on its
default config and a producer at half that config's measured rate. The
latency stream switches its error rate every ``--segment`` pairs (2% <-> 50%)
so that ADWIN fires about once per segment: enough alerts for a p99. Each
backend runs it twice, side by side: with ``[kafka] batch_max_records = 2000``
(a poll is one batch, as the engine ran before that setting) and as shipped.
Each alert's visibility is also split into stages from the engine's log
(``alert_stages``): to its processing, to its commit's start, the commit, and
to the reader. ``--latency-load`` fixes the load instead (records/s), and
``--latency-only`` runs nothing else.

With ``--secure-config`` (a client TOML of a SASL_SSL cluster, such as
``<data-dir>/client/admin.toml`` that ``stream-mlops broker start --secure``
writes; its user must create and delete topics), the same input is produced
on that cluster too and the confluent-kafka column gains rows for it: the raw
consume of both input topics and the engine (same job, default config) over
SASL_SSL with SCRAM, and their ratio to the PLAINTEXT figures of the same run:
the cost of encryption and authentication on one machine. The two clusters
are different brokers of the same Kafka version on the same machine.

Targets (issue 8), checked on the last lines: with confluent-kafka, >= 100k
events/s per engine process and >= 3x Quix's exactly-once rate on the same
job; with kafka-python, >= 0.8x the raw consume rate of the predictions topic;
p99 alert latency < 250 ms at half load.

Usage: python benchmarks/throughput.py [--events 50000] [--bootstrap HOST:PORT]
           [--latency-seconds 30] [--latency-load RECORDS_PER_S] [--latency-only]
           [--quix-python PATH] [--record FILE] [--no-metrics] [--scrape-interval S]
           [--secure-config FILE]
Needs a broker (``stream-mlops broker start``, or KAFKA_BOOTSTRAP_SERVERS).
Quix Streams is a benchmark-only dependency (``pip install '.[bench]'``); it
pins confluent-kafka below the engine's, so it may live in its own virtualenv:
``--quix-python`` (or $QUIX_PYTHON) names that interpreter. Without it the
Quix rows say why they are empty.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import kafka
import orjson
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stream_mlops.config import KafkaSecurity, KafkaSettings, load_settings
from stream_mlops.kafka.security import kafka_python_options, librdkafka_options
from stream_mlops.service_process import ServiceProcess
from tests.kafka.engine_process import EngineProcess
from tests.kafka.streams import (
    Deployment,
    create_deployment,
    delete_deployment,
    fraud_stream,
    partition_of,
    produce,
)

CLIENTS = ("kafka-python", "confluent-kafka")
# Deployment.write_config's checkpoint_interval_ms: the engine's checkpoint
# (one transaction) in every engine run.
COMMIT_INTERVAL_S = 0.1
# Quix Streams as shipped commits every 5 s (the headline comparison, what a
# user would compare with); it also runs at the engine's 100 ms, the same
# transaction rate.
QUIX_STOCK_COMMIT_S = 5.0
# Engine processes per run: one, and all the cores of this machine's two
# (`stream-mlops run --workers 2`; it needs --partitions 2 or more to help).
WORKER_COUNTS = (1, 2)
# ADWIN's delta on both sides of the "same job": river's default.
SAME_JOB_DELTA = 0.002
SAME_JOB_CONFIG = f"""
[defaults]
distribution_checks = false
min_observations = 0
cooldown_observations = 0
retrain_on = []

[defaults.detectors]
error = [{{name = "adwin", delta = {SAME_JOB_DELTA}}}]
estimated_error = []
score = []
prediction = []
"feature:*" = []
"""
# The same job with the label-free tracks only where a detector watches (none
# here): what a user running only an error detector would choose.
SAME_JOB_UNWATCHED_CONFIG = SAME_JOB_CONFIG.replace(
    "[defaults]\n", "[defaults]\ntrack_unwatched = false\n", 1
)
# The engine as shipped with its metrics on (a free loopback port): the
# overhead row compares it with the same run without them.
METRICS_CONFIG = """
[metrics]
enabled = true
port = 0
"""
# The latency stream's error rates: a step from 2% to 50% and back is found by
# the default config's ADWIN within a few hundred pairs; segments of 1,100 pairs
# (just above the default cooldown of 1,000 observations) gave 18 error alerts
# per 20,000 pairs in a replay of this stream.
LOW_ERROR, HIGH_ERROR = 0.02, 0.5

# How often the group's committed offsets are read while a run is timed: 50 ms
# against runs of several seconds (one commit every 100 ms) keeps the clock's
# error near 1%.
COMMIT_POLL_S = 0.05
CONSUME_TIMEOUT_S = 900

TARGET_CONFLUENT_RATE = 100_000
TARGET_CONFLUENT_DEFAULT_RATE = 70_000
TARGET_QUIX_RATIO = 5.0
TARGET_RAW_RATIO = 0.8
TARGET_ALERT_P99_MS = 250.0
# The latency runs' "before": a batch as long as a poll can be (the runtime's
# MAX_POLL_RECORDS), as the engine ran before [kafka] batch_max_records.
WHOLE_POLL = 2000


# -- raw clients --------------------------------------------------------------------


def raw_consume_rate(client: str, bootstrap: str, topics: list[str], expected: int) -> float:
    if client == "confluent-kafka":
        return raw_confluent_rate(bootstrap, topics, expected, {})
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


def raw_confluent_rate(
    bootstrap: str, topics: list[str], expected: int, options: dict[str, str]
) -> float:
    """``options``: the connection's security settings (librdkafka_options)."""
    import confluent_kafka as ck

    consumer = ck.Consumer(
        {
            **options,
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


# -- processes under test -------------------------------------------------------------


def peak_rss_mb(pid: int | None) -> int | None:
    """The process's peak resident set (VmHWM), while it still runs."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def fresh_run(
    dep: Deployment, client: str, name: str, options: dict[str, object] | None = None
) -> Deployment:
    """The deployment with its own group and an empty state topic: a clean start.

    ``options``: kafka-python's security keyword arguments (kafka_python_options)."""
    suffix = f"{name}-{client}-{time.time_ns() % 10**9}"
    state = f"{dep.topics['state']}-{suffix}"
    admin = KafkaAdminClient(bootstrap_servers=dep.bootstrap, **(options or {}))
    try:
        admin.create_topics(
            [NewTopic(state, dep.partitions, 1, topic_configs={"cleanup.policy": "compact"})]
        )
    finally:
        admin.close()
    return dataclasses.replace(
        dep,
        topics={**dep.topics, "state": state},
        group_id=f"{dep.group_id}-{suffix}",
        client=client,
    )


def delete_topics(
    bootstrap: str, names: list[str], options: dict[str, object] | None = None
) -> None:
    if not names:
        return
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **(options or {}))
    try:
        admin.delete_topics(names)
    finally:
        admin.close()


@dataclasses.dataclass(frozen=True)
class Window:
    """A run's timed span: the group's first commit (wall clock, records done
    by it), and its commit of both topics' ends."""

    first_at: float
    first_done: int
    end_at: float
    total: int

    @property
    def rate(self) -> float:
        return (self.total - self.first_done) / (self.end_at - self.first_at)

    def ending(self, at: float) -> float:
        """The rate with the clock stopped at ``at`` instead (if earlier)."""
        return (self.total - self.first_done) / (min(at, self.end_at) - self.first_at)


def consumed_rate(
    dep: Deployment,
    group: str,
    alive: Callable[[], bool],
    options: dict[str, object] | None = None,
) -> float:
    """Input records/s between the group's first commit and its commit of both topics' ends."""
    return consumed_window(dep, group, alive, options).rate


def consumed_window(
    dep: Deployment,
    group: str,
    alive: Callable[[], bool],
    options: dict[str, object] | None = None,
) -> Window:
    """The span between the group's first commit and its commit of both topics' ends.

    The same clock for the engine and Quix, from their committed offsets alone:
    start-up, group join and state restore are outside the window, and so are
    the records of the first commit (up to one checkpoint interval's worth).
    """
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=dep.bootstrap, group_id=group, enable_auto_commit=False, **(options or {})
    )
    try:
        tps = [
            TopicPartition(dep.topics[kind], p)
            for kind in ("predictions", "outcomes")
            for p in range(dep.partitions)
        ]
        total = sum(consumer.end_offsets(tps).values())
        first: tuple[float, int] | None = None
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while True:
            done = sum(consumer.committed(tp) or 0 for tp in tps)
            now = time.time()
            if first is None and done > 0:
                first = (now, done)
            if done == total:
                break
            if not alive():
                raise AssertionError(f"group {group}: the process exited at {done}/{total}")
            if time.monotonic() > deadline:
                raise AssertionError(f"group {group}: {done}/{total} in {CONSUME_TIMEOUT_S}s")
            time.sleep(COMMIT_POLL_S)
    finally:
        consumer.close(autocommit=False)
    assert first is not None
    if first[1] == total:
        raise AssertionError(f"group {group}: one commit took all {total} records; raise --events")
    return Window(first[0], first[1], now, total)


def scrape_every(url: str, interval_s: float, stop: threading.Event) -> list[int]:
    """GET ``url`` every ``interval_s`` until ``stop``: a Prometheus server's load."""
    sizes: list[int] = []
    while not stop.wait(interval_s):
        with urllib.request.urlopen(url, timeout=10) as response:
            sizes.append(len(response.read()))
    return sizes


def engine_rate(
    dep: Deployment,
    client: str,
    name: str,
    extra: str,
    tmp: Path,
    scrape_interval_s: float | None = None,
    security: KafkaSecurity | None = None,
    workers: int = 1,
) -> tuple[float, int | None]:
    """Records/s of the engine (see consumed_rate), and its peak RSS (with
    ``workers`` > 1, ``stream-mlops run --workers N``: the sum over its workers).

    ``scrape_interval_s``: the config turns ``[metrics]`` on, and ``/metrics``
    is scraped that often while the engine runs. ``security``: the cluster's
    connection settings, for the engine's config and the benchmark's own
    clients (None: PLAINTEXT).
    """
    options = kafka_python_options(security) if security else None
    if security is not None:
        extra = f"{extra}\n{security_toml(security)}"
    run = fresh_run(dep, client, name, options)
    try:
        # The same job as Quix publishes alerts only: no labeled events.
        kafka_extra = "publish_labeled_events = false" if name.endswith("same") else ""
        config = run.write_config(
            tmp / f"engine-{name}-{client}.toml", extra=extra, kafka_extra=kafka_extra
        )
        log = tmp / f"engine-{name}-{client}-{workers}.log"
        extra_args = ["--workers", str(workers)] if workers > 1 else []
        with EngineProcess(config, f"bench-{name}-{client}", log, extra_args=extra_args) as engine:
            pids = [engine.pid]
            if workers > 1:
                started = engine.wait_for_log("workers.started")
                pids = [int(w["pid"]) for w in started["workers"]]
            stop = threading.Event()
            scraper: threading.Thread | None = None
            if scrape_interval_s is not None:
                url = str(engine.wait_for_log("metrics.started")["url"]) + "metrics"
                scraper = threading.Thread(
                    target=scrape_every, args=(url, scrape_interval_s, stop), daemon=True
                )
                scraper.start()
            try:
                rate = consumed_rate(run, run.group_id, engine.running, options)
            finally:
                stop.set()
                if scraper is not None:
                    scraper.join(timeout=15)
            peaks = [peak_rss_mb(pid) for pid in pids]
            rss = None if None in peaks else sum(p for p in peaks if p is not None)
        return rate, rss
    finally:
        delete_topics(dep.bootstrap, [run.topics["state"]], options)


# -- SASL_SSL -----------------------------------------------------------------------


def security_toml(security: KafkaSecurity) -> str:
    """``[kafka.security]`` for an engine's config: the settings, never a secret (the
    password comes from its file, or from the environment the engine inherits)."""
    lines = ["[kafka.security]"]
    for name, value in security.model_dump(exclude_none=True).items():
        text = str(value).lower() if isinstance(value, bool) else f'"{value}"'
        lines.append(f"{name} = {text}")
    return "\n".join(lines)


def secured_deployment(
    servers: str, security: KafkaSecurity, partitions: int, like: Deployment
) -> Deployment:
    """The PLAINTEXT deployment's topics again, on the secured cluster."""
    admin = KafkaAdminClient(bootstrap_servers=servers, **kafka_python_options(security))
    try:
        admin.create_topics(
            [
                NewTopic(
                    name,
                    partitions,
                    1,
                    topic_configs={"cleanup.policy": "compact"} if key == "state" else {},
                )
                for key, name in like.topics.items()
            ]
        )
    finally:
        admin.close()
    return dataclasses.replace(like, bootstrap=servers)


def produce_secured(
    servers: str,
    security: KafkaSecurity,
    topic: str,
    events: list[dict[str, object]],
    partitions: int,
) -> None:
    """As tests.kafka.streams.produce places them (the same partitions), over SASL_SSL."""
    import confluent_kafka as ck

    producer = ck.Producer(
        {**librdkafka_options(security), "bootstrap.servers": servers, "linger.ms": 5}
    )
    for i, event in enumerate(events):
        producer.produce(
            topic,
            orjson.dumps(event),
            key=str(event["event_id"]).encode(),
            partition=partition_of(i, partitions),
        )
        producer.poll(0)
    if producer.flush(120) != 0:
        raise AssertionError(f"{topic}: not every record was delivered to the secured cluster")


def quix_interpreter(requested: str | None) -> tuple[str | None, str]:
    """A Python that imports quixstreams and river, or None and why not."""
    python = requested or os.environ.get("QUIX_PYTHON") or sys.executable
    probe = subprocess.run(
        [python, "-c", "import quixstreams, river; print(quixstreams.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return None, (
            f"quixstreams is not importable by {python}: pip install '.[bench]', "
            "or pass --quix-python / set QUIX_PYTHON to an interpreter that has it"
        )
    return python, f"quixstreams {probe.stdout.strip()}"


def quix_rate(
    python: str, dep: Deployment, tmp: Path, commit_interval_s: float
) -> tuple[float, int | None, dict[str, object]]:
    """Records/s of the Quix job, its peak RSS and its own counts.

    The clock starts at the group's first commit, as the engine's, and stops
    at the last record Quix processed (its own log) rather than at its commit:
    with the stock 5 s interval that commit can come seconds later, and the
    engine's clock stops within 100 ms of its last record.
    """
    run = f"{dep.group_id}-{time.time_ns() % 10**9}"
    group = f"quix-{run}"
    alerts = f"t-quix-alerts-{run}"
    admin = KafkaAdminClient(bootstrap_servers=dep.bootstrap)
    try:
        admin.create_topics([NewTopic(alerts, dep.partitions, 1)])
    finally:
        admin.close()
    quix = ServiceProcess(
        "the Quix job",
        [
        "--bootstrap", dep.bootstrap,
        "--predictions", dep.topics["predictions"],
        "--outcomes", dep.topics["outcomes"],
        "--alerts", alerts,
        "--group", group,
        "--state-dir", str(tmp / f"quix-state-{run}"),
        "--commit-interval", str(commit_interval_s),
        "--delta", str(SAME_JOB_DELTA),
        ],
        tmp / f"quix-{run}.log",
        program=[python, str(REPO / "benchmarks" / "quix_job.py")],
        cwd=REPO,
    )  # fmt: skip
    try:
        with quix:
            window = consumed_window(dep, group, quix.running)
            rss = peak_rss_mb(quix.pid)
            quix.terminate(timeout=60)
            stopped = quix.wait_for_log("quix.stopped", timeout=5)
        last = float(stopped.get("last_record_at") or window.end_at)
        return window.ending(last), rss, stopped
    finally:
        # Quix's changelog topics are named after its consumer group.
        admin = KafkaAdminClient(bootstrap_servers=dep.bootstrap)
        try:
            leftovers = [t for t in admin.list_topics() if group in t]
        finally:
            admin.close()
        delete_topics(dep.bootstrap, [alerts, *leftovers])


# -- latency ------------------------------------------------------------------------


def shifting_stream(
    n: int, segment: int, seed: int
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """fraud_stream's events, the error rate switching every ``segment`` pairs."""
    predictions, outcomes = fraud_stream(
        n, drift_at=n, error_before=0.0, error_after=0.0, seed=seed
    )
    rng = random.Random(seed)
    for i, (prediction, outcome) in enumerate(zip(predictions, outcomes, strict=True)):
        rate = HIGH_ERROR if (i // segment) % 2 else LOW_ERROR
        if rng.random() < rate:
            outcome["actual"] = 1 - int(prediction["prediction"])  # type: ignore[call-overload]
    return predictions, outcomes


class LoadProducer:
    """The latency run's load generator: confluent-kafka if installed (it leaves
    the engine more of the two cores than kafka-python would), else kafka-python.
    Keys are placed with murmur2, as the engine's co-partitioning expects."""

    def __init__(self, bootstrap: str) -> None:
        try:
            import confluent_kafka as ck
        except ImportError:
            self._ck = None
            self._kp = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
        else:
            self._ck = ck.Producer(
                {
                    "bootstrap.servers": bootstrap,
                    "linger.ms": 2,
                    "partitioner": "murmur2_random",
                }
            )

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        if self._ck is not None:
            self._ck.produce(topic, key=key, value=value)
            self._ck.poll(0)
        else:
            self._kp.send(topic, key=key, value=value)

    def flush(self) -> None:
        if self._ck is not None:
            self._ck.flush(30)
        else:
            self._kp.flush()
            self._kp.close()


def split_cores() -> tuple[set[int], set[int]] | None:
    """The latency run's cores: the last one for the engine, the others for the
    load generator and the reader; None on a single core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    return {cores[-1]}, set(cores[:-1])


def paced_producer(
    bootstrap: str,
    topics: dict[str, str],
    pairs_per_s: float,
    seconds: float,
    segment: int,
    queue: mp.Queue,  # type: ignore[type-arg]
    cores: set[int] | None = None,
) -> None:
    """Predictions, and each outcome 0.5 s later, at a steady rate; reports send times.

    ``cores``: where it runs (off the engine's core), at a lower priority."""
    if cores is not None:
        os.sched_setaffinity(0, cores)
    os.nice(5)
    n = int(pairs_per_s * seconds)
    predictions, outcomes = shifting_stream(n, segment, seed=11)
    producer = LoadProducer(bootstrap)
    sent: dict[str, float] = {}
    start = time.perf_counter()
    lag = int(0.5 * pairs_per_s)
    for i in range(n + lag):
        due = start + i / pairs_per_s
        while (now := time.perf_counter()) < due:
            time.sleep(min(0.001, due - now))
        if i < n:
            p = predictions[i]
            producer.send(topics["predictions"], str(p["event_id"]).encode(), orjson.dumps(p))
        j = i - lag
        if 0 <= j < n:
            o = outcomes[j]
            producer.send(topics["outcomes"], str(o["event_id"]).encode(), orjson.dumps(o))
            sent[str(o["event_id"])] = time.time()
    producer.flush()
    queue.put((sent, 2 * n / (time.perf_counter() - start)))


def visibility_times(
    bootstrap: str, topics: list[str], partitions: int, until: float
) -> dict[str, dict[str, float]]:
    """Per topic: when each labeled event (by event id) or error alert (by trigger)
    became visible to a read_committed reader of these (fresh) topics.

    confluent-kafka if installed, for the same reason as LoadProducer; it asks
    the broker to answer a fetch within 10 ms rather than librdkafka's 500, so
    the reader adds little to what it measures."""
    seen: dict[str, dict[str, float]] = {t: {} for t in topics}

    def note(topic: str, value: bytes, now: float) -> None:
        event = orjson.loads(value)
        if event.get("type") == "drift_alert" and event.get("signal") != "error":
            # Label-free alerts are triggered by predictions, not outcomes.
            return
        key = str(event.get("trigger_event_id") or event.get("event_id"))
        seen[topic].setdefault(key, now)

    try:
        import confluent_kafka as ck
    except ImportError:
        consumer = kafka.KafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        try:
            while time.time() < until:
                for tp, records in consumer.poll(timeout_ms=100).items():
                    now = time.time()
                    for r in records:
                        note(tp.topic, r.value, now)
        finally:
            consumer.close()
        return seen
    reader = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"latency-reader-{time.time_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        # The topics are fresh: read them from the start, no group join to wait for.
        reader.assign(
            [
                ck.TopicPartition(t, p, ck.OFFSET_BEGINNING)
                for t in topics
                for p in range(partitions)
            ]
        )
        while time.time() < until:
            # Not consume(1000, 0.1): it waits for 1,000 records or the whole
            # timeout, and every record it returns would be noted up to 100 ms
            # late. Wait for the first record only, then take what is fetched.
            first = reader.poll(0.1)
            if first is None:
                continue
            now = time.time()
            for msg in [first, *reader.consume(1000, 0)]:
                if msg.error() is None:
                    note(msg.topic(), msg.value(), now)
    finally:
        reader.close()
    return seen


@dataclasses.dataclass(frozen=True)
class LatencyRun:
    """One latency run: the achieved load (records/s), labeled-event and alert
    visibility (ms), and each alert's visibility split into stages (ms)."""

    load: float
    labeled_ms: list[float]
    alert_ms: list[float]
    stages: dict[str, list[float]]


# The stages of an error alert's visibility, from the outcome's send to a
# read_committed reader seeing the alert (alert_stages says how each is timed).
STAGES = (
    "sent -> processed",
    "processed -> commit starts",
    "commit (snapshots, round trips)",
    "committed -> visible",
)


def _log_time(entry: dict[str, object]) -> float:
    return datetime.fromisoformat(str(entry["timestamp"])).timestamp()


def alert_stages(
    log: Path, sent: dict[str, float], visible: dict[str, float]
) -> dict[str, list[float]]:
    """Each error alert's visibility in stages (ms), from the engine's log.

    The engine logs ``alert`` while it processes the trigger (inside its batch)
    and ``checkpoint`` once a commit returned, with ``commit_ms`` (its snapshots
    and the commit's round trips): the first checkpoint after an alert is the
    one that made it visible. So: outcome sent -> alert logged (delivery to the
    broker, the engine's fetch, its wait in the poll and the records of the
    batch before it), -> that checkpoint's commit starts (the rest of the batch,
    and any wait for the checkpoint), -> commit returned, -> the reader saw it
    (transaction markers, the reader's fetch). Log times are the engine's
    wall clock, the same clock as the producer's and the reader's here."""
    alerts: list[tuple[str, float]] = []
    commits: list[tuple[float, float]] = []
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        entry = orjson.loads(line)
        if entry.get("event") == "alert" and entry.get("signal") == "error":
            alerts.append((str(entry["trigger_event_id"]), _log_time(entry)))
        elif entry.get("event") == "checkpoint" and "commit_ms" in entry:
            commits.append((_log_time(entry), float(entry["commit_ms"]) / 1000))
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for key, processed in alerts:
        if key not in sent or key not in visible:
            continue
        committed = next(((at, c) for at, c in commits if at >= processed), None)
        if committed is None:
            continue
        at, commit_s = committed
        spans = (
            processed - sent[key],
            at - commit_s - processed,
            commit_s,
            visible[key] - at,
        )
        for name, span in zip(STAGES, spans, strict=True):
            stages[name].append(span * 1000)
    return stages


def latency(
    client: str,
    args: argparse.Namespace,
    records_per_s: float,
    tmp: Path,
    batch_max_records: int | None = None,
) -> LatencyRun:
    """Achieved load, labeled-event and alert visibility latencies (ms), default
    config (with ``[kafka] batch_max_records`` if given)."""
    split = split_cores()
    own_cores = os.sched_getaffinity(0)
    dep = create_deployment(args.bootstrap, args.partitions, client=client)
    try:
        config = dep.write_config(
            tmp / f"latency-{client}-{batch_max_records}.toml",
            kafka_extra=""
            if batch_max_records is None
            else f"batch_max_records = {batch_max_records}",
        )
        log = tmp / f"latency-{client}-{time.time_ns() % 10**9}.log"
        with EngineProcess(config, f"latency-{client}", log) as engine:
            # Steady state only: no backlog from the group join in the samples.
            engine.wait_for_log("partitions.assigned")
            if split is not None and engine.pid is not None:
                # The engine alone on one core; the load generator and this
                # process (the reader) on the others. The broker and other
                # sessions' work are not pinned: they still share every core.
                os.sched_setaffinity(engine.pid, split[0])
                os.sched_setaffinity(0, split[1])
            pairs_per_s = records_per_s / 2  # a pair is two records
            queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
            until = time.time() + args.latency_seconds + 5
            proc = mp.Process(
                target=paced_producer,
                args=(
                    args.bootstrap,
                    dep.topics,
                    pairs_per_s,
                    args.latency_seconds,
                    args.segment,
                    queue,
                    split[1] if split is not None else None,
                ),
            )
            proc.start()
            try:
                seen = visibility_times(
                    args.bootstrap,
                    [dep.topics["labeled_events"], dep.topics["drift_alerts"]],
                    args.partitions,
                    until,
                )
                sent, load = queue.get(timeout=120)
            finally:
                proc.join(timeout=60)
                if proc.is_alive():
                    proc.kill()
            engine.terminate()
    finally:
        os.sched_setaffinity(0, own_cores)
        delete_deployment(dep)
    labeled = seen[dep.topics["labeled_events"]]
    alerts = seen[dep.topics["drift_alerts"]]
    labeled_ms = [(labeled[k] - sent[k]) * 1000 for k in sent if k in labeled]
    alert_ms = [(v - sent[k]) * 1000 for k, v in alerts.items() if k in sent]
    return LatencyRun(load, labeled_ms, alert_ms, alert_stages(log, sent, alerts))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def p50_p99(values: list[float], empty: str) -> str:
    if not values:
        return empty
    return f"{percentile(values, 0.5):.0f} / {percentile(values, 0.99):.0f} (n={len(values)})"


# -- the table ------------------------------------------------------------------------


def best(runs: list[tuple[float, int | None]]) -> tuple[float, int | None]:
    """The highest rate of repeated runs, with the highest peak RSS among them."""
    peaks = [peak for _, peak in runs if peak is not None]
    return max(rate for rate, _ in runs), max(peaks) if peaks else None


def rss(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def verdict(ok: bool, detail: str) -> str:
    return f"{'yes' if ok else 'NO'} ({detail})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--events", type=int, default=50_000, help="predictions (and as many outcomes)"
    )
    parser.add_argument(
        "--partitions", type=int, default=2, help="per input topic (2: room for 2 workers)"
    )
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument(
        "--latency-load",
        type=float,
        help="records/s of the latency runs (default: half the default config's measured rate)",
    )
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="only the latency runs, at --latency-load (no throughput runs)",
    )
    parser.add_argument(
        "--segment", type=int, default=1100, help="latency stream: pairs per error-rate segment"
    )
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated backends")
    parser.add_argument("--quix-python", help="interpreter with quixstreams (or $QUIX_PYTHON)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="throughput runs of each kind; the table keeps the best (a shared machine is noisy)",
    )
    parser.add_argument("--no-quix", action="store_true", help="skip the Quix Streams run")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency runs")
    parser.add_argument("--no-metrics", action="store_true", help="skip the run with [metrics] on")
    parser.add_argument(
        "--scrape-interval",
        type=float,
        default=1.0,
        help="seconds between scrapes of /metrics in the metrics-on run",
    )
    parser.add_argument("--record", type=Path, help="also write the table, as Markdown, here")
    parser.add_argument(
        "--secure-config",
        type=Path,
        help=(
            "a client TOML of a SASL_SSL cluster (e.g. <data-dir>/client/admin.toml of "
            "`stream-mlops broker start --secure`): adds SASL_SSL rows to the "
            "confluent-kafka column"
        ),
    )
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    args = parser.parse_args()
    clients = args.clients.split(",")
    if args.latency_only and (args.latency_load is None or args.no_latency):
        parser.error("--latency-only needs --latency-load (and no --no-latency)")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    for client in clients:
        if client not in CLIENTS:
            parser.error(f"unknown client {client!r}; use {', '.join(CLIENTS)}")
    secured: tuple[str, KafkaSecurity] | None = None
    if args.secure_config is not None:
        if "confluent-kafka" not in clients:
            parser.error("--secure-config compares on confluent-kafka: keep it in --clients")
        secure_kafka = load_settings(args.secure_config).kafka
        if secure_kafka.security.protocol != "SASL_SSL":
            parser.error(f"{args.secure_config}: [kafka.security] protocol is not SASL_SSL")
        secured = (secure_kafka.bootstrap_servers, secure_kafka.security)
    tmp = Path(tempfile.mkdtemp(prefix="smlops-bench-"))
    pairs = args.events
    records = 2 * pairs

    quix_python, quix_note = (None, "skipped (--no-quix)")
    if not args.no_quix:
        quix_python, quix_note = quix_interpreter(args.quix_python)
    print(f"Quix Streams: {quix_note}", file=sys.stderr)

    raw_pred: dict[str, float] = {}
    raw_both: dict[str, float] = {}
    # (client, workers) -> (rate, peak RSS)
    same: dict[tuple[str, int], tuple[float, int | None]] = {}
    same_unwatched: dict[str, tuple[float, int | None]] = {}
    default: dict[tuple[str, int], tuple[float, int | None]] = {}
    with_metrics: dict[str, tuple[float, int | None]] = {}
    quix: tuple[float, int | None, dict[str, object]] | None = None
    quix_short: tuple[float, int | None, dict[str, object]] | None = None
    secure_raw = 0.0
    secure_engine: dict[str, tuple[float, int | None]] = {}
    if not args.latency_only:
        dep = create_deployment(args.bootstrap, args.partitions)
        secure_dep: Deployment | None = None
        try:
            predictions, outcomes = fraud_stream(
                pairs, drift_at=pairs // 2, error_before=0.05, error_after=0.3, seed=7
            )
            produce(args.bootstrap, dep.topics["predictions"], predictions, args.partitions)
            produce(args.bootstrap, dep.topics["outcomes"], outcomes, args.partitions)
            if secured is not None:
                servers, security = secured
                secure_dep = secured_deployment(servers, security, args.partitions, dep)
                for kind, events in (("predictions", predictions), ("outcomes", outcomes)):
                    produce_secured(servers, security, dep.topics[kind], events, args.partitions)
            del predictions, outcomes
            inputs = [dep.topics["predictions"], dep.topics["outcomes"]]
            for client in clients:
                print(f"raw consume, {client}", file=sys.stderr)
                raw_pred[client] = max(
                    raw_consume_rate(client, args.bootstrap, inputs[:1], pairs)
                    for _ in range(args.repeat)
                )
                raw_both[client] = max(
                    raw_consume_rate(client, args.bootstrap, inputs, records)
                    for _ in range(args.repeat)
                )
                for workers in WORKER_COUNTS:
                    print(f"engine same job, {client}, {workers} worker(s)", file=sys.stderr)
                    same[client, workers] = best(
                        [
                            engine_rate(dep, client, "same", SAME_JOB_CONFIG, tmp, workers=workers)
                            for _ in range(args.repeat)
                        ]
                    )
                print(f"engine same job, track_unwatched = false, {client}", file=sys.stderr)
                same_unwatched[client] = best(
                    [
                        engine_rate(dep, client, "unwatched-same", SAME_JOB_UNWATCHED_CONFIG, tmp)
                        for _ in range(args.repeat)
                    ]
                )
                print(f"engine default config, {client}", file=sys.stderr)
                runs: list[tuple[float, int | None]] = []
                metered: list[tuple[float, int | None]] = []
                for _ in range(args.repeat):
                    # Side by side, alternating: metrics off, then on and scraped.
                    runs.append(engine_rate(dep, client, "default", "", tmp))
                    if not args.no_metrics:
                        print(f"engine default config, metrics on, {client}", file=sys.stderr)
                        metered.append(
                            engine_rate(
                                dep, client, "metrics", METRICS_CONFIG, tmp, args.scrape_interval
                            )
                        )
                default[client, 1] = best(runs)
                if metered:
                    with_metrics[client] = best(metered)
                print(f"engine default config, {client}, 2 workers", file=sys.stderr)
                default[client, 2] = best(
                    [
                        engine_rate(dep, client, "default", "", tmp, workers=2)
                        for _ in range(args.repeat)
                    ]
                )
            if secured is not None and secure_dep is not None:
                servers, security = secured
                print("SASL_SSL: raw consume and engine, confluent-kafka", file=sys.stderr)
                secure_raw = max(
                    raw_confluent_rate(servers, inputs, records, librdkafka_options(security))
                    for _ in range(args.repeat)
                )
                for name, extra in (("same", SAME_JOB_CONFIG), ("default", "")):
                    secure_engine[name] = best(
                        [
                            engine_rate(
                                secure_dep,
                                "confluent-kafka",
                                f"sasl-{name}",
                                extra,
                                tmp,
                                security=security,
                            )
                            for _ in range(args.repeat)
                        ]
                    )
            if quix_python is not None:
                print("Quix Streams same job, stock (commit every 5 s)", file=sys.stderr)
                quix = max(
                    (
                        quix_rate(quix_python, dep, tmp, QUIX_STOCK_COMMIT_S)
                        for _ in range(args.repeat)
                    ),
                    key=lambda r: r[0],
                )
                print("Quix Streams same job, commit every 100 ms", file=sys.stderr)
                quix_short = max(
                    (
                        quix_rate(quix_python, dep, tmp, COMMIT_INTERVAL_S)
                        for _ in range(args.repeat)
                    ),
                    key=lambda r: r[0],
                )
                if quix[2].get("joined") != pairs:
                    print(
                        f"warning: the Quix job joined {quix[2].get('joined')} of {pairs} pairs",
                        file=sys.stderr,
                    )
        finally:
            delete_deployment(dep)
            if secured is not None and secure_dep is not None:
                delete_topics(
                    secured[0], list(secure_dep.topics.values()), kafka_python_options(secured[1])
                )

    # Per backend: the engine as it was (a poll is one batch), then as shipped.
    lat: dict[str, LatencyRun] = {}
    lat_before: dict[str, LatencyRun] = {}
    if not args.no_latency:
        for client in clients:
            load = args.latency_load or default[client, 1][0] / 2
            print(f"latency, {client}, a poll one batch", file=sys.stderr)
            lat_before[client] = latency(client, args, load, tmp, WHOLE_POLL)
            print(f"latency, {client}", file=sys.stderr)
            lat[client] = latency(client, args, load, tmp)

    rows: list[tuple[str, dict[str, str]]] = []

    def row(name: str, cell: dict[str, str]) -> None:
        rows.append((name, cell))

    def each(fn: object) -> dict[str, str]:
        return {c: fn(c) for c in clients}  # type: ignore[operator]

    stock = quix[0] if quix else None
    short = quix_short[0] if quix_short else None
    no_quix = "n/a" if args.no_quix else "not installed"

    def rate(value: float) -> str:
        return f"{value:,.0f}"

    def over(value: float, base: float | None) -> str:
        return f"{value / base:.2f}" if base else no_quix

    if not args.latency_only:
        row("raw consume, predictions topic (records/s)", each(lambda c: rate(raw_pred[c])))
        row("raw consume, both input topics (records/s)", each(lambda c: rate(raw_both[c])))
        for workers in WORKER_COUNTS:
            row(
                f"engine same job, exactly-once, {workers} worker(s) (events/s)",
                each(lambda c, w=workers: rate(same[c, w][0])),
            )
        row(
            "engine same job, track_unwatched = false, exactly-once, 1 worker(s) (events/s)",
            each(lambda c: rate(same_unwatched[c][0])),
        )
        for workers in WORKER_COUNTS:
            row(
                f"engine default config, exactly-once, {workers} worker(s) (events/s)",
                each(lambda c, w=workers: rate(default[c, w][0])),
            )
        if with_metrics:
            row(
                f"engine default config, metrics on, scraped every {args.scrape_interval:g} s "
                "(events/s)",
                each(lambda c: rate(with_metrics[c][0])),
            )
            row(
                "ratio engine default metrics on / off",
                each(lambda c: f"{with_metrics[c][0] / default[c, 1][0]:.2f}"),
            )
        row(
            "Quix Streams same job, exactly-once, stock: commit 5 s (events/s) *",
            each(lambda c: rate(stock) if stock else no_quix),
        )
        row(
            "Quix Streams same job, exactly-once, commit 100 ms (events/s) *",
            each(lambda c: rate(short) if short else no_quix),
        )
        row("ratio 2 workers / 1, same job", each(lambda c: over(same[c, 2][0], same[c, 1][0])))
        row(
            "ratio 2 workers / 1, default config",
            each(lambda c: over(default[c, 2][0], default[c, 1][0])),
        )
        row(
            "ratio engine same job / raw both input topics",
            each(lambda c: over(same[c, 1][0], raw_both[c])),
        )
        row(
            "ratio engine default / raw both input topics",
            each(lambda c: over(default[c, 1][0], raw_both[c])),
        )
        row("ratio engine same job / Quix stock", each(lambda c: over(same[c, 1][0], stock)))
        row("ratio engine default / Quix stock", each(lambda c: over(default[c, 1][0], stock)))
        row("ratio engine same job / Quix 100 ms", each(lambda c: over(same[c, 1][0], short)))
        row("ratio engine default / Quix 100 ms", each(lambda c: over(default[c, 1][0], short)))
        for workers in WORKER_COUNTS:
            row(
                f"peak RSS engine same job, {workers} worker(s) (MB, sum)",
                each(lambda c, w=workers: rss(same[c, w][1])),
            )
            row(
                f"peak RSS engine default, {workers} worker(s) (MB, sum)",
                each(lambda c, w=workers: rss(default[c, w][1])),
            )
        row("peak RSS Quix Streams stock (MB) *", each(lambda c: rss(quix[1]) if quix else no_quix))
        row(
            "peak RSS Quix Streams 100 ms (MB) *",
            each(lambda c: rss(quix_short[1]) if quix_short else no_quix),
        )
        if secured is not None:

            def sasl(c: str, value: float, plain: float) -> str:
                return f"{value:,.0f} ({value / plain:.2f}x)" if c == "confluent-kafka" else "-"

            row(
                "SASL_SSL raw consume, both input topics (records/s, x PLAINTEXT)",
                each(lambda c: sasl(c, secure_raw, raw_both[c])),
            )
            row(
                "SASL_SSL engine same job, exactly-once (events/s, x PLAINTEXT)",
                each(lambda c: sasl(c, secure_engine["same"][0], same[c, 1][0])),
            )
            row(
                "SASL_SSL engine default config, exactly-once (events/s, x PLAINTEXT)",
                each(lambda c: sasl(c, secure_engine["default"][0], default[c, 1][0])),
            )
    if lat:
        for runs, label in (
            (lat_before, f"batch_max_records = {WHOLE_POLL} (a poll one batch, before)"),
            (lat, f"default config (batch_max_records = {KafkaSettings().batch_max_records})"),
        ):
            row(f"latency, {label}", each(lambda c: ""))
            row("  latency load (records/s)", each(lambda c, r=runs: rate(r[c].load)))
            row(
                "  labeled-event visibility p50 / p99 (ms)",
                each(lambda c, r=runs: p50_p99(r[c].labeled_ms, "no samples")),
            )
            row(
                "  error-alert visibility p50 / p99 (ms)",
                each(lambda c, r=runs: p50_p99(r[c].alert_ms, "no alerts")),
            )
            for stage in STAGES:
                row(
                    f"    alert stage: {stage} p50 / p99 (ms)",
                    each(lambda c, r=runs, s=stage: p50_p99(r[c].stages[s], "no alerts")),
                )

    if not args.latency_only:
        # Targets: on one engine process (1 worker).
        def confluent_only(c: str, text: str) -> str:
            return text if c == "confluent-kafka" else "-"

        row(
            f"target met? >= {TARGET_CONFLUENT_RATE // 1000}k events/s same job (confluent)",
            each(
                lambda c: confluent_only(
                    c, verdict(same[c, 1][0] >= TARGET_CONFLUENT_RATE, "1 worker")
                )
            ),
        )
        row(
            f"target met? >= {TARGET_CONFLUENT_DEFAULT_RATE // 1000}k events/s default (confluent)",
            each(
                lambda c: confluent_only(
                    c, verdict(default[c, 1][0] >= TARGET_CONFLUENT_DEFAULT_RATE, "1 worker")
                )
            ),
        )
        row(
            f"target met? >= {TARGET_QUIX_RATIO:g}x Quix stock (confluent)",
            each(
                lambda c: confluent_only(
                    c,
                    verdict(same[c, 1][0] >= TARGET_QUIX_RATIO * stock, "same job")
                    if stock
                    else no_quix,
                )
            ),
        )
        row(
            f"target met? >= {TARGET_RAW_RATIO:g}x raw both topics (kafka-python)",
            each(
                lambda c: (
                    "-"
                    if c != "kafka-python"
                    else verdict(
                        same[c, 1][0] >= TARGET_RAW_RATIO * raw_both[c],
                        "default "
                        + ("yes" if default[c, 1][0] >= TARGET_RAW_RATIO * raw_both[c] else "no"),
                    )
                )
            ),
        )
    if lat:
        row(
            f"target met? alert p99 < {TARGET_ALERT_P99_MS:.0f} ms at "
            + (f"{args.latency_load:,.0f} records/s" if args.latency_load else "half load"),
            each(
                lambda c: (
                    verdict(
                        percentile(lat[c].alert_ms, 0.99) < TARGET_ALERT_P99_MS,
                        f"n={len(lat[c].alert_ms)}",
                    )
                    if lat[c].alert_ms
                    else "no alerts"
                )
            ),
        )

    width = max(len(name) for name, _ in rows)
    colw = [max(len(c), *(len(cells[c]) for _, cells in rows)) for c in clients]
    head = (
        "latency only"
        if args.latency_only
        else f"throughput: {records:,} input records ({pairs:,} pairs), best of {args.repeat}"
    )
    lines = [
        f"{head}, {args.partitions} partition(s),"
        f" engine checkpoint every {COMMIT_INTERVAL_S * 1000:.0f} ms",
        f"{'':<{width}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(clients, colw, strict=True)),
    ]
    for name, cells in rows:
        lines.append(
            f"{name:<{width}}  "
            + "  ".join(f"{cells[c]:>{w}}" for c, w in zip(clients, colw, strict=True))
        )
    lines.append(
        f"* Quix measured once (on confluent-kafka), compared with each column; {quix_note}"
    )
    if secured is not None:
        lines.append(
            f"  SASL_SSL: {secured[1].sasl_mechanism} over TLS at {secured[0]}, a broker of "
            f"its own on this machine; x PLAINTEXT: the same row of this run at {args.bootstrap}"
        )
    if quix:
        lines.append(
            f"  Quix stock joined {quix[2].get('joined')} pairs, {quix[2].get('alerts')} alerts;"
            " engine same job publishes no labeled events (as Quix), the default config"
            " one per join"
        )
    table = "\n".join(lines)
    print(table)
    if args.record:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        command = "python benchmarks/throughput.py " + " ".join(sys.argv[1:])
        args.record.write_text(f"{stamp}, `{command}`:\n\n```\n{table}\n```\n")


if __name__ == "__main__":
    main()
