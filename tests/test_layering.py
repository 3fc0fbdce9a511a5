"""Who may import whom inside the package, read from the source (function-level imports too).

The registry is below the retraining core: ``retrain`` records versions in it,
so the registry never imports ``retrain`` (the ``models`` command, which needs
both, sits above them in ``stream_mlops/models_cli.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stream_mlops"


def imported_modules(source: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names, at any depth.

    >>> sorted(imported_modules("import a.b\\ndef f():\\n    from c import d"))
    ['a.b', 'c']
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    ("lower", "upper"),
    [("registry", "stream_mlops.retrain"), ("registry", "stream_mlops.models_cli")],
)
def test_a_lower_package_never_imports_an_upper_one(lower: str, upper: str) -> None:
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(
            m for m in imported_modules(path.read_text()) if m == upper or m.startswith(upper + ".")
        )
        for path in sorted((PACKAGE / lower).rglob("*.py"))
    }
    assert {path: found for path, found in offenders.items() if found} == {}
