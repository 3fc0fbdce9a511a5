"""The ``simulate`` and ``tail`` sections of the command line (parsing and dispatch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stream_mlops.cli import build_parser, main
from stream_mlops.config import KafkaSettings


def test_simulate_passes_the_system_options_through() -> None:
    args = build_parser().parse_args(["simulate", "fraud", "--events", "10", "--drift", "abrupt"])
    assert (args.system, args.options) == ("fraud", ["--events", "10", "--drift", "abrupt"])


@pytest.mark.parametrize(("system", "option"), [("fraud", "--model-id"), ("demand", "--stores")])
def test_simulate_help_is_the_systems_help(
    system: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", system, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"stream-mlops simulate {system}" in out
    assert option in out and "--drift-at" in out and "--malformed" in out


def test_tail_options() -> None:
    args = build_parser().parse_args(["tail"])
    # No topic: the config's drift-alerts topic (see the handler test below).
    assert (args.topic, args.json, args.from_beginning, args.max, args.client) == (
        None,
        False,
        False,
        None,
        None,
    )
    args = build_parser().parse_args(
        ["tail", "model-updates", "--json", "--max", "3", "--client", "confluent-kafka"]
    )
    assert (args.topic, args.json, args.max, args.client) == (
        "model-updates",
        True,
        3,
        "confluent-kafka",
    )


def test_tail_takes_the_topic_cluster_and_client_from_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[kafka]\nbootstrap_servers = "k:1"\nclient = "confluent-kafka"\n'
        '[kafka.topics]\ndrift_alerts = "my-alerts"\n'
    )
    seen: dict[str, Any] = {}

    def fake_command(topic: str, *, kafka: KafkaSettings, **options: Any) -> int:
        seen.update(topic=topic, kafka=kafka, **options)
        return 0

    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setattr("stream_mlops.kafka.tail.command", fake_command)
    assert main(["tail", "--config", str(config), "--from-beginning"]) == 0
    assert seen["topic"] == "my-alerts" and seen["from_beginning"] is True
    assert (seen["kafka"].bootstrap_servers, seen["kafka"].client) == ("k:1", "confluent-kafka")
    # the command line wins over the config
    assert main(["tail", "x", "--config", str(config), "--bootstrap", "b:2", "--client",
                 "kafka-python"]) == 0  # fmt: skip
    assert seen["topic"] == "x"
    assert (seen["kafka"].bootstrap_servers, seen["kafka"].client) == ("b:2", "kafka-python")


def test_tail_with_a_bad_config_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[kafka]\nclient = "carrier-pigeon"\n')
    assert main(["tail", "--config", str(config)]) == 2
    assert "kafka.client" in capsys.readouterr().err


def test_topics_create_takes_a_client() -> None:
    args = build_parser().parse_args(["topics", "create", "--client", "confluent-kafka"])
    assert args.client == "confluent-kafka"
