"""When a challenger may replace the champion: a one-sided paired sign test at fixed looks.

The test
    Pair the two models' prequential losses on the same labeled events and
    take the differences ``d = champion_loss - challenger_loss``. Drop ties;
    under the null hypothesis "the challenger is no better" a non-zero ``d`` is
    positive with probability at most 1/2, so the number of positives is at
    most Binomial(n_nonzero, 1/2). The p-value is ``P(X >= positives)``
    (exact). With 0/1 losses the non-zero differences are exactly the
    discordant pairs, so this *is* the exact one-sided McNemar test; with
    absolute errors it is the paired sign test, chosen over a paired t-test
    because regression errors after a drift are heavy-tailed and over Wilcoxon
    because it needs no symmetry assumption. The argument only needs each
    event to be new to both models when they predict it (prequential), not
    independent differences.

The margin
    A significant but tiny gain is not worth a new version: promotion also
    needs the challenger's mean loss to be at least ``min_relative_improvement``
    below the champion's on the same events.

Repeated looks
    Testing after every event would inflate false promotions far above
    ``alpha``. The test runs only at fixed checkpoints (``min_events``, then
    every ``check_every`` scored events up to ``max_events``), each at
    ``alpha / looks`` (Bonferroni): by the union bound the chance of any false
    promotion over all looks stays at most ``alpha``, whatever the dependence
    between looks. A challenger still not promoted at the last look
    (``max_events``) is retired.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy.special import bdtrc


def sign_test_p_value(positives: int, negatives: int) -> float:
    """One-sided exact sign test: P(X >= positives) for X ~ Binomial(positives + negatives, 1/2).

    The binomial upper tail of ``scipy.special``: the p-value of
    ``scipy.stats.binomtest(positives, n, 0.5, alternative="greater")`` without
    the per-call cost of its result object (the false-promotion check in the
    tests runs it tens of thousands of times). No pairs at all is no evidence: p = 1.

    >>> sign_test_p_value(9, 1)           # 9 of 10 discordant pairs favour the challenger
    0.0107421875
    >>> sign_test_p_value(0, 0)
    1.0
    """
    n = positives + negatives
    if n == 0:
        return 1.0
    # bdtrc(k, n, p) = P(X > k), so k = positives - 1 gives P(X >= positives).
    return float(bdtrc(positives - 1, n, 0.5))


@dataclass(frozen=True, slots=True)
class PromotionPolicy:
    """The test's parameters (recorded with every promoted version).

    Defaults: ``alpha`` 0.01 because a false promotion replaces a working
    model in production, which costs more than a late one; ``min_events`` 200
    so the first look already has enough discordant pairs for the exact test to
    reach ``alpha / looks`` on a real concept change (about 25 more wins than
    losses); ``check_every`` 100 and ``max_events`` 2000 give 19 looks, few
    enough that Bonferroni costs little power, and retire a useless challenger
    after a bounded number of labels. ``min_relative_improvement`` 0.05: a
    change of serving model for less than 5% lower loss is not worth it.
    ``warmup_events`` are learned but not scored (a fresh challenger's first
    guesses say nothing about the model it becomes).
    """

    alpha: float = 0.01
    min_events: int = 200
    check_every: int = 100
    max_events: int = 2000
    min_relative_improvement: float = 0.05
    warmup_events: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha: must be in (0, 1), got {self.alpha}")
        if self.min_events < 1:
            raise ValueError(f"min_events: must be at least 1, got {self.min_events}")
        if self.check_every < 1:
            raise ValueError(f"check_every: must be at least 1, got {self.check_every}")
        if self.max_events < self.min_events:
            raise ValueError(
                f"max_events: must be at least min_events ({self.min_events}), "
                f"got {self.max_events}"
            )
        if (self.max_events - self.min_events) % self.check_every:
            raise ValueError(
                "max_events: must be min_events plus a multiple of check_every, so the "
                "last look happens exactly at the bound"
            )
        if not 0 <= self.min_relative_improvement < 1:
            raise ValueError(
                f"min_relative_improvement: must be in [0, 1), got {self.min_relative_improvement}"
            )
        if self.warmup_events < 0:
            raise ValueError(f"warmup_events: must be >= 0, got {self.warmup_events}")

    @property
    def looks(self) -> int:
        """How many times the test runs, at most.

        >>> PromotionPolicy().looks
        19
        """
        return (self.max_events - self.min_events) // self.check_every + 1

    @property
    def alpha_per_look(self) -> float:
        return self.alpha / self.looks

    def is_look(self, scored_events: int) -> bool:
        """Whether the test runs after this many scored events."""
        return (
            self.min_events <= scored_events <= self.max_events
            and (scored_events - self.min_events) % self.check_every == 0
        )

    def to_config(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PromotionPolicy:
        return cls(**config)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one look, with the numbers behind it."""

    events: int
    look: int
    champion_loss: float
    challenger_loss: float
    relative_improvement: float
    challenger_better: int
    champion_better: int
    p_value: float
    alpha_per_look: float
    promote: bool

    def as_metrics(self) -> dict[str, float]:
        """The numbers as registry metrics; ``loss`` is the challenger's own."""
        return {
            "loss": self.challenger_loss,
            "champion_loss": self.champion_loss,
            "relative_improvement": self.relative_improvement,
            "p_value": self.p_value,
            "alpha_per_look": self.alpha_per_look,
            "scored_events": float(self.events),
            "challenger_better": float(self.challenger_better),
            "champion_better": float(self.champion_better),
        }


class PromotionTest:
    """Applies a ``PromotionPolicy`` to paired per-event losses.

    >>> test = PromotionTest(PromotionPolicy(min_events=100, check_every=100, max_events=300))
    >>> champion = [1.0] * 40 + [0.0] * 60      # 40% errors
    >>> challenger = [0.0] * 30 + [1.0] * 10 + [0.0] * 60   # fixes 30 of them
    >>> verdict = test.evaluate(champion, challenger)
    >>> verdict.promote, verdict.challenger_better, verdict.champion_better
    (True, 30, 0)
    """

    def __init__(self, policy: PromotionPolicy) -> None:
        self.policy = policy

    def evaluate(
        self, champion_losses: Sequence[float], challenger_losses: Sequence[float]
    ) -> Verdict:
        """The verdict on all events so far (call it at the policy's looks)."""
        n = len(champion_losses)
        if n != len(challenger_losses):
            raise ValueError("champion and challenger must be scored on the same events")
        if n == 0:
            raise ValueError("no scored events to test")
        better = worse = 0
        for champ, chall in zip(champion_losses, challenger_losses, strict=True):
            if champ > chall:
                better += 1
            elif champ < chall:
                worse += 1
        champion_loss = sum(champion_losses) / n
        challenger_loss = sum(challenger_losses) / n
        relative = (champion_loss - challenger_loss) / champion_loss if champion_loss > 0 else 0.0
        p_value = sign_test_p_value(better, worse)
        policy = self.policy
        look = (
            max(0, (n - policy.min_events) // policy.check_every + 1)
            if n >= policy.min_events
            else 0
        )
        return Verdict(
            events=n,
            look=look,
            champion_loss=champion_loss,
            challenger_loss=challenger_loss,
            relative_improvement=relative,
            challenger_better=better,
            champion_better=worse,
            p_value=p_value,
            alpha_per_look=policy.alpha_per_look,
            promote=(
                n >= policy.min_events
                and p_value <= policy.alpha_per_look
                and relative >= policy.min_relative_improvement
            ),
        )
