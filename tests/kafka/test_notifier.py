"""``stream-mlops notify`` on a real broker, both backends, with a webhook server on loopback.

Alerts are published by a transactional producer (one aborted, which no
webhook may ever see); the webhook server (``http.server`` in a thread)
answers 500 at first, so the notifier must retry, and records every request.
The crash test kills the notifier with SIGKILL while the server holds a
delivered request, before the notifier could commit it: the restarted
notifier delivers that alert again, and nothing is lost.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient

from stream_mlops.config import Settings, parse_settings
from stream_mlops.kafka.backends import BACKENDS, open_transport
from stream_mlops.kafka.transport import TopicPartition
from stream_mlops.ops.notify_service import Notifier, resolve_webhooks
from stream_mlops.service_process import ServiceProcess
from tests.kafka.cluster import temporary_topics, write_transactions
from tests.ops.notices import alert, update
from tests.ops.webhook_server import Received, WebhookServer

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-token"


@pytest.fixture(params=BACKENDS)
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def topics(kafka_bootstrap: str) -> Iterator[dict[str, str]]:
    with temporary_topics(
        kafka_bootstrap,
        "test-notify-alerts",
        "test-notify-updates",
        "test-notify-dead",
        partitions=1,
    ) as (alerts, updates, dead):
        yield {"drift_alerts": alerts, "model_updates": updates, "dead_letters": dead}


def config(
    servers: str, client: str, topics: dict[str, str], **notify: object
) -> dict[str, object]:
    return {
        "kafka": {"bootstrap_servers": servers, "client": client, "topics": topics},
        "notify": {
            "group_id": f"test-notifier-{uuid.uuid4().hex[:10]}",
            "backoff_initial_seconds": 0.1,
            "backoff_max_seconds": 0.5,
            **notify,
        },
    }


def write_toml(path: Path, data: dict[str, object]) -> Path:
    """Just enough TOML for these configs: tables of scalars, arrays of tables."""
    lines: list[str] = []

    def scalar(value: object) -> str:
        return orjson.dumps(value).decode()

    def table(name: str, body: dict[str, object]) -> None:
        lines.append(f"[{name}]")
        nested = []
        for key, value in body.items():
            tables = isinstance(value, list) and bool(value) and isinstance(value[0], dict)
            if isinstance(value, dict) or tables:
                nested.append((key, value))
            else:
                lines.append(f"{key} = {scalar(value)}")
        for key, value in nested:
            if isinstance(value, dict):
                table(f"{name}.{key}", value)
            else:
                for item in value:
                    lines.append(f"[[{name}.{key}]]")
                    lines.extend(f"{k} = {scalar(v)}" for k, v in item.items())

    for name, body in data.items():
        assert isinstance(body, dict)
        table(name, body)
    path.write_text("\n".join(lines) + "\n")
    return path


def committed_offset(servers: str, group: str, topic: str) -> int | None:
    admin = KafkaAdminClient(bootstrap_servers=servers, client_id="test-notifier-offsets")
    try:
        offsets = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    found = [meta.offset for tp, meta in offsets.items() if tp.topic == topic]
    return int(found[0]) if found else None


def delivered(received: list[Received], path: str | None = None) -> Counter[str]:
    return Counter(r.key for r in received if r.status == 200 and (path is None or r.path == path))


def test_the_webhooks_receive_exactly_the_committed_alerts_and_retries_outlast_500s(
    kafka_bootstrap: str, client: str, topics: dict[str, str], tmp_path: Path
) -> None:
    alerts, updates = topics["drift_alerts"], topics["model_updates"]
    write_transactions(
        kafka_bootstrap,
        alerts,
        [
            (alert("a1"), True),
            (alert("a2", severity="warning"), True),
            (alert("aborted"), False),
            (alert("a4", model_id="demand"), True),
        ],
        key=b"fraud",
    )
    write_transactions(kafka_bootstrap, updates, [(update(), True)], key=b"fraud")
    failures_left = [4]
    lock = threading.Lock()

    def respond(_request: Received) -> tuple[int, dict[str, str], bytes]:
        with lock:
            if failures_left[0] > 0:
                failures_left[0] -= 1
                return 500, {}, b"upstream down"
        return 200, {}, b"ok"

    slack_path, json_path = f"/slack/{SECRET}", f"/json/{SECRET}"
    data = config(
        kafka_bootstrap,
        client,
        topics,
        max_attempts=30,
        webhooks=[
            {"url_env": "TEST_SLACK_WEBHOOK", "name": "oncall"},
            {
                "url_env": "TEST_JSON_WEBHOOK",
                "format": "json",
                "models": ["fraud"],
                "min_severity": "drift",
            },
        ],
    )
    with WebhookServer(respond) as server:
        env = {
            "TEST_SLACK_WEBHOOK": server.url(slack_path),
            "TEST_JSON_WEBHOOK": server.url(json_path),
        }
        log = tmp_path / "notify.log"
        with ServiceProcess(
            "notify",
            ["notify", "--config", str(write_toml(tmp_path / "n.toml", data)), "--client", client],
            log,
            cwd=REPO,
            env=env,
        ) as notifier:
            expected_slack = {"a1", "a2", "a4", "model_update:fraud:v2"}
            server.wait_for(
                lambda got: (
                    set(delivered(got, slack_path)) == expected_slack
                    and set(delivered(got, json_path)) == {"a1", "model_update:fraud:v2"}
                ),
                timeout_s=90,
            )
            # One more, while it runs.
            write_transactions(kafka_bootstrap, alerts, [(alert("a5"), True)], key=b"fraud")
            server.wait_for(lambda got: "a5" in delivered(got, json_path), timeout_s=60)
            time.sleep(1.0)  # room for anything that should not come
            assert notifier.terminate() == 0
        received = server.snapshot()
    slack, json = delivered(received, slack_path), delivered(received, json_path)
    assert slack == Counter(expected_slack | {"a5"})  # each once
    # The JSON webhook's filter: fraud only, no warnings (a2), promotions too.
    assert json == Counter({"a1": 1, "a5": 1, "model_update:fraud:v2": 1})
    assert all(r.key != "aborted" for r in received)
    assert [r.status for r in received].count(500) == 4
    # Slack got the Slack body, the JSON webhook the event itself.
    first_slack = next(r for r in received if r.path == slack_path and r.status == 200)
    assert set(orjson.loads(first_slack.body)) == {"text", "blocks"}
    first_json = next(r for r in received if r.path == json_path and r.key == "a1")
    assert first_json.body == alert("a1")
    # Offsets committed after delivery: past the last record of each topic
    # (each record was a transaction of its own: a commit marker follows it).
    group = str(data["notify"]["group_id"])  # type: ignore[index]
    assert committed_offset(kafka_bootstrap, group, updates) == 1
    assert committed_offset(kafka_bootstrap, group, alerts) == 9  # a5 is at offset 8
    # The URLs' tokens never reached the log.
    text = log.read_text()
    assert "notification.retry" in text and "oncall" in text
    assert SECRET not in text


def run_in_thread(
    settings: Settings, env: dict[str, str]
) -> tuple[Notifier, threading.Event, threading.Thread]:
    transport = open_transport(settings.kafka, client_id="test-notifier")
    notifier = Notifier(settings, resolve_webhooks(settings.notify, env), transport)
    stop = threading.Event()
    thread = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
    thread.start()
    return notifier, stop, thread


def test_repeated_failures_end_in_a_dead_letter_and_the_offset_moves_on(
    kafka_bootstrap: str, client: str, topics: dict[str, str]
) -> None:
    alerts = topics["drift_alerts"]
    write_transactions(kafka_bootstrap, alerts, [(alert("doomed"), True)], key=b"fraud")
    data = config(kafka_bootstrap, client, topics, max_attempts=3, webhooks=[{"url_env": "HOOK"}])
    settings = parse_settings(data)
    with WebhookServer(lambda _r: (503, {}, b"maintenance")) as server:
        notifier, stop, thread = run_in_thread(settings, {"HOOK": server.url()})
        transport = open_transport(settings.kafka, client_id="test-notifier-reader")
        reader = transport.reader()
        try:
            reader.assign({TopicPartition(topics["dead_letters"], 0): "earliest"})
            letters = []
            deadline = time.monotonic() + 60
            while not letters and time.monotonic() < deadline:
                letters = reader.poll(0.5)
        finally:
            reader.close()
            stop.set()
            thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(letters) == 1
    letter = orjson.loads(letters[0].value or b"")
    assert letter["type"] == "dead_letter"
    assert (letter["source_topic"], letter["partition"], letter["offset"]) == (alerts, 0, 0)
    assert letter["error"] == (
        f"webhook webhooks[0] http://127.0.0.1:{server.port}/…: gave up after 3 attempts; "
        "last: HTTP 503 Service Unavailable: maintenance"
    )
    assert base64.b64decode(letter["payload"]) == alert("doomed")
    assert letters[0].key == b"fraud"
    assert [r.key for r in server.received] == ["doomed"] * 3
    assert notifier.stats.dead_letters == 1
    assert committed_offset(kafka_bootstrap, settings.notify.group_id, alerts) == 1


def test_a_notifier_killed_after_delivery_before_commit_delivers_again_and_loses_nothing(
    kafka_bootstrap: str, client: str, topics: dict[str, str], tmp_path: Path
) -> None:
    alerts = topics["drift_alerts"]
    keys = ["k0", "crash", "k2"]
    write_transactions(kafka_bootstrap, alerts, [(alert(k), True) for k in keys], key=b"fraud")
    data = config(
        kafka_bootstrap,
        client,
        topics,
        session_timeout_ms=6000,
        webhooks=[{"url_env": "HOOK"}],
    )
    path = write_toml(tmp_path / "n.toml", data)
    first: list[ServiceProcess] = []

    def respond(request: Received) -> tuple[int, dict[str, str], bytes]:
        if request.key == "crash" and first and first[0].running():
            # The request has arrived: delivered, as far as the receiver knows.
            # The notifier dies before it can read the answer, let alone commit.
            first[0].kill()
        return 200, {}, b"ok"

    with WebhookServer(respond) as server:
        args = ["notify", "--config", str(path), "--client", client]
        env = {"HOOK": server.url()}
        with ServiceProcess("notify-1", args, tmp_path / "n1.log", cwd=REPO, env=env) as one:
            first.append(one)
            server.wait_for(lambda got: "crash" in delivered(got), timeout_s=60)
            assert one.proc is not None and one.proc.wait(timeout=10) == -9
        with ServiceProcess("notify-2", args, tmp_path / "n2.log", cwd=REPO, env=env) as two:
            server.wait_for(
                lambda got: delivered(got)["crash"] == 2 and "k2" in delivered(got),
                timeout_s=90,
            )
            assert two.terminate() == 0
        received = delivered(server.snapshot())
    assert received["crash"] == 2  # delivered, not committed: delivered again
    assert set(received) == set(keys)  # nothing lost
    assert received["k2"] == 1
    group = str(data["notify"]["group_id"])  # type: ignore[index]
    assert committed_offset(kafka_bootstrap, group, alerts) == 5  # k2 is at offset 4
