"""A full view for the rendering tests: every panel with content, names chosen to break HTML."""

from __future__ import annotations

from stream_mlops.kafka.transport import TopicPartition
from stream_mlops.ui.digest import StreamDigest
from stream_mlops.ui.registry_view import RegistryModel
from stream_mlops.ui.throughput import ConsumerGroup, OffsetHistory, OffsetSample
from stream_mlops.ui.view import OperatorView, PromotionView, VersionView
from tests.ui import events

HOSTILE = '<img src=x onerror="alert(1)">'
NOW = 1_800_000_000.0


def full_view() -> OperatorView:
    digest = StreamDigest()
    for i in range(30):
        digest.add_sample(
            [
                {
                    "model_id": "fraud",
                    "model_version": "v2",
                    "prediction": i % 2,
                    "actual": 0,
                    "score": 0.3,
                    "features": {"amount": float(i), HOSTILE: 1.0},
                }
            ],
            at=NOW - 60 + 2 * i,
        )
    digest.add_record(
        "alert",
        events.alert("a1", version="v2", shifts=((f"feature:{HOSTILE}", 0.4),)),
        seen_ts=NOW - 30,
    )
    digest.add_record("alert", events.alert("a2", signal=f"feature:{HOSTILE}"), seen_ts=NOW - 20)
    digest.add_record("request", events.request(version="v2"), seen_ts=NOW - 10)
    digest.add_record("update", events.update(version="v3", parent="v2"), seen_ts=NOW - 5)
    digest.add_record("dead_letter", events.dead_letter(f"features.{HOSTILE}: bad"), NOW - 1)
    history = OffsetHistory(keep=10)
    tp = TopicPartition("predictions", 0)
    for i in range(5):
        history.add(OffsetSample(NOW - 10 + 2 * i, {tp: 100 * i}, {"g": {tp: 90 * i}}))
    versions = (
        VersionView("v3", "v2", NOW - 5, 500, {"p_value": 1e-6, "relative_improvement": 0.4}),
        VersionView("v2", "v1", NOW - 500, 800, {}),
        VersionView("v1", None, NOW - 900, 0, {}),
    )
    registered = RegistryModel(
        "fraud",
        "v3",
        versions,
        (PromotionView("v1", NOW - 900, "bootstrap"), PromotionView("v3", NOW - 5, HOSTILE)),
        versions,
    )
    return digest.view(
        now=NOW,
        registry=[registered],
        groups=[history.progress(ConsumerGroup("engine", "g", ("predictions",)))],
        notes=[f"topic {HOSTILE} does not exist (yet)"],
        sources={"cluster": "127.0.0.1:9092", "registry": "/srv/registry"},
    )
