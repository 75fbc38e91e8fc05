"""The import directions of DESIGN.md: cli/jobs -> sync -> mapping, connectors; sandbox alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "leadsync"

# package -> the leadsync packages it must not import
FORBIDDEN = {
    "sandbox": (
        "leadsync.connectors",
        "leadsync.mapping",
        "leadsync.sync",
        "leadsync.cli",
        "leadsync.jobs",
        "leadsync.demo",
    ),
    "connectors": ("leadsync.sync", "leadsync.cli", "leadsync.jobs", "leadsync.sandbox"),
    "mapping": ("leadsync.sync", "leadsync.cli", "leadsync.jobs", "leadsync.sandbox"),
    "sync": ("leadsync.cli", "leadsync.jobs"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_the_design_allows(package: str) -> None:
    offences = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for name in sorted(_imports(path))
        if name.startswith(FORBIDDEN[package])
    ]
    assert offences == []


def test_the_layout_check_sees_the_files_it_guards() -> None:
    # Guards the guard: an empty glob would make the test above pass vacuously.
    assert len(list((PACKAGE / "sandbox").rglob("*.py"))) > 5
