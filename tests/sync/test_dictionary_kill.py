"""A first sync killed (SIGKILL) just after, or amid, the transaction that trained a packing
dictionary on the batch it saved: the rerun loses nothing, every blob names a dictionary the
store holds, and the sync after it writes nothing to the CRMs."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from leadsync.config import Config, load_config
from leadsync.sandbox import Sandbox
from leadsync.sync import tables as t
from leadsync.sync.dictionaries import TRAIN_SAMPLES
from leadsync.sync.store import Store
from tests.support import REAL_PROCESSES, mapped_state, search_caught_up, write_calls
from tests.sync.test_engine_crash import (
    SETTINGS,
    _config,
    _sync_process,
    _with_short_leases,
)

# One Salesforce page (2,000 rows a query batch) and one settle slice hold more than
# TRAIN_SAMPLES rows: each trains its dictionary on the batch it saves.
BIG = replace(SETTINGS, leads=1_200)

# The victim: `leadsync sync --once`, killing itself once the INSERT of a dictionary of `kind`
# has run ("amid": before its transaction commits) or once that transaction's connection is
# back in the pool ("after": committed). SQLAlchemy's own event hooks, nothing of leadsync patched.
VICTIM = textwrap.dedent(
    """
    import os, signal, sys
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    when, kind, config = sys.argv[1], sys.argv[2], sys.argv[3]
    trained = []

    @event.listens_for(Engine, "after_cursor_execute")
    def _seen(conn, cursor, statement, parameters, *args):
        if not statement.lstrip().upper().startswith("INSERT INTO DICTIONARIES"):
            return
        named = parameters.get("kind") if isinstance(parameters, dict) else parameters[0]
        if named == kind:
            trained.append(conn.connection.dbapi_connection)
            if when == "amid":
                os.kill(os.getpid(), signal.SIGKILL)

    # That transaction's own connection back (another thread's, a lease's, may come first).
    @event.listens_for(Pool, "checkin")
    def _back(dbapi_connection, record):
        if when == "after" and dbapi_connection in trained:
            os.kill(os.getpid(), signal.SIGKILL)

    from leadsync.cli import main
    sys.exit(main(["sync", "--once", "--config", config]))
    """
)


@pytest.fixture(scope="module")
def uninterrupted_big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with Sandbox(BIG) as clean:
        run = _sync_process(_config(clean, tmp_path_factory.mktemp("clean")))
        assert run.wait(timeout=300) == 0
        return mapped_state(clean)


def _every_blob_read(config: Config) -> tuple[int, int]:
    """Every lead and snapshot read back (a blob naming a dictionary the store lacks raises);
    how many of each."""
    with Store(config.database_url) as store:
        with store.engine.connect() as connection:
            lead_ids = list(connection.execute(sa.select(t.leads.c.lead_id)).scalars())
            records = connection.execute(sa.select(t.snapshots.c.crm, t.snapshots.c.record_id))
            by_crm: dict[str, list[str]] = {}
            for crm, record_id in records:
                by_crm.setdefault(crm, []).append(record_id)
        assert len(store.leads(lead_ids)) == len(lead_ids)
        read = sum(len(store.snapshots(crm, ids)) for crm, ids in by_crm.items())
        assert read == sum(len(ids) for ids in by_crm.values())
        return len(lead_ids), read


def _on(config: Config, url: str) -> Config:
    """The config, its store at `url` instead of its SQLite file."""
    assert config.path is not None
    text = re.sub(r'url = "sqlite:///[^"]*"', f'url = "{url}"', config.path.read_text())
    assert url in text
    config.path.write_text(text)
    return load_config(config.path)


@pytest.mark.slow
@REAL_PROCESSES
# Each kill point, each kind a first save of more than TRAIN_SAMPLES rows trains (HubSpot's
# pages of 200 train from the rows stored before them, as they did before ff176fe) and each
# backend once: ~15 s a case on the one worker real processes share. All eight pairings
# passed when the test was written.
@pytest.mark.parametrize(
    ("when", "kind", "backend"),
    [
        ("amid", "snapshots:salesforce", "sqlite"),
        pytest.param("after", "leads", "postgresql", marks=pytest.mark.postgres),
    ],
)
def test_a_first_sync_killed_at_its_dictionary_training_then_rerun_loses_nothing(
    uninterrupted_big: dict[str, Any],
    tmp_path: Path,
    when: str,
    kind: str,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    with Sandbox(BIG) as sandbox:
        config = _with_short_leases(_config(sandbox, tmp_path / "killed"))
        if backend == "postgresql":
            config = _on(config, request.getfixturevalue("postgresql_database_url"))
        assert config.path is not None
        victim = subprocess.Popen(
            [sys.executable, "-c", VICTIM, when, kind, str(config.path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert victim.wait(timeout=300) == -signal.SIGKILL
        with Store(config.database_url) as store, store.engine.connect() as connection:
            kinds = list(connection.execute(sa.select(t.dictionaries.c.kind)).scalars())
        # The kill came where it was meant to: that kind's dictionary stored (after) or not.
        assert (kind in kinds) == (when == "after")
        assert len(kinds) == len(set(kinds))
        rerun = _sync_process(config)
        assert rerun.wait(timeout=300) == 0
        assert mapped_state(sandbox) == uninterrupted_big
        leads, snapshots = _every_blob_read(config)
        assert leads >= TRAIN_SAMPLES
        assert snapshots >= 2 * TRAIN_SAMPLES
        search_caught_up(config)
        sandbox.stats.clear()
        again = _sync_process(config)
        assert again.wait(timeout=300) == 0
        assert write_calls(sandbox) == 0
        _every_blob_read(config)
