"""Debian's Chromium, headless, for the page tests: found, or a clear skip (a failure in CI).

No browser is downloaded (``playwright install`` is not used): Playwright's
Python client drives the system's ``/usr/bin/chromium`` (``apt-get install
chromium``; ``.ci/run`` installs it), with a fresh profile in the test's
temporary directory and the flags that keep it off the network (this machine's
network is closed; without them Chromium keeps dialling out at start).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Wide enough for the page's two-column layout, as on an on-call laptop.
VIEWPORT = {"width": 1440, "height": 1000}


def chromium_or_skip() -> Path:
    """The system Chromium; skips without it, unless in CI (``CI`` set), where it fails."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = f"{CHROMIUM} not found: apt-get install chromium (.ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"in CI the browser test must run: {reason}")
    pytest.skip(reason)


@contextmanager
def chromium_page(profile: Path) -> Iterator[Any]:
    """A page of a headless Chromium with a fresh profile in ``profile``; closed afterwards."""
    executable = chromium_or_skip()
    # Installed with the dev extra, so CI always has it.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(executable),
            headless=True,
            args=list(FLAGS),
            viewport=VIEWPORT,
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
