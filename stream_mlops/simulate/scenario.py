"""Drift scenarios and label delays shared by the example systems.

A scenario says, for each event index, how likely the event is to come from
the *post-drift* world (``post_drift_weight``); the simulators draw from the
new concept (and, with ``covariate``, the new feature distribution) with that
probability. Indices, not timestamps, so a scenario reads the same whatever
the event rate.

>>> abrupt = DriftScenario("abrupt", at=100)
>>> abrupt.post_drift_weight(99), abrupt.post_drift_weight(100)
(0.0, 1.0)
>>> gradual = DriftScenario("gradual", at=100, span=50)
>>> [gradual.post_drift_weight(i) for i in (100, 125, 150)]
[0.0, 0.5, 1.0]
>>> recurring = DriftScenario("recurring", at=100, span=10)
>>> [recurring.post_drift_weight(i) for i in (105, 115, 125)]
[1.0, 0.0, 1.0]
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal, get_args

DriftKind = Literal["none", "abrupt", "gradual", "recurring"]
DRIFT_KINDS: tuple[str, ...] = get_args(DriftKind)

DelayDistribution = Literal["exponential", "fixed", "uniform"]
DELAY_DISTRIBUTIONS: tuple[str, ...] = get_args(DelayDistribution)


@dataclass(frozen=True, slots=True)
class DriftScenario:
    """When and how the world changes, in event indices.

    * ``abrupt``: from ``at`` on, every event is post-drift.
    * ``gradual``: the post-drift probability ramps linearly from 0 at ``at``
      to 1 at ``at + span``.
    * ``recurring``: from ``at`` on, ``span`` events post-drift, ``span``
      events pre-drift, and so on (a seasonal fraud ring, a recurring promo).

    ``concept`` changes the feature-label relation; ``covariate`` changes the
    feature distribution. Either or both.
    """

    kind: DriftKind = "none"
    at: int = 0
    span: int = 1000
    concept: bool = True
    covariate: bool = False

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(DRIFT_KINDS)}, not {self.kind!r}")
        if self.at < 0:
            raise ValueError(f"at must be >= 0, not {self.at}")
        if self.span < 1:
            raise ValueError(f"span must be >= 1, not {self.span}")
        if self.kind != "none" and not (self.concept or self.covariate):
            raise ValueError("a drift must change the concept, the covariates, or both")

    def post_drift_weight(self, index: int) -> float:
        """Probability that event ``index`` comes from the post-drift world."""
        if self.kind == "none" or index < self.at:
            return 0.0
        if self.kind == "abrupt":
            return 1.0
        if self.kind == "gradual":
            return min(1.0, (index - self.at) / self.span)
        # recurring: even periods after `at` are post-drift
        return 1.0 if ((index - self.at) // self.span) % 2 == 0 else 0.0

    def describe(self) -> str:
        """One line for logs and reports.

        >>> DriftScenario("gradual", at=5000, span=2000, covariate=True).describe()
        'gradual drift (concept+covariate) from event 5000 over 2000 events'
        """
        if self.kind == "none":
            return "no drift"
        what = "+".join(
            n for n, on in (("concept", self.concept), ("covariate", self.covariate)) if on
        )
        if self.kind == "abrupt":
            return f"abrupt drift ({what}) at event {self.at}"
        if self.kind == "gradual":
            return f"gradual drift ({what}) from event {self.at} over {self.span} events"
        return (
            f"recurring drift ({what}) from event {self.at}, alternating every {self.span} events"
        )


@dataclass(frozen=True, slots=True)
class LabelDelay:
    """How long after a prediction its outcome is published, in event-time seconds.

    ``missing_fraction`` of outcomes never arrive (the disputed charge nobody
    followed up, the store that stopped reporting).

    >>> delay = LabelDelay("exponential", mean_s=30.0, missing_fraction=0.1)
    >>> rng = random.Random(7)
    >>> draws = [delay.sample(rng) for _ in range(10_000)]
    >>> round(sum(d is None for d in draws) / len(draws), 2)
    0.1
    >>> arrived = [d for d in draws if d is not None]
    >>> 28 < sum(arrived) / len(arrived) < 32
    True
    """

    distribution: DelayDistribution = "exponential"
    mean_s: float = 10.0
    missing_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.distribution not in DELAY_DISTRIBUTIONS:
            raise ValueError(
                f"distribution must be one of {', '.join(DELAY_DISTRIBUTIONS)}, "
                f"not {self.distribution!r}"
            )
        if not (self.mean_s >= 0 and math.isfinite(self.mean_s)):
            raise ValueError(f"mean_s must be a finite number >= 0, not {self.mean_s}")
        if not 0.0 <= self.missing_fraction <= 1.0:
            raise ValueError(f"missing_fraction must be in [0, 1], not {self.missing_fraction}")

    def sample(self, rng: random.Random) -> float | None:
        """A delay in seconds, or None for an outcome that never arrives.

        Always draws the same number of values from ``rng``, so the delays of
        later events do not depend on which earlier outcomes went missing.
        """
        missing = rng.random() < self.missing_fraction
        u = rng.random()
        if missing:
            return None
        if self.distribution == "fixed" or self.mean_s == 0:
            return self.mean_s
        if self.distribution == "uniform":
            return 2 * self.mean_s * u
        return -self.mean_s * math.log1p(-u)
