"""The engine's core without a broker: over any iterable of events, or a JSONL file.

``replay(events)`` runs prediction and outcome events through an ``Engine`` in
the order given and yields what the engine would publish (drift alerts and
retrain requests), as it makes them: it streams, so memory stays within the
join's bound however many events there are. The same events and settings give
the same outputs, byte for byte once encoded.

``stream-mlops replay FILE`` (``command``) is ``replay`` over a file's lines:
the outputs as JSONL on stdout, each malformed line reported with its number
and skipped, and a summary on stderr.

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
    there and skipped instead.
    """
    if engine is None:
        engine = Engine(settings if settings is not None else Settings(), labeled_events=False)
    elif settings is not None:
        raise ValueError("replay: pass settings or an engine, not both")
    process = engine.process
    for position, item in enumerate(events, start=1):
        try:
            event = _decoded(item)
            if event is None:
                continue
            outputs = process(event)
        except EventError as exc:
            if on_error is None:
                raise EventError(f"event {position}: {exc}") from None
            on_error(position, exc)
            continue
        yield from outputs


class ReplayResult:
    """What a replay saw besides the engine's own statistics."""

    def __init__(self, stats: EngineStats, lines: int, malformed: int) -> None:
        self.stats = stats
        self.lines = lines
        self.malformed = malformed

    def summary(self) -> str:
        s = self.stats
        alerts = " ".join(f"{k}={v}" for k, v in s.alerts_by_signal.items()) or "none"
        return (
            f"replay: {self.lines} lines, {s.predictions + s.outcomes} events "
            f"({s.predictions} predictions, {s.outcomes} outcomes), {self.malformed} malformed; "
            f"joined {s.joined}, expired {s.expired_predictions} predictions and "
            f"{s.orphan_outcomes_expired} orphan outcomes, evicted {s.evicted}, "
            f"duplicates {s.duplicates}, pending {s.pending}; "
            f"alerts by signal: {alerts}; retrain requests {s.retrain_requests}\n"
        )


def replay_lines(
    lines: Iterable[bytes], engine: Engine, out: BinaryIO, errors: TextIO
) -> ReplayResult:
    """``replay`` over JSON lines: outputs as JSONL to ``out``, bad lines to ``errors``."""
    count = malformed = 0

    def counted() -> Iterator[bytes]:
        nonlocal count
        for count, line in enumerate(lines, start=1):  # noqa: B007 (count is the result)
            yield line

    def report(line: int, error: EventError) -> None:
        nonlocal malformed
        malformed += 1
        errors.write(f"line {line}: {error}\n")

    write = out.write
    for output in replay(counted(), engine=engine, on_error=report):
        write(encode(output) + b"\n")
    return ReplayResult(engine.stats, count, malformed)


def command(file: Path, *, config_path: Path | None = None) -> int:
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
            result = replay_lines(sys.stdin.buffer, engine, out, sys.stderr)
        else:
            with file.open("rb") as handle:
                result = replay_lines(handle, engine, out, sys.stderr)
    except OSError as exc:
        sys.stderr.write(f"stream-mlops replay: {file}: {exc.strerror}\n")
        return 2
    out.flush()
    sys.stderr.write(result.summary())
    return 0
