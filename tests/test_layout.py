"""The import directions of DESIGN.md: cli/jobs -> sync -> mapping, connectors; sandbox alone.
And its contract: `sync/` names no CRM outside identity's cross-references; what differs
between CRMs lives behind the connector interface."""

from __future__ import annotations

import ast
import io
import re
import tokenize
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
    # A CRM's connector module is its own business: sync/ reads what differs between CRMs
    # from the connector interface (leadsync.connectors.base, .traits).
    "sync": (
        "leadsync.cli",
        "leadsync.jobs",
        "leadsync.connectors.hubspot",
        "leadsync.connectors.salesforce",
    ),
}
# The one module of sync/ that may name a CRM: cross-references name Salesforce records.
NAMES_CRMS = frozenset({"sync/identity.py"})
CRM_NAME = re.compile("hubspot|salesforce", re.IGNORECASE)


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


# A backfill takes the sync's one path through the engine (DESIGN.md, "One sync run"): its
# runner claims, beats, counts and holds the lease, and reaches neither the store's records
# nor a connector around the engine.
BACKFILL_MUST_NOT_IMPORT = ("leadsync.sync.store", "leadsync.sync.ingest", "leadsync.mapping")


def test_the_backfill_goes_through_the_engine_not_around_it() -> None:
    imported = _imports(PACKAGE / "sync" / "backfill.py")
    assert "leadsync.sync.engine" in imported
    assert sorted(name for name in imported if name.startswith(BACKFILL_MUST_NOT_IMPORT)) == []


def test_the_layout_check_sees_the_files_it_guards() -> None:
    # Guards the guard: an empty glob would make the test above pass vacuously.
    assert len(list((PACKAGE / "sandbox").rglob("*.py"))) > 5


def _docstrings(tree: ast.AST) -> set[tuple[int, int]]:
    """The (line, column) where each docstring of `tree` starts."""
    starts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                starts.add((first.lineno, first.col_offset))
    return starts


def _crm_names(source: str) -> list[tuple[int, str]]:
    """(line, token) of each name and string literal of `source` that names a CRM; comments
    and docstrings may, as examples."""
    docstrings = _docstrings(ast.parse(source))
    kinds = {tokenize.NAME, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    return [
        (token.start[0], token.string)
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type in kinds and token.start not in docstrings and CRM_NAME.search(token.string)
    ]


def test_sync_names_no_crm_outside_identity() -> None:
    offences = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {text}"
        for path in sorted((PACKAGE / "sync").rglob("*.py"))
        if path.relative_to(PACKAGE).as_posix() not in NAMES_CRMS
        for line, text in _crm_names(path.read_text(encoding="utf-8"))
    ]
    assert offences == []


def test_the_crm_name_check_sees_code_and_skips_comments_and_docstrings() -> None:
    # Guards the guard: a scan that saw no tokens would pass vacuously.
    source = (
        '"""Module docstring: HubSpot."""\n'
        "def f(crm):\n"
        '    """Function docstring: Salesforce."""\n'
        "    # a comment: HubSpot\n"
        '    return crm == "salesforce" or HUBSPOT_BATCH\n'
    )
    assert _crm_names(source) == [(5, '"salesforce"'), (5, "HUBSPOT_BATCH")]
    assert len(list((PACKAGE / "sync").rglob("*.py"))) > 20


ROOT = PACKAGE.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_the_docs_link_only_to_files_of_the_repository(doc: Path) -> None:
    # A contributor reads them from a clone: no link leaves it, none is broken, and what a
    # contributor needs (the design, docs/DESIGN.md) is in it.
    text = doc.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if target.startswith("#"):
            continue
        assert "://" not in target, f"{doc.name} links outside the repository: {target}"
        path = (doc.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"{doc.name} links outside the repository: {target}"
        assert path.exists(), f"{doc.name}: broken link {target}"
    assert "../shared" not in text


def test_the_readme_points_contributors_at_the_design_in_docs() -> None:
    assert "[docs/DESIGN.md](docs/DESIGN.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
