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


def test_a_cluster_renders_every_voter_and_three_replicas(tmp_path: Path) -> None:
    settings = BrokerSettings(data_dir=tmp_path, port=29110, controller_port=29111, nodes=3)
    node2 = parse(render_server_properties(settings, node_id=2))
    assert node2["node.id"] == "2"
    assert node2["listeners"] == "PLAINTEXT://127.0.0.1:29112,CONTROLLER://127.0.0.1:29113"
    assert node2["controller.quorum.voters"] == (
        "1@127.0.0.1:29111,2@127.0.0.1:29113,3@127.0.0.1:29115"
    )
    assert node2["log.dirs"] == str(tmp_path / "node-2" / "data")
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "default.replication.factor",
    ):
        assert node2[key] == "3"
    assert node2["transaction.state.log.min.isr"] == node2["min.insync.replicas"] == "2"
    assert settings.node_heap == "384m"
    assert BrokerSettings(data_dir=tmp_path, nodes=2).replication_factor == 2
    assert BrokerSettings(data_dir=tmp_path, nodes=2).min_insync_replicas == 1


def test_a_secured_broker_renders_sasl_ssl_for_clients_and_mutual_tls_for_controllers(
    tmp_path: Path,
) -> None:
    settings = BrokerSettings(data_dir=tmp_path, secure=True)
    props = parse(render_server_properties(settings, inter_broker_password="pw"))
    assert props["listeners"] == "SASL_SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["listener.security.protocol.map"] == "CONTROLLER:SSL,SASL_SSL:SASL_SSL"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["ssl.keystore.location"] == str(tmp_path / "tls" / "node.pem")
    assert props["ssl.truststore.location"] == str(tmp_path / "tls" / "ca.pem")
    assert props["super.users"] == "User:broker;User:admin"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert (
        'username="broker" password="pw"'
        in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    )
    with pytest.raises(ValueError, match="password"):
        render_server_properties(settings)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"nodes": 0}, "nodes must be in"),
        ({"nodes": 3, "port": 29092, "controller_port": 29094}, "ports overlap"),
        ({"nodes": 3, "port": 65532, "controller_port": 65533}, "port must be in"),
    ],
)
def test_bad_cluster_settings_name_what_is_wrong(fields: dict[str, int], message: str) -> None:
    with pytest.raises(BrokerSettingsError, match=message):
        BrokerSettings(**fields)  # type: ignore[arg-type]


def test_nodes_and_secure_come_from_the_environment_unless_given() -> None:
    env = {"STREAM_MLOPS_BROKER_NODES": "3", "STREAM_MLOPS_BROKER_SECURE": "1"}
    assert (
        BrokerSettings.from_env(environ=env).nodes,
        BrokerSettings.from_env(environ=env).secure,
    ) == (3, True)
    given = BrokerSettings.from_env(environ=env, nodes=1, secure=False)
    assert (given.nodes, given.secure) == (1, False)
    with pytest.raises(BrokerSettingsError, match="STREAM_MLOPS_BROKER_SECURE"):
        BrokerSettings.from_env(environ={"STREAM_MLOPS_BROKER_SECURE": "maybe"})
