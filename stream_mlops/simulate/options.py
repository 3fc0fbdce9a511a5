"""Command-line options shared by the simulated scoring services.

Both producers (``stream-mlops simulate fraud|demand``) take the same scenario,
label-delay and malformed-record options; each adds its own. The parsed
options become the pure configs of ``stream_mlops.simulate``. (Their Kafka
options are the edge's: ``stream_mlops.kafka.publisher.add_kafka_arguments``.)

>>> parser = argparse.ArgumentParser()
>>> add_common_arguments(parser, default_events=1000, default_label_delay=5.0)
>>> args = parser.parse_args(["--drift", "gradual", "--drift-at", "500", "--drift-span", "200"])
>>> scenario_from(args).describe()
'gradual drift (concept) from event 500 over 200 events'
>>> label_delay_from(args)
LabelDelay(distribution='exponential', mean_s=5.0, missing_fraction=0.0)
"""

from __future__ import annotations

import argparse

from stream_mlops.simulate.scenario import (
    DELAY_DISTRIBUTIONS,
    DRIFT_KINDS,
    DriftScenario,
    LabelDelay,
)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def add_common_arguments(
    parser: argparse.ArgumentParser, *, default_events: int, default_label_delay: float
) -> None:
    run = parser.add_argument_group("run")
    run.add_argument("--events", type=_count, default=default_events, help="predictions to publish")
    run.add_argument(
        "--rate",
        type=_non_negative,
        default=100.0,
        help="predictions per second of wall-clock time; 0 = as fast as possible (default 100)",
    )
    run.add_argument("--seed", type=int, default=0, help="same seed, same events (default 0)")
    run.add_argument(
        "--model-version",
        default="v1",
        help="version the bootstrap champion publishes under (default v1)",
    )

    drift = parser.add_argument_group("drift scenario (positions count events)")
    drift.add_argument("--drift", choices=DRIFT_KINDS, default="none", help="kind of drift")
    drift.add_argument("--drift-at", type=_count, default=0, help="first drifted event")
    drift.add_argument(
        "--drift-span",
        type=int,
        default=1000,
        help="gradual: events over which the drift ramps in; recurring: events per phase",
    )
    drift.add_argument(
        "--covariate",
        action="store_true",
        help="the drift also shifts the feature distribution",
    )
    drift.add_argument(
        "--covariate-only",
        action="store_true",
        help="the drift shifts the feature distribution only, not the concept",
    )

    labels = parser.add_argument_group("outcomes and bad input")
    labels.add_argument(
        "--label-delay",
        type=_non_negative,
        default=default_label_delay,
        help=f"mean label delay in event-time seconds (default {default_label_delay:g})",
    )
    labels.add_argument(
        "--label-delay-distribution",
        choices=DELAY_DISTRIBUTIONS,
        default="exponential",
        help="how label delays are distributed around the mean (default exponential)",
    )
    labels.add_argument(
        "--missing-outcomes",
        type=_fraction,
        default=0.0,
        help="fraction of outcomes that never arrive (default 0)",
    )
    labels.add_argument(
        "--malformed",
        type=_fraction,
        default=0.0,
        help="fraction of predictions published as broken records (default 0)",
    )


def scenario_from(args: argparse.Namespace) -> DriftScenario:
    return DriftScenario(
        kind=args.drift,
        at=args.drift_at,
        span=args.drift_span,
        concept=not args.covariate_only,
        covariate=args.covariate or args.covariate_only,
    )


def label_delay_from(args: argparse.Namespace) -> LabelDelay:
    return LabelDelay(
        distribution=args.label_delay_distribution,
        mean_s=args.label_delay,
        missing_fraction=args.missing_outcomes,
    )
