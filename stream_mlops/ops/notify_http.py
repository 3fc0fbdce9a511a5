"""One webhook request over HTTP, and a webhook's URL as logs may show it.

The standard library's ``urllib.request`` does the POST. A notifier sends a
handful of small requests an hour, one at a time, from a loop that must not
block on anything but the request's own timeout: connection pooling, HTTP/2
or async (what a client such as httpx adds) buy nothing here, and the core
install stays without another dependency. Retries are not the client's job
either: the notifier's delivery state machine
(``stream_mlops.ops.notify_delivery``) decides them, because a retry must
keep the Kafka offset uncommitted while it waits.

Redirects are not followed (``urllib`` would turn the POST into a GET and
drop the body): a 3xx is reported as the response it is. Proxies from the
environment (``https_proxy``, ``no_proxy``) apply, as for any urllib request.

Webhook URLs carry their token in the path or the query (Slack's
``/services/T…/B…/<secret>``), so nothing here puts a URL into a message:
``redact_url`` keeps only the scheme, host and port, for logs.
"""

from __future__ import annotations

import email.utils
import http.client
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

__all__ = ["HttpResponse", "post", "redact_url"]

# What a failure's reason quotes of the response body: enough for Slack's
# one-word errors ("invalid_payload", "no_service"), not a page of HTML.
BODY_QUOTE: Final = 120


@dataclass(frozen=True)
class HttpResponse:
    """What one request came back with."""

    #: the HTTP status; None when no response came (refused, timed out, reset)
    status: int | None
    #: a one-line reason: the status line and the start of the body, or the error
    detail: str
    #: the server's Retry-After, in seconds, if it sent one
    retry_after_s: float | None = None


def redact_url(url: str) -> str:
    """Scheme, host and port only: what a log line may say about a webhook.

    >>> redact_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET")
    'https://hooks.slack.com/…'
    >>> redact_url("http://user:pw@127.0.0.1:8080/hook?token=abc")
    'http://127.0.0.1:8080/…'
    >>> redact_url("http://alerts.example.com")
    'http://alerts.example.com'
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "(invalid URL)"
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    where = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    hidden = parts.path not in ("", "/") or parts.query or parts.fragment
    return where + "/…" if hidden else where


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header in seconds: a number of seconds, or an HTTP date.

    >>> retry_after("30"), retry_after(None), retry_after("soon")
    (30.0, None, None)
    >>> now = datetime(2026, 11, 27, 13, 0, 0, tzinfo=UTC)
    >>> retry_after("Fri, 27 Nov 2026 13:00:05 GMT", now)
    5.0
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None  # urllib then raises HTTPError with the 3xx


_OPENER: Final = urllib.request.build_opener(_NoRedirect)


def _quote(body: bytes) -> str:
    text = body[: BODY_QUOTE + 1].decode("utf-8", "replace")
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text if len(text) <= BODY_QUOTE else text[: BODY_QUOTE - 1] + "…"


def _status_line(status: int, reason: str, body: bytes) -> str:
    quoted = _quote(body)
    line = f"HTTP {status} {reason}".rstrip()
    return f"{line}: {quoted}" if quoted else line


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> HttpResponse:
    """POST ``body`` to ``url``; never raises for what the network or the server does.

    The detail never contains the URL.
    """
    try:
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
        with _OPENER.open(request, timeout=timeout_s) as response:
            answer = response.read(BODY_QUOTE + 1)
            status = int(response.status)
            return HttpResponse(status, _status_line(status, str(response.reason), answer))
    except urllib.error.HTTPError as exc:  # a response, with a status that is not 2xx
        try:
            answer = exc.read(BODY_QUOTE + 1)
        except (OSError, http.client.HTTPException):
            answer = b""
        finally:
            exc.close()
        return HttpResponse(
            exc.code,
            _status_line(exc.code, str(exc.reason or ""), answer),
            retry_after(exc.headers.get("Retry-After") if exc.headers else None),
        )
    except (OSError, http.client.HTTPException) as exc:  # no response, or a broken one
        return HttpResponse(None, _no_response(exc, timeout_s))
    except ValueError:  # a URL urllib cannot use; its message would quote the URL
        return HttpResponse(None, "the URL is not usable by urllib")


def _no_response(exc: BaseException, timeout_s: float) -> str:
    """Why no response came, in one line without any URL in it.

    >>> _no_response(urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), 5)
    'no response: [Errno 111] Connection refused'
    >>> _no_response(TimeoutError("timed out"), 2.5)
    'no response within 2.5 s'
    """
    reason: object = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return f"no response within {timeout_s:g} s"
    return f"no response: {_error(reason)}"


def _error(reason: object) -> str:
    """An exception as one line without any URL in it (socket errors carry none)."""
    if isinstance(reason, BaseException):
        text = str(reason) or type(reason).__name__
        return f"{type(reason).__name__}: {text}" if not text.startswith("[Errno") else text
    return str(reason)
