from __future__ import annotations

from pathlib import Path

import pytest

from stream_mlops import config
from stream_mlops.config import ConfigError, load_settings, parse_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings(None)
    assert settings.unknown_models == "accept"
    assert settings.kafka.topics.state == "stream-mlops-state"
    model = settings.model("anything")
    assert [s.name for s in model.detectors_for("error")] == ["glr"]
    assert [s.name for s in model.detectors_for("feature:x")] == ["glr"]
    assert model.retrain_budget_share == 0.5
    assert model.detectors_for("prediction") == []
    assert model.retrains_on("error")
    assert not model.retrains_on("score")


def test_model_section_overrides_defaults_key_by_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[join]
ttl_seconds = 3600
max_pending = 5000

[defaults]
min_observations = 100

[models.fraud]
task = "classification"
cooldown_observations = 50
retrain_on = ["error", "feature:*"]

[models.fraud.detectors]
error = [{name = "HDDM_A"}, {name = "adwin", delta = 0.001, warning_delta = 0.01}]
"feature:amount" = [{name = "page_hinkley", warmup = 500}]
score = []
""",
    )
    settings = load_settings(path)
    fraud = settings.model("fraud")
    assert settings.join.max_pending == 5000
    assert fraud.min_observations == 100  # from [defaults]
    assert fraud.cooldown_observations == 50
    assert [s.name for s in fraud.detectors_for("error")] == ["hddm_a", "adwin"]
    assert fraud.detectors_for("error")[1].params == {"delta": 0.001, "warning_delta": 0.01}
    assert [s.name for s in fraud.detectors_for("feature:amount")] == ["page_hinkley"]
    assert [s.name for s in fraud.detectors_for("feature:other")] == ["glr"]
    assert fraud.detectors_for("score") == []
    assert fraud.retrains_on("feature:amount")
    assert settings.model("demand").cooldown_observations == 1000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[join]\nttl_seconds = 0", "join.ttl_seconds: Input should be greater than 0"),
        ("[join]\nttl = 5", "join.ttl: Extra inputs are not permitted"),
        ("colour = 1", "colour: Extra inputs are not permitted"),
        ('unknown_models = "maybe"', "unknown_models: Input should be 'accept' or 'reject'"),
        ("[models.fraud]\nmin_observations = -1", "models.fraud.min_observations: Input should"),
        (
            '[models.fraud.detectors]\nerror = [{name = "adwin", delta = 0}]',
            r"models.fraud.detectors.error[0].delta: must be in (0, 1)",
        ),
        (
            '[models.fraud.detectors]\nerror = [{name = "adwin", colour = 1}]',
            r"models.fraud.detectors.error[0].colour: unexpected parameter",
        ),
        (
            '[models.fraud.detectors]\nerror = [{name = "kswin", alpha = 2.0}]',
            "models.fraud.detectors.error[0]: Alpha must be between 0 and 1",
        ),
        (
            '[defaults.detectors]\nscore = [{name = "ddm"}]',
            "defaults.detectors.score[0].name: ddm takes only 0/1 values",
        ),
        (
            '[models.m]\ntask = "regression"\n[models.m.detectors]\nerror = [{name = "ddm"}]',
            "models.m.detectors.error[0].name: ddm takes only 0/1 values",
        ),
        ('[defaults]\nretrain_on = ["colour"]', "defaults.retrain_on: unknown signal 'colour'"),
        ('[models."bad id"]', "models.bad id.[key]: String should match pattern"),
        ("[kafka]\npartitions = 0", "kafka.partitions: Input should be greater than 0"),
        ('[kafka]\nclient = "java"', "kafka.client: Input should be"),
        ("[kafka.topics]\nalerts = 'x'", "kafka.topics.alerts: Extra inputs are not permitted"),
        ("not toml [", "not valid TOML"),
        # Strict types: TOML says what a value is, nothing is coerced.
        (
            "[kafka]\ncheckpoint_interval_ms = true",
            "kafka.checkpoint_interval_ms: Input should be a valid integer",
        ),
        (
            "[kafka]\npublish_labeled_events = 1",
            "kafka.publish_labeled_events: Input should be a valid boolean",
        ),
        ('[join]\nttl_seconds = "60"', "join.ttl_seconds: Input should be a valid number"),
        ("[join]\nmax_pending = 1.5", "join.max_pending: Input should be a valid integer"),
        (
            "[defaults]\ndistribution_checks = 0",
            "defaults.distribution_checks: Input should be a valid boolean",
        ),
        ('[kafka]\ngroup_id = ""', "kafka.group_id: String should have at least 1 character"),
        (
            '[retrainer]\ngroup_id = ""',
            "retrainer.group_id: String should have at least 1 character",
        ),
        ('[kafka.topics]\noutcomes = ""', "kafka.topics.outcomes: String should match pattern"),
        ('[kafka.topics]\nstate = "a b"', "kafka.topics.state: String should match pattern"),
        ('[kafka.topics]\nstate = ".."', "kafka.topics.state: '.' and '..' are not topic names"),
        ('[defaults]\nretrain_on = ["error\\n"]', "defaults.retrain_on: unknown signal 'error\\n'"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert message in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.toml")


def test_bootstrap_servers_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    path = write(tmp_path, '[kafka]\nbootstrap_servers = "10.0.0.1:9092"')
    assert load_settings(path).kafka.bootstrap_servers == "10.0.0.1:9092"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    assert load_settings(path).kafka.bootstrap_servers == "127.0.0.1:19092"
    assert load_settings(None).kafka.bootstrap_servers == "127.0.0.1:19092"


def test_parse_settings_accepts_a_mapping() -> None:
    settings = parse_settings({"defaults": {"task": "regression"}})
    assert settings.model("x").task == "regression"


def test_retrainer_section_defaults_and_overrides() -> None:
    settings = parse_settings({})
    assert settings.retrainer.group_id != settings.kafka.group_id
    assert settings.retrainer.promotion.overrides() == {}
    settings = parse_settings(
        {"retrainer": {"registry": "/srv/models", "promotion": {"max_events": 600}}}
    )
    assert settings.retrainer.registry == "/srv/models"
    assert settings.retrainer.promotion.overrides() == {"max_events": 600}
    with pytest.raises(ConfigError, match=r"retrainer\.buffer_events"):
        parse_settings({"retrainer": {"buffer_events": -1}})


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    doc = config.__doc__ or ""
    example = doc.split("::\n", 1)[1].split("\n>>>", 1)[0]
    text = "\n".join(line.removeprefix("    ") for line in example.splitlines())
    settings = load_settings(write(tmp_path, text))
    fraud = settings.model("fraud")
    assert settings.unknown_models == "reject"
    assert [s.name for s in fraud.detectors_for("error")] == ["hddm_a"]
    assert fraud.detectors_for("feature:amount")[0].params == {"warmup": 1000, "threshold": 20}
    assert fraud.detectors_for("score") == []


def test_a_float_setting_still_takes_an_integer() -> None:
    settings = parse_settings({"join": {"ttl_seconds": 60}})
    assert settings.join.ttl_seconds == 60.0
    assert isinstance(settings.join.ttl_seconds, float)
