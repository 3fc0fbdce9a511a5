"""Every event the engine publishes validates against its own schema.

The engine's outputs leave as JSON (``events.encode``); a consumer reads them
back with the same pydantic models. Extreme inputs must not make the engine
write what it would itself refuse: features near +-1e308 once drove the
reference statistics to NaN, and the alert went out with
``"reference_mean": null``.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_mlops.config import Settings, parse_settings
from stream_mlops.engine import Engine, Output
from stream_mlops.events import DriftAlert, EventError, decode_input, encode
from stream_mlops.signals import LARGEST_VALUE

T0 = 1_800_000_000.0

# Detectors that fire within a few values, so that short generated streams give
# alerts (with stats, shifts and retrain requests) to check.
_QUICK = [{"name": "page_hinkley", "warmup": 2, "threshold": 0.5, "min_instances": 1}]
QUICK_SETTINGS = parse_settings(
    {
        "join": {"ttl_seconds": 60, "max_pending": 40},
        "defaults": {
            "min_observations": 0,
            "cooldown_observations": 0,
            "reference_observations": 2,
            "recent_span": 2,
            "false_alarm_budget": None,
            "retrain_on": ["error", "score", "feature:*"],
            "retrain_interval_seconds": 0,
            "detectors": {
                "error": _QUICK,
                "estimated_error": _QUICK,
                "score": _QUICK,
                "prediction": _QUICK,
                "feature:*": _QUICK,
            },
        },
    }
)


def assert_round_trips(output: Output) -> None:
    """Encoded, read back by its own model, and equal to what went out."""
    again = type(output).model_validate_json(encode(output))
    assert again == output


def run(settings: Settings, docs: list[dict[str, Any]]) -> list[Output]:
    engine = Engine(settings)
    outputs: list[Output] = []
    for doc in docs:
        try:
            event = decode_input(orjson.dumps(doc))
        except EventError:
            continue  # a dead letter; the engine never sees it
        outputs += engine.process(event)
    for output in outputs:
        assert_round_trips(output)
    return outputs


def test_features_near_the_largest_float_give_alerts_that_validate() -> None:
    docs: list[dict[str, Any]] = []
    for i in range(400):
        # Alternating +-1e308 then a jump to the largest float: every statistic
        # of "amount" (its mean, spread and the recent mean) overflowed before.
        value = (1e308 if i % 2 else -1e308) if i < 200 else 1.7976931348623157e308
        docs.append(
            {
                "type": "prediction",
                "event_id": f"e{i}",
                "model_id": "fraud",
                "model_version": "v1",
                "ts": T0 + i,
                "features": {"amount": value},
                "prediction": 0,
            }
        )
    engine = Engine(QUICK_SETTINGS)
    outputs = run(QUICK_SETTINGS, docs)
    alerts = [o for o in outputs if isinstance(o, DriftAlert)]
    assert any(a.signal == "feature:amount" for a in alerts)
    for alert in alerts:
        for shift in alert.stats.shifts:
            assert math.isfinite(shift.reference_mean)
            assert math.isfinite(shift.recent_mean)
            assert abs(shift.recent_mean) <= LARGEST_VALUE
    for doc in docs:
        engine.process(decode_input(orjson.dumps(doc)))
    assert engine.stats.clamped_values == 400


# -- the property ----------------------------------------------------------------

_EXTREMES = [
    1.7976931348623157e308,
    -1.7976931348623157e308,
    1e308,
    -1e308,
    1e200,
    -1e154,
    5e-324,
    -5e-324,
    1e-308,
    0.0,
    -0.0,
]
numbers = st.one_of(
    st.sampled_from(_EXTREMES),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-10.0, 10.0),
    # What orjson reads as an integer (beyond, it reads a float).
    st.integers(-(2**63), 2**64 - 1),
)
feature_values = st.one_of(numbers, st.booleans(), st.sampled_from(["x", "y", "z"]), st.none())
labels = st.one_of(numbers, st.booleans(), st.sampled_from(["cat", "dog"]), st.sampled_from([0, 1]))
event_ids = st.integers(0, 150).map(lambda n: f"e{n}")  # duplicates, outcomes before predictions
# Out of order: up to two TTLs apart, so that some entries expire and some join.
times = st.floats(0.0, 120.0).map(lambda dt: T0 + dt)
predictions = st.fixed_dictionaries(
    {
        "type": st.just("prediction"),
        "event_id": event_ids,
        # Mostly one model version, so that its detectors see enough values to fire.
        "model_id": st.sampled_from(["fraud", "fraud", "fraud", "demand"]),
        "model_version": st.sampled_from(["v1", "v1", "v1", "v2"]),
        "ts": times,
        "features": st.dictionaries(st.sampled_from(["a", "b", "c"]), feature_values, max_size=3),
        "prediction": labels,
        "score": st.one_of(st.none(), st.floats(0.0, 1.0), st.sampled_from([0, 1])),
    }
)
outcomes = st.fixed_dictionaries(
    {"type": st.just("outcome"), "event_id": event_ids, "ts": times, "actual": labels}
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(predictions, outcomes), min_size=50, max_size=300))
def test_every_output_of_generated_streams_validates_against_its_own_model(
    docs: list[dict[str, Any]],
) -> None:
    run(QUICK_SETTINGS, docs)
