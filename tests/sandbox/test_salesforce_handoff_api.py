"""What the handoff needs of the sandbox's Salesforce, driven by simple-salesforce over HTTP:
External ID fields and upserts by them (one record and collections of 200, all-or-none, the
`created` flag), unique values, the `Sforce-Auto-Assign` header with the org's assignment rule,
the users and queues records are routed to (queryable, checked as owners), the contacts
converted leads became, and tasks that mark a lead worked."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from leadsync.sandbox import Sandbox
from leadsync.sandbox.salesforce_assignment import DEFAULT_ASSIGNMENT_RULE
from leadsync.sandbox.schema import INACTIVE_USER_ID, INBOUND_QUEUE_ID, SANDBOX_OWNERS
from tests.support import recorded

UPSERT = "composite/sobjects/Lead/Leadsync_Id__c"
NO_RULES = {"Sforce-Auto-Assign": "FALSE"}
DANA, MARCO, PRIYA = (owner[1] for owner in SANDBOX_OWNERS[:3])


def lead(key: str, **values: Any) -> dict[str, Any]:
    return {
        "attributes": {"type": "Lead"},
        "Leadsync_Id__c": key,
        "LastName": f"Person {key}",
        "Company": "Acme",
        "Email": f"{key}@acme.example",
        **values,
    }


def upsert(
    sf: Salesforce, records: list[dict[str, Any]], *, all_or_none: bool = False, **headers: str
) -> list[dict[str, Any]]:
    answer = sf.restful(
        UPSERT,
        method="PATCH",
        json={"allOrNone": all_or_none, "records": records},
        headers={**NO_RULES, **headers},
    )
    assert isinstance(answer, list)
    return answer


def leads_keyed(sf: Salesforce, key: str) -> list[dict[str, Any]]:
    rows = sf.query(f"SELECT Id, OwnerId, Company FROM Lead WHERE Leadsync_Id__c = '{key}'")  # noqa: S608
    return list(rows["records"])


# ------------------------------------------------------------------------------- describe


def test_describe_marks_leadsync_id_an_external_unique_id(salesforce: Salesforce) -> None:
    fields = {f["name"]: f for f in salesforce.Lead.describe()["fields"]}
    assert fields["Leadsync_Id__c"]["externalId"] is True
    assert fields["Leadsync_Id__c"]["unique"] is True
    assert fields["Email"]["externalId"] is False


# ------------------------------------------------------------------------------- upserts


def test_collection_upsert_creates_then_updates_the_same_records(salesforce: Salesforce) -> None:
    first = upsert(salesforce, [lead("k1"), lead("k2")])
    assert [r["success"] for r in first] == [True, True]
    assert [r["created"] for r in first] == [True, True]
    again = upsert(salesforce, [lead("k1", Company="Acme Corp"), lead("k2")])
    assert [r["created"] for r in again] == [False, False]
    assert [r["id"] for r in again] == [r["id"] for r in first]
    assert leads_keyed(salesforce, "k1")[0]["Company"] == "Acme Corp"
    assert len(leads_keyed(salesforce, "K1")) == 1  # one record, found case-insensitively


def test_collection_upsert_results_have_the_recorded_shape_plus_created(
    salesforce: Salesforce,
) -> None:
    (result,) = upsert(salesforce, [lead("shape")])
    assert set(recorded("sobject_composite_sobjects_success_response")[0]) | {"created"} == set(
        result
    )


def test_collection_upsert_reports_each_failure_in_order(salesforce: Salesforce) -> None:
    results = upsert(salesforce, [lead("ok"), lead("bad", Status="Nope"), lead("", Company="X")])
    assert [r["success"] for r in results] == [True, False, False]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert results[1]["created"] is False
    assert results[2]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"


def test_all_or_none_upsert_creates_nothing_when_one_fails(salesforce: Salesforce) -> None:
    results = upsert(salesforce, [lead("a1"), lead("a2", Status="Nope")], all_or_none=True)
    assert [r["success"] for r in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert [r["created"] for r in results] == [False, False]
    assert leads_keyed(salesforce, "a1") == []


def test_upsert_collection_holds_at_most_200_records(salesforce: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        upsert(salesforce, [lead(f"n{i}") for i in range(201)])
    assert refused.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert len(upsert(salesforce, [lead(f"n{i}") for i in range(200)])) == 200


def test_upsert_by_an_unknown_field_is_refused_as_recorded(salesforce: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as refused:
        salesforce.restful(
            "composite/sobjects/Lead/Namez", method="PATCH", json={"records": [lead("x")]}
        )
    assert (
        refused.value.content[0]["errorCode"]
        == recorded("sobject_upsert_error_response")[0]["errorCode"]
    )


def test_upsert_by_a_field_that_is_no_external_id_is_refused(salesforce: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.restful(
            "composite/sobjects/Lead/Email", method="PATCH", json={"records": [lead("x")]}
        )
    assert refused.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_an_upsert_naming_one_external_id_twice_is_refused_whole(salesforce: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest):
        upsert(salesforce, [lead("twice"), lead("TWICE")])
    assert leads_keyed(salesforce, "twice") == []


def test_an_upsert_record_naming_an_id_fails(salesforce: Salesforce) -> None:
    (result,) = upsert(salesforce, [lead("with-id", id="00Q5g0000000001AAA")])
    assert result["success"] is False


def test_single_upsert_creates_with_201_then_updates_with_200(salesforce: Salesforce) -> None:
    key = quote("a+b@x.example", safe="")
    body = {"LastName": "Plus", "Company": "Acme"}
    assert salesforce.Lead.upsert(f"Leadsync_Id__c/{key}", body, headers=NO_RULES) == 201
    assert salesforce.Lead.upsert(f"Leadsync_Id__c/{key}", body, headers=NO_RULES) == 200
    assert len(leads_keyed(salesforce, "a+b@x.example")) == 1


def test_a_unique_field_refuses_a_value_another_record_holds(salesforce: Salesforce) -> None:
    upsert(salesforce, [lead("taken")])
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.Lead.create(
            {"LastName": "Two", "Company": "Acme", "Leadsync_Id__c": "TAKEN"}, headers=NO_RULES
        )
    assert refused.value.content[0]["errorCode"] == "DUPLICATE_VALUE"


# ------------------------------------------------------------------------------- assignment


@pytest.mark.parametrize(
    ("country", "owner"),
    [("US", MARCO), ("Germany", PRIYA), ("Japan", INBOUND_QUEUE_ID), (None, INBOUND_QUEUE_ID)],
)
def test_without_the_header_the_active_assignment_rule_picks_the_owner(
    salesforce: Salesforce, country: str | None, owner: str
) -> None:
    created = salesforce.Lead.create(
        {"LastName": "Rule", "Company": "Acme", "Country": country, "OwnerId": DANA}
    )
    assert salesforce.Lead.get(created["id"])["OwnerId"] == owner


def test_sforce_auto_assign_false_keeps_the_owner_the_request_gave(salesforce: Salesforce) -> None:
    (result,) = upsert(salesforce, [lead("mine", Country="US", OwnerId=DANA)])
    assert salesforce.Lead.get(result["id"])["OwnerId"] == DANA


def test_sforce_auto_assign_with_the_rules_id_applies_it(salesforce: Salesforce) -> None:
    rule = DEFAULT_ASSIGNMENT_RULE.rule_id
    (result,) = upsert(
        salesforce, [lead("ruled", Country="Canada", OwnerId=DANA)], **{"Sforce-Auto-Assign": rule}
    )
    assert salesforce.Lead.get(result["id"])["OwnerId"] == MARCO


def test_a_malformed_assignment_rule_id_is_refused(salesforce: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        upsert(salesforce, [lead("x")], **{"Sforce-Auto-Assign": "maybe"})
    assert refused.value.content[0]["errorCode"] == "MALFORMED_ID"


def test_an_org_without_an_active_rule_keeps_the_given_owner(
    sandbox: Sandbox, salesforce: Salesforce
) -> None:
    sandbox.salesforce.settings = type(sandbox.salesforce.settings)(assignment_rule=None)
    created = salesforce.Lead.create({"LastName": "N", "Company": "A", "OwnerId": PRIYA})
    assert salesforce.Lead.get(created["id"])["OwnerId"] == PRIYA


# ------------------------------------------------------------------------------- owners


def test_users_and_queues_are_queryable(salesforce: Salesforce) -> None:
    users = salesforce.query("SELECT Id, Name FROM User WHERE IsActive = true")["records"]
    assert {u["Id"] for u in users} == {owner[1] for owner in SANDBOX_OWNERS}
    queues = salesforce.query("SELECT Id, DeveloperName FROM Group WHERE Type = 'Queue'")
    assert [(q["Id"], q["DeveloperName"]) for q in queues["records"]] == [
        (INBOUND_QUEUE_ID, "Inbound_Leads")
    ]


@pytest.mark.parametrize(
    ("owner", "code"),
    [
        ("0055g0000000999AAA", "INVALID_CROSS_REFERENCE_KEY"),
        (INACTIVE_USER_ID, "INACTIVE_OWNER_OR_USER"),
    ],
)
def test_an_owner_who_is_no_active_user_is_refused(
    salesforce: Salesforce, owner: str, code: str
) -> None:
    (result,) = upsert(salesforce, [lead("owned", OwnerId=owner)])
    assert result["success"] is False
    assert result["errors"][0]["statusCode"] == code


def test_a_queue_may_own_a_lead_but_not_an_opportunity(salesforce: Salesforce) -> None:
    (result,) = upsert(salesforce, [lead("queued", OwnerId=INBOUND_QUEUE_ID)])
    assert result["success"] is True
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.Opportunity.create(
            {
                "Name": "Deal",
                "StageName": "Prospecting",
                "CloseDate": "2026-12-01",
                "OwnerId": INBOUND_QUEUE_ID,
            }
        )
    assert refused.value.content[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


# ------------------------------------------------------------------------------- contacts, tasks


def test_converted_leads_have_their_contacts(salesforce: Salesforce) -> None:
    converted = salesforce.query(
        "SELECT ConvertedContactId, Email FROM Lead WHERE IsConverted = true AND Email != null"
    )["records"]
    assert converted
    first = converted[0]
    contact = salesforce.Contact.get(first["ConvertedContactId"])
    assert contact["Email"] == first["Email"]


def test_a_task_on_a_lead_sets_its_last_activity_and_moves_its_stamp(
    salesforce: Salesforce,
) -> None:
    (result,) = upsert(salesforce, [lead("worked")])
    before = salesforce.Lead.get(result["id"])
    assert before["LastActivityDate"] is None
    salesforce.Task.create({"WhoId": result["id"], "Subject": "Call", "ActivityDate": "2026-12-02"})
    after = salesforce.Lead.get(result["id"])
    assert after["LastActivityDate"] == "2026-12-02"
    assert after["SystemModstamp"] >= before["SystemModstamp"]
