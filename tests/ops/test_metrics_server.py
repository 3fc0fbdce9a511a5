"""The metrics server: its routes, the probes' answers, its address, its settings (no broker)."""

from __future__ import annotations

import http.client
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from prometheus_client import CollectorRegistry, Counter

from stream_mlops.cli import build_parser
from stream_mlops.config import ConfigError, MetricsSettings, load_settings
from stream_mlops.ops.metrics_server import (
    MetricsAddressError,
    MetricsServer,
    metrics_app,
    metrics_settings,
    serve_metrics,
)
from stream_mlops.ops.probes import LoopStatus, Probes


class Loop:
    """A loop's status and clock, set by the test."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.status = LoopStatus(ready=False, last_poll=None)

    def probes(self, timeout_s: float = 30) -> Probes:
        return Probes(lambda: self.status, liveness_timeout_s=timeout_s, clock=lambda: self.now)


def request(
    port: int, path: str, method: str = "GET", host: str = "127.0.0.1"
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True)
        connection.putheader("Host", f"{host}:{port}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def loop() -> Loop:
    return Loop()


@pytest.fixture
def served(loop: Loop) -> Iterator[int]:
    registry = CollectorRegistry()
    Counter("stream_mlops_things", "Things", registry=registry).inc(3)
    server = MetricsServer(metrics_app(registry, loop.probes()), "127.0.0.1", 0)
    server.start()
    try:
        yield int(server.url.rsplit(":", 1)[1].strip("/"))
    finally:
        server.close()


def test_the_routes_answer_metrics_and_the_probes(served: int, loop: Loop) -> None:
    status, body = request(served, "/metrics")
    assert status == 200 and b"stream_mlops_things_total 3.0" in body
    assert request(served, "/readyz") == (
        503,
        b"not ready: partitions not assigned and restored yet\n",
    )
    assert request(served, "/healthz")[0] == 200, "starting is not stuck"
    loop.status = LoopStatus(ready=True, last_poll=loop.now)
    assert request(served, "/readyz")[0] == 200
    loop.now += 31
    status, body = request(served, "/healthz")
    assert status == 503 and body.startswith(b"stuck: last poll 31.0 s ago")
    assert request(served, "/nothing")[0] == 404
    assert request(served, "/metrics", method="POST")[0] == 405


def test_a_loopback_server_refuses_other_host_names(served: int) -> None:
    # A page elsewhere that rebinds its own name to 127.0.0.1 still sends its name.
    assert request(served, "/metrics", host="attacker.example")[0] == 400
    assert request(served, "/metrics", host="localhost")[0] == 200


def test_a_service_that_never_polled_is_stuck_after_the_timeout(loop: Loop) -> None:
    probes = loop.probes(timeout_s=5)
    assert probes.liveness().ok
    loop.now += 6
    assert not probes.liveness().ok


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine other than loopback, if it has one."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # a UDP "connect" sends nothing: it picks a route
        address = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_by_default_it_listens_on_loopback_only(loop: Loop) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    settings = MetricsSettings(enabled=True, port=0)
    server = serve_metrics(
        settings, "engine", CollectorRegistry(), loop.probes(), structlog.get_logger("test")
    )
    try:
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        assert server.url.startswith("http://127.0.0.1:")
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=5).close()
        assert request(port, "/healthz")[0] == 200
    finally:
        server.close()


def test_a_taken_port_is_a_clear_error(served: int, loop: Loop) -> None:
    settings = MetricsSettings(enabled=True, port=served)
    with pytest.raises(MetricsAddressError, match=re.escape(f"127.0.0.1:{served}")):
        serve_metrics(
            settings, "engine", CollectorRegistry(), loop.probes(), structlog.get_logger("test")
        )


def test_the_config_section_and_the_flags(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[metrics]\nenabled = true\nport = 9999\nliveness_timeout_seconds = 5\n")
    metrics = load_settings(config).metrics
    assert (metrics.enabled, metrics.host, metrics.port_for("engine")) == (True, "127.0.0.1", 9999)
    assert load_settings(None).metrics.enabled is False
    assert MetricsSettings().port_for("notifier") == 8473
    config.write_text("[metrics]\nport = 70000\n")
    with pytest.raises(ConfigError, match=r"metrics\.port"):
        load_settings(config)
    with pytest.raises(ConfigError, match=r"metrics\.port"):
        metrics_settings(MetricsSettings(), port=-1)
    flagged = metrics_settings(MetricsSettings(), host="0.0.0.0")
    assert flagged.enabled and flagged.host == "0.0.0.0"

    parser = build_parser()
    for command in ("run", "retrainer", "notify"):
        args = parser.parse_args([command, "--metrics-port", "0", "--metrics-address", "::1"])
        assert (args.metrics_port, args.metrics_address) == (0, "::1")
