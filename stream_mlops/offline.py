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
``--report FILE.html`` and ``--summary-json FILE`` add a page and a
machine-readable summary (``stream_mlops.replay_report``); on a terminal,
stderr shows progress. None of them changes a byte of stdout. ``--reference
FILE`` pins every model's reference to a file of known-good events
(``stream_mlops.reference``).

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
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, BinaryIO, Final, TextIO

from stream_mlops.config import ConfigError, ReferenceFile, Settings, load_settings
from stream_mlops.engine import Engine, EngineStats, Output
from stream_mlops.events import (
    EventError,
    InputEvent,
    LabeledEvent,
    OutcomeEvent,
    PredictionEvent,
    decode_input,
    dumps,
    encode,
)
from stream_mlops.reference import ModelReference, load_references
from stream_mlops.replay_report import ReplayRecorder, report_html, summary_document

__all__ = ["EventLike", "ReplayResult", "command", "replay", "replay_lines"]

EventLike = PredictionEvent | OutcomeEvent | Mapping[str, Any] | bytes | str
"""An input event: a model, a dict of its JSON fields, or one JSON line."""

ErrorHandler = Callable[[int, EventError], None]
EventHandler = Callable[[int, InputEvent], None]


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
    on_event: EventHandler | None = None,
    now: float | None = None,
    references: Mapping[str, ModelReference] | None = None,
) -> Iterator[Output]:
    """The events the engine publishes for ``events``, in order, as it makes them.

    ``events`` are ``PredictionEvent`` and ``OutcomeEvent`` models, dicts of
    their JSON fields, or JSON lines (bytes or str, as read from a JSONL file;
    blank lines are skipped); outside a model, ``"type"`` is required.

    ``settings`` configure a fresh engine (default: ``Settings()``), which
    yields drift alerts, retrain requests and performance estimates. Pass
    ``engine`` instead to drive one of your own: to read its ``stats``
    afterwards, or to get the labeled events too (``Engine(settings, labeled_events=True)``).

    A malformed event raises ``EventError`` naming its position (1 for the
    first, as a line number); with ``on_error(position, error)`` it is reported
    there and skipped instead. An event the engine refuses (too far ahead in
    event time, over a limit, an unknown model) goes to ``on_refused``
    (default: ``on_error``). ``on_event(position, event)`` sees each event the
    engine took, before its outputs are yielded. ``now`` is the wall clock the
    events are judged against (None: none). ``references``: the pinned
    references of a fresh engine (``stream_mlops.reference.load_references``).
    """
    if engine is None:
        engine = Engine(
            settings if settings is not None else Settings(),
            labeled_events=False,
            references=references,
        )
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
        if on_event is not None:
            on_event(position, event)
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
            + (
                "; quality problems: " + " ".join(f"{k}={v}" for k, v in s.quality_problems.items())
                if s.quality_problems
                else ""
            )
            + "\n"
        )


# How often progress is redrawn, and how many lines go by between looks at
# the clock (a look costs more than a line of bookkeeping).
PROGRESS_EVERY_S: Final = 0.5
PROGRESS_CHECK_LINES: Final = 4096


class Progress:
    """One line on a terminal, redrawn in place: lines read, share of the file, rate."""

    def __init__(self, stream: TextIO, total_bytes: int | None) -> None:
        self._stream = stream
        self._total = total_bytes
        self._started = time.monotonic()
        self._last = self._started - PROGRESS_EVERY_S  # the first look draws
        self._bytes = 0
        self._shown = False

    def advance(self, lines: int, size: int, alerts: int) -> None:
        self._bytes += size
        if lines % PROGRESS_CHECK_LINES:
            return
        now = time.monotonic()
        if now - self._last < PROGRESS_EVERY_S:
            return
        self._last = now
        share = f" ({100 * self._bytes / self._total:.0f}%)" if self._total else ""
        rate = lines / (now - self._started)
        self._stream.write(
            f"\r\x1b[Kreplay: {lines:,} lines{share}, {alerts:,} alerts, {rate:,.0f} lines/s"
        )
        self._stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the line, so that what is written next starts clean."""
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._shown = False


def replay_lines(
    lines: Iterable[bytes],
    engine: Engine,
    out: BinaryIO,
    errors: TextIO,
    *,
    now: float | None = None,
    recorder: ReplayRecorder | None = None,
    progress: Progress | None = None,
) -> ReplayResult:
    """``replay`` over JSON lines: outputs as JSONL to ``out``, bad lines to ``errors``.

    ``recorder`` sees every event, output and bad line (labeled events, if the
    engine makes them, go only to it); ``progress`` is advanced line by line.
    Neither changes what is written to ``out``.
    """
    count = malformed = refused = alerts = 0
    max_bytes = engine.settings.kafka.max_record_bytes

    def counted() -> Iterator[bytes]:
        nonlocal count
        for count, line in enumerate(lines, start=1):
            if progress is not None:
                progress.advance(count, len(line), alerts)
            if len(line) > max_bytes and (size := len(line.rstrip(b"\r\n"))) > max_bytes:
                # As on Kafka, where a record over the limit is a dead letter.
                report(count, EventError(f"{size} bytes, over max_record_bytes={max_bytes}"))
                yield b""  # skipped as blank, so later lines keep their numbers
                continue
            yield line

    def bad_line(line: int, error: EventError, *, was_refused: bool) -> None:
        if progress is not None:
            progress.clear()
        errors.write(f"line {line}: {error}\n")
        if recorder is not None:
            recorder.reject(line, error, refused=was_refused)

    def report(line: int, error: EventError) -> None:
        nonlocal malformed
        malformed += 1
        bad_line(line, error, was_refused=False)

    def report_refused(line: int, error: EventError) -> None:
        nonlocal refused
        refused += 1
        bad_line(line, error, was_refused=True)

    write = out.write
    on_event = recorder.event if recorder is not None else None
    for output in replay(
        counted(),
        engine=engine,
        on_error=report,
        on_refused=report_refused,
        on_event=on_event,
        now=now,
    ):
        if recorder is not None:
            recorder.output(count, output)
            if type(output) is LabeledEvent:
                continue  # the signals' error, for the report; not a replay output
        alerts += 1
        write(encode(output) + b"\n")
    if progress is not None:
        progress.clear()
    for notice in engine.take_notices():
        errors.write(f"notice: {notice}\n")
    return ReplayResult(engine.stats, count, malformed, refused)


def _open_outputs(paths: list[Path | None]) -> list[IO[bytes] | None]:
    """Each output file opened now, so that a path that cannot be written fails
    before the replay rather than after it."""
    opened: list[IO[bytes] | None] = []
    try:
        for path in paths:
            opened.append(None if path is None else path.open("wb"))
    except OSError:
        _close(opened)
        raise
    return opened


def _close(files: Iterable[IO[bytes] | None]) -> None:
    for output in files:
        if output is not None:
            output.close()


def _plotting_error() -> str | None:
    """Why a report cannot be drawn (matplotlib missing), checked before a long replay."""
    from stream_mlops.plotting import PlottingUnavailableError, pyplot

    try:
        pyplot()
    except PlottingUnavailableError as exc:
        return str(exc)
    return None


def _replay_file(
    file: Path,
    engine: Engine,
    recorder: ReplayRecorder | None,
    show_progress: bool,
    now: float | None,
) -> ReplayResult:
    """``replay_lines`` over the file (or stdin for ``-``), outputs to stdout."""
    out = sys.stdout.buffer
    if str(file) == "-":
        progress = Progress(sys.stderr, None) if show_progress else None
        return replay_lines(
            sys.stdin.buffer, engine, out, sys.stderr, now=now, recorder=recorder, progress=progress
        )
    with file.open("rb") as lines:
        progress = Progress(sys.stderr, file.stat().st_size) if show_progress else None
        return replay_lines(
            lines, engine, out, sys.stderr, now=now, recorder=recorder, progress=progress
        )


def _references(settings: Settings) -> dict[str, ModelReference]:
    """The pinned references of a replay: files only (no cluster to read a window from)."""
    if settings.defaults.reference == "champion" or any(
        settings.model(m).reference == "champion" for m in settings.models
    ):
        raise ConfigError(
            'reference: "champion" is read from the cluster the training window is on '
            "(stream-mlops run); a replay takes a file: --reference FILE or "
            'reference = {file = "ref.jsonl"}'
        )
    return load_references(settings)


def command(
    file: Path,
    *,
    config_path: Path | None = None,
    now: float | None = None,
    report_path: Path | None = None,
    summary_path: Path | None = None,
    show_progress: bool | None = None,
    reference_path: Path | None = None,
) -> int:
    """The CLI entry point; exit code 0, or 2 for bad configuration, input or output file.

    ``show_progress`` None: progress on stderr when it is a terminal.
    ``reference_path``: every model's pinned reference (``--reference``).
    """
    try:
        settings = load_settings(config_path)
        if reference_path is not None:
            settings = settings.with_reference(ReferenceFile(file=str(reference_path)))
        references = _references(settings)
    except ConfigError as exc:
        sys.stderr.write(f"stream-mlops replay: configuration: {exc}\n")
        return 2
    if report_path is not None and (missing := _plotting_error()) is not None:
        sys.stderr.write(f"stream-mlops replay: --report: {missing}\n")
        return 2
    try:
        report_file, summary_file = _open_outputs([report_path, summary_path])
    except OSError as exc:
        sys.stderr.write(f"stream-mlops replay: {exc.filename}: {exc.strerror}\n")
        return 2
    recorder = None
    if report_file is not None or summary_file is not None:
        recorder = ReplayRecorder(settings, signals=report_file is not None)
    # The replay publishes no labeled events; not building them saves time. The
    # report takes the error signal from them.
    engine = Engine(settings, labeled_events=report_file is not None, references=references)
    started = time.monotonic()
    try:
        result = _replay_file(
            file,
            engine,
            recorder,
            sys.stderr.isatty() if show_progress is None else show_progress,
            now,
        )
    except OSError as exc:
        sys.stderr.write(f"stream-mlops replay: {file}: {exc.strerror}\n")
        _close([report_file, summary_file])
        return 2
    seconds = time.monotonic() - started
    sys.stdout.buffer.flush()
    sys.stderr.write(result.summary())
    if recorder is not None:
        summary = summary_document(
            recorder,
            result.stats,
            file=str(file),
            config=str(config_path) if config_path is not None else None,
            lines=result.lines,
            seconds=seconds,
        )
        if summary_file is not None:
            with summary_file:
                summary_file.write(dumps(summary, sort_keys=False) + b"\n")
        if report_file is not None:
            with report_file:
                report_file.write(report_html(recorder, summary).encode("utf-8"))
    return 0
