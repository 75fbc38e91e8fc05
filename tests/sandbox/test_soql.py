"""The sandbox's SOQL subset: filtering, ordering, paging, type checks and error messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadsync.sandbox.ids import salesforce_id
from leadsync.sandbox.soql import SoqlError, parse, project, run

NOW = datetime(2024, 5, 2, 15, 0, tzinfo=UTC)  # TODAY is 2024-05-02, YESTERDAY 2024-05-01
TEN_AM = "2024-05-01T10:00:00.000+0000"


def lead_id(number: int) -> str:
    return salesforce_id("00Q", number)


# Listed out of Id order so that any ordering a test sees comes from ORDER BY. Lovelace, Hopper
# and Hamilton share one SystemModstamp; "dijkstra" is lower case to show case-blind sorting.
LEADS: list[dict[str, Any]] = [
    {
        "Id": lead_id(4),
        "LastName": "Hamilton",
        "Company": "MIT Instrumentation Lab",
        "Email": "margaret@nasa.gov",
        "Title": "Rear Admiral",
        "NumberOfEmployees": 50,
        "AnnualRevenue": None,
        "IsConverted": False,
        "Status": "Open - Not Contacted",
        "Country": "US",
        "CreatedDate": "2024-05-02T12:00:00.000+0000",
        "SystemModstamp": TEN_AM,
    },
    {
        "Id": lead_id(2),
        "FirstName": "Grace",
        "LastName": "Hopper",
        "Company": "US Navy",
        "Email": "GRACE@Navy.mil",
        "Title": "Rear_Admiral",
        "NumberOfEmployees": 500,
        "AnnualRevenue": 2_500_000.5,
        "IsConverted": True,
        "ConvertedDate": "2024-05-01",
        "Rating": "Warm",
        "Status": "Closed - Converted",
        "Country": "US",
        "CreatedDate": "2024-04-30T23:59:59.999+0000",
        "SystemModstamp": TEN_AM,
    },
    {
        "Id": lead_id(5),
        "FirstName": "Edsger",
        "LastName": "dijkstra",
        "Company": "TU Eindhoven",
        "Email": "ed@tue.nl",
        "Title": "100\tGrowth",
        "NumberOfEmployees": 0,
        "AnnualRevenue": 10.0,
        "IsConverted": True,
        "ConvertedDate": "2024-04-30",
        "Rating": "Hot",
        "Status": "Closed - Converted",
        "Country": "NL",
        "CreatedDate": "2024-04-01T00:00:00.000+0000",
        "SystemModstamp": "2024-05-02T00:00:00.000+0000",
    },
    {
        "Id": lead_id(1),
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "Company": "Analytical Engines",
        "Email": "ada@example.com",
        "Title": "100% Growth",
        "NumberOfEmployees": 10,
        "AnnualRevenue": 1_000_000.0,
        "IsConverted": False,
        "ConvertedDate": None,
        "Rating": "Hot",
        "Status": "Open - Not Contacted",
        "Country": "UK",
        "CreatedDate": "2024-04-28T08:00:00.000+0000",
        "SystemModstamp": TEN_AM,
    },
    {
        "Id": lead_id(3),
        "FirstName": "Alan",
        "LastName": "Turing",
        "Company": "Bletchley's Hut \\ 8",
        "Title": "Growth Lead",
        "IsConverted": False,
        "Rating": "Cold",
        "Status": "Working - Contacted",
        "Country": "uk",
        "CreatedDate": "2024-05-01T00:00:00.000+0000",
        "SystemModstamp": "2024-05-01T09:30:00.000+0000",
    },
]
EVERYONE = {"Hamilton", "Hopper", "dijkstra", "Lovelace", "Turing"}


# The f-strings below build SOQL for the parser under test; no SQL database is involved (S608).


def matching(where: str, *, now: datetime = NOW) -> set[str]:
    query = parse(f"SELECT Id FROM Lead WHERE {where}", now=now)  # noqa: S608
    return {record["LastName"] for record in run(query, LEADS)}


def ordered(tail: str) -> list[str]:
    query = parse(f"SELECT Id FROM Lead {tail}", now=NOW)  # noqa: S608
    return [record["LastName"] for record in run(query, LEADS)]


def soql_error(text: str) -> SoqlError:
    with pytest.raises(SoqlError) as caught:
        parse(text, now=NOW)
    return caught.value


# --------------------------------------------------------------------------------------------
# WHERE
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("NumberOfEmployees = 50", {"Hamilton"}),
        ("NumberOfEmployees != 50", EVERYONE - {"Hamilton"}),
        ("NumberOfEmployees <> 50", EVERYONE - {"Hamilton"}),
        ("NumberOfEmployees < 50", {"Lovelace", "dijkstra"}),
        ("NumberOfEmployees <= 50", {"Lovelace", "dijkstra", "Hamilton"}),
        ("NumberOfEmployees > 10", {"Hopper", "Hamilton"}),
        ("NumberOfEmployees >= 10", {"Lovelace", "Hopper", "Hamilton"}),
        ("NumberOfEmployees > -1", EVERYONE - {"Turing"}),
        ("NumberOfEmployees IN (0, 500)", {"Hopper", "dijkstra"}),
        ("NumberOfEmployees NOT IN (0, 500)", {"Lovelace", "Hamilton", "Turing"}),
        ("AnnualRevenue > 2500000", {"Hopper"}),
        ("AnnualRevenue = 10", {"dijkstra"}),
        ("AnnualRevenue = 10.0", {"dijkstra"}),
        ("IsConverted = true", {"Hopper", "dijkstra"}),
        ("IsConverted = FALSE", {"Lovelace", "Turing", "Hamilton"}),
        ("IsConverted != true", {"Lovelace", "Turing", "Hamilton"}),
        ("LastName = 'HOPPER'", {"Hopper"}),
        ("Email = 'grace@navy.mil'", {"Hopper"}),
        ("LastName < 'H'", {"dijkstra"}),
        ("LastName > 'hopper'", {"Lovelace", "Turing"}),
        ("LastName >= 'HOPPER'", {"Hopper", "Lovelace", "Turing"}),
        ("LastName <= 'hamilton'", {"dijkstra", "Hamilton"}),
        ("LastName IN ('hopper', 'TURING', 'nobody')", {"Hopper", "Turing"}),
        ("LastName NOT IN ('hopper', 'TURING')", {"Lovelace", "Hamilton", "dijkstra"}),
        ("Id = '" + lead_id(2) + "'", {"Hopper"}),
        ("Id IN ('" + lead_id(1) + "', '" + lead_id(3) + "')", {"Lovelace", "Turing"}),
        ("Status = 'closed - converted'", {"Hopper", "dijkstra"}),
        ("Company = 'bletchley\\'s hut \\\\ 8'", {"Turing"}),
        ("Title = '100\\tgrowth'", {"dijkstra"}),
    ],
)
def test_where_operator_selects_the_expected_leads(where: str, expected: set[str]) -> None:
    assert matching(where) == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Email = null", {"Turing"}),
        ("Email != null", EVERYONE - {"Turing"}),
        ("FirstName = NULL", {"Hamilton"}),
        # SOQL, unlike SQL, lets != and NOT IN match records whose value is null.
        ("Email != 'GRACE@NAVY.MIL'", EVERYONE - {"Hopper"}),
        ("FirstName NOT IN ('Ada')", EVERYONE - {"Lovelace"}),
        ("FirstName NOT IN ('Ada', null)", EVERYONE - {"Lovelace", "Hamilton"}),
        ("FirstName IN ('Ada', null)", {"Lovelace", "Hamilton"}),
        ("ConvertedDate != TODAY", EVERYONE),
        # Ordering comparisons and LIKE never match null.
        ("Email < 'zzz'", EVERYONE - {"Turing"}),
        ("NumberOfEmployees >= 0", EVERYONE - {"Turing"}),
        ("Email LIKE '%'", EVERYONE - {"Turing"}),
        ("NumberOfEmployees < null", set()),
    ],
)
def test_null_handling_follows_soql_rules(where: str, expected: set[str]) -> None:
    assert matching(where) == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("LastName LIKE 'h%'", {"Hopper", "Hamilton"}),
        ("LastName LIKE '%ING'", {"Turing"}),
        ("LastName LIKE 'h_pper'", {"Hopper"}),
        ("LastName LIKE 'h_per'", set()),
        ("LastName LIKE 'l.*'", set()),  # regular-expression characters are literal
        ("Title LIKE 'growth lead'", {"Turing"}),
        ("Title LIKE '100%'", {"Lovelace", "dijkstra"}),
        ("Title LIKE '100\\%%'", {"Lovelace"}),
        ("Title LIKE 'rear_admiral'", {"Hopper", "Hamilton"}),
        ("Title LIKE 'rear\\_admiral'", {"Hopper"}),
        ("Email LIKE '%@%.gov'", {"Hamilton"}),
    ],
)
def test_like_patterns_match_case_insensitively(where: str, expected: set[str]) -> None:
    assert matching(where) == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("IsConverted = true AND Rating = 'Hot'", {"dijkstra"}),
        ("Rating = 'Hot' OR Rating = 'Cold'", {"Lovelace", "dijkstra", "Turing"}),
        ("Rating = 'Hot' OR Rating = 'Cold' OR Rating = null", EVERYONE - {"Hopper"}),
        ("Country = 'US' AND IsConverted = false AND Email != null", {"Hamilton"}),
        ("(IsConverted = false AND Rating = 'Hot') OR Country = 'NL'", {"Lovelace", "dijkstra"}),
        ("IsConverted = false AND (Rating = 'Hot' OR Country = 'NL')", {"Lovelace"}),
        ("NOT Rating = 'Hot'", {"Hopper", "Turing", "Hamilton"}),
        ("NOT (Rating = 'Hot' OR Rating = 'Warm')", {"Turing", "Hamilton"}),
        ("Country = 'US' AND (NOT IsConverted = true)", {"Hamilton"}),
        ("NOT (NOT Country = 'UK')", {"Lovelace", "Turing"}),
        ("((Country = 'uk'))", {"Lovelace", "Turing"}),
    ],
)
def test_and_or_not_and_parentheses_combine_conditions(where: str, expected: set[str]) -> None:
    assert matching(where) == expected


@pytest.mark.parametrize(
    ("where", "offending"),
    [
        ("Rating = 'Hot' AND Country = 'UK' OR Country = 'NL'", "OR"),
        ("Rating = 'Hot' OR Country = 'UK' AND Country = 'NL'", "AND"),
        # NOT may only open a (sub)expression, as in Salesforce.
        ("Country = 'US' AND NOT IsConverted = true", "NOT"),
        ("NOT Rating = 'Hot' AND Country = 'UK'", "AND"),
    ],
)
def test_mixing_and_or_without_parentheses_is_malformed(where: str, offending: str) -> None:
    error = soql_error(f"SELECT Id FROM Lead WHERE {where}")  # noqa: S608
    assert error.error_code == "MALFORMED_QUERY"
    assert error.message.endswith(f"unexpected token: '{offending}'")


def test_keywords_and_names_are_case_insensitive_and_come_back_canonical() -> None:
    query = parse("select email, ID, firstname from lEAD where LASTNAME like 'ham%' limit 1")
    records = run(query, LEADS)
    assert query.sobject.name == "Lead"
    assert query.fields == ("Email", "Id", "FirstName")
    assert [project(query, record) for record in records] == [
        {"Email": "margaret@nasa.gov", "Id": lead_id(4), "FirstName": None}
    ]


# --------------------------------------------------------------------------------------------
# Dates and datetimes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "literal",
    [
        "2024-05-01T10:00:00Z",
        "2024-05-01T10:00:00.000Z",
        "2024-05-01T10:00:00.0Z",
        "2024-05-01T10:00:00.000+0000",
        "2024-05-01T11:00:00+01:00",
        "2024-05-01T05:30:00-04:30",
        "2024-05-02T00:00:00+14:00",
    ],
)
def test_datetime_literal_forms_denote_the_same_utc_instant(literal: str) -> None:
    assert matching(f"SystemModstamp = {literal}") == {"Lovelace", "Hopper", "Hamilton"}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (
            "SystemModstamp > 2024-05-01T09:59:59.999Z",
            {"Lovelace", "Hopper", "Hamilton", "dijkstra"},
        ),
        # Salesforce ignores a literal's milliseconds: `< 10:00:00.001` is `< 10:00:00`.
        ("SystemModstamp < 2024-05-01T10:00:00.001Z", {"Turing"}),
        ("SystemModstamp < 2024-05-01T09:30:00.1Z", set()),
        ("SystemModstamp = 2024-05-01T10:00:00.900Z", {"Lovelace", "Hopper", "Hamilton"}),
        ("SystemModstamp <= 2024-05-01T09:30:00Z", {"Turing"}),
        ("SystemModstamp >= 2024-05-01T12:00:00+02:00", EVERYONE - {"Turing"}),
        ("ConvertedDate = 2024-04-30", {"dijkstra"}),
        ("ConvertedDate > 2024-04-30", {"Hopper"}),
    ],
)
def test_datetime_and_date_comparisons(where: str, expected: set[str]) -> None:
    assert matching(where) == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("CreatedDate = TODAY", {"Hamilton"}),
        ("CreatedDate = YESTERDAY", {"Turing"}),
        ("CreatedDate = LAST_N_DAYS:1", {"Hamilton", "Turing"}),
        ("CreatedDate = LAST_N_DAYS:2", {"Hamilton", "Turing", "Hopper"}),
        ("CreatedDate < YESTERDAY", {"Hopper", "Lovelace", "dijkstra"}),
        ("CreatedDate <= YESTERDAY", EVERYONE - {"Hamilton"}),
        ("CreatedDate > YESTERDAY", {"Hamilton"}),
        ("CreatedDate >= YESTERDAY", {"Hamilton", "Turing"}),
        ("CreatedDate != TODAY", EVERYONE - {"Hamilton"}),
        ("CreatedDate IN (TODAY, 2024-04-28T08:00:00Z)", {"Hamilton", "Lovelace"}),
        ("CreatedDate = LAST_N_DAYS:99999999999", EVERYONE),
        ("ConvertedDate = YESTERDAY", {"Hopper"}),
        ("ConvertedDate = LAST_N_DAYS:2", {"Hopper", "dijkstra"}),
        ("ConvertedDate < TODAY", {"Hopper", "dijkstra"}),
    ],
)
def test_relative_date_literals_are_ranges_around_now(where: str, expected: set[str]) -> None:
    assert matching(where) == expected


def test_relative_dates_take_today_from_now_in_utc() -> None:
    # 00:30 at UTC+2 on May 2nd is still May 1st in UTC.
    now = datetime(2024, 5, 2, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert matching("CreatedDate = TODAY", now=now) == {"Turing"}


# --------------------------------------------------------------------------------------------
# ORDER BY, LIMIT, OFFSET, COUNT()
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("SystemModstamp, Id", ["Turing", "Lovelace", "Hopper", "Hamilton", "dijkstra"]),
        ("SystemModstamp DESC, Id DESC", ["dijkstra", "Hamilton", "Hopper", "Lovelace", "Turing"]),
        ("SystemModstamp DESC, Id", ["dijkstra", "Lovelace", "Hopper", "Hamilton", "Turing"]),
        ("systemmodstamp asc, ID asc", ["Turing", "Lovelace", "Hopper", "Hamilton", "dijkstra"]),
        ("LastName", ["dijkstra", "Hamilton", "Hopper", "Lovelace", "Turing"]),
        ("LastName DESC", ["Turing", "Lovelace", "Hopper", "Hamilton", "dijkstra"]),
        # Picklists sort in their defined order (Hot, Warm, Cold), not alphabetically.
        ("Rating, LastName", ["Hamilton", "dijkstra", "Lovelace", "Hopper", "Turing"]),
        # Equal keys keep the input order: the sort is stable.
        ("IsConverted", ["Hamilton", "Lovelace", "Turing", "Hopper", "dijkstra"]),
    ],
)
def test_order_by_sorts_by_each_key_in_turn(order_by: str, expected: list[str]) -> None:
    assert ordered(f"ORDER BY {order_by}") == expected


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("NumberOfEmployees", ["Turing", "dijkstra", "Lovelace", "Hamilton", "Hopper"]),
        ("NumberOfEmployees NULLS FIRST", ["Turing", "dijkstra", "Lovelace", "Hamilton", "Hopper"]),
        ("NumberOfEmployees NULLS LAST", ["dijkstra", "Lovelace", "Hamilton", "Hopper", "Turing"]),
        ("NumberOfEmployees DESC", ["Hopper", "Hamilton", "Lovelace", "dijkstra", "Turing"]),
        (
            "NumberOfEmployees DESC NULLS FIRST",
            ["Turing", "Hopper", "Hamilton", "Lovelace", "dijkstra"],
        ),
        ("Email DESC NULLS LAST", ["Hamilton", "Hopper", "dijkstra", "Lovelace", "Turing"]),
    ],
)
def test_nulls_first_and_last_place_null_values(order_by: str, expected: list[str]) -> None:
    assert ordered(f"ORDER BY {order_by}") == expected


@pytest.mark.parametrize(
    ("paging", "expected"),
    [
        ("LIMIT 2", ["Turing", "Lovelace"]),
        ("LIMIT 2 OFFSET 2", ["Hopper", "Hamilton"]),
        ("OFFSET 4", ["dijkstra"]),
        ("LIMIT 0", []),
        ("OFFSET 10", []),
        ("LIMIT 100", ["Turing", "Lovelace", "Hopper", "Hamilton", "dijkstra"]),
    ],
)
def test_limit_and_offset_page_the_sorted_matches(paging: str, expected: list[str]) -> None:
    assert ordered(f"ORDER BY SystemModstamp, Id {paging}") == expected


def test_modstamp_and_id_cursor_resumes_after_a_tie() -> None:
    where = (
        f"WHERE SystemModstamp > {TEN_AM} OR (SystemModstamp = {TEN_AM} AND Id > '{lead_id(1)}')"
    )
    assert ordered(f"{where} ORDER BY SystemModstamp, Id LIMIT 10") == [
        "Hopper",
        "Hamilton",
        "dijkstra",
    ]


def test_count_query_selects_no_fields_and_runs_the_filter() -> None:
    query = parse("select count() from Lead where IsConverted = true", now=NOW)
    assert query.count_only is True
    assert query.fields == ()
    assert len(run(query, LEADS)) == 2


def test_plain_select_is_not_count_only_and_keeps_limit_and_offset() -> None:
    query = parse("SELECT Id FROM Lead LIMIT 3 OFFSET 1")
    assert (query.count_only, query.limit, query.offset) == (False, 3, 1)


def test_project_returns_selected_fields_in_select_order_with_nulls() -> None:
    query = parse("SELECT Rating, LastName, Email FROM Lead")
    turing = LEADS[-1]
    projected = project(query, turing)
    assert list(projected) == ["Rating", "LastName", "Email"]
    assert projected == {"Rating": "Cold", "LastName": "Turing", "Email": None}


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

TYPE_MESSAGE = (
    "value of filter criterion for field '{}' must be of type {} and should{} be enclosed"
)


@pytest.mark.parametrize(
    ("text", "error_code", "fragment"),
    [
        ("SELECT Id, Foo FROM Lead", "INVALID_FIELD", "No such column 'Foo' on entity 'Lead'."),
        (
            "SELECT Id FROM Lead WHERE Bogus__c = 1",
            "INVALID_FIELD",
            "No such column 'Bogus__c' on entity 'Lead'.",
        ),
        ("SELECT Id FROM Lead ORDER BY Nope", "INVALID_FIELD", "No such column 'Nope'"),
        ("SELECT Id FROM Foo", "INVALID_TYPE", "sObject type 'Foo' is not supported."),
        ("SELECT Id, Email, EMAIL FROM Lead", "MALFORMED_QUERY", "duplicate field selected: Email"),
        (
            "SELECT Id FROM Lead WHERE SystemModstamp > '2024-05-01T10:00:00Z'",
            "INVALID_FIELD",
            TYPE_MESSAGE.format("SystemModstamp", "dateTime", " not"),
        ),
        (
            "SELECT Id FROM Lead WHERE SystemModstamp > 2024-05-01",
            "INVALID_FIELD",
            TYPE_MESSAGE.format("SystemModstamp", "dateTime", " not"),
        ),
        (
            "SELECT Id FROM Lead WHERE ConvertedDate = 2024-05-01T00:00:00Z",
            "INVALID_FIELD",
            TYPE_MESSAGE.format("ConvertedDate", "date", " not"),
        ),
        (
            "SELECT Id FROM Lead WHERE NumberOfEmployees = '5'",
            "INVALID_FIELD",
            TYPE_MESSAGE.format("NumberOfEmployees", "integer", " not"),
        ),
        (
            "SELECT Id FROM Lead WHERE AnnualRevenue IN (5, '6')",
            "INVALID_FIELD",
            TYPE_MESSAGE.format("AnnualRevenue", "double", " not"),
        ),
        (
            "SELECT Id FROM Lead WHERE IsConverted = 'true'",
            "INVALID_FIELD",
            TYPE_MESSAGE.format("IsConverted", "boolean", " not"),
        ),
        (
            "SELECT Id FROM Lead WHERE IsConverted = 1",
            "INVALID_FIELD",
            TYPE_MESSAGE.format("IsConverted", "boolean", " not"),
        ),
        (
            "SELECT Id FROM Lead WHERE Email = 5",
            "INVALID_FIELD",
            TYPE_MESSAGE.format("Email", "string", ""),
        ),
        (
            "SELECT Id FROM Lead WHERE Email = TODAY",
            "INVALID_FIELD",
            TYPE_MESSAGE.format("Email", "string", ""),
        ),
        (
            "SELECT Id FROM Lead WHERE Email LIKE null",
            "INVALID_FIELD",
            TYPE_MESSAGE.format("Email", "string", ""),
        ),
        (
            "SELECT Id FROM Lead WHERE NumberOfEmployees LIKE '5%'",
            "INVALID_FIELD",
            "invalid operator on field 'NumberOfEmployees': LIKE",
        ),
        (
            "SELECT Id FROM Lead WHERE IsConverted > false",
            "INVALID_FIELD",
            "invalid operator on field 'IsConverted': >",
        ),
        (
            "SELECT Id FROM Lead WHERE Leadsync_Score_Reasons__c = 'x'",
            "INVALID_FIELD",
            "field 'Leadsync_Score_Reasons__c' can not be filtered in a query call",
        ),
        (
            "SELECT Id FROM Lead ORDER BY Leadsync_Score_Reasons__c",
            "INVALID_FIELD",
            "field 'Leadsync_Score_Reasons__c' can not be sorted in a query call",
        ),
        ("SELECT * FROM Lead", "MALFORMED_QUERY", "unexpected token: '*'"),
        ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY", "unexpected token: <EOF>"),
        ("SELECT Id FROM Lead LIMIT ten", "MALFORMED_QUERY", "unexpected token: 'ten'"),
        ("SELECT Id FROM Lead LIMIT -1", "MALFORMED_QUERY", "unexpected token: '-1'"),
        ("SELECT Id FROM Lead OFFSET 1 LIMIT 1", "MALFORMED_QUERY", "unexpected token: 'LIMIT'"),
        ("SELECT Id FROM Lead WHERE Email IN ()", "MALFORMED_QUERY", "unexpected token: ')'"),
        ("SELECT COUNT(Id) FROM Lead", "MALFORMED_QUERY", "unexpected token: 'Id'"),
        ('SELECT Id FROM Lead WHERE Email = "a"', "MALFORMED_QUERY", "unexpected token: '\"'"),
        (
            "SELECT Id FROM Lead WHERE Email = 'open",
            "MALFORMED_QUERY",
            "mismatched character '<EOF>' expecting '''",
        ),
        (
            "SELECT Id FROM Lead WHERE Email = 'a\\q'",
            "MALFORMED_QUERY",
            "Illegal character sequence '\\q' in string literal.",
        ),
        (
            "SELECT Id FROM Lead WHERE SystemModstamp > 2024-02-30T00:00:00Z",
            "MALFORMED_QUERY",
            "invalid dateTime: 2024-02-30T00:00:00Z",
        ),
        (
            "SELECT Id FROM Lead WHERE SystemModstamp > 2024-05-01T10:00:00.1234Z",
            "MALFORMED_QUERY",
            "invalid dateTime: 2024-05-01T10:00:00.1234Z",
        ),
        (
            "SELECT Id FROM Lead WHERE ConvertedDate = 2024-13-01",
            "MALFORMED_QUERY",
            "invalid date: 2024-13-01",
        ),
        (
            "SELECT Id FROM Lead WHERE " + "(" * 150 + "Email = null" + ")" * 150,
            "MALFORMED_QUERY",
            "too many nested parentheses",
        ),
        (
            "SELECT Id FROM Lead ORDER BY Id LIMIT 10 OFFSET 2001",
            "NUMBER_OUTSIDE_VALID_RANGE",
            "Maximum SOQL offset allowed is 2000",
        ),
    ],
)
def test_refused_queries_raise_the_salesforce_error(
    text: str, error_code: str, fragment: str
) -> None:
    error = soql_error(text)
    assert (error.error_code, fragment in error.message) == (error_code, True), error.message


def test_unknown_field_message_points_at_the_column_like_salesforce() -> None:
    error = soql_error("SELECT Id, Foo FROM Lead")
    assert error.message == (
        "\nSELECT Id, Foo FROM Lead\n"
        "           ^\n"
        "ERROR at Row:1:Column:12\n"
        "No such column 'Foo' on entity 'Lead'. If you are attempting to use a custom field, be"
        " sure to append the '__c' after the custom field name. Please reference your WSDL or"
        " the describe call for the appropriate names."
    )
    assert str(error) == f"INVALID_FIELD: {error.message}"


def test_error_location_counts_rows_and_columns_of_multiline_queries() -> None:
    error = soql_error("SELECT Id\nFROM Lead\nWHERE Foo = 1")
    assert error.message.startswith("\nWHERE Foo = 1\n      ^\nERROR at Row:3:Column:7\n")


# --------------------------------------------------------------------------------------------
# Robustness and scale
# --------------------------------------------------------------------------------------------

ERROR_CODES = {"MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE", "NUMBER_OUTSIDE_VALID_RANGE"}

VALID_QUERIES = [
    "SELECT Id, Email FROM Lead WHERE SystemModstamp > 2024-05-01T10:00:00Z ORDER BY Id LIMIT 5",
    "SELECT COUNT() FROM Lead WHERE Email LIKE '%\\_x\\%' AND (Rating = 'Hot' OR Rating = null)",
    "SELECT Id FROM Lead WHERE NOT (NumberOfEmployees IN (1, 2.5) OR AnnualRevenue NOT IN (3))",
    "SELECT Id FROM Lead WHERE CreatedDate = LAST_N_DAYS:30 ORDER BY LastName DESC NULLS LAST",
    "SELECT Name, Amount FROM Opportunity WHERE CloseDate >= TODAY AND IsWon = true OFFSET 10",
]
FRAGMENTS = [
    "(",
    ")",
    " AND ",
    " OR ",
    " NOT ",
    "'",
    "\\",
    ",",
    " IN ",
    " LIKE ",
    " null ",
    "TODAY",
    "LAST_N_DAYS:",
    "2024-05-01T10:00:00+05:30",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-23:59",
    "2024-13-01",
    " ORDER BY ",
    " LIMIT ",
    "9" * 5000,
    "%",
    ":",
    "<>",
    "=",
    "Email",
    "COUNT()",
]


@st.composite
def mutated_queries(draw: st.DrawFn) -> str:
    query = draw(st.sampled_from(VALID_QUERIES))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        start = draw(st.integers(min_value=0, max_value=len(query)))
        stop = draw(st.integers(min_value=start, max_value=min(len(query), start + 12)))
        piece = draw(st.sampled_from(FRAGMENTS) | st.text(max_size=3))
        edit = draw(st.sampled_from(["delete", "insert", "replace"]))
        if edit == "delete":
            query = query[:start] + query[stop:]
        elif edit == "insert":
            query = query[:start] + piece + query[start:]
        else:
            query = query[:start] + piece + query[stop:]
    return query


def parse_and_run_or_refuse(text: str) -> None:
    """Parse `text`; an accepted query must also run. Any other exception fails the test."""
    try:
        query = parse(text, now=NOW)
    except SoqlError as error:
        refusal = error
    else:
        run(query, LEADS)
        return
    assert refusal.error_code in ERROR_CODES
    assert refusal.message


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_raises_only_soql_error_for_random_text(text: str) -> None:
    parse_and_run_or_refuse(text)


@settings(max_examples=1000, deadline=None)
@given(mutated_queries())
def test_parse_raises_only_soql_error_for_mutated_valid_queries(text: str) -> None:
    parse_and_run_or_refuse(text)


@pytest.mark.parametrize("text", VALID_QUERIES)
def test_fuzz_seed_queries_are_valid(text: str) -> None:
    parse(text, now=NOW)


@pytest.mark.slow
def test_one_compiled_query_filters_100k_generated_leads() -> None:
    start = datetime(2023, 12, 31, tzinfo=UTC)
    count = 100_000
    records = [
        {
            "Id": lead_id(number + 1),
            "NumberOfEmployees": number % 1000,
            "Email": None if number % 7 == 0 else f"user{number}@example.com",
            "SystemModstamp": (start + timedelta(minutes=number)).strftime(
                "%Y-%m-%dT%H:%M:%S.000+0000"
            ),
        }
        for number in range(count)
    ]
    query = parse(
        "SELECT Id FROM Lead WHERE NumberOfEmployees >= 500"
        " AND (Email LIKE 'USER1%' OR Email = null)"
        " AND SystemModstamp >= 2024-01-01T00:00:00Z"
    )
    expected = sum(
        1
        for number in range(count)
        if number % 1000 >= 500
        and (number % 7 == 0 or str(number).startswith("1"))
        and number >= 24 * 60  # the first day of minutes falls in 2023
    )
    assert len(run(query, records)) == expected


def test_a_statement_past_100000_characters_is_refused() -> None:
    # A Bulk query job's SOQL travels in a body, past the URI limit a GET query meets first.
    head = "SELECT Id FROM Lead WHERE Id IN ("
    ids = [f"'{lead_id(n)}'" for n in range(1, 6000)]
    fits = head + ", ".join(ids) + ")"
    while len(fits) > 100_000:
        ids.pop()
        fits = head + ", ".join(ids) + ")"
    parse(fits)
    longer = head + ", ".join([*ids, f"'{lead_id(9999)}'"]) + ")"
    assert len(longer) > 100_000
    assert soql_error(longer).error_code == "MALFORMED_QUERY"
