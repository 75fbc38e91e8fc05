"""The standard fields of a real org and portal (issue 15, gap 9): present with real types and
picklists, seeded with plausible values, and kept right on writes."""

from __future__ import annotations

from typing import Any

import pytest
from hubspot import HubSpot
from simple_salesforce import Salesforce

from leadsync.sandbox import Sandbox

LEAD_FIELDS = {
    "Salutation": "picklist",
    "MobilePhone": "phone",
    "Fax": "phone",
    "Street": "textarea",
    "City": "string",
    "State": "string",
    "PostalCode": "string",
    "Country": "string",
    "Phone": "phone",
    "Rating": "picklist",
    "AnnualRevenue": "currency",
    "LeadSource": "picklist",
    "Description": "textarea",
    "HasOptedOutOfEmail": "boolean",
    "DoNotCall": "boolean",
}
OPPORTUNITY_FIELDS = {
    "Probability": "percent",
    "ExpectedRevenue": "currency",
    "Type": "picklist",
    "NextStep": "string",
    "LeadSource": "picklist",
    "ForecastCategoryName": "picklist",
}
CONTACT_PROPERTIES = {
    "address": "string",
    "city": "string",
    "state": "string",
    "zip": "string",
    "country": "string",
    "phone": "string",
    "mobilephone": "string",
    "annualrevenue": "string",
    "hs_persona": "enumeration",
    "hs_language": "enumeration",
    "closedate": "datetime",
}


def described(sf: Salesforce, name: str) -> dict[str, dict[str, Any]]:
    return {field["name"]: field for field in getattr(sf, name).describe()["fields"]}


@pytest.mark.parametrize(
    ("object_name", "expected"), [("Lead", LEAD_FIELDS), ("Opportunity", OPPORTUNITY_FIELDS)]
)
def test_salesforce_objects_carry_the_standard_fields_with_their_types(
    salesforce: Salesforce, object_name: str, expected: dict[str, str]
) -> None:
    fields = described(salesforce, object_name)
    assert {name: fields[name]["type"] for name in expected} == expected


def test_lead_picklists_hold_the_default_values(salesforce: Salesforce) -> None:
    fields = described(salesforce, "Lead")
    values = {name: [p["value"] for p in fields[name]["picklistValues"]] for name in fields}
    assert values["Rating"] == ["Hot", "Warm", "Cold"]
    assert values["Salutation"] == ["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."]
    assert "Partner Referral" in values["LeadSource"]
    assert (fields["City"]["length"], fields["PostalCode"]["length"]) == (40, 20)


def test_hubspot_contacts_carry_the_default_properties(hubspot: HubSpot) -> None:
    properties = {p.name: p for p in hubspot.crm.properties.core_api.get_all("contacts").results}
    assert {name: properties[name].type for name in CONTACT_PROPERTIES} == CONTACT_PROPERTIES
    assert properties["mobilephone"].field_type == "phonenumber"


def test_seeded_records_hold_plausible_values(sandbox: Sandbox) -> None:
    leads = sandbox.salesforce.snapshot("Lead")
    with_city = [lead for lead in leads if lead["City"]]
    assert len(with_city) > len(leads) / 2
    assert all(isinstance(lead["DoNotCall"], bool) for lead in leads)
    assert any(lead["MobilePhone"] for lead in leads)
    contacts = [c["properties"] for c in sandbox.hubspot.snapshot()]
    assert len([c for c in contacts if c.get("city")]) > len(contacts) / 2
    opportunities = sandbox.salesforce.snapshot("Opportunity")
    assert opportunities
    for opportunity in opportunities:
        expected = round(opportunity["Amount"] * opportunity["Probability"] / 100, 2)
        assert opportunity["ExpectedRevenue"] == expected
        assert opportunity["ForecastCategoryName"] in ("Pipeline", "Closed", "Omitted")


def test_a_mapped_city_can_be_written_to_both_crms(
    salesforce: Salesforce, hubspot: HubSpot, sandbox: Sandbox
) -> None:
    lead_id = salesforce.query("SELECT Id FROM Lead WHERE IsConverted = false LIMIT 1")["records"][
        0
    ]["Id"]
    salesforce.Lead.update(lead_id, {"City": "Utrecht", "MobilePhone": "+31 6 1234 5678"})
    assert salesforce.Lead.get(lead_id)["City"] == "Utrecht"
    contact_id = sandbox.hubspot.snapshot()[0]["id"]
    from hubspot.crm.contacts import SimplePublicObjectInput

    hubspot.crm.contacts.basic_api.update(
        contact_id, SimplePublicObjectInput(properties={"city": "Utrecht"})
    )
    assert sandbox.hubspot.contact(int(contact_id)).properties["city"] == "Utrecht"


def test_an_opportunity_stage_change_moves_probability_and_forecast(
    salesforce: Salesforce, sandbox: Sandbox
) -> None:
    open_one = next(o for o in sandbox.salesforce.snapshot("Opportunity") if not o["IsClosed"])
    salesforce.Opportunity.update(open_one["Id"], {"StageName": "Closed Won"})
    after = salesforce.Opportunity.get(open_one["Id"])
    assert (after["Probability"], after["ForecastCategoryName"], after["IsWon"]) == (
        100.0,
        "Closed",
        True,
    )
    assert after["ExpectedRevenue"] == after["Amount"]
