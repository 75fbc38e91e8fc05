"""The store's related records (Salesforce Contacts and Opportunities), on every backend:
saved with the page that brought them, each keeping the lead record that names it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadsync.connectors.base import Position
from leadsync.sync.related import Related, stream_key
from leadsync.sync.store import Store
from tests.sync.test_store import OVERLONG_EMAIL, snap

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def _contact(
    record_id: str, *, at: datetime = T0, parent: str | None = None, **fields: object
) -> Related:
    return Related("salesforce", "Contact", record_id, at, dict(fields), parent_id=parent)


def test_related_records_are_saved_with_their_page_and_cursor(store: Store) -> None:
    lead = snap("00Q1", crm="salesforce")
    store.save_page(
        "salesforce",
        [lead],
        position=Position(T0, "0031"),
        stream=stream_key("Contact"),
        related=[_contact("0031", parent="00Q1", Leadsync_Score__c=71.5)],
        run_id="run-1",
    )
    (held,) = store.related.get("salesforce", ["0031"]).values()
    assert held == _contact("0031", parent="00Q1", Leadsync_Score__c=71.5)
    assert store.cursors.position("salesforce", stream_key("Contact")) == Position(T0, "0031")
    assert store.cursors.position("salesforce") is None  # the leads' own cursor stays
    assert store.related.known_stamps("salesforce", ["0031", "0039"]) == {"0031": T0}


def test_a_related_record_pulled_again_keeps_the_lead_that_names_it(store: Store) -> None:
    store.save_page(
        "salesforce", [], position=None, related=[_contact("0031", parent="00Q1")], run_id="r1"
    )
    later = T0 + timedelta(hours=1)
    store.save_page(
        "salesforce",
        [],
        position=None,
        related=[_contact("0031", at=later, deleted_by_test=True), _contact("0032", at=later)],
        run_id="r2",
    )
    held = store.related.get("salesforce", ["0031", "0032"])
    assert held["0031"].parent_id == "00Q1"
    assert held["0031"].modified_at == later
    assert held["0032"].parent_id is None
    contacts = store.related.of_object("salesforce", "Contact")
    assert sorted(r.record_id for r in contacts) == ["0031", "0032"]
    assert store.related.of_object("salesforce", "Opportunity") == []


def _person(
    record_id: str, email: str | None, *, parent: str | None = None, deleted: bool = False
) -> Related:
    return Related(
        "salesforce",
        "Contact",
        record_id,
        T0,
        {"Email": email},
        deleted,
        parent_id=parent,
        email=email,
    )


def test_people_are_found_by_email_or_id_only_when_no_lead_names_them_and_they_live(
    store: Store,
) -> None:
    store.save_page(
        "salesforce",
        [],
        position=None,
        related=[
            _person("0031", "ann@x.com"),
            _person("0032", "ann@x.com", parent="00Q9"),  # a converted lead's: not its own
            _person("0033", "ann@x.com", deleted=True),
            _person("0034", "bob@x.com"),
            _person("0035", None),
        ],
        run_id="r1",
    )
    assert sorted(store.related.people("salesforce", emails=["ann@x.com"])) == ["0031"]
    assert sorted(store.related.people("salesforce", record_ids=["0034", "0032"])) == ["0034"]
    both = store.related.people("salesforce", record_ids=["0034"], emails=["ann@x.com"])
    assert sorted(both) == ["0031", "0034"]
    assert both["0031"].email == "ann@x.com"
    assert store.related.people("hubspot", emails=["ann@x.com"]) == {}


def test_the_migration_gives_contacts_stored_before_it_their_email(tmp_path: Path) -> None:
    import sqlalchemy as sa
    from alembic import command

    from leadsync.sync.database import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0009_staged_edits")
    engine = sa.create_engine(url)
    row = {"crm": "salesforce", "run_id": "r", "saved_at": "2024-05-01 10:00:00"}
    row |= {"modified_at": "2024-05-01 10:00:00", "deleted": False, "parent_id": None}
    with engine.begin() as connection:
        insert = sa.text(
            "INSERT INTO related (crm, record_id, object_name, modified_at, raw, deleted,"
            " parent_id, run_id, saved_at) VALUES (:crm, :record_id, :object_name,"
            " :modified_at, :raw, :deleted, :parent_id, :run_id, :saved_at)"
        )
        connection.execute(
            insert,
            {
                **row,
                "record_id": "0031",
                "object_name": "Contact",
                "raw": '{"Email": " Ann@X.com "}',
            },
        )
        connection.execute(
            insert,
            {
                **row,
                "record_id": "0061",
                "object_name": "Opportunity",
                "raw": '{"Email": "no@x.com"}',
            },
        )
    engine.dispose()
    with Store(url) as store:
        found = store.related.people("salesforce", emails=["ann@x.com", "no@x.com"])
        assert sorted(found) == ["0031"]


def test_children_are_the_records_of_one_object_a_parent_holds(store: Store) -> None:
    role = "OpportunityContactRole"
    rows = [
        Related("salesforce", role, "00K1", T0, {"IsPrimary": True}, parent_id="0031"),
        Related("salesforce", role, "00K2", T0, {}, deleted=True, parent_id="0031"),
        Related("salesforce", role, "00K3", T0, {}, parent_id="0032"),
        _contact("0033", parent="0031"),  # another object under the same parent id
    ]
    store.save_page("salesforce", [], position=None, related=rows, run_id="r1")
    found = store.related.children("salesforce", role, ["0031", "0039"])
    assert sorted((r.record_id, r.deleted) for r in found) == [("00K1", False), ("00K2", True)]


def test_a_related_record_with_an_email_the_database_cannot_hold_does_not_stop_the_page(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 16, hole 1, for Contacts: on PostgreSQL an email far past an address's length
    # broke the email index ("index row requires 9024 bytes"), and a NUL in it the text
    # column ("cannot contain NUL"), and with them every page.
    nul = Related(
        "salesforce", "Contact", "0032", T0, {"Email": "a\x00b@x.com"}, email="a\x00b@x.com"
    )
    long = Related(
        "salesforce",
        "Contact",
        "0033",
        T0,
        {"Email": OVERLONG_EMAIL},
        email=OVERLONG_EMAIL.lower(),
    )
    store.save_page(
        "salesforce",
        [snap("00Q1", crm="salesforce")],
        position=Position(T0, "0033"),
        stream=stream_key("Contact"),
        related=[_contact("0031", parent="00Q1"), nul, long],
        run_id="run-1",
    )
    # The page and its cursor are saved: the next run does not stop at this record.
    assert store.cursors.position("salesforce", stream_key("Contact")) == Position(T0, "0033")
    held = store.related.get("salesforce", ["0031", "0032", "0033"])
    # Neither is an address: each Contact is kept without it, nobody's person record.
    assert (held["0032"].email, held["0033"].email) == (None, None)
    assert held["0032"].fields == {"Email": "a\x00b@x.com"}
    assert held["0033"].fields == {"Email": OVERLONG_EMAIL}
    assert "Contact 0032: its email holds a NUL character" in caplog.text
    # Said by object, id and field, never by value.
    assert "Contact 0033: its email is longer than an address can be" in caplog.text
    assert OVERLONG_EMAIL not in caplog.text
