"""The Quix Streams competitor of benchmarks/throughput.py does the job it is timed on.

Runs benchmarks/quix_job.py as a child process on a real broker: every pair is
joined once whichever side arrives first, unmatched predictions are not, and a
step in the error rate comes out as drift alerts on the alerts topic. Skipped
unless an interpreter with quixstreams is at hand (this one, or $QUIX_PYTHON):
it is a benchmark-only dependency.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient

from benchmarks.throughput import quix_interpreter
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
    proc: subprocess.Popen[bytes] | None = None
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
        log = tmp_path / "quix.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [
                    quix_python,
                    str(REPO / "benchmarks" / "quix_job.py"),
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
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_consumed(dataclasses.replace(dep, group_id=group), timeout_s=120)
        alerts = read_all(kafka_bootstrap, dep.topics["drift_alerts"], idle_s=1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-4000:]
        stopped = [
            entry
            for line in log.read_bytes().splitlines()
            if line.startswith(b"{") and (entry := orjson.loads(line))["event"] == "quix.stopped"
        ]
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
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
    assert alerts, "no drift alert after the error rate stepped from 2% to 50%"
    triggers = [int(str(a["trigger_event_id"]).rsplit("-", 1)[1]) for a in alerts]
    assert all(t >= DRIFT_AT for t in triggers), triggers
    assert {(a["signal"], a["detector"], a["model_id"]) for a in alerts} == {
        ("error", "adwin", "fraud")
    }
