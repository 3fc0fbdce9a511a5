"""Detections pinned: every speed-up of the detectors must leave them exactly as they were.

A seeded stream whose label-free signals change half-way (a feature's mean, a
feature's spread, a small count's frequencies, a flag's rate, a categorical
feature's frequencies, a feature that gets stuck, the score) and whose error
rate rises, through the engine with the default configuration and with
``rebase_after_alert = false`` (the CUSUMs restart against a kept reference).
The alerts are pinned field by field, and every signal track's state at the end
(each detector's statistics, to the last bit of every float) by its SHA-256.

The figures were recorded before the label-free hot paths were rewritten for
speed (issue 18); they change only with a deliberate change of what the
detectors compute, and then together with that change.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

import orjson
import pytest

from stream_mlops.config import Settings, parse_settings
from stream_mlops.engine import Engine
from stream_mlops.events import DriftAlert, InputEvent, OutcomeEvent, PredictionEvent

T0 = 1_800_000_000.0
PREDICTIONS = 6000


def drifting(n: int, seed: int) -> Iterator[InputEvent]:
    """``n`` predictions, one a second, changing at ``n // 2``; outcomes 40 events later."""
    rng = random.Random(seed)
    waiting: list[OutcomeEvent] = []
    for i in range(n):
        late = i >= n // 2
        label = rng.random() < 0.3
        features: dict[str, float | int | bool | str] = {
            "mean": rng.gauss(0.5 if late else 0.0, 1.0),
            "wide": rng.gauss(0.0, 2.0 if late else 1.0),
            "heavy": rng.paretovariate(1.5),
            "count": rng.choice((0, 1, 2, 3, 3, 3) if late else (0, 1, 2, 3)),
            "flag": rng.random() < (0.2 if late else 0.1),
            "city": rng.choice(("a", "b", "c", "c") if late else ("a", "b", "c")),
            "stuck": 1.0 if late and i % 3 else rng.random(),
        }
        score = min(1.0, max(0.0, rng.random() + (0.1 if late else 0.0)))
        yield PredictionEvent(
            event_id=f"e{i}",
            model_id="m",
            model_version="v1",
            ts=T0 + i,
            features=features,
            prediction=int(label),
            score=round(score, 6),
        )
        wrong = rng.random() < (0.15 if late else 0.05)
        waiting.append(OutcomeEvent(event_id=f"e{i}", ts=T0 + i + 0.5, actual=int(label != wrong)))
        if len(waiting) > 40:
            yield waiting.pop(0)
    yield from waiting


def run(settings: Settings) -> tuple[list[tuple[object, ...]], str]:
    engine = Engine(settings, labeled_events=False)
    alerts = []
    for event in drifting(PREDICTIONS, seed=3):
        for output in engine.process(event):
            if isinstance(output, DriftAlert):
                stats = output.stats
                alerts.append(
                    (
                        output.trigger_event_id,
                        output.signal,
                        output.detector,
                        stats.window_after,
                        None if stats.mean_before is None else round(stats.mean_before, 9),
                        None if stats.mean_after is None else round(stats.mean_after, 9),
                    )
                )
    digest = hashlib.sha256()
    for state in engine._models.values():
        for track in state.tracks():
            digest.update(orjson.dumps(track.state()))
    return alerts, digest.hexdigest()


SETTINGS = {
    "defaults": Settings(),
    "kept reference": parse_settings({"defaults": {"rebase_after_alert": False}}),
}


# (trigger event, signal, detector, window_after, mean_before, mean_after) of each
# alert, then the SHA-256 of the tracks' states at the end.
PINNED: dict[str, tuple[list[tuple[object, ...]], str]] = {
    "defaults": (
        [
            ("e3008", "feature:stuck", "glr", 8, 0.503127308, 0.946106122),
            ("e3070", "feature:wide", "glr", 68, 0.019818939, -0.269556737),
            ("e3140", "score", "glr", 131, 0.489250041, 0.596272863),
            ("e3164", "feature:mean", "glr", 166, -0.050473692, 0.497570432),
            ("e3249", "feature:count", "distribution", 274, 1.521169355, 1.861313869),
            ("e3359", "error", "glr", 298, 0.054866101, 0.157718121),
            ("e3499", "feature:city", "distribution", 500, 0.0, 0.0),
            ("e3610", "feature:flag", "glr", 560, 0.098000975, 0.2),
            ("e3703", "miss_rate", "glr", 259, 0.118018967, 0.285714286),
            ("e5660", "false_positive_rate", "glr", 1590, 0.02460956, 0.064779874),
        ],
        "48aa41166164699c36dcfa79ee463c33a1971705937db0912582f39f0e04018b",
    ),
    "kept reference": (
        [
            ("e3008", "feature:stuck", "glr", 8, 0.503127308, 0.946106122),
            ("e3070", "feature:wide", "glr", 68, 0.019818939, -0.269556737),
            ("e3140", "score", "glr", 131, 0.489250041, 0.596272863),
            ("e3164", "feature:mean", "glr", 166, -0.050473692, 0.497570432),
            ("e3249", "feature:count", "distribution", 274, 1.521169355, 1.861313869),
            ("e3359", "error", "glr", 298, 0.054866101, 0.157718121),
            ("e3499", "feature:city", "distribution", 500, 0.0, 0.0),
            ("e3610", "feature:flag", "glr", 560, 0.098000975, 0.2),
            ("e3703", "miss_rate", "glr", 259, 0.118018967, 0.285714286),
            ("e4013", "feature:stuck", "glr", 10, 0.503286637, 0.787021213),
            ("e4073", "feature:wide", "glr", 53, 0.020139376, 0.172015307),
            ("e4193", "score", "glr", 142, 0.490082818, 0.602089838),
            ("e4249", "feature:count", "distribution", 1274, 1.521169355, 1.953689168),
            ("e4263", "feature:mean", "glr", 265, -0.050027541, 0.378788606),
            ("e4499", "feature:city", "distribution", 250, 0.0, 0.0),
            ("e4466", "error", "glr", 305, 0.0575, 0.154098361),
            ("e4637", "feature:flag", "glr", 448, 0.0975, 0.209821429),
            ("e5023", "feature:stuck", "glr", 10, 0.503286637, 0.777740993),
            ("e5122", "feature:wide", "glr", 47, 0.020139376, 0.153783658),
            ("e5249", "score", "distribution", 2242, 0.489798164, 0.591716462),
            ("e5249", "feature:count", "distribution", 2274, 1.521169355, 1.963060686),
            ("e5381", "feature:mean", "glr", 143, -0.050027541, 0.517900803),
            ("e5499", "feature:city", "distribution", 250, 0.0, 0.0),
            ("e5646", "error", "glr", 338, 0.0575, 0.150887574),
            ("e5660", "false_positive_rate", "glr", 1590, 0.02460956, 0.064779874),
            ("e5909", "feature:flag", "glr", 290, 0.0975, 0.237931034),
        ],
        "894c129a3bebdcea6b5e37e108e34263379dc1c3fc8aa18c1a5433fe19ecb7a7",
    ),
}


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_detections_and_detector_states_are_as_pinned(name: str) -> None:
    alerts, digest = run(SETTINGS[name])
    expected_alerts, expected_digest = PINNED[name]
    assert alerts == expected_alerts
    assert digest == expected_digest, (
        "a detector's state differs: some float was computed otherwise"
    )
