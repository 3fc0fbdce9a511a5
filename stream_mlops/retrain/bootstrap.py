"""A model's first version: trained on given labeled examples, registered and promoted.

The retrainer only challenges a champion, so a model needs one before its first
retrain request (otherwise the request is dead-lettered as an unknown model).

>>> import tempfile
>>> from stream_mlops.registry import ModelRegistry
>>> registry = ModelRegistry(tempfile.mkdtemp())
>>> examples = [({"amount": 10.0 * i, "merchant": "grocery"}, i % 2) for i in range(20)]
>>> spec = ModelSpec.for_task("classification")
>>> bootstrap_champion(registry, "fraud", spec, examples, created_ts=0.0).version
'v1'
>>> registry.champion("fraud").version
'v1'
>>> bootstrap_champion(registry, "fraud", spec, examples, created_ts=5.0).version  # a repeat
'v1'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stream_mlops.events import FeatureValue, LabelValue
from stream_mlops.registry.records import ModelVersion
from stream_mlops.registry.registry import ModelRegistry, content_hash
from stream_mlops.retrain.challenger import Challenger
from stream_mlops.retrain.models import ModelSpec
from stream_mlops.retrain.session import library_versions


def bootstrap_champion(
    registry: ModelRegistry,
    model_id: str,
    spec: ModelSpec,
    examples: Iterable[tuple[Mapping[str, FeatureValue], LabelValue]],
    *,
    created_ts: float,
) -> ModelVersion:
    """Train a fresh ``spec`` model on ``(features, actual)`` pairs, register it, promote it.

    The spec goes into the version's config, where the retrainer finds the
    task and learning rate of later challengers. Repeating it with the same
    examples returns the same version. Raises ``ValueError`` when the model
    already has a different champion (bootstrapping must not demote one), and
    ``RetrainInputError`` for an example the task cannot learn.
    """
    model = Challenger.fresh(spec)
    count = 0
    for features, actual in examples:
        model.step(features, actual)
        count += 1
    if count == 0:
        raise ValueError(f"{model_id}: no examples to train a first version on")
    artifact = model.artifact()
    champion = registry.champion(model_id)
    if champion is not None:
        if champion.content_hash == content_hash(artifact) and champion.parent_version is None:
            return champion
        raise ValueError(
            f"{model_id}: already has champion {champion.version}; bootstrap only sets the first"
        )
    version = registry.register(
        model_id,
        artifact,
        created_ts=created_ts,
        config={"model": dict(spec.to_config()), "bootstrap": {"examples": count}},
        library_versions=library_versions(),
        metrics={"learned_events": float(count)},
    )
    registry.promote(model_id, version.version, ts=created_ts, reason="bootstrap")
    return version
