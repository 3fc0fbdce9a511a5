"""Run output stays out of git: demo runs, broker data, registries, logs, reports.

``.gitignore`` lists them, but ignoring does not untrack a file that was added
once (``git add -f``, or added before the rule): these tests read what git
actually tracks. They skip outside a git checkout (an sdist, a copied tree).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Larger tracked files are almost always output or data committed by accident.
MAX_TRACKED_BYTES = 1_000_000
#: Where commands write run output, relative to the checkout.
RUN_OUTPUT_DIRS = (".demo", ".kafka", "registry", ".venv")
RUN_OUTPUT_FILES = ("demo-report.html",)
RUN_OUTPUT_SUFFIXES = (".log",)


def _checkout() -> Path:
    """The checkout's top directory; skips the test outside a git checkout."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    top = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != REPO:
        pytest.skip(f"{REPO} is not the top of a git checkout")
    return REPO


def _tracked() -> list[str]:
    listed = subprocess.run(
        ["git", "-C", str(_checkout()), "ls-files", "-z"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [path for path in listed.stdout.split("\0") if path]


def is_run_output(path: str) -> bool:
    """Whether a repository path is where a command writes its output.

    >>> is_run_output(".demo/20261127-150210-a552/engine.log"), is_run_output("registry/x")
    (True, True)
    >>> is_run_output("stream_mlops/registry/store.py"), is_run_output("docs/runtime.md")
    (False, False)
    """
    parts = PurePosixPath(path).parts
    return (
        parts[0] in RUN_OUTPUT_DIRS
        or parts[-1] in RUN_OUTPUT_FILES
        or parts[-1].endswith(RUN_OUTPUT_SUFFIXES)
    )


def test_no_run_output_is_tracked() -> None:
    tracked = [path for path in _tracked() if is_run_output(path)]
    assert tracked == [], f"run output tracked by git (git rm --cached it): {tracked[:10]}"


def test_no_large_file_is_tracked() -> None:
    large = {}
    for path in _tracked():
        file = REPO / path
        if file.is_file() and (size := file.stat().st_size) > MAX_TRACKED_BYTES:
            large[path] = size
    assert large == {}, f"tracked files over {MAX_TRACKED_BYTES:,} bytes: {large}"


@pytest.mark.parametrize(
    "path",
    [
        ".demo/20261127-150210-a552/engine.log",
        ".kafka/data/meta.properties",
        "registry/fraud/champion.json",
        "demo-report.html",
        "benchmarks/engine.log",
        ".venv/bin/python",
    ],
)
def test_run_output_is_ignored(path: str) -> None:
    # Exit 0: ignored, 1: not ignored (the path need not exist). --no-index: by
    # the rules alone, even if such a file were tracked.
    check = subprocess.run(
        ["git", "-C", str(_checkout()), "check-ignore", "--quiet", "--no-index", "--", path],
        check=False,
    )
    assert check.returncode == 0, f"{path} is not in .gitignore"
