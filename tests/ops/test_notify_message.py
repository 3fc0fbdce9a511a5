"""Reading alerts and promotions from their topics, filtering them, and the webhook bodies."""

from __future__ import annotations

import orjson
import pytest

from stream_mlops.config import WebhookSettings
from stream_mlops.ops.notify_message import (
    NotificationError,
    read_notification,
    slack_body,
    wanted_by,
    webhook_body,
    webhook_headers,
)
from tests.ops.notices import alert, update


def test_an_alert_becomes_a_slack_message_with_text_and_blocks() -> None:
    notification = read_notification("drift_alert", alert())
    body = orjson.loads(slack_body(notification))
    assert body["text"] == (
        ":rotating_light: *Drift* on *fraud* v1: signal `error` (adwin)\n"
        "mean 0.0532 → 0.0768 (effect 0.646 SD) after 5,088 observations, "
        "at 2027-01-15 09:25:47 UTC\n"
        "moved most: `feature:amount` (distance 0.31)"
    )
    assert [b["type"] for b in body["blocks"]] == ["section", "section", "context"]
    assert body["blocks"][0]["text"] == {"type": "mrkdwn", "text": body["text"]}
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert "*Severity*\ndrift" in fields and "*Trigger event*\n`txn-5087`" in fields
    assert "7e063d0c217af6c63a6fc3f7d1c55fab" in body["blocks"][2]["elements"][0]["text"]


def test_a_warning_and_a_promotion_read_as_such() -> None:
    warning = read_notification("drift_alert", alert(severity="warning"))
    assert orjson.loads(slack_body(warning))["text"].startswith(":warning: *Warning* on *fraud*")
    promotion = read_notification("model_update", update())
    assert promotion.notification_id == "model_update:fraud:v2"
    assert promotion.severity is None
    assert orjson.loads(slack_body(promotion))["text"] == (
        ":white_check_mark: *fraud* v2 promoted to champion (replacing v1)\n"
        "mean loss 0.061 vs 0.274 (77.7% lower), on 300 scored events, p = 1.2e-19, "
        "at 2027-01-15 09:31:02 UTC"
    )


def test_text_from_the_stream_cannot_mention_a_channel_or_break_the_markup() -> None:
    notification = read_notification(
        "drift_alert", alert(signal="feature:<!channel> & <https://evil|click>")
    )
    text = orjson.loads(slack_body(notification))["text"]
    assert "<!channel>" not in text and "<https" not in text
    assert "feature:&lt;!channel&gt; &amp; &lt;https://evil|click&gt;" in text


def test_the_json_format_is_the_event_as_it_was_on_its_topic() -> None:
    raw = alert()
    notification = read_notification("drift_alert", raw)
    assert webhook_body(notification, "json") == raw
    assert webhook_body(notification, "slack") == slack_body(notification)


def test_headers_carry_the_idempotency_key_and_the_event_kind() -> None:
    headers = webhook_headers(read_notification("drift_alert", alert("abc123")))
    assert headers["Idempotency-Key"] == "abc123"
    assert headers["X-Stream-Mlops-Event"] == "drift_alert"
    assert headers["Content-Type"].startswith("application/json")


def test_fields_a_newer_engine_adds_are_ignored() -> None:
    event = orjson.loads(alert())
    event["runbook"] = "https://wiki/fraud"
    event["stats"]["p_value"] = 0.001
    notification = read_notification("drift_alert", orjson.dumps(event))
    assert notification.notification_id == event["alert_id"]


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("drift_alert", None, "record has no value (tombstone)"),
        ("drift_alert", b"{not json", "(event): not JSON"),
        ("drift_alert", b"[1, 2]", "(event): not a JSON object but list"),
        ("model_update", alert(), "type: 'drift_alert' on the model_update topic"),
        ("drift_alert", orjson.dumps({"type": "drift_alert"}), "alert_id: Field required"),
        (
            "drift_alert",
            alert().replace(b'"severity":"drift"', b'"severity":"panic"'),
            "severity: Input should be 'warning' or 'drift'",
        ),
        (
            "drift_alert",
            alert("bad\r\nX-Injected: 1"),
            "alert_id: String should match pattern",
        ),
    ],
)
def test_a_record_that_is_not_its_topics_event_is_refused_with_the_reason(
    kind: str, value: bytes | None, reason: str
) -> None:
    with pytest.raises(NotificationError) as refused:
        read_notification(kind, value)  # type: ignore[arg-type]
    assert str(refused.value).startswith(reason)
    assert "\n" not in str(refused.value)


def test_filters_by_event_kind_model_pattern_and_lowest_severity() -> None:
    drift = read_notification("drift_alert", alert(model_id="fraud-eu"))
    warning = read_notification("drift_alert", alert(model_id="fraud-eu", severity="warning"))
    promotion = read_notification("model_update", update("demand"))
    everything = WebhookSettings(url_env="U")
    assert all(wanted_by(everything, n) for n in (drift, warning, promotion))
    fraud_drift = WebhookSettings(url_env="U", models=["fraud*"], min_severity="drift")
    assert [wanted_by(fraud_drift, n) for n in (drift, warning, promotion)] == [True, False, False]
    promotions = WebhookSettings(url_env="U", events=["model_update"], models=["demand", "x"])
    assert [wanted_by(promotions, n) for n in (drift, warning, promotion)] == [False, False, True]
