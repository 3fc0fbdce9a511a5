"""StreamDigest: topic records and samples into the page's view, in bounded memory (no broker)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_mlops.model_task import Task
from stream_mlops.ui.digest import DigestLimits, StreamDigest
from stream_mlops.ui.registry_view import RegistryModel
from stream_mlops.ui.view import ModelView, PromotionView, VersionView
from tests.ui import events


def model_view(digest: StreamDigest, model_id: str = "fraud", **kwargs: object) -> ModelView:
    view = digest.view(now=10_000.0, **kwargs)  # type: ignore[arg-type]
    return next(m for m in view.models if m.model_id == model_id)


def labeled(
    model_id: str = "fraud",
    version: str = "v1",
    prediction: object = 0,
    actual: object = 0,
    score: float | None = 0.2,
    **features: object,
) -> dict[str, object]:
    event: dict[str, object] = {
        "model_id": model_id,
        "model_version": version,
        "prediction": prediction,
        "actual": actual,
        "features": features,
    }
    if score is not None:
        event["score"] = score
    return event


def test_alerts_are_newest_first_and_bounded_whatever_the_stream_length() -> None:
    digest = StreamDigest(DigestLimits(alerts=50))
    for i in range(5000):
        digest.add_record("alert", events.alert(f"a{i}", severity="warning"), seen_ts=float(i))
    view = digest.view(now=6000.0)
    assert view.alerts_total == 5000
    assert [a.alert_id for a in view.alerts] == [f"a{i}" for i in range(4999, 4949, -1)]
    assert len(view.timeline) == 50


def test_signal_state_is_the_worst_alert_of_the_served_version() -> None:
    digest = StreamDigest()
    digest.add_record("alert", events.alert("w", severity="warning"), seen_ts=1.0)
    assert model_view(digest).signals[0].state == "warning"
    digest.add_record("alert", events.alert("d", severity="drift"), seen_ts=2.0)
    # A warning after the drift does not clear it: the model stays drifted.
    digest.add_record("alert", events.alert("w2", severity="warning"), seen_ts=3.0)
    error = model_view(digest).signals[0]
    assert (error.signal, error.state, error.alerts, error.last_alert_seen_ts) == (
        "error",
        "drift",
        3,
        3.0,
    )
    assert digest.view(now=4.0).state == "drift"
    # Once the scoring system serves v2 (fresh detectors), v1's alerts are history.
    digest.add_sample([labeled(version="v2")], at=5.0)
    fraud = model_view(digest)
    assert fraud.serving == "v2"
    assert fraud.state == "ok"
    assert {s.signal: s.state for s in fraud.signals}["error"] == "ok"


def test_an_alerts_shifts_are_ranked_by_distance_and_cut() -> None:
    digest = StreamDigest()
    shifts = tuple((f"feature:f{i}", d) for i, d in enumerate([0.1, 0.5, 0.05, 0.3, 0.2, 0.9, 0.0]))
    digest.add_record("alert", events.alert(shifts=shifts), seen_ts=1.0)
    (alert,) = digest.view(now=2.0).alerts
    assert [s.distance for s in alert.shifts] == [0.9, 0.5, 0.3, 0.2, 0.1]


def test_a_retrain_is_open_until_an_update_from_its_version_is_seen() -> None:
    digest = StreamDigest()
    digest.add_record("request", events.request("r1"), seen_ts=10.0)
    digest.add_record("request", events.request("r2"), seen_ts=11.0)
    (retrain,) = digest.view(now=12.0).retrains
    assert (retrain.outcome, retrain.requests, retrain.first_request_id) == ("open", 2, "r1")
    assert model_view(digest).retraining
    digest.add_record("update", events.update(version="v2", parent="v1"), seen_ts=20.0)
    (retrain,) = digest.view(now=21.0).retrains
    assert (retrain.outcome, retrain.promoted_version, retrain.promoted_seen_ts) == (
        "promoted",
        "v2",
        20.0,
    )
    assert retrain.metrics == {"p_value": 1e-6, "relative_improvement": 0.4}
    assert not model_view(digest).retraining
    # A promotion whose request was never seen (e.g. retention dropped it) is shown too.
    digest.add_record("update", events.update(version="v3", parent="v2"), seen_ts=30.0)
    newest = digest.view(now=31.0).retrains[0]
    assert (newest.model_version, newest.requests, newest.first_seen_ts) == ("v2", 0, None)
    kinds = [m.kind for m in digest.view(now=31.0).timeline]
    assert kinds == ["promotion", "promotion"]


def test_retrains_are_bounded() -> None:
    digest = StreamDigest(DigestLimits(retrains=3))
    for i in range(10):
        digest.add_record("request", events.request(f"r{i}", version=f"v{i + 1}"), seen_ts=i)
    assert [r.model_version for r in digest.view(now=11.0).retrains] == ["v10", "v9", "v8"]


def test_dead_letters_count_by_reason_with_positions_grouped_and_reasons_bounded() -> None:
    digest = StreamDigest(DigestLimits(dead_letter_reasons=3, dead_letters_recent=2))
    for column in (5, 17, 230):
        digest.add_record(
            "dead_letter",
            events.dead_letter(
                f"(event): not JSON (unexpected end of data: line 1 column {column})"
            ),
            seen_ts=float(column),
        )
    digest.add_record(
        "dead_letter", events.dead_letter("score: Input should be less than or equal to 1"), 1.0
    )
    digest.add_record(
        "dead_letter", events.dead_letter("model_id: too long", topic="outcomes"), 2.0
    )
    digest.add_record("dead_letter", events.dead_letter("a fourth reason"), 3.0)
    digest.add_record("dead_letter", events.dead_letter("a fifth reason"), 4.0)
    view = digest.view(now=300.0)
    assert view.dead_letters_total == 7
    counts = {r.reason: r.count for r in view.dead_letter_reasons}
    assert counts == {
        "(event): not JSON (unexpected end of data: line # column #)": 3,
        "score: Input should be less than or equal to 1": 1,
        "model_id: too long": 1,
        "(other reasons)": 2,
    }
    first = view.dead_letter_reasons[0]
    assert first.last_seen_ts == 230.0
    assert first.example.endswith("column 5)")
    assert [d.error for d in view.dead_letters_recent] == ["a fifth reason", "a fourth reason"]


def test_unreadable_records_become_notes_and_are_never_fatal() -> None:
    digest = StreamDigest()
    digest.add_record("alert", b"not json", seen_ts=1.0, where="drift-alerts[0]@7")
    digest.add_record("alert", None, seen_ts=1.0, where="drift-alerts[0]@8")
    digest.add_record("update", b'{"model_id": "fraud"}', seen_ts=1.0, where="model-updates[0]@3")
    view = digest.view(now=2.0)
    assert view.alerts == ()
    assert view.notes == (
        "alert: 2 unreadable records (last: drift-alerts[0]@8 record has no value (tombstone))",
        "update: 1 unreadable record (last: model-updates[0]@3 model_version: Field required)",
    )


def test_fields_a_newer_engine_adds_are_ignored() -> None:
    digest = StreamDigest()
    alert = orjson.loads(events.alert(shifts=(("score", 0.2),)))
    alert["new_top_level"] = 1
    alert["stats"]["new_stat"] = 2
    alert["stats"]["shifts"][0]["new_shift_field"] = 3
    digest.add_record("alert", orjson.dumps(alert), seen_ts=1.0)
    (shown,) = digest.view(now=2.0).alerts
    assert shown.shifts[0].signal == "score"


def test_samples_compute_the_engines_signals() -> None:
    digest = StreamDigest(DigestLimits(events_per_point=1), tasks={"demand": Task.REGRESSION})
    digest.add_sample(
        [
            labeled(prediction=1, actual=0, score=0.9, amount=10.0, card_present=True, city="x"),
            labeled(prediction=0, actual=0, score=0.1, amount=30.0, card_present=False, city="y"),
            labeled("demand", prediction=100.0, actual=90.0, score=None, temp=20),
            labeled("demand", prediction=100.0, actual=130.0, score=None, temp=22),
            {"model_version": "v1", "prediction": 1},  # no model id: ignored
            labeled(prediction=[1], actual=0),  # not an event the engine writes: ignored
        ],
        at=100.0,
    )
    fraud = {s.signal: s.recent for s in model_view(digest).signals}
    assert list(fraud) == [
        "error",
        "estimated_error",
        "score",
        "prediction",
        "feature:amount",
        "feature:card_present",
    ]
    assert fraud["error"][0].value == 0.5 and fraud["error"][0].n == 2
    # A 1 predicted with score 0.9 is wrong with probability 0.1; a 0 with 0.1, 0.1.
    assert fraud["estimated_error"][0].value == pytest.approx(0.1)
    assert fraud["feature:amount"][0].value == 20.0
    assert fraud["feature:card_present"][0].value == 0.5
    demand = {s.signal: s.recent[0].value for s in model_view(digest, "demand").signals}
    # Configured as a regression: the absolute error, and no estimated error.
    assert demand == {"error": 20.0, "prediction": 100.0, "feature:temp": 21.0}


def test_a_quiet_streams_values_wait_for_enough_of_them_to_make_a_point() -> None:
    digest = StreamDigest(DigestLimits(events_per_point=4))
    for t, actual in enumerate([1, 0, 0, 1, 1, 1]):  # one event per refresh
        digest.add_sample([labeled(prediction=0, actual=actual)], at=float(t))
    (point,) = next(s for s in model_view(digest).signals if s.signal == "error").recent
    assert (point.t, point.value, point.n) == (3.0, 0.5, 4)
    digest.add_sample([labeled(prediction=0, actual=0)] * 10, at=10.0)  # a burst: one point
    points = next(s for s in model_view(digest).signals if s.signal == "error").recent
    assert [(p.t, p.n) for p in points] == [(3.0, 4), (10.0, 12)]
    assert points[1].value == pytest.approx(2 / 12)


def test_series_signals_and_models_are_bounded() -> None:
    digest = StreamDigest(
        DigestLimits(points=10, signals_per_model=3, models=2, events_per_point=1)
    )
    for t in range(100):
        digest.add_sample(
            [labeled(f"m{k}", **{f"f{i}": float(i) for i in range(20)}) for k in range(5)],
            at=float(t),
        )
    view = digest.view(now=200.0)
    assert [m.model_id for m in view.models] == ["m0", "m1"]
    signals = view.models[0].signals
    assert [s.signal for s in signals] == ["error", "estimated_error", "score"]
    assert [p.t for p in signals[0].recent] == [float(t) for t in range(90, 100)]


def test_models_come_from_the_registry_alerts_and_samples() -> None:
    digest = StreamDigest()
    digest.add_record("alert", events.alert(model_id="alerted"), seen_ts=1.0)
    digest.add_sample([labeled("sampled")], at=1.0)
    v1 = VersionView("v1", None, 1.0, 0, {})
    registered = RegistryModel(
        "registered", "v1", (v1,), (PromotionView("v1", 1.0, "bootstrap"),), (v1,)
    )
    view = digest.view(now=2.0, registry=[registered])
    assert [m.model_id for m in view.models] == ["alerted", "registered", "sampled"]
    by_id = {m.model_id: m for m in view.models}
    assert by_id["registered"].champion == "v1"
    assert by_id["registered"].lineage == (v1,)
    assert by_id["alerted"].champion is None
    assert by_id["alerted"].state == "drift"


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "model_id": st.sampled_from(["a", "b"]),
                "model_version": st.sampled_from(["v1", "v2"]),
                "prediction": st.one_of(st.integers(0, 1), st.floats(allow_nan=False), st.text()),
                "actual": st.one_of(st.integers(0, 1), st.floats(allow_nan=False), st.none()),
                "score": st.one_of(st.none(), st.floats(0, 1), st.booleans()),
                "features": st.dictionaries(
                    st.text(max_size=5),
                    st.one_of(st.floats(allow_nan=False), st.text(), st.booleans(), st.none()),
                ),
            }
        ),
        max_size=30,
    )
)
def test_any_sample_of_json_events_builds_a_view(sample: list[dict[str, object]]) -> None:
    digest = StreamDigest()
    digest.add_sample(sample, at=1.0)
    view = digest.view(now=2.0)
    assert {m.model_id for m in view.models} == {str(e["model_id"]) for e in sample}
