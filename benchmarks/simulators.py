"""How fast the example systems can produce events, and where the time goes.

Prints one table, side by side in the same run:

* ``generate``: the world alone (features, truth, delays, merge), scored by a
  constant model, so the cost of the simulation itself shows;
* ``score``: the same stream scored by the bootstrap river champion;
* ``publish``: the scored stream sent to a real broker at rate 0 (as fast as
  possible), when ``--kafka`` is given.

Rates count predictions per second (outcomes are sent too, about as many).
The ratio publish / score shows whether the Kafka client or the model is the
bottleneck of ``stream-mlops simulate``.

Usage: python benchmarks/simulators.py [--events 20000] [--kafka] [--bootstrap HOST:PORT]
       [--client kafka-python|confluent-kafka]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stream_mlops.config import KafkaSettings
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.publisher import Pacer, publish
from stream_mlops.kafka.transport import TopicSpec
from stream_mlops.simulate.champion import Champion
from stream_mlops.simulate.demand import DemandConfig, DemandSimulator, bootstrap_model
from stream_mlops.simulate.fraud import FraudConfig, FraudSimulator
from stream_mlops.simulate.fraud import bootstrap_model as fraud_model
from stream_mlops.simulate.scenario import DriftScenario, LabelDelay
from stream_mlops.simulate.stream import Emission


class Row(NamedTuple):
    system: str
    generate: float
    score: float
    publish: float | None


class Constant:
    def predict_one(self, x: dict[str, Any]) -> float:
        return 0.0


def timed(emissions: Iterable[Emission]) -> tuple[int, float]:
    started = time.perf_counter()
    predictions = sum(e.kind == "prediction" for e in emissions)
    return predictions, time.perf_counter() - started


def streams(system: str, n: int, model: Any) -> Iterable[Emission]:
    if system == "fraud":
        config = FraudConfig(
            seed=1,
            n_events=n,
            scenario=DriftScenario("abrupt", at=n // 2),
            label_delay=LabelDelay("exponential", 10.0, 0.05),
            malformed_fraction=0.01,
        )
        return FraudSimulator(config, Champion("fraud", "v1", model))
    demand = DemandConfig(seed=1, n_events=n, scenario=DriftScenario("abrupt", at=n // 2))
    return DemandSimulator(demand, Champion("demand", "v1", model))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--kafka", action="store_true", help="also publish to a broker")
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument(
        "--client", choices=("kafka-python", "confluent-kafka"), default="kafka-python"
    )
    args = parser.parse_args()
    models = {"fraud": fraud_model(1), "demand": bootstrap_model(1)}
    rows: list[Row] = []
    for system in ("fraud", "demand"):
        n, gen_s = timed(streams(system, args.events, Constant()))
        _, score_s = timed(streams(system, args.events, models[system]))
        publish_rate: float | None = None
        if args.kafka:
            suffix = uuid.uuid4().hex[:8]
            topics = [f"bench-{system}-p-{suffix}", f"bench-{system}-o-{suffix}"]
            transport = open_transport(
                KafkaSettings(bootstrap_servers=args.bootstrap, client=args.client),
                client_id="bench-simulators",
            )
            admin = transport.admin()
            admin.create_topics([TopicSpec(t, 3) for t in topics])
            producer = transport.producer()
            try:
                stats = publish(
                    streams(system, args.events, models[system]),
                    producer,
                    predictions_topic=topics[0],
                    outcomes_topic=topics[1],
                    pacer=Pacer(0.0),
                )
                publish_rate = stats.predictions / stats.seconds
            finally:
                producer.close()
                admin.delete_topics(topics)
                admin.close()
        rows.append(Row(system, n / gen_s, n / score_s, publish_rate))

    print(f"{args.events} predictions per system (+ their outcomes); predictions per second")
    print(f"{'system':<8} {'generate':>10} {'score':>10} {'publish':>10} {'publish/score':>14}")
    for system, gen, score, pub in rows:
        pub_text = f"{pub:>10.0f}" if pub is not None else f"{'-':>10}"
        ratio = f"{pub / score:>14.2f}" if pub is not None else f"{'-':>14}"
        print(f"{system:<8} {gen:>10.0f} {score:>10.0f} {pub_text} {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
