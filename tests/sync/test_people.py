"""Matching the records that are people of their own (a Salesforce Contact no lead names) to
their leads: link, cross-reference, email; two records for one person, or one beside the
person's lead record, go to review; a person's own link stands."""

from __future__ import annotations

from datetime import UTC, datetime

from leadsync.sandbox.ids import salesforce_id
from leadsync.sync.model import Snapshot
from leadsync.sync.people import MANUAL, match_people
from leadsync.sync.related import Related

NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
C1 = salesforce_id("003", 1)
C2 = salesforce_id("003", 2)
LEAD_RECORD = salesforce_id("00Q", 1)


def contact(record_id: str, email: str | None) -> Related:
    return Related("salesforce", "Contact", record_id, NOW, {"Email": email}, email=email)


def hs(record_id: str, email: str, **raw: object) -> Snapshot:
    return Snapshot("hubspot", record_id, NOW, {"email": email, **raw}, {"email": email})


def sf(record_id: str, email: str, *, deleted: bool = False) -> Snapshot:
    return Snapshot("salesforce", record_id, NOW, {}, {"email": email}, deleted=deleted)


def test_the_one_contact_holding_the_leads_email_is_attached_and_linked_by_email() -> None:
    decided = match_people(
        [contact(C1, "ann@x.com")],
        {"L": [hs("1", "ann@x.com")]},
        {},
        leads={"L"},
        identity_field="email",
    )
    assert decided.attached == {"L": contact(C1, "ann@x.com")}
    assert decided.links == [("salesforce", C1, "L", "email")]
    assert decided.reviews == []


def test_the_hubspot_contacts_reference_wins_over_another_email() -> None:
    decided = match_people(
        [contact(C1, "other@y.com")],
        {"L": [hs("1", "ann@x.com", salesforcecontactid=C1)]},
        {},
        leads={"L"},
        identity_field="email",
    )
    assert decided.attached["L"].record_id == C1
    assert decided.links == [("salesforce", C1, "L", "cross_reference")]


def test_two_contacts_with_the_persons_email_both_go_to_review() -> None:
    decided = match_people(
        [contact(C1, "ann@x.com"), contact(C2, "ann@x.com")],
        {"L": [hs("1", "ann@x.com")]},
        {},
        leads={"L"},
        identity_field="email",
    )
    assert decided.attached == {}
    assert decided.links == []
    assert sorted(r[1] for r in decided.reviews) == [C1, C2]
    assert all(r[2] == ("L",) for r in decided.reviews)
    assert "L" in decided.in_review


def test_a_new_contact_beside_one_linked_before_goes_to_review_the_linked_one_stays() -> None:
    decided = match_people(
        [contact(C1, "ann@x.com"), contact(C2, "ann@x.com")],
        {"L": [hs("1", "ann@x.com")]},
        {("salesforce", C1): ("L", "email")},
        leads={"L"},
        identity_field="email",
    )
    assert decided.attached["L"].record_id == C1
    assert [r[1] for r in decided.reviews] == [C2]


def test_a_contact_and_a_live_lead_record_of_one_person_go_to_review() -> None:
    records = {"L": [hs("1", "ann@x.com"), sf(LEAD_RECORD, "ann@x.com")]}
    fresh = match_people(
        [contact(C1, "ann@x.com")], records, {}, leads={"L"}, identity_field="email"
    )
    linked_before = match_people(
        [contact(C1, "ann@x.com")],
        records,
        {("salesforce", C1): ("L", "email")},
        leads={"L"},
        identity_field="email",
    )
    for decided in (fresh, linked_before):
        assert decided.attached == {}
        assert [r[1] for r in decided.reviews] == [C1]
        assert LEAD_RECORD in decided.reviews[0][3]


def test_a_deleted_lead_record_leaves_the_contact_to_be_the_persons() -> None:
    records = {"L": [hs("1", "ann@x.com"), sf(LEAD_RECORD, "ann@x.com", deleted=True)]}
    decided = match_people(
        [contact(C1, "ann@x.com")], records, {}, leads={"L"}, identity_field="email"
    )
    assert decided.attached["L"].record_id == C1


def test_a_link_a_person_made_stands_beside_a_lead_record_and_is_not_written() -> None:
    decided = match_people(
        [contact(C1, "ann@x.com")],
        {"L": [hs("1", "ann@x.com"), sf(LEAD_RECORD, "ann@x.com")]},
        {("salesforce", C1): ("L", MANUAL)},
        leads={"L"},
        identity_field="email",
    )
    assert decided.reviews == []
    assert decided.attached == {}  # the lead's own record is written


def test_a_contact_whose_email_two_leads_hold_goes_to_review_with_both() -> None:
    decided = match_people(
        [contact(C1, "ann@x.com")],
        {"L": [hs("1", "ann@x.com")], "M": [hs("2", "ann@x.com")]},
        {},
        leads={"L"},
        identity_field="email",
    )
    assert decided.attached == {}
    assert [r[2] for r in decided.reviews] == [("L", "M")]
    assert set(decided.in_review) == {"L"}  # only the leads being merged are told


def test_a_contact_nobody_holds_the_email_of_is_left_alone() -> None:
    decided = match_people(
        [contact(C1, "zed@x.com")],
        {"L": [hs("1", "ann@x.com")]},
        {},
        leads={"L"},
        identity_field="email",
    )
    assert (decided.attached, decided.links, decided.reviews) == ({}, [], [])
