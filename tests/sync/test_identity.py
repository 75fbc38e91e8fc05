"""Identity: own link, then cross-reference, then email; ambiguity goes to review, never merged."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from leadsync.sandbox.ids import case_suffix, salesforce_id
from leadsync.sync.identity import (
    SALESFORCE_CONTACT,
    SALESFORCE_LEAD,
    CrossRef,
    InMemoryIdentityIndex,
    cross_reference_fields,
    cross_references,
    eighteen_character_id,
    lookups_for,
    match,
    match_batch,
    normalise_email,
)
from leadsync.sync.model import Match, MatchKind, Snapshot

NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
# Well-formed 18-character ids, as the sandbox makes them (its own suffix code, not ours).
LEAD_X = salesforce_id("00Q", 7)
LEAD_Y = salesforce_id("00Q", 3_000_001)
CONTACT_C = salesforce_id("003", 42)


def hs(record_id: str, email: str | None = None, **raw: Any) -> Snapshot:
    return Snapshot("hubspot", record_id, NOW, raw, {"email": email})


def sf(record_id: str, email: str | None = None, **raw: Any) -> Snapshot:
    return Snapshot("salesforce", record_id, NOW, raw, {"email": email})


def index_of(*links: tuple[Snapshot, str]) -> InMemoryIdentityIndex:
    index = InMemoryIdentityIndex(identity_field="email")
    for snapshot, lead_id in links:
        index.link(snapshot, lead_id)
    return index


def match_one(snapshot: Snapshot, index: InMemoryIdentityIndex) -> Match | None:
    return match(snapshot, index, identity_field="email")


@dataclass(frozen=True)
class Case:
    name: str
    record: Snapshot
    links: tuple[tuple[Snapshot, str], ...]
    kind: MatchKind
    lead_id: str | None = None
    candidates: tuple[str, ...] = ()


CASES = [
    Case(
        "own link first, whatever the email says",
        hs("1001", "bea@x.com"),
        ((hs("1001", "ada@x.com"), "L1"), (sf(LEAD_Y, "bea@x.com"), "L2")),
        MatchKind.LINKED,
        "L1",
    ),
    Case(
        "HubSpot's salesforceleadid names a linked lead, before the email",
        hs("1001", "bea@x.com", salesforceleadid=LEAD_X),
        ((sf(LEAD_X, "ada@x.com"), "L1"), (sf(LEAD_Y, "bea@x.com"), "L2")),
        MatchKind.CROSS_REFERENCE,
        "L1",
    ),
    Case(
        "a Salesforce lead named by a linked HubSpot contact",
        sf(LEAD_X, "other@x.com"),
        ((hs("1001", "ada@x.com", salesforceleadid=LEAD_X), "L1"),),
        MatchKind.CROSS_REFERENCE,
        "L1",
    ),
    Case(
        "a 15-character salesforceleadid names the same lead",
        hs("1001", "ada@x.com", salesforceleadid=LEAD_X[:15]),
        ((sf(LEAD_X, "ada@x.com"), "L1"),),
        MatchKind.CROSS_REFERENCE,
        "L1",
    ),
    Case(
        "salesforcecontactid names the contact a linked lead converted into",
        hs("1001", "new@x.com", salesforcecontactid=CONTACT_C),
        ((sf(LEAD_X, "ada@x.com", IsConverted=True, ConvertedContactId=CONTACT_C), "L1"),),
        MatchKind.CROSS_REFERENCE,
        "L1",
    ),
    Case(
        "references that name two leads go to review",
        hs("1001", "ada@x.com", salesforceleadid=LEAD_X, salesforcecontactid=CONTACT_C),
        (
            (sf(LEAD_X, "ada@x.com"), "L2"),
            (sf(LEAD_Y, "ada@x.com", ConvertedContactId=CONTACT_C), "L1"),
        ),
        MatchKind.REVIEW,
        candidates=("L1", "L2"),
    ),
    Case(
        "a reference to a lead that has another HubSpot contact is a duplicate",
        hs("1002", "ada@x.com", salesforceleadid=LEAD_X),
        ((sf(LEAD_X, "ada@x.com"), "L1"), (hs("1001", "ada@x.com"), "L1")),
        MatchKind.REVIEW,
        candidates=("L1",),
    ),
    Case(
        "one lead with the email, trimmed and lower-cased",
        hs("1001", "  Ada@X.com "),
        ((sf(LEAD_X, "ada@x.com"), "L1"),),
        MatchKind.EMAIL,
        "L1",
    ),
    Case(
        "several leads with the email go to review",
        hs("1001", "ada@x.com"),
        ((sf(LEAD_Y, "ada@x.com"), "L2"), (sf(LEAD_X, "ada@x.com"), "L1")),
        MatchKind.REVIEW,
        candidates=("L1", "L2"),
    ),
    Case(
        "a second Salesforce lead with a lead's email is a duplicate, not merged",
        sf(LEAD_Y, "ada@x.com"),
        ((sf(LEAD_X, "ada@x.com"), "L1"), (hs("1001", "ada@x.com"), "L1")),
        MatchKind.REVIEW,
        candidates=("L1",),
    ),
    Case(
        "a deleted record of the lead is no duplicate",
        hs("1002", "ada@x.com"),
        ((sf(LEAD_X, "ada@x.com"), "L1"), (replace(hs("1001", "ada@x.com"), deleted=True), "L1")),
        MatchKind.EMAIL,
        "L1",
    ),
    Case(
        "dots and plus tags are part of the address",
        hs("1001", "a.da+news@x.com"),
        ((sf(LEAD_X, "ada@x.com"), "L1"),),
        MatchKind.NEW,
    ),
    Case("nobody like it", hs("1001", "ada@x.com"), (), MatchKind.NEW),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_match(case: Case) -> None:
    found = match_one(case.record, index_of(*case.links))
    assert found is not None
    assert (found.kind, found.lead_id, found.candidates) == (
        case.kind,
        case.lead_id,
        case.candidates,
    )
    assert found.reason  # every decision says why


def test_a_converted_salesforce_lead_keeps_its_link() -> None:
    before = sf(LEAD_X, "ada@x.com", IsConverted=False, Status="Working - Contacted")
    index = index_of((before, "L1"), (sf(LEAD_Y, "ada.new@x.com"), "L2"))
    converted = sf(
        LEAD_X,
        "ada.new@x.com",  # the rep corrected the address while converting
        IsConverted=True,
        Status="Closed - Converted",
        ConvertedContactId=CONTACT_C,
    )
    assert converted.record_id == before.record_id  # conversion changes fields, not the Id
    assert match_one(converted, index) == Match(
        MatchKind.LINKED, "L1", reason="linked to L1 before"
    )


def test_a_deleted_record_matches_only_by_its_own_link() -> None:
    index = index_of((sf(LEAD_X, "ada@x.com"), "L1"), (hs("1001", "bea@x.com"), "L2"))
    gone_unlinked = replace(hs("1002", "ada@x.com"), deleted=True)
    gone_linked = replace(hs("1001", "bea@x.com"), deleted=True)
    assert match_one(gone_unlinked, index) is None
    found = match_one(gone_linked, index)
    assert found is not None
    assert (found.kind, found.lead_id) == (MatchKind.LINKED, "L2")


# ------------------------------------------------------------------------------- batches


def counter() -> Iterator[str]:
    return (f"N{number}" for number in itertools.count(1))


def batch(
    snapshots: list[Snapshot], index: InMemoryIdentityIndex | None = None
) -> dict[tuple[str, str], Match]:
    ids = counter()
    return match_batch(
        snapshots,
        index or index_of(),
        identity_field="email",
        new_lead_id=lambda: next(ids),
    )


def summary(
    matches: dict[tuple[str, str], Match],
) -> dict[tuple[str, str], tuple[str, str | None, tuple[str, ...]]]:
    return {
        key: (found.kind.value, found.lead_id, found.candidates) for key, found in matches.items()
    }


def test_two_new_records_of_one_person_in_a_batch_become_one_new_lead() -> None:
    matches = batch([sf(LEAD_X, "ada@x.com"), hs("1001", " ADA@x.com")])
    assert summary(matches) == {
        ("hubspot", "1001"): ("new", "N1", ()),
        ("salesforce", LEAD_X): ("email", "N1", ()),
    }


def test_two_hubspot_contacts_with_one_email_in_a_batch_go_to_review() -> None:
    matches = batch([hs("1002", "ada@x.com"), hs("1001", "ada@x.com"), sf(LEAD_X, "ada@x.com")])
    assert summary(matches) == {
        ("hubspot", "1001"): ("new", "N1", ()),
        ("hubspot", "1002"): ("review", None, ("N1",)),
        ("salesforce", LEAD_X): ("email", "N1", ()),
    }


def test_a_cross_reference_inside_a_batch_links_records_with_different_emails() -> None:
    matches = batch(
        [sf(LEAD_X, "ada@work.com"), hs("1001", "ada@home.com", salesforceleadid=LEAD_X)]
    )
    assert summary(matches) == {
        ("hubspot", "1001"): ("new", "N1", ()),
        ("salesforce", LEAD_X): ("cross_reference", "N1", ()),
    }


def test_a_batch_builds_on_the_stored_index() -> None:
    stored = index_of((sf(LEAD_X, "ada@x.com"), "L1"))
    matches = batch(
        [hs("1001", "ada@x.com"), hs("1002", "ada@x.com"), sf(LEAD_Y, "bea@x.com")], stored
    )
    assert summary(matches) == {
        ("hubspot", "1001"): ("email", "L1", ()),
        ("hubspot", "1002"): ("review", None, ("L1",)),
        ("salesforce", LEAD_Y): ("new", "N1", ()),
    }


def test_a_batch_leaves_out_deleted_records_it_never_linked() -> None:
    matches = batch([replace(hs("1001", "ada@x.com"), deleted=True), sf(LEAD_X, "ada@x.com")])
    assert summary(matches) == {("salesforce", LEAD_X): ("new", "N1", ())}


def test_a_batch_gives_the_same_answer_in_any_order() -> None:
    records = [
        hs("1001", "ada@x.com"),
        hs("1002", "ada@x.com"),
        hs("1003", "cy@x.com", salesforceleadid=LEAD_Y),
        sf(LEAD_X, "ada@x.com"),
        sf(LEAD_Y, "dee@x.com"),
    ]
    answers = {repr(summary(batch(list(order)))) for order in itertools.permutations(records)}
    assert len(answers) == 1


def test_a_batch_refuses_the_same_record_twice() -> None:
    with pytest.raises(ValueError, match="same record twice"):
        batch([hs("1001", "ada@x.com"), hs("1001", "ada@x.com")])


# ------------------------------------------------------------------------------- the pieces


@pytest.mark.parametrize(
    ("value", "normalised"),
    [(" Ada@X.COM\t", "ada@x.com"), ("a.b+c@x.com", "a.b+c@x.com"), ("  ", None), (None, None)],
)
def test_normalise_email_trims_and_lowers_only(value: Any, normalised: str | None) -> None:
    assert normalise_email(value) == normalised


@pytest.mark.parametrize("short", ["00Q5g00000AbCdE", "00Q5g00000abcde", "003ZZZZZZZZZZZZ"])
def test_a_fifteen_character_id_gets_the_suffix_that_encodes_its_case(short: str) -> None:
    # Checked against the sandbox's independent implementation of the same documented rule.
    assert eighteen_character_id(short) == short + case_suffix(short)


def test_an_eighteen_character_id_is_left_as_it_is() -> None:
    assert eighteen_character_id(LEAD_X) == LEAD_X
    assert eighteen_character_id(LEAD_X[:15]) == LEAD_X


def test_cross_references_of_each_crm() -> None:
    assert cross_references(sf(LEAD_X, ConvertedContactId=CONTACT_C)) == {
        CrossRef(SALESFORCE_LEAD, LEAD_X),
        CrossRef(SALESFORCE_CONTACT, CONTACT_C),
    }
    contact = hs(
        "1001", salesforceleadid=f" {LEAD_X} ", salesforcecontactid="", salesforceownerid="005"
    )
    assert cross_references(contact) == {CrossRef(SALESFORCE_LEAD, LEAD_X)}


def test_lookups_name_every_record_and_email_a_batch_asks_about() -> None:
    lookups = lookups_for(
        [hs("1001", " Ada@x.com", salesforceleadid=LEAD_X), sf(LEAD_Y, None)],
        identity_field="email",
    )
    assert lookups.records == {("hubspot", "1001"), ("salesforce", LEAD_X), ("salesforce", LEAD_Y)}
    assert lookups.refs == {CrossRef(SALESFORCE_LEAD, LEAD_X), CrossRef(SALESFORCE_LEAD, LEAD_Y)}
    assert lookups.emails == {"ada@x.com"}


def test_linking_a_record_again_moves_it_and_forgets_its_old_email() -> None:
    index = index_of((hs("1001", "ada@x.com", salesforceleadid=LEAD_X), "L1"))
    index.link(hs("1001", "bea@x.com"), "L2")
    assert index.lead_for("hubspot", "1001") == "L2"
    assert index.leads_with_email("ada@x.com") == []
    assert index.leads_with_email("bea@x.com") == ["L2"]
    assert index.leads_for_crossref("hubspot", CrossRef(SALESFORCE_LEAD, LEAD_X)) == []
    assert index.record_ids("L1", "hubspot") == []


def test_an_index_of_stored_records_answers_like_one_built_link_by_link() -> None:
    records = {"L1": [sf(LEAD_X, "ada@x.com")], "L2": [hs("1001", "bea@x.com")]}
    index = InMemoryIdentityIndex.of(records, identity_field="email")
    assert index.lead_for("salesforce", LEAD_X) == "L1"
    assert index.leads_with_email("bea@x.com") == ["L2"]


@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_a_record_holding_only_its_cross_reference_fields_names_what_the_whole_one_does(
    crm: str,
) -> None:
    # Grouping a first sync's records reads only these fields of each (Store.identity_snapshots).
    named = salesforce_id("003", 7)
    whole = {
        "hubspot": {"salesforceleadid": salesforce_id("00Q", 1)[:15], "salesforcecontactid": named},
        "salesforce": {"ConvertedContactId": named, "ConvertedOpportunityId": "006x"},
    }[crm]
    at = datetime(2024, 1, 1, tzinfo=UTC)
    record = Snapshot(crm, salesforce_id("00Q", 2), at, {**whole, "Email": "a@x.com"}, {})
    fields = cross_reference_fields(crm)
    alone = replace(record, raw={name: record.raw[name] for name in fields if name in record.raw})
    assert cross_references(alone) == cross_references(record)
    assert len(cross_references(record)) == 2  # HubSpot's two fields; a lead's Id and its Contact
