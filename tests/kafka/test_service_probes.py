"""``stream-mlops retrainer`` and ``stream-mlops notify`` serve metrics and probes (real broker).

The engine's metrics are tested in depth in ``test_metrics_broker.py`` (both
backends); these check the other two services' wiring, as child processes
started with ``--metrics-port 0``: the address is loopback, ``/readyz`` turns
200 once they own their partitions, ``/healthz`` is 200 while they poll, and
``/metrics`` carries their own metrics.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from stream_mlops.ops.metrics import package_version
from stream_mlops.service_process import ServiceProcess
from tests.kafka.cluster import temporary_topics, write_transactions
from tests.kafka.engine_process import REPO, EngineProcess
from tests.kafka.streams import Deployment, create_deployment, delete_deployment
from tests.kafka.test_metrics_broker import get, sample, scrape, wait_for
from tests.kafka.test_notifier import config, write_toml
from tests.ops.notices import alert
from tests.ops.webhook_server import WebhookServer

pytestmark = pytest.mark.kafka


@pytest.fixture
def deployment(kafka_bootstrap: str) -> Iterator[Deployment]:
    dep = create_deployment(kafka_bootstrap, 2)
    try:
        yield dep
    finally:
        delete_deployment(dep)


def served_url(service: ServiceProcess) -> str:
    url = str(service.wait_for_log("metrics.started")["url"])
    assert urlsplit(url).hostname == "127.0.0.1"
    return url


def test_the_retrainer_serves_its_metrics_and_probes(
    deployment: Deployment, tmp_path: Path
) -> None:
    group = f"rt-{uuid.uuid4().hex[:10]}"
    retrainer = "\n".join(
        [
            "[retrainer]",
            f'group_id = "{group}"',
            f'transactional_id_prefix = "{group}"',
            f'registry = "{tmp_path / "registry"}"',
        ]
    )
    path = deployment.write_config(tmp_path / "retrainer.toml", extra=retrainer)
    log = tmp_path / "retrainer.log"
    with EngineProcess(
        path, "r1", log, command="retrainer", extra_args=["--metrics-port", "0"]
    ) as service:
        base = served_url(service)
        wait_for("/readyz 200", lambda: get(base + "readyz")[0] == 200)
        assert get(base + "healthz")[0] == 200
        samples = scrape(base)
        assert sample(
            samples, "stream_mlops_service_info", service="retrainer", version=package_version()
        )
        assert sample(samples, "stream_mlops_retrainer_sessions_open") == 0
        assert sample(samples, "stream_mlops_partitions_assigned", service="retrainer") == 2
        assert sample(samples, "stream_mlops_ready", service="retrainer") == 1
        assert service.terminate() == 0


def test_the_notifier_counts_its_deliveries_and_serves_its_probes(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with (
        temporary_topics(
            kafka_bootstrap, "test-nm-alerts", "test-nm-updates", "test-nm-dead", partitions=1
        ) as (alerts, updates, dead),
        WebhookServer() as hook,
    ):
        topics = {"drift_alerts": alerts, "model_updates": updates, "dead_letters": dead}
        write_transactions(
            kafka_bootstrap, alerts, [(alert("a1"), True), (alert("a2"), True)], key=b"fraud"
        )
        data = config(kafka_bootstrap, "kafka-python", topics, webhooks=[{"url_env": "HOOK"}])
        path = write_toml(tmp_path / "n.toml", data)
        args = ["notify", "--config", str(path), "--metrics-port", "0"]
        with ServiceProcess(
            "notify", args, tmp_path / "n.log", cwd=REPO, env={"HOOK": hook.url()}
        ) as service:
            base = served_url(service)
            wait_for("/readyz 200", lambda: get(base + "readyz")[0] == 200)
            hook.wait_for(lambda got: len(got) == 2, timeout_s=60)

            def settled() -> bool:
                samples = scrape(base)
                return (
                    sample(samples, "stream_mlops_notifier_deliveries_total") == 2
                    and sample(samples, "stream_mlops_notifier_in_flight") == 0
                )

            wait_for("deliveries counted", settled)
            samples = scrape(base)
            assert sample(samples, "stream_mlops_notifier_records_total") == 2
            assert sample(samples, "stream_mlops_notifier_dead_letters_total") == 0
            assert sample(samples, "stream_mlops_ready", service="notifier") == 1
            assert get(base + "healthz")[0] == 200
            assert service.terminate() == 0
