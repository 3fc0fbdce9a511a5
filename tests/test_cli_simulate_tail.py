"""The ``simulate`` and ``tail`` sections of the command line (parsing and dispatch)."""

from __future__ import annotations

import pytest

from stream_mlops.cli import build_parser, main


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


def test_tail_defaults_to_drift_alerts() -> None:
    args = build_parser().parse_args(["tail"])
    assert (args.topic, args.json, args.from_beginning, args.max) == (
        "drift-alerts",
        False,
        False,
        None,
    )
    args = build_parser().parse_args(["tail", "model-updates", "--json", "--max", "3"])
    assert (args.topic, args.json, args.max) == ("model-updates", True, 3)
