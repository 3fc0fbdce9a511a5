"""One contract over every detector: repr, state as plain data, quiet on constant,
fires on a step."""

from __future__ import annotations

import random

import orjson
import pytest

from stream_mlops import detectors
from stream_mlops.detectors import Detector, ParamError


def step(binary: bool, n: int = 6000, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    if binary:
        return [float(rng.random() < (0.05 if i < n // 2 else 0.5)) for i in range(n)]
    return [rng.gauss(0.0 if i < n // 2 else 3.0, 1.0) for i in range(n)]


@pytest.mark.parametrize("name", detectors.known_names())
def test_detector_contract(name: str) -> None:
    detector = detectors.build(name, {})
    binary = detectors.is_binary(name)
    assert detector.name == name
    assert name in repr(detector) or type(detector).__name__ in repr(detector)
    constant = [0.0 if binary else 5.0] * 3000
    assert [d for x in constant if (d := detector.update(x)) and d.severity == "drift"] == []
    assert detector.observations == 3000
    values = step(binary)
    fresh = detectors.build(name, {})
    fired = [i for i, x in enumerate(values) if (d := fresh.update(x)) and d.severity == "drift"]
    assert any(i >= len(values) // 2 for i in fired), fired
    # Rebuilt from its parameters and its state as JSON, a detector continues
    # exactly like the original (checkpoints); tests/test_snapshot.py has more cuts.
    half = detectors.build(name, {})
    for x in values[:3100]:
        half.update(x)
    copy: Detector = detectors.build(name, half.params())
    copy.load_state(orjson.loads(orjson.dumps(half.state())))
    assert [half.update(x) for x in values[3100:]] == [copy.update(x) for x in values[3100:]]


def test_page_hinkley_is_scale_free() -> None:
    rng = random.Random(5)
    noise = [rng.gauss(0.0, 1.0) for _ in range(50_000)]
    for scale in (1e-6, 1.0, 1e6):
        ph = detectors.build("page_hinkley", {})
        assert not any(ph.update(100 + scale * x) for x in noise)


def test_adwin_warning_delta_gives_warnings_before_drift() -> None:
    detector = detectors.build("adwin", {"warning_delta": 0.05})
    severities = [d.severity for x in step(False) if (d := detector.update(x))]
    assert "warning" in severities and "drift" in severities
    assert severities.index("warning") < severities.index("drift")


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("adwin", {"delta": 0}, "delta"),
        ("adwin", {"clock": 1.5}, "clock"),
        ("adwin", {"surprise": 1}, "surprise"),
        ("adwin", {"max_buckets": 1}, "max_buckets"),
        ("page_hinkley", {"threshold": -1}, "threshold"),
        ("page_hinkley", {"mode": "sideways"}, "mode"),
        ("kswin", {"window_size": "big"}, "window_size"),
        ("nonsense", {}, "name"),
    ],
)
def test_bad_parameters_name_the_field(name: str, params: dict[str, object], field: str) -> None:
    with pytest.raises(ParamError) as info:
        detectors.build(name, params)
    assert info.value.field == field


def test_adwin_adapter_detects_exactly_where_river_adwin_does() -> None:
    from river.drift import ADWIN

    rng = random.Random(11)
    values = [rng.gauss((i // 3000) % 2, 1.0) for i in range(30_000)]
    river_adwin = ADWIN(delta=detectors.AdwinDetector().delta)
    expected = []
    for i, x in enumerate(values):
        river_adwin.update(x)
        if river_adwin.drift_detected:
            expected.append((i, river_adwin.width))
    adapter = detectors.AdwinDetector()
    found = [(i, d.window_after) for i, x in enumerate(values) if (d := adapter.update(x))]
    assert len(expected) >= 5
    assert found == expected


def test_adwin_with_the_fewest_buckets_allowed_survives_drifts() -> None:
    # One bucket per level made river's window panic after a cut (hence >= 2).
    rng = random.Random(1)
    detector = detectors.build("adwin", {"max_buckets": 2, "clock": 1})
    fired = [d for i in range(20_000) if (d := detector.update(rng.gauss((i // 5000) % 2, 1.0)))]
    assert len(fired) >= 3
