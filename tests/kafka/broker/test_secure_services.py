"""Our commands on the secured broker: the closed loop over SASL_SSL, and refusals in one line.

The session's secured broker (``conftest.py``: SASL_SSL, SCRAM-SHA-512, deny by
default). Each service connects as its own user with nothing but its config's
``[kafka.security]``: the engine as ``engine``, the retrainer as ``retrainer``,
the fraud simulator as ``scorer``, ``tail`` and the test's reader as
``operator``, ``topics create`` as ``admin``. The ACLs are the ones
``stream-mlops acls`` prints for the test's config (``service_acls``), granted
through the transport as the admin: so the documented rules are what lets the
loop run.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_mlops.config import KafkaTopics, load_settings
from stream_mlops.kafka.acls import service_acls
from stream_mlops.kafka.backends import BACKENDS, open_transport
from stream_mlops.kafka.broker.admin import grant
from stream_mlops.kafka.broker.tls import generate
from stream_mlops.kafka.transport import CONNECT_TIMEOUT_S, TopicPartition
from stream_mlops.registry import ModelRegistry
from stream_mlops.service_process import read_log_events
from stream_mlops.simulate.fraud import bootstrap_model
from tests.kafka.broker.conftest import SecureBroker
from tests.kafka.broker.managed import CHECKOUT
from tests.kafka.engine_process import EngineProcess

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# One partition: one engine task sees the whole stream, so the drift is found
# within a few thousand transactions of the change.
EVENTS = 12_000
DRIFT_AT = 4_000
# How long the loop may take end to end on a loaded two-core machine.
LOOP_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class SecuredDeployment:
    """One test's topics, groups, registry and a config per user, on the secured broker."""

    broker: SecureBroker
    client: str
    directory: Path
    suffix: str

    @property
    def topics(self) -> KafkaTopics:
        defaults = KafkaTopics().model_dump()
        return KafkaTopics(**{k: f"{v}-{self.suffix}" for k, v in defaults.items()})

    @property
    def registry(self) -> Path:
        return self.directory / "registry"

    def config(self, user: str) -> Path:
        """``<user>.toml``: the deployment's names, and [kafka.security] as ``user``."""
        path = self.directory / f"{user}.toml"
        if path.exists():
            return path
        topic_lines = "\n".join(f'{k} = "{v}"' for k, v in self.topics.model_dump().items())
        s = self.broker.settings
        path.write_text(
            f"""[kafka]
bootstrap_servers = "{self.broker.servers}"
client = "{self.client}"
group_id = "engine-{self.suffix}"
transactional_id_prefix = "engine-{self.suffix}"
partitions = 1
checkpoint_interval_ms = 100

[kafka.topics]
{topic_lines}

[kafka.security]
protocol = "SASL_SSL"
sasl_mechanism = "SCRAM-SHA-512"
username = "{user}"
password_file = "{(s.secrets_dir / f"{user}.password").resolve()}"
ca_file = "{s.certificates.ca_file.resolve()}"

[models.fraud]
task = "classification"

[retrainer]
group_id = "retrainer-{self.suffix}"
transactional_id_prefix = "retrainer-{self.suffix}"
registry = "{self.registry}"
session_timeout_ms = 6000

[retrainer.promotion]
min_events = 200
check_every = 100
max_events = 1000
"""
        )
        return path


def run(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_mlops", *args],
        cwd=CHECKOUT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def register_champion(registry_dir: Path) -> None:
    """v1: the fraud simulator's pre-drift model, as the demo bootstraps it."""
    registry = ModelRegistry(registry_dir)
    version = registry.register("fraud", pickle.dumps(bootstrap_model(7)), created_ts=time.time())
    registry.promote("fraud", version.version, ts=time.time(), reason="test bootstrap")


@pytest.fixture(params=BACKENDS)
def deployment(
    secure_broker: SecureBroker, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[SecuredDeployment]:
    dep = SecuredDeployment(secure_broker, request.param, tmp_path, uuid.uuid4().hex[:8])
    yield dep
    admin_settings = load_settings(dep.config("admin"))
    admin = open_transport(admin_settings.kafka, client_id="test-cleanup").admin()
    try:
        admin.delete_topics(list(dep.topics.model_dump().values()), missing_ok=True)
    finally:
        admin.close()


def committed_events(
    dep: SecuredDeployment, topics: list[str], until: Any, timeout_s: float
) -> dict[str, list[dict[str, Any]]]:
    """What a ``read_committed`` reader logged in as ``operator`` sees, until ``until(seen)``."""
    settings = load_settings(dep.config("operator"))
    reader = open_transport(settings.kafka, client_id="test-operator").reader(read_committed=True)
    seen: dict[str, list[dict[str, Any]]] = {topic: [] for topic in topics}
    try:
        starts: dict[TopicPartition, Any] = {
            tp: "earliest" for topic in topics for tp in reader.partitions(topic)
        }
        reader.assign(starts)
        deadline = time.monotonic() + timeout_s
        while not until(seen) and time.monotonic() < deadline:
            for record in reader.poll(0.5):
                assert record.value is not None
                seen[record.topic].append(orjson.loads(record.value))
    finally:
        reader.close()
    return seen


def test_the_loop_runs_over_sasl_ssl_each_service_as_its_own_user(
    deployment: SecuredDeployment,
) -> None:
    dep = deployment
    broker = dep.broker
    created = run("topics", "create", "--config", str(dep.config("admin")))
    assert created.returncode == 0, created.stderr
    assert f"created {dep.topics.predictions}: 1 partitions, 1 replica" in created.stdout
    admin_security = broker.security("admin")
    rules = service_acls(load_settings(dep.config("admin")))
    assert grant(rules, broker.servers, admin_security) == len(rules)
    register_champion(dep.registry)

    engine = EngineProcess(dep.config("engine"), "e1", dep.directory / "engine.log")
    retrainer = EngineProcess(
        dep.config("retrainer"), "r1", dep.directory / "retrainer.log", command="retrainer"
    )
    with engine, retrainer:
        engine.wait_for_log("partitions.assigned", timeout=120)
        retrainer.wait_for_log("partitions.assigned", timeout=120)
        simulated = run(
            "simulate", "fraud", "--config", str(dep.config("scorer")),
            "--events", str(EVENTS), "--drift", "abrupt", "--drift-at", str(DRIFT_AT),
            "--rate", "0", "--label-delay", "1", "--seed", "7",
            timeout=LOOP_TIMEOUT_S,
        )  # fmt: skip
        assert simulated.returncode == 0, simulated.stdout + simulated.stderr
        t = dep.topics
        outputs = [t.drift_alerts, t.retrain_requests, t.model_updates]
        seen = committed_events(
            dep, outputs, lambda s: all(s[topic] for topic in outputs), LOOP_TIMEOUT_S
        )
        # tail, as the operator, sees the same committed alert and request.
        operator = str(dep.config("operator"))
        tailed = {}
        for topic in (t.drift_alerts, t.retrain_requests):
            tail_args = ["--json", "--from-beginning", "--max", "1", "--config", operator]
            tailed[topic] = run("tail", topic, *tail_args)
        assert engine.terminate() == 0
        assert retrainer.terminate() == 0
    # A restarted engine restores its state: it reads the state topic back as `engine`.
    with EngineProcess(dep.config("engine"), "e1", dep.directory / "engine-2.log") as again:
        restored = again.wait_for_log("state.restored", timeout=120)
        assert restored["offsets"] == {t.predictions: EVENTS, t.outcomes: EVENTS}
        assert again.terminate() == 0

    alerts, requests, updates = (seen[topic] for topic in outputs)
    assert alerts, "no drift alert over SASL_SSL"
    error_drift = [a for a in alerts if a["signal"] == "error" and a["severity"] == "drift"]
    assert error_drift, alerts
    assert all(int(str(a["trigger_event_id"]).rsplit("-", 1)[1]) >= DRIFT_AT for a in error_drift)
    assert requests and requests[0]["model_id"] == "fraud"
    assert updates and updates[0]["model_id"] == "fraud", "the retrainer promoted nothing"
    for topic, done in tailed.items():
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == seen[topic][0]

    # The services said how they connected, and never with the secret.
    config = next(e for e in engine.log_events() if e["event"] == "engine.config")
    assert config["security"] == {
        "protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "username": "engine",
        "password_file": str((broker.settings.secrets_dir / "engine.password").resolve()),
        "ca_file": str(broker.settings.certificates.ca_file.resolve()),
        "check_hostname": True,
        "password": "**********",
    }
    outputs_text = [
        (dep.directory / "engine.log").read_text(),
        (dep.directory / "retrainer.log").read_text(),
        (dep.directory / "engine-2.log").read_text(),
        simulated.stdout + simulated.stderr,
        created.stdout + created.stderr,
        *(done.stdout + done.stderr for done in tailed.values()),
    ]
    for user in ("engine", "retrainer", "scorer", "operator", "admin"):
        password = broker.password(user)
        assert not any(password in text for text in outputs_text), user


def other_ca(directory: Path) -> Path:
    """A CA that did not sign the broker's certificate."""
    ca, _ = generate("elsewhere", ("localhost",), ("127.0.0.1",))
    path = directory / "other-ca.pem"
    path.write_bytes(ca)
    return path


WRONG_PASSWORD = "wrong-password-5eed1e"
# What each refusal's line must say, whichever library saw it.
REFUSAL_TEXT = {
    "wrong password": "a wrong password or an unknown user",
    "unknown user": "a wrong password or an unknown user",
    "untrusted certificate": "the broker's certificate is not trusted by ca_file",
}
# From a service's engine.config line to its error: kafka-python gives up after
# the connect timeout (10 s), librdkafka at its first refusal (about a second).
REFUSED_WITHIN_S = CONNECT_TIMEOUT_S + 5.0
# A whole command, interpreter start-up included, four at once on a shared
# two-core machine (imports alone took 4 s of it each, under load).
COMMAND_WITHIN_S = 60.0


def seconds_between(first: dict[str, Any], then: dict[str, Any]) -> float:
    stamps = [datetime.fromisoformat(str(e["timestamp"])) for e in (first, then)]
    return (stamps[1] - stamps[0]).total_seconds()


def refusal_env(case: str, directory: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    if case == "wrong password":
        env["KAFKA_SASL_PASSWORD"] = WRONG_PASSWORD
    elif case == "unknown user":
        env["KAFKA_SASL_USERNAME"] = "mallory"
    else:
        env["KAFKA_SSL_CAFILE"] = str(other_ca(directory))
    return env


@pytest.mark.parametrize("case", list(REFUSAL_TEXT))
@pytest.mark.parametrize("client", BACKENDS)
def test_a_refused_connection_ends_each_command_with_one_clear_line_and_no_secret(
    secure_broker: SecureBroker, client: str, case: str, tmp_path: Path
) -> None:
    dep = SecuredDeployment(secure_broker, client, tmp_path, uuid.uuid4().hex[:8])
    commands = {
        "run": ["run", "--config", str(dep.config("engine")), "--instance-id", "refused"],
        "retrainer": ["retrainer", "--config", str(dep.config("retrainer"))],
        "tail": ["tail", "--config", str(dep.config("operator"))],
        "topics create": ["topics", "create", "--config", str(dep.config("admin"))],
    }
    env = refusal_env(case, tmp_path)
    started: dict[str, tuple[float, subprocess.Popen[bytes]]] = {}
    results: dict[str, tuple[float, int, str, str]] = {}
    outputs = {name: (tmp_path / f"{name}.out", tmp_path / f"{name}.err") for name in commands}
    try:
        for name, args in commands.items():
            out_path, err_path = outputs[name]
            with out_path.open("wb") as out_file, err_path.open("wb") as err_file:
                process = subprocess.Popen(
                    [sys.executable, "-m", "stream_mlops", *args],
                    cwd=CHECKOUT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out_file,
                    stderr=err_file,
                )
            started[name] = (time.monotonic(), process)
        ended: dict[str, float] = {}
        deadline = time.monotonic() + 120
        while len(ended) < len(started) and time.monotonic() < deadline:
            for name, (_began, process) in started.items():
                if name not in ended and process.poll() is not None:
                    ended[name] = time.monotonic()
            time.sleep(0.1)
        for name, (began, process) in started.items():
            out, err = (path.read_text() for path in outputs[name])
            elapsed = ended.get(name, deadline) - began
            results[name] = (elapsed, process.poll() or 0, out, err)
    finally:
        for _began, process in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    secrets = [WRONG_PASSWORD, *(secure_broker.password(u) for u in ("engine", "retrainer"))]
    secrets += [secure_broker.password(u) for u in ("operator", "admin")]
    for name, (elapsed, code, out, err) in results.items():
        where = f"{name} ({client}, {case}): {out}{err}"
        assert code == 1, where
        assert elapsed < COMMAND_WITHIN_S, where
        if name in ("run", "retrainer"):
            # Services log JSON lines: exactly one error, the last, says why.
            service = name.replace("run", "engine")
            events = read_log_events(out.encode())
            errors = [e for e in events if e["level"] == "error"]
            assert [e["event"] for e in errors] == [f"{service}.failed"], where
            assert out.splitlines()[-1] == json.dumps(errors[0]), where
            began = next(e for e in events if e["event"] == f"{service}.config")
            assert seconds_between(began, errors[0]) < REFUSED_WITHIN_S, where
            line = str(errors[0]["error"])
        else:
            assert out == "", where
            [line] = err.splitlines()
            assert line.startswith(f"stream-mlops {name}: "), where
        assert REFUSAL_TEXT[case] in line, where
        if case == "unknown user":
            assert "user 'mallory'" in line, where
        for secret in secrets:
            assert secret not in out + err, where
