"""The audit log and the echo fingerprints, one row per record (`sync.write_log`), on every
backend: what the store is given comes back one field at a time, in order, and databases
written before revision 0013 read the same after it."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import command

from leadsync.connectors.base import WriteStatus
from leadsync.sync import tables
from leadsync.sync.audit_log import LoggedWrite, WriteRow
from leadsync.sync.database import alembic_config
from leadsync.sync.sql import WRITE_CHUNK
from leadsync.sync.store import Store
from tests.sync.test_store import T0, saved, snap

T1 = T0 + timedelta(minutes=5)
WRITTEN, FAILED, DEFERRED = WriteStatus.WRITTEN, WriteStatus.FAILED, WriteStatus.DEFERRED


def logged(store: Store, **narrowed: Any) -> list[tuple[Any, ...]]:
    return [
        (w.crm, w.record_id, w.field, w.old, w.new, str(w.status), w.category, w.message)
        for w in store.audit_log.entries(**narrowed)
    ]


def rows_in(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# --------------------------------------------------------------------------------- the log


def test_a_batch_logs_one_row_per_record_and_reads_back_every_field_in_order(
    database_url: str,
) -> None:
    with Store(database_url, clock=lambda: T0) as store:
        store.audit_log.record(
            "run-1",
            "hubspot",
            [
                WriteRow("1", "hs_lead_score", "10", "72", WRITTEN),
                WriteRow("1", "lifecyclestage", "lead", "mql", WRITTEN),
                WriteRow("2", "hs_lead_score", None, "50", WRITTEN),
                WriteRow("2", "leadsync_grade", None, "B", WRITTEN),
            ],
        )
        assert rows_in(store, tables.writes) == 2
        assert rows_in(store, tables.expected) == 2
        assert logged(store) == [
            ("hubspot", "1", "hs_lead_score", "10", "72", "written", "", ""),
            ("hubspot", "1", "lifecyclestage", "lead", "mql", "written", "", ""),
            ("hubspot", "2", "hs_lead_score", None, "50", "written", "", ""),
            ("hubspot", "2", "leadsync_grade", None, "B", "written", "", ""),
        ]
        assert {w.at for w in store.audit_log.entries()} == {T0}


def test_rows_of_one_record_with_other_outcomes_or_in_between_keep_their_own(
    database_url: str,
) -> None:
    given = [
        WriteRow("1", "a", "x", "y", WRITTEN),
        WriteRow("1", "b", "x", "y", FAILED, "invalid_option", "no such value"),
        WriteRow("1", "c", "x", "y", FAILED, "invalid_option", "another reason"),
        WriteRow("2", "a", "x", "y", DEFERRED, "throttled", ""),
        WriteRow("1", "d", "x", "y", WRITTEN),
        WriteRow("1", "d", "y", "z", WRITTEN),  # a field written twice in one batch
    ]
    with Store(database_url, clock=lambda: T0) as store:
        store.audit_log.record("run-1", "hubspot", given)
        assert logged(store) == [
            ("hubspot", r.record_id, r.field, r.old, r.new, str(r.status), r.category, r.message)
            for r in given
        ]
        assert rows_in(store, tables.writes) == 6
        # The last value written to a field is the one the CRM holds.
        assert store.audit_log.expected("hubspot", ["1", "2"]) == {"1": {"a": "y", "d": "z"}}


def test_the_log_narrows_by_run_crm_and_record(store: Store) -> None:
    store.audit_log.record("run-1", "hubspot", [WriteRow("1", "a", None, 1, WRITTEN)])
    store.audit_log.record("run-2", "hubspot", [WriteRow("2", "a", None, 2, WRITTEN)])
    store.audit_log.record("run-2", "salesforce", [WriteRow("1", "A", None, 3, WRITTEN)])
    assert [w.new for w in store.audit_log.entries(run_id="run-2")] == [2, 3]
    assert [w.new for w in store.audit_log.entries(crm="hubspot")] == [1, 2]
    assert [w.new for w in store.audit_log.entries(crm="hubspot", record_id="1")] == [1]
    assert [w.new for w in store.audit_log.entries(record_id="1")] == [1, 3]


def test_values_round_trip_with_their_types_and_field_names_that_look_like_tags(
    store: Store,
) -> None:
    moment = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    values: list[tuple[str, Any, Any]] = [
        ("closed_at", None, moment),
        ("ratio", math.inf, -math.inf),
        ("tags", ["a", "b"], {"$datetime": "not a date"}),
        ("none", None, None),
    ]
    store.audit_log.record("r", "hubspot", [WriteRow("1", f, o, n, WRITTEN) for f, o, n in values])
    store.audit_log.record("r", "hubspot", [WriteRow("2", "$x", "old", "new", WRITTEN)])
    assert [(w.field, w.old, w.new) for w in store.audit_log.entries(record_id="1")] == values
    assert [(w.field, w.old, w.new) for w in store.audit_log.entries(record_id="2")] == [
        ("$x", "old", "new")
    ]
    assert store.audit_log.expected("hubspot", ["1"]) == {"1": {f: n for f, _, n in values}}
    # A record whose only field looks like a tag merges with its later writes all the same.
    store.audit_log.record("r", "hubspot", [WriteRow("2", "other", None, 1, WRITTEN)])
    assert store.audit_log.expected("hubspot", ["2"]) == {"2": {"$x": "new", "other": 1}}


def test_text_past_ascii_long_integers_and_tiny_floats_round_trip(store: Store) -> None:
    # Values the log's JSON writer (orjson) writes otherwise than the json module did, or
    # refuses (an int past 64 bits): read back as they were given, after merges too.
    values: list[tuple[str, Any, Any]] = [
        ("name", "Zoë", "雪 😀"),
        ("count", 2**70, -(2**64)),
        ("ratio", 1e-05, -2.5e-9),
        ("note", "a\x7fb", 'line\nbreak "quoted"'),
    ]
    store.audit_log.record("r", "hubspot", [WriteRow("1", f, o, n, WRITTEN) for f, o, n in values])
    store.audit_log.record("r", "hubspot", [WriteRow("1", "other", None, "é", WRITTEN)])
    assert [(w.field, w.old, w.new) for w in store.audit_log.entries(record_id="1")] == [
        *values,
        ("other", None, "é"),
    ]
    assert store.audit_log.expected("hubspot", ["1"]) == {
        "1": {**{f: n for f, _, n in values}, "other": "é"}
    }


def test_a_batch_larger_than_a_driver_chunk_is_logged_whole(store: Store) -> None:
    count = WRITE_CHUNK * 2 + 7
    store.audit_log.record(
        "run-1", "hubspot", [WriteRow(str(i), "score", None, i, WRITTEN) for i in range(count)]
    )
    assert [w.new for w in store.audit_log.entries()] == list(range(count))
    assert len(store.audit_log.expected("hubspot", [str(i) for i in range(count)])) == count


# ------------------------------------------------------------------------- expected values


def test_a_write_of_some_fields_keeps_the_expected_values_of_the_others(store: Store) -> None:
    store.audit_log.record(
        "run-1",
        "hubspot",
        [WriteRow("1", "a", None, 1, WRITTEN), WriteRow("1", "b", None, 2, WRITTEN)],
    )
    store.audit_log.record(
        "run-2",
        "hubspot",
        [WriteRow("1", "b", 2, 3, WRITTEN), WriteRow("1", "c", None, 4, WRITTEN)],
    )
    store.audit_log.record("run-3", "hubspot", [WriteRow("1", "a", 1, 9, FAILED, "invalid", "")])
    assert store.audit_log.expected("hubspot", ["1"]) == {"1": {"a": 1, "b": 3, "c": 4}}
    assert rows_in(store, tables.expected) == 1


def test_only_the_fields_written_after_the_snapshot_was_read_are_unseen(
    database_url: str,
) -> None:
    now = [T0]
    with Store(database_url, clock=lambda: now[0]) as store:
        store.audit_log.record("run-1", "hubspot", [WriteRow("1", "a", None, "before", WRITTEN)])
        now[0] = T0 + timedelta(seconds=1)
        saved(store, snap("1"))
        now[0] = T0 + timedelta(seconds=2)
        store.audit_log.record("run-2", "hubspot", [WriteRow("1", "b", None, "after", WRITTEN)])
        # "a" was written before the read: the snapshot holds whatever the CRM had then.
        assert store.audit_log.unseen("hubspot", ["1"]) == {"1": {"b": "after"}}
        assert store.audit_log.expected("hubspot", ["1"]) == {"1": {"a": "before", "b": "after"}}


# -------------------------------------------------------------------------- revision 0013

OLD_WRITES = sa.table(
    "writes",
    *(sa.column(name) for name in ("id", "run_id", "crm", "record_id", "field")),
    sa.column("old", sa.JSON()),
    sa.column("new", sa.JSON()),
    *(sa.column(name) for name in ("status", "category", "message")),
    sa.column("at", sa.DateTime(timezone=True)),
)
OLD_EXPECTED = sa.table(
    "expected",
    *(sa.column(name) for name in ("crm", "record_id", "field")),
    sa.column("value", sa.JSON()),
    sa.column("run_id"),
    sa.column("written_at", sa.DateTime(timezone=True)),
)
SNAPSHOTS = sa.table(
    "snapshots",
    *(sa.column(name) for name in ("crm", "record_id", "content_digest", "run_id")),
    *(sa.column(name, sa.JSON()) for name in ("raw", "canonical", "changed_at")),
    *(sa.column(name, sa.Boolean()) for name in ("deleted", "pending")),
    *(sa.column(name, sa.DateTime(timezone=True)) for name in ("modified_at", "saved_at")),
)
# The field rows of a store before revision 0013: values as TaggedJSON kept them.
AT_T0 = {"$datetime": "2024-05-01T10:00:00+00:00"}
FIELD_WRITES: list[tuple[Any, ...]] = [
    ("run-1", "hubspot", "1", "a", "x", "y", "written", "", "", T0),
    ("run-1", "hubspot", "1", "b", None, AT_T0, "written", "", "", T0),
    ("run-1", "hubspot", "2", "a", 1, 2, "failed", "invalid", "no", T0),
    ("run-1", "hubspot", "1", "c", "p", "q", "written", "", "", T0),
    ("run-1", "hubspot", "1", "c", "q", "r", "written", "", "", T0),
    ("run-2", "hubspot", "1", "c", "r", "s", "written", "", "", T1),
    ("run-2", "salesforce", "00Q1", "Rating", None, "Hot", "deferred", "", "", T1),
]
FIELD_EXPECTED: list[tuple[Any, ...]] = [
    ("hubspot", "1", "a", "y", "run-1", T0),
    ("hubspot", "1", "b", AT_T0, "run-1", T0),
    ("hubspot", "1", "c", "s", "run-2", T1),
    ("salesforce", "00Q1", "Rating", None, "run-2", T1),
]


def _stored(connection: sa.Connection, moment: datetime) -> datetime:
    return moment.replace(tzinfo=None) if connection.dialect.name == "sqlite" else moment


def _old_rows(connection: sa.Connection) -> tuple[list[Any], list[Any]]:
    writes = connection.execute(sa.select(OLD_WRITES).order_by(OLD_WRITES.c.id)).all()
    expected = connection.execute(
        sa.select(OLD_EXPECTED).order_by(
            OLD_EXPECTED.c.crm, OLD_EXPECTED.c.record_id, OLD_EXPECTED.c.field
        )
    ).all()
    aware = [
        tuple(
            v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v
            for v in row
        )
        for row in writes + expected
    ]
    return aware[: len(writes)], aware[len(writes) :]


def _shape(connection: sa.Connection) -> list[Any]:
    inspector = sa.inspect(connection)
    return [
        (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)],
            inspector.get_pk_constraint(name),
            sorted((i["name"], i["column_names"]) for i in inspector.get_indexes(name)),
        )
        for name in ("writes", "expected")
    ]


def test_revision_0013_carries_field_rows_over_and_back(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0012_person_named")
        for number, row in enumerate(FIELD_WRITES, start=1):
            values = dict(zip([c.name for c in OLD_WRITES.c][1:], row, strict=True))
            connection.execute(
                OLD_WRITES.insert(), {**values, "id": number, "at": _stored(connection, row[-1])}
            )
        for row in FIELD_EXPECTED:
            values = dict(zip([c.name for c in OLD_EXPECTED.c], row, strict=True))
            connection.execute(
                OLD_EXPECTED.insert(), {**values, "written_at": _stored(connection, row[-1])}
            )
        # Read between the two runs' writes: run-2's write of "c" is not in it yet.
        read_at = _stored(connection, T0 + timedelta(minutes=1))
        connection.execute(
            SNAPSHOTS.insert(),
            {
                "crm": "hubspot",
                "record_id": "1",
                "content_digest": "d",
                "run_id": "run-0",
                "raw": {},
                "canonical": {},
                "changed_at": {},
                "deleted": False,
                "pending": False,
                "modified_at": read_at,
                "saved_at": read_at,
            },
        )
        before = _old_rows(connection), _shape(connection)

    with Store(database_url) as store:
        assert store.audit_log.entries() == [
            LoggedWrite(
                run_id,
                crm,
                record_id,
                field,
                tables.decode_value(old),
                tables.decode_value(new),
                WriteStatus(status),
                category,
                message,
                at,
            )
            for run_id, crm, record_id, field, old, new, status, category, message, at in (
                FIELD_WRITES
            )
        ]
        # Seven field rows, six record rows: only record 1's first two fields were one write.
        assert rows_in(store, tables.writes) == 6
        assert store.audit_log.expected("hubspot", ["1"]) == {
            "1": {"a": "y", "b": datetime(2024, 5, 1, 10, tzinfo=UTC), "c": "s"}
        }
        assert store.audit_log.expected("salesforce", ["00Q1"]) == {"00Q1": {"Rating": None}}
        assert store.audit_log.unseen("hubspot", ["1"]) == {"1": {"c": "s"}}
        # Carried over, a record's expected values merge with its next write.
        store.audit_log.record(
            "run-3", "salesforce", [WriteRow("00Q1", "Status", None, "Open", WRITTEN)]
        )
        assert store.audit_log.expected("salesforce", ["00Q1"]) == {
            "00Q1": {"Rating": None, "Status": "Open"}
        }

    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "0012_person_named")
        writes, expected = _old_rows(connection)
        assert _shape(connection) == before[1]
    engine.dispose()
    old_writes, old_expected = before[0]
    assert [row[1:] for row in writes] == [row[1:] for row in old_writes] + [
        ("run-3", "salesforce", "00Q1", "Status", None, "Open", "written", "", "", writes[-1][-1])
    ]
    # Each expected value comes back with the time it was written; its run is its record's
    # latest (the one-row store keeps no run per field, and nothing reads one).
    latest_run = {("hubspot", "1"): "run-2", ("salesforce", "00Q1"): "run-3"}
    assert expected == sorted(
        [
            (*row[:4], latest_run[row[0], row[1]], row[5])
            for row in [*old_expected, ("salesforce", "00Q1", "Status", "Open", "", writes[-1][-1])]
        ],
        key=lambda row: row[:3],
    )
