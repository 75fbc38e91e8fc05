"""`leadsync backfill --dry-run` is `plan` over the full pull: it says what it would write."""

from __future__ import annotations

import re

import pytest

from leadsync.cli import main
from leadsync.config import Config


def test_a_dry_run_backfill_prints_the_plan_and_runs_mark_it_dry(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(config.path)
    assert main(["backfill", "--dry-run", "--config", path]) == 0
    out = capsys.readouterr().out
    # The plan's summary, as `plan` prints it: the table, the writes per field, the calls.
    assert re.search(r"^run \w+: backfill \(nothing written\)$", out, re.M), out
    assert re.search(r"^  hubspot +\d+", out, re.M), out
    assert "changes by field, and the write calls they take:" in out
    assert re.search(r"hubspot: \d+ record\(s\), about \d+ call\(s\)", out), out
    # Then the backfill's own row, its columns apart.
    assert re.search(r"backfill \(dry\) +succeeded", out), out

    assert main(["runs", "--config", path]) == 0
    runs = capsys.readouterr().out
    assert re.search(r"^\w+ +backfill \(dry\) +succeeded", runs, re.M), runs
    run_id = re.search(r"^(\w+) +backfill \(dry\)", runs, re.M)
    assert run_id is not None
    assert main(["runs", "show", run_id.group(1), "--config", path]) == 0
    shown = capsys.readouterr().out
    assert "backfill (dry run)" in shown
    assert "no writes" not in shown
    assert "a dry run: nothing written" in shown


def test_backfill_status_keeps_its_columns_apart_and_names_an_open_window(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(config.path)
    assert main(["backfill", "--dry-run", "--config", path]) == 0
    assert main(["backfill", "--since", "2020-01-01", "--config", path]) in (0, 1)
    capsys.readouterr()
    assert main(["backfill", "--status", "--config", path]) == 0
    status = capsys.readouterr().out
    assert "…" not in status
    assert re.search(r"backfill \(dry\) +succeeded +all records ", status), status
    assert re.search(r"backfill +succeeded +since 2020-01-01 ", status), status
