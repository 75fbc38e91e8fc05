"""The sandbox's Salesforce Contacts and Opportunities through the real simple-salesforce:
describe, SOQL by SystemModstamp, collections across object types, deletes kept for queryAll,
lead conversion into a Contact (and an Opportunity), and opportunities moved by a rep."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceMalformedRequest

from leadsync.sandbox import Sandbox
from leadsync.sandbox.salesforce_conversion import CONTACT_FROM_LEAD

WRITEBACK = (
    "Leadsync_Score__c",
    "Leadsync_Fit_Score__c",
    "Leadsync_Engagement_Score__c",
    "Leadsync_Grade__c",
    "Leadsync_Score_Reasons__c",
    "Leadsync_Model_Version__c",
    "Leadsync_Sla_Breaches__c",
    "Leadsync_Stage__c",
)


def _control(control: requests.Session, method: str, path: str, body: Any = None) -> Any:
    return control.request(method, f"{control.base}/_sandbox/{path}", json=body)  # type: ignore[attr-defined]


def _converted(control: requests.Session, lead_id: str, **body: Any) -> dict[str, Any]:
    answer = _control(control, "POST", f"salesforce/leads/{lead_id}/convert", body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _open_lead_with_email(sf: Salesforce) -> dict[str, Any]:
    rows = sf.query(
        "SELECT Id, Email, FirstName, LastName, Title, LeadSource, OwnerId, Country FROM Lead "
        "WHERE IsConverted = false AND Email LIKE '%.com' ORDER BY Id LIMIT 1"
    )
    return dict(rows["records"][0])


def test_contact_is_described_with_leadsync_fields(salesforce: Salesforce) -> None:
    names = [o["name"] for o in salesforce.describe()["sobjects"]]
    assert "Contact" in names
    described = salesforce.Contact.describe()
    assert described["keyPrefix"] == "003"
    fields = {f["name"]: f for f in described["fields"]}
    for name in (*WRITEBACK, "Email", "LastName", "MailingCountry", "AccountId"):
        assert name in fields
    assert fields["LastName"]["nillable"] is False
    assert fields["Leadsync_Stage__c"]["restrictedPicklist"] is True
    assert "Company" not in fields
    assert "Status" not in fields


def test_seeded_converted_leads_have_their_contacts(
    salesforce: Salesforce, sandbox: Sandbox
) -> None:
    leads = salesforce.query_all(
        "SELECT Id, Email, LastName, ConvertedContactId FROM Lead WHERE IsConverted = true"
    )["records"]
    assert leads, "the seed converts some leads"
    contacts = {
        row["Id"]: row
        for row in salesforce.query_all("SELECT Id, Email, LastName FROM Contact")["records"]
    }
    for lead in leads:
        contact = contacts[lead["ConvertedContactId"]]
        assert (contact["Email"], contact["LastName"]) == (lead["Email"], lead["LastName"])
    assert len(contacts) == len(leads)


def test_contacts_page_in_system_modstamp_order(salesforce: Salesforce) -> None:
    rows = salesforce.query_all(
        "SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp >= 2020-01-01T00:00:00Z "
        "ORDER BY SystemModstamp, Id"
    )["records"]
    keys = [(row["SystemModstamp"], row["Id"]) for row in rows]
    assert keys == sorted(keys)
    assert len(keys) > 1


def test_conversion_makes_a_contact_and_freezes_the_lead(
    salesforce: Salesforce, control: requests.Session
) -> None:
    lead = _open_lead_with_email(salesforce)
    converted = _converted(control, lead["Id"], opportunity_stage="Prospecting", amount=25000)
    assert converted["IsConverted"] is True
    assert converted["Status"] == "Closed - Converted"
    today = datetime.now(UTC).date().isoformat()
    assert converted["ConvertedDate"] <= today

    contact = salesforce.Contact.get(converted["ConvertedContactId"])
    for lead_field in ("Email", "FirstName", "LastName", "Title", "LeadSource", "OwnerId"):
        assert contact[CONTACT_FROM_LEAD[lead_field]] == lead[lead_field]
    assert contact["MailingCountry"] == lead["Country"]
    assert contact["AccountId"] == converted["ConvertedAccountId"]
    assert contact["Leadsync_Score__c"] is None  # custom fields travel only when mapped
    opportunity = salesforce.Opportunity.get(converted["ConvertedOpportunityId"])
    assert (opportunity["StageName"], opportunity["Amount"]) == ("Prospecting", 25000.0)
    assert (opportunity["IsClosed"], opportunity["IsWon"]) == (False, False)

    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.Lead.update(lead["Id"], {"Leadsync_Score__c": 5})
    assert refused.value.content[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    again = _control(control, "POST", f"salesforce/leads/{lead['Id']}/convert", {})
    assert again.status_code == 400
    assert "converted already" in again.json()["message"]


def test_one_collection_updates_a_contact_and_refuses_its_frozen_lead(
    salesforce: Salesforce, control: requests.Session
) -> None:
    lead = _open_lead_with_email(salesforce)
    contact_id = _converted(control, lead["Id"])["ConvertedContactId"]
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Contact"}, "id": contact_id, "Leadsync_Score__c": 71},
            {"attributes": {"type": "Lead"}, "id": lead["Id"], "Leadsync_Score__c": 71},
            {"attributes": {"type": "Contact"}, "id": contact_id[:15], "Leadsync_Stage__c": "x"},
        ],
    }
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.restful("composite/sobjects", method="PATCH", json=body)
    assert refused.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    body["records"] = body["records"][:2]
    contact_result, lead_result = salesforce.restful(
        "composite/sobjects", method="PATCH", json=body
    )
    assert contact_result == {"id": contact_id, "success": True, "errors": []}
    assert lead_result["errors"][0]["statusCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert salesforce.Contact.get(contact_id)["Leadsync_Score__c"] == 71.0

    bad = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Contact"}, "id": contact_id, "Leadsync_Stage__c": "x"}
        ],
    }
    (result,) = salesforce.restful("composite/sobjects", method="PATCH", json=bad)
    assert result["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_deleted_contacts_stay_in_query_all(
    salesforce: Salesforce, control: requests.Session
) -> None:
    lead = _open_lead_with_email(salesforce)
    contact_id = _converted(control, lead["Id"])["ConvertedContactId"]
    salesforce.Contact.delete(contact_id)
    soql = format_soql("SELECT Id, IsDeleted FROM Contact WHERE Id = {}", contact_id)
    assert salesforce.query(soql)["totalSize"] == 0
    (row,) = salesforce.query_all(soql, include_deleted=True)["records"]
    assert row["IsDeleted"] is True
    listed = _control(control, "GET", "salesforce/contacts?deleted=true").json()["records"]
    assert contact_id in {record["Id"] for record in listed}


@pytest.mark.parametrize(
    ("stage", "closed", "won", "probability"),
    [
        ("Negotiation/Review", False, False, 90.0),
        ("Closed Won", True, True, 100.0),
        ("Closed Lost", True, False, 0.0),
    ],
)
def test_a_rep_moves_an_opportunity(
    salesforce: Salesforce,
    control: requests.Session,
    stage: str,
    closed: bool,
    won: bool,
    probability: float,
) -> None:
    lead = _open_lead_with_email(salesforce)
    opportunity_id = _converted(control, lead["Id"], opportunity_stage="Qualification")[
        "ConvertedOpportunityId"
    ]
    before = salesforce.Opportunity.get(opportunity_id)["SystemModstamp"]
    fields = {"StageName": stage, "Amount": 48000, "CloseDate": "2026-03-31"}
    answer = _control(
        control, "PATCH", f"salesforce/opportunities/{opportunity_id}", {"fields": fields}
    )
    assert answer.status_code == 200, answer.text
    opportunity = salesforce.Opportunity.get(opportunity_id)
    assert opportunity["StageName"] == stage
    assert (opportunity["IsClosed"], opportunity["IsWon"]) == (closed, won)
    assert opportunity["Probability"] == probability
    assert (opportunity["Amount"], opportunity["CloseDate"]) == (48000.0, "2026-03-31")
    assert opportunity["SystemModstamp"] >= before


def test_an_opportunity_move_is_validated(
    salesforce: Salesforce, control: requests.Session
) -> None:
    opportunity_id = salesforce.query("SELECT Id FROM Opportunity LIMIT 1")["records"][0]["Id"]
    bad_stage = {"fields": {"StageName": "Won-ish"}}
    answer = _control(control, "PATCH", f"salesforce/opportunities/{opportunity_id}", bad_stage)
    assert answer.status_code == 400
    assert answer.json()[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    read_only = {"fields": {"IsWon": True}}
    answer = _control(control, "PATCH", f"salesforce/opportunities/{opportunity_id}", read_only)
    assert answer.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    missing = _control(control, "PATCH", "salesforce/opportunities/0065g00000009999AAA", bad_stage)
    assert missing.status_code == 404


def test_a_collection_of_more_than_ten_type_runs_is_refused(salesforce: Salesforce) -> None:
    leads = salesforce.query("SELECT Id FROM Lead WHERE IsConverted = false LIMIT 6")["records"]
    contacts = salesforce.query("SELECT Id FROM Contact LIMIT 5")["records"]
    assert (len(leads), len(contacts)) == (6, 5)
    mixed: list[dict[str, Any]] = []  # lead, contact, lead, ..., lead: 11 runs of one type
    for number, lead in enumerate(leads):
        mixed.append({"attributes": {"type": "Lead"}, "id": lead["Id"], "Title": "x"})
        if number < len(contacts):
            contact = contacts[number]
            mixed.append({"attributes": {"type": "Contact"}, "id": contact["Id"], "Title": "y"})
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.restful("composite/sobjects", method="PATCH", json={"records": mixed})
    assert "more than 10 chunks" in refused.value.content[0]["message"]
    grouped = sorted(mixed, key=lambda record: record["attributes"]["type"])
    results = salesforce.restful("composite/sobjects", method="PATCH", json={"records": grouped})
    assert all(result["success"] for result in results)


# ------------------------------------------------------------------ opportunity contact roles

ROLES = "SELECT Id, OpportunityId, ContactId, Role, IsPrimary, SystemModstamp "


def test_opportunity_contact_role_is_described(salesforce: Salesforce) -> None:
    names = [o["name"] for o in salesforce.describe()["sobjects"]]
    assert "OpportunityContactRole" in names
    described = salesforce.OpportunityContactRole.describe()
    assert described["keyPrefix"] == "00K"
    fields = {f["name"]: f for f in described["fields"]}
    assert fields["OpportunityId"]["referenceTo"] == ["Opportunity"]
    assert fields["OpportunityId"]["updateable"] is False
    assert fields["ContactId"]["referenceTo"] == ["Contact"]
    assert fields["IsPrimary"]["type"] == "boolean"
    assert "Decision Maker" in [value["value"] for value in fields["Role"]["picklistValues"]]


def test_seeded_conversions_with_an_opportunity_have_its_primary_contact_role(
    salesforce: Salesforce,
) -> None:
    leads = salesforce.query_all(
        "SELECT ConvertedContactId, ConvertedOpportunityId FROM Lead "
        "WHERE IsConverted = true AND ConvertedOpportunityId != null"
    )["records"]
    assert leads, "the seed converts some leads with an opportunity"
    roles = salesforce.query_all(ROLES + "FROM OpportunityContactRole")["records"]
    assert sorted(
        (r["OpportunityId"], r["ContactId"], r["IsPrimary"], r["Role"]) for r in roles
    ) == (
        sorted(
            (lead["ConvertedOpportunityId"], lead["ConvertedContactId"], True, None)
            for lead in leads
        )
    )


def test_conversion_with_an_opportunity_ties_the_contact_to_it_as_primary(
    salesforce: Salesforce, control: requests.Session
) -> None:
    lead = _open_lead_with_email(salesforce)
    converted = _converted(control, lead["Id"], opportunity_stage="Prospecting")
    soql = format_soql(
        ROLES + "FROM OpportunityContactRole WHERE ContactId IN {}",
        [converted["ConvertedContactId"]],
    )
    (role,) = salesforce.query(soql)["records"]
    assert (role["OpportunityId"], role["IsPrimary"], role["Role"]) == (
        converted["ConvertedOpportunityId"],
        True,
        None,
    )
    # Without an opportunity, no role.
    other = salesforce.query(
        "SELECT Id FROM Lead WHERE IsConverted = false AND Email != null ORDER BY Id DESC LIMIT 1"
    )["records"][0]
    contact_id = _converted(control, other["Id"])["ConvertedContactId"]
    soql = format_soql("SELECT Id FROM OpportunityContactRole WHERE ContactId = {}", contact_id)
    assert salesforce.query(soql)["totalSize"] == 0


def test_a_new_primary_role_clears_the_old_one_and_both_changes_are_pulled(
    salesforce: Salesforce, control: requests.Session
) -> None:
    lead = _open_lead_with_email(salesforce)
    converted = _converted(control, lead["Id"], opportunity_stage="Prospecting")
    opportunity_id = converted["ConvertedOpportunityId"]
    soql = format_soql(
        ROLES + "FROM OpportunityContactRole WHERE OpportunityId = {}", opportunity_id
    )
    (first,) = salesforce.query(soql)["records"]
    other = salesforce.Contact.create({"LastName": "Buyer", "Email": "buyer@elsewhere.example"})
    made = salesforce.OpportunityContactRole.create(
        {
            "OpportunityId": opportunity_id,
            "ContactId": other["id"],
            "Role": "Economic Buyer",
            "IsPrimary": True,
        }
    )
    roles = {r["Id"]: r for r in salesforce.query(soql)["records"]}
    assert (roles[made["id"]]["IsPrimary"], roles[first["Id"]]["IsPrimary"]) == (True, False)
    assert roles[first["Id"]]["SystemModstamp"] >= first["SystemModstamp"]


def test_a_contact_role_must_name_a_live_opportunity_and_contact(salesforce: Salesforce) -> None:
    opportunity_id = salesforce.query("SELECT Id FROM Opportunity LIMIT 1")["records"][0]["Id"]
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.OpportunityContactRole.create(
            {"OpportunityId": opportunity_id, "ContactId": "0035g0000000999AAA"}
        )
    assert refused.value.content[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"
    role = salesforce.query("SELECT Id FROM OpportunityContactRole LIMIT 1")["records"][0]
    with pytest.raises(SalesforceMalformedRequest) as fixed:
        salesforce.OpportunityContactRole.update(role["Id"], {"OpportunityId": opportunity_id})
    assert fixed.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


@pytest.mark.parametrize("deleted", ["Opportunity", "Contact"])
def test_a_deleted_opportunity_or_contact_takes_its_contact_roles_with_it(
    salesforce: Salesforce, control: requests.Session, deleted: str
) -> None:
    lead = _open_lead_with_email(salesforce)
    converted = _converted(control, lead["Id"], opportunity_stage="Prospecting")
    soql = format_soql(
        ROLES + "FROM OpportunityContactRole WHERE OpportunityId = {}",
        converted["ConvertedOpportunityId"],
    )
    (role,) = salesforce.query(soql)["records"]
    with_flag = soql.replace("SELECT Id,", "SELECT Id, IsDeleted,", 1)
    gone = converted[f"Converted{deleted}Id"]
    getattr(salesforce, deleted).delete(gone)
    assert salesforce.query(soql)["records"] == []
    # Deleted, not vanished: queryAll shows the role deleted, for an incremental pull to see.
    (seen,) = salesforce.query_all(with_flag, include_deleted=True)["records"]
    assert (seen["Id"], seen["IsDeleted"]) == (role["Id"], True)
