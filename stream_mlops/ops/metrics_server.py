"""``/metrics``, ``/healthz`` and ``/readyz`` of a service on one address, from a thread.

A WSGI app with a three-route router, served by the standard library's
``wsgiref`` with a thread per request, in a daemon thread beside the
service's loop: the engine needs no web framework for three plain-text
answers, and ``/metrics`` is prometheus_client's own WSGI app (text or
OpenMetrics by the ``Accept`` header, gzip when asked, ``?name[]=`` filters).

* ``GET /metrics``: the service's registry;
* ``GET /healthz``: 200 while the loop polled within ``[metrics]
  liveness_timeout_seconds``, 503 once it has not (stuck);
* ``GET /readyz``: 200 once the partitions are assigned and their state
  restored, 503 before (and after the loop stopped).

It binds ``127.0.0.1`` unless told otherwise, and while bound to a loopback
address it answers only requests whose ``Host`` names one, so a web page
elsewhere cannot read it through DNS rebinding. Kubernetes' probes connect
to the pod's own address: there, ``--metrics-address 0.0.0.0``
(docs/operators.md).

>>> from prometheus_client import CollectorRegistry
>>> from stream_mlops.ops.probes import LoopStatus, Probes
>>> probes = Probes(lambda: LoopStatus(ready=False, last_poll=None), liveness_timeout_s=60)
>>> server = MetricsServer(metrics_app(CollectorRegistry(), probes), "127.0.0.1", 0)
>>> server.start()
>>> import urllib.request, urllib.error
>>> urllib.request.urlopen(server.url + "healthz").status
200
>>> try:
...     urllib.request.urlopen(server.url + "readyz")
... except urllib.error.HTTPError as exc:
...     print(exc.code, exc.read().decode().strip())
503 not ready: partitions not assigned and restored yet
>>> server.close()
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from prometheus_client import CollectorRegistry, make_wsgi_app
from pydantic import ValidationError

from stream_mlops.config import ConfigError, MetricsSettings
from stream_mlops.events import describe_validation_error
from stream_mlops.ops.probes import Answer, Probes
from stream_mlops.ui.command import is_loopback  # the operator page's rule, no web stack

__all__ = [
    "LOOPBACK_HOSTS",
    "MetricsAddressError",
    "MetricsServer",
    "metrics_app",
    "metrics_settings",
    "serve_metrics",
]

#: Host names a loopback-bound server answers to.
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_TEXT: Final = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")]
_INDEX: Final = b"stream-mlops: /metrics /healthz /readyz\n"


def _host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port (``[::1]:8471`` -> ``::1``)."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def metrics_app(
    registry: CollectorRegistry, probes: Probes, *, loopback_only: bool = True
) -> WsgiApp:
    """The router: ``/metrics`` from ``registry``, the probes from ``probes``."""
    metrics = make_wsgi_app(registry)

    def text(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
        start_response(status, [*_TEXT, ("Content-Length", str(len(body)))])
        return [body]

    def probe(start_response: StartResponse, answer: Answer) -> list[bytes]:
        status = "200 OK" if answer.ok else "503 Service Unavailable"
        return text(start_response, status, answer.text.encode() + b"\n")

    routes: dict[str, WsgiApp] = {
        "/metrics": metrics,
        "/healthz": lambda _env, start_response: probe(start_response, probes.liveness()),
        "/readyz": lambda _env, start_response: probe(start_response, probes.readiness()),
        "/": lambda _env, start_response: text(start_response, "200 OK", _INDEX),
    }

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return text(start_response, "405 Method Not Allowed", b"GET only\n")
        if loopback_only and _host_name(environ.get("HTTP_HOST", "")) not in LOOPBACK_HOSTS:
            return text(start_response, "400 Bad Request", b"invalid host header\n")
        route = routes.get(environ.get("PATH_INFO", "/"))
        if route is None:
            return text(start_response, "404 Not Found", b"not found\n")
        return route(environ, start_response)

    return app


class MetricsAddressError(Exception):
    """The metrics address cannot be listened on (taken, or not this machine's)."""


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a scrape every few seconds is not worth a log line."""


class _Server(ThreadingMixIn, WSGIServer):
    # A slow scraper never holds up a probe; threads die with the process.
    daemon_threads = True


class MetricsServer:
    """The WSGI app on ``host:port`` (0: a free port): bound at once, served from a thread."""

    def __init__(self, app: WsgiApp, host: str, port: int) -> None:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("_BoundServer", (_Server,), {"address_family": family})
        self._server: WSGIServer = make_server(host, port, app, server_class, _Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-server", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = str(self._server.server_address[0]), self._server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port (safe to repeat)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


def metrics_settings(
    configured: MetricsSettings, *, host: str | None = None, port: int | None = None
) -> MetricsSettings:
    """``[metrics]`` with the command line's ``--metrics-address``/``--metrics-port``:
    either one turns metrics on.

    >>> metrics_settings(MetricsSettings(), port=0).enabled
    True
    >>> metrics_settings(MetricsSettings()).enabled
    False
    """
    if host is None and port is None:
        return configured
    update: dict[str, object] = {"enabled": True}
    if host is not None:
        update["host"] = host
    if port is not None:
        update["port"] = port
    try:
        return MetricsSettings.model_validate({**configured.model_dump(), **update})
    except ValidationError as exc:
        raise ConfigError(
            f"metrics.{describe_validation_error(exc)} (--metrics-address/--metrics-port)"
        ) from None


def serve_metrics(
    settings: MetricsSettings,
    service: str,
    registry: CollectorRegistry,
    probes: Probes,
    log: structlog.typing.FilteringBoundLogger,
) -> MetricsServer:
    """Bind and start the service's server, log ``metrics.started`` with its URL.

    Raises ``MetricsAddressError`` when the address cannot be bound (the caller
    logs ``metrics.bind_failed`` and exits 1: a probe that never answers would
    be worse).
    """
    port = settings.port_for(service)
    loopback = is_loopback(settings.host)
    try:
        server = MetricsServer(
            metrics_app(registry, probes, loopback_only=loopback), settings.host, port
        )
    except OSError as exc:
        raise MetricsAddressError(
            f"cannot listen on {settings.host}:{port} for metrics: {exc.strerror or exc}"
        ) from None
    server.start()
    log.info(
        "metrics.started",
        url=server.url,
        liveness_timeout_seconds=probes.liveness_timeout_s,
    )
    if not loopback:
        log.warning(
            "metrics.exposed",
            host=settings.host,
            note="metrics and probes answer anyone who reaches this address",
        )
    return server
