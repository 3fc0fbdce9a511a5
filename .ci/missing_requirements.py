"""Exit 1 (listing them) if a runtime or dev requirement of pyproject.toml is not installed.

Used by ``make deps`` to install only when something is missing: the tests import
the package from the source tree, so only its dependencies must be installed.
"""

from __future__ import annotations

import importlib.metadata
import sys
import tomllib
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # pip always vendors packaging
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]


def missing(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    absent = []
    for text in wanted:
        requirement = Requirement(text)
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            absent.append(text)
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            absent.append(f"{text} (have {version})")
    return absent


if __name__ == "__main__":
    absent = missing(Path(__file__).resolve().parent.parent / "pyproject.toml")
    for text in absent:
        print(f"missing: {text}")
    sys.exit(1 if absent else 0)
