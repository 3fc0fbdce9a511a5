"""``stream-mlops ui``: serve the operator page until SIGTERM or SIGINT.

Wiring only: the configuration, the transport, the feed thread
(``stream_mlops.ui.feed``), the app (``stream_mlops.ui.app``) and uvicorn on a
socket bound here (so ``--port 0`` can pick a free port and the log can say
which). Logs one JSON object per line, like the services; ``ui.started``
carries the page's ``url``.

Exit codes: 0 after SIGTERM/SIGINT; 1 the address cannot be bound; 2 bad
configuration, or the ``ui`` extra is not installed.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import structlog

from stream_mlops.config import ConfigError, load_settings
from stream_mlops.logging import LogFormat, configure
from stream_mlops.registry import resolve_registry

__all__ = ["UI_EXTRA", "UiUnavailableError", "main", "require_ui_extra"]

UI_EXTRA: Final = "pip install 'stream-mlops[ui]' (make test and make demo install it)"
# How long the feed thread may take to close its clients after the server stopped.
_FEED_STOP_S: Final = 10.0


class UiUnavailableError(RuntimeError):
    """The web stack (the ``ui`` extra) is not installed."""


def require_ui_extra() -> None:
    """Raise ``UiUnavailableError`` naming the extra unless the page's libraries import."""
    missing = []
    for module in ("starlette", "uvicorn", "jinja2"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise UiUnavailableError(
            f"the operator page needs {', '.join(missing)}, not installed: {UI_EXTRA}"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only.

    >>> [is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "10.0.0.5")]
    [True, True, True, False, False]
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one)."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return socket.create_server(address, family=family)


def page_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class _Shutdown:
    """SIGTERM and SIGINT: stop serving, then stop the feed.

    Installed first thing, so a signal while the page is still starting stops
    it cleanly too. While it serves, uvicorn handles both signals itself (it
    stops serving), then restores these handlers and raises the signal again:
    so the process gets to the end of ``main``, stops the feed and exits 0, as
    the services do.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.servers: list[Any] = []

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._request)
        signal.signal(signal.SIGINT, self._request)

    def _request(self, _signum: int, _frame: object) -> None:
        self.stop.set()
        for server in self.servers:
            server.should_exit = True

    def serve(
        self, server: Any, sock: socket.socket, feed: Callable[[threading.Event], None]
    ) -> None:
        """Run the feed in a thread and ``server`` on ``sock`` until told to stop."""
        reader = threading.Thread(target=feed, args=(self.stop,), name="ui-feed", daemon=True)
        reader.start()
        self.servers.append(server)
        try:
            if not self.stop.is_set():
                server.run(sockets=[sock])
        finally:
            self.stop.set()
            reader.join(timeout=_FEED_STOP_S)
            sock.close()


def main(
    config_path: Path | None,
    *,
    host: str | None = None,
    port: int | None = None,
    registry: Path | None = None,
    client: str | None = None,
    log_format: LogFormat = "json",
) -> int:
    configure(log_format)
    log = structlog.get_logger("stream_mlops.ui")
    shutdown = _Shutdown()
    shutdown.install()
    try:
        require_ui_extra()
        settings = load_settings(config_path)
    except UiUnavailableError as exc:
        log.error("ui.unavailable", error=str(exc))
        return 2
    except ConfigError as exc:
        log.error("config.invalid", error=str(exc), path=str(config_path))
        return 2
    import uvicorn

    from stream_mlops.kafka.backends import open_transport
    from stream_mlops.kafka.bootstrap import connection_settings
    from stream_mlops.kafka.transport import TransportError
    from stream_mlops.ui.app import LOOPBACK_HOSTS, create_app
    from stream_mlops.ui.digest import DigestLimits
    from stream_mlops.ui.feed import TopicFeed

    kafka = connection_settings(settings, client=client)
    settings = settings.model_copy(update={"kafka": kafka})
    options = settings.ui
    host = host or options.host
    port = options.port if port is None else port
    registry_dir = resolve_registry(registry, settings.retrainer.registry)
    try:
        sock = bind(host, port)
    except OSError as exc:
        log.error("ui.bind_failed", host=host, port=port, error=str(exc))
        return 1
    transport = open_transport(kafka, client_id="stream-mlops-ui")
    try:
        # A page for a cluster that never answered is a mistake in the address:
        # say so and stop. Once started, the page rides out outages (the feed
        # retries and the page says Kafka is unavailable).
        transport.admin().close()
    except TransportError as exc:
        sock.close()
        log.error("ui.failed", error=str(exc))
        return 1
    feed = TopicFeed(
        transport,
        settings,
        registry_dir,
        refresh_s=options.refresh_seconds,
        sample_events=options.sample_events,
        limits=DigestLimits(alerts=options.alerts_kept),
    )
    loopback = is_loopback(host)
    app = create_app(
        feed, refresh_s=options.refresh_seconds, allowed_hosts=LOOPBACK_HOSTS if loopback else None
    )
    url = page_url(sock)
    log.info(
        "ui.started",
        url=url,
        bootstrap_servers=kafka.bootstrap_servers,
        client=kafka.client,
        security=kafka.security.redacted(),
        registry=str(registry_dir),
        refresh_seconds=options.refresh_seconds,
    )
    if not loopback:
        log.warning(
            "ui.exposed",
            host=host,
            note="the page has no login: anyone who reaches this address can read it",
        )
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", log_level="warning")
    )
    shutdown.serve(server, sock, feed.run)
    log.info("ui.stopped", url=url)
    return 0
