"""The services' ACLs derived from the configuration, and ``stream-mlops acls``."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_mlops.cli import main
from stream_mlops.config import parse_settings
from stream_mlops.kafka.acls import AclRule, service_acls


def granted(rules: list[AclRule], principal: str, operation: str) -> set[tuple[str, str]]:
    return {
        (r.resource, r.name) for r in rules if r.principal == principal and r.operation == operation
    }


def test_rules_follow_the_configured_names() -> None:
    settings = parse_settings(
        {
            "kafka": {
                "group_id": "eng-g",
                "transactional_id_prefix": "eng-tx",
                "topics": {"predictions": "p", "state": "st", "drift_alerts": "alerts"},
            },
            "retrainer": {"group_id": "ret-g", "transactional_id_prefix": "ret-tx"},
        }
    )
    rules = service_acls(settings)
    engine_writes = granted(rules, "User:engine", "WRITE")
    assert ("TOPIC", "alerts") in engine_writes
    assert ("TOPIC", "st") in engine_writes
    assert ("TRANSACTIONAL_ID", "eng-tx") in engine_writes
    assert ("TOPIC", "model-updates") not in engine_writes
    assert ("TOPIC", "performance-estimates") in engine_writes
    assert ("TOPIC", "performance-estimates") in granted(rules, "User:operator", "READ")
    assert ("GROUP", "eng-g") in granted(rules, "User:engine", "READ")
    assert ("TOPIC", "p") in granted(rules, "User:engine", "READ")
    retrainer_writes = granted(rules, "User:retrainer", "WRITE")
    assert ("TOPIC", "model-updates") in retrainer_writes
    assert ("TOPIC", "alerts") not in retrainer_writes
    assert ("TRANSACTIONAL_ID", "ret-tx") in retrainer_writes
    prefixed = [r for r in rules if r.resource == "TRANSACTIONAL_ID"]
    assert {r.pattern for r in prefixed} == {"PREFIXED"}
    # The state topic's writers are the two services, nobody else.
    writers = {r.principal for r in rules if r.name == "st" and r.operation == "WRITE"}
    assert writers == {"User:engine", "User:retrainer"}


def test_the_command_prints_one_kafka_acls_line_per_rule(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[kafka]\ngroup_id = "fraud-engine"\n')
    code = main(
        [
            "acls",
            "--config",
            str(config),
            "--role",
            "engine",
            "--principal",
            "engine=User:svc-engine",
            "--bootstrap-server",
            "kafka:9093",
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(service_acls(parse_settings({}), {"engine": "User:engine"}))
    assert all("--allow-principal User:svc-engine" in line for line in lines)
    assert any(line.endswith("--operation Read --group fraud-engine") for line in lines)
    assert all(line.startswith("kafka-acls.sh --bootstrap-server kafka:9093") for line in lines)


@pytest.mark.parametrize("principal", ["engine", "nobody=User:x", "engine=svc"])
def test_a_bad_principal_is_refused_with_the_form_to_use(
    principal: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["acls", "--role", "engine", "--principal", principal]) == 2
    assert "use ROLE=TYPE:NAME" in capsys.readouterr().err


def test_the_notifiers_rules_follow_its_group_and_the_topics() -> None:
    settings = parse_settings(
        {
            "kafka": {"topics": {"drift_alerts": "alerts", "dead_letters": "dlq"}},
            "notify": {"group_id": "pager"},
        }
    )
    rules = service_acls(settings, {"notifier": "User:pager"})
    assert granted(rules, "User:pager", "READ") == {
        ("TOPIC", "alerts"),
        ("TOPIC", "model-updates"),
        ("GROUP", "pager"),
    }
    assert granted(rules, "User:pager", "WRITE") == {("TOPIC", "dlq")}
    # Never the state topic: only the engine and the retrainer write it.
    assert all(r.name != settings.kafka.topics.state for r in rules)


def test_the_command_derives_the_notifiers_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["acls", "--role", "notifier"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert any(line.endswith("--operation Read --group stream-mlops-notifier") for line in lines)
    assert all("--allow-principal User:notifier" in line for line in lines)
