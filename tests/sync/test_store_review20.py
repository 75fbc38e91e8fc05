"""What the store saves reads back as it was given, on every backend: odd values in a
snapshot and its compact change times, a lead's compact choices, and the echo fingerprints
a later write merges with."""

from __future__ import annotations

import importlib
import math
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from alembic import command

from leadsync.connectors.base import WriteStatus
from leadsync.sync import tables
from leadsync.sync.audit_log import WriteRow
from leadsync.sync.database import alembic_config
from leadsync.sync.model import FieldChoice, Lead, Snapshot
from leadsync.sync.store import Store, content_digest
from tests.sync.test_store import T0, saved

BENCH = Path(__file__).parents[2] / "bench"
WRITTEN = WriteStatus.WRITTEN


def _bench_module(name: str) -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


ODD: dict[str, Any] = {
    "big": 2**70,
    "neg_big": -(2**70),
    "f1": 1.0,
    "one": 1,
    "inf": -math.inf,
    "when": datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))),
    "day": date(2024, 1, 2),
    "nested": {"$datetime": "x"},
    "lst": [1, 1.5, None, {"a": None}],
    "zero": -0.0,
    "e16": 1e16,
    "digits": "1234567890123456789012",
    "": "empty key",
}


def test_odd_snapshot_values_and_change_times_read_back_as_saved(database_url: str) -> None:
    times = {"a": T0, "b": T0 + timedelta(seconds=1), "not_canonical": T0}
    snapshot = Snapshot("hubspot", "1", T0, dict(ODD), {"a": 1, "b": 2.0, "c": None}, times)
    with Store(database_url, clock=lambda: T0) as store:
        saved(store, snapshot)
        back = store.snapshots("hubspot", ["1"])["1"]
    assert back.changed_at == times
    assert {name: (value, type(value)) for name, value in back.raw.items()} == {
        name: (value, type(value)) for name, value in ODD.items()
    }
    assert content_digest(back) == content_digest(snapshot)


def test_odd_lead_choices_read_back_as_saved(database_url: str) -> None:
    values = {"email": "a@example.com", "f": 1.0, "i": 1, "b": True, "d": date(2024, 1, 1)}
    choices = {
        "email": FieldChoice("a@example.com", "hubspot", "newest", "hubspot: newest"),
        "f": FieldChoice(1, "hubspot", "newest", "hubspot: the only CRM that holds it"),
        "i": FieldChoice(True, None, "newest", "None: newest"),
        "b": FieldChoice(True, "salesforce", "r", "x"),
        "d": FieldChoice(date(2024, 1, 1), "salesforce", "r", "salesforce: r"),
        "gone": FieldChoice("v", "salesforce", "r", "salesforce: r"),
    }
    with Store(database_url, clock=lambda: T0) as store:
        store.save_leads([Lead(lead_id="L1", values=values, choices=choices)])
        back = store.leads(["L1"])["L1"].choices
    assert {name: (c, type(c.value)) for name, c in back.items()} == {
        name: (c, type(c.value)) for name, c in choices.items()
    }


def test_expected_values_keep_their_json_form_when_a_later_write_merges(
    database_url: str,
) -> None:
    with Store(database_url, clock=lambda: T0) as store:
        store.audit_log.record(
            "run-1",
            "hubspot",
            [
                WriteRow("1", "score", None, 1e16, WRITTEN),
                WriteRow("1", "address", None, {"street": "1 Main", "city": "X"}, WRITTEN),
            ],
        )
        store.audit_log.record("run-2", "hubspot", [WriteRow("1", "grade", None, "A", WRITTEN)])
        store.audit_log.record("run-3", "hubspot", [WriteRow("1", "grade", "A", "B", WRITTEN)])
        expected = store.audit_log.expected("hubspot", ["1"])["1"]
    assert type(expected["score"]) is float
    assert list(expected["address"].items()) == [("street", "1 Main"), ("city", "X")]
    assert expected["grade"] == "B"


def test_the_churn_bench_counts_the_fields_of_one_row_per_record(tmp_path: Path) -> None:
    # bench/churn.py read writes.field, gone since the log keeps one row per record.
    churn = _bench_module("churn")
    with Store(f"sqlite:///{tmp_path / 'leadsync.db'}", clock=lambda: T0) as store:
        saved(store, Snapshot("hubspot", "1", T0, {"email": "a@x.io"}, {}, {}, False))
        with store.engine.begin() as connection:
            connection.execute(
                tables.links.insert(),
                {
                    "crm": "hubspot",
                    "record_id": "1",
                    "lead_id": "L1",
                    "kind": "lead",
                    "linked_at": T0,
                },
            )
        store.audit_log.record(
            "run-1",
            "hubspot",
            [
                WriteRow("1", "hs_lead_score", None, "72", WRITTEN),
                WriteRow("1", "leadsync_sla_breaches", None, "1", WRITTEN),
            ],
        )
        runtime = SimpleNamespace(store=store, field_map=SimpleNamespace(writeback={}))
        written, flagged, fields = churn._writes(runtime, SimpleNamespace(run_id="run-1"))
    assert (written, flagged) == (1, 0)
    assert fields == {("hubspot", "hs_lead_score"): 1, ("hubspot", "leadsync_sla_breaches"): 1}


def test_the_incremental_bench_gives_a_cloned_lead_its_own_email_choice(tmp_path: Path) -> None:
    # bench/incremental_cost.py took leads.choices for the mapping every version before
    # stored; the compact form is a list.
    incremental = _bench_module("incremental_cost")
    values = {"email": "a@example.com", "name": "A"}
    choices = {
        "email": FieldChoice("a@example.com", "hubspot", "newest", "hubspot: newest"),
        "name": FieldChoice("A", "hubspot", "newest", "hubspot: newest"),
    }
    with Store(f"sqlite:///{tmp_path / 'leadsync.db'}", clock=lambda: T0) as store:
        store.save_leads([Lead(lead_id="L1", values=values, choices=choices)])
        with store.engine.begin() as connection:
            (row,) = connection.execute(sa.select(tables.leads)).mappings()
            clone = incremental._with_email(dict(row), "b@example.com")
            connection.execute(tables.leads.insert(), {**clone, "lead_id": "L2"})
        back = store.leads(["L2"])["L2"]
    assert back.values["email"] == "b@example.com"
    assert back.choices["email"].value == "b@example.com"
    assert back.choices["name"] == choices["name"]


def test_revision_0013_carries_many_rows_and_sql_nulls_over(database_url: str) -> None:
    from tests.sync.test_write_log import OLD_EXPECTED, OLD_WRITES

    engine = sa.create_engine(database_url)
    count = 2_500  # more than the migration's chunk of 1,000
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0012_person_named")
        stamp = T0 if connection.dialect.name != "sqlite" else T0.replace(tzinfo=None)
        connection.execute(
            OLD_WRITES.insert(),
            [
                {
                    "id": number,
                    "run_id": "run-1",
                    "crm": "hubspot",
                    "record_id": str(number % 7),
                    "field": f"f{number}",
                    "old": sa.null(),
                    "new": number,
                    "status": "written",
                    "category": "",
                    "message": "",
                    "at": stamp,
                }
                for number in range(1, count + 1)
            ],
        )
        connection.execute(
            OLD_EXPECTED.insert(),
            [
                {
                    "crm": "hubspot",
                    "record_id": str(number % 1_100),
                    "field": f"f{number}",
                    "value": sa.null() if number % 2 else number,
                    "run_id": "run-1",
                    "written_at": stamp,
                }
                for number in range(1, count + 1)
            ],
        )
        command.upgrade(alembic_config(connection=connection), "head")
    engine.dispose()
    with Store(database_url) as store:
        writes = store.audit_log.entries()
        assert [(w.record_id, w.field, w.old, w.new) for w in writes] == [
            (str(number % 7), f"f{number}", None, number) for number in range(1, count + 1)
        ]
        expected = store.audit_log.expected("hubspot", [str(n) for n in range(1_100)])
    assert sum(len(fields) for fields in expected.values()) == count
    assert expected["1"]["f1"] is None
    assert expected["2"]["f2"] == 2
