"""The engine as a Kafka service, against a real broker.

Every test runs ``stream-mlops run`` as a child process on topics of its own
and reads the results back with ``read_committed``, as a downstream service
would. The expected alerts come from the pure core fed the same events in the
same per-partition order (predictions first, then outcomes), which is what
``replay`` runs.
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import kafka
import orjson
import pytest

from stream_mlops.kafka.state import SnapshotHead
from tests.kafka.engine_process import EngineProcess
from tests.kafka.streams import (
    Deployment,
    fraud_stream,
    partition_of,
    produce,
    read_all,
    replay_outputs,
    wait_consumed,
)

pytestmark = pytest.mark.kafka

PARTITIONS = 2


def expected_outputs(
    config: Path, predictions: list[dict[str, object]], outcomes: list[dict[str, object]]
) -> list[dict[str, object]]:
    """What the core publishes for these events, partition by partition."""
    return replay_outputs(config, predictions, outcomes, PARTITIONS)


def by_id(events: list[dict[str, object]], id_field: str) -> dict[str, dict[str, object]]:
    return {str(e[id_field]): e for e in events}


def run_two_phases(
    dep: Deployment,
    engine: EngineProcess,
    predictions: list[dict[str, object]],
    outcomes: list[dict[str, object]],
) -> None:
    """Predictions first and consumed, then outcomes: a fixed processing order."""
    produce(dep.bootstrap, dep.topics["predictions"], predictions, PARTITIONS)
    wait_consumed(dep, kinds=("predictions",))
    produce(dep.bootstrap, dep.topics["outcomes"], outcomes, PARTITIONS)


def test_injected_drift_gives_alert_and_retrain_request_as_replay_does(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = deployment.write_config(tmp_path / "engine.toml")
    predictions, outcomes = fraud_stream(
        8000, drift_at=4000, error_before=0.05, error_after=0.30, seed=1
    )
    with EngineProcess(config, "a", tmp_path / "engine.log") as engine:
        engine.wait_for_log("partitions.assigned")
        run_two_phases(deployment, engine, predictions, outcomes)
        wait_consumed(deployment)
        assert engine.terminate() == 0

    alerts = read_all(deployment.bootstrap, deployment.topics["drift_alerts"])
    requests = read_all(deployment.bootstrap, deployment.topics["retrain_requests"])
    drift_on_error = [a for a in alerts if a["signal"] == "error" and a["severity"] == "drift"]
    assert drift_on_error, alerts
    first_index = min(int(str(a["trigger_event_id"]).rsplit("-", 1)[1]) for a in drift_on_error)
    assert first_index >= 4000, "an error drift before the injected change is a false alarm"
    assert [r["model_id"] for r in requests] and {r["model_id"] for r in requests} == {"fraud"}

    expected = expected_outputs(config, predictions, outcomes)
    exp_alerts = [e for e in expected if e["type"] == "drift_alert"]
    exp_requests = [e for e in expected if e["type"] == "retrain_request"]
    assert len(alerts) == len(exp_alerts)
    assert by_id(alerts, "alert_id") == by_id(exp_alerts, "alert_id")
    assert by_id(requests, "request_id") == by_id(exp_requests, "request_id")

    labeled = read_all(deployment.bootstrap, deployment.topics["labeled_events"])
    assert len(labeled) == len(outcomes)
    assert len({e["event_id"] for e in labeled}) == len(outcomes)

    log = engine.log_events()
    assert any(e["event"] == "checkpoint" for e in log)
    assert any(e["event"] == "alert" and e["signal"] == "error" for e in log)


def test_an_alert_commits_at_once_not_at_the_checkpoint_interval(
    deployment: Deployment, tmp_path: Path
) -> None:
    # Ten minutes between interval checkpoints and no event-count checkpoint:
    # only the commit that an alert forces can make anything visible in time.
    # Labeled events are switched off here (no retrainer listens).
    config = deployment.write_config(
        tmp_path / "engine.toml",
        checkpoint_interval_ms=600_000,
        kafka_extra="checkpoint_max_events = 10000000\npublish_labeled_events = false",
    )
    # The predictions are consumed and committed first, by an engine with the
    # usual interval: otherwise a lagging engine may see outcomes before all
    # predictions, and its alerts' feature shifts would differ from the core's
    # run in that order (seen under load).
    first = deployment.write_config(
        tmp_path / "first.toml", kafka_extra="publish_labeled_events = false"
    )
    predictions, outcomes = fraud_stream(
        6000, drift_at=3000, error_before=0.05, error_after=0.30, seed=1
    )
    expected = [
        e for e in expected_outputs(config, predictions, outcomes) if e["type"] == "drift_alert"
    ]
    assert expected, "the stream must make the core alert"
    with EngineProcess(first, "a", tmp_path / "first.log") as engine:
        engine.wait_for_log("partitions.assigned")
        produce(deployment.bootstrap, deployment.topics["predictions"], predictions, PARTITIONS)
        wait_consumed(deployment, kinds=("predictions",))
        assert engine.terminate() == 0
    before = by_id(read_all(deployment.bootstrap, deployment.topics["drift_alerts"]), "alert_id")
    with EngineProcess(config, "a", tmp_path / "engine.log") as engine:
        engine.wait_for_log("partitions.assigned")
        produce(deployment.bootstrap, deployment.topics["outcomes"], outcomes, PARTITIONS)
        visible = read_all(deployment.bootstrap, deployment.topics["drift_alerts"], idle_s=5)
        new = set(by_id(visible, "alert_id")) - set(before)
        assert new, "no alert visible while the engine runs: it waited for the interval"
        assert set(by_id(visible, "alert_id")) <= set(by_id(expected, "alert_id"))
        assert engine.terminate() == 0
    alerts = read_all(deployment.bootstrap, deployment.topics["drift_alerts"])
    assert by_id(alerts, "alert_id") == by_id(expected, "alert_id")
    assert read_all(deployment.bootstrap, deployment.topics["labeled_events"], idle_s=1) == []


def snapshot_offsets(dep: Deployment, partition: int) -> list[dict[str, int]]:
    """The offsets of every committed snapshot of the group's task ``partition``, in
    commit order (heads only: a chunk record holds no offsets)."""
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=dep.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    key = f"{dep.group_id}:{partition}".encode()
    out: list[dict[str, int]] = []
    try:
        tps = [
            kafka.TopicPartition(dep.topics["state"], p)
            for p in consumer.partitions_for_topic(dep.topics["state"]) or ()
        ]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=200).values():
                out += [SnapshotHead.from_bytes(r.value).offsets for r in records if r.key == key]
    finally:
        consumer.close()
    return out


def test_an_alert_commits_within_one_batch_of_its_trigger_not_at_the_end_of_its_poll(
    deployment: Deployment, tmp_path: Path
) -> None:
    # Ten minutes between interval checkpoints and no event-count checkpoint:
    # while the engine runs, only the commits alerts ask for happen. The
    # outcomes wait on the topic before it starts, so its polls are long (up to
    # 2,000 records); each alert's commit must come within batch_max_records
    # records of its trigger, not at the end of the poll that brought it.
    batch = 50
    config = deployment.write_config(
        tmp_path / "engine.toml",
        checkpoint_interval_ms=600_000,
        kafka_extra=(
            "checkpoint_max_events = 10000000\npublish_labeled_events = false\n"
            f"batch_max_records = {batch}"
        ),
    )
    first = deployment.write_config(
        tmp_path / "first.toml", kafka_extra="publish_labeled_events = false"
    )
    predictions, outcomes = fraud_stream(
        6000, drift_at=3000, error_before=0.05, error_after=0.30, seed=1
    )
    expected = by_id(
        [e for e in expected_outputs(config, predictions, outcomes) if e["type"] == "drift_alert"],
        "alert_id",
    )
    with EngineProcess(first, "a", tmp_path / "first.log") as engine:
        engine.wait_for_log("partitions.assigned")
        produce(deployment.bootstrap, deployment.topics["predictions"], predictions, PARTITIONS)
        wait_consumed(deployment, kinds=("predictions",))
        assert engine.terminate() == 0
    before = set(
        by_id(read_all(deployment.bootstrap, deployment.topics["drift_alerts"]), "alert_id")
    )
    produce(deployment.bootstrap, deployment.topics["outcomes"], outcomes, PARTITIONS)
    with EngineProcess(config, "a", tmp_path / "engine.log") as engine:
        deadline = time.monotonic() + 120
        while True:
            visible = by_id(
                read_all(deployment.bootstrap, deployment.topics["drift_alerts"], idle_s=1),
                "alert_id",
            )
            if set(visible) == set(expected) or time.monotonic() > deadline:
                break
        assert visible == expected, "every alert visible while the engine runs, each once"
        assert engine.terminate() == 0
    new = [a for key, a in expected.items() if key not in before]
    assert new, "the outcomes must make the core alert"
    for alert in new:
        index = int(str(alert["trigger_event_id"]).rsplit("-", 1)[1])
        # produce() places outcome i on partition i % PARTITIONS, in order.
        partition, offset = index % PARTITIONS, index // PARTITIONS
        committed = [
            o[deployment.topics["outcomes"]]
            for o in snapshot_offsets(deployment, partition)
            if o[deployment.topics["outcomes"]] > offset
        ]
        assert committed, f"no commit after the trigger of {alert['alert_id']}"
        assert committed[0] <= offset + batch, (
            f"the commit of {alert['alert_id']} (outcome offset {offset}) came "
            f"{committed[0] - offset - 1} records later, more than one batch of {batch}"
        )


def test_kill9_and_restart_loses_and_duplicates_no_alert(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = deployment.write_config(tmp_path / "engine.toml")
    predictions, outcomes = fraud_stream(
        30000, drift_at=8000, error_before=0.05, error_after=0.30, seed=2
    )
    log = tmp_path / "engine.log"
    first = EngineProcess(config, "a", log)
    with first:
        first.wait_for_log("partitions.assigned")
        run_two_phases(deployment, first, predictions, outcomes)
        # Kill while the outcomes are being processed, after some checkpoints.
        first.wait_for_log("alert", timeout=60)
        first.kill()
    killed_at = time.monotonic()
    with EngineProcess(config, "a", tmp_path / "engine2.log") as second:
        restored = second.wait_for_log("state.restored")
        assert restored["pending"], "predictions still waiting for outcomes must be rebuilt"
        wait_consumed(deployment)
        assert second.terminate() == 0
    assert time.monotonic() - killed_at < 120

    alerts = read_all(deployment.bootstrap, deployment.topics["drift_alerts"])
    ids = [str(a["alert_id"]) for a in alerts]
    assert len(ids) == len(set(ids)), "an alert was published twice"
    expected = [
        e for e in expected_outputs(config, predictions, outcomes) if e["type"] == "drift_alert"
    ]
    assert by_id(alerts, "alert_id") == by_id(expected, "alert_id")
    labeled = read_all(deployment.bootstrap, deployment.topics["labeled_events"])
    assert sorted(e["event_id"] for e in labeled) == sorted(o["event_id"] for o in outcomes)


def test_two_engines_share_partitions_and_publish_each_alert_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = deployment.write_config(tmp_path / "engine.toml")
    predictions, outcomes = fraud_stream(
        12000, drift_at=6000, error_before=0.05, error_after=0.30, seed=3
    )
    with (
        EngineProcess(config, "a", tmp_path / "a.log") as a,
        EngineProcess(config, "b", tmp_path / "b.log") as b,
    ):
        # Wait until both members hold one partition each.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            last = [
                [e for e in p.log_events() if e["event"] == "partitions.assigned"][-1:]
                for p in (a, b)
            ]
            if all(x and len(x[0]["partitions"]) == 1 for x in last):  # type: ignore[arg-type]
                break
            time.sleep(0.2)
        else:
            pytest.fail("the two engines did not split the partitions")
        run_two_phases(deployment, a, predictions, outcomes)
        wait_consumed(deployment)
        assert a.terminate() == 0
        assert b.terminate() == 0

    alerts = read_all(deployment.bootstrap, deployment.topics["drift_alerts"])
    expected = [
        e for e in expected_outputs(config, predictions, outcomes) if e["type"] == "drift_alert"
    ]
    assert len(alerts) == len({a["alert_id"] for a in alerts})
    assert by_id(alerts, "alert_id") == by_id(expected, "alert_id")


def test_malformed_records_go_to_dead_letters_and_good_ones_are_processed(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = deployment.write_config(
        tmp_path / "engine.toml", kafka_extra="max_record_bytes = 10000"
    )
    predictions, outcomes = fraud_stream(
        400, drift_at=400, error_before=0.05, error_after=0.05, seed=4
    )
    bad: list[bytes] = [
        b"\xff\xfe not utf-8",
        b"{not json",
        b"[1, 2, 3]",
        orjson.dumps({**predictions[0], "event_id": ""}),
        orjson.dumps({**predictions[1], "score": 7.5}),
        orjson.dumps({**predictions[2], "model_id": "bad id!"}),
        orjson.dumps(outcomes[3]),  # an outcome on the predictions topic
        b"x" * 20_000,
    ]
    # Interleave: good, bad, good, ... with each good prediction in its outcome's partition.
    mixed: list[bytes] = []
    placement: list[int] = []
    for i, p in enumerate(predictions):
        mixed.append(orjson.dumps(p))
        placement.append(partition_of(i, PARTITIONS))
        if i < len(bad):
            mixed.append(bad[i])
            placement.append(i % PARTITIONS)
    keys = [f"k{i}".encode() for i in range(len(mixed))]
    with EngineProcess(config, "a", tmp_path / "engine.log") as engine:
        engine.wait_for_log("partitions.assigned")
        produce(
            deployment.bootstrap,
            deployment.topics["predictions"],
            mixed,
            PARTITIONS,
            keys=keys,
            placement=placement,
        )
        produce(deployment.bootstrap, deployment.topics["outcomes"], outcomes, PARTITIONS)
        wait_consumed(deployment)
        assert engine.terminate() == 0

    letters = read_all(deployment.bootstrap, deployment.topics["dead_letters"])
    assert len(letters) == len(bad)
    payloads = {base64.b64decode(str(d["payload"])) for d in letters}
    assert payloads == set(bad)
    for letter in letters:
        assert letter["source_topic"] == deployment.topics["predictions"]
        assert isinstance(letter["offset"], int) and isinstance(letter["partition"], int)
        assert str(letter["error"]).strip()
    reasons = " | ".join(str(d["error"]) for d in letters)
    assert "event_id" in reasons and "score" in reasons and "model_id" in reasons
    assert "max_record_bytes" in reasons
    labeled = read_all(deployment.bootstrap, deployment.topics["labeled_events"])
    assert len(labeled) == len(outcomes)


def test_a_one_megabyte_bad_record_is_a_truncated_dead_letter_and_the_engine_carries_on(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Its base64 dead letter used to be over the client's 1 MiB limit: the send
    raised, the engine exited, and every restart read the same record again."""
    config = deployment.write_config(tmp_path / "engine.toml")
    predictions, outcomes = fraud_stream(
        200, drift_at=200, error_before=0.05, error_after=0.05, seed=5
    )
    huge = b"{" + b"x" * 999_000  # not JSON; under max_record_bytes, so the engine decodes it
    mixed = [orjson.dumps(p) for p in predictions[:100]] + [huge]
    mixed += [orjson.dumps(p) for p in predictions[100:]]
    placement = [partition_of(i, PARTITIONS) for i in range(100)] + [0]
    placement += [partition_of(i, PARTITIONS) for i in range(100, len(predictions))]
    keys = [str(p["event_id"]).encode() for p in predictions[:100]] + [b"huge"]
    keys += [str(p["event_id"]).encode() for p in predictions[100:]]
    with EngineProcess(config, "a", tmp_path / "engine.log") as engine:
        engine.wait_for_log("partitions.assigned")
        produce(
            deployment.bootstrap,
            deployment.topics["predictions"],
            mixed,
            PARTITIONS,
            keys=keys,
            placement=placement,
        )
        produce(deployment.bootstrap, deployment.topics["outcomes"], outcomes, PARTITIONS)
        wait_consumed(deployment)
        assert engine.terminate() == 0

    letters = read_all(deployment.bootstrap, deployment.topics["dead_letters"])
    assert len(letters) == 1
    letter = letters[0]
    kept = base64.b64decode(str(letter["payload"]))
    assert letter["payload_truncated"] is True
    assert letter["payload_bytes"] == len(huge)
    assert letter["payload_sha256"] == hashlib.sha256(huge).hexdigest()
    assert kept == huge[: len(kept)] and 0 < len(kept) < len(huge)
    assert letter["offset"] == 100 // PARTITIONS and letter["partition"] == 0
    # The good records before and after it were all joined.
    labeled = read_all(deployment.bootstrap, deployment.topics["labeled_events"])
    assert len(labeled) == len(outcomes)
