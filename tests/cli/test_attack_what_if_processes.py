"""Attacks on the what-if split over forked processes: the same result as one process over
odd lead counts, leads of deleted records only, page boundaries, on SQLite and PostgreSQL;
no copy left behind by an interrupt; nothing printed twice."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from leadsync.cli import main
from leadsync.config import Config, load_config
from leadsync.mapping.transforms import TransformError
from leadsync.runtime import open_runtime
from leadsync.sync import tables
from leadsync.sync.engine import Reevaluated, SyncEngine
from leadsync.sync.whatif import what_if
from tests.cli.conftest import FORK_WARNING, with_mql_at_30


def _on_database(config: Config, url: str) -> Config:
    assert config.path is not None
    text = config.path.read_text()
    text, replaced = re.subn(r'(?m)^url = "sqlite:///[^"]*"$', f"url = {url!r}", text)
    assert replaced == 1
    config.path.write_text(text)
    return load_config(config.path)


def _some_leads_of_deleted_records_only(config: Config, every: int) -> int:
    """Every `every`-th stored lead's records marked deleted: a lead of deleted records only."""
    engine = sa.create_engine(config.database_url)
    try:
        with engine.begin() as connection:
            lead_ids = sorted(connection.execute(sa.select(tables.leads.c.lead_id)).scalars())
            chosen = lead_ids[::every]
            for lead_id in chosen:
                record_ids = connection.execute(
                    sa.select(tables.links.c.crm, tables.links.c.record_id).where(
                        tables.links.c.lead_id == lead_id
                    )
                ).all()
                for crm, record_id in record_ids:
                    connection.execute(
                        sa.update(tables.snapshots)
                        .where(
                            tables.snapshots.c.crm == crm,
                            tables.snapshots.c.record_id == record_id,
                        )
                        .values(deleted=True)
                    )
    finally:
        engine.dispose()
    return len(chosen)


def _edited(config: Config, tmp_path: Path) -> Config:
    assert main(["sync", "--once", "--config", str(config.path)]) == 0
    return with_mql_at_30(config, tmp_path)


@pytest.mark.filterwarnings(FORK_WARNING)
def test_the_split_what_if_equals_one_process_over_odd_counts_deleted_leads_and_pages(
    config: Config, tmp_path: Path, database_url: str
) -> None:
    edited = _edited(_on_database(config, database_url), tmp_path)
    assert _some_leads_of_deleted_records_only(edited, every=3) > 0
    with open_runtime(edited, connect=False) as runtime:
        alone = what_if(runtime.engine(), runtime.store, runtime.field_map, page=1_000)
        assert alone.stage_moves
        for page in (1, 2, 3, 7):
            for processes in (2, 3, 4):
                split = what_if(
                    runtime.engine(),
                    runtime.store,
                    runtime.field_map,
                    page=page,
                    processes=processes,
                )
                assert split.as_dict() == alone.as_dict(), (page, processes)


def _children_of(pid: int) -> list[int]:
    found = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in found.stdout.split()]


# Ctrl-C works in the command as it does from a terminal: whatever mask or disposition of
# SIGINT the test's own process passes on (a test before it in the same worker may leave SIGINT
# blocked, and a child inherits the mask: the interrupt then never arrives) is undone first.
_SLOW_WHAT_IF = """
import os, signal, sys, time
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
signal.signal(signal.SIGINT, signal.default_int_handler)
import leadsync.sync.whatif as whatif
from leadsync.sync.engine import SyncEngine
reevaluate = SyncEngine.reevaluate
def slow(engine, lead_ids):
    time.sleep(float(os.environ.get("WHAT_IF_PAUSE", "0.5")))
    return reevaluate(engine, lead_ids)
SyncEngine.reevaluate = slow
whatif.what_if.__kwdefaults__["page"] = 2
from leadsync.cli import main
print("started", flush=True)
sys.exit(main(sys.argv[1:]))
"""


def test_an_interrupted_what_if_leaves_no_process_behind(config: Config, tmp_path: Path) -> None:
    edited = _edited(config, tmp_path)
    command = [sys.executable, "-c", _SLOW_WHAT_IF, "plan", "--what-if"]
    command += ["--config", str(edited.path)]
    # Ctrl-C on a terminal interrupts the whole foreground group: a group of its own here.
    # Each page takes a minute, so the interrupt always finds the what-if at work, however
    # long this test waits on a loaded machine (a page of half a second once finished first).
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "WHAT_IF_PAUSE": "60"},
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 30
        while len(_children_of(process.pid)) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        copies = _children_of(process.pid)
        assert copies  # the what-if forked
        time.sleep(0.2)  # each copy at work on its leads
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()  # its pipes closed here, not by a later test's collector
    time.sleep(0.5)
    alive = [pid for pid in copies if Path(f"/proc/{pid}").exists()]
    assert alive == []
    assert process.returncode != 0
    # No traceback from each forked copy on top of the command's own word.
    assert "Process leadsync-what-if" not in err, err


@pytest.mark.filterwarnings(FORK_WARNING)
def test_apply_and_plan_print_the_same_what_if_split_or_not(
    config: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sync", "--once", "--config", str(config.path)]) == 0
    assert main(["apply", "--yes", "--config", str(config.path)]) == 0  # a version runs
    edited = with_mql_at_30(config, tmp_path)
    capsys.readouterr()
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert main(["plan", "--what-if", "--json", "--config", str(edited.path)]) == 0
    alone = json.loads(capsys.readouterr().out)
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    assert what_if.__kwdefaults__ is not None
    monkeypatch.setitem(what_if.__kwdefaults__, "page", 3)
    assert main(["plan", "--what-if", "--json", "--config", str(edited.path)]) == 0
    assert json.loads(capsys.readouterr().out) == alone
    assert main(["apply", "--yes", "--json", "--config", str(edited.path)]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["what_if"] == alone  # printed once: no copy flushed it again
    assert alone["stage_moves"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_what_if_ended_by_a_signal_to_the_command_alone_leaves_no_copy_working(
    config: Config, tmp_path: Path, signum: int
) -> None:
    # `timeout`, `kill PID` or a closed terminal end the command, not its copies: each copy
    # would otherwise go on re-evaluating its leads (minutes of every core, at 100,000 leads)
    # for a parent that is gone.
    edited = _edited(config, tmp_path)
    command = [sys.executable, "-c", _SLOW_WHAT_IF, "plan", "--what-if"]
    command += ["--config", str(edited.path)]
    out = tmp_path / "out"
    with out.open("w") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    try:
        deadline = time.monotonic() + 30
        while not _children_of(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        copies = _children_of(process.pid)
        assert copies
        process.send_signal(signum)
        process.wait(timeout=30)
        # Each copy has 10 pages of 2 leads at half a second each: 5 s of work left.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(_alive(pid) for pid in copies):
            time.sleep(0.05)
        assert not [pid for pid in copies if _alive(pid)]
    finally:
        if process.poll() is None:
            process.kill()
        if _group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _split_what_if_failing_in_a_copy(
    config: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
) -> tuple[int, str]:
    """`plan --what-if` in three processes, each forked copy raising `error` where it would
    re-evaluate its leads; and the same in one process. Returns both exit codes and stderr
    lines, which must match."""
    edited = _edited(config, tmp_path)
    parent = os.getpid()
    reevaluate = SyncEngine.reevaluate

    def failing(engine: SyncEngine, lead_ids: Sequence[str]) -> list[Reevaluated]:
        if os.getpid() != parent or alone:
            raise error
        return reevaluate(engine, lead_ids)

    monkeypatch.setattr(SyncEngine, "reevaluate", failing)
    assert what_if.__kwdefaults__ is not None
    monkeypatch.setitem(what_if.__kwdefaults__, "page", 3)
    argv = ["plan", "--what-if", "--config", str(edited.path)]
    capsys.readouterr()
    alone = True
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    code_alone = main(argv)
    err_alone = capsys.readouterr().err
    alone = False
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    code_split = main(argv)
    err_split = capsys.readouterr().err
    assert (code_split, err_split) == (code_alone, err_alone)
    return code_split, err_split


@pytest.mark.filterwarnings(FORK_WARNING)
def test_a_store_failure_in_a_copy_is_told_as_in_one_process(
    config: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    locked = sa.exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))
    code, err = _split_what_if_failing_in_a_copy(config, tmp_path, monkeypatch, capsys, locked)
    assert code == 1
    assert "internal error" not in err


@pytest.mark.filterwarnings(FORK_WARNING)
def test_a_leadsync_error_in_a_copy_is_told_as_in_one_process(
    config: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    unreadable = TransformError("salesforce.NumberOfEmployees", "many", "cannot read it")
    _, err = _split_what_if_failing_in_a_copy(config, tmp_path, monkeypatch, capsys, unreadable)
    assert "internal error" not in err
