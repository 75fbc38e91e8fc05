"""The Salesforce connector's handoff calls against the sandbox, over real HTTP: upserts by
External ID in collections of 200 (created, then found again), per-record results classified
like writes, owners kept or left to the org's assignment rule, people found by email, and the
owners records may be routed to."""

from __future__ import annotations

from typing import Any

from leadsync.connectors.base import NewRecord, PersonRecord, RecordUpdate, WriteStatus
from leadsync.sandbox.schema import INACTIVE_USER_ID, INBOUND_QUEUE_ID, SANDBOX_OWNERS
from tests.connectors.test_salesforce_connector import (
    PATIENT,
    client,
    connected,
    open_lead_ids,
    running,
)

KEY = "Leadsync_Id__c"
DANA, MARCO = SANDBOX_OWNERS[0][1], SANDBOX_OWNERS[1][1]


def person(n: int, **values: Any) -> NewRecord:
    return NewRecord(
        f"lead-{n:04d}",
        {
            "LastName": f"Handed {n}",
            "Company": "Acme",
            "Email": f"p{n}@acme.example",
            "OwnerId": DANA,
            **values,
        },
    )


def by_key(inspector: Any) -> dict[str, dict[str, Any]]:
    return {row[KEY]: row for row in inspector.leads().values() if row.get(KEY)}


def test_upsert_sends_collections_of_200_and_finds_its_records_again() -> None:
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        people = [person(n) for n in range(450)]
        first = connector.upsert(people, key_field=KEY)
        assert inspector.served("salesforce.collection_upsert") == 3
        assert [r.key for r in first] == [p.key for p in people]
        assert {(r.status, r.created) for r in first} == {(WriteStatus.WRITTEN, True)}
        # A second upsert (a run killed before it recorded the first) creates nothing.
        again = connector.upsert(people, key_field=KEY)
        assert {(r.status, r.created) for r in again} == {(WriteStatus.WRITTEN, False)}
        assert [r.record_id for r in again] == [r.record_id for r in first]
        assert len(by_key(inspector)) == 450


def test_upsert_reports_each_record_on_its_own() -> None:
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        results = connector.upsert(
            [
                person(1),
                person(2, Status="Qualified-ish"),
                person(3, OwnerId=INACTIVE_USER_ID),
                person(4, No_Such_Field__c="x"),
            ],
            key_field=KEY,
        )
        summary = [(r.key, r.status, r.category) for r in results]
        assert summary == [
            ("lead-0001", WriteStatus.WRITTEN, ""),
            ("lead-0002", WriteStatus.FAILED, "invalid_or_null_for_restricted_picklist"),
            ("lead-0003", WriteStatus.FAILED, "inactive_owner_or_user"),
            ("lead-0004", WriteStatus.FAILED, "invalid_field"),
        ]
        assert results[0].record_id.startswith("00Q")
        assert results[1].record_id == ""
        assert results[1].fields == ("Status",)
        assert set(by_key(inspector)) == {"lead-0001"}


def test_an_upsert_refused_for_a_value_it_cannot_parse_creates_every_other_record() -> None:
    # One value Salesforce cannot parse fails the whole request (400 JSON_PARSER_ERROR): the
    # collection is split until that record stands alone, and only it fails.
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        people = [person(n) for n in range(6)]
        people[4] = person(4, NumberOfEmployees="a dozen")
        results = connector.upsert(people, key_field=KEY)
        assert [(r.key, r.status) for r in results] == [
            (p.key, WriteStatus.FAILED if n == 4 else WriteStatus.WRITTEN)
            for n, p in enumerate(people)
        ]
        assert results[4].category == "json_parser_error"
        assert sorted(by_key(inspector)) == sorted(p.key for n, p in enumerate(people) if n != 4)


def test_upserts_of_locked_rows_are_retried_until_written() -> None:
    with running() as (sandbox, inspector), connected(sandbox, retry=PATIENT) as connector:
        people = [person(n) for n in range(40)]
        connector.upsert(people, key_field=KEY)
        inspector.post("faults", {"spec": "lock=0.3", "seed": 5})
        results = connector.upsert([person(n, Title="Again") for n in range(40)], key_field=KEY)
        assert {r.status for r in results} == {WriteStatus.WRITTEN}
        assert max(r.attempts for r in results) > 1
        assert {row["Title"] for row in by_key(inspector).values()} == {"Again"}


def test_upsert_keeps_the_owner_it_gives_unless_told_to_assign() -> None:
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        kept, assigned = connector.upsert([person(1, Country="US")], key_field=KEY) + (
            connector.upsert([person(2, Country="US")], key_field=KEY, assign=True)
        )
        stored = inspector.leads()
        assert stored[kept.record_id]["OwnerId"] == DANA
        # The sandbox's active rule sends North America to Marco.
        assert stored[assigned.record_id]["OwnerId"] == MARCO


def test_writes_never_run_the_orgs_assignment_rule() -> None:
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        lead_id = next(
            i for i in open_lead_ids(inspector, 60) if inspector.leads()[i]["OwnerId"] != MARCO
        )
        owner = inspector.leads()[lead_id]["OwnerId"]
        (result,) = connector.write([RecordUpdate(lead_id, {"Country": "Canada"})])
        assert result.status is WriteStatus.WRITTEN
        assert inspector.leads()[lead_id]["OwnerId"] == owner


def test_find_people_finds_open_leads_and_contacts_by_email_in_any_case() -> None:
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        (open_id,) = open_lead_ids(inspector, 1)
        converted = next(
            row for row in inspector.leads().values() if row["IsConverted"] and row["Email"]
        )
        open_email = "Open.Lead@Acme.example"
        client(sandbox).Lead.update(
            open_id, {"Email": open_email}, headers={"Sforce-Auto-Assign": "FALSE"}
        )
        found = connector.find_people(
            [open_email.upper(), converted["Email"], "nobody@nowhere.example"]
        )
        assert found == {
            open_email.lower(): PersonRecord("Lead", open_id),
            converted["Email"].lower(): PersonRecord("Contact", converted["ConvertedContactId"]),
        }


def test_find_people_with_long_emails_keeps_each_query_within_salesforces_uri_limit() -> None:
    # A query travels in the URI, and Salesforce refuses one past 16,384 bytes (414). Two
    # hundred emails of 80 characters, the field's length, take more than that.
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        (open_id,) = open_lead_ids(inspector, 1)
        emails = [f"{'p' * 60}.{n:03d}@long-domain.example"[-80:] for n in range(400)]
        client(sandbox).Lead.update(
            open_id, {"Email": emails[250]}, headers={"Sforce-Auto-Assign": "FALSE"}
        )
        found = connector.find_people(emails)
        assert found == {emails[250]: PersonRecord("Lead", open_id)}
        assert "salesforce.uri_too_long" not in inspector.stats()["endpoints"]


def test_find_people_asks_each_object_once_for_as_many_emails_as_one_query_holds() -> None:
    # 300 emails of 20-odd characters fit one URI: one query of contacts, one of leads (the
    # lists were capped at 200 emails, a collection's size: four queries).
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        (open_id,) = open_lead_ids(inspector, 1)
        emails = [f"person.{n:03d}@acme.example" for n in range(300)]
        client(sandbox).Lead.update(
            open_id, {"Email": emails[250]}, headers={"Sforce-Auto-Assign": "FALSE"}
        )
        before = inspector.stats()["endpoints"]
        found = connector.find_people(emails)
        after = inspector.stats()["endpoints"]
        assert found == {emails[250]: PersonRecord("Lead", open_id)}
        asked = {name: after[name] - before.get(name, 0) for name in after}
        assert sum(n for name, n in asked.items() if name.startswith("salesforce.query")) == 2


def test_assignees_are_the_active_users_and_the_queues() -> None:
    with running() as (sandbox, _), connected(sandbox) as connector:
        assert connector.assignees() == {o[1] for o in SANDBOX_OWNERS} | {INBOUND_QUEUE_ID}


def test_stamps_read_2000_ids_a_call_in_a_body_and_agree_with_a_fetch() -> None:
    # The check before a write asks for stamps alone, in the body of a POST of sObject
    # Collections: 2,000 ids a call (a SOQL `IN (...)` in a GET query's URI held ~430), and
    # none refused, however many ids: 5,000 take three calls, no more.
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        real = sorted(inspector.leads())
        client(sandbox).Lead.delete(real[0])
        made_up = [f"00Q5g{n:010d}AAA" for n in range(5_000 - len(real))]
        wanted = [*real, *made_up]
        before = inspector.stats()["endpoints"]
        stamps: dict[str, Any] = {}
        reads = []
        left = wanted
        while left:
            answer = connector.stamps(left)
            reads.append(answer.read)
            stamps.update(answer.modified_at)
            left = left[answer.read :]
        after = inspector.stats()["endpoints"]
        asked = {
            name: count - before.get(name, 0)
            for name, count in after.items()
            if count > before.get(name, 0) and not name.startswith("salesforce.auth")
        }
        assert reads == [2000, 2000, 1000]
        assert asked == {"salesforce.collection_retrieve": 3}
        # The records whose stamp moved are read whole by SOQL, 200 ids a GET query: however
        # many moved, each query stays within the URI limit.
        fields = ["Email", "FirstName", "LastName", "Company", "Title", "Phone", "Status"]
        whole = connector.fetch(wanted, fields=fields)
        assert stamps == {i: record.modified_at for i, record in whole.items()}
        assert real[0] not in stamps  # deleted: absent, as from a fetch
        assert len(stamps) == len(real) - 1
        assert "salesforce.uri_too_long" not in inspector.stats()["endpoints"]
        assert "salesforce.headers_too_large" not in inspector.stats()["endpoints"]
