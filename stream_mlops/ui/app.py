"""The operator page's web application (Starlette): read-only, a handful of routes.

* ``GET /``: the page, every panel filled in;
* ``GET /api/panels``: ``{"title", "state", "generated_ts", "panels": {id: html}}``,
  what the page's script swaps in every refresh;
* ``GET /api/view``: the view model as JSON (``stream_mlops.ui.view.OperatorView``);
* ``GET /static/...``: the stylesheet and the script, shipped in the package;
* ``GET /healthz``: 200 while the feed reading the topics is alive, else 503;
* ``GET /readyz``: 200 once the feed has read the cluster once, else 503.

Every response forbids anything from elsewhere (``Content-Security-Policy:
default-src 'self'``: no script, style, font or image from another origin, no
inline script or style), and the page works offline. Bound to a loopback
address, the app also refuses requests whose ``Host`` is not a loopback name,
so a web page elsewhere cannot read it through DNS rebinding.

>>> from starlette.testclient import TestClient
>>> from stream_mlops.ui.digest import StreamDigest
>>> class Fixed:
...     def view(self): return StreamDigest().view(now=0.0)
...     def alive(self): return True
...     def ready(self): return True
>>> client = TestClient(create_app(Fixed()), base_url="http://127.0.0.1")
>>> client.get("/api/panels").json()["title"]
'OK · stream-mlops'
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stream_mlops.events import dumps
from stream_mlops.ui.render import page_title, render_page, render_panels
from stream_mlops.ui.view import OperatorView

__all__ = ["LOOPBACK_HOSTS", "ViewSource", "create_app"]

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
#: Host names a loopback-bound page answers to.
LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "::1", "[::1]")
_SECURITY_HEADERS: Final = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class ViewSource(Protocol):
    """What the app shows: the latest view, and whether it is being kept up to date."""

    def view(self) -> OperatorView: ...

    def alive(self) -> bool: ...

    def ready(self) -> bool: ...


class _SecurityHeaders:
    """Adds the page's security headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _PanelCache:
    """The panels of the latest view, rendered once however many pages ask."""

    def __init__(self, refresh_s: float) -> None:
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        self._view: OperatorView | None = None
        self._panels: dict[str, str] = {}

    def panels(self, view: OperatorView) -> dict[str, str]:
        with self._lock:
            if view is not self._view:
                self._panels = render_panels(view, self._refresh_s)
                self._view = view
            return self._panels


def create_app(
    source: ViewSource,
    *,
    refresh_s: float = 2.0,
    allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS,
) -> Starlette:
    """The app over ``source``; ``allowed_hosts`` None answers any ``Host``."""
    cache = _PanelCache(refresh_s)

    # Plain functions: Starlette runs them in its thread pool, so rendering
    # never blocks the event loop.
    def page(_request: Request) -> Response:
        return HTMLResponse(render_page(source.view(), refresh_s))

    def panels(_request: Request) -> Response:
        view = source.view()
        body = {
            "title": page_title(view),
            "state": view.state,
            "generated_ts": view.generated_ts,
            "panels": cache.panels(view),
        }
        return Response(dumps(body, sort_keys=False), media_type="application/json")

    def view_json(_request: Request) -> Response:
        return Response(dumps(source.view(), sort_keys=False), media_type="application/json")

    def healthz(_request: Request) -> Response:
        alive = source.alive()
        return PlainTextResponse("ok\n" if alive else "stuck\n", 200 if alive else 503)

    def readyz(_request: Request) -> Response:
        ready = source.ready()
        return PlainTextResponse("ready\n" if ready else "starting\n", 200 if ready else 503)

    middleware = [Middleware(_SecurityHeaders)]
    if allowed_hosts is not None:
        middleware.append(
            Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts), www_redirect=False)
        )
    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/panels", panels),
            Route("/api/view", view_json),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=middleware,
    )
