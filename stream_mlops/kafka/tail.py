"""``stream-mlops tail``: follow a topic and print one line per event.

Reads with ``read_committed``, as downstream services do, so an alert shows
up once its transaction commits and never if it aborts; through the
transport's reader, so ``[kafka] client`` and the connection settings of the
configuration apply. ``format_event`` (the
readable line) and ``raw_line`` (``--json``) are pure functions of the record
value; anything that is not a known event, or not JSON at all, is still
printed, safely: control characters are escaped and long text is cut.

>>> alert = (b'{"type": "drift_alert", "alert_id": "a1", "model_id": "fraud",'
...          b' "model_version": "v1", "signal": "error", "detector": "adwin",'
...          b' "severity": "drift", "ts": "2026-11-27T13:05:00Z",'
...          b' "trigger_event_id": "t1", "observations": 99,'
...          b' "stats": {"mean_before": 0.017, "mean_after": 0.052}}')
>>> print(format_event(alert))
2026-11-27 13:05:00.000  DRIFT      fraud@v1  error  adwin  obs=99  mean 0.017 -> 0.052  trigger=t1
>>> print(format_event(b"\\x1b[31mnot json", topic="predictions", partition=0, offset=7))
?                        UNREADABLE predictions[0]@7  (not JSON): '\\x1b[31mnot json'
"""

from __future__ import annotations

import base64
import binascii
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from stream_mlops.config import KafkaSettings
from stream_mlops.events import dumps, loads
from stream_mlops.kafka.backends import open_transport
from stream_mlops.kafka.transport import (
    TopicNotFoundError,
    TopicPartition,
    TopicReader,
    TransportError,
)

# Long enough for a feature list or an error message, short enough for one line.
MAX_TEXT = 160
MAX_FEATURES = 6
MAX_SHIFTS = 3
MAX_METRICS = 6
# How long tail waits for a topic that does not exist yet before giving up.
TOPIC_WAIT_S = 30.0
_TS_WIDTH: Final = 23  # "2026-11-27 13:05:00.000"
_TAG_WIDTH: Final = 10  # "UNREADABLE"


def _clean(text: str, limit: int = MAX_TEXT) -> str:
    """Printable text: control characters escaped (no terminal tricks), cut at ``limit``.

    >>> _clean("ok\\n\\x1b[2J" + "x" * 10, limit=12)
    'ok\\\\n\\\\x1b[...'
    """
    out = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _scalar(value: Any) -> str:
    """A value as a reader wants it: short floats, JSON for the rest.

    >>> _scalar(0.0523456), _scalar(12), _scalar(True), _scalar("a b"), _scalar(None)
    ('0.05235', '12', 'true', 'a b', 'null')
    """
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _clean(value, 40)
    return _clean(dumps(value).decode(), 40)


def _time(value: Any) -> str:
    """Event time as ``YYYY-MM-DD HH:MM:SS.mmm`` (UTC); other text as it is, made safe.

    >>> _time("2026-11-27T13:00:00.123456+00:00"), _time(0), _time("soon")
    ('2026-11-27 13:00:00.123', '1970-01-01 00:00:00.000', 'soon')
    """
    moment: datetime | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            moment = None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
    if moment is None:
        return _clean(str(value), _TS_WIDTH) if value is not None else "?"
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}"


def _line(ts: Any, tag: str, *parts: str) -> str:
    body = "  ".join(p for p in parts if p)
    return f"{_time(ts):<{_TS_WIDTH}}  {tag:<{_TAG_WIDTH}} {body}".rstrip()


def _model(event: Mapping[str, Any]) -> str:
    model_id = _clean(str(event.get("model_id", "?")), 64)
    version = event.get("model_version")
    return f"{model_id}@{_clean(str(version), 32)}" if version is not None else model_id


def _pairs(items: Mapping[str, Any], limit: int) -> str:
    shown = [f"{_clean(str(k), 32)}={_scalar(v)}" for k, v in list(items.items())[:limit]]
    if len(items) > limit:
        shown.append(f"(+{len(items) - limit})")
    return " ".join(shown)


def _alert(event: Mapping[str, Any]) -> str:
    stats = event.get("stats") if isinstance(event.get("stats"), dict) else {}
    assert isinstance(stats, dict)
    parts = [
        _model(event),
        _clean(str(event.get("signal", "?")), 64),
        _clean(str(event.get("detector", "?")), 32),
        f"obs={_scalar(event.get('observations'))}",
    ]
    before, after = stats.get("mean_before"), stats.get("mean_after")
    if before is not None or after is not None:
        parts.append(f"mean {_scalar(before)} -> {_scalar(after)}")
    parts.append(f"trigger={_clean(str(event.get('trigger_event_id', '?')), 64)}")
    shifts = stats.get("shifts")
    if isinstance(shifts, list) and shifts:
        moved = []
        for shift in shifts[:MAX_SHIFTS]:
            if isinstance(shift, dict):
                name = str(shift.get("signal", "?")).removeprefix("feature:")
                effect = shift.get("effect_size")
                sign = "+" if isinstance(effect, int | float) and effect >= 0 else ""
                moved.append(f"{_clean(name, 32)} {sign}{_scalar(effect)}")
        parts.append("moved: " + ", ".join(moved))
    severity = str(event.get("severity", "alert")).upper()
    return _line(event.get("ts"), _clean(severity, _TAG_WIDTH), *parts)


def _retrain(event: Mapping[str, Any]) -> str:
    reasons = event.get("reason_alert_ids")
    count = len(reasons) if isinstance(reasons, list) else 0
    window = event.get("window_start")
    since = ""
    if isinstance(window, dict):
        since = (
            f"window from {_clean(str(window.get('event_id', '?')), 64)} "
            f"({_time(window.get('ts'))})"
        )
    return _line(
        event.get("ts"),
        "RETRAIN",
        _model(event),
        f"after {count} alert{'s' if count != 1 else ''}",
        since,
        f"request={_clean(str(event.get('request_id', '?')), 64)}",
    )


def _flat(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """One level of nesting flattened (``champion.error``), enough for a line."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            for inner, v in value.items():
                if not isinstance(v, dict | list):
                    flat[f"{key}.{inner}"] = v
        elif not isinstance(value, list):
            flat[str(key)] = value
    return flat


def _model_update(event: Mapping[str, Any]) -> str:
    parent = event.get("parent_version")
    metrics = event.get("metrics")
    return _line(
        event.get("ts"),
        "MODEL",
        _model(event),
        f"(parent {_clean(str(parent), 32)})" if parent is not None else "(first version)",
        _pairs(_flat(metrics), MAX_METRICS) if isinstance(metrics, dict) else "",
    )


def _features(event: Mapping[str, Any]) -> str:
    features = event.get("features")
    return _pairs(features, MAX_FEATURES) if isinstance(features, dict) else ""


def _prediction(event: Mapping[str, Any]) -> str:
    score = event.get("score")
    return _line(
        event.get("ts"),
        "PREDICT",
        _clean(str(event.get("event_id", "?")), 64),
        _model(event),
        f"prediction={_scalar(event.get('prediction'))}",
        f"score={_scalar(score)}" if score is not None else "",
        _features(event),
    )


def _outcome(event: Mapping[str, Any]) -> str:
    return _line(
        event.get("ts"),
        "OUTCOME",
        _clean(str(event.get("event_id", "?")), 64),
        f"actual={_scalar(event.get('actual'))}",
    )


def _labeled(event: Mapping[str, Any]) -> str:
    prediction, actual = event.get("prediction"), event.get("actual")
    numeric = all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in (prediction, actual)
    )
    if isinstance(prediction, float) and numeric:
        assert isinstance(actual, int | float)
        verdict = f"error={_scalar(abs(prediction - actual))}"
    else:
        verdict = "right" if prediction == actual else "WRONG"
    return _line(
        event.get("ts"),
        "LABELED",
        _clean(str(event.get("event_id", "?")), 64),
        _model(event),
        f"prediction={_scalar(prediction)} actual={_scalar(actual)}",
        verdict,
    )


def _payload_preview(payload: Any) -> str:
    if not isinstance(payload, str):
        return ""
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return f"payload(base64?)={_clean(payload, 60)}"
    return "payload=" + _clean(raw.decode("utf-8", errors="backslashreplace"), 80)


def _dead_letter(event: Mapping[str, Any]) -> str:
    where = (
        f"{_clean(str(event.get('source_topic', '?')), 64)}"
        f"[{_scalar(event.get('partition'))}]@{_scalar(event.get('offset'))}"
    )
    return _line(
        event.get("ts"),
        "DEAD",
        where,
        _clean(str(event.get("error", "?"))),
        _payload_preview(event.get("payload")),
    )


def _estimate(event: Mapping[str, Any]) -> str:
    found = event.get("estimate")
    estimate: Mapping[str, Any] = found if isinstance(found, dict) else {}
    window = event.get("window_start")
    first = window.get("event_id", "?") if isinstance(window, dict) else "?"
    return _line(
        event.get("ts"),
        "ESTIMATE",
        _model(event),
        f"{_clean(str(first), 64)}..{_clean(str(event.get('last_event_id', '?')), 64)}",
        f"n={_scalar(estimate.get('predictions'))}",
        f"error~{_scalar(estimate.get('estimated_error'))}"
        f" [{_scalar(estimate.get('low'))}, {_scalar(estimate.get('high'))}]",
        f"reference {_scalar(estimate.get('reference_error'))}"
        f" [{_scalar(estimate.get('reference_low'))}, {_scalar(estimate.get('reference_high'))}]",
        "OUTSIDE the band" if estimate.get("outside_band") is True else "",
    )


_FORMATTERS: Final[dict[str, Callable[[Mapping[str, Any]], str]]] = {
    "drift_alert": _alert,
    "retrain_request": _retrain,
    "model_update": _model_update,
    "prediction": _prediction,
    "outcome": _outcome,
    "labeled_event": _labeled,
    "dead_letter": _dead_letter,
    "performance_estimate": _estimate,
}

# Topics whose events may omit "type" (producers need not send it): the
# contract's topic names (docs/contract.md) tell what the event is.
_TOPIC_TYPES: Final = {
    "predictions": "prediction",
    "outcomes": "outcome",
    "drift-alerts": "drift_alert",
    "retrain-requests": "retrain_request",
    "model-updates": "model_update",
    "labeled-events": "labeled_event",
    "dead-letters": "dead_letter",
    "performance-estimates": "performance_estimate",
}


# Without a "type", an object counts as the topic's event only if it has that
# event's identifying fields; anything else prints as UNKNOWN.
_IDENTIFYING: Final = {
    "prediction": ("event_id", "prediction"),
    "outcome": ("event_id", "actual"),
    "drift_alert": ("alert_id", "signal"),
    "retrain_request": ("request_id",),
    "model_update": ("model_version", "metrics"),
    "labeled_event": ("event_id", "actual", "prediction"),
    "dead_letter": ("source_topic", "error"),
    "performance_estimate": ("estimate_id", "estimate"),
}


def _kind(event: Mapping[str, Any], topic: str) -> str | None:
    kind = event.get("type")
    if kind is not None:
        return kind if isinstance(kind, str) else None
    kind = _TOPIC_TYPES.get(topic)
    if kind is None or not all(f in event for f in _IDENTIFYING[kind]):
        return None
    return kind


def _where(topic: str, partition: int | None, offset: int | None) -> str:
    if not topic:
        return ""
    return f"{_clean(topic, 64)}[{partition if partition is not None else '?'}]@" + (
        str(offset) if offset is not None else "?"
    )


def format_event(
    value: bytes | None,
    *,
    topic: str = "",
    partition: int | None = None,
    offset: int | None = None,
    record_ts_ms: int | None = None,
) -> str:
    """One readable line for a record value, whatever it contains.

    A record whose value carries no event time shows the record's timestamp
    (``record_ts_ms``, what Kafka stamped) in the time column instead.

    >>> print(format_event(None, topic="t", partition=0, offset=3, record_ts_ms=1_790_000_000_500))
    2026-09-21 14:13:20.500  TOMBSTONE  t[0]@3
    """
    where = _where(topic, partition, offset)
    stamped = record_ts_ms / 1000 if record_ts_ms is not None else None
    if value is None:
        return _line(stamped, "TOMBSTONE", where)
    try:
        event = loads(value)
    except ValueError:
        text = value.decode("utf-8", errors="backslashreplace")
        return _line(stamped, "UNREADABLE", where, f"(not JSON): {_clean(repr(text))}")
    if not isinstance(event, dict):
        return _line(stamped, "UNKNOWN", where, _clean(dumps(event).decode()))
    when = event.get("ts", stamped)
    kind = _kind(event, topic)
    formatter = _FORMATTERS.get(kind) if kind is not None else None
    if formatter is None:
        return _line(when, "UNKNOWN", where, _clean(dumps(event).decode()))
    try:
        return formatter(event)
    except Exception:  # a known type with unexpected field shapes: still print it
        return _line(when, "UNKNOWN", where, _clean(dumps(event).decode()))


def raw_line(value: bytes | None) -> str:
    """The record for ``--json``: the event as compact JSON on one line.

    Values that are not JSON become a JSON string (escaped), so every line of
    the output is still one JSON value.

    >>> raw_line(b'{"type": "outcome",\\n "actual": 1}')
    '{"type":"outcome","actual":1}'
    >>> raw_line(b"\\xffoops")
    '"\\\\\\\\xffoops"'
    >>> raw_line(None)
    'null'
    """
    if value is None:
        return "null"
    try:
        return dumps(loads(value), sort_keys=False).decode()
    except ValueError:
        text = value.decode("utf-8", errors="backslashreplace")
        return dumps(text).decode()


def command(
    topic: str,
    *,
    kafka: KafkaSettings,
    raw_json: bool = False,
    from_beginning: bool = False,
    max_events: int | None = None,
    out: TextIO | None = None,
) -> int:
    """Follow ``topic`` until interrupted (or ``max_events`` were printed); the exit code.

    ``kafka`` names the cluster and the client library (``connection_settings``).
    """
    stream = out or sys.stdout
    try:
        reader = open_transport(kafka, client_id="stream-mlops-tail").reader(read_committed=True)
    except (TransportError, ValueError) as exc:
        print(f"stream-mlops tail: {exc}", file=sys.stderr)
        return 1
    try:
        try:
            partitions = _wait_for_topic(reader, topic)
        except TransportError as exc:
            print(f"stream-mlops tail: {exc}", file=sys.stderr)
            return 1
        reader.assign(dict.fromkeys(partitions, "earliest" if from_beginning else "latest"))
        printed = 0
        while max_events is None or printed < max_events:
            # Across partitions, in the order the records were written.
            records = sorted(
                reader.poll(0.5),
                key=lambda r: (r.timestamp_ms or 0, r.partition, r.offset),
            )
            for r in records:
                line = (
                    raw_line(r.value)
                    if raw_json
                    else format_event(
                        r.value,
                        topic=r.topic,
                        partition=r.partition,
                        offset=r.offset,
                        record_ts_ms=r.timestamp_ms,
                    )
                )
                print(line, file=stream, flush=True)
                printed += 1
                if max_events is not None and printed >= max_events:
                    break
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # `stream-mlops tail | head`: the reader left, which is not an error.
        pass
    finally:
        reader.close()
    return 0


def _wait_for_topic(reader: TopicReader, topic: str) -> list[TopicPartition]:
    """The topic's partitions, waiting up to ``TOPIC_WAIT_S`` for it to be created."""
    deadline = time.monotonic() + TOPIC_WAIT_S
    while True:
        try:
            return reader.partitions(topic)
        except TopicNotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
