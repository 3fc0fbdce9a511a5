"""The Quix Streams competitor of benchmarks/throughput.py does the job it is timed on.

Runs benchmarks/quix_job.py as a child process on a real broker: every pair is
joined once whichever side arrives first, unmatched predictions are not, and a
step in the error rate comes out as drift alerts on the alerts topic. Skipped
unless an interpreter with quixstreams is at hand (this one, or $QUIX_PYTHON):
it is a benchmark-only dependency.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from benchmarks.throughput import quix_interpreter
from stream_mlops.service_process import ServiceProcess
from tests.kafka.streams import (
    create_deployment,
    delete_deployment,
    fraud_stream,
    produce,
    read_all,
    wait_consumed,
)

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 2
PAIRS = 4000
DRIFT_AT = 2000
# Outcomes of the first events go out before any prediction: the outcome-first path.
EARLY_OUTCOMES = 500
UNMATCHED = 25

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def quix_python() -> str:
    python, why = quix_interpreter(None)
    if python is None:
        pytest.skip(why)
    return python


def test_quix_job_joins_every_pair_once_and_alerts_on_the_error_step(
    kafka_bootstrap: str, quix_python: str, tmp_path: Path
) -> None:
    dep = create_deployment(kafka_bootstrap, PARTITIONS)
    group = f"quix-{dep.group_id}"
    try:
        predictions, outcomes = fraud_stream(
            PAIRS + UNMATCHED, drift_at=DRIFT_AT, error_before=0.02, error_after=0.5, seed=3
        )
        outcomes = outcomes[:PAIRS]
        produce(kafka_bootstrap, dep.topics["outcomes"], outcomes[:EARLY_OUTCOMES], PARTITIONS)
        produce(kafka_bootstrap, dep.topics["predictions"], predictions, PARTITIONS)
        # produce() places event i on partition i % PARTITIONS: keep the outcomes'
        # indices (EARLY_OUTCOMES is even) so each pair shares a partition.
        produce(kafka_bootstrap, dep.topics["outcomes"], outcomes[EARLY_OUTCOMES:], PARTITIONS)
        job = ServiceProcess(
            "the Quix job",
            [
                "--bootstrap",
                kafka_bootstrap,
                "--predictions",
                dep.topics["predictions"],
                "--outcomes",
                dep.topics["outcomes"],
                "--alerts",
                dep.topics["drift_alerts"],
                "--group",
                group,
                "--state-dir",
                str(tmp_path / "state"),
            ],
            tmp_path / "quix.log",
            program=[quix_python, str(REPO / "benchmarks" / "quix_job.py")],
        )
        with job:
            wait_consumed(dataclasses.replace(dep, group_id=group), timeout_s=120)
            alerts = read_all(kafka_bootstrap, dep.topics["drift_alerts"], idle_s=1.0)
            assert job.terminate(timeout=60) == 0, job.log_tail()
            stopped = [entry for entry in job.log_events() if entry["event"] == "quix.stopped"]
    finally:
        delete_deployment(dep)
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        try:
            changelogs = [t for t in admin.list_topics() if group in t]
            if changelogs:
                admin.delete_topics(changelogs)
        finally:
            admin.close()

    assert len(stopped) == 1
    assert stopped[0]["joined"] == PAIRS
    assert stopped[0]["alerts"] == len(alerts)
    # throughput.py stops Quix's clock there (its stock commit comes up to 5 s later).
    assert stopped[0]["last_record_at"] > 0
    assert alerts, "no drift alert after the error rate stepped from 2% to 50%"
    triggers = [int(str(a["trigger_event_id"]).rsplit("-", 1)[1]) for a in alerts]
    assert all(t >= DRIFT_AT for t in triggers), triggers
    assert {(a["signal"], a["detector"], a["model_id"]) for a in alerts} == {
        ("error", "adwin", "fraud")
    }
