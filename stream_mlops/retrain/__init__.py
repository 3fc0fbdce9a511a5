"""Retraining core: challengers, prequential scoring, the promotion test, reproduce."""

from stream_mlops.retrain.challenger import (
    Challenger,
    ChampionScorer,
    FrozenChampion,
    ServedPrediction,
)
from stream_mlops.retrain.exceptions import ReproduceError, RetrainError, RetrainInputError
from stream_mlops.retrain.inputs import LabeledExample, RetrainOrder, SourcePosition
from stream_mlops.retrain.models import ModelSpec, build_model
from stream_mlops.retrain.promotion import (
    PromotionPolicy,
    PromotionTest,
    Verdict,
    sign_test_p_value,
)
from stream_mlops.retrain.registration import record_promotion
from stream_mlops.retrain.reproduce import reproduce
from stream_mlops.retrain.scoring import PrequentialScore, event_loss
from stream_mlops.retrain.session import (
    Decision,
    Promoted,
    Retired,
    RetrainSession,
    Running,
)

__all__ = [
    "Challenger",
    "ChampionScorer",
    "Decision",
    "FrozenChampion",
    "LabeledExample",
    "ModelSpec",
    "PrequentialScore",
    "Promoted",
    "PromotionPolicy",
    "PromotionTest",
    "ReproduceError",
    "Retired",
    "RetrainError",
    "RetrainInputError",
    "RetrainOrder",
    "RetrainSession",
    "Running",
    "ServedPrediction",
    "SourcePosition",
    "Verdict",
    "build_model",
    "event_loss",
    "record_promotion",
    "reproduce",
    "sign_test_p_value",
]
