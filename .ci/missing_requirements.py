"""Exit 1 (listing them) if this checkout's install is missing or out of date.

    python .ci/missing_requirements.py [EXTRA ...]

Checked: the project itself is installed from this checkout (editable) at the
version of pyproject.toml, and every runtime requirement and every requirement
of the named extras (``dev``, ``demo``; an extra may name others, as
``stream-mlops[demo]``) is installed in a version the specifier allows. Used by
the Makefile to run pip only when something is missing, in the interpreter that
runs this script (the project's virtual environment).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlparse

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pip always vendors packaging
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent


def wanted(project: dict[str, object], extras: list[str]) -> list[str]:
    """The requirements of the project with ``extras``, self-references expanded."""
    name = canonicalize_name(str(project["name"]))
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})  # type: ignore[assignment]
    found: list[str] = list(project["dependencies"])  # type: ignore[call-overload]
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"{sys.argv[0]}: pyproject.toml has no extra {extra!r}")
        seen.add(extra)
        for text in optional[extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == name:
                pending.extend(requirement.extras)
            else:
                found.append(text)
    return found


def installed_from_here(project: dict[str, object]) -> str | None:
    """None if the project is installed from this checkout at its version, else why not."""
    try:
        dist = importlib.metadata.distribution(str(project["name"]))
    except importlib.metadata.PackageNotFoundError:
        return f"{project['name']} (not installed)"
    if dist.version != project["version"]:
        return f"{project['name']}=={project['version']} (have {dist.version})"
    direct = dist.read_text("direct_url.json")
    url = json.loads(direct).get("url", "") if direct else ""
    source = Path(unquote(urlparse(url).path)) if url.startswith("file:") else None
    if source is None or source.resolve() != ROOT:
        return f"{project['name']} (installed from {source or 'elsewhere'}, not {ROOT})"
    return None


def missing(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    absent = []
    if (why := installed_from_here(project)) is not None:
        absent.append(why)
    for text in wanted(project, extras):
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            absent.append(text)
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            absent.append(f"{text} (have {version})")
    return absent


if __name__ == "__main__":
    absent = missing(ROOT / "pyproject.toml", sys.argv[1:])
    for text in absent:
        print(f"missing: {text}")
    sys.exit(1 if absent else 0)
