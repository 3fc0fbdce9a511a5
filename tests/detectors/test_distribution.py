from __future__ import annotations

import random

import orjson
import pytest

from stream_mlops.detectors import AdwinDetector, DistributionDetector, ParamError
from stream_mlops.detectors.distribution import g_statistic


def _categories(rng: random.Random, probs: list[float]) -> float:
    u = rng.random()
    for code, p in enumerate(probs):
        u -= p
        if u < 0:
            return float(code)
    return float(len(probs) - 1)


def test_category_frequency_shift_is_found_and_stationary_frequencies_are_not() -> None:
    rng = random.Random(3)
    before = [0.4, 0.25, 0.15, 0.12, 0.08]
    after = [0.3, 0.25, 0.15, 0.12, 0.18]
    detector = DistributionDetector(categorical=True)
    fired = [
        i
        for i in range(30_000)
        if detector.update(_categories(rng, before if i < 20_000 else after))
    ]
    assert len(fired) == 1
    assert 20_000 <= fired[0] < 22_000


def test_a_new_category_is_a_change() -> None:
    detector = DistributionDetector(categorical=True)
    for _ in range(3000):
        assert detector.update(0.0) is None
    fired = [i for i in range(1000) if detector.update(1.0 if i % 3 == 0 else 0.0)]
    assert fired and fired[0] < 250


def test_variance_change_with_the_same_mean_is_seen_where_adwin_sees_nothing() -> None:
    rng = random.Random(4)
    values = [rng.gauss(5.0, 1.0 if i < 10_000 else 1.5) for i in range(20_000)]
    distribution = DistributionDetector()
    adwin = AdwinDetector()
    found = [i for i, x in enumerate(values) if distribution.update(x)]
    assert len(found) == 1 and 10_000 <= found[0] < 11_000
    assert [i for i, x in enumerate(values) if adwin.update(x) and i >= 10_000] == []


def test_detection_reports_the_window_and_restarts_the_reference() -> None:
    detector = DistributionDetector(reference=100, windows=[50, 100])
    for i in range(100):
        detector.update(float(i % 10))
    # The values move (and stay): one detection, on the first window, then the
    # post-change values are the new reference and stay quiet.
    detections = [d for i in range(500) if (d := detector.update(100.0 + i % 10))]
    assert len(detections) == 1
    assert detections[0].window_after == 50
    assert detections[0].window_before == 100
    assert detections[0].mean_after == pytest.approx(104.5)


@pytest.mark.parametrize("categorical", [False, True])
def test_detector_rebuilt_from_its_state_continues_identically(categorical: bool) -> None:
    rng = random.Random(5)
    if categorical:
        values = [float(rng.randrange(4 if i < 5000 else 6)) for i in range(8000)]
    else:
        values = [rng.gauss(0.0, 1.0 if i < 5000 else 2.0) for i in range(8000)]
    detector = DistributionDetector(categorical=categorical)
    for x in values[:4100]:
        detector.update(x)
    copy = DistributionDetector(**detector.params())
    copy.load_state(orjson.loads(orjson.dumps(detector.state())))
    rest = values[4100:]
    assert [detector.update(x) for x in rest] == [copy.update(x) for x in rest]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"windows": [250, 600]}, "windows"),
        ({"windows": []}, "windows"),
        ({"reference": 5}, "reference"),
        ({"bins": 1}, "bins"),
        ({"false_alarm_rate": 0.0}, "false_alarm_rate"),
    ],
)
def test_bad_parameters_name_the_field(params: dict[str, object], field: str) -> None:
    with pytest.raises(ParamError) as info:
        DistributionDetector(**params)  # type: ignore[arg-type]
    assert info.value.field == field


def test_g_statistic_grows_with_the_difference_and_the_sample() -> None:
    same = g_statistic({0: 500, 1: 500}, {0: 100, 1: 100})
    small = g_statistic({0: 500, 1: 500}, {0: 60, 1: 40})
    large = g_statistic({0: 500, 1: 500}, {0: 600, 1: 400})
    assert same == pytest.approx(0.0, abs=1e-9)
    assert 0 < small < large
    assert g_statistic({0: 10}, {}) == 0.0
