"""The store's related records (Salesforce Contacts and Opportunities), on every backend:
saved with the page that brought them, each keeping the lead record that names it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadsync.connectors.base import Position
from leadsync.sync.related import Related, stream_key
from leadsync.sync.store import Store
from tests.sync.test_store import snap

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
    assert store.cursor("salesforce", stream_key("Contact")) == Position(T0, "0031")
    assert store.cursor("salesforce") is None  # the leads' own cursor stays
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
