from stream_mlops.kafka.bootstrap import bootstrap_servers, external_bootstrap_servers


def test_external_cluster_wins_over_the_local_broker() -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "a:1,b:2", "STREAM_MLOPS_BROKER_PORT": "29092"}
    assert bootstrap_servers(env) == "a:1,b:2"


def test_blank_variable_means_the_local_broker() -> None:
    assert external_bootstrap_servers({"KAFKA_BOOTSTRAP_SERVERS": "  "}) is None
    assert bootstrap_servers({"KAFKA_BOOTSTRAP_SERVERS": ""}) == "127.0.0.1:9092"
