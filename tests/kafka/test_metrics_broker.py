"""Metrics and probes of the engine against a real broker, on both client backends.

The first test runs ``stream-mlops run`` as a child process with ``[metrics]``
on and scrapes its ``/metrics`` while it consumes a stream with injected drift
and a few bad records: the alert counter of the drifting model and signal
matches what ``drift-alerts`` holds, dead letters are counted by cause, and
the consumer lag of every input partition ends at 0. The second runs the
runtime in this process, to control the loop: ``/readyz`` is 503 before the
partitions are assigned and 200 after; a commit that left records behind is
held, and the scrape shows its lag, which falls to 0 once the loop goes on;
``/healthz`` turns 503 while an observer blocks the loop and 200 again once it
lets go.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from stream_mlops.config import load_settings
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.engine_service import EngineService
from stream_mlops.kafka.observer import BatchReport, CheckpointReport, RestoreReport
from stream_mlops.kafka.task_runtime import RuntimeConfig, TaskRuntime
from stream_mlops.ops.engine_metrics import EngineMetrics
from stream_mlops.ops.probes import runtime_status
from stream_mlops.ops.service_metrics import ServiceMetrics
from tests.kafka.engine_process import EngineProcess
from tests.kafka.streams import (
    Deployment,
    fraud_stream,
    produce,
    read_all,
    wait_consumed,
)

pytestmark = pytest.mark.kafka

PARTITIONS = 2
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(base: str) -> Samples:
    status, text = get(base + "metrics")
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)


def test_a_scrape_during_a_run_counts_alerts_dead_letters_and_lag_to_zero(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = deployment.write_config(
        tmp_path / "engine.toml",
        kafka_extra="max_record_bytes = 10000",
        extra="[metrics]\nenabled = true\nport = 0\n",
    )
    predictions, outcomes = fraud_stream(
        6000, drift_at=3000, error_before=0.05, error_after=0.30, seed=1
    )
    bad = [b"{not json", b"x" * 20_000]
    topics = deployment.topics
    with EngineProcess(config, "a", tmp_path / "engine.log") as engine:
        started = engine.wait_for_log("metrics.started")
        base = str(started["url"])
        assert urlsplit(base).hostname == "127.0.0.1", "loopback unless told otherwise"
        engine.wait_for_log("partitions.assigned")
        wait_for("/readyz 200", lambda: get(base + "readyz")[0] == 200)

        produce(deployment.bootstrap, topics["predictions"], predictions, PARTITIONS)
        produce(
            deployment.bootstrap,
            topics["predictions"],
            bad,
            PARTITIONS,
            keys=[b"bad-0", b"bad-1"],
            placement=[0, 1],
        )
        wait_consumed(deployment, kinds=("predictions",))
        produce(deployment.bootstrap, topics["outcomes"], outcomes, PARTITIONS)
        wait_consumed(deployment)
        samples = scrape(base)
        assert get(base + "healthz")[0] == 200
        assert engine.terminate() == 0

    alerts = read_all(deployment.bootstrap, topics["drift_alerts"])
    drift_on_error = [a for a in alerts if a["signal"] == "error" and a["severity"] == "drift"]
    assert drift_on_error, "the injected drift must raise an alert"
    counted = sample(
        samples, "stream_mlops_alerts_total", model="fraud", signal="error", severity="drift"
    )
    assert counted == len(drift_on_error)
    # Every alert's trigger carries its Kafka timestamp (both backends pass it on).
    assert sample(samples, "stream_mlops_alert_latency_seconds_count") == len(alerts)
    latency_sum = sample(samples, "stream_mlops_alert_latency_seconds_sum")
    assert latency_sum is not None and latency_sum > 0
    requests = read_all(deployment.bootstrap, topics["retrain_requests"])
    assert sample(samples, "stream_mlops_retrain_requests_total", model="fraud") == len(requests)
    for cause in ("invalid", "too_large"):
        assert (
            sample(samples, "stream_mlops_dead_letters_total", service="engine", cause=cause) == 1
        )
    consumed = sum(
        sample(
            samples,
            "stream_mlops_records_consumed_total",
            service="engine",
            topic=topics[kind],
            partition=str(p),
        )
        or 0
        for kind in ("predictions", "outcomes")
        for p in range(PARTITIONS)
    )
    assert consumed >= len(predictions) + len(outcomes) + len(bad)
    assert sample(samples, "stream_mlops_join_joined_total") == len(outcomes)
    assert sample(samples, "stream_mlops_models_tracked") == 1
    committed = sample(
        samples, "stream_mlops_transactions_total", service="engine", outcome="committed"
    )
    assert committed is not None and committed > 0
    assert sample(samples, "stream_mlops_ready", service="engine") == 1
    for kind in ("predictions", "outcomes"):
        for p in range(PARTITIONS):
            lag = sample(
                samples,
                "stream_mlops_consumer_lag",
                service="engine",
                topic=topics[kind],
                partition=str(p),
            )
            assert lag == 0, f"{kind}[{p}]: lag {lag} after everything was consumed"


class LoopBlocker:
    """An observer that holds the runtime's loop in ``polled`` while ``block`` is set."""

    def __init__(self) -> None:
        self.block = threading.Event()
        self.release = threading.Event()
        self.held = threading.Event()
        #: the first commit that left records behind, held until ``release_lag``
        self.lagging: CheckpointReport | None = None
        self.held_lagging = threading.Event()
        self.release_lag = threading.Event()

    def polled(self, at: float) -> None:
        if self.block.is_set():
            self.held.set()
            self.release.wait(60)

    def batch_processed(self, report: BatchReport) -> None:
        pass

    def checkpoint_ended(self, report: CheckpointReport) -> None:
        if self.lagging is None and any(lag > 0 for lag in report.lag.values()):
            self.lagging = report
            self.held_lagging.set()
            self.release_lag.wait(60)

    def assigned(self, partitions: frozenset[int]) -> None:
        pass

    def restored(self, report: RestoreReport) -> None:
        pass


def test_readyz_after_assignment_and_healthz_503_while_the_loop_is_blocked(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = deployment.write_config(
        tmp_path / "engine.toml",
        extra="[metrics]\nenabled = true\nport = 0\nliveness_timeout_seconds = 1.0\n",
    )
    settings = load_settings(config)
    telemetry = ServiceMetrics(settings.metrics, "engine")
    engine_metrics = EngineMetrics(telemetry.registry)
    blocker = LoopBlocker()
    topics = deployment.topics
    kafka = settings.kafka
    runtime = TaskRuntime(
        EngineService(settings, on_alert=engine_metrics.alerted),
        open_transport(kafka, client_id="metrics-probe-test"),
        RuntimeConfig.for_group(kafka, kafka, instance_id="a"),
        observers=[*telemetry.observers, engine_metrics, blocker],
    )
    stop = threading.Event()
    loop = threading.Thread(target=runtime.run, args=(stop,), name="runtime")
    try:
        engine_metrics.watch(lambda: runtime.tasks)
        telemetry.serve(
            lambda: runtime_status(runtime.stats.snapshot()),
            structlog.get_logger("test"),
        )
        assert telemetry.server is not None
        base = telemetry.server.url
        status, text = get(base + "readyz")
        assert status == 503, text
        assert get(base + "healthz")[0] == 200, "still starting is not stuck"

        # More records per partition than one fetch brings (1 MiB) and than one
        # poll takes (2000): the first commit leaves some behind, whichever
        # partition the client fetched first.
        predictions, _ = fraud_stream(
            20_000, drift_at=20_000, error_before=0.05, error_after=0.05, seed=3
        )
        produce(deployment.bootstrap, topics["predictions"], predictions, PARTITIONS)
        loop.start()
        assert blocker.held_lagging.wait(60), "no commit left records behind"
        assert blocker.lagging is not None
        samples = scrape(base)
        assert get(base + "readyz")[0] == 200
        for tp, lag in blocker.lagging.lag.items():
            labels = {"service": "engine", "topic": tp.topic, "partition": str(tp.partition)}
            assert sample(samples, "stream_mlops_consumer_lag", **labels) == lag
        assert sum(blocker.lagging.lag.values()) > 0
        blocker.release_lag.set()

        def caught_up() -> bool:
            samples = scrape(base)
            lags = [
                sample(
                    samples,
                    "stream_mlops_consumer_lag",
                    service="engine",
                    topic=topics["predictions"],
                    partition=str(p),
                )
                for p in range(PARTITIONS)
            ]
            return lags == [0, 0]

        wait_for("consumer lag 0", caught_up)
        assert get(base + "healthz")[0] == 200

        blocker.block.set()
        assert blocker.held.wait(30), "the loop never polled again"
        wait_for("/healthz 503", lambda: get(base + "healthz")[0] == 503, timeout_s=10)
        status, text = get(base + "healthz")
        assert status == 503 and "stuck" in text, text
        assert sample(scrape(base), "stream_mlops_live", service="engine") == 0

        blocker.block.clear()
        blocker.release.set()
        wait_for("/healthz 200 again", lambda: get(base + "healthz")[0] == 200, timeout_s=10)
    finally:
        blocker.block.clear()
        blocker.release.set()
        blocker.release_lag.set()
        stop.set()
        if loop.ident is not None:
            loop.join(60)
        else:
            runtime.close()
        try:
            assert not loop.is_alive()
            if loop.ident is not None:
                assert get(base + "readyz")[0] == 503, "a stopped loop is not ready"
        finally:
            telemetry.close()
