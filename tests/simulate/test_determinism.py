"""Same seed, same bytes, also in another process (where str hashes differ)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream_mlops.simulate.demand import DemandConfig, DemandSimulator
from stream_mlops.simulate.fraud import FraudConfig, FraudSimulator
from stream_mlops.simulate.scenario import DriftScenario, LabelDelay

REPO = Path(__file__).resolve().parents[2]


def digest(seed: int) -> str:
    """A hash of both systems' full output for ``seed``, drift and defects included."""
    h = hashlib.sha256()
    fraud = FraudConfig(
        seed=seed,
        n_events=1500,
        scenario=DriftScenario("gradual", at=500, span=500, covariate=True),
        label_delay=LabelDelay("exponential", 5.0, 0.1),
        malformed_fraction=0.05,
    )
    demand = DemandConfig(seed=seed, n_events=640, scenario=DriftScenario("abrupt", at=320))
    for emission in [*FraudSimulator(fraud), *DemandSimulator(demand)]:
        h.update(repr((emission.at, emission.kind, emission.key, emission.defect)).encode())
        h.update(emission.value())
    return h.hexdigest()


@pytest.mark.slow
def test_other_process_other_hash_seed_same_output() -> None:
    here = digest(3)
    code = "from tests.simulate.test_determinism import digest; print(digest(3))"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    there = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()
    assert there == here
    assert digest(4) != here
