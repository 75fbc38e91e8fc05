"""The echo fingerprints keep one time per row where their fields share it (revision 0016), on
every backend: a field written at the row's `written_at` holds its value alone, a field a
later write left alone gets its own time written out, and a store written before the revision
reads the same after it and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import command

from leadsync.connectors.base import WriteStatus
from leadsync.sync import tables
from leadsync.sync.audit_log import WriteRow
from leadsync.sync.database import alembic_config
from leadsync.sync.store import Store
from leadsync.sync.write_log import expected_fields, microseconds
from tests.sync.test_store import T0, saved, snap

WRITTEN = WriteStatus.WRITTEN
T1 = T0 + timedelta(seconds=2)
MAY = "2024-05-01T10:00:00+00:00"


def stored_fields(store: Store, record_id: str = "1") -> dict[str, Any]:
    with store.engine.connect() as connection:
        blob = connection.execute(
            sa.select(tables.expected.c.packed).where(tables.expected.c.record_id == record_id)
        ).scalar_one()
    return expected_fields(blob)  # a test's few rows: packed without a dictionary


def test_a_first_write_stores_no_time_per_field(database_url: str) -> None:
    with Store(database_url, clock=lambda: T0) as store:
        store.audit_log.record(
            "run-1",
            "hubspot",
            [WriteRow("1", "a", None, 1, WRITTEN), WriteRow("1", "b", None, [2, 3], WRITTEN)],
        )
        assert stored_fields(store) == {"a": [1], "b": [[2, 3]]}
        assert store.audit_log.expected("hubspot", ["1"]) == {"1": {"a": 1, "b": [2, 3]}}


def test_a_later_write_writes_out_the_time_of_the_fields_it_leaves_alone(
    database_url: str,
) -> None:
    now = [T0]
    with Store(database_url, clock=lambda: now[0]) as store:
        store.audit_log.record(
            "run-1",
            "hubspot",
            [WriteRow("1", "a", None, 1, WRITTEN), WriteRow("1", "b", None, "x", WRITTEN)],
        )
        now[0] = T0 + timedelta(seconds=1)
        saved(store, snap("1"))
        now[0] = T1
        store.audit_log.record("run-2", "hubspot", [WriteRow("1", "b", "x", "y", WRITTEN)])
        assert stored_fields(store) == {"a": [1, microseconds(T0)], "b": ["y"]}
        assert store.audit_log.unseen("hubspot", ["1"]) == {"1": {"b": "y"}}
        # A third write keeps "a"'s own time, and writes out "b"'s.
        now[0] = T1 + timedelta(seconds=1)
        store.audit_log.record("run-3", "hubspot", [WriteRow("1", "c", None, True, WRITTEN)])
        assert stored_fields(store) == {
            "a": [1, microseconds(T0)],
            "b": ["y", microseconds(T1)],
            "c": [True],
        }
        assert store.audit_log.unseen("hubspot", ["1"]) == {"1": {"b": "y", "c": True}}
        assert store.audit_log.expected("hubspot", ["1"]) == {"1": {"a": 1, "b": "y", "c": True}}


def test_a_write_stamped_before_the_row_keeps_its_own_time(database_url: str) -> None:
    # Two transactions: the one stamped later commits first. The row keeps the later time;
    # the earlier write's fields hold theirs.
    now = [T1]
    with Store(database_url, clock=lambda: now[0]) as store:
        store.audit_log.record("run-2", "hubspot", [WriteRow("1", "b", None, "late", WRITTEN)])
        now[0] = T0
        store.audit_log.record("run-1", "hubspot", [WriteRow("1", "a", None, "early", WRITTEN)])
        assert stored_fields(store) == {"b": ["late"], "a": ["early", microseconds(T0)]}
        now[0] = T0 + timedelta(seconds=1)
        saved(store, snap("1"))
        assert store.audit_log.unseen("hubspot", ["1"]) == {"1": {"b": "late"}}


# --------------------------------------------------------------------------- revision 0016

EXPECTED_0015 = sa.table(
    "expected",
    sa.column("crm", sa.String()),
    sa.column("record_id", sa.String()),
    sa.column("fields", sa.JSON()),
    sa.column("run_id", sa.String()),
    sa.column("written_at", sa.DateTime(timezone=True)),
    sa.column("modified_at", sa.DateTime(timezone=True)),
)


def _stored(connection: sa.Connection, moment: datetime) -> datetime:
    return moment.replace(tzinfo=None) if connection.dialect.name == "sqlite" else moment


def _rows(connection: sa.Connection) -> list[tuple[Any, ...]]:
    query = sa.select(EXPECTED_0015).order_by(EXPECTED_0015.c.crm, EXPECTED_0015.c.record_id)
    return [
        (crm, record_id, json.loads(f) if isinstance(f, str) else f, *rest)
        for crm, record_id, f, *rest in connection.execute(query)
    ]


def test_revision_0016_carries_expected_rows_over_and_back(database_url: str) -> None:
    early, late = microseconds(T0), microseconds(T1)
    # 1e+16 and a tagged time: each value's JSON comes back as it was.
    old = [
        ("hubspot", "1", {"a": [1e16, late], "b": [{"$datetime": MAY}, late]}),
        ("hubspot", "2", {"a": ["kept", early], "b": [None, late]}),
        ("salesforce", "00Q1", {}),
    ]
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0015_own_write_stamps")
        for crm, record_id, fields in old:
            connection.execute(
                EXPECTED_0015.insert(),
                {
                    "crm": crm,
                    "record_id": record_id,
                    "fields": fields,
                    "run_id": "run-1",
                    "written_at": _stored(connection, T1),
                    "modified_at": None,
                },
            )
        before = _rows(connection)
        command.upgrade(alembic_config(connection=connection), "0016_expected_row_stamps")
        assert [row[2] for row in _rows(connection)] == [
            {"a": [1e16], "b": [{"$datetime": MAY}]},
            {"a": ["kept", early], "b": [None]},
            {},
        ]

    read_at = T0 + timedelta(seconds=1)
    with Store(database_url, clock=lambda: read_at) as store:
        saved(store, snap("2"))
        assert store.audit_log.unseen("hubspot", ["2"]) == {"2": {"b": None}}
        assert store.audit_log.expected("hubspot", ["1", "2"]) == {
            "1": {"a": 1e16, "b": datetime(2024, 5, 1, 10, tzinfo=UTC)},
            "2": {"a": "kept", "b": None},
        }

    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "0015_own_write_stamps")
        after = _rows(connection)
    engine.dispose()
    assert after == before
    assert type(after[0][2]["a"][0]) is float
