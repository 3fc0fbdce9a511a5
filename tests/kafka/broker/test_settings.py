from pathlib import Path

import pytest

from stream_mlops.kafka.broker.settings import (
    BrokerSettings,
    BrokerSettingsError,
    render_server_properties,
)


def parse(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_renders_a_single_node_kraft_broker_ready_for_transactions(tmp_path: Path) -> None:
    props = parse(render_server_properties(BrokerSettings(data_dir=tmp_path)))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == f"{props['node.id']}@127.0.0.1:9093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["log.dirs"] == str(tmp_path / "data")


def test_ports_and_paths_follow_the_settings(tmp_path: Path) -> None:
    settings = BrokerSettings(data_dir=tmp_path / "k", port=29092, controller_port=29093)
    props = parse(render_server_properties(settings))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["controller.quorum.voters"].endswith("@127.0.0.1:29093")
    assert settings.lib_dir == tmp_path / "k" / "lib"
    assert settings.log_file.parent == settings.pid_file.parent == tmp_path / "k"


def test_environment_overrides_defaults_and_argument_overrides_environment(
    tmp_path: Path,
) -> None:
    env = {
        "STREAM_MLOPS_BROKER_PORT": "19092",
        "STREAM_MLOPS_CONTROLLER_PORT": "19093",
        "STREAM_MLOPS_BROKER_DATA_DIR": "/from/env",
        "STREAM_MLOPS_BROKER_HEAP": "256m",
        "STREAM_MLOPS_BROKER_LIB": "/shared/lib",
    }
    from_env = BrokerSettings.from_env(environ=env)
    assert (from_env.port, from_env.controller_port, from_env.heap) == (19092, 19093, "256m")
    assert from_env.data_dir == Path("/from/env")
    assert from_env.lib_dir == Path("/shared/lib")
    assert BrokerSettings.from_env(tmp_path, environ=env).data_dir == tmp_path
    assert BrokerSettings.from_env(environ={}) == BrokerSettings()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STREAM_MLOPS_BROKER_PORT": "ninety"}, "STREAM_MLOPS_BROKER_PORT"),
        ({"STREAM_MLOPS_BROKER_PORT": "70000"}, "port must be in"),
        ({"STREAM_MLOPS_CONTROLLER_PORT": "9092"}, "must differ"),
        ({"STREAM_MLOPS_BROKER_HEAP": "lots"}, "heap"),
    ],
)
def test_bad_settings_name_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(BrokerSettingsError, match=message):
        BrokerSettings.from_env(environ=env)
