"""``stream-mlops ui`` as a command: options, exit codes, what it refuses (no broker needed)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from stream_mlops.cli import build_parser
from stream_mlops.ui import command
from stream_mlops.ui.command import UiUnavailableError, bind, is_loopback, page_url

REPO = Path(__file__).resolve().parents[2]


def run_ui(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "stream_mlops", "ui", *args],
        capture_output=True,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )


def events_of(output: bytes) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in output.splitlines() if line.startswith(b"{")]


def test_options_come_from_the_command_line() -> None:
    args = build_parser().parse_args(
        ["ui", "--host", "::1", "--port", "0", "--registry", "r", "--client", "confluent-kafka"]
    )
    assert (args.host, args.port, args.registry, args.client) == (
        "::1",
        0,
        Path("r"),
        "confluent-kafka",
    )
    defaults = build_parser().parse_args(["ui"])
    assert (defaults.host, defaults.port, defaults.config) == (None, None, None)


def test_a_bad_config_names_the_field_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[ui]\nrefresh_seconds = 0\n")
    done = run_ui("--config", str(config))
    assert done.returncode == 2
    (event,) = [e for e in events_of(done.stdout) if e["event"] == "config.invalid"]
    assert str(event["error"]).startswith("ui.refresh_seconds:")


def test_an_address_in_use_exits_1() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run_ui("--port", str(port))
    assert done.returncode == 1
    (event,) = [e for e in events_of(done.stdout) if e["event"] == "ui.bind_failed"]
    assert event["port"] == port


def test_port_0_picks_a_free_port_and_the_url_says_which() -> None:
    with bind("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
        assert port > 0
        assert page_url(sock) == f"http://127.0.0.1:{port}/"
    with bind("::1", 0) as sock:
        assert page_url(sock) == f"http://[::1]:{sock.getsockname()[1]}/"


def test_only_loopback_names_count_as_loopback() -> None:
    assert [is_loopback(h) for h in ("127.0.0.2", "::1", "localhost")] == [True, True, True]
    assert [is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.4", "example.org")] == [
        False,
        False,
        False,
        False,
    ]


def test_without_the_web_stack_the_command_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # an import of it now fails
    with pytest.raises(UiUnavailableError, match=r"uvicorn.*stream-mlops\[ui\]"):
        command.require_ui_extra()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert command.main(None, port=0) == 2
    finally:  # main installs its own: give pytest's back
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
