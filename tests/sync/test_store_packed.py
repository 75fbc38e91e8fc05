"""Snapshots' raw and canonical values packed into one compressed blob (`sync.packed`), on
every backend: what the store is given reads back as it was, the blob is smaller than the
JSON it holds, and databases written before revision 0014 read the same after it and back."""

from __future__ import annotations

import json
import math
import zlib
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from leadsync.sync import packed, tables
from leadsync.sync.database import alembic_config
from leadsync.sync.model import FieldChoice, Lead, Snapshot
from leadsync.sync.store import Store
from tests.sync.test_store import T0, saved, stored_lead
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
    with pytest.raises(ValueError, match="unknown packed format"):
        packed.unpack(b"\x09" + blob[1:])


def test_a_blob_in_the_deflate_form_revision_0014_carried_over_in_reads_too() -> None:
    text = tables.json_text([RAW, CANONICAL]).encode()
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    blob = b"\x01" + compressor.compress(text) + compressor.flush()
    assert packed.unpack(blob) == (RAW, CANONICAL)
    assert packed.pack(tables.encode_value(RAW), tables.encode_value(CANONICAL))[0] == 2


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
AT_T0 = {"$datetime": "2024-05-01T10:00:00+00:00"}
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
        "changed_at": {"a": AT_T0},
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


# ----------------------------------------------------------------------------- leads.choices


def _choices(lead: Lead, database_url: str) -> tuple[Any, dict[str, FieldChoice]]:
    with Store(database_url, clock=lambda: T0) as store:
        store.save_leads([lead])
        stored = stored_lead(store)[1]
        return stored, dict(store.leads([lead.lead_id])[lead.lead_id].choices)


def test_a_leads_choices_list_each_kind_once_and_read_back_as_given(database_url: str) -> None:
    values = {f"f{number}": number for number in range(30)}
    choices = {
        name: FieldChoice(value, "hubspot", "newest", "hubspot: the only CRM that holds it")
        for name, value in values.items()
    }
    choices["f3"] = FieldChoice(3, "salesforce", "newest", "salesforce: newest")
    choices["f4"] = FieldChoice("other", "salesforce", "newest", "the person's opportunity")
    stored, back = _choices(Lead("L1", values, choices), database_url)
    assert back == choices
    # Three kinds among thirty fields, a character each; one value not the lead's.
    _, _, kinds, picks, odd = stored
    assert (len(kinds), len(picks), odd) == (3, 30, {"f4": "other"})


def test_choices_of_other_fields_or_order_than_the_values_read_back(database_url: str) -> None:
    values = {"b": 2, "a": 1}
    choices = {
        "a": FieldChoice(1, "hubspot", "r", "hubspot: r"),
        "gone": FieldChoice("$", None, "r", "None: r"),
        "$tag": FieldChoice(5, "salesforce", "r", "x"),
    }
    stored, back = _choices(Lead("L1", values, choices), database_url)
    assert list(back.items()) == list(choices.items())
    assert stored[5] == ["a", "gone", "$tag"]


def test_more_kinds_than_characters_keep_an_entry_a_field(database_url: str) -> None:
    values = {f"f{number}": number for number in range(70)}
    choices = {
        name: FieldChoice(value, "hubspot", "r", f"reason {value}")
        for name, value in values.items()
    }
    stored, back = _choices(Lead("L1", values, choices), database_url)
    assert back == choices
    assert len(stored) == 3
    assert len(stored[2]) == 70


OLD_LEADS = sa.table(
    "leads",
    sa.column("lead_id"),
    sa.column("values", sa.JSON()),
    sa.column("choices", sa.JSON()),
    sa.column("reasons", sa.JSON()),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
# Leads as revision 0013 stored them: its compact form (an entry a field, the value only
# where it is not the lead's), a field named like a tag, and the first form (a mapping).
OLD_LEADS_ROWS: list[dict[str, Any]] = [
    {
        "lead_id": "L1",
        "values": {"email": "a@x.io", "size": 3, "when": {"$date": "2024-01-02"}},
        "choices": [
            ["hubspot", "salesforce"],
            ["prefer_hubspot", "most_recent"],
            {
                "email": [0, 0, 2],
                "size": [1, 1, "salesforce: newer", 4],
                "when": [0, 0, 2],
                "$odd": [1, 0, 1, {"$date": "2024-01-03"}],
            },
        ],
    },
    {
        "lead_id": "L2",
        "values": {"email": "b@x.io"},
        "choices": {"email": {"value": "b@x.io", "crm": "hubspot", "rule": "r", "reason": "x"}},
    },
]


def test_revision_0014_carries_lead_choices_over_and_back(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0013_write_rows")
        for row in OLD_LEADS_ROWS:
            at = _stored(connection, T0)
            connection.execute(OLD_LEADS.insert(), {**row, "reasons": [], "updated_at": at})

    with Store(database_url) as store:
        leads = store.leads(["L1", "L2"])
        with store.engine.connect() as connection:
            query = sa.select(tables.leads.c.packed).order_by(tables.leads.c.lead_id)
            stored = [
                json.loads(packed.unpack_text(b))[1] for b in connection.execute(query).scalars()
            ]
    day = date(2024, 1, 2)
    assert dict(leads["L1"].choices) == {
        "email": FieldChoice("a@x.io", "hubspot", "prefer_hubspot", "hubspot: prefer_hubspot"),
        "size": FieldChoice(4, "salesforce", "most_recent", "salesforce: newer"),
        "when": FieldChoice(day, "hubspot", "prefer_hubspot", "hubspot: prefer_hubspot"),
        "$odd": FieldChoice(
            date(2024, 1, 3),
            "salesforce",
            "prefer_hubspot",
            "salesforce: the only CRM that holds it",
        ),
    }
    assert dict(leads["L2"].choices) == {"email": FieldChoice("b@x.io", "hubspot", "r", "x")}
    assert len(stored[0]) == 6
    assert stored[1] == OLD_LEADS_ROWS[1]["choices"]

    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "0013_write_rows")
        query = sa.select(OLD_LEADS.c.choices).order_by(OLD_LEADS.c.lead_id)
        back = connection.execute(query).scalars().all()
    engine.dispose()
    assert back == [row["choices"] for row in OLD_LEADS_ROWS]


# ------------------------------------------------------------------------------- the log

OLD_LOG = sa.table(
    "writes",
    *(sa.column(name) for name in ("run_id", "crm", "record_id")),
    sa.column("fields", sa.JSON()),
    *(sa.column(name) for name in ("status", "category", "message")),
    sa.column("at", sa.DateTime(timezone=True)),
)
# Rows as revision 0013 logged them: {field: [old, new]}, values as `encode_value` gave them.
OLD_LOG_ROWS: list[tuple[Any, ...]] = [
    ("run-1", "hubspot", "1", {"a": [None, "x"], "b": [1e16, AT_T0]}, "written", "", ""),
    ("run-1", "hubspot", "2", {"$a": [2**70, None]}, "failed", "invalid", "no"),
    ("run-2", "salesforce", "00Q1", {"Rating": [None, "Hot"]}, "deferred", "", ""),
]


def test_revision_0014_carries_the_log_over_and_back(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    columns = [column.name for column in OLD_LOG.c]
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0013_write_rows")
        at = _stored(connection, T0)
        for row in OLD_LOG_ROWS:
            values = dict(zip(columns[:-1], row, strict=True))
            connection.execute(OLD_LOG.insert(), {**values, "at": at})

    with Store(database_url) as store:
        logged = [
            (w.record_id, w.field, w.old, w.new, str(w.status)) for w in store.audit_log.entries()
        ]
        assert [w.at for w in store.audit_log.entries()] == [T0] * 4
    assert logged == [
        ("1", "a", None, "x", "written"),
        ("1", "b", 1e16, datetime(2024, 5, 1, 10, tzinfo=UTC), "written"),
        ("2", "$a", 2**70, None, "failed"),
        ("00Q1", "Rating", None, "Hot", "deferred"),
    ]

    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "0013_write_rows")
        query = sa.select(OLD_LOG).order_by(sa.text("id"))
        back = [tuple(row)[:-1] for row in connection.execute(query)]
    engine.dispose()
    assert back == OLD_LOG_ROWS


def test_revision_0014_downgrade_unpacks_what_the_store_wrote_since(database_url: str) -> None:
    with Store(database_url, clock=lambda: T0) as store:
        saved(store, Snapshot("hubspot", "7", T0, dict(RAW), dict(CANONICAL)))
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "0013_write_rows")
        query = sa.select(OLD_SNAPSHOTS.c.raw, OLD_SNAPSHOTS.c.canonical)
        (row,) = connection.execute(query).all()
    engine.dispose()
    assert tuple(row) == (tables.encode_value(RAW), tables.encode_value(CANONICAL))


def test_a_choice_equal_to_the_leads_value_in_another_form_reads_back_as_its_own(
    database_url: str,
) -> None:
    # 0.0 == -0.0, and two datetimes of one instant in two offsets are equal: a choice whose
    # value is such a twin of the lead's must not read back as the lead's copy. (JSON keeps the
    # sign of zero; every datetime is kept as UTC, the choice's alone as much as the lead's.)
    instant = datetime(2026, 3, 6, 10, 28, tzinfo=UTC)
    values = {"zero": 0.0, "when": instant}
    choices = {
        "zero": FieldChoice(-0.0, "hubspot", "r", "hubspot: r"),
        "when": FieldChoice(instant.astimezone(timezone(timedelta(hours=2))), "hubspot", "r", "x"),
    }
    _, back = _choices(Lead("L1", values, choices), database_url)
    assert math.copysign(1.0, back["zero"].value) == -1.0
    assert back["when"].value == instant
    assert back["when"].value.utcoffset() == timedelta(0)


def test_a_merged_leads_choices_read_back_as_the_crms_values(database_url: str) -> None:
    # As the engine makes a lead: its values are its choices' own. Those read back as given,
    # the sign of zero and the instant kept (as UTC, as every stored datetime).
    instant = datetime(2026, 3, 6, 10, 28, tzinfo=timezone(timedelta(hours=-5)))
    choices = {
        "zero": FieldChoice(-0.0, "hubspot", "r", "hubspot: r"),
        "when": FieldChoice(instant, "salesforce", "r", "salesforce: r"),
    }
    values = {name: choice.value for name, choice in choices.items()}
    _, back = _choices(Lead("L1", values, choices), database_url)
    assert math.copysign(1.0, back["zero"].value) == -1.0
    assert back["when"].value == instant


# ------------------------------------------------------------------- some fields, read for less


@pytest.mark.parametrize("name", sorted(ODD))
def test_one_field_unpacked_alone_reads_as_the_whole_record_gives_it(name: str) -> None:
    # Every odd kind of value: an integer past 64 bits (orjson rounds it to a float), tagged
    # times and dates, a mapping that looks tagged, floats and lists.
    raw, canonical = dict(ODD), {"as_canonical": ODD[name], "other": 1}
    blob = packed.pack(tables.encode_value(raw), tables.encode_value(canonical))
    got_raw, got_canonical = packed.unpack_fields(blob, None, [name, "absent"], ["as_canonical"])
    assert [(v, type(v)) for v in got_raw.values()] == [(ODD[name], type(ODD[name]))]
    assert list(got_raw) == [name]
    assert got_canonical == {"as_canonical": ODD[name]}
    assert type(got_canonical["as_canonical"]) is type(ODD[name])


def test_fields_unpacked_alone_from_text_orjson_refuses_read_as_the_whole_record() -> None:
    # A lone surrogate: orjson refuses the text, the json module reads it.
    raw = {"email": "a\ud800@x.com", "other": "b"}
    blob = packed.pack(tables.encode_value(raw), {})
    assert packed.unpack_fields(blob, None, ["email"], ["email"]) == ({"email": raw["email"]}, {})


def test_identity_snapshots_hold_the_named_fields_of_the_stored_snapshots(
    database_url: str,
) -> None:
    snapshot = Snapshot(
        "hubspot", "1", T0, {**RAW, "salesforceleadid": "00Q5g000001ABCD"}, CANONICAL
    )
    with Store(database_url, clock=lambda: T0) as store:
        saved(store, snapshot, Snapshot("hubspot", "2", T0, {"big": 2**70}, {}))
        whole = store.snapshots("hubspot", ["1", "2"])
        light = store.identity_snapshots(
            "hubspot", ["1", "2", "absent"], raw=["salesforceleadid", "big"], canonical=["email"]
        )
    by_id = {s.record_id: s for s in light}
    assert sorted(by_id) == ["1", "2"]
    assert by_id["1"].raw == {"salesforceleadid": "00Q5g000001ABCD"}
    assert by_id["1"].canonical == {"email": CANONICAL["email"]}
    assert by_id["2"].raw == {"big": 2**70}
    for record_id, read in by_id.items():
        assert (read.crm, read.modified_at, read.deleted, read.lead_id) == (
            whole[record_id].crm,
            whole[record_id].modified_at,
            whole[record_id].deleted,
            whole[record_id].lead_id,
        )
