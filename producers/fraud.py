"""The card-fraud scoring service (``stream-mlops simulate fraud``): wiring only.

Scores simulated card transactions with the champion, publishes each
prediction to the predictions topic and, after its label delay, its outcome to
the outcomes topic (both keyed by ``event_id``). The world, the drift
scenarios and the model live in ``stream_mlops.simulate.fraud``.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import threading
from collections.abc import Sequence
from pathlib import Path

import structlog

from stream_mlops.config import ConfigError, KafkaSettings
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.model_updates import follow_model_updates
from stream_mlops.kafka.publisher import add_kafka_arguments, kafka_from, serve
from stream_mlops.kafka.transport import TransportError
from stream_mlops.logging import configure
from stream_mlops.registry import ModelRegistry
from stream_mlops.simulate.champion import Champion
from stream_mlops.simulate.fraud import FraudConfig, FraudSimulator
from stream_mlops.simulate.options import add_common_arguments, label_delay_from, scenario_from

# When --rate is 0 (as fast as possible) event time still needs a pace: 100
# transactions a second is a small card issuer's daytime peak.
DEFAULT_EVENT_RATE = 100.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stream-mlops simulate fraud",
        description=(
            "A real-time card-fraud scoring service: publishes predictions and, after a label "
            "delay, outcomes, with an optional drift at a chosen event."
        ),
    )
    add_common_arguments(parser, default_events=10_000, default_label_delay=10.0)
    add_kafka_arguments(parser)
    parser.add_argument("--model-id", default="fraud", help="model id (default fraud)")
    parser.add_argument(
        "--registry",
        type=Path,
        default=None,
        help=(
            "model registry: serve its champion and hot-swap on each promotion published to "
            "--model-updates-topic (default: the simulator's bootstrap model, never swapped)"
        ),
    )
    parser.add_argument(
        "--model-updates-topic",
        default=None,
        help="default: [kafka.topics] model_updates in the config, else model-updates",
    )
    parser.add_argument(
        "--log-format", choices=["json", "console"], default="json", help="log line format"
    )
    return parser


def config_from(args: argparse.Namespace) -> FraudConfig:
    """The simulation the options describe (event time advances at --rate, or 100/s)."""
    return FraudConfig(
        seed=args.seed,
        n_events=args.events,
        events_per_second=args.rate or DEFAULT_EVENT_RATE,
        scenario=scenario_from(args),
        label_delay=label_delay_from(args),
        malformed_fraction=args.malformed,
        model_id=args.model_id,
        model_version=args.model_version,
    )


def main(argv: Sequence[str] | None = None, champion: Champion | None = None) -> int:
    """Run the service; ``champion`` lets a caller serve (and later swap) its own model."""
    args = build_parser().parse_args(argv)
    configure(args.log_format)
    log = structlog.get_logger("stream_mlops.simulate")
    config = config_from(args)
    try:
        kafka = kafka_from(args)
    except ConfigError as exc:
        log.error("simulate.failed", error=str(exc))
        return 2
    stop_following = threading.Event()
    if champion is None and args.registry is not None:
        champion = _registry_champion(args.registry, config.model_id)
        if champion is None:
            log.error(
                "simulate.failed", error=f"no champion for {config.model_id!r} in {args.registry}"
            )
            return 2
        config = dataclasses.replace(config, model_version=champion.current().version)
        try:
            follow_model_updates(
                transport=open_transport(kafka, client_id="stream-mlops-simulate-fraud"),
                topic=args.model_updates_topic or kafka.topics.model_updates,
                registry_dir=args.registry,
                champion=champion,
                stop=stop_following,
            )
        except (TransportError, ValueError) as exc:
            log.error("simulate.failed", error=str(exc))
            return 1
    try:
        return _serve(kafka, config, champion, rate=args.rate)
    finally:
        stop_following.set()


def _registry_champion(registry_dir: Path, model_id: str) -> Champion | None:
    registry = ModelRegistry(registry_dir)
    current = registry.champion(model_id)
    if current is None:
        return None
    model = pickle.loads(registry.artifact(model_id, current.version))
    return Champion(model_id, current.version, model)


def _serve(
    kafka: KafkaSettings, config: FraudConfig, champion: Champion | None, *, rate: float
) -> int:
    return serve(
        FraudSimulator(config, champion),
        kafka=kafka,
        rate=rate,
        client_id="stream-mlops-simulate-fraud",
        context={
            "model_id": config.model_id,
            "seed": config.seed,
            "events": config.n_events,
            "scenario": config.scenario.describe(),
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
