"""The demand-forecasting service (``stream-mlops simulate demand``): wiring only.

Every simulated day it forecasts each (store, item) series' demand and
publishes the forecasts (regression predictions); each day's actual demand is
published as the outcomes once the day closes. The world, the regime change
and the forecaster live in ``stream_mlops.simulate.demand``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import structlog

from stream_mlops.config import ConfigError
from stream_mlops.kafka.publisher import add_kafka_arguments, kafka_from, serve
from stream_mlops.logging import configure
from stream_mlops.simulate.champion import Champion
from stream_mlops.simulate.demand import SECONDS_PER_DAY, DemandConfig, DemandSimulator
from stream_mlops.simulate.options import add_common_arguments, label_delay_from, scenario_from


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stream-mlops simulate demand",
        description=(
            "A demand-forecasting service: daily forecasts per (store, item) and the actual "
            "demand once each day closes, with an optional regime change at a chosen event "
            "(--drift abrupt --drift-at N)."
        ),
    )
    add_common_arguments(parser, default_events=20_000, default_label_delay=0.0)
    add_kafka_arguments(parser)
    demand = parser.add_argument_group("demand")
    demand.add_argument("--stores", type=int, default=4, help="stores (default 4)")
    demand.add_argument("--items", type=int, default=8, help="items per store (default 8)")
    demand.add_argument(
        "--seconds-per-day",
        type=float,
        default=SECONDS_PER_DAY,
        help="event-time length of a simulated day (default 86400; less compresses time)",
    )
    parser.add_argument("--model-id", default="demand", help="model id (default demand)")
    parser.add_argument(
        "--log-format", choices=["json", "console"], default="json", help="log line format"
    )
    return parser


def config_from(args: argparse.Namespace) -> DemandConfig:
    return DemandConfig(
        seed=args.seed,
        n_events=args.events,
        stores=args.stores,
        items=args.items,
        seconds_per_day=args.seconds_per_day,
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
    config = config_from(args)
    try:
        kafka = kafka_from(args)
    except ConfigError as exc:
        structlog.get_logger("stream_mlops.simulate").error("simulate.failed", error=str(exc))
        return 2
    return serve(
        DemandSimulator(config, champion),
        kafka=kafka,
        rate=args.rate,
        client_id="stream-mlops-simulate-demand",
        context={
            "model_id": config.model_id,
            "seed": config.seed,
            "events": config.n_events,
            "series": config.n_series,
            "scenario": config.scenario.describe(),
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
