"""The Salesforce connector's related objects against the sandbox: Contacts and Opportunities
pulled incrementally by (SystemModstamp, Id) with look-back, deletes flagged, REST and Bulk
alike; Contacts written beside leads; a converted lead's write refused for that record only."""

from __future__ import annotations

from datetime import timedelta

import pytest

from leadsync.connectors.base import Position, RecordUpdate, WriteStatus
from leadsync.connectors.traits import SALESFORCE
from tests.connectors.test_salesforce_connector import (
    LATER,
    SEED_UNTIL,
    client,
    connected,
    converted_lead_id,
    in_stamp_order,
    known_from,
    open_lead_ids,
    records,
    running,
    unseen,
)

CONTACT_FIELDS = ("Email", "LastName", "Leadsync_Score__c", "Leadsync_Stage__c")
OPPORTUNITY_FIELDS = ("StageName", "Amount", "CloseDate", "IsWon", "IsClosed")


def test_the_connector_declares_the_objects_it_follows() -> None:
    with running(leads=5) as (sandbox, _), connected(sandbox) as connector:
        assert connector.streams == ("Lead", "Contact", "Opportunity", "OpportunityContactRole")
        assert connector.contact_roles == SALESFORCE.contact_roles
        with pytest.raises(ValueError, match="follows no object 'Account'"):
            next(connector.pull(None, fields=[], started_at=LATER, stream="Account"))


@pytest.mark.parametrize(
    ("stream", "fields"), [("Contact", CONTACT_FIELDS), ("Opportunity", OPPORTUNITY_FIELDS)]
)
def test_related_objects_are_pulled_in_stamp_order(stream: str, fields: tuple[str, ...]) -> None:
    with running(leads=300) as (sandbox, _), connected(sandbox) as connector:
        pulled = records(connector.pull(None, fields=fields, started_at=LATER, stream=stream))
        held = sandbox.salesforce.snapshot(stream, include_deleted=True)
        assert sorted(r.id for r in pulled) == sorted(row["Id"] for row in held)
        assert pulled
        assert in_stamp_order(pulled)
        assert set(pulled[0].fields) == set(fields)


def test_a_contact_pull_resumes_with_look_back_and_notices_deletes() -> None:
    with running(leads=200) as (sandbox, inspector):
        with connected(sandbox, lookback=timedelta(minutes=5)) as connector:
            first = list(
                connector.pull(None, fields=CONTACT_FIELDS, started_at=LATER, stream="Contact")
            )
            contact_ids = sorted(r.id for r in records(first))
            sf = client(sandbox)
            sf.Contact.update(contact_ids[0], {"Leadsync_Score__c": 42})
            sf.Contact.delete(contact_ids[1])
            lead_id = open_lead_ids(inspector, 1)[0]
            inspector.post(f"salesforce/leads/{lead_id}/convert", {})
            new_contact = sandbox.salesforce.record("Lead", lead_id)["ConvertedContactId"]  # type: ignore[index]

            position, held = first[-1].position, known_from(records(first))
            later = records(
                connector.pull(
                    position, fields=CONTACT_FIELDS, started_at=LATER, known=held, stream="Contact"
                )
            )
        by_id = {r.id: r for r in unseen(later, records(first))}
        assert set(by_id) == {contact_ids[0], contact_ids[1], new_contact}
        assert by_id[contact_ids[0]].fields["Leadsync_Score__c"] == 42.0
        assert by_id[contact_ids[1]].deleted is True
        assert by_id[new_contact].deleted is False


def test_the_bulk_path_reads_related_objects_as_rest_does() -> None:
    with running(leads=300) as (sandbox, inspector):
        since = Position(SEED_UNTIL - timedelta(days=90), "")
        with connected(sandbox) as rest:
            by_rest = records(
                rest.pull(since, fields=OPPORTUNITY_FIELDS, started_at=LATER, stream="Opportunity")
            )
        with connected(sandbox, bulk_query_threshold=0) as bulk:
            by_bulk = records(
                bulk.pull(since, fields=OPPORTUNITY_FIELDS, started_at=LATER, stream="Opportunity")
            )
        assert inspector.served("salesforce.bulk.query_create") == 1
        assert by_bulk == by_rest
        assert by_rest
        assert {type(r.fields["IsWon"]) for r in by_bulk} == {bool}


def test_contacts_are_written_beside_leads_and_a_frozen_lead_fails_alone() -> None:
    with running(leads=60) as (sandbox, inspector), connected(sandbox) as connector:
        frozen = converted_lead_id(inspector)
        contact_id = inspector.leads()[frozen]["ConvertedContactId"]
        open_id = open_lead_ids(inspector, 1)[0]
        results = connector.write(
            [
                RecordUpdate(contact_id, {"Leadsync_Stage__c": "Customer"}, object_name="Contact"),
                RecordUpdate(frozen, {"Leadsync_Stage__c": "Customer"}),
                RecordUpdate(open_id, {"Leadsync_Stage__c": "MQL"}),
            ]
        )
        assert [r.status for r in results] == [
            WriteStatus.WRITTEN,
            WriteStatus.FAILED,
            WriteStatus.WRITTEN,
        ]
        assert results[1].category == "cannot_update_converted_lead"
        assert sandbox.salesforce.record("Contact", contact_id)["Leadsync_Stage__c"] == "Customer"  # type: ignore[index]
        assert inspector.served("salesforce.collection_update") == 1


def test_contacts_go_by_collection_when_leads_go_by_bulk() -> None:
    with (
        running(leads=60) as (sandbox, inspector),
        connected(sandbox, bulk_write_threshold=1) as connector,
    ):
        frozen = converted_lead_id(inspector)
        contact_id = inspector.leads()[frozen]["ConvertedContactId"]
        open_ids = open_lead_ids(inspector, 2)
        updates = [RecordUpdate(i, {"Title": "Bulk"}) for i in open_ids]
        updates.append(RecordUpdate(contact_id, {"Title": "Collection"}, object_name="Contact"))
        results = connector.write(updates)
        assert {r.status for r in results} == {WriteStatus.WRITTEN}
        assert inspector.served("salesforce.collection_update") == 1
        assert sandbox.salesforce.record("Contact", contact_id)["Title"] == "Collection"  # type: ignore[index]
        assert sandbox.salesforce.record("Lead", open_ids[0])["Title"] == "Bulk"  # type: ignore[index]


def test_lead_and_contact_updates_go_grouped_by_object_whatever_their_order() -> None:
    with running(leads=200) as (sandbox, inspector), connected(sandbox) as connector:
        converted = [i for i, row in inspector.leads().items() if row["IsConverted"]][:6]
        contact_ids = [inspector.leads()[i]["ConvertedContactId"] for i in converted]
        open_ids = open_lead_ids(inspector, 6)
        updates = []
        for lead_id, contact_id in zip(open_ids, contact_ids, strict=True):
            updates.append(RecordUpdate(lead_id, {"Title": "Lead"}))
            updates.append(RecordUpdate(contact_id, {"Title": "Contact"}, object_name="Contact"))
        results = connector.write(updates)  # 12 runs of one type, as given
        assert [r.record_id for r in results] == [u.record_id for u in updates]
        assert {r.status for r in results} == {WriteStatus.WRITTEN}
        assert inspector.served("salesforce.collection_update") == 1


def test_the_roles_of_many_opportunities_are_read_200_a_query() -> None:
    roles = SALESFORCE.contact_roles
    assert roles is not None
    with running(leads=300) as (sandbox, inspector), connected(sandbox) as connector:
        seeded = sandbox.salesforce.snapshot("OpportunityContactRole")
        assert seeded, "the seed converts some leads with an opportunity"
        # Ids no role names fill the list past one query's 200.
        asked = [row["OpportunityId"] for row in seeded]
        asked += [f"0065g9{n:09d}AAA" for n in range(201 - len(asked))]
        assert len(set(asked)) == 201, (len(seeded), len(asked))
        before = inspector.served("salesforce.query")
        found = connector.related_where(
            roles.object_name, roles.opportunity_field, asked, fields=roles.fields
        )
        assert inspector.served("salesforce.query") - before == 2
        assert sorted(
            (r.id, r.fields["ContactId"], r.fields["IsPrimary"]) for r in found
        ) == sorted((row["Id"], row["ContactId"], True) for row in seeded)
