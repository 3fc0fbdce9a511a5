"""``stream-mlops replay``: the engine's core driven by a JSONL file.

Reads prediction and outcome events in file order, one per line (``"type"``
required), and writes the alerts and retrain requests the engine would publish
as JSONL on stdout, a summary on stderr. It streams: memory stays within the
join's bound whatever the file's size. A malformed line (not an event, or
longer than ``[kafka] max_record_bytes``, as on Kafka) and an event the engine
refuses (``EventError``: too far ahead in event time, an unknown model) are
reported with the line number, counted apart, and skipped.

What the wall clock means for a file: by default nothing. A file is history,
judged by its own event time (the watermark rules of ``stream_mlops.event_time``
hold), so the output depends on the file alone. ``--wall-clock now`` adds the
engine's check against a wall clock, with the time the replay starts (a
recorded file cannot hold events from after that); ``--wall-clock TIME`` pins it,
for reruns that must give the same bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, TextIO

from stream_mlops.config import ConfigError, load_settings
from stream_mlops.engine import Engine, EngineStats
from stream_mlops.events import EventError, LabeledEvent, decode_input, encode

__all__ = ["ReplayResult", "command", "replay"]


class ReplayResult:
    """What a replay saw besides the engine's own statistics."""

    def __init__(self, stats: EngineStats, lines: int, malformed: int, refused: int = 0) -> None:
        self.stats = stats
        self.lines = lines
        self.malformed = malformed
        #: events the engine refused (EventError from Engine.process)
        self.refused = refused

    def summary(self) -> str:
        s = self.stats
        alerts = " ".join(f"{k}={v}" for k, v in s.alerts_by_signal.items()) or "none"
        return (
            f"replay: {self.lines} lines, {s.predictions + s.outcomes} events "
            f"({s.predictions} predictions, {s.outcomes} outcomes), {self.malformed} malformed, "
            f"{self.refused} refused; "
            f"joined {s.joined}, expired {s.expired_predictions} predictions and "
            f"{s.orphan_outcomes_expired} orphan outcomes, evicted {s.evicted}, "
            f"duplicates {s.duplicates}, pending {s.pending}; "
            f"alerts by signal: {alerts}; retrain requests {s.retrain_requests}"
            + (f"; clamped values {s.clamped_values}" if s.clamped_values else "")
            + (
                f"; untracked feature values {s.untracked_feature_values}"
                if s.untracked_feature_values
                else ""
            )
            + (f"; event-time jumps {s.watermark_jumps}" if s.watermark_jumps else "")
            + "\n"
        )


def replay(
    lines: Iterable[bytes],
    engine: Engine,
    out: BinaryIO,
    errors: TextIO,
    *,
    now: float | None = None,
) -> ReplayResult:
    """Run every line through the engine; write its alerts and retrain requests.

    ``now`` is the wall clock the events are judged against (None: none).
    """
    count = malformed = refused = 0
    write = out.write
    process = engine.process
    max_bytes = engine.settings.kafka.max_record_bytes
    for count, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(line) > max_bytes and (size := len(line.rstrip(b"\r\n"))) > max_bytes:
            malformed += 1
            errors.write(f"line {count}: {size} bytes, over max_record_bytes={max_bytes}\n")
            continue
        try:
            event = decode_input(line)
        except EventError as exc:
            malformed += 1
            errors.write(f"line {count}: {exc}\n")
            continue
        try:
            outputs = process(event, now=now)
        except EventError as exc:
            refused += 1
            errors.write(f"line {count}: {exc}\n")
            continue
        for output in outputs:
            if type(output) is not LabeledEvent:
                write(encode(output) + b"\n")
    for notice in engine.take_notices():
        errors.write(f"notice: {notice}\n")
    return ReplayResult(engine.stats, count, malformed, refused)


def command(file: Path, *, config_path: Path | None = None, now: float | None = None) -> int:
    """The CLI entry point; exit code 0, or 2 for bad configuration or input file."""
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        sys.stderr.write(f"stream-mlops replay: configuration: {exc}\n")
        return 2
    # The replay publishes no labeled events; not building them saves time.
    engine = Engine(settings, labeled_events=False)
    out = sys.stdout.buffer
    try:
        if str(file) == "-":
            result = replay(sys.stdin.buffer, engine, out, sys.stderr, now=now)
        else:
            with file.open("rb") as handle:
                result = replay(handle, engine, out, sys.stderr, now=now)
    except OSError as exc:
        sys.stderr.write(f"stream-mlops replay: {file}: {exc.strerror}\n")
        return 2
    out.flush()
    sys.stderr.write(result.summary())
    return 0
