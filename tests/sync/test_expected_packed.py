"""The echo fingerprints packed (revision 0019), on every backend: what a store written before
the revision holds reads the same after it and back, rows packed with a dictionary come back
too, and two transactions writing one record's fields at once both keep theirs."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from leadsync.connectors.base import WriteStatus
from leadsync.sync import tables, write_log
from leadsync.sync.audit_log import WriteRow
from leadsync.sync.database import alembic_config
from leadsync.sync.dictionaries import TRAIN_SAMPLES
from leadsync.sync.store import Store
from leadsync.sync.write_log import microseconds
from tests.sync.test_store import T0

WRITTEN = WriteStatus.WRITTEN
T1 = T0 + timedelta(seconds=2)
BEFORE = "0018_packed_leads"
EXPECTED_0018 = sa.table(
    "expected",
    sa.column("crm", sa.String()),
    sa.column("record_id", sa.String()),
    sa.column("fields", sa.JSON()),
    sa.column("run_id", sa.String()),
    sa.column("written_at", sa.DateTime(timezone=True)),
    sa.column("modified_at", sa.DateTime(timezone=True)),
)
# Each odd kind of value as the store encodes it: an integer past 64 bits, a float that
# looks like one, a tagged time, a field named like a tag, a text past ASCII.
OLD_FIELDS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "hubspot",
        "1",
        {"a": [2**70], "b": [1e16, microseconds(T0)], "$x": [{"$date": "2024-05-01"}]},
    ),
    ("hubspot", "2", {"name": ["Zoë"], "none": [None]}),
    ("salesforce", "00Q1", {}),
]


def _stored(connection: sa.Connection, moment: datetime) -> datetime:
    return moment.replace(tzinfo=None) if connection.dialect.name == "sqlite" else moment


def _old_rows(connection: sa.Connection) -> list[tuple[Any, ...]]:
    query = sa.select(EXPECTED_0018).order_by(EXPECTED_0018.c.crm, EXPECTED_0018.c.record_id)
    return [
        (crm, record_id, json.loads(f) if isinstance(f, str) else f, run_id)
        for crm, record_id, f, run_id, *_ in connection.execute(query)
    ]


def test_revision_0019_carries_the_echo_fingerprints_over_and_back(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), BEFORE)
        for crm, record_id, fields in OLD_FIELDS:
            connection.execute(
                EXPECTED_0018.insert(),
                {
                    "crm": crm,
                    "record_id": record_id,
                    "fields": fields,
                    "run_id": "run-1",
                    "written_at": _stored(connection, T1),
                    "modified_at": None,
                },
            )
        before = _old_rows(connection)
        command.upgrade(alembic_config(connection=connection), "0019_packed_expected")
        blobs = connection.execute(sa.select(tables.expected.c.packed)).scalars().all()
        assert sorted(bytes(blob)[0] for blob in blobs) == [2, 2, 2]

    with Store(database_url, clock=lambda: T1) as store:
        assert store.audit_log.expected("hubspot", ["1", "2"]) == {
            "1": {"a": 2**70, "b": 1e16, "$x": datetime(2024, 5, 1).date()},
            "2": {"name": "Zoë", "none": None},
        }
        assert store.audit_log.expected("salesforce", ["00Q1"]) == {"00Q1": {}}

    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), BEFORE)
        after = _old_rows(connection)
    engine.dispose()
    assert after == before
    assert type(after[0][2]["b"][0]) is float


def test_a_row_carried_over_takes_a_later_write_over_its_fields(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), BEFORE)
        connection.execute(
            EXPECTED_0018.insert(),
            {
                "crm": "hubspot",
                "record_id": "1",
                "fields": {"a": ["kept"], "b": ["old"]},
                "run_id": "run-1",
                "written_at": _stored(connection, T0),
                "modified_at": None,
            },
        )
    engine.dispose()
    with Store(database_url, clock=lambda: T1) as store:
        store.audit_log.record("run-2", "hubspot", [WriteRow("1", "b", "old", "new", WRITTEN)])
        with store.engine.connect() as connection:
            blob = connection.execute(sa.select(tables.expected.c.packed)).scalar_one()
        assert write_log.expected_fields(blob) == {"a": ["kept", microseconds(T0)], "b": ["new"]}
        assert store.audit_log.expected("hubspot", ["1"]) == {"1": {"a": "kept", "b": "new"}}


def test_rows_packed_with_a_dictionary_go_back_to_json(database_url: str) -> None:
    writes = [
        WriteRow(str(number), field, None, f"{field} {number}", WRITTEN)
        for number in range(TRAIN_SAMPLES + 10)
        for field in ("firstname", "company")
    ]
    with Store(database_url, clock=lambda: T0) as store:
        store.audit_log.record("run-1", "hubspot", writes[: 2 * TRAIN_SAMPLES])
        store.audit_log.record("run-2", "hubspot", writes[2 * TRAIN_SAMPLES :])
        with store.engine.connect() as connection:
            query = sa.select(tables.expected.c.packed)
            kinds = [bytes(blob)[0] for blob in connection.execute(query).scalars()]
        assert sorted(kinds) == [2] * TRAIN_SAMPLES + [3] * 10
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), BEFORE)
        rows = {record_id: fields for _, record_id, fields, _ in _old_rows(connection)}
    engine.dispose()
    assert rows == {
        str(number): {"firstname": [f"firstname {number}"], "company": [f"company {number}"]}
        for number in range(TRAIN_SAMPLES + 10)
    }


def test_two_transactions_writing_one_new_records_fields_at_once_both_keep_theirs(
    postgresql_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first reads no row for the record, then waits before writing one; the second,
    # started meanwhile, must not read the same nothing and write over it. (SQLite's write
    # transactions are one at a time: there, the second waits at its start.)
    real = write_log.upsert_statement
    first = threading.Event()

    def slow_first(connection: sa.Connection, table: sa.Table) -> Any:
        if table is tables.expected and not first.is_set():
            first.set()
            time.sleep(1.0)
        return real(connection, table)

    monkeypatch.setattr(write_log, "upsert_statement", slow_first)
    errors: list[BaseException] = []

    database_url = postgresql_database_url

    def write(field: str) -> None:
        try:
            with Store(database_url, clock=lambda: T0) as store:
                store.audit_log.record("run-1", "hubspot", [WriteRow("1", field, None, 1, WRITTEN)])
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    with Store(database_url):
        pass  # migrated once, before the two race
    one = threading.Thread(target=write, args=("a",))
    one.start()
    assert first.wait(10)
    two = threading.Thread(target=write, args=("b",))
    two.start()
    one.join(20)
    two.join(20)
    assert not errors
    with Store(database_url) as store:
        assert store.audit_log.expected("hubspot", ["1"]) == {"1": {"a": 1, "b": 1}}


def test_revision_0019_packs_a_crms_rows_with_a_dictionary_once_it_has_enough(
    database_url: str,
) -> None:
    # As many rows as the store trains on for HubSpot, fewer for Salesforce.
    rows = [
        ("hubspot", str(number), {"firstname": [f"Ann {number}"], "company": [f"Co {number}"]})
        for number in range(TRAIN_SAMPLES)
    ] + [("salesforce", "00Q1", {"Company": ["Acme"]})]
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), BEFORE)
        connection.execute(
            EXPECTED_0018.insert(),
            [
                {
                    "crm": crm,
                    "record_id": record_id,
                    "fields": fields,
                    "run_id": "run-1",
                    "written_at": _stored(connection, T0),
                    "modified_at": None,
                }
                for crm, record_id, fields in rows
            ],
        )
        before = _old_rows(connection)
        command.upgrade(alembic_config(connection=connection), "0019_packed_expected")
        kinds = connection.execute(sa.select(tables.dictionaries.c.kind)).scalars().all()
        assert kinds == ["expected:hubspot"]
        query = sa.select(tables.expected.c.crm, tables.expected.c.packed)
        formats = {(crm, bytes(blob)[0]) for crm, blob in connection.execute(query)}
        assert formats == {("hubspot", 3), ("salesforce", 2)}

    with Store(database_url, clock=lambda: T1) as store:
        assert store.audit_log.expected("hubspot", ["7"]) == {
            "7": {"firstname": "Ann 7", "company": "Co 7"}
        }
        # Written after: packed with the dictionary the migration trained.
        store.audit_log.record(
            "run-2", "hubspot", [WriteRow("7", "company", "Co 7", "New", WRITTEN)]
        )
        assert store.audit_log.expected("hubspot", ["7"]) == {
            "7": {"firstname": "Ann 7", "company": "New"}
        }

    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), BEFORE)
        after = _old_rows(connection)
        left = connection.execute(sa.text("SELECT kind FROM dictionaries")).scalars().all()
    engine.dispose()
    assert left == []
    seventh = next(i for i, row in enumerate(before) if row[:2] == ("hubspot", "7"))
    assert after[:seventh] + after[seventh + 1 :] == before[:seventh] + before[seventh + 1 :]
    assert after[seventh][2] == {"firstname": ["Ann 7", microseconds(T0)], "company": ["New"]}
