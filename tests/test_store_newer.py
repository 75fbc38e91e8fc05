"""A release rolled back: an older leadsync on a store a newer one migrated. Every command that
opens the store, and the service's start, refuse it in one line from the error tree (exit 1):
the store, its revision and this leadsync's newest, never the password, never a traceback; and
they leave the store exactly as they found it. The store is a real one on each backend, stamped
with a revision no migration here knows, as a newer release leaves it."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from leadsync.cli import build_parser, main
from leadsync.errors import StoreError
from leadsync.sandbox import Sandbox
from leadsync.sync.database import (
    MIGRATION_LOCK_KEY,
    alembic_config,
    shown_url,
    upgrade_database,
)
from leadsync.sync.store import Store
from tests.support import REAL_PROCESSES, set_up_sandbox_config

FUTURE = "0042_from_a_newer_release"
PASSWORD = "hunter2secret"

# Every command that opens the store, as a user types it (after `--config FILE`), by the
# command's path: each way there is to the store (the runtime with and without the CRMs, the
# store alone, the migrations up and down).
COMMANDS: dict[tuple[str, ...], list[str]] = {
    ("db", "upgrade"): ["db", "upgrade"],
    ("db", "downgrade"): ["db", "downgrade", "--to", "0015"],
    ("sync",): ["sync", "--once"],
    ("plan",): ["plan", "--what-if"],
    ("explain",): ["explain", "someone@example.com"],
    ("runs",): ["runs"],
    ("runs", "show"): ["runs", "show", "0000000"],
    ("revert",): ["revert", "0000000", "--dry-run"],
    ("quarantine",): ["quarantine"],
    ("quarantine", "show"): ["quarantine", "show", "0000000"],
    ("quarantine", "retry"): ["quarantine", "retry", "--all"],
    ("review",): ["review"],
    ("review", "resolve"): ["review", "resolve", "0000000", "apart"],
    ("sla",): ["sla"],
    ("report",): ["report"],
    ("calibrate",): ["calibrate"],
    ("backfill",): ["backfill", "--crm", "hubspot"],
    ("status",): ["status"],
    ("apply",): ["apply", "--yes"],
}
EXTRA = [["plan"], ["backfill", "--status"]]  # other ways in of the same commands
# The others: the service (its own test below), and those that open no store of the config's.
NOT_HERE = {
    ("run",),
    ("db",),
    ("init",),
    ("sandbox",),
    ("check",),
    ("setup",),
    ("hash-password",),
    ("demo",),  # a store of its own, in a temporary folder
}


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


@pytest.fixture
def newer_store(database_url: str) -> str:
    """A store this leadsync made and used, then migrated by a newer release (its revision is
    one no migration here knows). Its URL carries a password on PostgreSQL."""
    url = database_url
    if sa.make_url(url).get_backend_name() == "postgresql":
        # The test server trusts local connections: the password is only there to be hidden.
        url = sa.make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)
    upgrade_database(url)
    with Store(url) as store:
        store.run_log.start("sync", started_at=datetime(2026, 12, 1, tzinfo=UTC))
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE}
            )
    finally:
        engine.dispose()
    return url


def _contents(url: str) -> dict[str, Any]:
    """Every table of the store: its columns and its rows."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            metadata = sa.MetaData()
            metadata.reflect(connection)
            return {
                name: (
                    [column.name for column in table.columns],
                    sorted((tuple(row) for row in connection.execute(sa.select(table))), key=repr),
                )
                for name, table in metadata.tables.items()
            }
    finally:
        engine.dispose()


def _config(sandbox: Sandbox, folder: Path, url: str) -> Path:
    config = set_up_sandbox_config(sandbox, folder)
    assert config.path is not None
    text = re.sub(r'url = "sqlite:///[^"]*"', f'url = "{url}"', config.path.read_text())
    config.path.write_text(text)
    return config.path


def _refusal(url: str) -> str:
    return (
        f"leadsync: the store at {shown_url(url)} was migrated by a newer leadsync (revision "
        f"{FUTURE}, this one knows up to {_head()}): run the newer release, or downgrade the "
        "store with it first"
    )


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("leadsync: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_every_command_refuses_a_store_a_newer_release_migrated_and_leaves_it_as_it_was(
    sandbox: Sandbox,
    tmp_path: Path,
    newer_store: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config(sandbox, tmp_path, newer_store)
    before = _contents(newer_store)
    assert before["alembic_version"][1] == [(FUTURE,)]
    assert before["runs"][1]  # a store with something in it
    for command in [*COMMANDS.values(), *EXTRA]:
        code = main(["--config", str(config), *command])
        out, err = capsys.readouterr()
        assert code == 1, (command, out, err)
        assert _one_line(err).startswith(_refusal(newer_store)), (command, err)
        assert PASSWORD not in out + err, command
        assert _contents(newer_store) == before, command


@REAL_PROCESSES
def test_the_service_does_not_start_on_a_store_a_newer_release_migrated(
    sandbox: Sandbox, tmp_path: Path, newer_store: str
) -> None:
    config = _config(sandbox, tmp_path, newer_store)
    before = _contents(newer_store)
    for command in (["db", "upgrade"], ["run"]):
        # As systemd runs them (deploy/leadsync.service): the migration first, then the service.
        done = subprocess.run(
            [sys.executable, "-m", "leadsync.cli", *command, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1, (command, done.stderr)
        assert _one_line(done.stderr).startswith(_refusal(newer_store)), done.stderr
        assert f"`leadsync db downgrade --to {_head()}` (see README: Downgrading)" in done.stderr
        assert PASSWORD not in done.stdout + done.stderr
        assert _contents(newer_store) == before, command


def test_a_store_opened_without_migrating_is_refused_the_same_way(newer_store: str) -> None:
    before = _contents(newer_store)
    with pytest.raises(StoreError, match=re.escape(_refusal(newer_store)[len("leadsync: ") :])):
        Store(newer_store, migrate=False)
    assert _contents(newer_store) == before


def _paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= {(*path, name), *_paths(sub, (*path, name))}
    return found


def test_every_command_is_tried_above_or_opens_no_store_of_the_configs() -> None:
    # A command added later is tried above or named here, not forgotten.
    assert _paths(build_parser()) == set(COMMANDS) | NOT_HERE


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_replica_waiting_on_the_migration_lock_sees_the_newer_release_that_held_it(
    database_url: str,
) -> None:
    # Rolling deploy: a newer replica migrates while an older one starts. The older one waits
    # for the migration lock, then must judge the revision the newer one committed.
    upgrade_database(database_url)
    # The older replica's connections, by a name of their own: others may wait on the lock too.
    name = f"older-{uuid.uuid4().hex[:12]}"
    older_url = sa.make_url(database_url).update_query_dict({"application_name": name})
    newer = sa.create_engine(database_url)
    outcome: list[BaseException | None] = []
    try:
        with newer.connect() as connection:
            transaction = connection.begin()
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            connection.execute(
                sa.text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE}
            )

            def older() -> None:
                try:
                    upgrade_database(older_url.render_as_string(hide_password=False))
                    outcome.append(None)
                except BaseException as error:  # noqa: BLE001 - judged below
                    outcome.append(error)

            thread = threading.Thread(target=older)
            thread.start()
            # Failing, the block rolls back: the lock is free again for every other test.
            assert _waits_for_the_lock(newer, name, thread), outcome
            transaction.commit()
            thread.join(60)
    finally:
        newer.dispose()
    assert len(outcome) == 1
    assert isinstance(outcome[0], StoreError), repr(outcome[0])
    assert f"(revision {FUTURE}, this one knows up to {_head()})" in str(outcome[0])


# The lock is the server's, taken by every test schema's migration: held no longer than this
# while the older replica is on its way to it.
LOCK_HELD_AT_MOST_SECONDS = 30.0


def _waits_for_the_lock(engine: sa.Engine, name: str, thread: threading.Thread) -> bool:
    """True once the connection named `name` waits for an advisory lock; False if `thread`
    ends first, or takes too long to get there."""
    query = sa.text(
        "SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid) "
        "WHERE locktype = 'advisory' AND NOT granted AND application_name = :name"
    )
    deadline = time.monotonic() + LOCK_HELD_AT_MOST_SECONDS
    # A connection of its own, each query its own transaction: within one, pg_stat_activity
    # stays as the transaction first read it.
    with engine.connect() as watcher:
        watcher = watcher.execution_options(isolation_level="AUTOCOMMIT")
        while thread.is_alive() and time.monotonic() < deadline:
            if watcher.execute(query, {"name": name}).scalar_one():
                return True
            thread.join(0.01)
    return False
