"""The demand producer against a real broker."""

from __future__ import annotations

import orjson
import pytest

from producers import demand
from stream_mlops.simulate.demand import DemandSimulator
from tests.kafka.cluster import bootstrap_servers, temporary_topics
from tests.producers.test_fraud import read_topic

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_demand_producer_publishes_forecasts_and_actuals(client: str) -> None:
    servers = bootstrap_servers()
    with temporary_topics(servers, "dem-predictions", "dem-outcomes", partitions=3) as (
        predictions_topic,
        outcomes_topic,
    ):
        argv = [
            "--events", "96",
            "--rate", "0",
            "--stores", "2",
            "--items", "4",
            "--drift", "abrupt",
            "--drift-at", "48",
            "--bootstrap", servers,
            "--client", client,
            "--predictions-topic", predictions_topic,
            "--outcomes-topic", outcomes_topic,
        ]  # fmt: skip
        assert demand.main(argv) == 0
        expected = list(DemandSimulator(demand.config_from(demand.build_parser().parse_args(argv))))
        predictions = read_topic(servers, predictions_topic, 96)
        outcomes = read_topic(servers, outcomes_topic, 96)

    assert len(predictions) == len(outcomes) == 96
    assert len(expected) == 192
    partition_of = {r.key: r.partition for r in predictions}
    assert all(partition_of[r.key] == r.partition for r in outcomes)
    values = {r.key.decode(): orjson.loads(r.value) for r in outcomes}
    for e in expected:
        if e.kind == "outcome":
            assert values[e.key] == e.payload
    forecast = orjson.loads(predictions[0].value)
    assert forecast["model_id"] == "demand" and isinstance(forecast["prediction"], float)
