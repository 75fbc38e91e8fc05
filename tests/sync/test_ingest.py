"""Ingest: CRM record -> Snapshot through the shipped mapping, quarantine, echo-aware times."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from leadsync.connectors.base import CrmRecord
from leadsync.mapping.fields import FieldMap, load_mapping
from leadsync.sync.ingest import (
    QuarantineError,
    fields_to_pull,
    own_values,
    same_value,
    to_snapshot,
)
from leadsync.sync.model import FieldChoice, Snapshot

EXAMPLE = Path(__file__).resolve().parents[2] / "leadsync" / "examples" / "mapping.toml"
MAPPING: FieldMap = load_mapping(EXAMPLE)

BEFORE = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)
EARLIER = datetime(2024, 4, 30, 9, 0, tzinfo=UTC)
NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def hubspot(fields: dict[str, Any], *, deleted: bool = False) -> CrmRecord:
    return CrmRecord("hubspot", "1001", NOW, {"email": "ada@example.com", **fields}, deleted)


def salesforce(fields: dict[str, Any]) -> CrmRecord:
    return CrmRecord(
        "salesforce", "00Q5g00000000001AAA", NOW, {"Email": "ada@example.com", **fields}
    )


def snapshot_of(record: CrmRecord, **kwargs: Any) -> Snapshot:
    return to_snapshot(
        record, MAPPING, previous=kwargs.get("previous"), expected=kwargs.get("expected")
    )


# ------------------------------------------------------------------------------- what is read


def test_reads_only_the_pulled_lead_object_fields_of_the_records_crm() -> None:
    record = salesforce(
        {
            "FirstName": " Ada ",
            "NumberOfEmployees": 120,
            "StageName": "Closed Won",  # an Opportunity field: the engine supplies those
            "firstname": "Not Salesforce's",  # a HubSpot property name: not read here
            "Leadsync_Score__c": 60,  # a write-back target, not a canonical field
        }
    )
    snapshot = snapshot_of(record)
    assert snapshot.canonical == {"email": "ada@example.com", "first_name": "Ada", "employees": 120}
    assert snapshot.raw == record.fields  # raw stays as the CRM sent it, for the plan


def test_a_field_the_record_lacks_stays_absent_while_a_blank_one_is_held_as_blank() -> None:
    snapshot = snapshot_of(hubspot({"phone": "   "}))
    assert "phone" in snapshot.canonical
    assert snapshot.canonical["phone"] is None
    assert "company" not in snapshot.canonical
    assert "company" not in snapshot.changed_at


def test_a_deleted_record_is_flagged_not_quarantined_and_keeps_its_link_and_times() -> None:
    previous = Snapshot("hubspot", "1001", EARLIER, {}, {"email": "ada@example.com"},
                        {"email": BEFORE}, lead_id="L1")  # fmt: skip
    record = CrmRecord("hubspot", "1001", NOW, {"email": ""}, deleted=True)
    snapshot = snapshot_of(record, previous=previous)
    assert snapshot.deleted
    assert snapshot.lead_id == "L1"
    assert snapshot.changed_at == {"email": BEFORE}


def test_the_previous_link_is_carried_to_the_new_snapshot() -> None:
    linked = replace(snapshot_of(hubspot({})), lead_id="L7")
    assert snapshot_of(hubspot({"phone": "1"}), previous=linked).lead_id == "L7"


def test_fields_to_pull_name_what_mapping_identity_and_plan_need() -> None:
    hubspot_fields = fields_to_pull(MAPPING, "hubspot")
    salesforce_fields = fields_to_pull(MAPPING, "salesforce")
    assert {
        "email",
        "numemployees",
        "leadsync_score",
        "salesforceleadid",
        "salesforcecontactid",
    } <= set(hubspot_fields)
    assert {"Email", "Leadsync_Stage__c", "ConvertedContactId", "IsConverted"} <= set(
        salesforce_fields
    )
    assert "StageName" not in salesforce_fields  # an Opportunity field: pulled apart
    assert len(hubspot_fields) == len(set(hubspot_fields))


# ------------------------------------------------------------------------------- quarantine


@pytest.mark.parametrize(
    ("record", "reasons"),
    [
        (
            CrmRecord("hubspot", "1", NOW, {"firstname": "Ada"}),
            ["no email: hubspot.email is blank or missing"],
        ),
        (hubspot({"email": "   "}), ["no email: hubspot.email is blank or missing"]),
        (salesforce({"Email": None}), ["no email: salesforce.Email is blank or missing"]),
        (hubspot({"email": "ada@"}), ["invalid email 'ada@' in hubspot.email"]),
        (
            hubspot({"email": "ada.example.com"}),
            ["invalid email 'ada.example.com' in hubspot.email"],
        ),
        (hubspot({"email": "a@b"}), ["invalid email 'a@b' in hubspot.email"]),
        (
            hubspot({"email": "ada lovelace@example.com"}),
            ["invalid email 'ada lovelace@example.com'"],
        ),
        (hubspot({"email": "ada@@example.com"}), ["invalid email 'ada@@example.com'"]),
        (hubspot({"email": "ada@example..com"}), ["invalid email 'ada@example..com'"]),
        (
            hubspot({"numemployees": "7-9"}),
            [
                "cannot read employees (hubspot.numemployees): not listed in its ranges "
                "(value '7-9')"
            ],
        ),
        (
            salesforce({"AnnualRevenue": "lots"}),
            [
                "cannot read annual_revenue (salesforce.AnnualRevenue): "
                "cannot read it as a number (value 'lots')"
            ],
        ),
        (
            hubspot({"email": "ada@", "hs_analytics_source": "CARRIER_PIGEON"}),
            ["invalid email 'ada@'", "cannot read lead_source (hubspot.hs_analytics_source)"],
        ),
    ],
)
def test_records_leadsync_cannot_use_are_quarantined_with_every_reason(
    record: CrmRecord, reasons: list[str]
) -> None:
    with pytest.raises(QuarantineError) as raised:
        snapshot_of(record)
    error = raised.value
    assert (error.crm, error.record_id) == (record.crm, record.id)
    assert len(error.reasons) == len(reasons)
    for found, wanted in zip(error.reasons, reasons, strict=True):
        assert found.startswith(wanted)
    assert error.reason == "; ".join(error.reasons)


@pytest.mark.parametrize(
    "email",
    ["ada@example.com", "  Ada.Lovelace@Example.COM ", "ada+crm@mail.example.co.uk", "o'neil@x.io"],
)
def test_usable_emails_pass_and_are_held_trimmed_and_lower_case(email: str) -> None:
    snapshot = snapshot_of(hubspot({"email": email}))
    assert snapshot.canonical["email"] == email.strip().lower()


# ------------------------------------------------------------------------------- change times


def previous_hubspot(canonical: dict[str, Any], changed_at: dict[str, datetime]) -> Snapshot:
    return Snapshot(
        "hubspot", "1001", EARLIER, {}, {"email": "ada@example.com", **canonical}, changed_at
    )


@pytest.mark.parametrize(
    ("case", "before", "now_raw", "expected", "changed_at"),
    [
        # (previous canonical, new raw, what leadsync wrote last, the phone's change time)
        ("unchanged keeps its time", "555-1", "555-1", None, BEFORE),
        ("unchanged in meaning keeps its time", "555-1", "  555-1 ", None, BEFORE),
        ("a person's change takes the record's time", "555-1", "555-2", None, NOW),
        ("leadsync's own write is an echo", "555-1", "555-2", "555-2", BEFORE),
        ("an echo compares through the binding", "555-1", " 555-2", "555-2 ", BEFORE),
        ("a value other than leadsync's is a person's", "555-1", "555-3", "555-2", NOW),
        ("a value cleared by a person is a change", "555-1", "", None, NOW),
    ],
)
def test_change_times_count_people_not_leadsyncs_echo(
    case: str, before: str, now_raw: str, expected: str | None, changed_at: datetime
) -> None:
    previous = previous_hubspot({"phone": before}, {"phone": BEFORE, "email": BEFORE})
    written = {"phone": expected} if expected is not None else None
    snapshot = snapshot_of(hubspot({"phone": now_raw}), previous=previous, expected=written)
    assert snapshot.changed_at["phone"] == changed_at, case
    assert snapshot.changed_at["email"] == BEFORE


@pytest.mark.parametrize(
    ("crm_field", "raw", "written", "canonical_before"),
    [
        ("annualrevenue", "100.0", "100", 50.0),  # HubSpot number text, differently formatted
        ("numemployees", " 50-100", "50-100", 3),  # a range, padded
    ],
)
def test_echo_detection_ignores_formatting(
    crm_field: str, raw: str, written: str, canonical_before: Any
) -> None:
    name = {"annualrevenue": "annual_revenue", "numemployees": "employees"}[crm_field]
    previous = previous_hubspot({name: canonical_before}, {name: BEFORE})
    snapshot = snapshot_of(
        hubspot({crm_field: raw}), previous=previous, expected={crm_field: written}
    )
    assert snapshot.changed_at[name] == BEFORE


def test_salesforce_echo_of_a_number_written_as_float_reads_back_as_int() -> None:
    canonical = {"email": "ada@example.com", "annual_revenue": 5.0}
    previous = Snapshot(
        "salesforce", "00Q5g00000000001AAA", EARLIER, {}, canonical, {"annual_revenue": BEFORE}
    )
    record = salesforce({"AnnualRevenue": 100})
    snapshot = snapshot_of(record, previous=previous, expected={"AnnualRevenue": 100.0})
    assert snapshot.changed_at["annual_revenue"] == BEFORE


def test_a_first_snapshot_dates_every_field_to_the_record_unless_it_is_an_echo() -> None:
    snapshot = snapshot_of(
        hubspot({"phone": "555-1", "company": "Acme"}), expected={"company": "Acme"}
    )
    assert snapshot.changed_at == {
        "email": NOW,
        "phone": NOW,
    }  # no person is known to have set company


def test_a_first_snapshot_dates_no_blank_field_nobody_is_known_to_have_cleared() -> None:
    # A blank timed at the record's stamp would win a most_recent field over the other CRM's
    # value, and blank it there on a first sync.
    snapshot = snapshot_of(hubspot({"phone": "  ", "company": None, "jobtitle": "CTO"}))
    assert snapshot.changed_at == {"email": NOW, "title": NOW}
    assert snapshot.canonical["phone"] is None


def test_a_field_read_for_the_first_time_blank_has_no_change_time() -> None:
    # The mapping newly pulls phone (an edit, then a backfill): the records stored before hold
    # no phone at all, and a blank read now is nobody's clearing of it either.
    previous = previous_hubspot({}, {"email": BEFORE})
    snapshot = snapshot_of(hubspot({"phone": "", "jobtitle": "CTO"}), previous=previous)
    assert snapshot.changed_at == {"email": BEFORE, "title": NOW}


@pytest.mark.parametrize(
    ("field", "crm", "one", "other", "same"),
    [
        # Equal raw values (read once): readable, unreadable, blank, numbers, flags.
        ("employees", "hubspot", "1-5", "1-5", True),
        ("employees", "hubspot", "junk", "junk", True),
        ("email", "hubspot", None, None, True),
        ("employees", "salesforce", 5, 5, True),
        ("email", "hubspot", "ada@example.com", "ada@example.com", True),
        # Different raw values: compared as read.
        ("email", "hubspot", " Ada@Example.com", "ada@example.com", True),
        ("email", "hubspot", None, "", True),
        ("employees", "hubspot", "1-5", "5-25", False),
        ("employees", "hubspot", "1-5", "junk", False),
        ("employees", "salesforce", 5, 5.0, True),
        ("employees", "salesforce", 5, "5", True),
        ("employees", "salesforce", 5, 6, False),
    ],
)
def test_raw_values_are_the_same_when_they_read_as_the_same_canonical_value(
    field: str, crm: str, one: Any, other: Any, same: bool
) -> None:
    assert same_value(MAPPING.fields[field], crm, one, other) is same
    assert same_value(MAPPING.fields[field], crm, other, one) is same


def test_own_values_are_the_choices_taken_from_a_field_holding_leadsyncs_write() -> None:
    choices = {
        "company": FieldChoice("Acme", "salesforce", "prefer_salesforce", "salesforce: ..."),
        "email": FieldChoice("a@b.co", "salesforce", "prefer_salesforce", "salesforce: ..."),
        "first_name": FieldChoice("Ada", None, "prefer_salesforce", "previous value"),
        "title": FieldChoice("CTO", "hubspot", "prefer_salesforce", "hubspot: ..."),
        # Read from the Opportunity, whose StageName leadsync never writes.
        "opportunity_stage": FieldChoice("Won", "salesforce", "prefer_salesforce", "..."),
    }
    own = {
        "salesforce": frozenset({"Company", "FirstName", "StageName"}),
        "hubspot": frozenset({"email"}),
    }

    assert own_values(MAPPING, choices, own) == {"company"}
    assert own_values(MAPPING, choices, {"hubspot": frozenset({"jobtitle"})}) == {"title"}
    nothing_written = {"salesforce": frozenset[str](), "hubspot": frozenset[str]()}
    assert own_values(MAPPING, choices, nothing_written) == set()
