"""The engine's core without a broker: over any iterable of events, or a JSONL file.

``replay(events)`` runs prediction and outcome events through an ``Engine`` in
the order given and yields what the engine would publish (drift alerts and
retrain requests), as it makes them: it streams, so memory stays within the
join's bound however many events there are. The same events and settings give
the same outputs, byte for byte once encoded.

``stream-mlops replay FILE`` (``command``) is ``replay`` over a file's lines:
the outputs as JSONL on stdout, a summary on stderr. A malformed line (not an
event, or longer than ``[kafka] max_record_bytes``, as on Kafka) and an event
the engine refuses (``EventError``: too far ahead in event time, over a limit,
an unknown model) are reported with the line number, counted apart, and skipped.

What the wall clock means for a file: by default nothing. A file is history,
judged by its own event time (the watermark rules of ``stream_mlops.event_time``
hold), so the output depends on the file alone. ``--wall-clock now`` adds the
engine's check against a wall clock, with the time the replay starts (a
recorded file cannot hold events from after that); ``--wall-clock TIME`` pins it,
for reruns that must give the same bytes.

>>> events = [
...     {"type": "prediction", "event_id": "e1", "model_id": "fraud", "model_version": "v1",
...      "ts": 0, "features": {"amount": 12.5}, "prediction": 1, "score": 0.9},
...     {"type": "outcome", "event_id": "e1", "ts": 30, "actual": 0},
... ]
>>> list(replay(events))        # one joined pair: far too little to alert on
[]
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from stream_mlops.config import ConfigError, Settings, load_settings
from stream_mlops.engine import Engine, EngineStats, Output
from stream_mlops.events import (
    EventError,
    OutcomeEvent,
    PredictionEvent,
    decode_input,
    dumps,
    encode,
)

__all__ = ["EventLike", "ReplayResult", "command", "replay", "replay_lines"]

EventLike = PredictionEvent | OutcomeEvent | Mapping[str, Any] | bytes | str
"""An input event: a model, a dict of its JSON fields, or one JSON line."""

ErrorHandler = Callable[[int, EventError], None]


def _decoded(item: EventLike) -> PredictionEvent | OutcomeEvent | None:
    """The event ``item`` stands for; None for a blank line."""
    if isinstance(item, bytes | str):
        return decode_input(item) if item.strip() else None
    if isinstance(item, PredictionEvent | OutcomeEvent):
        return item
    if isinstance(item, Mapping):
        # Through JSON: a dict means exactly what the same event means on a
        # topic or in a file (and is validated the same way).
        try:
            raw = dumps(dict(item), sort_keys=False)
        except TypeError as exc:
            raise EventError(f"(event): not JSON-serialisable ({exc})") from None
        return decode_input(raw)
    raise TypeError(
        f"replay takes PredictionEvent, OutcomeEvent, dicts or JSON lines, "
        f"not {type(item).__name__}"
    )


def replay(
    events: Iterable[EventLike],
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    on_error: ErrorHandler | None = None,
    on_refused: ErrorHandler | None = None,
    now: float | None = None,
) -> Iterator[Output]:
    """The events the engine publishes for ``events``, in order, as it makes them.

    ``events`` are ``PredictionEvent`` and ``OutcomeEvent`` models, dicts of
    their JSON fields, or JSON lines (bytes or str, as read from a JSONL file;
    blank lines are skipped); outside a model, ``"type"`` is required.

    ``settings`` configure a fresh engine (default: ``Settings()``), which
    yields drift alerts and retrain requests. Pass ``engine`` instead to drive
    one of your own: to read its ``stats`` afterwards, or to get the labeled
    events too (``Engine(settings, labeled_events=True)``).

    A malformed event raises ``EventError`` naming its position (1 for the
    first, as a line number); with ``on_error(position, error)`` it is reported
    there and skipped instead. An event the engine refuses (too far ahead in
    event time, over a limit) goes to ``on_refused`` (default: ``on_error``).
    ``now`` is the wall clock the events are judged against (None: none).
    """
    if engine is None:
        engine = Engine(settings if settings is not None else Settings(), labeled_events=False)
    elif settings is not None:
        raise ValueError("replay: pass settings or an engine, not both")
    process = engine.process
    refused = on_refused if on_refused is not None else on_error
    for position, item in enumerate(events, start=1):
        try:
            event = _decoded(item)
        except EventError as exc:
            if on_error is None:
                raise EventError(f"event {position}: {exc}") from None
            on_error(position, exc)
            continue
        if event is None:
            continue
        try:
            outputs = process(event, now=now)
        except EventError as exc:
            if refused is None:
                raise EventError(f"event {position}: {exc}") from None
            refused(position, exc)
            continue
        yield from outputs


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


def replay_lines(
    lines: Iterable[bytes],
    engine: Engine,
    out: BinaryIO,
    errors: TextIO,
    *,
    now: float | None = None,
) -> ReplayResult:
    """``replay`` over JSON lines: outputs as JSONL to ``out``, bad lines to ``errors``."""
    count = malformed = refused = 0
    max_bytes = engine.settings.kafka.max_record_bytes

    def counted() -> Iterator[bytes]:
        nonlocal count, malformed
        for count, line in enumerate(lines, start=1):
            if len(line) > max_bytes and (size := len(line.rstrip(b"\r\n"))) > max_bytes:
                # As on Kafka, where a record over the limit is a dead letter.
                malformed += 1
                errors.write(f"line {count}: {size} bytes, over max_record_bytes={max_bytes}\n")
                yield b""  # skipped as blank, so later lines keep their numbers
                continue
            yield line

    def report(line: int, error: EventError) -> None:
        nonlocal malformed
        malformed += 1
        errors.write(f"line {line}: {error}\n")

    def report_refused(line: int, error: EventError) -> None:
        nonlocal refused
        refused += 1
        errors.write(f"line {line}: {error}\n")

    write = out.write
    for output in replay(
        counted(), engine=engine, on_error=report, on_refused=report_refused, now=now
    ):
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
            result = replay_lines(sys.stdin.buffer, engine, out, sys.stderr, now=now)
        else:
            with file.open("rb") as handle:
                result = replay_lines(handle, engine, out, sys.stderr, now=now)
    except OSError as exc:
        sys.stderr.write(f"stream-mlops replay: {file}: {exc.strerror}\n")
        return 2
    out.flush()
    sys.stderr.write(result.summary())
    return 0
