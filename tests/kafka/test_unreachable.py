"""Every command, with nothing listening at the cluster's address: a clear end.

Broker-free (the address is a port just bound and released). What a user
sees: a non-zero exit within seconds of the connect timeout (10 s), one line
saying that no broker answers (a command's line on stderr; a service's
``<name>.failed`` log event, the last line on stdout), and never a traceback.
Before, ``run`` and ``retrainer`` waited about 30 s on kafka-python and
retried for ever on confluent-kafka (``init_transactions``), and ``demo`` and
``models reproduce`` ended in a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from stream_mlops.kafka.backends import BACKENDS

pytestmark = pytest.mark.slow

# Nine commands at once, each starting an interpreter and its libraries, on
# a shared two-core machine: only a hang exceeds this.
BOUND_S = 240.0
# From a service's first log line (it has started) to its failure: the connect
# timeout (10 s) and some slack for the load. A client's own bootstrap took
# 30 s and more.
FAILED_WITHIN_S = 20.0


def commands(client: str, tmp_path: Path) -> dict[str, list[str]]:
    """The command line of each command; a service's name is its log events' prefix."""
    config = tmp_path / f"{client}.toml"
    config.write_text(
        f'[kafka]\nclient = "{client}"\n\n'
        '[[notify.webhooks]]\nname = "hook"\nurl = "http://127.0.0.1:9/hook"\n'
    )
    with_client = ["--client", client]
    return {
        # one line on stderr
        "topics create": ["topics", "create", *with_client],
        "tail": ["tail", *with_client],
        "demo": [
            "demo",
            "--no-ui",
            "--events",
            "100",
            "--drift-at",
            "50",
            "--out",
            str(tmp_path / "report.html"),
            *with_client,
        ],
        "models": ["models", "--config", str(config), "reproduce", "fraud", "v1"],
        # services: JSON log lines on stdout, the last one <name>.failed
        "engine": ["run", *with_client],
        "retrainer": ["retrainer", *with_client],
        "notifier": ["notify", "--config", str(config), *with_client],
        "ui": ["ui", "--port", "0", *with_client],
        "simulate": ["simulate", "fraud", *with_client, "--events", "10"],
    }


SERVICES = {"engine", "retrainer", "notifier", "ui", "simulate"}


@pytest.mark.parametrize("client", BACKENDS)
def test_every_command_without_a_broker_ends_in_seconds_with_one_line(
    client: str, dead_servers: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": dead_servers,
        "STREAM_MLOPS_REGISTRY": str(tmp_path / "registry"),
    }
    started = time.monotonic()
    running = {
        name: subprocess.Popen(
            [sys.executable, "-m", "stream_mlops", *argv],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, argv in commands(client, tmp_path).items()
    }
    try:
        results = {name: p.communicate(timeout=BOUND_S) for name, p in running.items()}
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    assert time.monotonic() - started < BOUND_S
    unreachable = f"no Kafka broker answers at {dead_servers}"
    for name, (out, err) in results.items():
        assert running[name].returncode == 1, (name, out, err)
        assert "Traceback" not in out + err, (name, err)
        if name in SERVICES:
            lines = [json.loads(line) for line in out.splitlines()]
            last = lines[-1]
            assert last["event"] == f"{name}.failed", (name, out)
            assert str(last["error"]).startswith(unreachable), (name, last)
            if len(lines) > 1:  # the service logged its start (engine, retrainer, notifier)
                waited = datetime.fromisoformat(last["timestamp"]) - datetime.fromisoformat(
                    lines[0]["timestamp"]
                )
                assert waited.total_seconds() < FAILED_WITHIN_S, (name, waited)
        else:
            lines = err.splitlines()
            assert len(lines) == 1 and out == "", (name, out, err)
            assert lines[0].startswith(f"stream-mlops {name}: {unreachable}"), (name, err)
