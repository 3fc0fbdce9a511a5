"""A 5,000-model engine snapshot through a real broker, on both clients.

The state topic is created with the cluster's defaults (a record of at most
1 MiB): the snapshot, about 10 MB, only fits as chunks. It is committed by the
runtime's own ``Checkpoint`` in one transaction, read back by
``latest_snapshot`` as a restarting engine would, and restored.
"""

from __future__ import annotations

import functools
import uuid

import pytest
import structlog

from benchmarks.snapshot_size import build, settings_for
from stream_mlops.config import KafkaSettings
from stream_mlops.engine import Engine
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.checkpoint import Checkpoint
from stream_mlops.kafka.restore import latest_snapshot
from stream_mlops.kafka.state import CHUNK_MAGIC, DEFAULT_CHUNK_BYTES, TaskSnapshot
from stream_mlops.kafka.transport import TopicPartition
from tests.kafka.streams import Deployment

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# One partition: the state of one task (the shared `deployment` fixture reads it).
PARTITIONS = 1

MODELS = 5_000


@functools.cache
def large_state() -> bytes:
    """An engine of 5,000 models (20 features each, 3 events each), snapshotted once."""
    return build(MODELS, 3).snapshot()


def test_5000_models_are_allowed_by_the_settings_the_state_is_built_with() -> None:
    assert settings_for(MODELS).limits.max_models_per_task == MODELS


def test_a_snapshot_of_5000_models_is_committed_in_chunks_and_restored(
    deployment: Deployment,
) -> None:
    state = large_state()
    assert len(state) > 8 * DEFAULT_CHUNK_BYTES, "larger than any default record limit"
    transport = open_transport(
        KafkaSettings(bootstrap_servers=deployment.bootstrap, client=deployment.client),
        client_id="test-large-state",
    )
    state_topic = deployment.topics["state"]
    producer = transport.transactional_producer(f"large-{uuid.uuid4().hex[:8]}")
    try:
        checkpoint = Checkpoint(
            producer,
            dead_letter_topic=deployment.topics["dead_letters"],
            state_topic=state_topic,
            state_partition=lambda p: 0,
            owner="engine",
            transactional_id="large",
            clock=lambda: 0.0,
            log=structlog.get_logger("test"),
        )
        checkpoint.begin()
        offsets = {deployment.topics["predictions"]: 15_000, deployment.topics["outcomes"]: 15_000}
        snap = TaskSnapshot(deployment.group_id, 0, offsets, state)
        report = checkpoint.commit([snap], {}, None, {})
        assert report.outcome == "committed", report.reason
    finally:
        producer.close()

    reader = transport.partition_reader()
    state_tp = TopicPartition(state_topic, 0)
    try:
        restored = latest_snapshot(reader, state_tp, deployment.group_id, 0)
        end = reader.end_offset(state_tp)
        records = [r.value or b"" for r in reader.read(state_tp, 0, end)]
    finally:
        reader.close()
    assert restored == snap

    chunks = [r for r in records if r.startswith(CHUNK_MAGIC)]
    assert len(records) == len(chunks) + 1 == -(-len(state) // DEFAULT_CHUNK_BYTES)
    assert max(map(len, records)) < DEFAULT_CHUNK_BYTES + 1_000

    if deployment.client == "kafka-python":  # the engine's half does not depend on the client
        engine = Engine.restore(settings_for(MODELS), restored.engine_state, partition=0)
        assert engine.snapshot() == state
