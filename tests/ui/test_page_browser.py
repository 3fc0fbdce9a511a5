"""The operator page in a real browser, while the closed loop runs on a real broker.

``stream-mlops ui``, the engine and the retrainer run as child processes on
topics of this test's own (tracked by pid, stopped also when the test fails).
Headless Chromium opens the page once, before anything happened; then a
simulated fraud stream with an abrupt drift is published, after a few
malformed records. Without any reload, the page must show:

* the first drift alert, within ``SHOWN_WITHIN_S`` of its transaction
  committing on the alerts topic (the test reads that topic itself);
* the new champion version, within ``SHOWN_WITHIN_S`` of the registry's
  champion pointer changing (the test reads the registry itself);
* the retrain that produced it, and the dead letters by reason;

and, when the page's server stops, that it no longer answers. It saves a
full-page screenshot in the test's temporary directory and prints where.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from stream_mlops.config import KafkaSettings
from stream_mlops.events import loads
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.publisher import Pacer, publish
from stream_mlops.registry import ModelRegistry
from stream_mlops.service_process import ServiceProcess
from stream_mlops.simulate.champion import Champion
from stream_mlops.simulate.fraud import FraudConfig, FraudSimulator, bootstrap_model
from stream_mlops.simulate.scenario import DriftScenario, LabelDelay
from stream_mlops.ui.registry_view import open_read_only
from tests.kafka.engine_process import REPO, EngineProcess
from tests.kafka.streams import Deployment, create_deployment, delete_deployment
from tests.ui.browser import chromium_or_skip, chromium_page

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# The stated time: from an alert committing on its topic (or the registry's
# champion changing) to the open page showing it. The page's server reads the
# topics continuously and the registry every refresh (2 s), and the page asks
# for fresh panels every refresh (2 s): about 4 s at worst on an idle machine;
# the rest is slack for a CI machine whose two cores also run a broker, an
# engine, a retrainer and a browser.
SHOWN_WITHIN_S = 15.0
# How long the loop itself may take, on the same loaded machine: the drift is
# detected about 2,000 transactions after it starts (4 s at the rate below),
# and a challenger is promoted a few hundred labeled events later.
ALERT_WITHIN_S = 180.0
PROMOTION_WITHIN_S = 240.0
# A service's start on a loaded two-core machine (imports, group join).
START_S = 120.0

# The demo's stream (tests/demo/test_demo.py): the drift is detected and a
# challenger promoted.
EVENTS = 8000
DRIFT_AT = 3000
RATE = 500.0
SEED = 7
MALFORMED = (
    b'{"event_id": "bad-1", "model_id": "fraud"',
    b'{"event_id": "bad-2", "model_id": "fraud", "model_version": "v1", "ts": 0,'
    b' "features": {}, "prediction": 0, "score": 1.5}',
    b"\xff\xfe not UTF-8",
)


@pytest.fixture
def deployment(kafka_bootstrap: str) -> Iterator[Deployment]:
    dep = create_deployment(kafka_bootstrap, partitions=1)
    try:
        yield dep
    finally:
        delete_deployment(dep)


def first_champion(registry_dir: Path) -> Champion:
    """v1: the fraud model trained before the drift, registered and promoted (as the demo does)."""
    model = bootstrap_model(SEED)
    registry = ModelRegistry(registry_dir)
    version = registry.register("fraud", pickle.dumps(model), created_ts=time.time())
    registry.promote("fraud", version.version, ts=time.time(), reason="test bootstrap")
    return Champion("fraud", version.version, model)


class Watch:
    """A thread that looks for something every 0.1 s and notes when it first saw it."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.found: Any = None
        self.seen_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def look(self) -> Any:
        """What is looked for, or None while it is not there."""
        raise NotImplementedError

    def start(self) -> Watch:
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            found = self.look()
            if found is not None:
                self.seen_at = time.monotonic()
                self.found = found
                return

    def wait(self, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while self.found is None:
            assert time.monotonic() < deadline, f"no {self.what} within {timeout_s:.0f} s"
            time.sleep(0.1)
        return self.found

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class AlertWatch(Watch):
    """The first drift alert on the alerts topic (read_committed), as a consumer sees it."""

    def __init__(self, dep: Deployment) -> None:
        super().__init__("drift alert")
        transport = open_transport(
            KafkaSettings(bootstrap_servers=dep.bootstrap), client_id="test-ui-alerts"
        )
        self._reader = transport.reader(read_committed=True)
        topic = dep.topics["drift_alerts"]
        self._reader.assign(dict.fromkeys(self._reader.partitions(topic), "earliest"))

    def look(self) -> dict[str, Any] | None:
        for record in self._reader.poll(0.1):
            alert = loads(record.value or b"{}")
            if alert.get("severity") == "drift":
                return dict(alert)
        return None

    def close(self) -> None:
        super().close()
        self._reader.close()


class PromotionWatch(Watch):
    """The first champion after v1 in the registry."""

    def __init__(self, registry_dir: Path) -> None:
        super().__init__("promotion")
        self._registry = open_read_only(registry_dir)

    def look(self) -> str | None:
        champion = self._registry.champion("fraud")
        return champion.version if champion is not None and champion.version != "v1" else None


def publish_stream(dep: Deployment, champion: Champion, stop: threading.Event) -> None:
    simulator = FraudSimulator(
        FraudConfig(
            seed=SEED,
            n_events=EVENTS,
            events_per_second=RATE,
            scenario=DriftScenario(kind="abrupt", at=DRIFT_AT),
            label_delay=LabelDelay(mean_s=2.0, missing_fraction=0.01),
        ),
        champion,
    )
    transport = open_transport(
        KafkaSettings(bootstrap_servers=dep.bootstrap), client_id="test-ui-scoring"
    )
    producer = transport.producer()
    try:
        # A producer's bugs first: records the engine must dead-letter.
        for value in MALFORMED:
            producer.send(dep.topics["predictions"], b"broken", value)
        publish(
            iter(simulator),
            producer,
            predictions_topic=dep.topics["predictions"],
            outcomes_topic=dep.topics["outcomes"],
            pacer=Pacer(RATE),
            stop=stop,
        )
    finally:
        producer.close()


def test_the_page_shows_the_alert_then_the_new_champion_without_a_reload(
    deployment: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chromium_or_skip()  # before starting anything
    registry_dir = tmp_path / "registry"
    champion = first_champion(registry_dir)
    group = deployment.group_id
    config = deployment.write_config(
        tmp_path / "deployment.toml",
        extra="\n".join(
            [
                "[models.fraud]",
                'task = "classification"',
                "",
                "[retrainer]",
                f'group_id = "{group}-retrainer"',
                f'transactional_id_prefix = "{group}-retrainer"',
                f'registry = "{registry_dir}"',
                "session_timeout_ms = 6000",
            ]
        ),
    )
    stop_publishing = threading.Event()
    with ExitStack() as stack:
        page_server = stack.enter_context(
            ServiceProcess(
                "ui", ["ui", "--config", str(config), "--port", "0"], tmp_path / "ui.log", cwd=REPO
            )
        )
        for command in ("run", "retrainer"):
            stack.enter_context(
                EngineProcess(config, "ui-test", tmp_path / f"{command}.log", command=command)
            )
        url = page_server.wait_for_log("ui.started", START_S)["url"]
        assert url.startswith("http://127.0.0.1:")
        page = stack.enter_context(chromium_page(tmp_path / "chromium-profile"))
        page.goto(url)
        champion_cell = page.locator('#models article[data-model="fraud"] .champion')
        assert champion_cell.inner_text() == "v1"
        # Set once: a full reload would clear it.
        page.evaluate("window.loadedOnce = true")

        watch = AlertWatch(deployment).start()
        stack.callback(watch.close)
        promotion = PromotionWatch(registry_dir).start()
        stack.callback(promotion.close)
        publisher = threading.Thread(
            target=publish_stream, args=(deployment, champion, stop_publishing), daemon=True
        )
        publisher.start()
        stack.callback(publisher.join, 30)
        stack.callback(stop_publishing.set)

        alert = watch.wait(ALERT_WITHIN_S)
        row = page.locator(f'#alerts tr[data-alert-id="{alert["alert_id"]}"]')
        row.wait_for(timeout=SHOWN_WITHIN_S * 1000)
        shown_after = time.monotonic() - watch.seen_at
        assert row.get_attribute("data-severity") == "drift"
        assert row.get_attribute("data-signal") == alert["signal"]
        assert alert["signal"] in row.inner_text()

        version = promotion.wait(PROMOTION_WITHIN_S)
        promoted = page.locator(
            f'#models article[data-model="fraud"] .champion:text-is("{version}")'
        )
        promoted.wait_for(timeout=SHOWN_WITHIN_S * 1000)
        champion_after = time.monotonic() - promotion.seen_at
        retrain = page.locator('#retraining tr[data-model="fraud"][data-outcome="promoted"]')
        retrain.wait_for(timeout=SHOWN_WITHIN_S * 1000)
        assert f"PROMOTED {version}" in retrain.inner_text()

        # The malformed records the scoring service sent, counted by reason.
        page.locator("#dead-letters .reason").first.wait_for(timeout=SHOWN_WITHIN_S * 1000)
        assert page.evaluate("window.loadedOnce") is True
        assert page.title().startswith(("OK", "WARNING", "DRIFT"))

        screenshot = tmp_path / "operator-page.png"
        page.screenshot(path=str(screenshot), full_page=True)
        with capsys.disabled():
            print(
                f"\noperator page: alert shown {shown_after:.1f} s after it committed, "
                f"champion {version} shown {champion_after:.1f} s after its promotion; "
                f"screenshot: {screenshot}"
            )

        # The page's server stops (cleanly, exit 0): the open page says so.
        assert page_server.terminate() == 0
        page.locator("#live.down").wait_for(timeout=SHOWN_WITHIN_S * 1000)
        assert "no answer from the page's server" in page.locator("#live").inner_text()
    assert screenshot.stat().st_size > 10_000
