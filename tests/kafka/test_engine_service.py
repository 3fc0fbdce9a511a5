"""The engine's wiring on the task runtime, on the in-memory transport (no broker).

The real-broker tests (``test_runtime.py``) run the same claims end to end on
both clients; these check the engine's own branches in seconds: the pending
join rebuilt from the inputs on restore, exactly-once alerts across a crash
and an aborted commit, and the dead letters' causes.
"""

from __future__ import annotations

import base64

import orjson
import pytest

from stream_mlops.config import Settings, parse_settings
from stream_mlops.engine import Engine
from stream_mlops.events import DriftAlert, RetrainRequest, decode_input, encode
from stream_mlops.kafka.engine_service import EngineService
from stream_mlops.kafka.state import CHUNK_MAGIC
from stream_mlops.kafka.task_runtime import RuntimeConfig, TaskRuntime
from stream_mlops.kafka.transport import TopicPartition
from tests.kafka.in_memory import TOPICS, MemoryCluster
from tests.kafka.streams import fraud_stream, partition_of

pytestmark = pytest.mark.usefixtures("process_settings")

PARTITIONS = 2


def deployment(kafka: dict[str, object], **other: object) -> tuple[MemoryCluster, Settings]:
    cluster = MemoryCluster()
    cluster.create_topics(TOPICS.values(), PARTITIONS)
    settings = parse_settings({"kafka": {"topics": TOPICS, **kafka}, **other})
    return cluster, settings


def engine_runtime(cluster: MemoryCluster, settings: Settings) -> TaskRuntime[Engine]:
    """An engine whose clock stands still: it commits when the test says so (or max events)."""
    kafka = settings.kafka
    config = RuntimeConfig.for_group(kafka, kafka, instance_id="a")
    return TaskRuntime(EngineService(settings), cluster.transport(), config, clock=lambda: 0.0)


def produce(cluster: MemoryCluster, topic: str, events: list[dict[str, object]]) -> None:
    for i, event in enumerate(events):
        key = str(event["event_id"]).encode()
        cluster.produce(topic, orjson.dumps(event), key=key, partition=partition_of(i, PARTITIONS))


def drain(runtime: TaskRuntime[Engine], cluster: MemoryCluster, topic: str, steps: int) -> None:
    """Step and checkpoint until the group committed the end of ``topic``."""
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    for _ in range(steps):
        runtime.step()
        runtime.checkpoint()
        committed = cluster.committed_offsets(runtime.config.group_id)
        if all(committed.get(tp) == cluster.end_offset(tp) for tp in tps):
            return
    raise AssertionError(f"{topic} not consumed in {steps} steps")


def expected_alerts(
    settings: Settings, predictions: list[dict[str, object]], outcomes: list[dict[str, object]]
) -> dict[str, dict[str, object]]:
    """What the pure core publishes, partition by partition, predictions first."""
    out: dict[str, dict[str, object]] = {}
    for p in range(PARTITIONS):
        engine = Engine(settings, partition=p)
        for kind, events in (("prediction", predictions), ("outcome", outcomes)):
            mine = [e for i, e in enumerate(events) if partition_of(i, PARTITIONS) == p]
            for offset, raw in enumerate(mine):
                event = decode_input(orjson.dumps(raw), default_type=kind)  # type: ignore[arg-type]
                for output in engine.process(event, offset=offset):
                    if isinstance(output, DriftAlert):
                        out[output.alert_id] = orjson.loads(encode(output))
    return out


def committed_alerts(cluster: MemoryCluster) -> list[dict[str, object]]:
    return [orjson.loads(r.value or b"") for r in cluster.committed_records("drift-alerts")]


@pytest.mark.parametrize(
    "chunk_bytes", [None, 2048], ids=["one-record-snapshots", "chunked-snapshots"]
)
def test_alerts_are_exactly_once_across_a_crash_and_an_aborted_commit(
    chunk_bytes: int | None,
) -> None:
    chunking = {} if chunk_bytes is None else {"snapshot_chunk_bytes": chunk_bytes}
    cluster, settings = deployment({"checkpoint_max_events": 100_000, **chunking})
    predictions, outcomes = fraud_stream(
        6000, drift_at=3000, error_before=0.05, error_after=0.30, seed=1
    )
    produce(cluster, "predictions", predictions)
    first = engine_runtime(cluster, settings)
    first.start()
    drain(first, cluster, "predictions", steps=50)
    produce(cluster, "outcomes", outcomes)
    first.step()
    first.checkpoint()
    first.step()  # more outcomes, not committed: the clock stands still
    cluster.crash()  # kill -9
    cluster.expire_sessions(settings.kafka.group_id)

    with engine_runtime(cluster, settings) as second:
        second.start()
        second.step()
        pending = sum(engine.stats.pending for engine in second.tasks.values())
        assert pending > 0, "predictions waiting for their outcomes are rebuilt from the input"
        second.step()
        cluster.fail_next_commit()
        second.checkpoint()  # aborted: rewinds to the last snapshot again
        drain(second, cluster, "outcomes", steps=100)

    if chunk_bytes is not None:  # every state record fits; restore reassembled the chunks
        state_records = cluster.all_records("state")
        heads = [r for r in state_records if r.value and not r.value.startswith(CHUNK_MAGIC)]
        assert len(state_records) > 2 * len(heads), "the engine's snapshots were chunked"
        assert max(len(r.value or b"") for r in state_records) < chunk_bytes + 300
    alerts = committed_alerts(cluster)
    expected = expected_alerts(settings, predictions, outcomes)
    assert expected, "the stream must make the core alert"
    assert len(alerts) == len({a["alert_id"] for a in alerts}), "an alert was published twice"
    assert {str(a["alert_id"]): a for a in alerts} == expected
    labeled = [orjson.loads(r.value or b"") for r in cluster.committed_records("labeled-events")]
    assert sorted(e["event_id"] for e in labeled) == sorted(str(o["event_id"]) for o in outcomes)
    requests = cluster.committed_records("retrain-requests")
    assert [RetrainRequest.model_validate_json(r.value or b"").model_id for r in requests] == [
        "fraud"
    ] * len(requests)


def test_bad_records_are_dead_letters_with_a_cause_and_the_engine_goes_on() -> None:
    cluster, settings = deployment(
        {"max_record_bytes": 2000}, unknown_models="reject", models={"fraud": {}}
    )
    predictions, outcomes = fraud_stream(20, drift_at=20, error_before=0.0, error_after=0.0, seed=2)
    bad = {
        b"{not json": "invalid",
        orjson.dumps(outcomes[0]): "wrong_topic",
        orjson.dumps({**predictions[1], "model_id": "ghost"}): "unknown_model",
        b"x" * 2001: "too_large",
    }
    for value in bad:
        cluster.produce("predictions", value, key=b"k", partition=0)
    produce(cluster, "predictions", predictions)
    with engine_runtime(cluster, settings) as runtime:
        runtime.start()
        drain(runtime, cluster, "predictions", steps=20)
        causes = runtime.stats.snapshot().dead_letters
    letters = [orjson.loads(r.value or b"") for r in cluster.committed_records("dead-letters")]
    assert {base64.b64decode(str(d["payload"])) for d in letters} == set(bad)
    assert causes == {"invalid": 1, "wrong_topic": 1, "unknown_model": 1, "too_large": 1}
    assert sum(e.stats.predictions for e in runtime.tasks.values()) == len(predictions)
