"""``stream-mlops tail``: the readable lines (pure) and following a real topic."""

from __future__ import annotations

import base64
import io
import threading
import time
import uuid
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from stream_mlops.config import KafkaSettings
from stream_mlops.kafka.tail import command, format_event, raw_line
from tests.kafka.cluster import (
    admin_client,
    bootstrap_servers,
    temporary_topics,
    write_transactions,
)

ALERT: dict[str, Any] = {
    "type": "drift_alert",
    "alert_id": "fraud-v1-error-adwin-p0-17",
    "model_id": "fraud",
    "model_version": "v1",
    "signal": "error",
    "detector": "adwin",
    "severity": "drift",
    "ts": "2026-11-27T13:05:00.250000Z",
    "trigger_event_id": "txn-3-0004212",
    "observations": 4212,
    "stats": {
        "mean_before": 0.0171,
        "mean_after": 0.0523,
        "window_before": 3000,
        "window_after": 1212,
        "shifts": [
            {"signal": "feature:amount", "effect_size": -1.234, "reference_mean": 3.1},
            {"signal": "feature:merchant", "effect_size": 0.8},
            {"signal": "score", "effect_size": 0.5},
            {"signal": "feature:hour", "effect_size": 0.1},
        ],
    },
}


def line(event: Any, **where: Any) -> str:
    return format_event(orjson.dumps(event), **where)


def test_alert_line_has_time_model_signal_detector_severity_observations_and_moves() -> None:
    text = line(ALERT)
    assert text.startswith("2026-11-27 13:05:00.250  DRIFT ")
    for part in ("fraud@v1", "error", "adwin", "obs=4212", "mean 0.0171 -> 0.0523"):
        assert part in text
    assert "trigger=txn-3-0004212" in text
    # the three largest moves, as ranked by the engine, feature prefix dropped
    assert text.endswith("moved: amount -1.234, merchant +0.8, score +0.5")
    assert "\n" not in text


def test_warning_alert_and_epoch_time() -> None:
    text = line({**ALERT, "severity": "warning", "ts": 1_790_000_000.5, "stats": {}})
    assert text.startswith("2026-09-21 14:13:20.500  WARNING ")
    assert "mean" not in text and "moved" not in text


def test_retrain_request_line() -> None:
    text = line(
        {
            "type": "retrain_request",
            "request_id": "rr-1",
            "model_id": "fraud",
            "model_version": "v1",
            "reason_alert_ids": ["a1", "a2"],
            "window_start": {"ts": "2026-11-27T13:00:00Z", "event_id": "txn-3-0004000"},
            "ts": "2026-11-27T13:05:01Z",
        }
    )
    assert "RETRAIN" in text and "fraud@v1" in text and "after 2 alerts" in text
    assert "window from txn-3-0004000 (2026-11-27 13:00:00.000)" in text
    assert text.endswith("request=rr-1")


def test_model_update_line_flattens_metrics() -> None:
    text = line(
        {
            "type": "model_update",
            "model_id": "fraud",
            "model_version": "v2",
            "parent_version": "v1",
            "ts": "2026-11-27T13:06:00Z",
            "metrics": {"champion": {"error": 0.052}, "challenger": {"error": 0.031}, "n": 5000},
            "training_window": [],
        }
    )
    assert "MODEL" in text and "fraud@v2" in text and "(parent v1)" in text
    assert "champion.error=0.052 challenger.error=0.031 n=5000" in text


def test_prediction_outcome_and_labeled_lines() -> None:
    features = {f"f{i}": i * 1.5 for i in range(9)}
    pred = line(
        {
            "type": "prediction",
            "event_id": "txn-1",
            "model_id": "fraud",
            "model_version": "v1",
            "ts": "2026-11-27T00:00:00.010Z",
            "features": features,
            "prediction": 0,
            "score": 0.0712345,
        }
    )
    assert "PREDICT" in pred and "txn-1" in pred and "prediction=0 " in pred
    assert "score=0.07123" in pred
    assert "f5=7.5 (+3)" in pred and "f6=" not in pred
    outcome = line({"event_id": "txn-1", "ts": 0, "actual": 1}, topic="outcomes")
    assert "OUTCOME" in outcome and outcome.endswith("txn-1  actual=1")
    wrong = line(
        {"type": "labeled_event", "event_id": "e", "model_id": "m", "model_version": "v1",
         "ts": 0, "outcome_ts": 1, "features": {}, "prediction": 0, "actual": 1}
    )  # fmt: skip
    assert "LABELED" in wrong and wrong.endswith("WRONG")
    regression = line(
        {"type": "labeled_event", "event_id": "e", "model_id": "demand", "model_version": "v1",
         "ts": 0, "outcome_ts": 1, "features": {}, "prediction": 42.5, "actual": 40}
    )  # fmt: skip
    assert regression.endswith("error=2.5")


def test_dead_letter_line_shows_source_reason_and_payload() -> None:
    text = line(
        {
            "type": "dead_letter",
            "source_topic": "predictions",
            "partition": 2,
            "offset": 17,
            "error": "ts: Input should be a valid datetime",
            "payload": base64.b64encode(b'{"event_id": "x", "ts": "yesterday"}').decode(),
            "ts": "2026-11-27T13:00:00Z",
        }
    )
    assert "DEAD" in text and "predictions[2]@17" in text
    assert "ts: Input should be a valid datetime" in text
    assert 'payload={"event_id": "x", "ts": "yesterday"}' in text


def test_performance_estimate_line_shows_window_estimate_interval_and_band() -> None:
    text = line(
        {
            "type": "performance_estimate",
            "estimate_id": "0870c1508c9d6c9d94c09f3129c0b43a",
            "model_id": "fraud",
            "model_version": "v1",
            "ts": "2027-01-15T10:29:59Z",
            "window_start": {"ts": "2027-01-15T10:13:20Z", "event_id": "e8000"},
            "last_event_id": "e8999",
            "partition": 0,
            "estimate": {
                "predictions": 1000,
                "estimated_error": 0.2535,
                "low": 0.2255,
                "high": 0.2815,
                "reference_error": 0.1321,
                "reference_low": 0.1214,
                "reference_high": 0.1429,
                "outside_band": True,
                "calibration_events": 2000,
            },
        }
    )
    assert "ESTIMATE" in text and "fraud@v1" in text and "e8000..e8999" in text
    assert "n=1000" in text and "error~0.2535 [0.2255, 0.2815]" in text
    assert "reference 0.1321 [0.1214, 0.1429]" in text and "OUTSIDE the band" in text


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        (b"\xff\xfe garbage", "UNREADABLE"),
        (b'{"type": "prediction", "event_id": "x"', "UNREADABLE"),
        (b"[1, 2, 3]", "UNKNOWN"),
        (b'{"type": "heartbeat", "ts": 0}', "UNKNOWN"),
        (b'{"no": "type"}', "UNKNOWN"),
        (None, "TOMBSTONE"),
    ],
)
def test_anything_else_is_printed_safely_on_one_line(value: bytes | None, tag: str) -> None:
    text = format_event(value, topic="drift-alerts", partition=1, offset=5)
    assert f" {tag} " in text or text.endswith(tag) or f" {tag}" in text
    assert "drift-alerts[1]@5" in text
    assert "\n" not in text and "\x1b" not in text


def test_hostile_strings_cannot_control_the_terminal() -> None:
    evil = {**ALERT, "model_id": "fraud\x1b[2J\n", "signal": "error\r" + "x" * 500}
    text = line(evil)
    assert "\x1b" not in text and "\n" not in text and "\r" not in text
    assert "\\x1b[2J" in text
    assert len(text) < 400


def test_field_of_an_unexpected_shape_does_not_break_the_line() -> None:
    text = line({**ALERT, "stats": {"shifts": "many"}, "observations": None})
    assert "DRIFT" in text and "obs=null" in text
    text = line({**ALERT, "stats": ["not", "a", "dict"]})
    assert "DRIFT" in text


def test_raw_line_is_one_json_value_per_record() -> None:
    event = {"type": "outcome", "event_id": "e", "ts": 0, "actual": 1}
    pretty = orjson.dumps(event, option=orjson.OPT_INDENT_2)
    assert b"\n" in pretty
    assert orjson.loads(raw_line(pretty)) == event and "\n" not in raw_line(pretty)
    garbage = raw_line(b"\x1b[31m\xffred\n")
    assert "\n" not in garbage and "\x1b" not in garbage
    assert isinstance(orjson.loads(garbage), str)


def test_a_record_without_event_time_shows_the_record_timestamp() -> None:
    assert format_event(b"junk", record_ts_ms=1_790_000_000_250).startswith(
        "2026-09-21 14:13:20.250  UNREADABLE"
    )
    assert format_event(b'{"no": "ts"}', record_ts_ms=0).startswith("1970-01-01 00:00:00.000")
    # An event's own time wins.
    assert line(ALERT).startswith("2026-11-27 13:05:00.250")
    assert format_event(orjson.dumps(ALERT), record_ts_ms=0).startswith("2026-11-27")


@pytest.mark.kafka
@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_tail_prints_only_committed_events(client: str) -> None:
    servers = bootstrap_servers()
    kafka = KafkaSettings(bootstrap_servers=servers, client=client)
    with temporary_topics(servers, "tail-alerts", partitions=2) as (topic,):
        write_transactions(
            servers,
            topic,
            [
                *(
                    (orjson.dumps({**ALERT, "model_version": version}), commit)
                    for version, commit in (("v1", True), ("v2", False), ("v3", True))
                ),
                (b"not json at all", True),
            ],
            key=b"fraud",
        )

        out = io.StringIO()
        assert command(topic, kafka=kafka, from_beginning=True, max_events=3, out=out) == 0
        lines = out.getvalue().splitlines()
        raw = io.StringIO()
        assert command(topic, kafka=kafka, raw_json=True, from_beginning=True, max_events=3,
                       out=raw) == 0  # fmt: skip

    assert len(lines) == 3
    assert "fraud@v1" in lines[0] and "fraud@v3" in lines[1]
    assert not any("fraud@v2" in text for text in lines)
    assert "UNREADABLE" in lines[2]
    raws = raw.getvalue().splitlines()
    assert [orjson.loads(r).get("model_version") for r in raws[:2]] == ["v1", "v3"]
    assert orjson.loads(raws[2]) == "not json at all"


@pytest.mark.kafka
@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_tail_of_a_missing_topic_fails_with_a_message(
    client: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("stream_mlops.kafka.tail.TOPIC_WAIT_S", 1.0)
    missing = f"no-such-topic-{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=bootstrap_servers(), client=client)
    assert command(missing, kafka=kafka, max_events=1) == 1
    err = capsys.readouterr().err
    assert f"topic {missing!r} does not exist" in err
    assert len(err.splitlines()) == 1
    with admin_client(kafka.bootstrap_servers) as admin:
        assert missing not in admin.list_topics()


@pytest.mark.kafka
@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_tail_from_now_shows_only_what_comes_after_it_started(client: str) -> None:
    servers = bootstrap_servers()
    kafka = KafkaSettings(bootstrap_servers=servers, client=client)
    with temporary_topics(servers, "tail-latest", partitions=2) as (topic,):
        producer = KafkaProducer(bootstrap_servers=servers)
        try:
            producer.send(
                topic, key=b"fraud", value=orjson.dumps({**ALERT, "model_version": "old"})
            )
            producer.flush()
            out = io.StringIO()
            tail = threading.Thread(
                target=command, args=(topic,), kwargs={"kafka": kafka, "max_events": 1, "out": out}
            )
            tail.start()
            # Published until tail prints it: whenever tail's assignment happened,
            # one of these comes after it.
            deadline = time.monotonic() + 60
            while not out.getvalue() and time.monotonic() < deadline:
                producer.send(topic, key=b"fraud", value=orjson.dumps(ALERT))
                producer.flush()
                time.sleep(0.5)
            tail.join(timeout=30)
        finally:
            producer.close()
    assert not tail.is_alive()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "fraud@v1" in lines[0]
