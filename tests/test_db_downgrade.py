"""`leadsync db downgrade --to REVISION`: a store taken back to the newest revision of an older
release, for that release to run on. On each backend, a store a real sync filled is taken down
to 0015 (undoing the packing of 0016-0019): it then has the schema 0015 made, each lead's
values in the JSON columns that release reads, and this leadsync, opening it again, finds the
same store. Without --to, or with a revision it cannot go to, it refuses and changes nothing."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from leadsync.cli import main
from leadsync.sandbox import Sandbox
from leadsync.sync.database import (
    MIGRATION_LOCK_KEY,
    alembic_config,
    known_revisions,
    make_engine,
    shown_url,
    writing,
)
from leadsync.sync.leases import Leases
from leadsync.sync.store import Store
from leadsync.sync.tables import decode_value
from tests.support import set_up_sandbox_config

OLDER = "0015_own_write_stamps"
HEAD = "0020_backfill_checkpoints"
UNDONE = (
    f"{HEAD}, 0019_packed_expected, 0018_packed_leads, 0017_packing_dictionaries, "
    "0016_expected_row_stamps"
)


def _config(folder: Path, url: str, sandbox: Sandbox | None = None) -> str:
    """A config on the store at `url`: pointed at `sandbox`, or naming the database alone
    (all the `db` commands read)."""
    if sandbox is None:
        path = folder / "config.toml"
        path.write_text(f'[database]\nurl = "{url}"\n')
        return str(path)
    config = set_up_sandbox_config(sandbox, folder)
    assert config.path is not None
    text = re.sub(r'url = "sqlite:///[^"]*"', f'url = "{url}"', config.path.read_text())
    config.path.write_text(text)
    return str(config.path)


def _revision(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return str(
                connection.execute(sa.text("SELECT version_num FROM alembic_version")).one()[0]
            )
    finally:
        engine.dispose()


def _columns(url: str) -> dict[str, set[str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            return {
                name: {column["name"] for column in inspector.get_columns(name)}
                for name in inspector.get_table_names()
            }
    finally:
        engine.dispose()


def _state(url: str) -> dict[str, Any]:
    """What this leadsync reads of the store (migrating it first): leads, records, echo
    fingerprints, the audit log and the runs."""
    with Store(url) as store, store.engine.connect() as connection:
        records: dict[str, list[str]] = {}
        for crm, record_id in connection.execute(sa.text("SELECT crm, record_id FROM snapshots")):
            records.setdefault(crm, []).append(record_id)
        return {
            "leads": store.leads(store.lead_ids_after(None, limit=1_000_000)),
            "snapshots": {crm: store.snapshots(crm, ids) for crm, ids in records.items()},
            "expected": {crm: store.audit_log.expected(crm, ids) for crm, ids in records.items()},
            "writes": store.audit_log.entries(),
            "runs": store.run_log.latest(limit=1_000),
        }


def _parsed(stored: Any) -> Any:
    return json.loads(stored) if isinstance(stored, str) else stored


def test_a_synced_store_taken_down_to_0015_is_what_0015_reads_and_comes_back_whole(
    sandbox: Sandbox,
    tmp_path: Path,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config(tmp_path, database_url, sandbox)
    assert main(["sync", "--once", "--config", config]) == 0
    before = _state(database_url)
    assert before["leads"]
    assert before["writes"]
    capsys.readouterr()

    assert main(["db", "downgrade", "--to", "0015", "--config", config]) == 0
    out = capsys.readouterr().out
    shown = shown_url(database_url)
    assert f"the store at {shown} is at {HEAD}: undoing {UNDONE}\n" in out
    assert f"the store at {shown} is at {OLDER}: " in out
    assert _revision(database_url) == OLDER

    # The schema the release at 0015 made, on a new store of its own.
    made_by_0015 = f"sqlite:///{tmp_path / 'made_by_0015.db'}"
    engine = make_engine(made_by_0015)
    try:
        with writing(engine) as connection:
            command.upgrade(alembic_config(connection=connection), OLDER)
    finally:
        engine.dispose()
    assert _columns(database_url) == _columns(made_by_0015)

    # Each lead as that release reads it: values and reasons as JSON.
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text('SELECT lead_id, "values", reasons FROM leads'))
            as_0015 = {
                lead_id: (decode_value(_parsed(values)), _parsed(reasons))
                for lead_id, values, reasons in rows
            }
    finally:
        engine.dispose()
    assert as_0015 == {
        lead_id: (dict(lead.values), list(lead.reasons))
        for lead_id, lead in before["leads"].items()
    }

    # Opened by this leadsync again (migrated up): the same store.
    assert _state(database_url) == before


def test_it_refuses_without_to_or_with_a_revision_it_cannot_go_to_changing_nothing(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, database_url)
    assert main(["db", "upgrade", "--config", config]) == 0
    assert main(["db", "downgrade", "--to", "0015", "--config", config]) == 0
    capsys.readouterr()
    for arguments, said in [
        ([], "say which revision to go back to, --to REVISION"),
        (["--to", "0099"], "no revision '0099' in this leadsync: one of 0001_initial, "),
        # A start every id has: which to take is not guessed.
        (["--to", "00"], f"'00' starts {len(known_revisions())} revisions (0001_initial, "),
        (
            ["--to", "0017"],
            f"the store at {shown_url(database_url)} is at {OLDER}, older than "
            "0017_packing_dictionaries: nothing to downgrade",
        ),
    ]:
        assert main(["db", "downgrade", *arguments, "--config", config]) == 2, arguments
        out, err = capsys.readouterr()
        assert err.startswith(f"leadsync: {said}"), (arguments, err)
        assert out == ""
        assert _revision(database_url) == OLDER

    assert main(["db", "downgrade", "--to", OLDER, "--config", config]) == 0
    assert capsys.readouterr().out == (
        f"the store at {shown_url(database_url)} is at {OLDER} already: nothing done\n"
    )
    assert _revision(database_url) == OLDER


def test_a_sqlite_store_that_is_not_there_is_not_made_by_a_downgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "gone" / "leadsync.db"
    config = _config(tmp_path, f"sqlite:///{missing}")
    assert main(["db", "downgrade", "--to", "0015", "--config", config]) == 1
    assert capsys.readouterr().err == (
        f"leadsync: no SQLite database at sqlite:///{missing}: nothing to downgrade\n"
    )
    assert not missing.parent.exists()


@pytest.mark.parametrize(
    "lease", ["sync", "replica:host-b:4242:abcdef"], ids=["a-sync", "a-service-replica"]
)
def test_it_refuses_while_a_sync_or_a_replica_of_the_service_holds_a_live_lease(
    tmp_path: Path, database_url: str, lease: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A sync that went on past the downgrade would fail on the tables it took away (seen:
    # `sync --once` on PostgreSQL, "relation dictionaries does not exist"), its run left
    # running; a replica would start its next job on a schema it cannot know.
    config = _config(tmp_path, database_url)
    assert main(["db", "upgrade", "--config", config]) == 0
    with Store(database_url) as store:
        holder = "host-b:4242:abcdef/sync"
        assert Leases(store.engine, holder).acquire(lease, timedelta(minutes=10))
    capsys.readouterr()

    assert main(["db", "downgrade", "--to", "0015", "--config", config]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"leadsync: the {lease} lease is held by {holder} until "), err
    assert "stop every replica of the service and every command that syncs first" in err
    assert _revision(database_url) == HEAD

    # Once it is given back (or ran out), the downgrade goes ahead.
    with Store(database_url) as store:
        Leases(store.engine, holder).release(lease)
    assert main(["db", "downgrade", "--to", "0015", "--config", config]) == 0
    assert _revision(database_url) == OLDER


def test_a_sync_lease_that_ran_out_does_not_stop_a_downgrade(
    tmp_path: Path, database_url: str
) -> None:
    # A killed sync's lease is a row until taken: once expired it is nobody's.
    config = _config(tmp_path, database_url)
    assert main(["db", "upgrade", "--config", config]) == 0
    with Store(database_url) as store:
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        killed = Leases(store.engine, "host-b:4242:abcdef/sync", clock=lambda: an_hour_ago)
        assert killed.acquire("sync", timedelta(minutes=10))
    assert main(["db", "downgrade", "--to", "0015", "--config", config]) == 0
    assert _revision(database_url) == OLDER


@pytest.mark.postgres
def test_a_second_downgrade_waits_for_the_first_then_judges_the_store_it_left(
    tmp_path: Path, postgresql_database_url: str
) -> None:
    # Seen: two run at once, the second announced "undoing 0018, 0017" of a store the first
    # had taken to 0015, then failed with an internal error, or said it was at 0016 when it
    # was at 0015. It must read the store's revision under the migration lock.
    url = postgresql_database_url
    config = _config(tmp_path, url)
    at = ["--config", config]
    assert main(["db", "upgrade", "--config", config]) == 0
    engine = make_engine(url)
    try:
        with writing(engine) as first:  # the first downgrade, not yet committed
            first.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            command.downgrade(alembic_config(connection=first), OLDER)
            second = subprocess.Popen(
                [sys.executable, "-m", "leadsync.cli", "db", "downgrade", "--to", "0016", *at],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.monotonic() + 60
            with engine.connect() as watching:
                while second.poll() is None and time.monotonic() < deadline:
                    waiting = watching.execute(
                        sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")
                    ).scalar_one()
                    if waiting:
                        break
                    time.sleep(0.05)
    finally:
        engine.dispose()
    out, err = second.communicate(timeout=60)

    assert second.returncode == 2, (out, err)
    assert out == ""
    assert err == (
        f"leadsync: the store at {shown_url(url)} is at {OLDER}, older than "
        "0016_expected_row_stamps: nothing to downgrade (the release that needs it migrates "
        "the store up itself)\n"
    )
    assert _revision(url) == OLDER


def test_a_downgrade_retried_after_a_transient_error_says_what_it_undoes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'leadsync.db'}"
    config = _config(tmp_path, url)
    assert main(["db", "upgrade", "--config", config]) == 0
    capsys.readouterr()
    real = command.downgrade
    failures = [
        sa.exc.OperationalError("DELETE", {}, sqlite3.OperationalError("database is locked"))
    ]

    def locked_once(*arguments: Any, **keywords: Any) -> None:
        # The whole transaction rolls back, and is run again (retry_transient).
        if failures:
            raise failures.pop()
        real(*arguments, **keywords)

    monkeypatch.setattr(command, "downgrade", locked_once)
    assert main(["db", "downgrade", "--to", OLDER, "--config", config]) == 0
    assert not failures
    shown = shown_url(url)
    assert capsys.readouterr().out == (
        f"the store at {shown} is at {known_revisions()[-1]}: undoing {UNDONE}\n"
        f"the store at {shown} is at {OLDER}: the release whose newest revision it is can run\n"
    )
    assert _revision(url) == OLDER
