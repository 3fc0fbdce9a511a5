import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from stream_mlops.kafka.broker import artifacts
from stream_mlops.kafka.broker.exceptions import BrokerError

_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def test_pom_pins_kafka_4_and_the_log4j2_binding_for_slf4j_1() -> None:
    root = ET.fromstring(artifacts.pom_text())
    props = {el.tag.split("}")[1]: el.text for el in root.iterfind("m:properties/*", _NS)}
    assert str(props["kafka.version"]).startswith("4.")
    deps = {
        (d.findtext("m:groupId", namespaces=_NS), d.findtext("m:artifactId", namespaces=_NS))
        for d in root.iterfind("m:dependencies/m:dependency", _NS)
    }
    assert ("org.apache.kafka", "kafka_2.13") in deps
    # Kafka 4.1 ships slf4j-api 1.7: the slf4j2 binding would leave it on the NOP logger.
    assert ("org.apache.logging.log4j", "log4j-slf4j-impl") in deps
    assert ("org.apache.logging.log4j", "log4j-core") in deps


def test_a_stamp_of_another_pom_means_the_jars_must_be_fetched_again(tmp_path: Path) -> None:
    assert not artifacts.jars_ready(tmp_path)
    (tmp_path / artifacts.STAMP_NAME).write_text("0" * 64 + "\n")
    assert not artifacts.jars_ready(tmp_path)
    (tmp_path / artifacts.STAMP_NAME).write_text(artifacts.pom_digest() + "\n")
    assert artifacts.jars_ready(tmp_path)
    assert artifacts.ensure_jars(tmp_path) is False


def test_without_maven_a_missing_cache_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(BrokerError, match=r"^mvn not found on PATH: install .*maven"):
        artifacts.ensure_jars(tmp_path / "lib")
    assert not (tmp_path / "lib").exists()
