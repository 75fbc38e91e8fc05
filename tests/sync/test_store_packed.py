"""Snapshots' raw and canonical values packed into one compressed blob (`sync.packed`), on
every backend: what the store is given reads back as it was, the blob is smaller than the
JSON it holds, and databases written before revision 0014 read the same after it and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from leadsync.sync import packed, tables
from leadsync.sync.database import alembic_config
from leadsync.sync.model import Snapshot
from leadsync.sync.store import Store
from tests.sync.test_store import T0, saved
from tests.sync.test_store_review20 import ODD

# A record as a first sync stores one: the CRM's values, and the same through the mapping.
RAW = {
    "email": "james_young@contosologistics.com",
    "firstname": "James",
    "lastname": "Young",
    "company": "Contoso Logistics Inc.",
    "jobtitle": "Sales Development Representative",
    "hs_analytics_source": "EMAIL_MARKETING",
    "createdate": "2026-03-06T10:28:38.007Z",
    "leadsync_score": None,
    "salesforceleadid": None,
}
CANONICAL = {
    "email": "james_young@contosologistics.com",
    "first_name": "James",
    "last_name": "Young",
    "company": "Contoso Logistics Inc.",
    "title": "Sales Development Representative",
    "lead_source": "email_marketing",
    "created_at": datetime(2026, 3, 6, 10, 28, 38, 7000, tzinfo=UTC),
}


def test_a_packed_record_is_smaller_than_its_json_and_unpacks_as_it_was() -> None:
    raw, canonical = tables.encode_value(RAW), tables.encode_value(CANONICAL)
    blob = packed.pack(raw, canonical)
    text = tables.json_text(RAW) + tables.json_text(CANONICAL)
    assert len(blob) < 0.75 * len(text.encode())
    assert packed.unpack(blob) == (RAW, CANONICAL)


def test_an_unknown_format_is_refused_not_guessed() -> None:
    blob = packed.pack({}, {})
    with pytest.raises(ValueError, match="unknown snapshot format"):
        packed.unpack(b"\x02" + blob[1:])


def test_odd_values_read_back_with_their_types(database_url: str) -> None:
    snapshot = Snapshot("hubspot", "1", T0, dict(ODD), {"when": ODD["when"], "n": 2**70})
    with Store(database_url, clock=lambda: T0) as store:
        saved(store, snapshot)
        back = store.snapshots("hubspot", ["1"])["1"]
    assert [(k, v, type(v)) for k, v in back.raw.items()] == [
        (k, v, type(v)) for k, v in ODD.items()
    ]
    assert back.canonical == {"when": ODD["when"], "n": 2**70}


# -------------------------------------------------------------------------- revision 0014

OLD_SNAPSHOTS = sa.table(
    "snapshots",
    *(sa.column(name) for name in ("crm", "record_id", "content_digest", "run_id")),
    *(sa.column(name) for name in ("held_for", "person_named")),
    *(sa.column(name, sa.JSON()) for name in ("raw", "canonical", "changed_at")),
    *(sa.column(name, sa.Boolean()) for name in ("deleted", "pending")),
    *(sa.column(name, sa.DateTime(timezone=True)) for name in ("modified_at", "saved_at")),
)
# Two records as revision 0013 stored them: JSON as TaggedJSON kept it.
OLD_ROWS: list[dict[str, Any]] = [
    {
        "crm": "hubspot",
        "record_id": "1",
        "raw": tables.encode_value(RAW),
        "canonical": tables.encode_value(CANONICAL),
        "changed_at": {"": "modified_at"},
        "held_for": None,
        "person_named": None,
        "pending": True,
    },
    {
        "crm": "salesforce",
        "record_id": "00Q1",
        "raw": tables.encode_value(ODD),
        "canonical": {},
        "changed_at": {"a": {"$datetime": "2024-05-01T10:00:00+00:00"}},
        "held_for": "backfill:b1",
        "person_named": "0035g000000000GAAQ",
        "pending": False,
    },
]


def _stored(connection: sa.Connection, moment: datetime) -> datetime:
    return moment.replace(tzinfo=None) if connection.dialect.name == "sqlite" else moment


def _rows(connection: sa.Connection) -> list[tuple[Any, ...]]:
    query = sa.select(OLD_SNAPSHOTS).order_by(OLD_SNAPSHOTS.c.crm, OLD_SNAPSHOTS.c.record_id)
    return [
        tuple(
            v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v
            for v in row
        )
        for row in connection.execute(query)
    ]


def _shape(connection: sa.Connection) -> Any:
    inspector = sa.inspect(connection)
    return (
        [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns("snapshots")],
        inspector.get_pk_constraint("snapshots"),
        sorted((i["name"], i["column_names"]) for i in inspector.get_indexes("snapshots")),
    )


def test_revision_0014_carries_snapshots_over_and_back(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    read_at = T0 + timedelta(minutes=1)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0013_write_rows")
        for row in OLD_ROWS:
            connection.execute(
                OLD_SNAPSHOTS.insert(),
                {
                    **row,
                    "content_digest": f"digest-{row['record_id']}",
                    "run_id": "run-0",
                    "deleted": False,
                    "modified_at": _stored(connection, T0),
                    "saved_at": _stored(connection, read_at),
                },
            )
        before = _rows(connection), _shape(connection)

    with Store(database_url, clock=lambda: read_at) as store:
        hubspot = store.snapshots("hubspot", ["1"])["1"]
        salesforce = store.snapshots("salesforce", ["00Q1"])["00Q1"]
        assert (hubspot.raw, hubspot.canonical) == (RAW, CANONICAL)
        assert hubspot.changed_at == dict.fromkeys(CANONICAL, T0)
        assert [(k, v, type(v)) for k, v in salesforce.raw.items()] == [
            (k, v, type(v)) for k, v in ODD.items()
        ]
        assert salesforce.changed_at == {"a": datetime(2024, 5, 1, 10, tzinfo=UTC)}
        # What the columns beside the values held is kept: pending, held, the person named.
        assert [s.record_id for s in store.pending_records("hubspot")] == ["1"]
        assert store.pending_records("salesforce") == []
        assert store.release_held("backfill:b1") == 1
        store.mark_reconciled("salesforce", ["00Q1"])
        with store.engine.connect() as connection:
            named = connection.execute(sa.text("SELECT person_named FROM snapshots")).scalars()
            assert sorted(named, key=str) == ["0035g000000000GAAQ", None]

    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "0013_write_rows")
        after = _rows(connection), _shape(connection)
    engine.dispose()
    assert after[1] == before[1]
    # The values come back as they were stored; the held record was released meanwhile.
    released = {"held_for": None}
    assert after[0] == [
        tuple(
            released.get(column.name, value) if row[1] == "00Q1" else value
            for column, value in zip(OLD_SNAPSHOTS.c, row, strict=True)
        )
        for row in before[0]
    ]
