"""Event time that one record cannot own (stream_mlops.event_time, the join's start).

One outcome dated 9999 (or ``ts: 2e10``) used to move the watermark for good:
every later event expired on arrival and no label joined again.
"""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from stream_mlops import offline
from stream_mlops.config import Settings, parse_settings
from stream_mlops.engine import Engine
from stream_mlops.event_time import EventTimeError
from stream_mlops.events import (
    InputEvent,
    LabeledEvent,
    OutcomeEvent,
    decode_input,
    encode,
    utc_datetime,
)
from tests.streams import T0, classifier

POISONS = [b'"9999-12-31T00:00:00Z"', b"2e10"]


def poison(ts: bytes, event_id: str = "poison") -> OutcomeEvent:
    event = decode_input(
        b'{"type": "outcome", "event_id": "%s", "ts": %s, "actual": 1}' % (event_id.encode(), ts)
    )
    assert isinstance(event, OutcomeEvent)
    return event


def joins_after(engine: Engine, events: list[InputEvent]) -> int:
    """How many labeled events the engine gives for ``events`` (refusals skipped)."""
    joined = 0
    for event in events:
        try:
            outputs = engine.process(event)
        except EventTimeError:
            continue
        joined += sum(type(o) is LabeledEvent for o in outputs)
    return joined


@pytest.mark.parametrize("ts", POISONS, ids=["year-9999", "2e10"])
def test_a_poison_outcome_is_refused_and_labels_keep_joining(ts: bytes) -> None:
    engine = Engine(Settings())
    stream = list(classifier(2000, seed=3))
    first = stream[:1000]
    assert joins_after(engine, first) == sum(type(e) is OutcomeEvent for e in first)
    joined_before = engine.stats.joined
    with pytest.raises(
        EventTimeError,
        match=r"^ts: .* s ahead of the watermark .*max_ahead_of_watermark_seconds\)$",
    ):
        engine.process(poison(ts))
    assert engine.stats.refused_ahead_of_watermark == 1
    assert engine.stats.outcomes == sum(type(e) is OutcomeEvent for e in stream[:1000])
    later = stream[1000:]
    assert joins_after(engine, later) == sum(type(e) is OutcomeEvent for e in later)
    assert engine.stats.joined > joined_before + 900
    assert engine.stats.expired_predictions == 0


@pytest.mark.parametrize("ts", POISONS, ids=["year-9999", "2e10"])
def test_a_poison_first_event_does_not_start_the_watermark(ts: bytes) -> None:
    engine = Engine(Settings())
    # Nothing to be ahead of yet: the poison is taken, as one pending outcome.
    assert engine.process(poison(ts)) == []
    stream = list(classifier(500, seed=4))
    assert joins_after(engine, stream) == 500
    assert engine.stats.expired_predictions == 0
    assert engine.stats.orphan_outcomes_expired == 0
    assert engine._join.watermark < T0 + 600  # started by the stream, not the poison


def test_the_second_event_can_be_the_poison_too() -> None:
    engine = Engine(Settings())
    stream = list(classifier(300, seed=5))
    engine.process(stream[0])
    engine.process(poison(POISONS[0]))
    assert joins_after(engine, stream[1:]) == 300
    assert engine.stats.expired_predictions == 0


def test_the_wall_clock_refuses_what_the_watermark_cannot_judge() -> None:
    engine = Engine(Settings())
    now = T0 + 10.0
    with pytest.raises(
        EventTimeError, match=r"ahead of the wall clock .*max_ahead_of_wall_clock_seconds\)$"
    ):
        engine.process(poison(POISONS[1]), now=now)
    assert engine.stats.refused_ahead_of_wall_clock == 1
    assert engine.stats.outcomes == 0  # refused before anything was counted
    # An event within a day of the wall clock is fine, the first one included.
    stream = list(classifier(200, seed=6))
    joined = sum(type(o) is LabeledEvent for e in stream for o in engine.process(e, now=now))
    assert joined == 200
    # Without a wall clock (replay's default) the rule is off.
    Engine(Settings()).process(poison(b'"2026-12-01T00:00:00Z"'), now=None)


def test_a_real_gap_longer_than_the_bound_is_crossed_after_enough_events_agree() -> None:
    settings = parse_settings(
        {"join": {"max_ahead_of_watermark_seconds": 3600, "jump_after_events": 20}}
    )
    engine = Engine(settings)
    before = list(classifier(100, seed=7))
    assert joins_after(engine, before) == 100
    # The producers were down for a day; the stream resumes a day later.
    after = [
        event.model_copy(
            update={
                "ts": utc_datetime(event.ts.timestamp() + 86400),
                "event_id": f"late-{event.event_id}",
            }
        )
        for event in classifier(300, seed=8)
    ]
    for event in after[:19]:
        with pytest.raises(EventTimeError):
            engine.process(event)
    assert engine.stats.refused_ahead_of_watermark == 19
    engine.process(after[19])  # the 20th in a row: the stream moved on
    assert engine.stats.watermark_jumps == 1
    rest = after[20:]
    joins_after(engine, rest)
    assert engine.stats.refused_ahead_of_watermark == 19
    # Every prediction after the jump found its outcome, but those whose
    # outcome was among the refused ones.
    assert engine.stats.joined >= 100 + 250


def test_one_good_event_between_bad_ones_keeps_the_bound() -> None:
    settings = parse_settings({"join": {"jump_after_events": 3}})
    engine = Engine(settings)
    stream = iter(classifier(400, seed=9))
    for event in itertools.islice(stream, 100):
        engine.process(event)
    for k in range(10):
        with pytest.raises(EventTimeError):
            engine.process(poison(POISONS[0], f"p{k}a"))
        with pytest.raises(EventTimeError):
            engine.process(poison(POISONS[0], f"p{k}b"))
        engine.process(next(stream))  # a good event breaks the run of two
    assert engine.stats.watermark_jumps == 0
    assert engine.stats.refused_ahead_of_watermark == 20


def test_infinity_turns_the_bounds_off() -> None:
    settings = parse_settings(
        {
            "join": {
                "max_ahead_of_watermark_seconds": float("inf"),
                "max_ahead_of_wall_clock_seconds": float("inf"),
            }
        }
    )
    engine = Engine(settings)
    for event in itertools.islice(classifier(10, seed=1), 10):
        engine.process(event)
    engine.process(poison(POISONS[0]), now=T0)
    assert engine._join.watermark > T0 + 1e9  # today's behaviour, on request


def _write(path: Path, events: list[InputEvent]) -> None:
    with path.open("wb") as handle:
        for event in events:
            handle.write(encode(event) + b"\n")


def test_replay_reports_the_refused_line_and_keeps_joining(tmp_path: Path) -> None:
    stream = list(classifier(1000, seed=2))
    events = [*stream[:500], poison(POISONS[0]), *stream[500:]]
    path = tmp_path / "events.jsonl"
    _write(path, events)
    done = subprocess.run(
        [sys.executable, "-m", "stream_mlops", "replay", str(path)],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.decode().splitlines()
    assert lines[0].startswith("line 501: ts: 9999-12-31T00:00:00Z is ")
    assert "1 refused" in lines[-1]
    assert "joined 1000" in lines[-1]


def test_replay_with_a_wall_clock(tmp_path: Path) -> None:
    stream = list(classifier(50, seed=2))
    path = tmp_path / "events.jsonl"
    _write(path, stream)
    pinned = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream_mlops",
            "replay",
            str(path),
            "--wall-clock",
            "2020-01-01T00:00:00Z",
        ],
        capture_output=True,
        check=False,
    )
    assert pinned.returncode == 0, pinned.stderr
    assert "0 predictions, 0 outcomes" in pinned.stderr.decode()
    assert "100 refused" in pinned.stderr.decode()
    now = subprocess.run(
        [sys.executable, "-m", "stream_mlops", "replay", str(path), "--wall-clock", "now"],
        capture_output=True,
        check=False,
    )
    assert now.returncode == 0
    bad = subprocess.run(
        [sys.executable, "-m", "stream_mlops", "replay", str(path), "--wall-clock", "soon"],
        capture_output=True,
        check=False,
    )
    assert bad.returncode == 2
    assert b"--wall-clock" in bad.stderr


def test_the_replay_function_takes_a_wall_clock() -> None:
    events = [poison(POISONS[1])]
    out, errors = io.BytesIO(), io.StringIO()
    result = offline.replay_lines(
        (encode(e) for e in events), Engine(Settings()), out, errors, now=T0
    )
    assert result.refused == 1
    assert "ahead of the wall clock" in errors.getvalue()


def _through_snapshot(engine: Engine) -> Engine:
    return Engine.restore(Settings(), engine.snapshot())


def test_the_bound_and_the_first_event_survive_a_snapshot() -> None:
    """What the bound has counted, and a watermark still waiting for its second
    event, continue after a restore as they would have without one."""
    waiting = Engine(Settings())
    waiting.process(poison(POISONS[0]))
    restored = _through_snapshot(waiting)
    assert restored._join.first_epoch == waiting._join.first_epoch is not None
    stream = list(classifier(200, seed=5))
    assert joins_after(restored, stream) == joins_after(waiting, stream)

    settings = parse_settings({"join": {"jump_after_events": 3}})
    engine = Engine(settings)
    joins_after(engine, list(classifier(50, seed=6)))
    for k in range(2):  # two of the three refusals that make a jump
        with pytest.raises(EventTimeError):
            engine.process(poison(POISONS[0], event_id=f"p{k}"))
    restored = Engine.restore(settings, engine.snapshot())
    assert restored.stats.refused_ahead_of_watermark == 2
    # The third in a row is a jump, restored or not.
    for candidate in (engine, restored):
        assert candidate.process(poison(POISONS[0], event_id="p2")) == []
        assert candidate.stats.watermark_jumps == 1
