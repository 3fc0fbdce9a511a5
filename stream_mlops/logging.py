"""Structured logs: one JSON object per line for machines, or a console view.

Configured once, by the entrypoint (``configure``); library code only asks for
``structlog.get_logger(name)``. Event names are stable, lowercase and dotted
(``engine.started``, ``checkpoint``, ``alert``, ``dead_letter``,
``state.restored``...) so operators can grep and aggregate them.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

import structlog

LogFormat = Literal["json", "console"]


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
