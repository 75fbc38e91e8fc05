"""Two processes saving the first big batches of one kind at once (PostgreSQL: SQLite's writers
queue on its file lock): each trains a dictionary, both are stored, and every row either saved
is read back by a third process."""

from __future__ import annotations

import multiprocessing
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from leadsync.sync import tables as t
from leadsync.sync.dictionaries import TRAIN_SAMPLES
from leadsync.sync.store import Store
from tests.support import REAL_PROCESSES
from tests.sync.test_store import T0
from tests.sync.test_store_size import a_lead, record

ROWS = TRAIN_SAMPLES + 100


def _save(url: str, which: int, barrier: Any, overlap: bool) -> None:
    """Save ROWS leads and ROWS HubSpot snapshots, the first time, after both processes have
    looked for a dictionary and found none (the barrier holds each just after that look)."""
    store = Store(url, clock=lambda: T0, migrate=False)
    looked: set[str] = set()

    @event.listens_for(store.engine, "after_cursor_execute")
    def _looked(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        # The look for a kind's newest dictionary (not a load of one by id, nor a retry's look).
        kind = parameters.get("kind_1") if isinstance(parameters, dict) else None
        if "FROM dictionaries" in statement and kind is not None and kind not in looked:
            looked.add(kind)
            barrier.wait(timeout=60)

    # Overlapping: both save the same records and leads (another's content); else apart.
    start = 0 if overlap else which * ROWS
    leads = [
        replace(a_lead(n), values={**a_lead(n).values, "by": which})
        for n in range(start, start + ROWS)
    ]
    snapshots = [record(n) for n in range(start, start + ROWS)]
    with store:
        store.save_page("hubspot", snapshots, position=None, run_id=f"run-{which}")
        store.save_leads(leads)


@pytest.mark.postgres
@REAL_PROCESSES
@pytest.mark.parametrize("overlap", [False, True], ids=["apart", "same-rows"])
def test_two_processes_saving_first_big_batches_at_once_leave_every_row_readable(
    postgresql_database_url: str, overlap: bool
) -> None:
    url = postgresql_database_url
    Store(url).close()  # migrated once, before either
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    savers = [
        context.Process(target=_save, args=(url, which, barrier, overlap)) for which in (0, 1)
    ]
    for saver in savers:
        saver.start()
    for saver in savers:
        saver.join(timeout=120)
    assert [saver.exitcode for saver in savers] == [0, 0]
    # Each trained its own (both looked before either committed): both are stored.
    with Store(url) as reader:
        with reader.engine.connect() as connection:
            kinds = sorted(connection.execute(sa.select(t.dictionaries.c.kind)).scalars())
            lead_ids = list(connection.execute(sa.select(t.leads.c.lead_id)).scalars())
            record_ids = list(
                connection.execute(
                    sa.select(t.snapshots.c.record_id).where(t.snapshots.c.crm == "hubspot")
                ).scalars()
            )
            named = {
                int.from_bytes(bytes(blob)[1:5], "big")
                for blob in connection.execute(sa.select(t.leads.c.packed)).scalars()
            }
        assert kinds == ["leads", "leads", "snapshots:hubspot", "snapshots:hubspot"]
        expected = ROWS if overlap else 2 * ROWS
        assert len(lead_ids) == len(record_ids) == expected
        if not overlap:
            assert len(named) == 2  # rows of each process name its own dictionary
        leads = reader.leads(lead_ids)
        assert len(leads) == expected
        if not overlap:
            assert {lead.values["by"] for lead in leads.values()} == {0, 1}
        assert len(reader.snapshots("hubspot", record_ids)) == expected
        # And the reader's own save packs with one of them, training none.
        reader.save_leads([a_lead(5 * ROWS)])
        with reader.engine.connect() as connection:
            stored = sa.select(sa.func.count()).select_from(t.dictionaries)
            assert connection.execute(stored).scalar() == len(kinds)
