"""The retrainer as a Kafka service, against a real broker.

Every test runs ``stream-mlops retrainer`` as a child process on topics of its
own, with a registry whose champion (v1) was trained on the pre-drift concept.
The test plays the engine: it produces labeled events (keyed by model id, as
the engine does) and a retrain request, then reads ``model-updates`` and
``dead-letters`` back with ``read_committed``, as a downstream service would.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import kafka
import orjson
import pytest
from kafka.structs import TopicPartition

from stream_mlops.cli import main as cli_main
from stream_mlops.config import KafkaSettings, load_settings
from stream_mlops.events import LabeledEvent, RetrainRequest, WindowStart, encode, utc_datetime
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.retrainer_service import RetrainerService
from stream_mlops.kafka.task_runtime import RuntimeConfig, TaskRuntime
from stream_mlops.kafka.transport import (
    GroupConsumer,
    PartitionReader,
    TransactionalProducer,
    Transport,
)
from stream_mlops.kafka.transport import TopicPartition as TransportPartition
from stream_mlops.model_task import Task
from stream_mlops.registry import ModelRegistry
from stream_mlops.retrain import (
    FrozenChampion,
    LabeledExample,
    ModelSpec,
    PromotionPolicy,
    event_loss,
)
from stream_mlops.retrain.bootstrap import bootstrap_champion
from stream_mlops.retrain.models import prepare_label
from stream_mlops.retrain.retrainer import Retrainer, RetrainTask
from tests.kafka.engine_process import EngineProcess
from tests.kafka.streams import Deployment, create_deployment, delete_deployment, read_all
from tests.retrain.streams import fraud_stream

pytestmark = pytest.mark.kafka

PARTITIONS = 2
START_TS = 1_800_000_000.0
CHAMPION_EVENTS = 3000
PRE_DRIFT_EVENTS = 300
# Small bounds keep each test to seconds: 5 looks at alpha/5, retired after 600
# scored events. A concept flip is won at the first look or two (test_session).
POLICY = """
[retrainer.promotion]
min_events = 200
check_every = 100
max_events = 600
"""


@pytest.fixture
def deployment(kafka_bootstrap: str) -> Iterator[Deployment]:
    dep = create_deployment(kafka_bootstrap, PARTITIONS)
    try:
        yield dep
    finally:
        delete_deployment(dep)


class Setup:
    """A deployment, its retrainer config and a registry with the pre-drift champion."""

    def __init__(self, dep: Deployment, tmp_path: Path) -> None:
        self.dep = dep
        self.tmp_path = tmp_path
        self.group_id = f"rt-{uuid.uuid4().hex[:10]}"
        self.registry_dir = tmp_path / "registry"
        self.registry = ModelRegistry(self.registry_dir)
        self.spec = ModelSpec.for_task(Task.CLASSIFICATION)
        champion = fraud_stream(1, CHAMPION_EVENTS, start_ts=START_TS - CHAMPION_EVENTS)
        bootstrap_champion(
            self.registry,
            "fraud",
            self.spec,
            ((e.features, e.actual) for e in champion),
            created_ts=START_TS,
        )
        retrainer = "\n".join(
            [
                "[retrainer]",
                f'group_id = "{self.group_id}"',
                f'transactional_id_prefix = "{self.group_id}"',
                f'registry = "{self.registry_dir}"',
                # a killed retrainer's partitions move within seconds, not the default 45
                "session_timeout_ms = 10000",
                POLICY,
            ]
        )
        self.config = dep.write_config(tmp_path / "retrainer.toml", extra=retrainer)
        self.runs = 0

    def retrainer(self) -> EngineProcess:
        self.runs += 1
        log = self.tmp_path / f"retrainer-{self.runs}.log"
        return EngineProcess(self.config, "retrainer-1", log, command="retrainer")

    def topic(self, key: str) -> str:
        return self.dep.topics[key]

    def produce(self, key: str, values: Iterable[tuple[bytes, bytes]]) -> None:
        """Keyed records, placed by the default (Java-compatible murmur2) partitioner."""
        producer = kafka.KafkaProducer(bootstrap_servers=self.dep.bootstrap, linger_ms=5)
        try:
            for record_key, value in values:
                producer.send(self.topic(key), key=record_key, value=value)
            producer.flush()
        finally:
            producer.close()

    def produce_labeled(self, examples: Iterable[LabeledExample]) -> None:
        self.produce("labeled_events", ((b"fraud", labeled_bytes(e)) for e in examples))

    def produce_request(self, window_start_ts: float, model_id: str = "fraud") -> str:
        request_id = f"rq-{uuid.uuid4().hex[:8]}"
        request = RetrainRequest(
            request_id=request_id,
            model_id=model_id,
            model_version="v1",
            reason_alert_ids=["alert-1"],
            window_start=WindowStart(ts=utc_datetime(window_start_ts), event_id="first-post"),
            ts=utc_datetime(window_start_ts + 600),
        )
        self.produce("retrain_requests", [(model_id.encode(), encode(request))])
        return request_id

    def wait_committed(self, timeout_s: float = 60) -> None:
        """Until the retrainer's group committed the end of both input topics."""
        consumer = kafka.KafkaConsumer(
            bootstrap_servers=self.dep.bootstrap, group_id=self.group_id, enable_auto_commit=False
        )
        try:
            tps = [
                TopicPartition(self.topic(k), p)
                for k in ("retrain_requests", "labeled_events")
                for p in range(PARTITIONS)
            ]
            ends = consumer.end_offsets(tps)
            deadline = time.monotonic() + timeout_s
            while any((consumer.committed(tp) or 0) < ends[tp] for tp in tps):
                assert time.monotonic() < deadline, "retrainer did not commit its inputs"
                time.sleep(0.2)
        finally:
            consumer.close(autocommit=False)


def labeled_bytes(example: LabeledExample) -> bytes:
    return encode(
        LabeledEvent(
            event_id=example.event_id,
            model_id=example.model_id,
            model_version=example.model_version,
            ts=utc_datetime(example.ts),
            outcome_ts=utc_datetime(example.ts + 60),
            features=dict(example.features),
            prediction=example.prediction,
            actual=example.actual,
        )
    )


def pre_and_post_drift(post: int, *, flipped: bool) -> tuple[list[LabeledExample], float]:
    """Labeled events of the old concept, then ``post`` of the new; and where the new begins."""
    pre = list(fraud_stream(2, PRE_DRIFT_EVENTS, start_ts=START_TS))
    change_ts = START_TS + PRE_DRIFT_EVENTS
    after = list(
        fraud_stream(3, post, start_ts=START_TS, start_offset=PRE_DRIFT_EVENTS, flipped=flipped)
    )
    assert after[0].ts == change_ts
    return pre + after, change_ts


def policy_of(setup: Setup) -> PromotionPolicy:
    """The promotion test's parameters the retrainer reads from the setup's config."""
    settings = load_settings(setup.config)
    return PromotionPolicy(**settings.retrainer.promotion.overrides())  # type: ignore[arg-type]


def held_out_error(model: FrozenChampion, events: list[LabeledExample]) -> float:
    task = model.spec.task
    losses = [event_loss(task, model.predict(e), prepare_label(task, e.actual)) for e in events]
    return sum(losses) / len(losses)


def test_after_a_drift_a_request_promotes_a_better_version_and_publishes_it(
    deployment: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = Setup(deployment, tmp_path)
    events, change_ts = pre_and_post_drift(1500, flipped=True)
    setup.produce_labeled(events)
    request_id = setup.produce_request(change_ts)

    with setup.retrainer() as retrainer:
        retrainer.wait_for_log("session.started", request_id=request_id)
        promotion = retrainer.wait_for_log("promotion")
        setup.wait_committed()
        updates = read_all(deployment.bootstrap, setup.topic("model_updates"))
        assert retrainer.terminate() == 0

    assert [(u["model_id"], u["model_version"], u["parent_version"]) for u in updates] == [
        ("fraud", "v2", "v1")
    ]
    update = updates[0]
    record = setup.registry.get("fraud", "v2")
    assert setup.registry.champion("fraud") == record
    assert promotion["version"] == "v2" and promotion["content_hash"] == record.content_hash
    metrics = update["metrics"]
    assert isinstance(metrics, dict)
    assert metrics["loss"] < metrics["champion_loss"]
    assert metrics["p_value"] <= metrics["alpha_per_look"]
    # The training window: post-drift events only, offsets as published and recorded.
    window = record.training_window
    assert window.first_event_ts == change_ts
    assert window.event_count == metrics["learned_events"]
    (span,) = window.ranges
    assert update["training_window"] == [
        {
            "topic": setup.topic("labeled_events"),
            "partition": span.partition,
            "start_offset": span.first_offset,
            "end_offset": span.last_offset + 1,
        }
    ]
    assert span.first_offset == PRE_DRIFT_EVENTS  # every event went to the one partition

    # On post-drift data neither version has seen, the new one errs less.
    held_out = list(fraud_stream(4, 2000, start_ts=START_TS + 10_000, flipped=True))
    champion = FrozenChampion.from_artifact(setup.registry.artifact("fraud", "v1"), setup.spec)
    challenger = FrozenChampion.from_artifact(setup.registry.artifact("fraud", "v2"), setup.spec)
    assert held_out_error(challenger, held_out) < 0.9 * held_out_error(champion, held_out)

    # models reproduce reads the window back from Kafka and gets the recorded hash.
    capsys.readouterr()
    code = cli_main(["models", "--config", str(setup.config), "reproduce", "fraud", "v2", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["matches"] is True
    assert result["rebuilt_sha256"] == result["recorded_sha256"] == record.content_hash

    # The experiment log keeps the session: its request, the data, the losses, every look.
    (experiment,) = setup.registry.experiments("fraud")
    assert (experiment.request_id, experiment.reason_alert_ids) == (request_id, ("alert-1",))
    assert (experiment.outcome, experiment.version, experiment.content_hash) == (
        "promoted",
        "v2",
        record.content_hash,
    )
    assert (experiment.champion_version, experiment.parent_version) == ("v1", "v1")
    assert (experiment.window_start_ts, experiment.requested_ts) == (change_ts, change_ts + 600)
    assert experiment.training_window == window
    assert experiment.decided_ts == window.last_event_ts
    assert experiment.reason == setup.registry.promotions("fraud")[-1].reason
    assert experiment.policy == policy_of(setup).to_config()
    assert experiment.scored_events == metrics["scored_events"]
    assert experiment.champion_loss == metrics["champion_loss"]
    assert experiment.challenger_loss == metrics["loss"]
    assert experiment.p_value == metrics["p_value"] == experiment.looks[-1].p_value
    assert experiment.looks[-1].promote and not any(look.promote for look in experiment.looks[:-1])
    assert [look.scored_events for look in experiment.looks] == list(
        range(200, experiment.scored_events + 1, 100)
    )
    code = cli_main(
        ["models", "--config", str(setup.config), "experiments", "--outcome", "promoted", "--json"]
    )
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and listed == experiment.model_dump(mode="json")


def test_a_stationary_stream_never_promotes(deployment: Deployment, tmp_path: Path) -> None:
    setup = Setup(deployment, tmp_path)
    events, change_ts = pre_and_post_drift(900, flipped=False)
    setup.produce_labeled(events)
    request_id = setup.produce_request(change_ts)

    with setup.retrainer() as retrainer:
        retired = retrainer.wait_for_log("retired", request_id=request_id)
        setup.wait_committed()
        assert retrainer.terminate() == 0
        stopped = retrainer.wait_for_log("retrainer.stopped")

    assert "no promotion after 600 scored events" in str(retired["reason"])
    assert stopped["retired"] == 1 and stopped["promoted"] == 0
    assert read_all(deployment.bootstrap, setup.topic("model_updates")) == []
    assert [v.version for v in setup.registry.list("fraud")] == ["v1"]
    champion = setup.registry.champion("fraud")
    assert champion is not None and champion.version == "v1"
    # The retired session is kept, with what it was decided on.
    (experiment,) = setup.registry.experiments("fraud")
    assert (experiment.request_id, experiment.outcome, experiment.version) == (
        request_id,
        "retired",
        None,
    )
    assert experiment.reason == retired["reason"]
    assert [look.scored_events for look in experiment.looks] == [200, 300, 400, 500, 600]
    assert not any(look.promote for look in experiment.looks)
    assert experiment.training_window.ranges[0].first_offset == PRE_DRIFT_EVENTS
    assert experiment.training_window.event_count == 600


def test_kill_9_during_training_then_restart_gives_one_version_and_one_update(
    deployment: Deployment, tmp_path: Path
) -> None:
    setup = Setup(deployment, tmp_path)
    events, change_ts = pre_and_post_drift(1500, flipped=True)
    # Fewer post-drift events than the first look needs: the session is still training.
    first = PRE_DRIFT_EVENTS + 150
    setup.produce_labeled(events[:first])
    request_id = setup.produce_request(change_ts)

    with setup.retrainer() as retrainer:
        retrainer.wait_for_log("session.started", request_id=request_id)
        setup.wait_committed()
        retrainer.wait_for_log("checkpoint", sessions={"fraud": "running"})
        retrainer.kill()
        assert not any(e["event"] == "promotion" for e in retrainer.log_events())

    setup.produce_labeled(events[first:])
    with setup.retrainer() as restarted:
        restored = restarted.wait_for_log("state.restored", sessions={"fraud": "running"})
        restarted.wait_for_log("promotion")
        setup.wait_committed()
        updates = read_all(deployment.bootstrap, setup.topic("model_updates"))
        assert restarted.terminate() == 0
        log = restarted.log_events()

    assert restored["buffered"] == first
    assert not any(e["event"] == "request.received" for e in log)  # resumed, not restarted
    assert [(u["model_version"], u["parent_version"]) for u in updates] == [("v2", "v1")]
    assert [(v.version, v.parent_version) for v in setup.registry.list("fraud")] == [
        ("v1", None),
        ("v2", "v1"),
    ]
    # The resumed session learned each post-drift event once, from the window start on.
    window = setup.registry.get("fraud", "v2").training_window
    assert window.ranges[0].first_offset == PRE_DRIFT_EVENTS
    assert window.event_count == window.ranges[0].last_offset - PRE_DRIFT_EVENTS + 1


def test_bad_requests_and_labeled_events_go_to_dead_letters_and_the_retrainer_goes_on(
    deployment: Deployment, tmp_path: Path
) -> None:
    setup = Setup(deployment, tmp_path)
    good = next(iter(fraud_stream(5, 1, start_ts=START_TS)))
    good_event = orjson.loads(labeled_bytes(good))
    bad_labeled = {
        b"{not json": "not JSON",
        orjson.dumps({**good_event, "actual": None}): "actual",
        orjson.dumps({**good_event, "features": {"amount": [1, 2]}}): "features.amount",
        # valid as an event, but a classifier cannot learn the label 7
        orjson.dumps({**good_event, "actual": 7}): "classification learns binary labels",
    }
    setup.produce("labeled_events", ((b"fraud", value) for value in bad_labeled))
    setup.produce("retrain_requests", [(b"fraud", b'{"type": "retrain_request"}')])
    unknown = setup.produce_request(START_TS, model_id="ghost")

    with setup.retrainer() as retrainer:
        retrainer.wait_for_log("request.received", request_id=unknown)
        # Still consuming: a valid request afterwards starts a session.
        events, change_ts = pre_and_post_drift(10, flipped=True)
        setup.produce_labeled(events)
        valid = setup.produce_request(change_ts)
        retrainer.wait_for_log("session.started", request_id=valid)
        setup.wait_committed()
        letters = read_all(deployment.bootstrap, setup.topic("dead_letters"))
        assert retrainer.terminate() == 0
        logged = [e for e in retrainer.log_events() if e["event"] == "dead_letter"]

    # Exactly once in the topic; the log may repeat one whose transaction a rebalance aborted.
    assert len(letters) == len(bad_labeled) + 2
    positions = {(d["source_topic"], d["partition"], d["offset"]) for d in letters}
    assert len(positions) == len(letters)
    assert {(e["topic"], e["partition"], e["offset"]) for e in logged} == positions
    by_payload = {base64.b64decode(str(d["payload"])): d for d in letters}
    for payload, reason in bad_labeled.items():
        letter = by_payload[payload]
        assert letter["source_topic"] == setup.topic("labeled_events")
        assert reason in str(letter["error"]), letter
    requests = [d for d in letters if d["source_topic"] == setup.topic("retrain_requests")]
    errors = sorted(str(d["error"]) for d in requests)
    assert "request_id: Field required" in errors[0]
    assert errors[1].startswith("unknown model 'ghost'")


class Crash(BaseException):
    """Not an Exception: nothing in the runtime may catch it, as nothing catches kill -9."""


class CrashAfterRegister(ModelRegistry):
    """A registry whose process "dies" right after the version is written."""

    def promote(self, model_id: str, version: str, *, ts: float, reason: str = "") -> object:  # type: ignore[override]
        raise Crash(f"killed after registering {model_id} {version}")


class CrashOnCommitOfUpdate:
    """A producer whose process "dies" when it commits a transaction holding a ModelUpdate."""

    def __init__(self, producer: TransactionalProducer, updates_topic: str) -> None:
        self._producer = producer
        self._updates_topic = updates_topic
        self._sent_update = False

    def begin(self) -> None:
        self._producer.begin()

    def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        self._sent_update |= topic == self._updates_topic
        self._producer.send(topic, key, value, partition)

    def commit(self, offsets: Mapping[TransportPartition, int], group_metadata: object) -> None:
        if self._sent_update:
            raise Crash("killed while committing the ModelUpdate")
        self._producer.commit(offsets, group_metadata)

    def abort(self) -> None:
        self._producer.abort()

    def close(self) -> None:
        self._producer.close()


class CrashingTransport:
    def __init__(self, transport: Transport, updates_topic: str) -> None:
        self._transport = transport
        self._updates_topic = updates_topic

    def group_consumer(
        self,
        group_id: str,
        *,
        max_poll_interval_ms: int,
        session_timeout_ms: int | None = None,
        instance_id: str | None = None,
    ) -> GroupConsumer:
        return self._transport.group_consumer(
            group_id,
            max_poll_interval_ms=max_poll_interval_ms,
            session_timeout_ms=session_timeout_ms,
            instance_id=instance_id,
        )

    def transactional_producer(self, transactional_id: str) -> TransactionalProducer:
        producer = self._transport.transactional_producer(transactional_id)
        return CrashOnCommitOfUpdate(producer, self._updates_topic)

    def partition_reader(self) -> PartitionReader:
        return self._transport.partition_reader()


def run_in_thread(
    runtime: TaskRuntime[RetrainTask],
) -> tuple[threading.Thread, threading.Event, list[BaseException]]:
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            runtime.run(stop)
        except BaseException as exc:  # the test inspects it
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, stop, errors


@pytest.mark.parametrize("crash_at", ["registry", "commit"])
def test_a_crash_while_acting_on_a_promotion_registers_and_publishes_once(
    deployment: Deployment, tmp_path: Path, crash_at: str
) -> None:
    """The decided session is committed before the registry is written. A crash
    between the two registry steps, or while committing the ModelUpdate, leaves
    the decision in the snapshot: the restarted retrainer finishes the job with
    the same version, and the ModelUpdate of the crashed attempt is never visible."""
    setup = Setup(deployment, tmp_path)
    events, change_ts = pre_and_post_drift(1500, flipped=True)
    setup.produce_labeled(events)
    request_id = setup.produce_request(change_ts)
    settings = load_settings(setup.config)
    policy = policy_of(setup)

    def runtime(registry: ModelRegistry, *, crash_on_commit: bool) -> TaskRuntime[RetrainTask]:
        transport = open_transport(
            KafkaSettings(bootstrap_servers=deployment.bootstrap), client_id="test-retrainer"
        )
        if crash_on_commit:
            transport = CrashingTransport(transport, setup.topic("model_updates"))
        service = RetrainerService(Retrainer(settings, registry, policy), settings)
        config = RuntimeConfig.for_group(settings.kafka, settings.retrainer, instance_id="crash")
        return TaskRuntime(service, transport, config)

    first = (
        runtime(CrashAfterRegister(setup.registry_dir), crash_on_commit=False)
        if crash_at == "registry"
        else runtime(setup.registry, crash_on_commit=True)
    )
    thread, stop, errors = run_in_thread(first)
    thread.join(timeout=60)
    assert not thread.is_alive() and len(errors) == 1 and isinstance(errors[0], Crash), errors
    assert [v.version for v in setup.registry.list("fraud")] == ["v1", "v2"]
    champion = setup.registry.champion("fraud")
    assert champion is not None and champion.version == ("v1" if crash_at == "registry" else "v2")

    restarted = runtime(ModelRegistry(setup.registry_dir), crash_on_commit=False)
    service = restarted.service
    assert isinstance(service, RetrainerService)
    thread, stop, errors = run_in_thread(restarted)
    deadline = time.monotonic() + 60
    while service.core.stats.promoted == 0 and thread.is_alive():
        assert time.monotonic() < deadline, "no promotion after the restart"
        time.sleep(0.1)
    setup.wait_committed()
    stop.set()
    thread.join(timeout=30)
    assert not errors, errors
    assert service.core.stats.requests == 0  # the request's offset was committed with the decision

    updates = read_all(deployment.bootstrap, setup.topic("model_updates"))
    assert [(u["model_version"], u["parent_version"]) for u in updates] == [("v2", "v1")]
    assert [v.version for v in setup.registry.list("fraud")] == ["v1", "v2"]
    champion = setup.registry.champion("fraud")
    assert champion is not None and champion.version == "v2"
    # One experiment for the request, whether the crash came before it was written or after.
    (experiment,) = setup.registry.experiments()
    assert (experiment.request_id, experiment.outcome, experiment.version) == (
        request_id,
        "promoted",
        "v2",
    )
    assert (experiment.reason_alert_ids, experiment.requested_ts) == (("alert-1",), change_ts + 600)
    assert service.core.latest_experiment("fraud") == experiment


def test_a_window_older_than_the_buffer_trains_on_what_is_kept_and_says_so(
    deployment: Deployment, tmp_path: Path
) -> None:
    setup = Setup(deployment, tmp_path)
    config = setup.config.read_text().replace("[retrainer]\n", "[retrainer]\nbuffer_events = 100\n")
    setup.config.write_text(config)
    events, _ = pre_and_post_drift(10, flipped=False)
    with setup.retrainer() as retrainer:
        setup.produce_labeled(events)
        setup.wait_committed()
        request_id = setup.produce_request(START_TS)  # the window starts at the first event
        started = retrainer.wait_for_log("session.started", request_id=request_id)
        warning = retrainer.wait_for_log("session.window_truncated", request_id=request_id)
        assert retrainer.terminate() == 0

    assert started["buffered_events"] == 100  # the last 100 of the 310 events
    assert started["buffer_oldest_offset"] == len(events) - 100
    assert warning["oldest_buffered_ts"] == events[-100].ts
