"""Snapshots are data: restoring one runs no code, refuses what it cannot trust with
a ``SnapshotError`` (and nothing else), and otherwise continues exactly."""

from __future__ import annotations

import copy
import functools
import pickle
import random
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_mlops import detectors, snapshot
from stream_mlops.config import Settings, parse_settings
from stream_mlops.detectors import Detector
from stream_mlops.engine import Engine, SnapshotError
from stream_mlops.events import InputEvent, OutcomeEvent, PredictionEvent, encode
from stream_mlops.kafka.restore import latest_snapshot
from stream_mlops.kafka.state import TaskSnapshot
from stream_mlops.snapshot import StateError
from tests.streams import classifier, kind_offsets

# -- detectors -----------------------------------------------------------------


def _values(binary: bool, n: int = 12_000, seed: int = 0, period: int = 3000) -> list[float]:
    """Changes every ``period`` values, so cuts fall before, inside and after detections."""
    rng = random.Random(seed)
    if binary:
        return [float(rng.random() < (0.05 if (i // period) % 2 == 0 else 0.4)) for i in range(n)]
    return [rng.gauss(0.0 if (i // period) % 2 == 0 else 2.0, 1.0) for i in range(n)]


_VARIANTS = [(name, {}) for name in detectors.known_names()] + [
    ("adwin", {"warning_delta": 0.01, "clock": 1}),
    ("distribution", {"categorical": True, "windows": [100, 200]}),
]


def _rebuilt(detector: Detector) -> Detector:
    """A fresh detector of the same parameters, given the original's state through JSON."""
    copy_ = detectors.build(detector.name, detector.params())
    copy_.load_state(orjson.loads(orjson.dumps(detector.state())))
    return copy_


@pytest.mark.parametrize(("name", "params"), _VARIANTS)
def test_every_detector_continues_exactly_from_its_state(name: str, params: dict[str, Any]) -> None:
    # KSWIN runs a Kolmogorov-Smirnov test per value: a shorter stream for it.
    n, period = (1_200, 300) if name == "kswin" else (12_000, 3_000)
    values = _values(detectors.is_binary(name), n, period=period)
    if params.get("categorical"):
        values = [float(int(abs(x) * 3) % 5) for x in _values(False)]
    whole = detectors.build(name, params)
    expected = [whole.update(x) for x in values]
    assert any(d is not None for d in expected), "the stream must make the detector fire"
    original = detectors.build(name, params)
    done = 0
    for cut in sorted({0, 1, n // 17, period + 1, period + 100, n * 3 // 4}):
        for x in values[done:cut]:
            original.update(x)
        done = cut
        copy_ = _rebuilt(original)
        assert orjson.dumps(copy_.state()) == orjson.dumps(original.state())
        assert [copy_.update(x) for x in values[cut:]] == expected[cut:], cut


def _leaves(value: object) -> Iterator[object]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def test_adwin_state_is_plain_numbers() -> None:
    detector = detectors.build("adwin", {})
    for x in _values(False, 5000):
        detector.update(x)
    state = detector.state()
    window = state["adwin"]["_helper"]
    assert sum(c << k for k, c in enumerate(window["counts"])) == window["width"] > 0
    assert len(window["totals"]) == sum(window["counts"])
    assert all(v is None or type(v) in (int, float, bool) for v in _leaves(state))


def _state_after(name: str, params: dict[str, Any], n: int = 600) -> Detector:
    detector = detectors.build(name, params)
    for x in _values(detectors.is_binary(name), n):
        detector.update(x)
    return detector


def _set(state: dict[str, Any], path: tuple[str | int, ...], value: object) -> None:
    target: Any = state
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@pytest.mark.parametrize(
    ("name", "path", "value", "message"),
    [
        ("adwin", ("count",), None, "state.count: expected an integer, got null"),
        ("adwin", ("sum",), "1.5", "state.sum: expected a number, got a string"),
        ("adwin", ("adwin", "_helper", "width"), 3.0, "disagrees with the buckets"),
        ("adwin", ("adwin", "_helper", "counts", 0), 99, "expected an integer <= 5"),
        ("adwin", ("adwin", "_helper", "counts", -1), 0, "oldest bucket level is empty"),
        ("adwin", ("adwin", "_helper", "totals"), [], "one total and one variance"),
        ("adwin", ("adwin", "_drift_detected"), 1, "expected true or false"),
        ("adwin", ("warning",), {}, "no warning_delta"),
        ("page_hinkley", ("page_hinkley", "_x_mean", "n"), [], "_x_mean.n: expected a number"),
        ("kswin", ("river", "_rng", 1, 624), 625, "_rng[1][624]: expected an integer <= 624"),
        ("kswin", ("river", "window"), [0.5] * 101, "at most 100 items"),
        ("ddm", ("river", "_p"), 3, "river._p: expected an object"),
        ("hddm_w", ("river", "_total", "_ewma", "_ewmean", "initialized"), 0, "expected true"),
        ("distribution", ("block_filled",), 10_000, "state.block_filled: expected an integer"),
        ("distribution", ("edges",), [2.0, 1.0], "ascending"),
        ("distribution", ("reference_bins",), [[1, 2], [1, 3]], "appears twice"),
    ],
)
def test_a_bad_state_is_refused_naming_the_field(
    name: str, path: tuple[str | int, ...], value: object, message: str
) -> None:
    state = copy.deepcopy(_state_after(name, {}).state())
    _set(state, path, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        detectors.build(name, {}).load_state(state)


def test_missing_and_unexpected_fields_are_named() -> None:
    state = _state_after("ddm", {}).state()
    missing = {k: v for k, v in state.items() if k != "in_warning"}
    with pytest.raises(ValueError, match=r"state\.in_warning: missing"):
        detectors.build("ddm", {}).load_state(missing)
    with pytest.raises(ValueError, match=r"unexpected field\(s\) 'extra'"):
        detectors.build("ddm", {}).load_state({**state, "extra": 1})


_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "", "x"])
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=20,
)


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Places in a document to doctor (long lists: their first and last items)."""
    out: list[tuple[str | int, ...]] = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        n = len(value)
        for i in range(n) if n <= 6 else (0, 1, 2, 3, n - 2, n - 1):
            out += _paths(value[i], (*prefix, i))
    return out


_ADWIN_STATE = _state_after("adwin", {"warning_delta": 0.001}).state()
_ADWIN_PATHS = _paths(_ADWIN_STATE)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_forged_adwin_window_is_refused_or_safe_to_update(data: st.DataObject) -> None:
    """river's Rust window panics (a BaseException) on bytes it cannot parse, and on
    counts that disagree with its width at a later update: neither may happen."""
    state = copy.deepcopy(_ADWIN_STATE)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_ADWIN_PATHS))
        try:
            _set(state, path, data.draw(_JSON | st.integers(-3, 3) | st.floats(-1e3, 1e3)))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed the place
    detector = detectors.build("adwin", {"warning_delta": 0.001})
    try:
        detector.load_state(state)
    except ValueError:
        return
    for x in _values(False, 3000, seed=9):
        detector.update(x)


# -- the engine's snapshot -----------------------------------------------------

_EVERY_FAMILY = {
    "join": {"ttl_seconds": 400, "max_pending": 300},
    "defaults": {
        "min_observations": 50,
        "cooldown_observations": 200,
        "reference_observations": 300,
        "recent_span": 50,
        "retrain_interval_seconds": 600,
        "detectors": {
            # Every family: river's binary detectors take only a classifier's error.
            "error": [
                {"name": "adwin", "warning_delta": 0.01},
                {"name": "ddm"},
                {"name": "eddm"},
                {"name": "fhddm"},
                {"name": "hddm_a"},
                {"name": "hddm_w"},
            ],
            "estimated_error": [{"name": "page_hinkley", "warmup": 100}],
            "score": [{"name": "kswin", "window_size": 60, "stat_size": 20}],
            "prediction": [{"name": "adwin", "clock": 1}],
            "feature:*": [{"name": "page_hinkley", "warmup": 200}, {"name": "adwin"}],
            "feature:f1": [{"name": "kswin", "window_size": 60, "stat_size": 20}],
        },
        "false_alarm_budget": 1e-4,
    },
}


def _mixed_stream(n: int, seed: int) -> list[InputEvent]:
    """A classifier with a drift and a categorical feature, and a regression model.

    Data-quality problems too: from a third on, f1 is null in 40% of the
    predictions; from the middle on, a city the reference never showed.
    """
    rng = random.Random(seed)
    events: list[InputEvent] = []
    for event in classifier(
        n, error_rate=lambda i: 0.05 if i < n // 2 else 0.3, outcome_lag=200, seed=seed
    ):
        if isinstance(event, PredictionEvent):
            i = int(event.event_id.removeprefix("e"))
            city = rng.choice(["oslo", "lima", "pune"] if i < n // 2 else ["oslo", "rome"])
            features = {**event.features, "city": city}
            if i >= n // 3 and rng.random() < 0.4:
                features["f1"] = None
            events.append(event.model_copy(update={"features": features}))
        else:
            events.append(event)
        if isinstance(event, PredictionEvent) and rng.random() < 0.2:
            j = len(events)
            events.append(
                PredictionEvent(
                    event_id=f"d{j}",
                    model_id="demand",
                    model_version="v3",
                    ts=event.ts,
                    features={"price": rng.gauss(10, 2)},
                    prediction=rng.gauss(100, 5),
                )
            )
            events.append(OutcomeEvent(event_id=f"d{j}", ts=event.ts, actual=rng.gauss(101, 5)))
    return events


def _restored(engine: Engine, settings_: Settings, seen: list[tuple[InputEvent, int]]) -> Engine:
    """What the Kafka edge does: restore, then re-insert the records still pending."""
    data = engine.snapshot()
    restored = Engine.restore(settings_, data, partition=0)
    for kind in ("prediction", "outcome"):
        pending = restored.pending_offsets(kind)  # type: ignore[arg-type]
        assert list(pending) == list(engine.pending_offsets(kind))  # type: ignore[arg-type]
        for e, off in seen:
            if e.type == kind and off in pending:
                restored.restore_pending(e, off)
    assert restored.stats == engine.stats
    assert restored.snapshot() == data, "a restored engine must snapshot to the same bytes"
    return restored


# Slices of the categorical "city" (values come and go: "*other*" is made afresh)
# and of a float feature (not sliced, counted); reviews fall between the cuts.
# Detectors keep their reference after an alert (rebase_after_alert = false).
_SLICES = {
    "defaults": {
        "slices": ["city", "f0"],
        "slice_top_k": 2,
        "reference_observations": 300,
        "rebase_after_alert": False,
    }
}


@pytest.mark.parametrize(
    ("config", "n"), [("defaults", 6_000), ("every family", 3_000), ("slices", 6_000)]
)
def test_restoring_at_several_points_gives_the_uninterrupted_outputs(config: str, n: int) -> None:
    settings_ = parse_settings(
        {"every family": _EVERY_FAMILY, "slices": _SLICES}.get(config, {})  # type: ignore[arg-type]
    )
    events = _mixed_stream(n, seed=11)
    offsets = kind_offsets(events)
    whole = Engine(settings_, partition=0)
    expected = [
        encode(o) for e, off in zip(events, offsets, strict=True) for o in whole.process(e, off)
    ]
    assert any(b'"drift_alert"' in out for out in expected), "nothing to compare"
    if config == "slices":
        assert any(b'"signal":"slice:city=' in out for out in expected), "no slice alert"
    assert any(b'"quality:f1:missing"' in out for out in expected), "no quality signal to compare"

    engine = Engine(settings_, partition=0)
    produced: list[bytes] = []
    seen: list[tuple[InputEvent, int]] = []
    cuts = [1, 500, 3_100, 5_000, 7_001, len(events) - 1]
    start = 0
    for cut in cuts:
        for e, off in zip(events[start:cut], offsets[start:cut], strict=True):
            produced += [encode(o) for o in engine.process(e, off)]
            seen.append((e, off))
        engine = _restored(engine, settings_, seen)
        start = cut
    for e, off in zip(events[start:], offsets[start:], strict=True):
        produced += [encode(o) for o in engine.process(e, off)]
    assert produced == expected
    assert engine.stats == whole.stats
    assert engine.snapshot() == whole.snapshot()


def _engine_after(n: int = 2_000, seed: int = 3) -> Engine:
    engine = Engine(Settings(), partition=0)
    for event in classifier(n, error_rate=lambda i: 0.05 if i < n // 2 else 0.3, seed=seed):
        engine.process(event)
    return engine


# -- bytes that must never restore ------------------------------------------------


class _Plant:
    """Unpickling this creates a file: what a forged state record would do."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.target), "w"))


def _forged_states(target: Path) -> dict[str, bytes]:
    payload = pickle.dumps({"river": snapshot.river_version(), "models": _Plant(target)})
    header = struct.Struct(">6sH")
    return {
        "bare pickle": payload,
        "format 3 (the pickled format)": header.pack(b"SMLOPS", 3) + payload,
        "format 4 header, pickle body": header.pack(b"SMLOPS", 4) + payload,
        "format 4, zlib of a pickle": header.pack(b"SMLOPS", 4) + zlib.compress(payload),
    }


def test_the_planted_record_would_run_code_if_unpickled(tmp_path: Path) -> None:
    """The control: what the engine before this format did with such a record."""
    target = tmp_path / "owned"
    payload = _forged_states(target)["format 3 (the pickled format)"]
    pickle.loads(payload[8:])  # what Engine.restore used to do
    assert target.exists()


def test_a_planted_record_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    target = tmp_path / "owned"
    for what, state in _forged_states(target).items():
        with pytest.raises(SnapshotError, match="partition 4") as info:
            Engine.restore(Settings(), state, partition=4)
        assert not target.exists(), what
        assert isinstance(info.value, StateError)
        # In an envelope with a valid checksum (anyone can compute one), too.
        record = TaskSnapshot("g", 4, {"predictions": 1}, state).to_bytes()
        parsed = TaskSnapshot.from_bytes(record, partition=4)
        with pytest.raises(SnapshotError):
            Engine.restore(Settings(), parsed.engine_state, partition=4)
        assert not target.exists(), what
    # An envelope of the old format is refused before its body is looked at.
    old = b"stream-mlops-state/1\n" + orjson.dumps({"group_id": "g"}) + b"\n" + state
    with pytest.raises(SnapshotError, match=r"partition 4: state record format '1'"):
        TaskSnapshot.from_bytes(old, partition=4)


def test_a_snapshot_of_another_format_version_is_refused() -> None:
    data = _engine_after(300).snapshot()
    for version in (0, 1, 2, 3, 4, 5, 7, 65535):
        other = data[:6] + version.to_bytes(2, "big") + data[8:]
        with pytest.raises(SnapshotError, match=f"format {version} is not supported"):
            Engine.restore(Settings(), other, partition=1)


def test_every_single_bit_flip_of_a_snapshot_record_is_refused() -> None:
    state = _engine_after(400).snapshot()
    record = bytearray(
        TaskSnapshot("g", 0, {"predictions": 400, "outcomes": 350}, state).to_bytes()
    )
    assert len(record) > 2_000
    for i in range(len(record)):
        for bit in range(8):
            record[i] ^= 1 << bit
            with pytest.raises(SnapshotError):
                TaskSnapshot.from_bytes(bytes(record))
            record[i] ^= 1 << bit
    assert TaskSnapshot.from_bytes(bytes(record)).engine_state == state


def test_bit_flips_in_the_engine_state_give_snapshot_errors_only() -> None:
    """Below the envelope's checksum, a flip must still never be another exception."""
    data = bytearray(_engine_after(400).snapshot())
    rng = random.Random(0)
    outcomes = {"refused": 0, "restored": 0}
    for _ in range(300):
        i, bit = rng.randrange(len(data)), rng.randrange(8)
        data[i] ^= 1 << bit
        try:
            Engine.restore(Settings(), bytes(data), partition=0)
            outcomes["restored"] += 1
        except SnapshotError:
            outcomes["refused"] += 1
        data[i] ^= 1 << bit
    assert outcomes["refused"] >= 290, outcomes


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_snapshot_error(data: bytes) -> None:
    for record in (data, b"stream-mlops-state/2\n" + data):
        with pytest.raises(SnapshotError):
            TaskSnapshot.from_bytes(record, partition=0)
    for state in (data, b"SMLOPS\x00\x04" + data, b"SMLOPS\x00\x04" + zlib.compress(data)):
        with pytest.raises(SnapshotError):
            Engine.restore(Settings(), state, partition=0)


def test_a_zip_bomb_is_refused_without_inflating_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "MAX_DOCUMENT_BYTES", 10_000_000)
    bomb = snapshot.MAGIC + snapshot.FORMAT.to_bytes(2, "big") + zlib.compress(b" " * 50_000_000, 9)
    with pytest.raises(SnapshotError, match="inflates to more than 10,000,000 bytes"):
        Engine.restore(Settings(), bomb, partition=0)


@functools.cache
def _real_document() -> tuple[dict[str, Any], list[tuple[str | int, ...]], list[InputEvent]]:
    document = orjson.loads(zlib.decompress(_engine_after(1_500).snapshot()[8:]))
    return document, _paths(document), list(classifier(300, seed=21))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_mutated_document_is_refused_or_restores_and_runs(data: st.DataObject) -> None:
    """Well-formed bytes of a doctored document: SnapshotError, or an engine that runs."""
    original, paths, after = _real_document()
    document = copy.deepcopy(original)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        try:
            if action == "replace":
                _set(document, path, data.draw(_JSON))
            elif action == "delete":
                target: Any = document
                for key in path[:-1]:
                    target = target[key]
                del target[path[-1]]
            elif isinstance(parent := _parent(document, path), dict):
                parent["surplus"] = data.draw(_JSON)
        except (KeyError, IndexError, TypeError):
            continue
    raw = snapshot.encode(document)
    try:
        engine = Engine.restore(Settings(), raw, partition=0)
    except SnapshotError:
        return
    for event in after:
        engine.process(event)


def _parent(document: Any, path: tuple[str | int, ...]) -> Any:
    for key in path[:-1]:
        document = document[key]
    return document


# -- the state topic ---------------------------------------------------------------


class _Reader:
    """A state partition in memory (the real broker test is tests/kafka/test_state.py)."""

    def __init__(self, values: list[tuple[bytes, bytes]]) -> None:
        self.values = values

    def beginning_offset(self, tp: object) -> int:
        return 0

    def end_offset(self, tp: object) -> int:
        return len(self.values)

    def read(self, tp: object, start: int, end: int) -> Iterator[Any]:
        for offset in range(start, end):
            key, value = self.values[offset]
            yield SimpleNamespace(key=key, value=value, offset=offset)


def test_a_record_under_another_tasks_key_is_refused() -> None:
    record = TaskSnapshot("g", 1, {"predictions": 0}, b"").to_bytes()
    reader = _Reader([(b"g:2", record)])
    with pytest.raises(SnapshotError, match="partition 2: the record under key 'g:2'"):
        latest_snapshot(reader, None, "g", 2)  # type: ignore[arg-type]
