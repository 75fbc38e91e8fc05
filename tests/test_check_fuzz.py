"""Mutated config, mapping and lead-definition files: every mistake is a located problem.

Hypothesis edits the shipped, valid files thousands of times (lines dropped, doubled or
swapped, values replaced by values of other types, keys misspelt, characters inserted, text cut
short) and `check` must either accept the result or report problems that each name the file and
a key or a line: never raise, never a traceback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadsync.checks import check

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "config": ROOT / "config.example.toml",
    "mapping": ROOT / "leadsync" / "examples" / "mapping.toml",
    "definition": ROOT / "leadsync" / "examples" / "lead_definition.toml",
}
REPLACEMENT_VALUES = [
    '"x"',
    '""',
    "-1",
    "0",
    "1e9",
    "1.5",
    "true",
    "[]",
    "{}",
    '["a", 1]',
    "{ a = 1 }",
    '"1-5"',
    '"prefer_nobody"',
    '"(unclosed"',
    "2024-05-01",
    "2024-05-01T10:00:00Z",
    '"Closed - Converted"',
    "nan",
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three files side by side, with the config pointing at the copies."""
    folder = tmp_path_factory.mktemp("files")
    for source in SOURCES.values():
        shutil.copy(source, folder / source.name)
    config = (folder / "config.example.toml").read_text()
    config = config.replace("leadsync/examples/", "").replace(
        'file = "sandbox.secrets.toml"', 'file = "sandbox.secrets.toml"'
    )
    shutil.copy(ROOT / "leadsync" / "examples" / "sandbox.secrets.toml", folder)
    (folder / "config.example.toml").write_text(config)
    return folder


def _mutations(text: str) -> st.SearchStrategy[str]:
    lines = text.splitlines()
    count = len(lines)
    index = st.integers(0, max(count - 1, 0))

    def drop(i: int) -> str:
        return "\n".join(lines[:i] + lines[i + 1 :])

    def double(i: int) -> str:
        return "\n".join(lines[: i + 1] + lines[i:])

    def swap(pair: tuple[int, int]) -> str:
        changed = list(lines)
        changed[pair[0]], changed[pair[1]] = changed[pair[1]], changed[pair[0]]
        return "\n".join(changed)

    def replace_value(i: int, value: str) -> str:
        line = lines[i]
        if "=" not in line or line.lstrip().startswith("#"):
            return text
        key = line.split("=", 1)[0]
        return "\n".join([*lines[:i], f"{key}= {value}", *lines[i + 1 :]])

    def rename_key(i: int, suffix: str) -> str:
        line = lines[i]
        if "=" not in line:
            return text
        key, rest = line.split("=", 1)
        return "\n".join([*lines[:i], f"{key.rstrip()}{suffix} ={rest}", *lines[i + 1 :]])

    def insert(position: int, junk: str) -> str:
        return text[:position] + junk + text[position:]

    return st.one_of(
        index.map(drop),
        index.map(double),
        st.tuples(index, index).map(swap),
        st.builds(replace_value, index, st.sampled_from(REPLACEMENT_VALUES)),
        st.builds(rename_key, index, st.sampled_from(["_x", "s", "Z", ".extra"])),
        st.builds(
            insert,
            st.integers(0, len(text)),
            st.sampled_from(["[", "]", "=", '"', "\n[fields.", "\x00", "é", "\n[[x]]\n", "#"]),
        ),
        st.integers(0, len(text)).map(lambda n: text[:n]),
    )


def _assert_located(workspace: Path, name: str, mutated: str) -> None:
    target = workspace / SOURCES[name].name
    original = target.read_text()
    target.write_text(mutated)
    try:
        report = check(workspace / "config.example.toml")
    finally:
        target.write_text(original)
    files = {str(workspace / source.name) for source in SOURCES.values()}
    files.add(str(workspace / "sandbox.secrets.toml"))
    for problem in report.problems:
        assert problem.file in files, str(problem)
        assert problem.key or problem.line, str(problem)
        assert problem.message, str(problem)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_shipped_files_are_valid(workspace: Path, name: str) -> None:
    report = check(workspace / "config.example.toml")
    assert report.problems == []


def _fuzz(name: str):  # type: ignore[no-untyped-def]
    @settings(
        max_examples=800,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=True,
    )
    @given(data=st.data())
    def run(workspace: Path, data: st.DataObject) -> None:
        mutated = data.draw(_mutations(SOURCES[name].read_text()))
        _assert_located(workspace, name, mutated)

    return run


test_mutated_config_files_give_located_problems = _fuzz("config")
test_mutated_mapping_files_give_located_problems = _fuzz("mapping")
test_mutated_definition_files_give_located_problems = _fuzz("definition")


def test_check_exits_2_without_a_traceback_on_a_broken_file(workspace: Path) -> None:
    target = workspace / "mapping.toml"
    original = target.read_text()
    target.write_text(original.replace('rule = "', 'rule = "nobody_', 1))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "leadsync.cli", "check", "--config", "config.example.toml"],
            cwd=workspace,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        target.write_text(original)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "mapping.toml:" in result.stderr
    assert "problem" in result.stderr
