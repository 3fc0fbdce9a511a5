"""Structured logs: one JSON object per line for machines, or a console view.

Configured once, by the entrypoint (``configure``); library code only asks for
``structlog.get_logger(name)``. Event names are stable, lowercase and dotted
(``engine.started``, ``checkpoint``, ``alert``, ``dead_letter``,
``state.restored``...) so operators can grep and aggregate them.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Literal

import structlog

LogFormat = Literal["json", "console"]

# A client line said again within this long is dropped.
REPEAT_INTERVAL_S = 60.0
# Durations in a client line ("after 0ms", "waiting 5.26 secs") differ from one
# retry to the next; they do not make it a different line.
_DURATION = re.compile(r"\d+(?:\.\d+)?(?= ?(?:ms|secs?)\b)")
# Distinct lines remembered at most (then forgotten all at once).
_REMEMBERED = 1000


class RepeatFilter(logging.Filter):
    """Lets a Kafka client's line through at most once per ``interval_s``.

    librdkafka logs the same refused connection on every reconnect: a service
    without a cluster printed almost two hundred identical lines before its
    one-line failure, an operator page over a thousand a minute.

    >>> repeats = RepeatFilter(60.0, clock=lambda: 0.0)
    >>> line = lambda text: logging.LogRecord("kafka", 40, "", 0, text, None, None)
    >>> [repeats.filter(line(t)) for t in ("refused after 0ms", "refused after 3ms", "other")]
    [True, False, True]
    """

    def __init__(
        self, interval_s: float = REPEAT_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, _DURATION.sub("#", record.getMessage()))
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            return False
        if len(self._last) >= _REMEMBERED:
            self._last.clear()
        self._last[key] = now
        return True


def _leading_fields(
    _logger: object, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Put timestamp, level and event first, so a tailing person reads them first."""
    ordered = {k: event_dict.pop(k) for k in ("timestamp", "level", "event") if k in event_dict}
    ordered.update(event_dict)
    return ordered


def configure(log_format: LogFormat = "json", level: str = "INFO") -> None:
    """Route structlog (and the standard library's warnings) to stdout.

    >>> configure("json")
    >>> structlog.get_logger("demo").info("checkpoint", events=3)  # doctest: +ELLIPSIS
    {"timestamp": "...", "level": "info", "event": "checkpoint", "events": 3}
    """
    renderer: structlog.typing.Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _leading_fields,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        # No file argument: each logger writes to sys.stdout as it is when the
        # logger is made, so a replaced stdout (tests capturing output, a
        # closed capture afterwards) never holds on to a stale stream.
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    # kafka-python logs through the standard library; keep its warnings, as JSON-free lines
    # on stderr, so stdout stays one JSON object per line.
    # STREAM_MLOPS_CLIENT_LOG_LEVEL=DEBUG shows the Kafka client's own group and
    # fetch decisions when a partition looks stuck.
    client_level = os.environ.get("STREAM_MLOPS_CLIENT_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=logging.getLevelNamesMapping()[client_level], stream=sys.stderr)
    # A client retrying a cluster that is down says the same thing many times a
    # second; at DEBUG every line is shown.
    for handler in logging.getLogger().handlers if client_level != "DEBUG" else ():
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter())
