"""Pacing of the simulated producers (pure: clock and sleep are injected), and their
Kafka options."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pytest

from stream_mlops.config import ConfigError
from stream_mlops.kafka.publisher import Pacer, PublishStats, add_kafka_arguments, kafka_from


class FakeClock:
    """A clock that only moves when slept on, or when a send 'takes time'."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def test_pacer_spaces_predictions_at_the_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(50.0, clock=clock.time, sleep=clock.sleep)
    sent_at = []
    for _ in range(101):
        pacer.wait()
        sent_at.append(clock.now)
    assert sent_at[0] == 100.0
    assert sent_at[-1] == pytest.approx(102.0)
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert all(g == pytest.approx(0.02) for g in gaps)


def test_pacer_catches_up_after_slow_sends_without_drifting() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, clock=clock.time, sleep=clock.sleep)
    pacer.wait()
    clock.now += 0.35  # a slow send: 3.5 intervals
    for _ in range(3):
        pacer.wait()  # already due: no sleep
    assert clock.sleeps == []
    pacer.wait()  # the 5th is due at +0.4
    assert clock.now == pytest.approx(100.4)


def test_rate_zero_never_waits_and_negative_is_refused() -> None:
    clock = FakeClock()
    pacer = Pacer(0.0, clock=clock.time, sleep=clock.sleep)
    for _ in range(1000):
        pacer.wait()
    assert clock.sleeps == []
    with pytest.raises(ValueError, match="rate must be >= 0"):
        Pacer(-1.0)


def test_stats_report_the_achieved_rate() -> None:
    stats = PublishStats(
        predictions=500, outcomes=450, malformed=5, seconds=4.0, prediction_seconds=2.5
    )
    assert stats.as_dict() == {
        "predictions": 500,
        "outcomes": 450,
        "malformed": 5,
        "seconds": 4.0,
        "predictions_per_s": 200.0,
    }
    assert PublishStats().as_dict()["predictions_per_s"] is None


def test_outcomes_go_at_their_event_time_on_the_predictions_pace() -> None:
    clock = FakeClock()
    pacer = Pacer(100.0, clock=clock.time, sleep=clock.sleep)
    # predictions at 50 per event-time second, sent at 100 per wall second:
    # event time runs at twice the wall clock
    for k in range(101):
        pacer.wait(at=5000.0 + k / 50)
    assert clock.now == pytest.approx(101.0)
    pacer.wait_outcome(at=5001.5)  # before the last prediction's event time: no wait
    assert clock.now == pytest.approx(101.0)
    pacer.wait_outcome(at=5012.0)  # 10 event-time seconds after the last prediction
    assert clock.now == pytest.approx(106.0)


def test_outcomes_never_wait_without_a_measured_pace() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, clock=clock.time, sleep=clock.sleep)
    pacer.wait_outcome(at=10.0)  # no prediction yet
    for _ in range(3):
        pacer.wait(at=0.0)  # one simulated day's forecasts share a time
    before = clock.now
    pacer.wait_outcome(at=86_400.0)
    assert clock.now == before
    unpaced = Pacer(0.0, clock=clock.time, sleep=clock.sleep)
    unpaced.wait(at=0.0)
    unpaced.wait(at=1.0)
    unpaced.wait_outcome(at=1000.0)
    assert clock.now == before


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_kafka_arguments(parser)
    return parser.parse_args(argv)


def test_kafka_options_default_to_the_local_broker_and_the_contract_topics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("STREAM_MLOPS_BROKER_PORT", raising=False)
    kafka = kafka_from(parse())
    assert (kafka.bootstrap_servers, kafka.client) == ("127.0.0.1:9092", "kafka-python")
    assert (kafka.topics.predictions, kafka.topics.outcomes) == ("predictions", "outcomes")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", " kafka:9092 ")
    assert kafka_from(parse()).bootstrap_servers == "kafka:9092"
    assert kafka_from(parse("--bootstrap", "other:1")).bootstrap_servers == "other:1"


def test_kafka_options_come_from_the_config_and_the_command_line_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    config = tmp_path / "c.toml"
    config.write_text(
        '[kafka]\nbootstrap_servers = "k:1"\nclient = "confluent-kafka"\n'
        '[kafka.topics]\npredictions = "p"\noutcomes = "o"\n'
    )
    kafka = kafka_from(parse("--config", str(config)))
    assert (kafka.bootstrap_servers, kafka.client) == ("k:1", "confluent-kafka")
    assert (kafka.topics.predictions, kafka.topics.outcomes) == ("p", "o")
    kafka = kafka_from(
        parse("--config", str(config), "--client", "kafka-python", "--outcomes-topic", "o2")
    )
    assert (kafka.client, kafka.topics.predictions, kafka.topics.outcomes) == (
        "kafka-python",
        "p",
        "o2",
    )


def test_a_bad_config_names_the_field(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[kafka]\npartitions = 0\n")
    with pytest.raises(ConfigError, match=r"kafka\.partitions"):
        kafka_from(parse("--config", str(config)))
