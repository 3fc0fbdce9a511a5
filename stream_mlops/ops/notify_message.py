"""A notification: a drift alert or a promotion as read from its topic, and what a webhook gets.

``read_notification`` turns a record of ``drift-alerts`` or ``model-updates``
into a ``Notification`` (or a ``NotificationError`` naming what is wrong, for
the dead letter). It reads tolerantly, as the contract asks of readers of the
output topics: fields it does not use, and fields a newer engine adds, are
ignored; the fields it uses are validated.

``wanted_by`` applies a webhook's filter (event kinds, model-id patterns, the
lowest severity); ``webhook_body`` renders the body in the webhook's format:
``"slack"`` (``{"text": ..., "blocks": [...]}``, which Slack's incoming
webhooks and the many services compatible with them take) or ``"json"`` (the
event itself, byte for byte as on its topic); ``webhook_headers`` carries the
notification's id as ``Idempotency-Key``, so that a receiver can drop the
repeat an at-least-once delivery may bring.

>>> raw = (b'{"type": "drift_alert", "alert_id": "7e06", "model_id": "fraud",'
...        b' "model_version": "v1", "signal": "error", "detector": "adwin",'
...        b' "severity": "drift", "ts": "2027-01-15T09:25:47Z",'
...        b' "trigger_event_id": "txn-5087", "observations": 5088,'
...        b' "stats": {"mean_before": 0.0532, "mean_after": 0.0768, "effect_size": 0.646}}')
>>> alert = read_notification("drift_alert", raw)
>>> alert.notification_id, alert.model_id, alert.severity
('7e06', 'fraud', 'drift')
>>> print(headline(alert))
:rotating_light: *Drift* on *fraud* v1: signal `error` (adwin)
>>> print(detail(alert))
mean 0.0532 → 0.0768 (effect 0.646 SD) after 5,088 observations, at 2027-01-15 09:25:47 UTC
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

import stream_mlops
from stream_mlops.config import NotifiedEvent, WebhookSettings
from stream_mlops.events import (
    EventId,
    ModelId,
    ModelVersion,
    describe_validation_error,
    dumps,
    loads,
)

__all__ = [
    "Kind",
    "Notification",
    "NotificationError",
    "detail",
    "headline",
    "read_notification",
    "slack_body",
    "wanted_by",
    "webhook_body",
    "webhook_headers",
]

Kind = NotifiedEvent

# Slack's limits: a section's text up to 3000 characters, a field's up to
# 2000; well below them, a message stays readable on a phone.
MAX_TEXT: Final = 300
MAX_SHIFTS: Final = 3
_SEVERITY_RANK: Final = {"warning": 0, "drift": 1}
# An id goes into an HTTP header: a hash, or the letters of a model id and version.
_HEADER_SAFE: Final = r"^[A-Za-z0-9._:@-]{1,200}$"
USER_AGENT: Final = f"stream-mlops/{stream_mlops.__version__}"


class NotificationError(ValueError):
    """A record that is not the event its topic carries; one line, fit for a dead letter."""


class _Tolerant(BaseModel):
    # Readers of the output topics ignore fields they do not know (the
    # contract lets outputs gain fields); the ones used here are checked.
    model_config = ConfigDict(frozen=True, extra="ignore")


class _Alert(_Tolerant):
    alert_id: Annotated[str, Field(pattern=_HEADER_SAFE)]
    model_id: ModelId
    model_version: ModelVersion
    signal: str
    detector: str
    severity: Literal["warning", "drift"]
    ts: str | float
    trigger_event_id: EventId
    observations: int
    stats: dict[str, Any] = Field(default_factory=dict)


class _Update(_Tolerant):
    model_id: ModelId
    model_version: Annotated[str, Field(pattern=_HEADER_SAFE)]
    parent_version: str | None = None
    ts: str | float
    metrics: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    """One alert or promotion to forward, with the bytes it was read from."""

    kind: Kind
    #: What a receiver de-duplicates on: the alert's ``alert_id`` (deterministic,
    #: the same alert always has the same one); for a promotion
    #: ``model_update:<model_id>:<version>`` (a version is promoted once).
    notification_id: str
    model_id: str
    model_version: str
    #: an alert's severity; None for a promotion
    severity: str | None
    #: the fields used to render it, validated
    fields: Mapping[str, Any]
    #: the record's value, unchanged (the "json" format sends it as it is)
    raw: bytes


def read_notification(kind: Kind, value: bytes | None) -> Notification:
    """The notification in one record of the topic that carries ``kind``.

    >>> read_notification("model_update", b'{"type": "drift_alert"}')
    Traceback (most recent call last):
    ...
    stream_mlops.ops.notify_message.NotificationError: type: 'drift_alert' on the model_update topic
    >>> read_notification("drift_alert", b'{"type": "drift_alert", "alert_id": "a b"}')
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    stream_mlops.ops.notify_message.NotificationError: alert_id: String should match pattern ...
    """
    if value is None:
        raise NotificationError("record has no value (tombstone)")
    try:
        obj = loads(value)
    except ValueError as exc:
        raise NotificationError(f"(event): not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise NotificationError(f"(event): not a JSON object but {type(obj).__name__}")
    found = obj.get("type", kind)
    if found != kind:
        raise NotificationError(f"type: {found!r} on the {kind} topic")
    try:
        if kind == "drift_alert":
            alert = _Alert.model_validate(obj)
            return Notification(
                kind=kind,
                notification_id=alert.alert_id,
                model_id=alert.model_id,
                model_version=alert.model_version,
                severity=alert.severity,
                fields=alert.model_dump(),
                raw=value,
            )
        update = _Update.model_validate(obj)
    except ValidationError as exc:
        raise NotificationError(describe_validation_error(exc)) from None
    return Notification(
        kind=kind,
        notification_id=f"model_update:{update.model_id}:{update.model_version}",
        model_id=update.model_id,
        model_version=update.model_version,
        severity=None,
        fields=update.model_dump(),
        raw=value,
    )


def wanted_by(webhook: WebhookSettings, notification: Notification) -> bool:
    """Whether ``webhook``'s filter lets ``notification`` through.

    >>> alert = Notification("drift_alert", "a1", "fraud-eu", "v3", "warning", {}, b"")
    >>> wanted_by(WebhookSettings(url_env="U", models=["fraud*"]), alert)
    True
    >>> wanted_by(WebhookSettings(url_env="U", min_severity="drift"), alert)
    False
    >>> wanted_by(WebhookSettings(url_env="U", events=["model_update"]), alert)
    False
    """
    if notification.kind not in webhook.events:
        return False
    if not any(fnmatch.fnmatchcase(notification.model_id, p) for p in webhook.models):
        return False
    if notification.severity is None:
        return True
    return _SEVERITY_RANK[notification.severity] >= _SEVERITY_RANK[webhook.min_severity]


def webhook_headers(notification: Notification) -> dict[str, str]:
    """The request's headers: JSON, who sends it, which event, and its idempotency key."""
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": notification.notification_id,
        "X-Stream-Mlops-Event": notification.kind,
    }


def webhook_body(notification: Notification, body_format: Literal["slack", "json"]) -> bytes:
    """The request body in the webhook's format."""
    if body_format == "json":
        return notification.raw
    return slack_body(notification)


# -- the Slack-compatible body ----------------------------------------------


def _escaped(text: str, limit: int = MAX_TEXT) -> str:
    """Text safe inside Slack mrkdwn: ``&``, ``<`` and ``>`` escaped (so a feature
    name cannot mention ``<!channel>``), control characters dropped, cut at ``limit``.

    >>> _escaped("feature:<!channel> & co")
    'feature:&lt;!channel&gt; &amp; co'
    """
    clean = "".join(ch for ch in text if ch.isprintable())
    if len(clean) > limit:
        clean = clean[: limit - 1] + "…"
    return clean.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    return "`" + _escaped(text, 120).replace("`", "'") + "`"


def _number(value: Any) -> str:
    """A statistic as people read it.

    >>> _number(0.052345), _number(5088), _number(None), _number(1.2e-19)
    ('0.05235', '5,088', 'n/a', '1.2e-19')
    """
    if isinstance(value, bool) or value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return _escaped(str(value), 40)


def _when(ts: Any) -> str:
    """Event time as ``YYYY-MM-DD HH:MM:SS UTC``; anything else as it came.

    >>> _when("2027-01-15T09:25:47.250Z"), _when(0), _when("soon")
    ('2027-01-15 09:25:47 UTC', '1970-01-01 00:00:00 UTC', 'soon')
    """
    moment: datetime | None = None
    try:
        if isinstance(ts, int | float) and not isinstance(ts, bool):
            moment = datetime.fromtimestamp(float(ts), UTC)
        elif isinstance(ts, str):
            moment = datetime.fromisoformat(ts)
            moment = moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, OverflowError, OSError):
        moment = None
    if moment is None:
        return _escaped(str(ts), 40)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def headline(notification: Notification) -> str:
    """The first line: what happened to which model (Slack mrkdwn)."""
    f = notification.fields
    model = f"*{_escaped(notification.model_id)}* {_escaped(notification.model_version, 60)}"
    if notification.kind == "drift_alert":
        what = ":rotating_light: *Drift*" if f["severity"] == "drift" else ":warning: *Warning*"
        return f"{what} on {model}: signal {_code(f['signal'])} ({_escaped(f['detector'], 40)})"
    parent = f.get("parent_version")
    replacing = f" (replacing {_escaped(parent, 60)})" if parent else ""
    return f":white_check_mark: {model} promoted to champion{replacing}"


def detail(notification: Notification) -> str:
    """The second line: the numbers behind it."""
    f = notification.fields
    if notification.kind == "drift_alert":
        stats: Mapping[str, Any] = f.get("stats") or {}
        change = ""
        if stats.get("mean_before") is not None or stats.get("mean_after") is not None:
            change = (
                f"mean {_number(stats.get('mean_before'))} → {_number(stats.get('mean_after'))} "
            )
            if stats.get("effect_size") is not None:
                change += f"(effect {_number(stats.get('effect_size'))} SD) "
        line = f"{change}after {_number(f['observations'])} observations, at {_when(f['ts'])}"
        moved = _moved(stats.get("shifts"))
        return f"{line}\nmoved most: {moved}" if moved else line
    metrics: Mapping[str, Any] = f.get("metrics") or {}
    parts = []
    if metrics.get("loss") is not None or metrics.get("champion_loss") is not None:
        loss = (
            f"mean loss {_number(metrics.get('loss'))} vs {_number(metrics.get('champion_loss'))}"
        )
        improvement = metrics.get("relative_improvement")
        if isinstance(improvement, int | float) and not isinstance(improvement, bool):
            loss += f" ({100 * improvement:.1f}% lower)"
        parts.append(loss)
    if metrics.get("scored_events") is not None:
        parts.append(f"on {_number(_whole(metrics.get('scored_events')))} scored events")
    if metrics.get("p_value") is not None:
        parts.append(f"p = {_number(metrics.get('p_value'))}")
    parts.append(f"at {_when(f['ts'])}")
    return ", ".join(parts)


def _whole(value: Any) -> Any:
    """Counts arrive as floats in a promotion's metrics (``300.0``): shown whole."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _moved(shifts: Any) -> str:
    """The label-free signals that moved most, as the alert ranked them."""
    if not isinstance(shifts, list):
        return ""
    shown = []
    for shift in shifts[:MAX_SHIFTS]:
        if not isinstance(shift, dict) or not isinstance(shift.get("signal"), str):
            continue
        distance = shift.get("distance")
        measure = (
            f"distance {_number(distance)}"
            if distance is not None
            else f"effect {_number(shift.get('effect_size'))} SD"
        )
        shown.append(f"{_code(shift['signal'])} ({measure})")
    return ", ".join(shown)


def _fields(notification: Notification) -> list[tuple[str, str]]:
    f = notification.fields
    if notification.kind == "drift_alert":
        return [
            (
                "Model",
                f"{_escaped(notification.model_id)} {_escaped(notification.model_version, 60)}",
            ),
            ("Signal", _code(f["signal"])),
            ("Detector", _escaped(f["detector"], 40)),
            ("Severity", str(f["severity"])),
            ("Event time", _when(f["ts"])),
            ("Trigger event", _code(f["trigger_event_id"])),
        ]
    metrics: Mapping[str, Any] = f.get("metrics") or {}
    return [
        ("Model", _escaped(notification.model_id)),
        ("New champion", _escaped(notification.model_version, 60)),
        ("Previous", _escaped(str(f.get("parent_version") or "none"), 60)),
        ("p-value", _number(metrics.get("p_value"))),
    ]


def slack_body(notification: Notification) -> bytes:
    """A Slack-compatible message: ``text`` (what notifications and older
    clients show) and the same content as blocks."""
    text = f"{headline(notification)}\n{detail(notification)}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{name}*\n{value}"}
                for name, value in _fields(notification)
            ],
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"stream-mlops {notification.kind.replace('_', ' ')} "
                    f"{_code(notification.notification_id)}",
                }
            ],
        },
    ]
    return dumps({"text": text, "blocks": blocks}, sort_keys=False)
