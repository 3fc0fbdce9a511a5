"""``stream-mlops demo``: the closed loop, end to end, on a real broker.

What runs, all on this machine:

* the local Kafka broker (started if none answers, stopped at the end if the
  demo started it), or the cluster of ``KAFKA_BOOTSTRAP_SERVERS``;
* the engine (``stream-mlops run``) and the retrainer (``stream-mlops
  retrainer``) as child processes, tracked by pid, stopped at the end (also
  on failure or Ctrl-C), their JSON logs in the run's directory;
* the fraud scoring service in this process: it serves the registry's
  champion, hot-swaps on ``model-updates``, and injects an abrupt concept
  drift at a known transaction;
* a collector reading every output topic with ``read_committed``;
* the operator page (``stream-mlops ui``, unless ``--no-ui``) as a child
  process on a free loopback port: the demo prints its address, and stops it
  at the end with the services.

Every run gets its own topics, groups and registry under ``.demo/<run id>/``,
so runs never see each other's state.
"""

from __future__ import annotations

import pickle
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_mlops.config import KafkaTopics, load_settings
from stream_mlops.demo.report import (
    ServedOutcome,
    event_index,
    plot_png,
    render_html,
    render_text,
    summarize,
)
from stream_mlops.events import loads
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.bootstrap import (
    bootstrap_servers,
    connection_settings,
    external_bootstrap_servers,
)
from stream_mlops.kafka.broker.process import metadata_answers
from stream_mlops.kafka.model_updates import follow_model_updates
from stream_mlops.kafka.publisher import Pacer, publish
from stream_mlops.kafka.topics import create_topics, topic_specs
from stream_mlops.kafka.transport import Transport
from stream_mlops.registry import ModelRegistry
from stream_mlops.service_process import ServiceProcess
from stream_mlops.simulate.champion import Champion
from stream_mlops.simulate.fraud import FraudConfig, FraudSimulator, bootstrap_model
from stream_mlops.simulate.scenario import DriftScenario, LabelDelay
from stream_mlops.simulate.stream import Emission

MODEL_ID = "fraud"


@dataclass(frozen=True)
class DemoOptions:
    events: int = 24_000
    drift_at: int = 9_000
    #: transactions per second; the engine on kafka-python keeps up with a few thousand
    rate: float = 500.0
    seed: int = 7
    #: mean label delay, event-time seconds (exponential); 1% of outcomes never arrive
    label_delay: float = 2.0
    out: Path = Path("demo-report.html")
    workdir: Path = Path(".demo")
    client: str = "kafka-python"
    progress: bool = True
    #: serve the operator page while the demo runs
    ui: bool = True


@dataclass
class Collected:
    """What the output topics said, as the collector saw it (read_committed)."""

    outcomes: list[ServedOutcome] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: int = 0
    #: wall-clock time each alert became visible
    alert_seen_at: dict[str, float] = field(default_factory=dict)
    #: transactions scored when each alert became visible
    alert_seen_at_index: dict[str, int] = field(default_factory=dict)
    #: transactions scored so far (written by the scoring loop)
    predictions_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _say(opts: DemoOptions, text: str) -> None:
    if opts.progress:
        print(text, flush=True)


def _ensure_broker(opts: DemoOptions) -> tuple[str, bool]:
    """The cluster to use, and whether the demo started it (and so stops it)."""
    external = external_bootstrap_servers()
    servers = bootstrap_servers()
    if external is not None or metadata_answers(servers, 3.0):
        return servers, False
    from stream_mlops.kafka.broker import command as broker_command

    _say(opts, "starting the local Kafka broker ...")
    if broker_command("start", data_dir=None) != 0:
        raise RuntimeError("the local broker did not start (see above)")
    return servers, True


def _write_config(
    path: Path, *, run_id: str, servers: str, topics: KafkaTopics, registry: Path, client: str
) -> None:
    topic_lines = "\n".join(f'{k} = "{v}"' for k, v in topics.model_dump().items())
    path.write_text(
        f"""# stream-mlops demo run {run_id}
[kafka]
bootstrap_servers = "{servers}"
client = "{client}"
group_id = "demo-{run_id}-engine"
transactional_id_prefix = "demo-{run_id}-engine"
partitions = 1

[kafka.topics]
{topic_lines}

[models.{MODEL_ID}]
task = "classification"

[retrainer]
group_id = "demo-{run_id}-retrainer"
transactional_id_prefix = "demo-{run_id}-retrainer"
registry = "{registry}"
session_timeout_ms = 6000
"""
    )


def _register_first_champion(registry_dir: Path, seed: int) -> Champion:
    """v1: the fraud model trained on pre-drift data, registered and promoted."""
    model = bootstrap_model(seed)
    registry = ModelRegistry(registry_dir)
    version = registry.register(
        MODEL_ID,
        pickle.dumps(model),
        created_ts=time.time(),
        config={"source": "stream-mlops demo bootstrap", "seed": seed},
    )
    registry.promote(MODEL_ID, version.version, ts=time.time(), reason="demo bootstrap")
    return Champion(
        MODEL_ID, version.version, pickle.loads(registry.artifact(MODEL_ID, version.version))
    )


def _collect(
    transport: Transport, topics: KafkaTopics, collected: Collected, stop: threading.Event
) -> None:
    names = {
        topics.labeled_events: "labeled",
        topics.drift_alerts: "alert",
        topics.retrain_requests: "request",
        topics.model_updates: "update",
        topics.dead_letters: "dead",
    }
    reader = transport.reader(read_committed=True)
    try:
        reader.assign({tp: "earliest" for topic in names for tp in reader.partitions(topic)})
        while not stop.is_set():
            records = reader.poll(0.2, max_records=5000)
            now = time.time()
            with collected.lock:
                for record in records:
                    kind = names[record.topic]
                    if record.value is None:
                        continue
                    event = loads(record.value)
                    if kind == "labeled":
                        collected.outcomes.append(
                            ServedOutcome(
                                event_index(str(event["event_id"])),
                                str(event["model_version"]),
                                float(event["prediction"] != event["actual"]),
                            )
                        )
                    elif kind == "alert":
                        collected.alerts.append(event)
                        collected.alert_seen_at[str(event["alert_id"])] = now
                        collected.alert_seen_at_index[str(event["alert_id"])] = (
                            collected.predictions_sent
                        )
                    elif kind == "request":
                        collected.requests.append(event)
                    elif kind == "update":
                        collected.updates.append(event)
                    else:
                        collected.dead_letters += 1
    finally:
        reader.close()


def _prepare_run(
    opts: DemoOptions, run_id: str, run_dir: Path, servers: str, transport: Transport
) -> tuple[KafkaTopics, Path, Champion]:
    """Topics, config and the first champion of one run, all its own."""
    topics = KafkaTopics(**{k: f"demo-{run_id}-{v}" for k, v in KafkaTopics().model_dump().items()})
    admin = transport.admin()
    try:
        # One partition: one engine task sees the whole stream, so detection
        # delay is not multiplied by the partition count.
        create_topics(admin, topic_specs(topics, 1))
    finally:
        admin.close()
    registry_dir = run_dir / "registry"
    config = run_dir / "demo.toml"
    _write_config(
        config,
        run_id=run_id,
        servers=servers,
        topics=topics,
        registry=registry_dir,
        client=opts.client,
    )
    champion = _register_first_champion(registry_dir, opts.seed)
    _say(opts, f"run {run_id}: topics demo-{run_id}-*, registry {registry_dir}")
    return topics, config, champion


def _start_page(opts: DemoOptions, config: Path, run_dir: Path) -> ServiceProcess:
    """The operator page on a free loopback port; prints its address once it serves."""
    page = ServiceProcess(
        "ui", ["ui", "--config", str(config), "--port", "0"], run_dir / "ui.log"
    ).start()
    started = page.wait_for_log("ui.started", 60)
    _say(opts, f"operator page: {started['url']}  (open it in a browser; it stops with the demo)")
    return page


def run_demo(opts: DemoOptions) -> int:
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    run_dir = (opts.workdir / run_id).resolve()
    run_dir.mkdir(parents=True)
    servers, started_broker = _ensure_broker(opts)
    # Every Kafka client of the demo itself (admin, collector, follower, scoring
    # service) comes from this one transport: the chosen client library, and the
    # connection settings the environment gives.
    transport = open_transport(
        connection_settings(load_settings(None), bootstrap_servers=servers, client=opts.client),
        client_id="stream-mlops-demo",
    )
    children: list[ServiceProcess] = []
    stop = threading.Event()
    try:
        topics, config, champion = _prepare_run(opts, run_id, run_dir, servers, transport)
        registry_dir = run_dir / "registry"
        if opts.ui:
            children.append(_start_page(opts, config, run_dir))
        for name, command in (("engine", "run"), ("retrainer", "retrainer")):
            children.append(
                ServiceProcess(
                    name,
                    [command, "--config", str(config), "--instance-id", f"demo-{run_id}"],
                    run_dir / f"{name}.log",
                ).start()
            )
        for child in children:
            if child.name != "ui":
                child.wait_for_log("partitions.assigned", 90)

        collected = Collected()
        collector = threading.Thread(
            target=_collect, args=(transport, topics, collected, stop), daemon=True
        )
        collector.start()
        follow_model_updates(
            transport=transport,
            topic=topics.model_updates,
            registry_dir=registry_dir,
            champion=champion,
            stop=stop,
        )

        drift_sent_at, sent_outcomes = _serve_transactions(
            opts, transport, topics, champion, collected
        )
        # Let the engine join the last outcomes.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with collected.lock:
                if len(collected.outcomes) >= sent_outcomes:
                    break
            time.sleep(0.5)
        _progress(opts, collected, champion)
        stop.set()
        collector.join(timeout=10)
        for child in children:
            child.terminate()

        seen_after: dict[str, float] = {}
        if drift_sent_at:
            seen_after = {k: v - drift_sent_at[0] for k, v in collected.alert_seen_at.items()}
        summary = summarize(
            events=opts.events,
            drift_index=opts.drift_at,
            outcomes=collected.outcomes,
            alerts=collected.alerts,
            requests=collected.requests,
            updates=collected.updates,
            alert_seen_after_drift_s=seen_after,
            alert_seen_at_index=collected.alert_seen_at_index,
        )
        png = plot_png(summary, collected.outcomes)
        opts.out.write_text(render_html(summary, png))
        print()
        print(render_text(summary))
        print(f"report: {opts.out.resolve()}   logs: {run_dir}")
        return 0 if summary.detected and summary.promoted else 1
    finally:
        stop.set()
        for child in children:
            child.terminate()
        if started_broker:
            from stream_mlops.kafka.broker import command as broker_command

            broker_command("stop", data_dir=None)


def _serve_transactions(
    opts: DemoOptions,
    transport: Transport,
    topics: KafkaTopics,
    champion: Champion,
    collected: Collected,
) -> tuple[list[float], int]:
    """The fraud scoring service: returns when the drift point was sent and how
    many outcomes went out."""
    simulator = FraudSimulator(
        FraudConfig(
            seed=opts.seed,
            n_events=opts.events,
            events_per_second=opts.rate,
            scenario=DriftScenario(kind="abrupt", at=opts.drift_at),
            label_delay=LabelDelay(mean_s=opts.label_delay, missing_fraction=0.01),
            model_id=MODEL_ID,
            model_version=champion.current().version,
        ),
        champion,
    )
    drift_sent_at: list[float] = []
    sent_outcomes = [0]
    drift_id = f"txn-{opts.seed}-{opts.drift_at:07d}"

    def watched(emissions: Iterator[Emission]) -> Iterator[Emission]:
        last_report = time.monotonic()
        for emission in emissions:
            if emission.kind == "prediction" and emission.key == drift_id:
                drift_sent_at.append(time.time())
                _say(opts, f"drift injected at transaction {opts.drift_at:,}")
            if emission.kind == "outcome":
                sent_outcomes[0] += 1
            else:
                collected.predictions_sent += 1
            if time.monotonic() - last_report > 3:
                last_report = time.monotonic()
                _progress(opts, collected, champion)
            yield emission

    producer = transport.producer()
    _say(opts, f"scoring {opts.events:,} transactions at {opts.rate:.0f}/s ...")
    try:
        publish(
            watched(iter(simulator)),
            producer,
            predictions_topic=topics.predictions,
            outcomes_topic=topics.outcomes,
            pacer=Pacer(opts.rate),
            stop=None,
        )
    finally:
        producer.close()
    return drift_sent_at, sent_outcomes[0]


def _progress(opts: DemoOptions, collected: Collected, champion: Champion) -> None:
    with collected.lock:
        labeled = len(collected.outcomes)
        recent = collected.outcomes[-500:]
        error = sum(o.error for o in recent) / len(recent) if recent else 0.0
        alerts = sum(1 for a in collected.alerts if a.get("signal") == "error")
        requests = len(collected.requests)
    _say(
        opts,
        f"  labeled {labeled:>6,}  recent error {100 * error:5.2f}%  error alerts {alerts}"
        f"  retrain requests {requests}  serving {champion.current().version}",
    )
