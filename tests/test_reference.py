"""A pinned reference (``reference = {file = ...}``): loading, detection, quiet, restarts."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from stream_mlops.config import ConfigError, Settings, load_settings, parse_settings
from stream_mlops.detectors import DistributionDetector, GlrDetector
from stream_mlops.engine import Engine
from stream_mlops.events import DriftAlert, InputEvent, LabeledEvent, PerformanceEstimate, encode
from stream_mlops.reference import (
    ModelReference,
    ReferenceError,
    load_references,
    parse_reference,
    read_reference_file,
)
from tests.streams import classifier, kind_offsets

# The stream starts shifted: f0 is N(0.7, 1) instead of N(0, 1), and the
# error rate is 20% instead of 5%, from the first event on.
SHIFTED_MEANS = [0.7, 0.0]
SHIFTED_ERROR = 0.2


def _write(path: Path, events: Iterable[InputEvent]) -> Path:
    path.write_bytes(b"".join(encode(e) + b"\n" for e in events))
    return path


def _good_reference(path: Path, n: int = 4_000) -> Path:
    """Events as the model saw them in validation: f0, f1 ~ N(0, 1), 5% errors."""
    return _write(path, classifier(n, seed=101))


def _settings(reference: Path | None, **defaults: object) -> Settings:
    section: dict[str, object] = dict(defaults)
    if reference is not None:
        section["reference"] = {"file": str(reference)}
    return parse_settings({"models": {"fraud": section}})


def _engine(settings: Settings) -> Engine:
    return Engine(settings, references=load_references(settings))


def _alerts(engine: Engine, events: Iterable[InputEvent]) -> list[DriftAlert]:
    return [a for _, a in _alerts_at(engine, events)]


def _alerts_at(engine: Engine, events: Iterable[InputEvent]) -> list[tuple[int, DriftAlert]]:
    """Drift alerts, each with the number of predictions the stream had shown by then."""
    out = []
    predictions = 0
    for e in events:
        predictions += e.type == "prediction"
        out += [
            (predictions, o)
            for o in engine.process(e)
            if isinstance(o, DriftAlert) and o.severity == "drift"
        ]
    return out


def _shifted(n: int = 6_000) -> Iterator[InputEvent]:
    return classifier(
        n, feature_means=lambda i: SHIFTED_MEANS, error_rate=lambda i: SHIFTED_ERROR, seed=7
    )


# -- detection and quiet ----------------------------------------------------------


def test_a_stream_that_starts_shifted_is_missed_by_its_own_start_but_found_by_a_pinned_reference(
    tmp_path: Path,
) -> None:
    # The stream's start as the reference: the shift is the reference itself.
    missed = _alerts(_engine(_settings(None)), _shifted())
    assert {a.signal for a in missed} & {"feature:f0", "error"} == set()

    ref = _good_reference(tmp_path / "ref.jsonl")
    found = _alerts_at(_engine(_settings(ref)), _shifted())
    by_signal: dict[str, DriftAlert] = {}
    at: dict[str, int] = {}
    for predictions, alert in found:
        by_signal.setdefault(alert.signal, alert)
        at.setdefault(alert.signal, predictions)
    assert {"feature:f0", "error"} <= set(by_signal), sorted(by_signal)
    feature = by_signal["feature:f0"]
    # Compared with the pinned reference: its mean is the reference's, about 0.
    assert feature.stats.mean_before == pytest.approx(0.0, abs=0.1)
    assert feature.stats.mean_after == pytest.approx(0.7, abs=0.25)
    error = by_signal["error"]
    assert error.stats.mean_before == pytest.approx(0.05, abs=0.02)
    assert error.stats.mean_after == pytest.approx(SHIFTED_ERROR, abs=0.1)
    # Found early: within the first 1,500 predictions of the stream.
    assert at["feature:f0"] <= 1_500
    assert at["error"] <= 1_500
    # The unshifted feature stays quiet.
    assert "feature:f1" not in by_signal


def test_a_stationary_stream_with_a_pinned_reference_of_the_same_distribution_is_quiet(
    tmp_path: Path,
) -> None:
    ref = _good_reference(tmp_path / "ref.jsonl")
    engine = _engine(_settings(ref))
    alerts = _alerts(engine, classifier(30_000, seed=8))
    assert alerts == []
    state = engine._models[("fraud", "v1")]
    pinned = {t.name for t in state.tracks() if t.pinned}
    assert {"score", "prediction", "error", "feature:f0", "feature:f1", "outcome"} <= pinned
    assert state.quality is not None and state.quality.pinned


def test_a_pinned_reference_does_not_rebase_after_an_alert_by_default(tmp_path: Path) -> None:
    ref = _good_reference(tmp_path / "ref.jsonl")
    assert _settings(ref).model("fraud").rebases is False
    assert _settings(None).model("fraud").rebases is True
    assert _settings(ref, rebase_after_alert=True).model("fraud").rebases is True
    # Not rebased: the lasting shift is reported again, each time against the reference.
    alerts = [a for a in _alerts(_engine(_settings(ref)), _shifted(12_000)) if a.signal == "error"]
    assert len(alerts) >= 2
    assert all(a.stats.mean_before == pytest.approx(0.05, abs=0.02) for a in alerts)


def test_only_the_same_model_version_pins_the_models_own_outputs(tmp_path: Path) -> None:
    # The reference was scored by v0: the features are pinned, the score and error are not.
    events = []
    for e in classifier(2_000, seed=3):
        data = e.model_dump()
        if "model_version" in data:
            data["model_version"] = "v0"
        events.append(type(e).model_validate(data))
    ref = _write(tmp_path / "ref.jsonl", events)
    engine = _engine(_settings(ref))
    _alerts(engine, classifier(600, seed=4))
    state = engine._models[("fraud", "v1")]
    assert state.features["f0"].pinned
    assert state.score is not None and not state.score.pinned
    assert state.error is not None and not state.error.pinned


def test_a_restored_engine_goes_on_as_the_one_that_never_stopped(tmp_path: Path) -> None:
    ref = _good_reference(tmp_path / "ref.jsonl")
    settings = _settings(ref)
    references = load_references(settings)
    events = list(_shifted(4_000))
    offsets = kind_offsets(events)
    cut = len(events) // 4
    whole = Engine(settings, references=references)
    expected = [o for e, off in zip(events, offsets, strict=True) for o in whole.process(e, off)]
    first = Engine(settings, references=references)
    got = [o for e, off in zip(events[:cut], offsets, strict=False) for o in first.process(e, off)]
    data = first.snapshot()
    restored = Engine.restore(settings, data, references=references)
    for kind in ("prediction", "outcome"):
        pending = restored.pending_offsets(kind)
        for e, off in zip(events[:cut], offsets, strict=False):
            if e.type == kind and off in pending:
                restored.restore_pending(e, off)
    assert restored.snapshot() == data
    got += [
        o
        for e, off in zip(events[cut:], offsets[cut:], strict=True)
        for o in restored.process(e, off)
    ]
    assert [encode(o) for o in got] == [encode(o) for o in expected]
    assert any(isinstance(o, DriftAlert) for o in expected)


# -- the reference file -----------------------------------------------------------


def test_labeled_events_and_joined_predictions_are_read_with_scores_and_labels() -> None:
    lines = [
        b'{"type": "prediction", "event_id": "a", "model_id": "fraud", "model_version": "v1",'
        b' "ts": 0, "features": {"amount": 1.5, "shop": "x"}, "prediction": 1, "score": 0.8}',
        b"",
        b'{"type": "prediction", "event_id": "b", "model_id": "fraud", "model_version": "v1",'
        b' "ts": 1, "features": {"amount": 2.5}, "prediction": 0, "score": 0.3}',
        b'{"type": "outcome", "event_id": "a", "ts": 5, "actual": 0}',
        encode(
            LabeledEvent(
                event_id="c",
                model_id="fraud",
                model_version="v1",
                ts=2,
                outcome_ts=3,
                features={"amount": 3.5},
                prediction=1,
                score=0.9,
                actual=1,
            )
        ),
    ]
    fraud = parse_reference(lines, "ref.jsonl")["fraud"]
    assert fraud.numeric("amount") == [1.5, 2.5, 3.5]
    assert fraud.categories("shop") == ["x"]
    # "b" has no outcome: unlabeled, not among the labeled.
    assert fraud.labeled("v1") == [(1, 0.8, 0), (1, 0.9, 1)]
    assert fraud.labeled("v2") == []
    assert fraud.describe()["labeled"] == 2


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"type": "drift_alert"}', "type: 'drift_alert'"),
        (
            b'{"type": "prediction", "event_id": "x", "model_id": "fraud", "model_version": "v1",'
            b' "ts": 0, "features": {}, "prediction": 1, "score": 7}',
            "score",
        ),
        (b'{"type": "labeled_event", "event_id": "x"}', "model_id"),
    ],
)
def test_a_bad_line_names_the_file_its_line_and_the_reason(line: bytes, reason: str) -> None:
    good = (
        b'{"type": "outcome", "event_id": "a", "ts": 5, "actual": 0}',
        b"",
    )
    with pytest.raises(ReferenceError, match=r"ref\.jsonl line 3: ") as caught:
        parse_reference([*good, line], "ref.jsonl")
    assert reason in str(caught.value)


def test_a_duplicate_prediction_is_an_error() -> None:
    line = (
        b'{"type": "prediction", "event_id": "a", "model_id": "m", "model_version": "v1",'
        b' "ts": 0, "features": {}, "prediction": 1}'
    )
    with pytest.raises(ReferenceError, match="line 2: event_id 'a' is a duplicate"):
        parse_reference([line, line], "r")


def test_a_missing_file_names_the_field(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "nowhere.jsonl")
    with pytest.raises(ConfigError, match=r"models\.fraud\.reference\.file: .*nowhere\.jsonl"):
        load_references(settings)
    default = parse_settings({"defaults": {"reference": {"file": str(tmp_path / "x.jsonl")}}})
    with pytest.raises(ConfigError, match=r"defaults\.reference\.file: .*cannot read"):
        load_references(default)


def test_a_model_whose_file_holds_none_of_its_events_is_an_error(tmp_path: Path) -> None:
    ref = _write(tmp_path / "ref.jsonl", classifier(10, model_id="other"))
    with pytest.raises(ReferenceError, match="has no events of model 'fraud'"):
        load_references(_settings(ref))


def test_a_file_in_defaults_gives_each_model_of_the_file_its_reference(tmp_path: Path) -> None:
    ref = tmp_path / "ref.jsonl"
    # Outcomes are joined by event_id: the two models' ids must differ.
    churn = [
        e.model_copy(update={"event_id": "c" + e.event_id}) for e in classifier(5, model_id="churn")
    ]
    _write(ref, [*classifier(5, model_id="fraud"), *churn])
    settings = parse_settings({"defaults": {"reference": {"file": str(ref)}}})
    found = load_references(settings)
    assert sorted(found) == ["churn", "fraud"]
    assert all(isinstance(r, ModelReference) for r in found.values())


@pytest.mark.parametrize("bad", ["training", 3, {"path": "x"}, {"file": ""}])
def test_a_bad_reference_setting_names_the_field(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"models\.fraud\.reference"):
        parse_settings({"models": {"fraud": {"reference": bad}}})


def test_a_reference_file_is_relative_to_the_configuration_file(tmp_path: Path) -> None:
    _good_reference(tmp_path / "ref.jsonl", n=10)
    config = tmp_path / "stream-mlops.toml"
    config.write_text('[models.fraud]\nreference = {file = "ref.jsonl"}\n')
    settings = load_settings(config, environ={})
    assert "fraud" in read_reference_file(tmp_path / "ref.jsonl")
    assert load_references(settings)["fraud"].source == str(tmp_path / "ref.jsonl")


def test_an_engine_without_the_reference_of_a_pinned_model_refuses_to_start(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path / "ref.jsonl")
    with pytest.raises(ValueError, match=r"models\.fraud\.reference: pinned"):
        Engine(settings)


# -- detectors take a pinned reference ----------------------------------------------


def test_a_primed_glr_bank_compares_the_stream_with_its_reference_from_the_first_value() -> None:
    rng = random.Random(2)
    glr = GlrDetector(model="bernoulli", direction="up", false_alarm_rate=1e-8)
    glr.prime([float(rng.random() < 0.05) for _ in range(3_000)])
    fresh = GlrDetector(model="bernoulli", direction="up", false_alarm_rate=1e-8)
    stream = [float(rng.random() < 0.2) for _ in range(3_000)]
    fired = [(i, d) for i, x in enumerate(stream) if (d := glr.update(x)) is not None]
    assert fired, "a primed bank finds a stream that starts at 20% against 5%"
    at, detection = fired[0]
    assert at < 500
    assert detection.mean_before == pytest.approx(0.05, abs=0.01)
    assert [x for x in stream if fresh.update(x) is not None] == []
    # The pinned reference survives a checkpoint.
    again = GlrDetector(model="bernoulli", direction="up", false_alarm_rate=1e-8)
    again.load_state(glr.state())
    assert again.state() == glr.state()
    with pytest.raises(ValueError, match="only a fresh detector"):
        glr.prime([0.0])


def test_a_primed_distribution_test_takes_its_reference_from_the_values() -> None:
    rng = random.Random(3)
    detector = DistributionDetector(reference=1_000, false_alarm_rate=1e-8)
    detector.prime([rng.gauss(0.0, 1.0) for _ in range(1_500)])
    assert detector.observations == 1_000
    fired = [d for _ in range(4_000) if (d := detector.update(rng.gauss(0.0, 3.0))) is not None]
    assert fired and fired[0].mean_before == pytest.approx(0.0, abs=0.1)


# -- replay ---------------------------------------------------------------------


def _replay(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "stream_mlops", "replay", *args], capture_output=True, check=False
    )


def test_replay_with_reference_finds_the_shift_the_plain_replay_misses(tmp_path: Path) -> None:
    stream = _write(tmp_path / "events.jsonl", _shifted(3_000))
    ref = _good_reference(tmp_path / "ref.jsonl")
    plain = _replay(str(stream))
    pinned = _replay(str(stream), "--reference", str(ref))
    assert plain.returncode == 0 and pinned.returncode == 0, pinned.stderr
    assert b'"signal":"feature:f0"' not in plain.stdout
    assert b'"signal":"feature:f0"' in pinned.stdout
    assert b'"signal":"error"' in pinned.stdout


def test_replay_refuses_a_bad_reference_with_exit_2(tmp_path: Path) -> None:
    stream = _write(tmp_path / "events.jsonl", classifier(10))
    bad = tmp_path / "ref.jsonl"
    bad.write_bytes(b'{"type": "outcome", "event_id": "a", "ts": 0, "actual": 1}\n{oops\n')
    result = _replay(str(stream), "--reference", str(bad))
    assert result.returncode == 2
    assert b"ref.jsonl line 2: not JSON" in result.stderr
    missing = _replay(str(stream), "--reference", str(tmp_path / "absent.jsonl"))
    assert missing.returncode == 2
    assert b"absent.jsonl: cannot read" in missing.stderr
    config = tmp_path / "c.toml"
    config.write_text('[defaults]\nreference = "champion"\n')
    champion = _replay(str(stream), "--config", str(config))
    assert champion.returncode == 2
    assert b'reference: "champion" is read from the cluster' in champion.stderr


def test_a_model_without_events_in_a_default_file_keeps_the_streams_reference_and_says_so(
    tmp_path: Path,
) -> None:
    ref = _good_reference(tmp_path / "ref.jsonl", n=500)
    settings = parse_settings({"defaults": {"reference": {"file": str(ref)}}})
    engine = Engine(settings, references=load_references(settings))
    _alerts(engine, classifier(300, model_id="churn"))
    state = engine._models[("churn", "v1")]
    assert not any(t.pinned for t in state.tracks())
    notices = engine.take_notices()
    assert len(notices) == 1
    assert notices[0].startswith(f"churn v1: reference {ref} holds no events of this model")


# -- the pinned reference calibrates the performance estimate -------------------------


def test_a_pinned_references_labeled_events_calibrate_the_estimate_before_any_outcome(
    tmp_path: Path,
) -> None:
    # Calibrated on the reference's labeled events, the label-free estimate
    # comes from the first window of a stream that brings no outcome at all.
    # (In these streams the label is a coin flip the score says nothing about,
    # so the calibrated error is about one half, in the stream as in the
    # reference.)
    reference = _good_reference(tmp_path / "ref.jsonl")
    stream = list(classifier(2_500, outcomes=False, seed=3))
    options = {"estimate_calibration_events": 1_000, "estimate_window": 1_000}

    def estimates(settings: Settings) -> list[PerformanceEstimate]:
        engine = _engine(settings)
        return [o for e in stream for o in engine.process(e) if isinstance(o, PerformanceEstimate)]

    pinned = estimates(_settings(reference, **options))
    assert [e.last_event_id for e in pinned] == ["e999", "e1999"]
    for estimate in pinned:
        assert estimate.estimate.calibration_events == 1_000
        assert estimate.estimate.estimated_error == pytest.approx(0.5, abs=0.05)
        assert estimate.estimate.reference_error == pytest.approx(0.5, abs=0.05)
    # Without the reference there is nothing to calibrate on: no estimate.
    assert estimates(_settings(None, **options)) == []
