"""A webhook receiver for tests: ``http.server`` on a free loopback port, in a thread.

It records every request (path, headers, body, the status it answered) and
answers what its ``respond`` function says, 200 by default. Leaving the
``with`` block shuts the server down and joins its thread, also when the test
failed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Self

import orjson


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    #: the status the server answered
    status: int

    @property
    def key(self) -> str:
        return self.headers.get("Idempotency-Key", "")

    def json(self) -> object:
        return orjson.loads(self.body)


#: (request without its status) -> (status, headers, body) to answer
Responder = Callable[[Received], tuple[int, dict[str, str], bytes]]


def always(status: int, body: bytes = b"ok") -> Responder:
    return lambda _request: (status, {}, body)


class WebhookServer:
    def __init__(self, respond: Responder | None = None) -> None:
        self.respond: Responder = respond or always(200)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                request = Received(self.path, dict(self.headers.items()), body, 0)
                status, headers, answer = server.respond(request)
                with server._lock:
                    server.received.append(Received(request.path, request.headers, body, status))
                    server._changed.notify_all()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the test asserts on what was received

        self._http = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def url(self, path: str = "/services/T000/B000/s3cr3t-token") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait_for(self, done: Callable[[list[Received]], bool], timeout_s: float) -> list[Received]:
        """Every request so far once ``done`` holds for them; AssertionError after the timeout."""
        with self._changed:
            if not self._changed.wait_for(lambda: done(self.received), timeout=timeout_s):
                raise AssertionError(
                    f"webhook server: condition not met in {timeout_s} s; received "
                    f"{[(r.path, r.status, r.key) for r in self.received]}"
                )
            return list(self.received)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=10)
