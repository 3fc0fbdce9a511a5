from __future__ import annotations

import argparse

import pytest

from stream_mlops.simulate.options import add_common_arguments, label_delay_from, scenario_from
from stream_mlops.simulate.scenario import DriftScenario, LabelDelay


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_common_arguments(parser, default_events=123, default_label_delay=4.0)
    return parser.parse_args(argv)


def test_defaults() -> None:
    args = parse()
    assert (args.events, args.rate, args.seed, args.malformed) == (123, 100.0, 0, 0.0)
    assert scenario_from(args) == DriftScenario()
    assert label_delay_from(args) == LabelDelay("exponential", 4.0, 0.0)
    assert args.model_version == "v1"


def test_scenario_options() -> None:
    args = parse("--drift", "recurring", "--drift-at", "10", "--drift-span", "5", "--covariate")
    assert scenario_from(args) == DriftScenario("recurring", 10, 5, concept=True, covariate=True)
    only = parse("--drift", "abrupt", "--covariate-only")
    assert scenario_from(only) == DriftScenario("abrupt", 0, 1000, concept=False, covariate=True)


def test_label_options() -> None:
    args = parse(
        "--label-delay", "30", "--label-delay-distribution", "uniform", "--missing-outcomes", "0.2"
    )
    assert label_delay_from(args) == LabelDelay("uniform", 30.0, 0.2)


@pytest.mark.parametrize(
    "argv",
    [
        ["--malformed", "1.5"],
        ["--missing-outcomes", "-0.1"],
        ["--rate", "-3"],
        ["--events", "-1"],
        ["--drift", "sideways"],
    ],
)
def test_bad_values_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)
    assert "error" in capsys.readouterr().err
