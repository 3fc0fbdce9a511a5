"""benchmarks/pending_memory.py compares today's join with one read from the git history."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks.pending_memory import (
    BEFORE_COMMIT,
    REPO,
    HistoryError,
    historic_module,
    join_before,
)
from stream_mlops.events import OutcomeEvent, PredictionEvent


def _full_history() -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    shallow = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--is-shallow-repository"],
        capture_output=True,
        text=True,
        check=False,
    )
    if shallow.returncode != 0:
        pytest.skip(f"{REPO} is not a git checkout")
    if shallow.stdout.strip() == "true":
        pytest.skip("a shallow clone lacks the old commit")


def test_the_old_join_loads_from_history_and_joins() -> None:
    _full_history()
    before = join_before()
    assert before.__module__ == "pending_join_before"
    join = before(ttl_seconds=60, max_pending=10)
    prediction = PredictionEvent(
        event_id="a", model_id="m", model_version="v1", ts=0, features={}, prediction=1
    )
    assert join.add_prediction(prediction, 0.0, 7) is None
    match = join.add_outcome(OutcomeEvent(event_id="a", ts=5, actual=0), 5.0)
    assert match.prediction.event_id == "a"
    # Not today's class: the old one keeps unpacked predictions.
    from stream_mlops.join import PendingJoin

    assert before is not PendingJoin


def test_a_commit_missing_from_history_is_named() -> None:
    _full_history()
    missing = "0" * 40
    with pytest.raises(HistoryError, match=r"join.py as of commit 0000000 .*unshallow"):
        historic_module(missing, "stream_mlops/join.py", "never_loaded")


def test_without_git_the_message_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HistoryError, match="git is not installed"):
        historic_module(BEFORE_COMMIT, "stream_mlops/join.py", "never_loaded")
