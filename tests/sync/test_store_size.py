"""What keeps the store small beyond its columns: a new SQLite file's page size, and the
dictionaries snapshots and leads are packed with (revisions 0017 and 0018), on every
backend."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command

from leadsync.connectors.base import WriteStatus
from leadsync.sync import packed, tables, write_log
from leadsync.sync.audit_log import WriteRow
from leadsync.sync.database import SQLITE_PAGE_SIZE, alembic_config
from leadsync.sync.dictionaries import TRAIN_SAMPLES
from leadsync.sync.model import FieldChoice, Lead, Snapshot
from leadsync.sync.search import search_leads
from leadsync.sync.store import Store
from tests.sync.test_store import T0


def test_a_new_sqlite_store_has_large_pages(tmp_path: Path) -> None:
    # A ~1 KB snapshot row left a quarter of each 4 KB page unused.
    store = Store(f"sqlite:///{tmp_path / 'leadsync.db'}")
    with store, store.engine.connect() as connection:
        size = connection.execute(sa.text("PRAGMA page_size")).scalar_one()
        mode = connection.execute(sa.text("PRAGMA journal_mode")).scalar_one()
    assert size == SQLITE_PAGE_SIZE
    assert SQLITE_PAGE_SIZE == 16_384
    assert mode == "wal"


# ------------------------------------------------------------------ packing dictionaries

FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")
TITLES = ("VP Sales", "Product Manager", "Owner", "Analyst", "CTO", "Head of Operations")


def record(number: int, crm: str = "hubspot") -> Snapshot:
    first, last = FIRST[number % len(FIRST)], LAST[number * 7 % len(LAST)]
    company = f"{last} {('Analytics', 'Logistics', 'Cloud', 'Labs')[number % 4]} {number % 97}"
    raw = {
        "email": f"{first.lower()}.{last.lower()}{number}@example.com",
        "firstname": first,
        "lastname": last,
        "company": company,
        "jobtitle": TITLES[number % len(TITLES)],
        "phone": f"+1 {number * 7919 % 1000:03d} {number * 104729 % 10000:04d}",
        "numemployees": str(number * 37 % 5000),
        "createdate": f"2026-0{number % 9 + 1}-1{number % 10}T10:{number % 60:02d}:00.000Z",
        "hs_analytics_num_page_views": str(number % 113),
        "leadsync_score": None,
    }
    canonical = {
        "email": raw["email"],
        "first_name": first,
        "last_name": last,
        "company": company,
        "title": raw["jobtitle"],
        "employees": number * 37 % 5000,
        "page_views": number % 113,
        "created_at": T0 - timedelta(days=number % 400),
    }
    return Snapshot(
        crm=crm,
        record_id=str(100_000 + number),
        modified_at=T0,
        raw=raw,
        canonical=canonical,
        changed_at=dict.fromkeys(canonical, T0),
        deleted=False,
    )


def blobs(store: Store) -> dict[str, bytes]:
    query = sa.select(tables.snapshots.c.record_id, tables.snapshots.c.packed)
    with store.engine.connect() as connection:
        return {record_id: bytes(blob) for record_id, blob in connection.execute(query)}


def dictionary_kinds(store: Store) -> list[str]:
    query = sa.select(tables.dictionaries.c.kind).order_by(tables.dictionaries.c.id)
    with store.engine.connect() as connection:
        return list(connection.execute(query).scalars())


def save(store: Store, numbers: range, crm: str = "hubspot") -> list[Snapshot]:
    snapshots = [record(number, crm) for number in numbers]
    for start in range(0, len(snapshots), 500):
        store.save_page(crm, snapshots[start : start + 500], position=None, run_id="run-1")
    return snapshots


def test_a_crms_records_are_packed_with_a_dictionary_once_enough_are_stored(
    database_url: str,
) -> None:
    with Store(database_url, clock=lambda: T0) as store:
        first = save(store, range(TRAIN_SAMPLES))
        assert dictionary_kinds(store) == []
        later = save(store, range(TRAIN_SAMPLES, TRAIN_SAMPLES + 300))
        assert dictionary_kinds(store) == ["snapshots:hubspot"]
        stored = blobs(store)
        assert {stored[s.record_id][0] for s in first} == {2}
        assert {stored[s.record_id][0] for s in later} == {3}
        # A third or less of the bytes without one, for records alike.
        alone = sum(len(packed.pack(s.raw, tables.encode_value(s.canonical))) for s in later)
        assert sum(len(stored[s.record_id]) for s in later) < alone / 2
        # Another CRM's records wait for their own.
        save(store, range(10), crm="salesforce")
        assert dictionary_kinds(store) == ["snapshots:hubspot"]
    every = {s.record_id: s for s in [*first, *later]}
    # Another process reads them, and packs with the stored dictionary (no second one).
    with Store(database_url, clock=lambda: T0) as store:
        found = store.snapshots("hubspot", list(every))
        assert found == {record_id: replace(s, lead_id=None) for record_id, s in every.items()}
        more = save(store, range(TRAIN_SAMPLES + 300, TRAIN_SAMPLES + 310))
        assert dictionary_kinds(store) == ["snapshots:hubspot"]
        assert {blobs(store)[s.record_id][0] for s in more} == {3}


def test_a_first_save_large_enough_to_train_on_is_packed_with_a_dictionary_of_its_own(
    database_url: str,
) -> None:
    # A first sync's first page or slice: thousands of rows before any is stored.
    leads = [a_lead(number) for number in range(TRAIN_SAMPLES + 40)]
    snapshots = [record(number) for number in range(TRAIN_SAMPLES)]
    with Store(database_url, clock=lambda: T0) as store:
        store.save_page("hubspot", snapshots[:-1], position=None, run_id="run-1")
        store.save_page(
            "salesforce",
            [record(n, "salesforce") for n in range(TRAIN_SAMPLES)],
            position=None,
            run_id="run-1",
        )
        store.save_decisions(leads=leads, run_id="run-1")
        assert dictionary_kinds(store) == ["snapshots:salesforce", "leads"]
        with store.engine.connect() as connection:
            lead_blobs = connection.execute(sa.select(tables.leads.c.packed)).scalars()
            assert {bytes(blob)[0] for blob in lead_blobs} == {3}
        with store.engine.connect() as connection:
            query = sa.select(tables.snapshots.c.crm, tables.snapshots.c.packed)
            formats: dict[str, set[int]] = {}
            for crm, blob in connection.execute(query):
                formats.setdefault(crm, set()).add(bytes(blob)[0])
        # One row short of enough: HubSpot's waits for what is stored, as before.
        assert formats == {"salesforce": {3}, "hubspot": {2}}
        store.save_page("hubspot", snapshots[-1:], position=None, run_id="run-1")
        store.save_page("hubspot", [record(TRAIN_SAMPLES)], position=None, run_id="run-1")
        assert dictionary_kinds(store) == ["snapshots:salesforce", "leads", "snapshots:hubspot"]
    # Read back by another process as they were given, and its saves pack with the same ones.
    with Store(database_url, clock=lambda: T0) as store:
        assert store.leads([lead.lead_id for lead in leads]) == {
            lead.lead_id: lead for lead in leads
        }
        found = store.snapshots("salesforce", [str(100_000 + n) for n in range(TRAIN_SAMPLES)])
        assert found == {
            str(100_000 + n): replace(record(n, "salesforce"), lead_id=None)
            for n in range(TRAIN_SAMPLES)
        }
        store.save_decisions(leads=[a_lead(TRAIN_SAMPLES + 50)], run_id="run-2")
        assert len(dictionary_kinds(store)) == 3


def test_revision_0017_downgrade_packs_every_record_without_a_dictionary(
    database_url: str,
) -> None:
    with Store(database_url, clock=lambda: T0) as store:
        saved_records = save(store, range(TRAIN_SAMPLES + 50))
        before = {s.record_id: (s.raw, s.canonical) for s in saved_records}
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "0016_expected_row_stamps")
        assert not sa.inspect(connection).has_table("dictionaries")
        query = sa.select(tables.snapshots.c.record_id, tables.snapshots.c.packed)
        after = {record_id: bytes(blob) for record_id, blob in connection.execute(query)}
    assert {blob[0] for blob in after.values()} == {2}
    assert {record_id: packed.unpack(blob) for record_id, blob in after.items()} == before
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0017_packing_dictionaries")
    engine.dispose()
    with Store(database_url, clock=lambda: T0) as store:
        assert store.snapshots("hubspot", ["100000"])["100000"].raw == saved_records[0].raw


# --------------------------------------------------------------------------- packed leads

OLD_LEADS = sa.table(
    "leads",
    sa.column("lead_id", sa.String()),
    sa.column("values", sa.JSON()),
    sa.column("choices", sa.JSON()),
    sa.column("score", sa.Integer()),
    sa.column("fit", sa.Integer()),
    sa.column("engagement", sa.Integer()),
    sa.column("grade", sa.String()),
    sa.column("reasons", sa.JSON()),
    sa.column("model_version", sa.String()),
    sa.column("stage", sa.String()),
    sa.column("email", sa.String()),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def a_lead(number: int) -> Lead:
    snapshot = record(number)
    values = {**snapshot.canonical, "score": number % 100, "city": "Zürich"}
    choices = {
        name: FieldChoice(value, "hubspot", "prefer_hubspot", "hubspot: prefer_hubspot")
        for name, value in values.items()
    }
    return Lead(
        lead_id=f"L{number:05d}",
        values=values,
        choices=choices,
        score=number % 100,
        reasons=(f"+{number % 20} page views", "+10 title is manager"),
        stage="MQL",
    )


def test_leads_are_packed_with_a_dictionary_once_enough_are_stored_and_found_by_name(
    database_url: str,
) -> None:
    given = [a_lead(number) for number in range(TRAIN_SAMPLES + 20)]
    with Store(database_url, clock=lambda: T0) as store:
        half = TRAIN_SAMPLES // 2  # saves too small to train on by themselves
        store.save_leads(given[:half])
        store.save_leads(given[half:TRAIN_SAMPLES])
        assert dictionary_kinds(store) == []
        store.save_decisions(leads=given[TRAIN_SAMPLES:], run_id="run-1")
        assert dictionary_kinds(store) == ["leads"]
        with store.engine.connect() as connection:
            query = sa.select(tables.leads.c.lead_id, tables.leads.c.packed)
            kinds = {lead_id: bytes(blob)[0] for lead_id, blob in connection.execute(query)}
        assert {kinds[lead.lead_id] for lead in given[:TRAIN_SAMPLES]} == {2}
        assert {kinds[lead.lead_id] for lead in given[TRAIN_SAMPLES:]} == {3}
    with Store(database_url, clock=lambda: T0) as store:
        found = store.leads([lead.lead_id for lead in given])
        assert found == {lead.lead_id: lead for lead in given}
        last = given[-1]
        words = f"{last.values['first_name']} {last.values['last_name'][1:4]}"
        hits = search_leads(store, words, limit=5_000)
        assert last.lead_id in [lead.lead_id for lead in hits]
        assert all(lead.values["first_name"] == last.values["first_name"] for lead in hits)


def test_revision_0018_carries_leads_over_and_back(database_url: str) -> None:
    old_rows = [
        {
            "lead_id": "L1",
            "values": {
                "email": "ada@example.com",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "city": "Zürich",
                "big": 1e16,
                "seen": {"$datetime": "2024-05-01T10:00:00+00:00"},
            },
            "choices": {
                "email": {"value": "ada@example.com", "crm": "hubspot", "rule": "r", "reason": "x"}
            },
            "score": 70,
            "fit": 40,
            "engagement": 30,
            "grade": "B",
            "reasons": ["+20 employees ≥ 200"],
            "model_version": "v1",
            "stage": "MQL",
            "email": "ada@example.com",
        },
        {
            "lead_id": "L2",
            "values": {"email": None, "company": "Acme"},
            "choices": {},
            "score": None,
            "fit": None,
            "engagement": None,
            "grade": None,
            "reasons": [],
            "model_version": None,
            "stage": None,
            "email": None,
        },
    ]
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0017_packing_dictionaries")
        stamp = T0.replace(tzinfo=None) if connection.dialect.name == "sqlite" else T0
        connection.execute(OLD_LEADS.insert(), [{**row, "updated_at": stamp} for row in old_rows])
        before = _old_leads(connection)

    with Store(database_url) as store:
        leads = store.leads(["L1", "L2"])
        assert leads["L1"].values["seen"] == datetime(2024, 5, 1, 10, tzinfo=UTC)
        assert leads["L1"].values["city"] == "Zürich"
        assert leads["L1"].choices["email"] == FieldChoice("ada@example.com", "hubspot", "r", "x")
        assert leads["L1"].reasons == ("+20 employees ≥ 200",)
        assert (leads["L2"].values, leads["L2"].choices) == ({"email": None, "company": "Acme"}, {})
        assert [lead.lead_id for lead in search_leads(store, "ada LOVE")] == ["L1"]
        assert store.find_leads(email="ada@example.com")[0].lead_id == "L1"

    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "0017_packing_dictionaries")
        after = _old_leads(connection)
    engine.dispose()
    assert after == before
    assert type(after[0]["values"]["big"]) is float


def _old_leads(connection: sa.Connection) -> list[dict[str, Any]]:
    rows = connection.execute(sa.select(OLD_LEADS).order_by(OLD_LEADS.c.lead_id)).mappings()
    parsed = []
    for row in rows:
        found = dict(row)
        for name in ("values", "choices", "reasons"):
            if isinstance(found[name], str):
                found[name] = json.loads(found[name])
        parsed.append(found)
    return parsed


# ---------------------------------------------------------------------------- the log's fields

WRITTEN = WriteStatus.WRITTEN


def a_write(number: int) -> list[WriteRow]:
    snapshot = record(number)
    return [
        WriteRow(snapshot.record_id, "firstname", None, snapshot.raw["firstname"], WRITTEN),
        WriteRow(snapshot.record_id, "leadsync_score", None, number % 100, WRITTEN),
        WriteRow(snapshot.record_id, "company", "Old Co", snapshot.raw["company"], WRITTEN),
    ]


def log_kinds(store: Store) -> dict[int, int]:
    query = sa.select(tables.writes.c.id, tables.writes.c.fields)
    with store.engine.connect() as connection:
        return {row_id: bytes(blob)[0] for row_id, blob in connection.execute(query)}


def expected_kinds(store: Store) -> dict[str, int]:
    query = sa.select(tables.expected.c.record_id, tables.expected.c.packed)
    with store.engine.connect() as connection:
        return {record_id: bytes(blob)[0] for record_id, blob in connection.execute(query)}


def test_the_logs_and_echo_fingerprints_are_packed_with_a_dictionary_once_enough_are_stored(
    database_url: str,
) -> None:
    given = [a_write(number) for number in range(TRAIN_SAMPLES + 20)]
    with Store(database_url, clock=lambda: T0) as store:
        for start in range(0, TRAIN_SAMPLES, 250):
            store.audit_log.record(
                "run-1", "hubspot", [w for ws in given[start : start + 250] for w in ws]
            )
        assert dictionary_kinds(store) == []
        store.audit_log.record("run-2", "hubspot", [w for ws in given[TRAIN_SAMPLES:] for w in ws])
        assert sorted(dictionary_kinds(store)) == ["expected:hubspot", "writes:hubspot"]
        kinds = log_kinds(store)
        assert sorted(kinds.values()) == [2] * TRAIN_SAMPLES + [3] * 20
        assert sorted(expected_kinds(store).values()) == [2] * TRAIN_SAMPLES + [3] * 20
    with Store(database_url, clock=lambda: T0) as store:
        ids = [ws[0].record_id for ws in given]
        assert store.audit_log.expected("hubspot", ids) == {
            ws[0].record_id: {w.field: w.new for w in ws} for ws in given
        }
        logged = [(w.record_id, w.field, w.old, w.new) for w in store.audit_log.entries()]
        assert logged == [(w.record_id, w.field, w.old, w.new) for ws in given for w in ws]
        assert [
            w.new for w in store.audit_log.entries(run_id="run-2", record_id=given[-1][0].record_id)
        ] == [w.new for w in given[-1]]


def test_revision_0017_downgrade_packs_the_logs_fields_without_a_dictionary(
    database_url: str,
) -> None:
    given = [a_write(number) for number in range(TRAIN_SAMPLES + 5)]
    with Store(database_url, clock=lambda: T0) as store:
        store.audit_log.record("run-1", "hubspot", [w for ws in given[:TRAIN_SAMPLES] for w in ws])
        store.audit_log.record("run-2", "hubspot", [w for ws in given[TRAIN_SAMPLES:] for w in ws])
        assert 3 in log_kinds(store).values()
        before = [(w.record_id, w.field, w.old, w.new) for w in store.audit_log.entries()]
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "0016_expected_row_stamps")
        query = sa.select(tables.writes.c.fields).order_by(tables.writes.c.id)
        blobs = [bytes(blob) for blob in connection.execute(query).scalars()]
        command.upgrade(alembic_config(connection=connection), "head")
    engine.dispose()
    assert {blob[0] for blob in blobs} == {2}
    assert [
        (record_id, name, old, new)
        for (record_id, *_), blob in zip(before[::3], blobs, strict=True)
        for name, old, new in write_log.logged_fields(blob)
    ] == before
