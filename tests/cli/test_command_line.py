"""The command line itself, whatever the command: help, and where `--config` may stand."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from leadsync.cli import build_parser, main
from leadsync.errors import ServerError, StoreError, UsageError
from leadsync.sync.engine import RunInterruptedError


def test_bare_leadsync_prints_the_help_with_every_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: leadsync")
    for command in ("sync", "plan", "review", "quarantine", "runs", "report", "apply"):
        assert command in out


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_config_may_stand_before_or_after_the_command(
    before: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.toml"
    argv = ["--config", str(missing), "check"] if before else ["check", "--config", str(missing)]
    assert main(argv) == 2
    assert f"{missing}: no such file" in capsys.readouterr().err


def test_a_config_after_the_command_wins_over_one_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    assert main(["--config", str(first), "check", "--config", str(second)]) == 2
    err = capsys.readouterr().err
    assert str(second) in err
    assert str(first) not in err


def test_the_help_imports_neither_the_store_nor_the_config_stack() -> None:
    # `leadsync --help` starts fast because the commands import their machinery lazily;
    # checked by what is imported, not by a time (which would depend on the machine).
    probe = (
        "import sys, leadsync.cli; "
        "print(sorted(m for m in ('sqlalchemy', 'pydantic', 'leadsync.config', "
        "'leadsync.sync.store', 'leadsync.sync.engine') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command and sub-command, with its path (`("runs", "show")`)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(((*path, name), sub))
                found.extend(_commands(sub, (*path, name)))
    return found


COMMANDS = _commands(build_parser())
# The commands whose output is no data a script would read: they write files, serve, run the
# service, print one secret hash, or show the demo.
PRINT_NO_DATA = {
    ("init",),
    ("sandbox",),
    ("run",),
    ("hash-password",),
    ("db",),
    ("db", "upgrade"),
    ("db", "downgrade"),
    ("demo",),
}


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_a_description(path: tuple[str, ...], parser: object) -> None:
    assert isinstance(parser, argparse.ArgumentParser)
    assert parser.description, f"`leadsync {' '.join(path)} --help` has no description"


@pytest.mark.parametrize(
    ("path", "parser"),
    [(p, parser) for p, parser in COMMANDS if p not in PRINT_NO_DATA],
    ids=[" ".join(p) for p, _ in COMMANDS if p not in PRINT_NO_DATA],
)
def test_every_command_that_prints_data_takes_json(path: tuple[str, ...], parser: object) -> None:
    assert isinstance(parser, argparse.ArgumentParser)
    options = {option for action in parser._actions for option in action.option_strings}
    assert "--json" in options, f"`leadsync {' '.join(path)}` has no --json"


def _failing_with(error: BaseException) -> object:
    def handler(_args: argparse.Namespace) -> int:
        raise error

    return handler


@pytest.mark.parametrize(
    ("error", "code", "said"),
    [
        (UsageError("--until must be after --since"), 2, "leadsync: --until must be after --since"),
        (StoreError("database sqlite:///x.db: locked"), 1, "leadsync: database sqlite:///x.db"),
        (ServerError("down", crm="hubspot", status=503), 1, "leadsync: hubspot 503: down"),
        (RunInterruptedError(), 0, "leadsync: stopped on request; the next run goes on"),
        (KeyError("oops"), 1, "leadsync: internal error: KeyError (a bug in leadsync"),
        # Ctrl-C where nothing waits for a batch boundary, or a second signal after one did.
        (KeyboardInterrupt(), 1, "leadsync: stopped at once: what was committed stays"),
    ],
    ids=["input", "store", "connector", "interrupted", "bug", "stopped-at-once"],
)
def test_main_maps_each_branch_of_the_error_tree_to_its_exit_code(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: BaseException,
    code: int,
    said: str,
) -> None:
    monkeypatch.setattr("leadsync.cli.check.run_check", _failing_with(error))
    assert main(["check"]) == code
    err = capsys.readouterr().err
    assert said in err
    assert "Traceback" not in err
    assert main(["--debug", "check"]) == code  # and --debug adds the traceback
    assert "Traceback" in capsys.readouterr().err
