"""The sandbox's Salesforce REST API driven by the real simple-salesforce over loopback HTTP.

Covers SOQL `query`/`queryAll` and their errors, `nextRecordsUrl` paging with `batchSize`,
sObject CRUD, describe, `composite/sobjects`, limits and `Sforce-Limit-Info`, the daily limit,
restricted picklists, converted leads, `SystemModstamp`, deleted records, and injected faults;
and compares the bodies with real recorded Salesforce bodies in tests/fixtures/salesforce.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.util import Usage

from leadsync.connectors.salesforce_routing import RoutingSession
from leadsync.sandbox import SalesforceSettings, Sandbox, SandboxSettings
from leadsync.sandbox.ids import salesforce_id
from leadsync.sandbox.salesforce import DEFAULT_SESSION_TIMEOUT_SECONDS
from leadsync.sandbox.timestamps import salesforce_datetime
from tests.support import FakeClock, recorded

SEED_LEADS = 60
DEFAULT_DAILY_LIMIT = 100_000
API = "/services/data/v59.0"
LEAD_STATUSES = [
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
]
ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"
BAD_PICKLIST = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


# ------------------------------------------------------------------------------------ fixtures


def _plain_session() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


def sandbox_post(control: requests.Session, path: str, body: Any = None) -> Any:
    answer = control.post(f"{control.base}/_sandbox/{path}", json=body)  # type: ignore[attr-defined]
    assert answer.status_code == 200, answer.text
    return answer.json()


def sandbox_leads(control: requests.Session, *, deleted: bool = False) -> list[dict[str, Any]]:
    params = {"deleted": "true"} if deleted else {}
    answer = control.get(f"{control.base}/_sandbox/salesforce/leads", params=params)  # type: ignore[attr-defined]
    answer.raise_for_status()
    return list(answer.json()["records"])


def lead_ids(sf: Salesforce, where: str = "") -> list[str]:
    # SOQL from the tests' own literals, for the sandbox; no SQL database is involved.
    soql = f"SELECT Id FROM Lead {where}".strip()  # noqa: S608
    return [row["Id"] for row in sf.query_all(soql)["records"]]


def first_open_lead(sf: Salesforce) -> str:
    rows = sf.query("SELECT Id FROM Lead WHERE IsConverted = false ORDER BY Id LIMIT 1")
    return str(rows["records"][0]["Id"])


def collection(records: list[dict[str, Any]], *, all_or_none: bool) -> dict[str, Any]:
    return {
        "allOrNone": all_or_none,
        "records": [{"attributes": {"type": "Lead"}, **record} for record in records],
    }


# ------------------------------------------------------------------------------------ SOQL


def _id(number: int) -> str:
    return salesforce_id("00Q", number)


def _known_lead(number: int, **values: Any) -> dict[str, Any]:
    return {
        "Id": _id(number),
        "IsDeleted": False,
        "IsConverted": False,
        "OwnerId": "0055g0000000001AAA",
        "LastModifiedDate": values.get("SystemModstamp"),
        **values,
    }


# Five people with known values; 1 and 2 share one SystemModstamp, 3 has no email or revenue.
KNOWN_LEADS = [
    _known_lead(
        1,
        FirstName="Ada",
        LastName="Lovelace",
        Company="Analytical Engines",
        Email="ada@engines.io",
        NumberOfEmployees=10,
        AnnualRevenue=1_000_000.0,
        Status="Open - Not Contacted",
        Country="UK",
        CreatedDate="2024-01-10T09:00:00.000+0000",
        SystemModstamp="2024-05-01T10:00:00.000+0000",
    ),
    _known_lead(
        2,
        FirstName="Grace",
        LastName="Hopper",
        Company="US Navy",
        Email="grace@navy.mil",
        NumberOfEmployees=500,
        AnnualRevenue=2_500_000.0,
        Status="Working - Contacted",
        Country="US",
        CreatedDate="2024-02-01T12:00:00.000+0000",
        SystemModstamp="2024-05-01T10:00:00.000+0000",
    ),
    _known_lead(
        3,
        FirstName="Alan",
        LastName="Turing",
        Company="Bletchley Park",
        Email=None,
        NumberOfEmployees=50,
        AnnualRevenue=None,
        Status="Closed - Not Converted",
        Country="UK",
        CreatedDate="2024-03-15T08:00:00.000+0000",
        SystemModstamp="2024-05-02T08:30:00.000+0000",
    ),
    _known_lead(
        4,
        FirstName="Katherine",
        LastName="Johnson",
        Company="NASA",
        Email="kj@nasa.gov",
        NumberOfEmployees=5000,
        AnnualRevenue=9_000_000.0,
        Status="Working - Contacted",
        Country="US",
        CreatedDate="2024-04-20T16:00:00.000+0000",
        SystemModstamp="2024-04-30T23:59:59.999+0000",
    ),
    _known_lead(
        5,
        FirstName="Edsger",
        LastName="Dijkstra",
        Company="TU Eindhoven",
        Email="ed@tue.nl",
        NumberOfEmployees=50,
        AnnualRevenue=300_000.0,
        Status="Open - Not Contacted",
        Country="NL",
        CreatedDate="2024-05-01T00:00:00.000+0000",
        SystemModstamp="2024-05-03T12:00:00.000+0000",
    ),
]


@pytest.fixture
def known(sandbox: Sandbox, salesforce: Salesforce) -> Salesforce:
    """The client, with the org holding only KNOWN_LEADS (loaded in-process: CreatedDate and
    SystemModstamp cannot be written through the API)."""
    sandbox.salesforce.load({"Lead": KNOWN_LEADS})
    return salesforce


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Country = 'UK'", {1, 3}),
        ("Country = 'uk'", {1, 3}),  # text compares case-insensitively
        ("Country != 'UK'", {2, 4, 5}),
        ("Country <> 'UK'", {2, 4, 5}),
        ("NumberOfEmployees < 50", {1}),
        ("NumberOfEmployees <= 50", {1, 3, 5}),
        ("NumberOfEmployees > 500", {4}),
        ("NumberOfEmployees >= 500", {2, 4}),
        ("AnnualRevenue > 2000000.5", {2, 4}),
        ("Status IN ('Working - Contacted', 'Closed - Not Converted')", {2, 3, 4}),
        ("Status NOT IN ('Working - Contacted', 'Closed - Not Converted')", {1, 5}),
        ("LastName LIKE 'Ho%'", {2}),
        ("Company LIKE '%park'", {3}),
        ("Email LIKE '%@n_s_.gov'", {4}),
        ("Email = null", {3}),
        ("Email != null", {1, 2, 4, 5}),
        ("AnnualRevenue = null", {3}),
        ("SystemModstamp > 2024-05-01T10:00:00Z", {3, 5}),
        ("SystemModstamp >= 2024-05-01T10:00:00.000+0000", {1, 2, 3, 5}),
        ("SystemModstamp = 2024-05-01T12:00:00+02:00", {1, 2}),
        ("SystemModstamp < 2024-05-01T00:00:00Z", {4}),
        ("CreatedDate <= 2024-02-01T12:00:00Z", {1, 2}),
        ("Country = 'US' AND NumberOfEmployees > 1000", {4}),
        ("Country = 'NL' OR Email = null", {3, 5}),
        ("(Country = 'UK' OR Country = 'NL') AND NumberOfEmployees = 50", {3, 5}),
        ("Country = 'UK' OR (Country = 'US' AND AnnualRevenue > 5000000)", {1, 3, 4}),
        ("NOT Country = 'US'", {1, 3, 5}),
        ("IsConverted = false AND Id = '00Q5g0000000002EAA'", {2}),
        ("Id = '00Q5g0000000002'", {2}),  # a 15-character id literal matches too
        ("Id IN ('00Q5g0000000002', '00Q5g0000000004EAA')", {2, 4}),
    ],
)
def test_query_where_selects_the_matching_leads(
    known: Salesforce, where: str, expected: set[int]
) -> None:
    assert set(lead_ids(known, f"WHERE {where}")) == {_id(n) for n in expected}


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("ORDER BY SystemModstamp, Id", [4, 1, 2, 3, 5]),
        ("ORDER BY SystemModstamp DESC, Id DESC", [5, 3, 2, 1, 4]),
        ("ORDER BY Country ASC, NumberOfEmployees DESC", [5, 3, 1, 4, 2]),
        ("ORDER BY NumberOfEmployees, LastName DESC", [1, 3, 5, 2, 4]),
        ("ORDER BY Email ASC NULLS LAST, Id", [1, 5, 2, 4, 3]),
        ("ORDER BY Email, Id", [3, 1, 5, 2, 4]),  # nulls first by default
        ("ORDER BY NumberOfEmployees DESC, Id LIMIT 2", [4, 2]),
        ("WHERE Country = 'UK' ORDER BY CreatedDate DESC LIMIT 5", [3, 1]),
    ],
)
def test_query_order_by_and_limit(known: Salesforce, tail: str, expected: list[int]) -> None:
    assert lead_ids(known, tail) == [_id(n) for n in expected]


def test_query_returns_the_selected_fields_in_rest_form(known: Salesforce) -> None:
    page = known.query(
        format_soql(
            "SELECT Email, SystemModstamp, AnnualRevenue, IsConverted FROM Lead WHERE Id = {}",
            _id(1),
        )
    )
    (row,) = page["records"]
    assert dict(row) == {
        "attributes": {"type": "Lead", "url": f"{API}/sobjects/Lead/{_id(1)}"},
        "Email": "ada@engines.io",
        "SystemModstamp": "2024-05-01T10:00:00.000+0000",
        "AnnualRevenue": 1_000_000.0,
        "IsConverted": False,
    }


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id, Nope__c FROM Lead", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE Nope = 1", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE NumberOfEmployees = 'ten'", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE SystemModstamp > '2024-05-01'", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead LIMIT many", "MALFORMED_QUERY"),
        (
            "SELECT Id FROM Lead WHERE Country = 'UK' AND Country = 'US' OR Email = null",
            "MALFORMED_QUERY",
        ),
        ("SELECT Id FROM Lead ORDER BY", "MALFORMED_QUERY"),
        ("SELECT Id FROM Nothing__c", "INVALID_TYPE"),
    ],
)
def test_bad_soql_is_refused_with_an_error_array(
    salesforce: Salesforce, soql: str, code: str
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.query(soql)
    assert refused.value.status == 400
    (error,) = refused.value.content
    assert error["errorCode"] == code
    assert error["message"]


def test_query_error_has_the_recorded_shape(salesforce: Salesforce) -> None:
    (recorded_error,) = recorded("sobject_query_error_response")
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.query("SELECT Nope FROM Lead")
    assert isinstance(refused.value.content, list)
    (error,) = refused.value.content
    assert set(error) == set(recorded_error)
    assert error["errorCode"] == recorded_error["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Nope' on entity 'Lead'" in error["message"]


def test_count_query_reports_the_total_without_records(salesforce: Salesforce) -> None:
    answer = salesforce.query("SELECT COUNT() FROM Lead")
    assert dict(answer) == {"totalSize": SEED_LEADS, "done": True, "records": []}


def test_empty_query_matches_the_recorded_body(salesforce: Salesforce) -> None:
    answer = salesforce.query("SELECT Id FROM Lead WHERE Email = 'nobody@nowhere.test'")
    assert dict(answer) == recorded("sobject_query_empty_response")


# ------------------------------------------------------------------------------------ paging

PAGED_LEADS = 450
NEXT_URL = re.compile(rf"^{re.escape(API)}/(query|queryAll)/(?P<locator>01g\w+)-(?P<n>\d+)$")


@pytest.fixture
def many(sandbox: Sandbox, control: requests.Session, salesforce: Salesforce) -> Salesforce:
    sandbox_post(control, "reset", {"seed": 7, "leads": PAGED_LEADS})
    return salesforce


def _pages(sf: Salesforce, soql: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    page = sf.query(soql, headers=headers)
    pages = [page]
    while not page["done"]:
        page = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True, headers=headers)
        pages.append(page)
    return pages


@pytest.mark.parametrize(
    ("options", "sizes"),
    [
        ("batchSize=200", [200, 200, 50]),
        ("batchSize=300", [300, 150]),
        ("batchSize=50", [200, 200, 50]),  # below the minimum: Salesforce uses 200
        ("batchSize=5000", [450]),  # above the maximum: 2000
        (None, [450]),  # default 2000
    ],
)
def test_query_pages_honour_batch_size(
    many: Salesforce, options: str | None, sizes: list[int]
) -> None:
    headers = {"Sforce-Query-Options": options} if options else {}
    pages = _pages(many, "SELECT Id FROM Lead ORDER BY Id", headers)
    assert [len(page["records"]) for page in pages] == sizes
    assert all(page["totalSize"] == PAGED_LEADS for page in pages)
    assert [page["done"] for page in pages] == [False] * (len(sizes) - 1) + [True]
    delivered = 0
    for page in pages[:-1]:
        delivered += len(page["records"])
        found = NEXT_URL.match(page["nextRecordsUrl"])
        assert found is not None, page["nextRecordsUrl"]
        assert int(found["n"]) == delivered
    assert "nextRecordsUrl" not in pages[-1]


def test_query_all_iter_delivers_every_record_exactly_once(
    many: Salesforce, control: requests.Session
) -> None:
    headers = {"Sforce-Query-Options": "batchSize=200"}
    ids = [row["Id"] for row in many.query_all_iter("SELECT Id, Email FROM Lead", headers=headers)]
    assert len(ids) == len(set(ids)) == PAGED_LEADS
    assert set(ids) == {lead["Id"] for lead in sandbox_leads(control)}
    assert many.api_usage["api-usage"].used == 3  # one call per page; logins are not counted


def test_cursor_is_a_snapshot_while_records_change(many: Salesforce) -> None:
    headers = {"Sforce-Query-Options": "batchSize=200"}
    soql = "SELECT Id, Title FROM Lead ORDER BY Id"
    first = many.query(soql, headers=headers)
    later_id = many.query("SELECT Id FROM Lead ORDER BY Id DESC LIMIT 1")["records"][0]["Id"]
    many.Lead.update(later_id, {"Title": "Changed while paging"})
    rest: list[dict[str, Any]] = []
    page = first
    while not page["done"]:
        page = many.query_more(page["nextRecordsUrl"], identifier_is_url=True, headers=headers)
        rest.extend(page["records"])
    ids = [row["Id"] for row in first["records"] + rest]
    assert len(ids) == len(set(ids)) == PAGED_LEADS
    last = next(row for row in rest if row["Id"] == later_id)
    assert last["Title"] != "Changed while paging"


def test_query_page_keys_match_the_recorded_pages(many: Salesforce) -> None:
    first_recorded = recorded("sobject_query_paginated_first_page_response")
    last_recorded = recorded("sobject_query_paginated_last_page_response")
    pages = _pages(many, "SELECT Id, LastName FROM Lead", {"Sforce-Query-Options": "batchSize=400"})
    assert len(pages) == 2
    assert set(pages[0]) == set(first_recorded)
    assert set(pages[1]) == set(last_recorded)
    # Real nextRecordsUrl values look like /services/data/v59.0/query/01gRO0000016PIAYA2-500.
    assert NEXT_URL.match(pages[0]["nextRecordsUrl"])
    record = pages[0]["records"][0]
    assert set(record["attributes"]) == set(first_recorded["records"][0]["attributes"])
    assert record["attributes"] == {
        "type": "Lead",
        "url": f"{API}/sobjects/Lead/{record['Id']}",
    }


# ------------------------------------------------------------------------------------ deleted


def test_deleted_leads_are_seen_by_query_all_only(salesforce: Salesforce) -> None:
    lead_id = first_open_lead(salesforce)
    assert salesforce.Lead.delete(lead_id) == 204
    soql = format_soql("SELECT Id, IsDeleted FROM Lead WHERE Id = {}", lead_id)
    assert salesforce.query(soql)["totalSize"] == 0
    assert salesforce.query_all(soql)["records"] == []
    everything = salesforce.query_all(soql, include_deleted=True)["records"]
    assert [(row["Id"], row["IsDeleted"]) for row in everything] == [(lead_id, True)]
    assert salesforce.query("SELECT COUNT() FROM Lead")["totalSize"] == SEED_LEADS - 1
    assert salesforce.query("SELECT COUNT() FROM Lead", include_deleted=True)["totalSize"] == (
        SEED_LEADS
    )


def test_deleted_leads_listed_by_get_deleted(salesforce: Salesforce) -> None:
    recorded_body = recorded("sobject_get_deleted_success_response")
    lead_id = first_open_lead(salesforce)
    salesforce.Lead.delete(lead_id)
    now = datetime.now(UTC)
    answer = salesforce.Lead.deleted(now - timedelta(days=1), now + timedelta(minutes=1))
    assert set(answer) == set(recorded_body)
    assert [row["id"] for row in answer["deletedRecords"]] == [lead_id]
    assert set(answer["deletedRecords"][0]) == set(recorded_body["deletedRecords"][0])


# ------------------------------------------------------------------------------------ sObjects


def test_lead_create_get_update_delete(salesforce: Salesforce) -> None:
    created = salesforce.Lead.create(
        {"LastName": "Curie", "Company": "Radium Institute", "Email": "marie@radium.fr"}
    )
    assert set(created) == set(recorded("sobject_create_success_response"))
    assert created["success"] is True
    assert created["errors"] == []
    lead_id = created["id"]
    assert lead_id.startswith("00Q")
    assert len(lead_id) == 18

    lead = salesforce.Lead.get(lead_id)
    assert lead["attributes"] == {"type": "Lead", "url": f"{API}/sobjects/Lead/{lead_id}"}
    assert (lead["LastName"], lead["Email"]) == ("Curie", "marie@radium.fr")
    assert lead["Status"] == "Open - Not Contacted"  # the picklist default
    assert lead["IsConverted"] is False
    assert lead["CreatedDate"] == lead["SystemModstamp"]

    assert salesforce.Lead.update(lead_id, {"Title": "Professor", "Leadsync_Score__c": 87}) == 204
    updated = salesforce.Lead.get(lead_id)
    assert (updated["Title"], updated["Leadsync_Score__c"]) == ("Professor", 87.0)

    assert salesforce.Lead.delete(lead_id) == 204
    with pytest.raises(SalesforceResourceNotFound) as missing:
        salesforce.Lead.get(lead_id)
    assert missing.value.content[0]["errorCode"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda sf, i: sf.Lead.delete(i), id="delete"),
        pytest.param(lambda sf, i: sf.Lead.update(i, {"Title": "Ghost"}), id="update"),
    ],
)
def test_writes_to_a_deleted_lead_report_entity_is_deleted(
    salesforce: Salesforce, write: Callable[[Salesforce, str], Any]
) -> None:
    lead_id = first_open_lead(salesforce)
    salesforce.Lead.delete(lead_id)
    # The HTTP status for this is unconfirmed; the error code is what a connector keys on.
    with pytest.raises(SalesforceError) as refused:
        write(salesforce, lead_id)
    assert refused.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_get_by_fifteen_character_id(salesforce: Salesforce) -> None:
    lead_id = first_open_lead(salesforce)
    assert salesforce.Lead.get(lead_id[:15])["Id"] == lead_id


@pytest.mark.parametrize(
    ("values", "code", "fields"),
    [
        ({"LastName": "Nobody"}, "REQUIRED_FIELD_MISSING", ["Company"]),
        ({"LastName": "X", "Company": "Y", "Nope__c": 1}, "INVALID_FIELD", ["Nope__c"]),
        (
            {"LastName": "X", "Company": "Y", "Email": "not-an-email"},
            "INVALID_EMAIL_ADDRESS",
            ["Email"],
        ),
        (
            {"LastName": "X", "Company": "Y", "IsConverted": True},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["IsConverted"],
        ),
        ({"LastName": "X", "Company": "Y", "Status": "Bogus"}, BAD_PICKLIST, ["Status"]),
    ],
)
def test_invalid_create_is_refused_with_field_errors(
    salesforce: Salesforce, values: dict[str, Any], code: str, fields: list[str]
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.Lead.create(values)
    (error,) = refused.value.content
    assert (error["errorCode"], error["fields"]) == (code, fields)
    assert set(recorded("sobject_write_error_response")[0]) <= set(error)


@pytest.mark.parametrize(
    ("field", "value"),
    [("Status", "Bogus"), ("Status", None), ("Leadsync_Stage__c", "Champion")],
)
def test_restricted_picklists_refuse_unknown_values(
    salesforce: Salesforce, field: str, value: Any
) -> None:
    lead_id = first_open_lead(salesforce)
    before = salesforce.Lead.get(lead_id)
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.Lead.update(lead_id, {field: value})
    (error,) = refused.value.content
    assert (error["errorCode"], error["fields"]) == (BAD_PICKLIST, [field])
    assert salesforce.Lead.get(lead_id)[field] == before[field]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("NumberOfEmployees", 123_456_789),  # int(8)
        ("AnnualRevenue", 1e18),  # currency(18, 0)
        ("Leadsync_Score__c", -12_345_678_901_234_567_890),  # double(18, 0)
    ],
)
def test_numbers_with_more_whole_digits_than_the_field_holds_are_refused(
    salesforce: Salesforce, field: str, value: Any
) -> None:
    # "Employees: value outside of valid range on numeric field: 1431655766": a field's
    # precision less its scale bounds the digits before the point (NUMBER_OUTSIDE_VALID_RANGE).
    lead_id = first_open_lead(salesforce)
    before = salesforce.Lead.get(lead_id)[field]
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.Lead.update(lead_id, {field: value})
    (error,) = refused.value.content
    assert (error["errorCode"], error["fields"]) == ("NUMBER_OUTSIDE_VALID_RANGE", [field])
    assert "value outside of valid range on numeric field" in error["message"]
    assert salesforce.Lead.get(lead_id)[field] == before


def test_numbers_within_the_whole_digits_keep_every_decimal_they_were_sent(
    salesforce: Salesforce,
) -> None:
    # Through the API, decimal places are not rounded to the field's scale: "237.631 is both
    # stored in the database and returned by the API without rounding" (Salesforce Help
    # 000387302). Only the UI rounds.
    lead_id = first_open_lead(salesforce)
    values = {"NumberOfEmployees": 99_999_999, "AnnualRevenue": 1e17, "Leadsync_Score__c": 87.625}
    salesforce.Lead.update(lead_id, values)
    lead = salesforce.Lead.get(lead_id)
    assert {name: lead[name] for name in values} == values


def test_unrestricted_picklist_takes_any_value(salesforce: Salesforce) -> None:
    lead_id = first_open_lead(salesforce)
    salesforce.Lead.update(lead_id, {"Industry": "Space Mining", "Leadsync_Stage__c": "MQL"})
    lead = salesforce.Lead.get(lead_id)
    assert (lead["Industry"], lead["Leadsync_Stage__c"]) == ("Space Mining", "MQL")


def test_update_of_an_unknown_lead_is_not_found(salesforce: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as missing:
        salesforce.Lead.update(salesforce_id("00Q", 999_999), {"Title": "x"})
    assert missing.value.content[0]["errorCode"] == "NOT_FOUND"


# ------------------------------------------------------------------------------------ describe


def test_describe_lead_reports_picklists_and_custom_fields(salesforce: Salesforce) -> None:
    described = salesforce.Lead.describe()
    assert (described["name"], described["keyPrefix"]) == ("Lead", "00Q")
    fields = {field["name"]: field for field in described["fields"]}

    status = fields["Status"]
    assert status["type"] == "picklist"
    assert status["restrictedPicklist"] is True
    assert status["nillable"] is False
    assert [value["value"] for value in status["picklistValues"]] == LEAD_STATUSES
    assert [value["value"] for value in status["picklistValues"] if value["defaultValue"]] == [
        "Open - Not Contacted"
    ]
    assert fields["Industry"]["restrictedPicklist"] is False

    custom = {name for name, field in fields.items() if field["custom"]}
    assert custom == {name for name in fields if name.startswith("Leadsync_")}
    assert all(name.endswith("__c") for name in custom)
    assert {"Leadsync_Score__c", "Leadsync_Stage__c", "Leadsync_Grade__c"} <= custom
    assert fields["Leadsync_Stage__c"]["restrictedPicklist"] is True
    assert fields["Leadsync_Score__c"]["type"] == "double"

    assert fields["SystemModstamp"]["type"] == "datetime"
    assert fields["SystemModstamp"]["updateable"] is False
    assert fields["IsConverted"]["createable"] is False


def test_describe_has_the_recorded_keys(salesforce: Salesforce) -> None:
    recorded_body = recorded("sobject_sobject_describe_success_response")
    described = salesforce.Lead.describe()
    assert set(recorded_body) <= set(described)
    recorded_field_keys = set().union(*(set(field) for field in recorded_body["fields"]))
    for field in described["fields"]:
        assert recorded_field_keys <= set(field), field["name"]
    recorded_values = next(
        f["picklistValues"] for f in recorded_body["fields"] if f["picklistValues"]
    )
    status = next(field for field in described["fields"] if field["name"] == "Status")
    assert set(status["picklistValues"][0]) == set(recorded_values[0])


def test_describe_of_an_unknown_object_is_not_found(salesforce: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as missing:
        salesforce.Whizbang__c.describe()
    (error,) = missing.value.content
    (recorded_error,) = recorded("sobject_sobject_describe_error_response")
    assert set(error) == set(recorded_error)
    assert error["errorCode"] == "NOT_FOUND"


# ------------------------------------------------------------------------------------ composite


def test_collection_update_without_all_or_none_reports_each_record_in_order(
    salesforce: Salesforce,
) -> None:
    ids = lead_ids(salesforce, "WHERE IsConverted = false ORDER BY Id LIMIT 3")
    body = collection(
        [
            {"id": ids[0], "Title": "First"},
            {"id": ids[1], "Status": "Bogus"},
            {"id": ids[2], "Title": "Third"},
        ],
        all_or_none=False,
    )
    results = salesforce.restful("composite/sobjects", method="PATCH", json=body)
    assert [(r["id"], r["success"]) for r in results] == [
        (ids[0], True),
        (ids[1], False),
        (ids[2], True),
    ]
    assert results[0]["errors"] == results[2]["errors"] == []
    (error,) = results[1]["errors"]
    assert set(error) == {"statusCode", "message", "fields"}
    assert (error["statusCode"], error["fields"]) == (BAD_PICKLIST, ["Status"])
    assert salesforce.Lead.get(ids[0])["Title"] == "First"
    assert salesforce.Lead.get(ids[1])["Status"] != "Bogus"
    assert salesforce.Lead.get(ids[2])["Title"] == "Third"


def test_collection_update_with_all_or_none_applies_nothing(salesforce: Salesforce) -> None:
    ids = lead_ids(salesforce, "WHERE IsConverted = false ORDER BY Id LIMIT 3")
    before = {lead_id: salesforce.Lead.get(lead_id) for lead_id in ids}
    body = collection(
        [
            {"id": ids[0], "Title": "First"},
            {"id": ids[1], "Status": "Bogus"},
            {"id": ids[2], "Title": "Third"},
        ],
        all_or_none=True,
    )
    results = salesforce.restful("composite/sobjects", method="PATCH", json=body)
    assert [r["success"] for r in results] == [False, False, False]
    codes = [[e["statusCode"] for e in r["errors"]] for r in results]
    assert codes == [[ROLLED_BACK], [BAD_PICKLIST], [ROLLED_BACK]]
    for lead_id in ids:
        after = salesforce.Lead.get(lead_id)
        assert after["Title"] == before[lead_id]["Title"]
        assert after["SystemModstamp"] == before[lead_id]["SystemModstamp"]


def test_collection_create_returns_new_ids_in_order(salesforce: Salesforce) -> None:
    body = collection(
        [
            {"LastName": "Noether", "Company": "Göttingen"},
            {"LastName": "Missing company"},
            {"LastName": "Meitner", "Company": "KWI", "Leadsync_Stage__c": "SQL"},
        ],
        all_or_none=False,
    )
    results = salesforce.restful("composite/sobjects", method="POST", json=body)
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert salesforce.Lead.get(results[0]["id"])["LastName"] == "Noether"
    assert salesforce.Lead.get(results[2]["id"])["Leadsync_Stage__c"] == "SQL"
    assert salesforce.query("SELECT COUNT() FROM Lead")["totalSize"] == SEED_LEADS + 2


def test_collection_create_with_all_or_none_creates_nothing(salesforce: Salesforce) -> None:
    body = collection(
        [
            {"LastName": "Noether", "Company": "Göttingen"},
            {"LastName": "Missing company"},
        ],
        all_or_none=True,
    )
    results = salesforce.restful("composite/sobjects", method="POST", json=body)
    assert [r["success"] for r in results] == [False, False]
    assert salesforce.query("SELECT COUNT() FROM Lead")["totalSize"] == SEED_LEADS
    # The numbering rolls back too: the next lead gets the id the rolled-back one had.
    created = salesforce.Lead.create({"LastName": "Meitner", "Company": "KWI"})
    assert created["id"] == salesforce_id("00Q", SEED_LEADS + 1)


def test_only_ten_query_cursors_stay_open(salesforce: Salesforce) -> None:
    batch = {"Sforce-Query-Options": "batchSize=200"}
    soql_text = "SELECT Id FROM Lead"
    many = [{"LastName": f"Lead {n}", "Company": "Bulk"} for n in range(400)]
    for chunk in (many[:200], many[200:]):
        salesforce.restful(
            "composite/sobjects", method="POST", json=collection(chunk, all_or_none=False)
        )
    first = salesforce.query(soql_text, headers=batch)
    for _ in range(10):
        salesforce.query(soql_text, headers=batch)
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.query_more(first["nextRecordsUrl"], identifier_is_url=True, headers=batch)
    assert refused.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_collection_results_have_the_recorded_shape(salesforce: Salesforce) -> None:
    (recorded_result,) = recorded("sobject_composite_sobjects_success_response")
    lead_id = first_open_lead(salesforce)
    body = collection([{"id": lead_id, "Title": "Shape"}], all_or_none=False)
    (result,) = salesforce.restful("composite/sobjects", method="PATCH", json=body)
    assert set(result) == set(recorded_result)
    assert result == {"id": lead_id, "success": True, "errors": []}


@pytest.mark.parametrize(("count", "accepted"), [(200, True), (201, False)])
def test_collection_holds_at_most_200_records(
    salesforce: Salesforce, control: requests.Session, count: int, accepted: bool
) -> None:
    body = collection(
        [{"LastName": f"Bulk {n}", "Company": "Many Inc"} for n in range(count)],
        all_or_none=False,
    )
    if accepted:
        results = salesforce.restful("composite/sobjects", method="POST", json=body)
        assert len(results) == count
        assert all(result["success"] for result in results)
        assert len(sandbox_leads(control)) == SEED_LEADS + count
        return
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.restful("composite/sobjects", method="POST", json=body)
    (error,) = refused.value.content
    assert error["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert "200" in error["message"]
    assert len(sandbox_leads(control)) == SEED_LEADS


def test_collection_retrieve_answers_each_id_in_order_and_null_for_no_live_lead(
    salesforce: Salesforce,
) -> None:
    # POST composite/sobjects/Lead {"ids", "fields"}: one entry per id, in order; an id that
    # is no live lead (deleted, unknown, malformed, another object's) reads as null.
    first, second, gone = lead_ids(salesforce, "ORDER BY Id LIMIT 3")
    assert salesforce.Lead.delete(gone) == 204
    contact = salesforce.query("SELECT Id FROM Contact LIMIT 1")["records"]
    other = [contact[0]["Id"]] if contact else []
    ids = [second, gone, "00Q5g0000000zzzEAA", "not an id", first[:15], *other]
    answer = salesforce.restful(
        "composite/sobjects/Lead",
        method="POST",
        json={"ids": ids, "fields": ["id", "systemmodstamp"]},
    )
    rows = salesforce.query(
        format_soql("SELECT Id, SystemModstamp FROM Lead WHERE Id IN {}", [first, second])
    )["records"]
    stamps = {row["Id"]: row["SystemModstamp"] for row in rows}
    assert len(answer) == len(ids)
    assert answer[1:4] == [None, None, None]
    assert answer[5:] == [None] * len(other)
    for entry, record_id in ((answer[0], second), (answer[4], first)):
        assert entry == {
            "attributes": {"type": "Lead", "url": f"{API}/sobjects/Lead/{record_id}"},
            "Id": record_id,
            "SystemModstamp": stamps[record_id],
        }


def test_collection_retrieve_refuses_a_field_the_object_lacks(salesforce: Salesforce) -> None:
    (lead_id,) = lead_ids(salesforce, "LIMIT 1")
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.restful(
            "composite/sobjects/Lead", method="POST", json={"ids": [lead_id], "fields": ["Nope"]}
        )
    (error,) = refused.value.content
    assert error["errorCode"] == "INVALID_FIELD"


@pytest.mark.parametrize(("count", "accepted"), [(2000, True), (2001, False)])
def test_collection_retrieve_names_at_most_2000_ids(
    salesforce: Salesforce, count: int, accepted: bool
) -> None:
    ids = [_id(n) for n in range(1, count + 1)]
    body = {"ids": ids, "fields": ["Id"]}
    if accepted:
        answer = salesforce.restful("composite/sobjects/Lead", method="POST", json=body)
        assert len(answer) == count
        return
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.restful("composite/sobjects/Lead", method="POST", json=body)
    (error,) = refused.value.content
    assert error["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert "2000" in error["message"]


def test_collection_delete(salesforce: Salesforce) -> None:
    ids = lead_ids(salesforce, "ORDER BY Id LIMIT 2")
    results = salesforce.restful(
        "composite/sobjects", method="DELETE", params={"ids": ",".join(ids)}
    )
    assert [(r["id"], r["success"]) for r in results] == [(ids[0], True), (ids[1], True)]
    remaining = salesforce.query(format_soql("SELECT COUNT() FROM Lead WHERE Id IN {}", ids))
    assert remaining["totalSize"] == 0


# ------------------------------------------------------------------------------------ limits


def test_limits_report_daily_api_requests(salesforce: Salesforce) -> None:
    recorded_limits = recorded("limits")
    first = salesforce.limits()
    second = salesforce.limits()
    for name, entry in first.items():
        assert set(entry) == {"Max", "Remaining"}, name
        assert 0 <= entry["Remaining"] <= entry["Max"]
    assert set(first["DailyApiRequests"]) == set(recorded_limits["DailyApiRequests"])
    assert first["DailyApiRequests"]["Max"] == DEFAULT_DAILY_LIMIT
    # Each call counts, the limits call itself included.
    assert first["DailyApiRequests"]["Remaining"] == DEFAULT_DAILY_LIMIT - 1
    assert second["DailyApiRequests"]["Remaining"] == DEFAULT_DAILY_LIMIT - 2


def test_api_usage_follows_sforce_limit_info(salesforce: Salesforce) -> None:
    salesforce.query("SELECT Id FROM Lead LIMIT 1")
    assert salesforce.api_usage == {"api-usage": Usage(1, DEFAULT_DAILY_LIMIT)}
    salesforce.Lead.get(first_open_lead(salesforce))  # counts, though api_usage skips sf.Lead.*
    salesforce.query("SELECT Id FROM Lead LIMIT 1")
    assert salesforce.api_usage == {"api-usage": Usage(4, DEFAULT_DAILY_LIMIT)}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/limits", 200),
        ("GET", "/query?q=SELECT+Id+FROM+Lead+LIMIT+1", 200),
        ("GET", "/sobjects/Lead/describe", 200),
        ("GET", "/query?q=SELECT+Nope+FROM+Lead", 400),
        ("GET", f"/sobjects/Lead/{salesforce_id('00Q', 999_999)}", 404),
        ("PATCH", "/composite/sobjects", 400),
        ("GET", "/jobs/ingest/7505g0000000999AAA", 404),
    ],
)
def test_every_answer_carries_sforce_limit_info(
    salesforce: Salesforce, sandbox: Sandbox, method: str, path: str, status: int
) -> None:
    with _plain_session() as http:
        answer = http.request(
            method,
            f"{sandbox.url}{API}{path}",
            headers={"Authorization": f"Bearer {salesforce.session_id}"},
            json={} if method == "PATCH" else None,
        )
    assert answer.status_code == status
    assert re.fullmatch(r"api-usage=\d+/100000", answer.headers["Sforce-Limit-Info"])


def test_daily_limit_refuses_requests_with_403(
    salesforce: Salesforce, control: requests.Session, sandbox: Sandbox
) -> None:
    sandbox_post(control, "limits", {"salesforce_daily_limit": 3})
    for _ in range(3):
        salesforce.query("SELECT Id FROM Lead LIMIT 1")
    assert salesforce.api_usage == {"api-usage": Usage(3, 3)}
    with pytest.raises(SalesforceRefusedRequest) as refused:
        salesforce.query("SELECT Id FROM Lead LIMIT 1")
    assert refused.value.status == 403
    (error,) = refused.value.content
    assert error["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert "TotalRequests Limit exceeded" in error["message"]
    with pytest.raises(SalesforceRefusedRequest):
        salesforce.Lead.describe()
    # Raising the limit lets the same client carry on.
    sandbox_post(control, "limits", {"salesforce_daily_limit": 10})
    assert salesforce.query("SELECT COUNT() FROM Lead")["totalSize"] == SEED_LEADS


# ------------------------------------------------------------------------------------ conversion


def test_converted_lead_cannot_be_updated(
    salesforce: Salesforce, control: requests.Session
) -> None:
    lead_id = first_open_lead(salesforce)
    days = {datetime.now(UTC).date().isoformat()}
    converted = sandbox_post(
        control, f"salesforce/leads/{lead_id}/convert", {"opportunity_stage": "Prospecting"}
    )
    assert converted["IsConverted"] is True

    lead = salesforce.Lead.get(lead_id)
    assert lead["IsConverted"] is True
    assert lead["Status"] == "Closed - Converted"
    days.add(datetime.now(UTC).date().isoformat())  # in case midnight passed meanwhile
    assert lead["ConvertedDate"] in days
    assert lead["ConvertedContactId"].startswith("003")
    assert lead["ConvertedAccountId"].startswith("001")
    opportunity = salesforce.Opportunity.get(lead["ConvertedOpportunityId"])
    assert opportunity["StageName"] == "Prospecting"

    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.Lead.update(lead_id, {"Title": "Too late"})
    assert refused.value.content[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"

    body = collection([{"id": lead_id, "Leadsync_Score__c": 10}], all_or_none=False)
    (result,) = salesforce.restful("composite/sobjects", method="PATCH", json=body)
    assert result["success"] is False
    assert result["errors"][0]["statusCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert salesforce.Lead.get(lead_id)["Leadsync_Score__c"] is None


def test_conversion_without_opportunity(salesforce: Salesforce, control: requests.Session) -> None:
    lead_id = first_open_lead(salesforce)
    sandbox_post(control, f"salesforce/leads/{lead_id}/convert", {})
    lead = salesforce.Lead.get(lead_id)
    assert lead["IsConverted"] is True
    assert lead["ConvertedOpportunityId"] is None
    rows = salesforce.query(
        format_soql("SELECT Id FROM Lead WHERE IsConverted = true AND Id = {}", lead_id)
    )
    assert rows["totalSize"] == 1


# ------------------------------------------------------------------------------------ modstamp


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(start=datetime(2024, 6, 3, 9, 0, tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def clocked_sandbox(clock: FakeClock) -> Iterator[Sandbox]:
    with Sandbox(SandboxSettings(port=0, seed=7, leads=10), clock=clock) as running:
        yield running


@pytest.fixture
def clocked(clocked_sandbox: Sandbox, clock: FakeClock) -> Salesforce:
    clock.advance(60)
    return Salesforce(
        username="sandbox@leadsync.test",
        password="sandbox",
        security_token="sandbox",
        session=RoutingSession(clocked_sandbox.url),
    )


def _now_text(clock: FakeClock) -> str:
    return salesforce_datetime(int(clock() * 1000))  # as the sandbox reads its clock


def _stamps(sf: Salesforce, ids: list[str]) -> dict[str, str]:
    soql = format_soql("SELECT Id, SystemModstamp FROM Lead WHERE Id IN {}", ids)
    rows = sf.query_all(soql, include_deleted=True)["records"]
    return {row["Id"]: row["SystemModstamp"] for row in rows}


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda sf, i: sf.Lead.update(i, {"Title": "Moved"}), id="update"),
        pytest.param(lambda sf, i: sf.Lead.delete(i), id="delete"),
        pytest.param(
            lambda sf, i: sf.restful(
                "composite/sobjects",
                method="PATCH",
                json=collection([{"id": i, "Rating": "Hot"}], all_or_none=False),
            ),
            id="collection",
        ),
    ],
)
def test_every_write_moves_system_modstamp(
    clocked: Salesforce, clock: FakeClock, write: Callable[[Salesforce, str], Any]
) -> None:
    lead_id = first_open_lead(clocked)
    before = _stamps(clocked, [lead_id])[lead_id]
    clock.advance(1.234)
    write(clocked, lead_id)
    after = _stamps(clocked, [lead_id])[lead_id]
    assert after == _now_text(clock)
    assert after > before


def test_one_collection_call_stamps_its_records_alike(
    clocked: Salesforce, clock: FakeClock
) -> None:
    ids = lead_ids(clocked, "WHERE IsConverted = false ORDER BY Id LIMIT 3")
    clock.advance(0.5)
    clocked.restful(
        "composite/sobjects",
        method="PATCH",
        json=collection(
            [{"id": i, "Title": f"T{n}"} for n, i in enumerate(ids)], all_or_none=False
        ),
    )
    stamps = _stamps(clocked, ids)
    assert set(stamps.values()) == {_now_text(clock)}
    clock.advance(1)
    clocked.Lead.update(ids[0], {"Title": "Again"})
    assert _stamps(clocked, [ids[0]])[ids[0]] > stamps[ids[0]]


def test_separate_requests_within_one_second_tie_on_system_modstamp(
    clocked: Salesforce, clock: FakeClock
) -> None:
    first, second = lead_ids(clocked, "WHERE IsConverted = false ORDER BY Id LIMIT 2")
    clock.advance(1 - clock() % 1)  # the start of a second
    clocked.Lead.update(first, {"Title": "One"})
    clock.advance(0.4)
    clocked.Lead.update(second, {"Title": "Two"})
    stamps = _stamps(clocked, [first, second])
    # Salesforce keeps datetimes to the second: the milliseconds read .000, and two writes
    # 400 ms apart share a stamp, which is why cursors resume from (SystemModstamp, Id).
    assert stamps[first] == stamps[second]
    assert stamps[first].endswith(".000+0000")


def test_every_seeded_and_written_datetime_keeps_whole_seconds(salesforce: Salesforce) -> None:
    created = salesforce.Lead.create({"LastName": "Stamp", "Company": "Stamp Co"})
    records = salesforce.query_all(
        "SELECT Id, CreatedDate, LastModifiedDate, SystemModstamp FROM Lead"
    )["records"]
    assert created["id"] in {row["Id"] for row in records}
    for row in records:
        for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            assert row[name].endswith(".000+0000"), (name, row[name])


# ------------------------------------------------------------------------------------ faults


def test_lock_fault_fails_each_collection_record(
    salesforce: Salesforce, control: requests.Session
) -> None:
    ids = lead_ids(salesforce, "WHERE IsConverted = false ORDER BY Id LIMIT 3")
    sandbox_post(control, "faults", {"spec": "lock=1"})
    body = collection([{"id": i, "Title": "Locked"} for i in ids], all_or_none=False)
    results = salesforce.restful("composite/sobjects", method="PATCH", json=body)
    assert [r["id"] for r in results] == ids
    assert all(r["success"] is False for r in results)
    assert [r["errors"][0]["statusCode"] for r in results] == ["UNABLE_TO_LOCK_ROW"] * 3
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.Lead.update(ids[0], {"Title": "Locked"})
    assert refused.value.content[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    sandbox_post(control, "faults", {"spec": ""})
    assert all(salesforce.Lead.get(i)["Title"] != "Locked" for i in ids)


def test_server_error_fault_raises_general_error(
    salesforce: Salesforce, control: requests.Session
) -> None:
    sandbox_post(control, "faults", {"spec": "5xx=1"})
    with pytest.raises(SalesforceGeneralError) as failed:
        salesforce.query("SELECT Id FROM Lead LIMIT 1")
    assert failed.value.status == 503
    assert failed.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"


def test_rate_limit_fault_is_a_403_as_salesforce_has_no_429(
    salesforce: Salesforce, control: requests.Session
) -> None:
    sandbox_post(control, "faults", {"spec": "429=1"})
    with pytest.raises(SalesforceRefusedRequest) as refused:
        salesforce.query("SELECT Id FROM Lead LIMIT 1")
    assert refused.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert "ConcurrentPerOrgLongTxn" in refused.value.content[0]["message"]


def test_drop_fault_breaks_the_connection(
    salesforce: Salesforce, control: requests.Session
) -> None:
    sandbox_post(control, "faults", {"spec": "drop=1"})
    with pytest.raises(requests.exceptions.ConnectionError):
        salesforce.query("SELECT Id FROM Lead LIMIT 1")
    sandbox_post(control, "faults", {"spec": ""})
    assert salesforce.query("SELECT COUNT() FROM Lead")["totalSize"] == SEED_LEADS


def test_a_page_of_an_open_cursor_can_be_fetched_again(salesforce: Salesforce) -> None:
    batch = {"Sforce-Query-Options": "batchSize=200"}
    many = [{"LastName": f"Lead {n}", "Company": "Bulk"} for n in range(400)]
    for chunk in (many[:200], many[200:]):
        salesforce.restful(
            "composite/sobjects", method="POST", json=collection(chunk, all_or_none=False)
        )
    first = salesforce.query("SELECT Id FROM Lead ORDER BY Id", headers=batch)
    second = salesforce.query_more(first["nextRecordsUrl"], identifier_is_url=True, headers=batch)
    again = salesforce.query_more(first["nextRecordsUrl"], identifier_is_url=True, headers=batch)
    assert again["records"] == second["records"]
    assert again["nextRecordsUrl"] == second["nextRecordsUrl"]


# ------------------------------------------------------------------------------------ custom fields


@pytest.fixture
def bare_org() -> Iterator[Salesforce]:
    """An org where no admin has created leadsync's write-back fields."""
    settings = SandboxSettings(
        port=0, seed=7, leads=5, salesforce=SalesforceSettings(custom_fields=False)
    )
    with Sandbox(settings) as running:
        yield Salesforce(
            username="sandbox@leadsync.test",
            password="sandbox",
            security_token="sandbox",
            session=RoutingSession(running.url),
        )


def test_an_org_without_custom_fields_knows_none_of_them(bare_org: Salesforce) -> None:
    described = {field["name"] for field in bare_org.Lead.describe()["fields"]}
    assert "Email" in described
    assert not any(name.endswith("__c") for name in described)

    with pytest.raises(SalesforceMalformedRequest) as unknown_column:
        bare_org.query("SELECT Id, Leadsync_Score__c FROM Lead")
    assert unknown_column.value.content[0]["errorCode"] == "INVALID_FIELD"

    lead = first_open_lead(bare_org)
    (result,) = bare_org.restful(
        "composite/sobjects",
        method="PATCH",
        json=collection([{"id": lead, "Leadsync_Grade__c": "A"}], all_or_none=False),
    )
    assert result["success"] is False
    assert result["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert "Leadsync_Grade__c" not in bare_org.Lead.get(lead)


# ------------------------------------------------------------------------------------ strictness


def test_a_collection_update_naming_a_record_twice_is_refused_whole(
    salesforce: Salesforce,
) -> None:
    first, other = lead_ids(salesforce, "WHERE IsConverted = false ORDER BY Id LIMIT 2")
    body = collection(
        [
            {"id": other, "Title": "Fine"},
            {"id": first, "Title": "One"},
            {"id": first[:15], "Title": "Two"},  # the same record by its 15-character id
        ],
        all_or_none=False,
    )
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.restful("composite/sobjects", method="PATCH", json=body)
    (error,) = refused.value.content
    assert error["errorCode"] == "DUPLICATE_VALUE"
    assert first in error["message"]
    titles = {
        row["Id"]: row["Title"]
        for row in salesforce.query_all(
            format_soql("SELECT Id, Title FROM Lead WHERE Id IN {}", [first, other])
        )["records"]
    }
    assert not {"Fine", "One", "Two"} & set(titles.values())


def test_a_query_cursor_idle_for_15_minutes_expires(clocked: Salesforce, clock: FakeClock) -> None:
    batch = {"Sforce-Query-Options": "batchSize=200"}
    clocked.restful(
        "composite/sobjects",
        method="POST",
        json=collection(
            [{"LastName": f"Idle {n}", "Company": "Idle"} for n in range(200)], all_or_none=False
        ),
    )
    kept = clocked.query("SELECT Id FROM Lead", headers=batch)
    idle = clocked.query("SELECT Id FROM Lead", headers=batch)
    clock.advance(14 * 60)
    # Reading a page keeps a cursor alive; the one left alone for over 15 minutes is gone.
    clocked.query_more(kept["nextRecordsUrl"], identifier_is_url=True, headers=batch)
    clock.advance(2 * 60)
    with pytest.raises(SalesforceMalformedRequest) as refused:
        clocked.query_more(idle["nextRecordsUrl"], identifier_is_url=True, headers=batch)
    assert refused.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_sessions_expire_after_the_orgs_default_timeout(
    clocked: Salesforce, clocked_sandbox: Sandbox, clock: FakeClock
) -> None:
    authorization = f"Bearer {clocked.session_id}"
    sessions = clocked_sandbox.salesforce.sessions
    clock.advance(DEFAULT_SESSION_TIMEOUT_SECONDS - 1)
    assert sessions.valid(authorization)
    clock.advance(2)
    assert not sessions.valid(authorization)


def test_deleted_leads_leave_query_all_once_the_recycle_bin_lets_them_go(
    clocked: Salesforce, clocked_sandbox: Sandbox, clock: FakeClock
) -> None:
    # Deleted records stay in the Recycle Bin for 15 days, then are deleted for good (Apex
    # guide, "Restoring Deleted Records"), and "after these records are permanently removed
    # from the recycle bin, you can no longer query them" (REST API guide, QueryAll).
    lead_id = first_open_lead(clocked)
    clocked.Lead.delete(lead_id)
    soql = format_soql("SELECT Id, IsDeleted FROM Lead WHERE Id = {}", lead_id)

    def still_there(after: timedelta) -> bool:
        clock.advance(after.total_seconds())
        sf = Salesforce(  # a new login: the last one expired meanwhile
            username="sandbox@leadsync.test",
            password="sandbox",
            security_token="sandbox",
            session=RoutingSession(clocked_sandbox.url),
        )
        now = datetime.fromtimestamp(clock(), UTC)
        deleted = sf.Lead.deleted(now - timedelta(days=30), now)["deletedRecords"]
        found = sf.query_all(soql, include_deleted=True)["records"]
        assert bool(found) == (lead_id in [row["id"] for row in deleted])
        return bool(found)

    assert still_there(timedelta(days=15) - timedelta(minutes=1))
    assert not still_there(timedelta(minutes=2))


# A value whose JSON does not fit its field's type: Salesforce cannot parse the request, so it
# answers 400 JSON_PARSER_ERROR for the request ("Cannot deserialize instance of datetime from
# VALUE_STRING value 2017-10-17 00:00:00 or request may be missing a required field at
# [line:1, column:129]", regican/Salesforce#2), not a failure of that one record.
UNPARSEABLE = [
    pytest.param("NumberOfEmployees", "many", id="a word for an int"),
    pytest.param("NumberOfEmployees", 12.5, id="a fraction for an int"),
    pytest.param("AnnualRevenue", "NaN", id="NaN text for a currency"),
    pytest.param("Leadsync_Score__c", "1_000", id="digits with underscores"),
    pytest.param("DoNotCall", "yes", id="a word for a boolean"),
    pytest.param("EmailBouncedDate", "2017-10-17 00:00:00", id="a datetime without T or zone"),
    pytest.param("ConvertedDate", "17/10/2017", id="a date not in ISO form"),
    pytest.param("Title", {"text": "CTO"}, id="an object for a string"),
    pytest.param("Title", ["CTO"], id="an array for a string"),
]
# simple-salesforce's single-record calls send `json.dumps(values)`: a float nan or inf goes
# out as a bare NaN or Infinity, which is no JSON (requests' own `json=` refuses to send it).
NON_NUMBERS = [
    pytest.param("AnnualRevenue", float("nan"), id="a NaN literal"),
    pytest.param("Leadsync_Score__c", float("-inf"), id="an Infinity literal"),
]


def _titles(sf: Salesforce, ids: list[str]) -> dict[str, Any]:
    rows = sf.query_all(format_soql("SELECT Id, Title FROM Lead WHERE Id IN {}", ids))
    return {row["Id"]: row["Title"] for row in rows["records"]}


def _assert_parse_error(refused: Any, value: Any) -> None:
    (error,) = refused.value.content
    assert error["errorCode"] == "JSON_PARSER_ERROR"
    message = error["message"]
    if isinstance(value, float) and not math.isfinite(value):
        # requests writes a float nan or inf as a bare NaN or Infinity, which is no JSON.
        assert message.startswith("Non-standard token ")
        return
    assert message.startswith("Cannot deserialize instance of ")
    # The value as the parser met it, never as a Python repr.
    assert "'" not in message
    if isinstance(value, dict | list):
        assert ("START_OBJECT value {" if isinstance(value, dict) else "START_ARRAY value [") in (
            message
        )


@pytest.mark.parametrize(("field", "value"), UNPARSEABLE)
def test_a_value_its_field_cannot_parse_refuses_the_whole_collection(
    salesforce: Salesforce, field: str, value: Any
) -> None:
    first, bad, last = lead_ids(salesforce, "WHERE IsConverted = false ORDER BY Id LIMIT 3")
    before = _titles(salesforce, [first, bad, last])
    body = collection(
        [
            {"id": first, "Title": "Parsed"},
            {"id": bad, field: value},
            {"id": last, "Title": "Parsed"},
        ],
        all_or_none=False,
    )
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.restful("composite/sobjects", method="PATCH", json=body)
    _assert_parse_error(refused, value)
    assert _titles(salesforce, [first, bad, last]) == before


@pytest.mark.parametrize(("field", "value"), UNPARSEABLE + NON_NUMBERS)
def test_a_value_its_field_cannot_parse_refuses_a_single_write(
    salesforce: Salesforce, field: str, value: Any
) -> None:
    lead_id = first_open_lead(salesforce)
    before = salesforce.Lead.get(lead_id)
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.Lead.update(lead_id, {field: value})
    _assert_parse_error(refused, value)
    assert salesforce.Lead.get(lead_id) == before


def test_a_value_its_field_cannot_parse_refuses_the_whole_upsert_collection(
    salesforce: Salesforce, sandbox: Sandbox
) -> None:
    lead = {"attributes": {"type": "Lead"}, "LastName": "Parsed", "Company": "Acme"}
    records = [
        {**lead, "Leadsync_Id__c": "parse-1"},
        {**lead, "Leadsync_Id__c": "parse-2", "NumberOfEmployees": "a dozen"},
    ]
    with pytest.raises(SalesforceMalformedRequest) as refused:
        salesforce.restful(
            "composite/sobjects/Lead/Leadsync_Id__c",
            method="PATCH",
            json={"allOrNone": False, "records": records},
        )
    _assert_parse_error(refused, "a dozen")
    keys = {lead.get("Leadsync_Id__c") for lead in sandbox.salesforce.snapshot("Lead")}
    assert not {"parse-1", "parse-2"} & keys


def _long_emails(count: int) -> list[str]:
    return [f"{'a' * 60}.{n:03d}@example.com" for n in range(count)]


def test_a_request_whose_uri_passes_16384_bytes_is_refused_with_414(
    salesforce: Salesforce, sandbox: Sandbox
) -> None:
    # "In each REST call, the maximum length for the combined URI and headers is 16,384
    # bytes ... If the URI itself exceeds this limit, the request returns a 414 URI Too Long
    # error" (Salesforce Developer Limits, "API Request Limits"). A query travels in the URI.
    soql = format_soql("SELECT Id FROM Lead WHERE Email IN {}", _long_emails(200))
    with pytest.raises(SalesforceError) as refused:
        salesforce.query(soql)
    assert refused.value.status == 414
    fits = format_soql("SELECT Id FROM Lead WHERE Email IN {}", _long_emails(100))
    assert salesforce.query(fits)["totalSize"] == 0
    assert sandbox.stats.as_dict()["endpoints"]["salesforce.uri_too_long"] == 1


def test_a_request_whose_uri_and_headers_pass_16384_bytes_is_refused_with_431(
    salesforce: Salesforce, sandbox: Sandbox
) -> None:
    headers = {"Authorization": f"Bearer {salesforce.session_id}"}
    with _plain_session() as http:
        url = f"{sandbox.url}{API}/limits"
        assert http.get(url, headers=headers, timeout=10).status_code == 200
        padded = http.get(url, headers={**headers, "X-Padding": "x" * 16_400}, timeout=10)
    assert padded.status_code == 431
    assert "Request Header Fields Too Large" in padded.text
