"""One retrain, from request to decision: the challenger against the champion.

A ``RetrainSession`` is fed the labeled events of its model one at a time, in
the order they were consumed. Each admitted event is predicted by both models
(the champion frozen, the challenger before it learns), both losses are kept,
then the challenger learns it. At the policy's looks the ``PromotionTest``
decides: promote (with the new artifact and everything the registry records),
retire at the bound, or keep running. The session has no clock, no randomness
and no I/O: the same request, parent bytes and events give the same decision
and the same artifact bytes, which is what makes a restarted retrainer land on
the version it registered before (the registry's register is idempotent) and
what ``reproduce`` checks.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib.metadata import version as installed_version
from typing import Literal

from pydantic import JsonValue

from stream_mlops.registry.records import TrainingWindow
from stream_mlops.registry.registry import content_hash
from stream_mlops.retrain.challenger import (
    PICKLE_PROTOCOL,
    Challenger,
    ChampionScorer,
    FrozenChampion,
)
from stream_mlops.retrain.inputs import LabeledExample, RetrainOrder
from stream_mlops.retrain.models import ModelSpec, prepare_label
from stream_mlops.retrain.promotion import PromotionPolicy, PromotionTest, Verdict
from stream_mlops.retrain.registry_view import RegistryView
from stream_mlops.retrain.scoring import PrequentialScore
from stream_mlops.retrain.window import WindowRecorder


@dataclass(frozen=True, slots=True)
class Running:
    """No decision yet."""

    learned_events: int
    scored_events: int
    verdict: Verdict | None = None
    """The latest look's verdict, None before the first look."""
    status: Literal["running"] = "running"


@dataclass(frozen=True, slots=True)
class Promoted:
    """The challenger won: everything needed to register it and publish a ModelUpdate."""

    model_id: str
    parent_version: str | None
    champion_version: str
    artifact: bytes = field(repr=False)
    content_hash: str
    training_window: TrainingWindow
    metrics: dict[str, float]
    config: dict[str, JsonValue]
    library_versions: dict[str, str]
    verdict: Verdict
    status: Literal["promoted"] = "promoted"


@dataclass(frozen=True, slots=True)
class Retired:
    """The challenger did not win within the bound; ``reason`` says by how much it missed."""

    model_id: str
    champion_version: str
    reason: str
    verdict: Verdict
    status: Literal["retired"] = "retired"


Decision = Running | Promoted | Retired


def library_versions() -> dict[str, str]:
    """The versions a pickled river model depends on."""
    return {"python": platform.python_version(), "river": installed_version("river")}


class RetrainSession:
    """Drives one challenger for one ``RetrainOrder`` until it is promoted or retired.

    ``parent_artifact`` None starts a fresh model (recorded with no parent);
    otherwise the challenger continues from those bytes, which are the
    ``parent_version``'s artifact. ``champion`` gives the serving model's
    answers (``FrozenChampion`` or ``ServedPrediction``).
    """

    def __init__(
        self,
        order: RetrainOrder,
        *,
        spec: ModelSpec,
        champion: ChampionScorer,
        parent_artifact: bytes | None = None,
        parent_version: str | None = None,
        policy: PromotionPolicy | None = None,
    ) -> None:
        if (parent_artifact is None) != (parent_version is None):
            raise ValueError("parent_artifact and parent_version go together")
        self.order = order
        self.spec = spec
        self.policy = policy if policy is not None else PromotionPolicy()
        self.parent_version = parent_version
        self._champion = champion
        self._challenger = (
            Challenger.fresh(spec)
            if parent_artifact is None
            else Challenger.from_artifact(parent_artifact, spec)
        )
        self._test = PromotionTest(self.policy)
        self._recorder = WindowRecorder(
            order.model_id,
            start_ts=order.window_start_ts,
            start_event_id=order.window_start_event_id,
        )
        self._champion_score = PrequentialScore(spec.task)
        self._challenger_score = PrequentialScore(spec.task)
        self._decision: Decision = Running(learned_events=0, scored_events=0)
        #: the source offset of the first event offered to ``observe``: the
        #: session is rebuilt by offering it every event from there on again
        #: (``stream_mlops.retrain.saved_sessions``)
        self.feed_from: int | None = None

    @classmethod
    def from_registry(
        cls,
        registry: RegistryView,
        order: RetrainOrder,
        *,
        spec: ModelSpec,
        policy: PromotionPolicy | None = None,
        fresh: bool = False,
    ) -> RetrainSession:
        """Challenge the requested version with its own artifact as champion.

        The challenger continues from that artifact, or starts fresh with
        ``fresh=True``. Raises ``VersionNotFoundError`` for an unknown model or
        version (the edge dead-letters the request).
        """
        artifact = registry.artifact(order.model_id, order.model_version)
        return cls(
            order,
            spec=spec,
            champion=FrozenChampion.from_artifact(artifact, spec),
            parent_artifact=None if fresh else artifact,
            parent_version=None if fresh else order.model_version,
            policy=policy,
        )

    @property
    def decision(self) -> Decision:
        return self._decision

    @property
    def finished(self) -> bool:
        return not isinstance(self._decision, Running)

    @property
    def window(self) -> TrainingWindow:
        """What the challenger has learned so far (count, offsets, digest of the event ids)."""
        return self._recorder.window()

    def observe(self, example: LabeledExample) -> Decision:
        """Take one labeled event; returns the decision after it.

        Events of other models, from before the window start, or seen before
        are ignored. After a promotion or retirement nothing more is learned and
        the final decision is returned again. Raises ``RetrainInputError`` for
        an event the task cannot learn from, before changing any state.
        """
        if self.feed_from is None:
            self.feed_from = example.source.offset
        if self.finished or not self._recorder.admits(example):
            return self._decision
        actual = prepare_label(self.spec.task, example.actual)
        scoring = self._recorder.count >= self.policy.warmup_events
        champion_prediction = self._champion.predict(example) if scoring else None
        # Challenger.step validates the features before it learns anything.
        prediction = self._challenger.step(example.features, example.actual)
        self._recorder.record(example)
        if champion_prediction is not None:
            self._champion_score.add(champion_prediction, actual)
            self._challenger_score.add(prediction, actual)
        self._decision = self._decide()
        return self._decision

    def _decide(self) -> Decision:
        scored = self._challenger_score.count
        previous = self._decision
        last_verdict = previous.verdict if isinstance(previous, Running) else None
        if not self.policy.is_look(scored):
            return Running(self._recorder.count, scored, last_verdict)
        verdict = self._test.evaluate(self._champion_score.losses, self._challenger_score.losses)
        if verdict.promote:
            return self._promoted(verdict)
        if scored >= self.policy.max_events:
            return Retired(
                model_id=self.order.model_id,
                champion_version=self.order.model_version,
                reason=(
                    f"no promotion after {scored} scored events: challenger loss "
                    f"{verdict.challenger_loss:.4g} vs champion {verdict.champion_loss:.4g} "
                    f"({verdict.relative_improvement:+.1%}, needed "
                    f"{self.policy.min_relative_improvement:.0%}), sign test p="
                    f"{verdict.p_value:.3g} (needed <= {verdict.alpha_per_look:.3g})"
                ),
                verdict=verdict,
            )
        return Running(self._recorder.count, scored, verdict)

    def _promoted(self, verdict: Verdict) -> Promoted:
        artifact = self._challenger.artifact()
        order = self.order
        config: dict[str, JsonValue] = {
            "model": dict(self.spec.to_config()),
            "policy": dict(self.policy.to_config()),
            "request_id": order.request_id,
            "champion_version": order.model_version,
            "pickle_protocol": PICKLE_PROTOCOL,
        }
        return Promoted(
            model_id=order.model_id,
            parent_version=self.parent_version,
            champion_version=order.model_version,
            artifact=artifact,
            content_hash=content_hash(artifact),
            training_window=self._recorder.window(),
            metrics={**verdict.as_metrics(), "learned_events": float(self._recorder.count)},
            config=config,
            library_versions=library_versions(),
            verdict=verdict,
        )

    def looks(self) -> tuple[Verdict, ...]:
        """The promotion test's verdict at every look so far, oldest first.

        Recomputed from the paired losses the session keeps (a verdict is a
        function of the losses up to its look alone), so a session holds no
        record of its looks that a snapshot would have to carry.
        """
        champion = self._champion_score.losses
        challenger = self._challenger_score.losses
        policy = self.policy
        last = min(len(challenger), policy.max_events)
        return tuple(
            self._test.evaluate(champion[:n], challenger[:n])
            for n in range(policy.min_events, last + 1, policy.check_every)
        )
