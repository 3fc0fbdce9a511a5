"""Generated event streams for detection tests: seeded, so every run is the same."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator

from stream_mlops.events import InputEvent, OutcomeEvent, PredictionEvent

T0 = 1_800_000_000.0


def classifier(
    n: int,
    *,
    error_rate: Callable[[int], float] = lambda i: 0.05,
    feature_means: Callable[[int], list[float]] = lambda i: [0.0, 0.0],
    outcomes: bool = True,
    outcome_lag: int = 50,
    seed: int = 0,
    model_id: str = "fraud",
) -> Iterator[InputEvent]:
    """``n`` predictions, one per second; each outcome ``outcome_lag`` events later.

    Feature ``f<k>`` is N(mean_k(i), 1); the score is uniform; the outcome is
    wrong with probability ``error_rate(i)``.
    """
    rng = random.Random(seed)
    waiting: deque[OutcomeEvent] = deque()
    for i in range(n):
        label = rng.random() < 0.5
        event_id = f"e{i}"
        features = {f"f{k}": rng.gauss(mean, 1.0) for k, mean in enumerate(feature_means(i))}
        features["merchant"] = "grocery"
        yield PredictionEvent(
            event_id=event_id,
            model_id=model_id,
            model_version="v1",
            ts=T0 + i,
            features=features,
            prediction=int(label),
            score=rng.random(),
        )
        if outcomes:
            wrong = rng.random() < error_rate(i)
            waiting.append(
                OutcomeEvent(event_id=event_id, ts=T0 + i + 0.5, actual=int(label != wrong))
            )
            if len(waiting) > outcome_lag:
                yield waiting.popleft()
    yield from waiting


def kind_offsets(events: list[InputEvent]) -> list[int]:
    """Each event's offset on its topic: predictions in one, outcomes in another."""
    counters = {"prediction": 0, "outcome": 0}
    offsets = []
    for e in events:
        offsets.append(counters[e.type])
        counters[e.type] += 1
    return offsets
