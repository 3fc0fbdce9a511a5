"""The metrics as the services' observer events update them (no broker).

The runtime's reports are built by hand for ``RuntimeMetrics``; the engine's
and the retrainer's metrics run on the in-memory transport through the real
task runtime, so the counts are checked against what was committed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from stream_mlops.config import SERVICE_METRICS_PORTS, Settings, UiSettings
from stream_mlops.engine import Engine
from stream_mlops.events import DriftAlert
from stream_mlops.join import JoinCounts
from stream_mlops.kafka.engine_service import EngineService
from stream_mlops.kafka.observer import BatchReport, CheckpointReport, RestoreReport
from stream_mlops.kafka.task_runtime import RuntimeConfig, TaskRuntime
from stream_mlops.kafka.transport import Record, TopicPartition
from stream_mlops.ops.engine_metrics import JOIN_COUNTERS, EngineMetrics
from stream_mlops.ops.metrics import OVERFLOW, RuntimeMetrics, service_registry, watch_probes
from stream_mlops.ops.notify_metrics import NotifierCollector
from stream_mlops.ops.notify_service import NotifierStats
from stream_mlops.ops.probes import LoopStatus, Probes
from stream_mlops.ops.retrainer_metrics import RetrainerMetrics
from stream_mlops.retrain.retrainer import Notice
from tests.kafka.streams import fraud_stream
from tests.kafka.test_engine_service import PARTITIONS, deployment, drain, produce

pytestmark = pytest.mark.usefixtures("process_settings")

REPO = Path(__file__).resolve().parents[2]
OPERATORS_DOC = REPO / "docs" / "operators.md"


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value, 0 when the series does not exist (yet)."""
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def records(topic: str, partition: int, count: int) -> list[Record]:
    return [Record(topic, partition, offset, None, b"{}") for offset in range(count)]


def committed(**fields: object) -> CheckpointReport:
    return CheckpointReport(outcome="committed", records=1, snapshots=1, duration_s=0.3, **fields)  # type: ignore[arg-type]


def test_runtime_reports_become_counters_gauges_and_histograms() -> None:
    registry = service_registry("engine", standard=False)
    metrics = RuntimeMetrics(registry, "engine")
    batch = [
        *records("predictions", 0, 5),
        *records("predictions", 1, 2),
        *records("outcomes", 1, 3),
    ]
    metrics.batch_processed(
        BatchReport(
            [batch],
            {"labeled_event": 3, "drift_alert": 1},
            {"invalid": 2, "field 'x' is missing: free text": 1},
            0.004,
        )
    )
    metrics.batch_processed(BatchReport([records("predictions", 0, 4)], {}, {"invalid": 1}, 0.002))
    svc = {"service": "engine"}
    assert (
        value(
            registry,
            "stream_mlops_records_consumed_total",
            **svc,
            topic="predictions",
            partition="0",
        )
        == 9
    )
    assert (
        value(
            registry,
            "stream_mlops_records_consumed_total",
            **svc,
            topic="predictions",
            partition="1",
        )
        == 2
    )
    assert (
        value(
            registry, "stream_mlops_records_consumed_total", **svc, topic="outcomes", partition="1"
        )
        == 3
    )
    assert value(registry, "stream_mlops_outputs_total", **svc, kind="drift_alert") == 1
    assert value(registry, "stream_mlops_dead_letters_total", **svc, cause="invalid") == 3
    # A reason's free text is never a label: it counts under _other_.
    assert value(registry, "stream_mlops_dead_letters_total", **svc, cause=OVERFLOW) == 1
    assert value(registry, "stream_mlops_batch_duration_seconds_count", **svc) == 2

    lag = {TopicPartition("predictions", 0): 7, TopicPartition("predictions", 1): 0}
    metrics.checkpoint_ended(committed(commit_s=0.02, lag=lag))
    metrics.checkpoint_ended(
        CheckpointReport(outcome="aborted", records=3, snapshots=0, duration_s=0.1)
    )
    assert value(registry, "stream_mlops_transactions_total", **svc, outcome="committed") == 1
    assert value(registry, "stream_mlops_transactions_total", **svc, outcome="aborted") == 1
    assert value(registry, "stream_mlops_checkpoint_duration_seconds_count", **svc) == 1
    assert value(registry, "stream_mlops_checkpoint_duration_seconds_sum", **svc) == pytest.approx(
        0.02
    )
    assert value(registry, "stream_mlops_transaction_duration_seconds_sum", **svc) == pytest.approx(
        0.3
    )
    assert (
        value(registry, "stream_mlops_consumer_lag", **svc, topic="predictions", partition="0") == 7
    )

    metrics.assigned(frozenset({1}))
    assert value(registry, "stream_mlops_partitions_assigned", **svc) == 1
    assert (
        registry.get_sample_value(
            "stream_mlops_consumer_lag", {**svc, "topic": "predictions", "partition": "0"}
        )
        is None
    ), "a partition that left keeps no lag"
    metrics.restored(RestoreReport(partitions=frozenset({1}), duration_s=0.5))
    assert value(registry, "stream_mlops_restore_duration_seconds_count", **svc) == 1


def test_dead_letter_causes_past_the_budget_share_one_series() -> None:
    registry = service_registry("engine", standard=False)
    metrics = RuntimeMetrics(registry, "engine")
    for i in range(100):
        metrics.batch_processed(BatchReport([], {}, {f"cause_{i}": 1}, 0.0))
    text = generate_latest(registry).decode()
    series = [line for line in text.splitlines() if line.startswith("stream_mlops_dead_letters")]
    assert len(series) <= 33, "causes are bounded"
    assert value(registry, "stream_mlops_dead_letters_total", service="engine", cause=OVERFLOW) > 0


def test_every_metric_is_documented() -> None:
    registry = service_registry("engine", standard=False)
    RuntimeMetrics(registry, "engine")
    EngineMetrics(registry)
    RetrainerMetrics(registry)
    registry.register(NotifierCollector(NotifierStats()))
    loop = Probes(lambda: LoopStatus(ready=False, last_poll=None), liveness_timeout_s=1)
    watch_probes(registry, "engine", loop)
    suffix = {"counter": "_total", "info": "_info"}
    names = [family.name + suffix.get(family.type, "") for family in registry.collect()]
    assert len(names) > 40
    documented = set(re.findall(r"`(stream_mlops_[a-z_]+)", OPERATORS_DOC.read_text()))
    assert [name for name in names if name not in documented] == []


def test_the_dashboard_and_the_scrape_config_use_only_metrics_that_exist() -> None:
    documented = set(re.findall(r"`(stream_mlops_[a-z_]+)", OPERATORS_DOC.read_text()))
    dashboard = json.loads((REPO / "deploy" / "grafana" / "stream-mlops.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(exprs) > 30
    used = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for expr in exprs
        for name in re.findall(r"stream_mlops_[a-z_]+", expr)
    }
    assert used - documented == set()
    scrape = (REPO / "deploy" / "prometheus.yml").read_text()
    ports = [*SERVICE_METRICS_PORTS.values(), UiSettings().port]
    assert [p for p in ports if f'"127.0.0.1:{p}"' not in scrape] == []


def test_every_join_count_has_a_counter() -> None:
    assert set(JOIN_COUNTERS) == {f.name for f in dataclasses.fields(JoinCounts)}


def alert(model: str = "fraud", signal: str = "error", severity: str = "drift") -> DriftAlert:
    """An alert with the fields the metrics read (the rest is the engine's business)."""
    return DriftAlert.model_construct(model_id=model, signal=signal, severity=severity)


def test_alerts_count_at_the_commit_with_their_latency_and_not_after_an_abort() -> None:
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry, wall_clock=lambda: 1_700_000_010.0)
    trigger = Record("outcomes", 0, 1, None, b"{}", timestamp_ms=1_700_000_008_500)
    metrics.alerted(alert(), trigger)
    metrics.checkpoint_ended(
        CheckpointReport(outcome="aborted", records=1, snapshots=0, duration_s=0.1)
    )
    labels = {"model": "fraud", "signal": "error", "severity": "drift"}
    assert value(registry, "stream_mlops_alerts_total", **labels) == 0, "an aborted alert is void"

    metrics.alerted(alert(), trigger)
    metrics.alerted(
        alert(signal="feature:amount", severity="warning"), Record("p", 0, 2, None, b"")
    )
    metrics.checkpoint_ended(committed())
    assert value(registry, "stream_mlops_alerts_total", **labels) == 1
    assert (
        value(
            registry,
            "stream_mlops_alerts_total",
            model="fraud",
            signal="feature:amount",
            severity="warning",
        )
        == 1
    )
    # The record without a Kafka timestamp has no latency to count.
    assert value(registry, "stream_mlops_alert_latency_seconds_count") == 1
    assert value(registry, "stream_mlops_alert_latency_seconds_sum") == pytest.approx(1.5)


def engine_with_metrics(
    settings: Settings, cluster: object
) -> tuple[TaskRuntime[Engine], CollectorRegistry]:
    registry = service_registry("engine", standard=False)
    metrics = EngineMetrics(registry, wall_clock=lambda: 1_700_000_000.0)
    kafka = settings.kafka
    config = RuntimeConfig.for_group(kafka, kafka, instance_id="a")
    runtime = TaskRuntime(
        EngineService(settings, on_alert=metrics.alerted),
        cluster.transport(),  # type: ignore[attr-defined]
        config,
        observers=[RuntimeMetrics(registry, "engine"), metrics],
        clock=lambda: 0.0,
    )
    metrics.watch(lambda: runtime.tasks)
    return runtime, registry


def test_engine_metrics_match_what_the_engine_committed() -> None:
    cluster, settings = deployment({"checkpoint_max_events": 100_000})
    predictions, outcomes = fraud_stream(
        6000, drift_at=3000, error_before=0.05, error_after=0.30, seed=1
    )
    produce(cluster, "predictions", predictions)
    cluster.produce("predictions", b"{not json", key=b"k", partition=0)
    runtime, registry = engine_with_metrics(settings, cluster)
    with runtime:
        runtime.start()
        drain(runtime, cluster, "predictions", steps=50)
        pending = sum(
            value(registry, "stream_mlops_join_pending", partition=str(p), kind="prediction")
            for p in range(PARTITIONS)
        )
        assert pending == len(predictions)
        produce(cluster, "outcomes", outcomes)
        runtime.step()
        cluster.fail_next_commit()
        runtime.checkpoint()  # aborted: its alerts are produced again after the rewind
        drain(runtime, cluster, "outcomes", steps=100)

    alerts = [orjson.loads(r.value or b"") for r in cluster.committed_records("drift-alerts")]
    assert alerts, "the stream must make the engine alert"
    by_series: dict[tuple[str, str, str], int] = {}
    for a in alerts:
        key = (a["model_id"], a["signal"], a["severity"])
        by_series[key] = by_series.get(key, 0) + 1
    for (model, signal, severity), count in by_series.items():
        labels = {"model": model, "signal": signal, "severity": severity}
        assert value(registry, "stream_mlops_alerts_total", **labels) == count
    requests = cluster.committed_records("retrain-requests")
    assert value(registry, "stream_mlops_retrain_requests_total", model="fraud") == len(requests)
    assert (
        value(registry, "stream_mlops_transactions_total", service="engine", outcome="aborted") == 1
    )
    assert value(registry, "stream_mlops_join_joined_total") == len(outcomes)
    assert (
        value(registry, "stream_mlops_dead_letters_total", service="engine", cause="invalid") == 1
    )
    consumed = sum(
        value(
            registry,
            "stream_mlops_records_consumed_total",
            service="engine",
            topic=t,
            partition=str(p),
        )
        for t in ("predictions", "outcomes")
        for p in range(PARTITIONS)
    )
    # The aborted batch is read twice: consumed counts reads, not distinct records.
    assert consumed >= len(predictions) + len(outcomes) + 1
    assert value(registry, "stream_mlops_models_tracked") == 1
    assert value(registry, "stream_mlops_signals_tracked", model="fraud") > 0
    for p in range(PARTITIONS):
        assert (
            value(registry, "stream_mlops_join_pending", partition=str(p), kind="prediction") == 0
        )
        for topic in ("predictions", "outcomes"):
            assert (
                value(
                    registry,
                    "stream_mlops_consumer_lag",
                    service="engine",
                    topic=topic,
                    partition=str(p),
                )
                == 0
            )
        # The stream's event times are in 2024; the wall clock stands at 2023-11.
        watermark = value(
            registry, "stream_mlops_join_watermark_timestamp_seconds", partition=str(p)
        )
        delay = value(registry, "stream_mlops_join_watermark_delay_seconds", partition=str(p))
        assert watermark > 0 and delay == pytest.approx(1_700_000_000.0 - watermark)


def test_retrainer_counts_its_decisions_at_the_commit() -> None:
    registry = CollectorRegistry()
    metrics = RetrainerMetrics(registry)
    metrics.noticed(Notice("request.received", {"request_id": "r1", "model_id": "fraud"}))
    metrics.noticed(Notice("session.started", {"request_id": "r1", "model_id": "fraud"}))
    metrics.checkpoint_ended(
        CheckpointReport(outcome="aborted", records=1, snapshots=0, duration_s=0.1)
    )
    assert value(registry, "stream_mlops_retrainer_sessions_started_total", model="fraud") == 0

    for notice in (
        Notice("request.received", {"request_id": "r1", "model_id": "fraud"}),
        Notice("request.stale", {"request_id": "r0", "model_id": "fraud"}),
        Notice("session.started", {"request_id": "r1", "model_id": "fraud"}),
        Notice("promotion", {"model_id": "fraud"}),
        Notice("retired", {"model_id": "demand"}),
        Notice("session.skipped_event", {"model_id": "fraud"}),
    ):
        metrics.noticed(notice)
    metrics.checkpoint_ended(committed())
    assert value(registry, "stream_mlops_retrainer_requests_total", result="received") == 1
    assert value(registry, "stream_mlops_retrainer_requests_total", result="stale") == 1
    assert value(registry, "stream_mlops_retrainer_sessions_started_total", model="fraud") == 1
    assert value(registry, "stream_mlops_retrainer_promotions_total", model="fraud") == 1
    assert value(registry, "stream_mlops_retrainer_retirements_total", model="demand") == 1
    assert value(registry, "stream_mlops_retrainer_sessions_open") == 0


def test_notifier_counters_are_read_at_the_scrape() -> None:
    stats = NotifierStats()
    registry = CollectorRegistry()
    registry.register(NotifierCollector(stats))
    assert value(registry, "stream_mlops_notifier_deliveries_total") == 0
    stats.delivered, stats.retries, stats.dead_letters, stats.in_flight = 4, 2, 1, 3
    assert value(registry, "stream_mlops_notifier_deliveries_total") == 4
    assert value(registry, "stream_mlops_notifier_retries_total") == 2
    assert value(registry, "stream_mlops_notifier_dead_letters_total") == 1
    assert value(registry, "stream_mlops_notifier_in_flight") == 3
