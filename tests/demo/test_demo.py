"""The demo end to end on a real broker, with fewer events."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stream_mlops.demo.run import DemoOptions, run_demo
from stream_mlops.kafka.bootstrap import bootstrap_servers


@pytest.mark.kafka
def test_demo_detects_the_drift_promotes_a_version_and_writes_the_report(
    kafka_bootstrap: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The demo uses the session's broker (KAFKA_BOOTSTRAP_SERVERS) and starts none.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    assert bootstrap_servers() == kafka_bootstrap
    out = tmp_path / "report.html"
    # Room after the alert for the retrainer's looks: on a loaded machine the
    # alert came 3,266 transactions after the drift, and 8,000 events then left
    # too few for a promotion before the demo ended.
    code = run_demo(
        DemoOptions(
            events=12_000, drift_at=3000, rate=500, seed=7, out=out, workdir=tmp_path / "runs"
        )
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    # The operator page served while the demo ran, on a free loopback port.
    assert re.search(r"operator page: http://127\.0\.0\.1:\d+/", printed), printed
    assert re.search(r"drift detected at transaction [\d,]+ \(delay [\d,]+ transactions", printed)
    assert "retrain request: " in printed
    promoted_version = re.search(r"promoted version: (v\d+) \(serving from transaction", printed)
    assert promoted_version is not None, printed
    rates = re.search(
        r"before drift ([\d.]+)%, after drift ([\d.]+)%, after promotion ([\d.]+)%", printed
    )
    assert rates is not None, printed
    before, after, promoted = (float(x) for x in rates.groups())
    assert after > 2 * before, "the drift must raise the champion's error"
    assert promoted < after, "the promoted version must do better than the drifted champion"
    page = out.read_text()
    image = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert image is not None
    assert base64.b64decode(image.group(1)).startswith(b"\x89PNG")

    # The promoted version rebuilds from its parent and the window read back from
    # the broker, in another process (another string hash seed than the retrainer's).
    (run_dir,) = (tmp_path / "runs").iterdir()
    reproduced = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream_mlops",
            "models",
            "--registry",
            str(run_dir / "registry"),
            "reproduce",
            "fraud",
            promoted_version.group(1),
        ],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert reproduced.returncode == 0, reproduced.stdout + reproduced.stderr
    assert "same content hash" in reproduced.stdout
