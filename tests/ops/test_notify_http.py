"""One webhook request against a local HTTP server on loopback."""

from __future__ import annotations

import socket
import time

from stream_mlops.ops.notify_http import post, redact_url
from tests.ops.webhook_server import Received, WebhookServer, always

HEADERS = {"Content-Type": "application/json", "Idempotency-Key": "k1"}


def test_a_delivery_posts_the_body_and_headers() -> None:
    with WebhookServer() as server:
        response = post(server.url(), b'{"text": "hi"}', HEADERS, timeout_s=5)
    assert response.status == 200 and response.detail == "HTTP 200 OK: ok"
    (request,) = server.received
    assert request.path == "/services/T000/B000/s3cr3t-token"
    assert request.body == b'{"text": "hi"}' and request.key == "k1"


def test_an_error_status_quotes_the_start_of_the_body_and_never_the_url() -> None:
    with WebhookServer(always(500, b"invalid_token\n" + b"x" * 500)) as server:
        response = post(server.url(), b"{}", HEADERS, timeout_s=5)
    assert response.status == 500
    assert response.detail.startswith("HTTP 500 Internal Server Error: invalid_token xxx")
    assert len(response.detail) < 200
    assert "s3cr3t" not in response.detail and "127.0.0.1" not in response.detail


def test_retry_after_is_read_from_a_429() -> None:
    with WebhookServer(lambda _r: (429, {"Retry-After": "7"}, b"rate_limited")) as server:
        response = post(server.url(), b"{}", HEADERS, timeout_s=5)
    assert (response.status, response.retry_after_s) == (429, 7.0)


def test_a_redirect_is_reported_not_followed() -> None:
    def moved(_request: Received) -> tuple[int, dict[str, str], bytes]:
        return 302, {"Location": "/elsewhere"}, b""

    with WebhookServer(moved) as server:
        response = post(server.url(), b"{}", HEADERS, timeout_s=5)
        time.sleep(0.2)
    assert response.status == 302
    assert [r.path for r in server.received] == ["/services/T000/B000/s3cr3t-token"]


def test_no_server_and_a_silent_server_are_failures_without_a_status() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = post(f"http://127.0.0.1:{port}/hook/s3cr3t", b"{}", HEADERS, timeout_s=5)
    assert refused.status is None
    assert refused.detail.startswith("no response:") and "s3cr3t" not in refused.detail

    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        timed_out = post(
            f"http://127.0.0.1:{silent.getsockname()[1]}/hook", b"{}", HEADERS, timeout_s=0.5
        )
    assert timed_out.status is None
    assert timed_out.detail == "no response within 0.5 s"
    assert time.monotonic() - started < 5


def test_redaction_keeps_scheme_host_and_port_only() -> None:
    assert redact_url("https://hooks.slack.com/services/T/B/XYZ") == "https://hooks.slack.com/…"
    assert redact_url("https://u:p@[::1]:8443/a?b=c") == "https://[::1]:8443/…"
    assert redact_url("https://example.com/") == "https://example.com"


def test_a_url_urllib_cannot_use_is_a_failure_that_does_not_quote_it() -> None:
    response = post("hooks.test/no-scheme/s3cr3t", b"{}", HEADERS, timeout_s=1)
    assert response == response.__class__(None, "the URL is not usable by urllib")
