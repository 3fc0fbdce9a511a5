"""docs/contract.md says what the code does: its examples validate, and nothing is left out.

The page is the interface contract outside programs rely on. These tests fail
when an example event no longer validates, or when a topic, command,
configuration key, event type or detector exists in the code but not on the
page: extending the contract means documenting the extension.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from stream_mlops import detectors
from stream_mlops.cli import build_parser
from stream_mlops.config import (
    JoinSettings,
    KafkaSecurity,
    KafkaSettings,
    KafkaTopics,
    LimitSettings,
    MetricsSettings,
    ModelSettings,
    NotifySettings,
    PromotionSettings,
    RetrainerSettings,
    Settings,
    UiSettings,
    WebhookSettings,
)
from stream_mlops.events import _ALL_MODELS, _INPUT_MODELS, decode_input, dumps
from stream_mlops.registry import Experiment, ExperimentLook

DOC = Path(__file__).resolve().parents[1] / "docs" / "contract.md"
TEXT = DOC.read_text(encoding="utf-8")
EXAMPLES = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", TEXT, re.DOTALL)]
# The first cell of every table row.
FIRST_CELLS = re.findall(r"^\| (.+?) \|", TEXT, re.MULTILINE)


def test_every_example_event_validates() -> None:
    assert EXAMPLES, "no JSON examples found"
    for example in EXAMPLES:
        kind = example["type"]
        if kind in _INPUT_MODELS:
            decode_input(dumps(example))
        else:
            # Outputs forbid unknown fields: an example cannot invent one.
            _ALL_MODELS[kind].model_validate(example)


def test_every_event_type_has_an_example() -> None:
    assert {e["type"] for e in EXAMPLES} == set(_ALL_MODELS)


def test_every_topic_is_listed_with_its_config_key() -> None:
    for key, name in KafkaTopics().model_dump().items():
        assert f"`{name}` `[{key}]`" in TEXT, f"topic {name} ([kafka.topics] {key})"


def test_every_command_is_listed() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert commands
    documented = {cell.strip("`").split()[0] for cell in FIRST_CELLS if cell.startswith("`")}
    assert set(commands) <= documented


def test_every_option_of_a_service_is_listed() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for command in ("run", "notify"):
        options = [o for a in commands[command]._actions for o in a.option_strings]
        row = next(cell for cell in FIRST_CELLS if cell.startswith(f"`{command} "))
        long_options = [o for o in options if o.startswith("--") and o != "--help"]
        missing = [o for o in long_options if f"[{o}" not in row]
        assert missing == [], f"{command} options missing from {DOC.name}"


def _fields(model: type[BaseModel]) -> list[str]:
    return [
        name
        for name, info in model.model_fields.items()
        if not (isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel))
    ]


@pytest.mark.parametrize(
    ("section", "model"),
    [
        ("[join]", JoinSettings),
        ("[kafka]", KafkaSettings),
        ("[kafka.security]", KafkaSecurity),
        ("[limits]", LimitSettings),
        ("[retrainer]", RetrainerSettings),
        ("[retrainer.promotion]", PromotionSettings),
        ("[notify]", NotifySettings),
        ("[[notify.webhooks]]", WebhookSettings),
        ("[ui]", UiSettings),
        ("[metrics]", MetricsSettings),
    ],
)
def test_every_key_of_a_section_is_listed(section: str, model: type[BaseModel]) -> None:
    missing = [k for k in _fields(model) if f"`{section} {k}`" not in FIRST_CELLS]
    assert missing == [], f"{section} keys missing from {DOC.name}"


def test_every_model_policy_key_and_top_level_key_is_listed() -> None:
    listed = {cell.strip("`") for cell in FIRST_CELLS}
    top = [k for k in _fields(Settings) if k not in ("defaults", "models")]
    missing = [k for k in [*_fields(ModelSettings), *top] if k not in listed]
    assert missing == []


def test_every_detector_name_is_listed() -> None:
    assert [n for n in detectors.known_names() if f"`{n}`" not in TEXT] == []


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def test_every_models_subcommand_is_listed() -> None:
    models = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["models"]
    (row,) = [cell for cell in FIRST_CELLS if cell.startswith("`models ")]
    listed = set(row.strip("`").split(" [")[0].split()[1:]) - {"/"}
    assert _subcommands(models) == listed


def _section(title: str) -> str:
    start = TEXT.index(f"## {title}\n")
    end = TEXT.find("\n## ", start + 1)
    return TEXT[start:end]


@pytest.mark.parametrize(
    ("header", "model"), [("record field", Experiment), ("look field", ExperimentLook)]
)
def test_every_experiment_record_field_is_listed(header: str, model: type[BaseModel]) -> None:
    section = _section("The experiment log")
    table = section[section.index(f"| {header} |") :].split("\n\n")[0]
    cells = re.findall(r"^\| (.+?) \|", table, re.MULTILINE)
    listed = {name for cell in cells for name in re.findall(r"`(\w+)`", cell)}
    assert set(model.model_fields) == listed
