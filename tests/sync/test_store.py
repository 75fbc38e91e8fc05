"""The store's contract: one suite, run on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import json
import math
import random
import sqlite3
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from leadsync.connectors.base import Position, WriteStatus
from leadsync.mapping.lifecycle import Stage, Transition
from leadsync.sync import packed, sql, tables
from leadsync.sync.audit_log import WriteRow
from leadsync.sync.database import (
    SchemaOutOfDateError,
    alembic_config,
    is_transient,
    upgrade_database,
)
from leadsync.sync.model import FieldChoice, Lead, Snapshot
from leadsync.sync.quarantine_ledger import Quarantined
from leadsync.sync.review_ledger import IGNORED
from leadsync.sync.sql import IN_CHUNK
from leadsync.sync.store import Store, content_digest
from tests.support import REAL_PROCESSES

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))


def snap(
    record_id: str,
    *,
    crm: str = "hubspot",
    at: datetime = T0,
    raw: dict[str, Any] | None = None,
    canonical: dict[str, Any] | None = None,
    deleted: bool = False,
) -> Snapshot:
    return Snapshot(
        crm=crm,
        record_id=record_id,
        modified_at=at,
        raw={"email": f"{record_id}@example.com"} if raw is None else raw,
        canonical={"email": f"{record_id}@example.com"} if canonical is None else canonical,
        changed_at={"email": at},
        deleted=deleted,
    )


def quarantined(record_id: str, reason: str = "email: not an address", **raw: Any) -> Quarantined:
    return Quarantined("hubspot", record_id, reason, raw or {"email": "nope"}, "run-1", T0)


def lead(lead_id: str, email: str | None, **values: Any) -> Lead:
    return Lead(lead_id=lead_id, values={"email": email, **values})


def saved(store: Store, *snapshots: Snapshot, crm: str = "hubspot") -> None:
    store.save_page(crm, snapshots, position=None, run_id="run-1")


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def schema_differences(engine: sa.Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, tables.metadata))


# ----------------------------------------------------------------------------- schema, migrations


def test_first_use_creates_the_sqlite_file_and_its_folder_and_migrates_it(tmp_path: Any) -> None:
    path = tmp_path / "not" / "yet" / "leadsync.db"
    with Store(f"sqlite:///{path}") as store:
        assert path.is_file()
        with store.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        assert current == head_revision() == "0020_backfill_checkpoints"
        assert schema_differences(store.engine) == []


def test_upgrade_is_idempotent_and_keeps_the_data(database_url: str) -> None:
    upgrade_database(database_url)
    with Store(database_url) as store:
        run_id = store.run_log.start("sync", started_at=T0)
    upgrade_database(database_url)
    with Store(database_url) as store:
        assert store.run_log.get(run_id) is not None
        assert schema_differences(store.engine) == []


def test_migrated_schema_equals_the_table_metadata(store: Store) -> None:
    assert schema_differences(store.engine) == []
    # The comparison can fail: a schema that drifted from the metadata shows up.
    with store.engine.begin() as connection:
        connection.execute(sa.text("DROP INDEX ix_leads_email"))
    assert [difference[0] for difference in schema_differences(store.engine)] == ["add_index"]


def test_the_person_named_migration_fills_in_what_stored_records_name(tmp_path: Any) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0011_handoff_responses")
        row = {
            "modified_at": T0.replace(tzinfo=None),
            "canonical": "{}",
            "changed_at": "{}",
            "deleted": False,
            "content_digest": "d",
            "pending": False,
            "run_id": "r",
            "saved_at": T0.replace(tzinfo=None),
        }
        named = {"salesforcecontactid": "0035g000000000G"}  # 15 characters, as HubSpot may
        for record_id, raw in (("1", named), ("2", {"email": "a@x.example"})):
            connection.execute(
                sa.text(
                    "INSERT INTO snapshots (crm, record_id, modified_at, raw, canonical, "
                    "changed_at, deleted, content_digest, pending, run_id, saved_at) VALUES "
                    "('hubspot', :record_id, :modified_at, :raw, :canonical, :changed_at, "
                    ":deleted, :content_digest, :pending, :run_id, :saved_at)"
                ),
                {**row, "record_id": record_id, "raw": json.dumps(raw)},
            )
    engine.dispose()
    with Store(url) as store, store.engine.connect() as connection:
        found = dict(
            connection.execute(sa.text("SELECT record_id, person_named FROM snapshots")).all()
        )
    assert found == {"1": "0035g000000000GAAQ", "2": None}


# A replica: wait for the common start moment (imports done), then open the store.
REPLICA = """
import sys, time
from leadsync.sync.store import Store
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
Store(sys.argv[1]).close()
"""


@REAL_PROCESSES
def test_replicas_starting_together_migrate_the_database_once(database_url: str) -> None:
    start_at = time.time() + 1.5  # after every replica has imported leadsync (~0.7 s)
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, database_url, str(start_at)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    errors = [replica.communicate(timeout=60)[1] for replica in replicas]
    assert [replica.returncode for replica in replicas] == [0, 0, 0], errors
    with Store(database_url, migrate=False) as store:
        assert schema_differences(store.engine) == []


@REAL_PROCESSES
def test_a_migration_killed_halfway_leaves_nothing_and_the_next_start_migrates(
    database_url: str,
) -> None:
    def kill_at_the_writes_table(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("CREATE TABLE WRITES"):
            raise RuntimeError("killed halfway through the migration")

    # Every engine: the store makes its own before it migrates.
    sa.event.listen(sa.Engine, "before_cursor_execute", kill_at_the_writes_table)
    try:
        with pytest.raises(RuntimeError, match="killed"):
            Store(database_url)
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", kill_at_the_writes_table)

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            assert sa.inspect(connection).get_table_names() == []
    finally:
        engine.dispose()
    with Store(database_url) as store:
        assert schema_differences(store.engine) == []


def test_without_migrate_an_unmigrated_database_is_refused(database_url: str) -> None:
    with pytest.raises(SchemaOutOfDateError, match="leadsync db upgrade"):
        Store(database_url, migrate=False)
    upgrade_database(database_url)
    with Store(database_url, migrate=False) as store:
        assert store.run_log.latest() == []


# ------------------------------------------------------------------------------------------- runs


def test_a_run_starts_running_and_finishes_with_its_status_and_summary(store: Store) -> None:
    run_id = store.run_log.start("sync", started_at=T0)
    started = store.run_log.get(run_id)
    assert started is not None
    assert (started.kind, started.status, started.started_at) == ("sync", "running", T0)
    assert started.finished_at is None

    summary = {"pulled": 12, "last_seen": T0, "errors": ["hubspot: 429"]}
    store.run_log.finish(run_id, status="succeeded", summary=summary, finished_at=T0 + timedelta(1))
    finished = store.run_log.get(run_id)
    assert finished is not None
    assert finished.status == "succeeded"
    assert finished.summary == summary
    assert finished.finished_at == T0 + timedelta(1)


def test_runs_lists_the_newest_first_up_to_the_limit(store: Store) -> None:
    ids = [store.run_log.start("sync", started_at=T0 + timedelta(minutes=n)) for n in range(3)]
    assert [run.run_id for run in store.run_log.latest(limit=2)] == [ids[2], ids[1]]
    assert store.run_log.get("no-such-run") is None


def test_runs_refuse_unknown_kinds_unknown_ids_and_naive_times(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown run kind"):
        store.run_log.start("nap", started_at=T0)
    with pytest.raises(LookupError):
        store.run_log.finish("no-such-run", status="failed", summary={}, finished_at=T0)
    with pytest.raises(ValueError, match="naive"):
        store.run_log.start("sync", started_at=datetime(2024, 5, 1, 10))


# ---------------------------------------------------------------------------------------- cursors


def test_the_cursor_is_none_until_a_page_moves_it_then_round_trips(store: Store) -> None:
    assert store.cursors.position("hubspot") is None
    position = Position(datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=PLUS_TWO), "1001")
    store.save_page("hubspot", [snap("1001")], position=position, run_id="run-1")
    assert store.cursors.position("hubspot") == position
    assert store.cursors.position("salesforce") is None

    store.save_page("hubspot", [snap("1002")], position=None, run_id="run-1")
    assert store.cursors.position("hubspot") == position  # a page without a position leaves it


def test_a_backfill_checkpoint_is_its_own_stream_and_can_be_cleared(store: Store) -> None:
    position = Position(T0, "1")
    store.save_page("hubspot", [snap("1")], position=position, run_id="run-1")
    store.save_page("hubspot", [snap("2")], position=None, checkpoint="after:2", run_id="run-2")
    assert store.cursors.checkpoint("hubspot") == "after:2"
    assert store.cursors.position("hubspot") == position
    with pytest.raises(ValueError, match="checkpoint, not a position"):
        store.cursors.position("hubspot", "backfill")

    store.cursors.clear("hubspot", "backfill")
    assert store.cursors.checkpoint("hubspot") is None
    assert store.cursors.position("hubspot") == position


def test_save_page_commits_nothing_when_the_cursor_cannot_move(store: Store) -> None:
    first = Position(T0, "1")
    store.save_page("hubspot", [snap("1")], position=first, run_id="run-1")

    def refuse_cursor_writes(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "cursors" in statement and not statement.lstrip().upper().startswith("SELECT"):
            raise RuntimeError("killed while moving the cursor")

    sa.event.listen(store.engine, "before_cursor_execute", refuse_cursor_writes)
    later = T0 + timedelta(hours=1)
    with pytest.raises(RuntimeError, match="killed"):
        store.save_page(
            "hubspot",
            [snap("1", at=later), snap("2", at=later)],
            quarantined=[quarantined("3")],
            position=Position(later, "2"),
            run_id="run-2",
        )
    sa.event.remove(store.engine, "before_cursor_execute", refuse_cursor_writes)

    assert store.cursors.position("hubspot") == first
    assert store.known_stamps("hubspot", ["1", "2"]) == {"1": T0}
    assert store.quarantine.entries() == []


def test_save_page_commits_nothing_when_a_quarantined_record_cannot_be_stored(
    store: Store,
) -> None:
    unstorable = quarantined("9", raw=object())
    with pytest.raises(sa.exc.StatementError, match="cannot store object values"):
        store.save_page(
            "hubspot",
            [snap("1")],
            quarantined=[unstorable],
            position=Position(T0, "1"),
            run_id="run-1",
        )
    assert store.cursors.position("hubspot") is None
    assert store.snapshots("hubspot", ["1"]) == {}


# An email no CRM validates: random text (so no compression saves the index row) far over
# what PostgreSQL's btree index can hold.
_LETTERS = random.Random(9)  # one generator: a new Random(9) per letter gave "ooo...o"
OVERLONG_EMAIL = "".join(_LETTERS.choice(string.ascii_lowercase) for _ in range(9000))
OVERLONG_EMAIL += "@example.com"


def test_a_record_the_database_cannot_hold_is_quarantined_with_its_reason(store: Store) -> None:
    nul = snap("2", raw={"email": "a\x00b@example.com"}, canonical={"email": "a\x00b@example.com"})
    long = snap("3", raw={"email": OVERLONG_EMAIL}, canonical={"email": OVERLONG_EMAIL})
    store.save_page("hubspot", [snap("1"), nul, long], position=Position(T0, "3"), run_id="run-1")
    # The good record is saved, the cursor moves past the page: the next run does not stop here.
    assert set(store.snapshots("hubspot", ["1", "2", "3"])) == {"1"}
    assert store.cursors.position("hubspot") == Position(T0, "3")
    reasons = {q.record_id: q.reason for q in store.quarantine.entries()}
    assert reasons == {
        "2": "email holds a NUL character (U+0000), which the store cannot keep",
        "3": "email: longer than an address can be",
    }
    # Kept as pulled, for whoever fixes the record in the CRM; and leads of them can be saved.
    (kept,) = [q for q in store.quarantine.entries() if q.record_id == "2"]
    assert kept.raw == {"email": "a\x00b@example.com"}


def test_a_record_with_a_lone_surrogate_is_quarantined_with_its_reason(store: Store) -> None:
    # JSON may escape half a UTF-16 pair ("\\ud800"); no database text can hold it.
    lone = snap("2", raw={"jobtitle": "Head \ud800 of sales"}, canonical={"title": "Head"})
    email = snap("3", raw={"email": "a\udfffb@example.com"}, canonical={"email": "a@x.io"})
    store.save_page("hubspot", [snap("1"), lone, email], position=Position(T0, "3"), run_id="r")
    assert set(store.snapshots("hubspot", ["1", "2", "3"])) == {"1"}
    assert store.cursors.position("hubspot") == Position(T0, "3")
    reasons = {q.record_id: q.reason for q in store.quarantine.entries()}
    assert reasons == {
        "2": "jobtitle holds half of a UTF-16 surrogate pair, which the store cannot keep",
        "3": "email holds half of a UTF-16 surrogate pair, which the store cannot keep",
    }


def test_save_page_refuses_records_of_another_crm(store: Store) -> None:
    with pytest.raises(ValueError, match="salesforce"):
        saved(store, snap("1", crm="salesforce"), crm="hubspot")


# -------------------------------------------------------------------------------------- snapshots


def test_snapshots_round_trip_with_the_lead_they_are_linked_to(store: Store) -> None:
    record = snap("1", raw={"email": "a@x.io", "hs_score": "12"}, canonical={"score": 12})
    gone = snap("2", deleted=True)
    saved(store, record, gone)
    store.link([("hubspot", "1", "lead-a", "new")])

    found = store.snapshots("hubspot", ["1", "2", "3"])
    assert found == {"1": replace(record, lead_id="lead-a"), "2": gone}


def test_known_stamps_gives_the_stamp_held_for_each_known_record(store: Store) -> None:
    saved(store, snap("1", at=T0), snap("2", at=T0 + timedelta(seconds=1)))
    saved(store, snap("9", crm="salesforce"), crm="salesforce")
    assert store.known_stamps("hubspot", ["1", "2", "9", "1"]) == {
        "1": T0,
        "2": T0 + timedelta(seconds=1),
    }


def test_known_stamps_know_every_version_before_leadsyncs_own_last_write_not_its_own(
    store: Store,
) -> None:
    # HubSpot's search can serve a version older than leadsync's last write (it lags its
    # writes): the store knows all of those. The write's own version may hold a person's edit
    # made just before it (after the pre-write check), so that one is still news.
    saved(store, snap("1", at=T0), snap("2", at=T0), snap("3", at=T0 + timedelta(hours=1)))
    written = T0 + timedelta(minutes=5)

    def wrote(record_id: str, at: datetime | None) -> None:
        row = WriteRow(record_id, "lifecyclestage", "", "lead", WriteStatus.WRITTEN, modified_at=at)
        store.audit_log.record("run-1", "hubspot", [row])

    wrote("1", written)
    wrote("2", None)  # no stamp in the CRM's answer: judged on the snapshot alone
    wrote("3", written)  # a snapshot newer than the write already knows more
    assert store.known_stamps("hubspot", ["1", "2", "3"]) == {
        "1": written - timedelta(microseconds=1),
        "2": T0,
        "3": T0 + timedelta(hours=1),
    }
    # A later write without a stamp keeps the one the record had; a later one replaces it.
    wrote("1", None)
    assert store.known_stamps("hubspot", ["1"]) == {"1": written - timedelta(microseconds=1)}
    wrote("1", written + timedelta(minutes=1))
    assert store.known_stamps("hubspot", ["1"]) == {
        "1": written + timedelta(seconds=59, microseconds=999_999)
    }


def test_batch_lookups_take_more_ids_than_one_in_list_holds(store: Store) -> None:
    ids = [str(n) for n in range(IN_CHUNK * 2 + 7)]
    saved(store, *(snap(record_id) for record_id in ids))
    assert len(store.known_stamps("hubspot", ids)) == len(ids)
    assert len(store.pending_records("hubspot")) == len(ids)
    store.mark_reconciled("hubspot", ids)
    assert store.pending_records("hubspot") == []


# ------------------------------------------------------------------------------ pending records


def test_a_new_snapshot_is_pending_until_marked_reconciled(store: Store) -> None:
    saved(store, snap("2", at=T0 + timedelta(seconds=1)), snap("1"))
    assert sorted(s.record_id for s in store.pending_records("hubspot")) == ["1", "2"]
    assert [s.record_id for s in store.pending_records("hubspot", limit=1)] == ["1"]
    assert store.pending_records("salesforce") == []

    store.mark_reconciled("hubspot", ["1"])
    assert [s.record_id for s in store.pending_records("hubspot")] == ["2"]


def test_a_snapshot_saved_again_unchanged_stays_reconciled(store: Store) -> None:
    saved(store, snap("1"))
    store.mark_reconciled("hubspot", ["1"])
    saved(store, snap("1"))
    assert store.pending_records("hubspot") == []


def test_a_snapshot_saved_again_unchanged_while_pending_stays_pending(store: Store) -> None:
    saved(store, snap("1"))
    saved(store, snap("1"))
    assert [s.record_id for s in store.pending_records("hubspot")] == ["1"]


@pytest.mark.parametrize(
    "changed",
    [
        snap("1", at=T0 + timedelta(seconds=1)),
        snap("1", raw={"email": "new@example.com"}),
        snap("1", canonical={"email": "new@example.com"}),
        snap("1", deleted=True),
    ],
    ids=["modification stamp", "raw values", "canonical values", "deleted"],
)
def test_a_snapshot_whose_content_changed_becomes_pending_again(
    store: Store, changed: Snapshot
) -> None:
    saved(store, snap("1"))
    store.mark_reconciled("hubspot", ["1"])
    saved(store, changed)
    assert store.pending_records("hubspot") == [changed]


def test_a_page_longer_than_a_chunk_is_saved_whole_the_last_of_a_record_winning(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "WRITE_CHUNK", 2)
    first, last = snap("3"), snap("3", raw={"email": "last@example.com"})
    saved(store, snap("1"), first, snap("2"), snap("4"), last)
    assert [s.record_id for s in store.pending_records("hubspot")] == ["1", "2", "3", "4"]
    assert store.snapshots("hubspot", ["3"])["3"].raw == last.raw


def test_a_snapshots_digest_is_the_one_earlier_versions_stored(store: Store) -> None:
    # A digest computed anew would make every stored record look changed (pending) at its
    # next pull: the text hashed must stay the one leadsync always hashed (this value).
    odd = snap(
        "1",
        raw={"email": "zoë@example.com", "n": 2**70, "x": 1.5, "b": None},
        canonical={
            "email": "zoë@example.com",
            "born": date(1990, 1, 2),
            "seen": T0,
            "score": math.inf,
            "tags": ["a", ("b",)],
            "$odd": {"$date": "no"},
        },
    )
    digest = "309953ea9b881d87a8c91aaecbb480330cc51b2814e7f52eb0d96ad626766e76"
    assert content_digest(odd) == digest
    saved(store, odd)
    with store.engine.connect() as connection:
        stored = connection.execute(sa.select(tables.snapshots.c.content_digest)).scalar()
    assert stored == digest


def stored_lead(store: Store) -> list[Any]:
    """The one lead's [values, choices, reasons] as the store packed them (tags and all)."""
    with store.engine.connect() as connection:
        blob = connection.execute(sa.select(tables.leads.c.packed)).scalar_one()
    loaded: list[Any] = json.loads(packed.unpack_text(blob))
    return loaded


def _stored(store: Store, column: sa.Column[Any]) -> Any:
    """A JSON column of the one row of its table, as the database holds it (tags and all)."""
    with store.engine.connect() as connection:
        text = connection.execute(sa.select(sa.cast(column, sa.Text()))).scalar()
    return json.loads(text)


def test_change_times_are_stored_only_where_they_are_not_the_records_and_read_back_whole(
    store: Store,
) -> None:
    earlier = T0 - timedelta(days=3)
    times = {
        "email": T0,  # as nearly every field: changed with the record
        "phone": earlier,
        "city": T0.astimezone(PLUS_TWO),  # the same moment, told in another zone
        "gone": earlier - timedelta(days=1),  # a field the record no longer has
    }
    canonical = {"email": "a@example.com", "phone": "1", "city": "Oslo", "title": None}
    given = replace(snap("1"), canonical=canonical, changed_at=times)  # title: no time known
    saved(store, given)
    assert store.snapshots("hubspot", ["1"])["1"] == given
    assert store.pending_records("hubspot")[0].changed_at == times
    assert _stored(store, tables.snapshots.c.changed_at) == {
        "": "modified_at",
        "title": None,
        "phone": {"$datetime": earlier.isoformat()},
        "gone": {"$datetime": (earlier - timedelta(days=1)).isoformat()},
    }


def test_change_times_most_fields_share_are_stored_once_when_they_are_not_the_records(
    store: Store,
) -> None:
    # leadsync's own write moves the record's stamp but no field's change time: after the
    # echo is pulled, every field keeps the person's older time. Stored once, not per field.
    person, edited = T0 - timedelta(days=30), T0 - timedelta(days=2)
    canonical = {f"field_{n}": str(n) for n in range(20)} | {"title": None}
    times = dict.fromkeys(canonical, person) | {"field_3": edited}
    del times["title"]  # no time known
    given = replace(snap("1"), canonical=canonical, changed_at=times)
    saved(store, given)
    assert store.snapshots("hubspot", ["1"])["1"] == given
    assert _stored(store, tables.snapshots.c.changed_at) == {
        "": {"$datetime": person.isoformat()},
        "title": None,
        "field_3": {"$datetime": edited.isoformat()},
    }


def test_change_times_stored_whole_by_earlier_versions_read_as_they_were(store: Store) -> None:
    given = replace(snap("1"), canonical={"email": "a@example.com", "phone": "1"})
    saved(store, given)
    with store.engine.begin() as connection:
        # As every version before stored them: each field's time, none for a field without.
        connection.execute(tables.snapshots.update().values(changed_at={"email": T0}))
    found = store.snapshots("hubspot", ["1"])["1"]
    assert found.changed_at == {"email": T0}


# ----------------------------------------------------------------------------------- identity


def test_links_map_records_to_leads_and_relinking_moves_a_record(store: Store) -> None:
    store.link([("hubspot", "1", "lead-a", "new"), ("salesforce", "00Q1", "lead-a", "email")])
    assert store.lead_ids_for("hubspot", ["1", "2"]) == {"1": "lead-a"}
    assert store.lead_ids_for("salesforce", ["00Q1"]) == {"00Q1": "lead-a"}

    store.link([("hubspot", "1", "lead-b", "review")])
    assert store.lead_ids_for("hubspot", ["1"]) == {"1": "lead-b"}
    with store.engine.connect() as connection:
        kinds = connection.execute(sa.select(tables.links.c.kind)).scalars().all()
    assert sorted(kinds) == ["email", "review"]


def test_linking_again_to_the_same_lead_keeps_when_it_was_linked(database_url: str) -> None:
    now = [T0]
    with Store(database_url, clock=lambda: now[0]) as store:
        store.link([("hubspot", "1", "lead-a", "new")])
        now[0] = T0 + timedelta(hours=1)
        store.link([("hubspot", "1", "lead-a", "linked")])
        store.link([("hubspot", "2", "lead-a", "new")])
        now[0] = T0 + timedelta(hours=2)
        store.link([("hubspot", "2", "lead-b", "review")])
        with store.engine.connect() as connection:
            query = sa.select(tables.links.c.record_id, tables.links.c.linked_at)
            linked_at = {row.record_id: row.linked_at for row in connection.execute(query)}
    assert linked_at == {"1": T0, "2": T0 + timedelta(hours=2)}


def test_records_of_gives_each_lead_the_snapshots_of_its_linked_records(store: Store) -> None:
    saved(store, snap("1"), snap("2"))
    saved(store, snap("00Q1", crm="salesforce"), crm="salesforce")
    store.link(
        [
            ("salesforce", "00Q1", "lead-a", "email"),
            ("hubspot", "1", "lead-a", "new"),
            ("hubspot", "2", "lead-b", "new"),
            ("hubspot", "never-saved", "lead-c", "new"),
        ]
    )
    found = store.records_of(["lead-a", "lead-b", "lead-c", "lead-z"])
    assert {lead_id: [(s.crm, s.record_id) for s in snaps] for lead_id, snaps in found.items()} == {
        "lead-a": [("hubspot", "1"), ("salesforce", "00Q1")],
        "lead-b": [("hubspot", "2")],
    }
    assert {s.lead_id for s in found["lead-a"]} == {"lead-a"}


# -------------------------------------------------------------------------------------- leads


def test_leads_round_trip_with_choices_score_and_stage(store: Store) -> None:
    full = Lead(
        lead_id="lead-a",
        values={"email": "ana@example.com", "employees": 250, "last_activity_at": T0},
        choices={
            "employees": FieldChoice(250, "salesforce", "most_recent", "changed later"),
            "phone": FieldChoice(None, None, "never_blank", "neither holds one"),
        },
        score=72,
        fit=40,
        engagement=32,
        grade="A",
        reasons=("+20 employees ≥ 200", "-6 decay"),
        model_version="2024-05",
        stage="mql",
    )
    bare = lead("lead-b", None)
    store.save_leads([full, bare])
    assert store.leads(["lead-a", "lead-b", "lead-z"]) == {"lead-a": full, "lead-b": bare}


def test_choices_are_stored_compactly_and_read_back_as_given(store: Store) -> None:
    values = {"email": "ana@example.com", "employees": 250, "revenue": 1, "seen": T0, "tags": ["a"]}
    choices = {
        "email": FieldChoice(
            "ana@example.com",
            "salesforce",
            "prefer_salesforce_unless_blank",
            "salesforce: the only CRM that holds it",
        ),
        "employees": FieldChoice(
            250, "hubspot", "most_recent", "hubspot: the only CRM it is mapped to"
        ),
        "revenue": FieldChoice(1.0, "hubspot", "prefer_hubspot", "hubspot: prefer_hubspot"),
        "seen": FieldChoice(
            T0, "salesforce", "most_recent", "salesforce: changed 2024-05-01 10:00"
        ),
        "tags": FieldChoice(
            ["a"], "hubspot", "most_recent", "hubspot: salesforce holds the same value"
        ),
        "phone": FieldChoice(None, None, "never_blank", "neither holds one"),
        "city": FieldChoice(
            "Oslo", "salesforce", "most_recent", "salesforce: the only CRM that holds it"
        ),
    }
    given = Lead("lead-a", values, choices)
    store.save_leads([given])
    found = store.leads(["lead-a"])["lead-a"]
    assert found == given
    # A value the lead's own stands in for keeps its type: 1.0 is no 1.
    assert type(found.choices["revenue"].value) is float
    stored = stored_lead(store)[1]
    assert "the only CRM" not in json.dumps(stored)
    old_form = {
        name: {"value": c.value, "crm": c.crm, "rule": c.rule, "reason": c.reason}
        for name, c in choices.items()
    }
    assert len(json.dumps(stored)) < len(json.dumps(tables.encode_value(old_form))) / 2


def test_choices_stored_whole_by_earlier_versions_read_as_they_were(store: Store) -> None:
    store.save_leads([lead("lead-a", "ana@example.com")])
    old_form = {
        "email": {
            "value": "ana@x.example",
            "crm": "hubspot",
            "rule": "most_recent",
            "reason": "hubspot: the only CRM that holds it",
        }
    }
    values, _, reasons = stored_lead(store)
    blob = packed.pack_text(json.dumps([values, old_form, reasons]).encode())
    with store.engine.begin() as connection:
        connection.execute(tables.leads.update().values(packed=blob))
    assert store.leads(["lead-a"])["lead-a"].choices == {
        "email": FieldChoice(
            "ana@x.example", "hubspot", "most_recent", "hubspot: the only CRM that holds it"
        )
    }


def test_the_email_index_follows_lead_updates(store: Store) -> None:
    store.save_leads([lead("lead-a", "  Ana@Example.COM "), lead("lead-b", "ana@example.com")])
    assert store.leads_by_email(["ANA@example.com", "", "nobody@example.com"]) == {
        "ana@example.com": ["lead-a", "lead-b"]
    }
    store.save_leads([lead("lead-a", "ana.new@example.com"), lead("lead-b", None)])
    assert store.leads_by_email(["ana@example.com", "ana.new@example.com"]) == {
        "ana.new@example.com": ["lead-a"]
    }


def test_the_email_index_reads_the_configured_identity_field(database_url: str) -> None:
    with Store(database_url, email_field="work_email") as store:
        store.save_leads([Lead("lead-a", {"email": "home@x.io", "work_email": "Work@X.io"})])
        assert store.leads_by_email(["work@x.io", "home@x.io"]) == {"work@x.io": ["lead-a"]}


def test_find_leads_by_email_or_by_a_linked_crm_record_id(store: Store) -> None:
    store.save_leads([lead("lead-a", "ana@example.com"), lead("lead-b", "bo@example.com")])
    store.link([("salesforce", "00Q1", "lead-b", "email")])
    assert [found.lead_id for found in store.find_leads(email=" ANA@example.com")] == ["lead-a"]
    assert [found.lead_id for found in store.find_leads(crm_id="00Q1")] == ["lead-b"]
    assert store.find_leads(email="ana@example.com", crm_id="00Q1") == []
    with pytest.raises(ValueError, match="needs an email"):
        store.find_leads()


# ---------------------------------------------------------------------------------- lifecycle


def test_history_gives_a_leads_transitions_oldest_first_in_the_order_added(store: Store) -> None:
    later = T0 + timedelta(days=3)
    first_run = [
        Transition(None, Stage.LEAD, T0, "new lead", "enter"),
        Transition(Stage.LEAD, Stage.MQL, T0, "score ≥ 60", "advance"),
    ]
    second_run = [
        Transition(Stage.MQL, Stage.SQL, later, "meeting booked", "advance"),
        Transition(Stage.SQL, Stage.RECYCLED, later, "closed lost", "recycle"),
    ]
    store.transitions.add([("lead-a", move) for move in first_run], run_id="run-1")
    store.transitions.add(
        [("lead-b", first_run[0]), *(("lead-a", move) for move in second_run)], run_id="run-2"
    )
    assert store.transitions.history("lead-a") == [*first_run, *second_run]
    assert store.transitions.history("lead-b") == [first_run[0]]
    assert store.transitions.history("lead-z") == []


# ---------------------------------------------------------------------------------- decisions

DECIDED_LEAD = Lead("lead-a", {"email": "ana@example.com"}, stage="mql")
DECIDED_MOVES = [
    Transition(None, Stage.LEAD, T0, "new lead", "enter"),
    Transition(Stage.LEAD, Stage.MQL, T0, "score ≥ 60", "advance"),
]


def save_decided(store: Store) -> None:
    store.save_decisions(
        leads=[DECIDED_LEAD],
        links=[("hubspot", "1", "lead-a", "new")],
        reviews=[("hubspot", "2", ["lead-a", "lead-b"], "two leads share the email")],
        transitions=[("lead-a", move) for move in DECIDED_MOVES],
        run_id="run-1",
    )


def test_leads_naming_finds_the_leads_whose_live_records_name_a_person_record(
    store: Store,
) -> None:
    contact = "0035g000000000GAAQ"
    saved(
        store,
        snap("1", raw={"salesforcecontactid": contact[:15]}),  # 15 characters, as HubSpot may
        snap("2", raw={"salesforcecontactid": contact}, deleted=True),
        snap("3", raw={"salesforcecontactid": "0035g000000000HAAQ"}),
    )
    store.link([("hubspot", "1", "lead-a", "email"), ("hubspot", "2", "lead-b", "email")])
    store.link([("hubspot", "3", "lead-c", "email")])
    assert store.leads_naming([contact]) == ["lead-a"]
    assert store.leads_naming(["0035g000000000ZAAQ"]) == []


def test_save_decisions_commits_leads_links_reviews_and_transitions(store: Store) -> None:
    save_decided(store)
    assert store.leads(["lead-a"]) == {"lead-a": DECIDED_LEAD}
    assert store.lead_ids_for("hubspot", ["1"]) == {"1": "lead-a"}
    assert [(item.record_id, item.candidates) for item in store.reviews.items()] == [
        ("2", ("lead-a", "lead-b"))
    ]
    assert store.transitions.history("lead-a") == DECIDED_MOVES


def test_save_decisions_commits_nothing_when_killed_before_the_transitions(
    store: Store,
) -> None:
    def refuse_transitions(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO TRANSITIONS"):
            raise RuntimeError("killed before the transitions")

    sa.event.listen(store.engine, "before_cursor_execute", refuse_transitions)
    with pytest.raises(RuntimeError, match="killed"):
        save_decided(store)
    sa.event.remove(store.engine, "before_cursor_execute", refuse_transitions)

    # Nothing half-done: the next run decides the batch again from where it was.
    assert store.leads(["lead-a"]) == {}
    assert store.lead_ids_for("hubspot", ["1"]) == {}
    assert store.reviews.items() == []


# ------------------------------------------------------------------------------------- writes


def test_record_writes_logs_every_write_with_old_and_new_values(database_url: str) -> None:
    with Store(database_url, clock=lambda: T0) as store:
        rows = [
            WriteRow("1", "hs_lead_score", "10", "72", WriteStatus.WRITTEN),
            WriteRow("2", "lifecyclestage", "lead", "mql", WriteStatus.FAILED, "invalid", "no"),
        ]
        store.audit_log.record("run-1", "hubspot", rows)
        store.audit_log.record(
            "run-2", "salesforce", [WriteRow("00Q1", "Rating", None, "Hot", WriteStatus.DEFERRED)]
        )
        logged = store.audit_log.entries(run_id="run-1")
        assert [(w.record_id, w.field, w.old, w.new, w.status) for w in logged] == [
            ("1", "hs_lead_score", "10", "72", WriteStatus.WRITTEN),
            ("2", "lifecyclestage", "lead", "mql", WriteStatus.FAILED),
        ]
        assert (logged[1].category, logged[1].message, logged[1].at) == ("invalid", "no", T0)
        assert [w.run_id for w in store.audit_log.entries(crm="salesforce")] == ["run-2"]
        assert [w.field for w in store.audit_log.entries(crm="hubspot", record_id="2")] == [
            "lifecyclestage"
        ]
        assert len(store.audit_log.entries()) == 3


def test_a_write_refused_for_the_request_itself_is_due_at_the_next_run_not_after_a_wait(
    database_url: str,
) -> None:
    with Store(database_url, clock=lambda: T0) as store:
        rows = [
            WriteRow("1", "leadsync_score", None, "72", WriteStatus.FAILED, "forbidden", "scope"),
            WriteRow("2", "leadsync_grade", None, "A", WriteStatus.FAILED, "invalid_option", "A"),
        ]
        store.audit_log.record("run-1", "hubspot", rows, context="c", at=T0)
        # The missing scope may be granted any moment: due for any other run at once...
        assert store.quarantine.due_refusals("hubspot", context="c", now=T0, run_id="run-2") == [
            "1"
        ]
        # ...but not again for the run that was refused (a backfill settles more than once).
        assert store.quarantine.due_refusals("hubspot", context="c", now=T0, run_id="run-1") == []
        # A value refused waits its hour, unless what it was refused under changes.
        later = T0 + timedelta(hours=1)
        assert store.quarantine.due_refusals("hubspot", context="c", now=later, run_id="run-2") == [
            "1",
            "2",
        ]
        assert store.quarantine.due_refusals("hubspot", context="d", now=T0, run_id="run-2") == [
            "1",
            "2",
        ]
        # Both wait in quarantine with the CRM's reason meanwhile.
        reasons = {q.record_id: q.reason for q in store.quarantine.entries()}
        assert reasons == {
            "1": "write refused by hubspot: forbidden: scope",
            "2": "write refused by hubspot: invalid_option: A",
        }


def test_a_refused_record_is_refused_before_until_a_write_to_it_lands(database_url: str) -> None:
    with Store(database_url, clock=lambda: T0) as store:
        refused = WriteRow("2", "leadsync_grade", None, "A", WriteStatus.FAILED, "invalid", "A")
        store.audit_log.record("run-1", "hubspot", [refused], context="c", at=T0)
        assert store.quarantine.refused_before("hubspot", ["1", "2"]) == {"2"}
        assert store.quarantine.refused_before("salesforce", ["2"]) == set()
        landed = WriteRow("2", "leadsync_grade", None, "B", WriteStatus.WRITTEN)
        store.audit_log.record("run-2", "hubspot", [landed], context="c", at=T0)
        assert store.quarantine.refused_before("hubspot", ["2"]) == set()


def test_written_values_become_the_records_expected_values(store: Store) -> None:
    store.audit_log.record(
        "run-1",
        "hubspot",
        [
            WriteRow("1", "hs_lead_score", "10", "72", WriteStatus.WRITTEN),
            WriteRow("1", "lifecyclestage", "lead", "mql", WriteStatus.WRITTEN),
            WriteRow("2", "hs_lead_score", "5", "50", WriteStatus.FAILED),
            WriteRow("3", "hs_lead_score", "5", "50", WriteStatus.DEFERRED),
        ],
    )
    store.audit_log.record(
        "run-2",
        "hubspot",
        [
            WriteRow("1", "hs_lead_score", "72", "80", WriteStatus.WRITTEN),
            WriteRow("1", "lifecyclestage", "mql", "sql", WriteStatus.FAILED),
        ],
    )
    assert store.audit_log.expected("hubspot", ["1", "2", "3"]) == {
        "1": {"hs_lead_score": "80", "lifecyclestage": "mql"}
    }
    assert store.audit_log.expected("salesforce", ["1"]) == {}


def test_unseen_writes_are_those_made_after_the_records_snapshot_was_read(
    database_url: str,
) -> None:
    now = [T0]
    with Store(database_url, clock=lambda: now[0]) as store:
        saved(store, snap("1"), snap("2"))
        now[0] = T0 + timedelta(seconds=1)
        store.audit_log.record(
            "run-1",
            "hubspot",
            [
                WriteRow("1", "leadsync_score", None, "72", WriteStatus.WRITTEN),
                WriteRow("2", "leadsync_score", None, "50", WriteStatus.FAILED),
                WriteRow("9", "leadsync_score", None, "10", WriteStatus.WRITTEN),  # not stored
            ],
        )
        assert store.audit_log.unseen("hubspot", ["1", "2", "9"]) == {"1": {"leadsync_score": "72"}}
        # The write comes back with a pull: the snapshot holds it, nothing is unseen.
        now[0] = T0 + timedelta(seconds=2)
        saved(store, snap("1", at=T0 + timedelta(seconds=1), raw={"leadsync_score": "72"}))
        assert store.audit_log.unseen("hubspot", ["1", "2"]) == {}
        assert store.audit_log.unseen("salesforce", ["1"]) == {}


# --------------------------------------------------------------------------- quarantine, review


def test_a_record_quarantined_again_keeps_one_entry_until_a_pull_reads_it(store: Store) -> None:
    store.save_page("hubspot", [], quarantined=[quarantined("7")], position=None, run_id="run-1")
    again = quarantined("7", "email: still not an address")
    store.save_page("hubspot", [], quarantined=[again], position=None, run_id="run-1")
    assert store.quarantine.entries() == [again]

    saved(store, snap("7"))
    assert store.quarantine.entries() == []
    [closed] = store.quarantine.entries(open_only=False)
    assert closed.record_id == "7"
    assert closed.resolved_at is not None


def test_a_review_item_is_one_per_record_while_open_and_reopens_after_resolution(
    database_url: str,
) -> None:
    now = [T0]
    with Store(database_url, clock=lambda: now[0]) as store:
        store.reviews.add(
            "hubspot", "1", ["lead-a", "lead-b"], "two leads share the email", run_id="r1"
        )
        now[0] = T0 + timedelta(hours=1)
        store.reviews.add("hubspot", "1", ["lead-a", "lead-b", "lead-c"], "three now", run_id="r2")
        [item] = store.reviews.items()
        assert (item.candidates, item.reason, item.run_id, item.at) == (
            ("lead-a", "lead-b", "lead-c"),
            "three now",
            "r2",
            T0,
        )

        assert store.reviews.resolve("hubspot", "1", resolution="linked to lead-b")
        assert not store.reviews.resolve("hubspot", "1", resolution="again")
        assert store.reviews.items() == []
        [closed] = store.reviews.items(open_only=False)
        assert (closed.resolution, closed.resolved_at) == ("linked to lead-b", now[0])

        now[0] = T0 + timedelta(hours=2)
        store.reviews.add("hubspot", "1", ["lead-b", "lead-d"], "ambiguous again", run_id="r3")
        [reopened] = store.reviews.items()
        assert (reopened.at, reopened.resolved_at, reopened.resolution) == (now[0], None, None)


def test_a_run_that_matched_before_a_persons_decision_does_not_reopen_the_item(
    database_url: str,
) -> None:
    now = [T0]
    with Store(database_url, clock=lambda: now[0]) as store:
        store.reviews.add("hubspot", "1", ["lead-a"], "a duplicate", run_id="r1")
        matching = store.run_log.start("sync", started_at=T0 + timedelta(minutes=1))
        now[0] = T0 + timedelta(minutes=2)
        assert store.reviews.resolve("hubspot", "1", resolution="kept apart as lead lead-z")
        now[0] = T0 + timedelta(minutes=3)
        # The run matched the record before the decision, and saves what it found after it.
        store.reviews.add("hubspot", "1", ["lead-a"], "a duplicate", run_id=matching)
        assert store.reviews.items() == []
        # A run that starts after the decision and still finds it ambiguous reopens it.
        later = store.run_log.start("sync", started_at=T0 + timedelta(minutes=4))
        store.reviews.add("hubspot", "1", ["lead-a"], "a duplicate", run_id=later)
        assert [item.record_id for item in store.reviews.items()] == ["1"]


def test_an_ignored_review_item_reopens_only_for_another_conflict(database_url: str) -> None:
    with Store(database_url, clock=lambda: T0) as store:
        store.reviews.add("salesforce", "003A", ["lead-a"], "2 records are lead-a's", run_id="r1")
        assert store.reviews.resolve("salesforce", "003A", resolution=IGNORED)
        # Found again as it was: stays ignored.
        store.reviews.add("salesforce", "003A", ["lead-a"], "2 records are lead-a's", run_id="r2")
        assert store.reviews.items() == []
        # Another reason (a third record), or other candidates: reopened.
        store.reviews.add("salesforce", "003A", ["lead-a"], "3 records are lead-a's", run_id="r3")
        assert [item.reason for item in store.reviews.items()] == ["3 records are lead-a's"]
        assert store.reviews.resolve("salesforce", "003A", resolution=IGNORED)
        store.reviews.add(
            "salesforce", "003A", ["lead-a", "lead-b"], "3 records are lead-a's", run_id="r4"
        )
        assert [item.candidates for item in store.reviews.items()] == [("lead-a", "lead-b")]


# --------------------------------------------------------------------------------- JSON values

CANONICAL_VALUES = {
    "string": "Zoë Ødegård, 東京, Straße",
    "empty": "",
    "integer": 9_007_199_254_740_993,  # past the doubles: must stay exact
    # Past 64 bits, which orjson (the store's fast JSON reader) would read as a float.
    "big integer": 2**64 + 1,
    "big negative integer": -(2**63) - 1,
    # Beside floats, which orjson reads too: told apart from them, however deep.
    "big integer beside a float": [0.5, 2**64 + 1],
    "big integer deep down": {"a": {"b": [1.5, {"c": -(2**70) - 1}]}},
    "negative": -3,
    "number": 0.1,
    "huge": 1e308,
    "tiny": 5e-324,
    "whole float": 2.0,
    "true": True,
    "false": False,
    "none": None,
    "date": date(2024, 2, 29),
    "datetime utc": datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC),
    "datetime offset": datetime(2024, 5, 1, 12, 0, tzinfo=PLUS_TWO),
    "infinity": math.inf,
    "minus infinity": -math.inf,
    "list": [1, "two", date(2024, 1, 1), None],
    "looks like a tag": {"$date": "not a date"},
    "nested": {"when": T0, "tags": ["a", "b"]},
}


def test_canonical_values_round_trip_with_their_types(store: Store) -> None:
    # One record a value, each alone in its record's fields, in one page (one store a
    # backend: a store of its own for each of ~50 values cost ~10 s of the suite's CPU).
    records = {str(n): name for n, name in enumerate(CANONICAL_VALUES)}
    saved(
        store,
        *(
            snap(
                record_id,
                raw={"field": CANONICAL_VALUES[name]},
                canonical={name: CANONICAL_VALUES[name]},
            )
            for record_id, name in records.items()
        ),
    )
    found = store.snapshots("hubspot", list(records))
    for record_id, name in records.items():
        value = CANONICAL_VALUES[name]
        for back in (found[record_id].canonical[name], found[record_id].raw["field"]):
            assert back == value, name
            assert type(back) is type(value), name
            if isinstance(value, datetime):
                assert back.tzinfo is UTC, name


def test_nan_round_trips(store: Store) -> None:
    saved(store, snap("1", canonical={"x": math.nan}))
    assert math.isnan(store.snapshots("hubspot", ["1"])["1"].canonical["x"])


def test_naive_datetimes_and_unknown_types_are_refused_not_guessed(store: Store) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        saved(store, snap("1", canonical={"at": datetime(2024, 5, 1)}))
    with pytest.raises(TypeError, match="cannot store set values"):
        tables.encode_value({"tags": {"a"}})
    with pytest.raises(ValueError, match="unknown tag"):
        tables.decode_value({"$decimal": "1.5"})


def test_every_timestamp_comes_back_aware_utc(database_url: str) -> None:
    given = datetime(2024, 5, 1, 12, 30, tzinfo=PLUS_TWO)
    with Store(database_url, clock=lambda: given) as store:
        run_id = store.run_log.start("sync", started_at=given)
        store.run_log.finish(run_id, status="succeeded", summary={}, finished_at=given)
        store.save_page(
            "hubspot",
            [snap("1", at=given)],
            quarantined=[Quarantined("hubspot", "2", "bad", {}, run_id, given)],
            position=Position(given, "1"),
            run_id=run_id,
        )
        store.transitions.add(
            [("lead-a", Transition(None, Stage.LEAD, given, "new", "enter"))], run_id=run_id
        )
        store.audit_log.record(run_id, "hubspot", [WriteRow("1", "f", 1, 2, WriteStatus.WRITTEN)])
        store.reviews.add("hubspot", "3", ["lead-a"], "ambiguous", run_id=run_id)

        run = store.run_log.get(run_id)
        cursor = store.cursors.position("hubspot")
        snapshot = store.snapshots("hubspot", ["1"])["1"]
        assert run is not None
        assert cursor is not None
        moments = [
            run.started_at,
            run.finished_at,
            cursor.modified_at,
            snapshot.modified_at,
            snapshot.changed_at["email"],
            *(stamp for stamp in store.known_stamps("hubspot", ["1"]).values()),
            store.quarantine.entries()[0].at,
            store.transitions.history("lead-a")[0].at,
            store.audit_log.entries()[0].at,
            store.reviews.items()[0].at,
        ]
    assert moments == [given] * len(moments)
    assert all(moment is not None and moment.tzinfo is UTC for moment in moments)


# ------------------------------------------------------------------------------------- retries


def _driver_error(backend: str, kind: str) -> Exception:
    """The exception the database driver itself raises for one kind of failure."""
    if backend == "sqlite":
        messages = {"transient": "database is locked", "fatal": "no such table: nothing"}
        return sqlite3.OperationalError(messages[kind])
    if kind == "transient":
        return psycopg.errors.SerializationFailure("could not serialize access")
    return psycopg.errors.UndefinedTable('relation "nothing" does not exist')


@pytest.fixture
def failing_run_inserts(store: Store) -> Iterator[list[Exception]]:
    """Makes the next INSERT INTO runs fail with each error put in the list, in turn."""
    failures: list[Exception] = []

    def fail(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO RUNS") and failures:
            raise failures.pop(0)

    sa.event.listen(store.engine, "before_cursor_execute", fail)
    yield failures
    sa.event.remove(store.engine, "before_cursor_execute", fail)


def test_a_transient_error_is_retried_and_the_work_done_once(
    store: Store, failing_run_inserts: list[Exception]
) -> None:
    backend = store.engine.dialect.name
    failing_run_inserts.extend([_driver_error(backend, "transient")] * 2)
    run_id = store.run_log.start("sync", started_at=T0)
    assert failing_run_inserts == []  # both failures were met, then it went through
    assert [run.run_id for run in store.run_log.latest()] == [run_id]


def test_any_other_database_error_is_raised_at_once(
    store: Store, failing_run_inserts: list[Exception]
) -> None:
    backend = store.engine.dialect.name
    failing_run_inserts.extend([_driver_error(backend, "fatal"), _driver_error(backend, "fatal")])
    with pytest.raises(sa.exc.DBAPIError):
        store.run_log.start("sync", started_at=T0)
    assert len(failing_run_inserts) == 1  # one attempt only
    assert store.run_log.latest() == []


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (sa.exc.OperationalError("x", {}, sqlite3.OperationalError("database is locked")), True),
        (
            sa.exc.OperationalError("x", {}, sqlite3.OperationalError("database table is locked")),
            True,
        ),
        (sa.exc.OperationalError("x", {}, psycopg.errors.SerializationFailure("s")), True),
        (sa.exc.OperationalError("x", {}, psycopg.errors.DeadlockDetected("d")), True),
        (sa.exc.OperationalError("x", {}, psycopg.errors.LockNotAvailable("l")), True),
        (sa.exc.OperationalError("x", {}, sqlite3.OperationalError("disk I/O error")), False),
        (sa.exc.IntegrityError("x", {}, psycopg.errors.UniqueViolation("u")), False),
        (sa.exc.OperationalError("x", {}, psycopg.errors.AdminShutdown("gone")), False),
        (ValueError("database is locked"), False),
    ],
)
def test_only_errors_that_rolled_back_for_concurrency_count_as_transient(
    error: BaseException, transient: bool
) -> None:
    assert is_transient(error) is transient


def test_a_write_the_crm_refuses_quarantines_the_record_until_a_write_lands(store: Store) -> None:
    refused = WriteRow(
        "00Q1",
        "Status",
        "Open",
        "Nope",
        WriteStatus.FAILED,
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "bad value for restricted picklist field: Nope",
    )
    deferred = WriteRow(
        "00Q2", "Status", "Open", "Working", WriteStatus.DEFERRED, "UNABLE_TO_LOCK_ROW"
    )
    store.audit_log.record("r1", "salesforce", [refused, deferred])
    (entry,) = store.quarantine.entries()
    assert (entry.crm, entry.record_id) == ("salesforce", "00Q1")
    assert entry.reason == (
        "write refused by salesforce: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST: "
        "bad value for restricted picklist field: Nope"
    )
    assert entry.raw == {"Status": "Nope"}
    landed = WriteRow("00Q1", "Status", "Open", "Working", WriteStatus.WRITTEN)
    store.audit_log.record("r2", "salesforce", [landed])
    assert store.quarantine.entries() == []
    assert store.quarantine.entries(open_only=False)[0].resolved_at is not None


def test_runs_a_dead_replica_left_running_are_marked_abandoned(store: Store) -> None:
    started = datetime(2026, 6, 1, tzinfo=UTC)
    dead = store.run_log.start("sync", started_at=started, holder="host-a:1")
    done = store.run_log.start("sync", started_at=started, holder="host-a:1")
    store.run_log.finish(done, status="succeeded", summary={}, finished_at=started)
    alive = store.run_log.start("sync", started_at=started, holder="host-b:2")
    assert store.run_log.abandon("host-a:1", finished_at=started) == 1
    statuses = {run.run_id: run.status for run in store.run_log.latest()}
    assert statuses == {dead: "abandoned", done: "succeeded", alive: "running"}


def test_runs_are_abandoned_by_the_role_whose_lease_was_taken_and_an_older_releases_by_replica(
    store: Store,
) -> None:
    started = datetime(2026, 6, 1, tzinfo=UTC)
    synced = store.run_log.start("sync", started_at=started, holder="host-a:1/sync")
    backfilled = store.run_log.start("backfill", started_at=started, holder="host-a:1/backfill")
    older = store.run_log.start("sync", started_at=started, holder="host-a:1")  # no role
    elsewhere = store.run_log.start("sync", started_at=started, holder="host-b:2/sync")
    assert store.run_log.abandon("host-a:1/sync", finished_at=started) == 2
    statuses = {run.run_id: run.status for run in store.run_log.latest()}
    assert statuses == {
        synced: "abandoned",
        backfilled: "running",
        older: "abandoned",
        elsewhere: "running",
    }


def test_a_backfills_pulled_changes_wait_for_its_own_settle(store: Store) -> None:
    store.save_page("hubspot", [snap("1")], position=None, run_id="r1")
    store.mark_reconciled("hubspot", ["1"])
    changed = snap("1", at=T0 + timedelta(hours=1), raw={"email": "new@example.com"})
    held = [changed, snap("2")]
    store.save_page(
        "hubspot", held, position=None, checkpoint="p1", hold_for="backfill:b1", run_id="r2"
    )
    # An incremental sync in between merges none of them...
    assert store.pending_records("hubspot") == []
    # ...and a page saved again unchanged stays held.
    store.save_page(
        "hubspot", held, position=None, checkpoint="p1", hold_for="backfill:b1", run_id="r2"
    )
    assert store.release_held("backfill:b2") == 0
    assert store.release_held("backfill:b1") == 2
    assert sorted(s.record_id for s in store.pending_records("hubspot")) == ["1", "2"]
    assert store.release_held("backfill:b1") == 0
