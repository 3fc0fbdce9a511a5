"""The command line: parsing, and the broker commands that need no running broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_mlops.cli import build_parser, main
from stream_mlops.config import KafkaSettings
from stream_mlops.kafka.broker import EXIT_NOT_RUNNING
from stream_mlops.kafka.task_runtime import RuntimeConfig


@pytest.fixture
def no_external_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)


def test_broker_and_topics_arguments_are_parsed() -> None:
    args = build_parser().parse_args(["broker", "start", "--data-dir", "/tmp/x"])
    assert (args.command, args.action, args.data_dir) == ("broker", "start", Path("/tmp/x"))
    args = build_parser().parse_args(["topics", "create", "--partitions", "6"])
    assert (args.action, args.partitions, args.config) == ("create", 6, None)


def test_unknown_broker_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["broker", "restart"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'restart'" in capsys.readouterr().err


@pytest.mark.usefixtures("no_external_cluster")
def test_status_of_a_broker_never_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAM_MLOPS_BROKER_PORT", "29999")
    monkeypatch.setenv("STREAM_MLOPS_CONTROLLER_PORT", "29998")
    assert main(["broker", "status", "--data-dir", str(tmp_path)]) == EXIT_NOT_RUNNING
    assert "not running (would listen at 127.0.0.1:29999)" in capsys.readouterr().out
    assert main(["broker", "stop", "--data-dir", str(tmp_path)]) == 0


def test_start_with_an_external_cluster_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.example:9092")
    assert main(["broker", "start", "--data-dir", str(tmp_path / "k")]) == 0
    assert "using the Kafka cluster at kafka.example:9092" in capsys.readouterr().out
    assert not (tmp_path / "k").exists()


@pytest.mark.usefixtures("no_external_cluster")
def test_start_without_java_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert main(["broker", "start", "--data-dir", str(tmp_path / "k")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "java not found on PATH: install a Java 17+ runtime" in err


@pytest.mark.usefixtures("no_external_cluster")
def test_first_start_without_maven_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only presence on PATH is checked before Maven is needed, so a stand-in will do.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "java").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("STREAM_MLOPS_BROKER_PORT", "29997")
    monkeypatch.setenv("STREAM_MLOPS_CONTROLLER_PORT", "29996")
    monkeypatch.delenv("STREAM_MLOPS_BROKER_LIB", raising=False)
    assert main(["broker", "start", "--data-dir", str(tmp_path / "k")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "mvn not found on PATH: install Apache Maven" in err
    assert not (tmp_path / "k" / "broker.pid").exists()


def test_topics_create_names_the_bad_field_of_its_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[kafka]\npartitions = 0\n")
    assert main(["topics", "create", "--config", str(config)]) == 2
    assert "kafka.partitions" in capsys.readouterr().err


def test_topics_create_rejects_zero_partitions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", "create", "--partitions", "0"]) == 2
    assert "partitions must be at least 1" in capsys.readouterr().err


def test_models_bootstrap_then_list_uses_the_registry_named_in_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAM_MLOPS_REGISTRY", raising=False)
    registry = tmp_path / "from-config"
    config = tmp_path / "c.toml"
    config.write_text(f'[retrainer]\nregistry = "{registry}"\n')
    events = tmp_path / "labeled.jsonl"
    lines = [
        {"model_id": "fraud", "features": {"amount": 10.0 * i, "merchant": "web"}, "actual": i % 2}
        for i in range(30)
    ]
    lines.append({"model_id": "other", "features": {"amount": 1.0}, "actual": 7})  # skipped
    events.write_text("".join(f"{json.dumps(line)}\n" for line in lines))
    argv = ["models", "--config", str(config), "bootstrap", "fraud", "--task", "classification"]
    assert main([*argv, "--events", str(events), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["version"], record["champion"]) == ("v1", True)
    assert record["config"]["model"]["task"] == "classification"
    assert record["metrics"]["learned_events"] == 30
    # --registry wins over the config; that registry has nothing yet.
    assert main(["models", "--config", str(config), "--registry", str(tmp_path / "x"), "list"]) == 0
    assert "(no versions)" in capsys.readouterr().out
    assert main(["models", "--config", str(config), "list"]) == 0
    assert "v1*" in capsys.readouterr().out


def test_models_bootstrap_refuses_to_replace_a_champion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "labeled.jsonl"
    events.write_text(
        '{"features": {"a": 1.0}, "actual": 1}\n{"features": {"a": 2.0}, "actual": 0}\n'
    )
    argv = ["models", "--registry", str(tmp_path / "r"), "bootstrap", "fraud", "--events"]
    assert main([*argv, str(events), "--task", "classification"]) == 0
    assert main([*argv, str(events), "--task", "classification", "--learning-rate", "0.5"]) == 1
    assert "already has champion v1" in capsys.readouterr().err


def test_retrainer_reports_a_bad_promotion_policy_by_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[retrainer.promotion]\nmin_events = 200\nmax_events = 100\n")
    assert main(["retrainer", "--config", str(config)]) == 2
    assert "retrainer.promotion.max_events: must be at least min_events" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["run", "retrainer"])
def test_a_service_refuses_an_instance_id_kafka_would_refuse_before_connecting(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens at this address: the check must come before any client.
    config = tmp_path / "c.toml"
    config.write_text('[kafka]\nbootstrap_servers = "127.0.0.1:1"\n')
    args = [command, "--config", str(config), "--instance-id", "engine 0"]
    assert main(args) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert "config.invalid" in text and "group.instance.id" in text and "--instance-id" in text


def test_with_static_membership_off_any_instance_id_names_the_transactional_id() -> None:
    kafka = KafkaSettings(static_membership=False)
    config = RuntimeConfig.for_group(kafka, kafka, instance_id="engine 0")
    assert config.instance_id is None
    assert config.transactional_id == "stream-mlops-engine-engine 0"


@pytest.mark.parametrize(("workers", "expected"), [("1", "main"), ("3", "run_workers")])
def test_run_hands_the_same_flags_to_one_engine_or_a_pool(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, workers: str, expected: str
) -> None:
    from consumers import engine

    calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []
    for name in ("main", "run_workers"):

        def record(*args: object, _name: str = name, **kwargs: object) -> int:
            calls.append((_name, args, kwargs))
            return 0

        monkeypatch.setattr(engine, name, record)
    config = tmp_path / "c.toml"
    argv = ["run", "--config", str(config), "--workers", workers, "--instance-id", "a-1"]
    argv += ["--client", "confluent-kafka", "--log-format", "console", "--metrics-port", "9400"]
    assert main(argv) == 0
    [(name, args, kwargs)] = calls
    assert name == expected
    assert args == (() if expected == "main" else (3,))
    assert kwargs == {
        "config_path": config,
        "log_format": "console",
        "instance_id": "a-1",
        "client": "confluent-kafka",
        "metrics_host": None,
        "metrics_port": 9400,
    }
