"""HubSpot values on write, as HubSpot validates and normalises them (hubspot_values.py): every
rule through the official client, on single and batch writes alike."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.contacts.exceptions import ApiException
from hubspot.crm.properties import PropertyCreate

from leadsync.sandbox import Sandbox
from leadsync.sandbox.hubspot_values import STRING_LIMIT
from tests.sandbox.test_hubspot_api import (
    _assert_property_error,
    batch_update,
    create,
    stored,
    update,
)

# Portal-defined properties of each type the tests write (datetime and number exist already).
DAY = "renewal_day"
FLAG = "newsletter_opt_in"


@pytest.fixture
def portal(hubspot: HubSpot) -> HubSpot:
    """The sandbox portal with a `date` and a `bool` property of its own."""
    for name, kind, field_type in ((DAY, "date", "date"), (FLAG, "bool", "booleancheckbox")):
        hubspot.crm.properties.core_api.create(
            "contacts",
            PropertyCreate(name=name, label=name, type=kind, field_type=field_type, group_name="x"),
        )
    return hubspot


def written(hubspot: HubSpot, name: str, value: Any) -> str | None:
    contact = create(hubspot, email="values@example.com")
    batch_update(hubspot, contact.id, **{name: value})
    return stored(hubspot, contact.id, name)[name]


ACCEPTED = [
    # datetime: epoch ms or zoned ISO in, ISO UTC with milliseconds out
    pytest.param("salesforcelastsynctime", "1714557600123", "2024-05-01T10:00:00.123Z", id="ms"),
    pytest.param(
        "salesforcelastsynctime",
        "2024-05-01T12:00:00+02:00",
        "2024-05-01T10:00:00.000Z",
        id="iso with offset",
    ),
    # date: a day, or midnight UTC in ms, out as the day
    pytest.param(DAY, "2024-05-01", "2024-05-01", id="date as day"),
    pytest.param(DAY, "1714521600000", "2024-05-01", id="date as midnight ms"),
    # number: kept as sent
    pytest.param("webinars_attended", "-12.50", "-12.50", id="decimal"),
    pytest.param(FLAG, "true", "true", id="bool"),
    pytest.param("jobtitle", "x" * STRING_LIMIT, "x" * STRING_LIMIT, id="longest string"),
    pytest.param("jobtitle", "  padded  ", "  padded  ", id="strings keep their spaces"),
]


@pytest.mark.parametrize(("name", "value", "kept"), ACCEPTED)
def test_accepted_values_are_stored_as_hubspot_returns_them(
    portal: HubSpot, name: str, value: str, kept: str
) -> None:
    assert written(portal, name, value) == kept


REFUSED = [
    pytest.param("salesforcelastsynctime", "2024-05-01T10:00:00", "INVALID_DATETIME", id="no zone"),
    pytest.param("salesforcelastsynctime", "yesterday", "INVALID_DATETIME", id="a word"),
    pytest.param(DAY, "1714557600000", "INVALID_DATE", id="date not at midnight"),
    pytest.param(DAY, "2024-02-30", "INVALID_DATE", id="no such day"),
    pytest.param("webinars_attended", "1e3", "INVALID_DECIMAL", id="exponent"),
    pytest.param("webinars_attended", "nan", "INVALID_DECIMAL", id="nan"),
    pytest.param("webinars_attended", "1,000", "INVALID_DECIMAL", id="thousands comma"),
    pytest.param("webinars_attended", "1.2.3", "INVALID_DECIMAL", id="two points"),
    pytest.param("webinars_attended", "\u0663", "INVALID_DECIMAL", id="non-ascii digit"),
    pytest.param("salesforcelastsynctime", "\u0661" * 13, "INVALID_DATETIME", id="non-ascii ms"),
    pytest.param("webinars_attended", " 5", "LEADING_TRAILING_WHITESPACE", id="padded number"),
    pytest.param("lifecyclestage", "lead\u200b", "LEADING_TRAILING_WHITESPACE", id="invisible"),
    pytest.param(FLAG, "True", "INVALID_BOOLEAN", id="bool spelling"),
    pytest.param("jobtitle", "x" * (STRING_LIMIT + 1), "INVALID_STRING_LENGTH", id="too long"),
]


@pytest.mark.parametrize(("name", "value", "code"), REFUSED)
def test_refused_values_fail_single_and_batch_writes_alike(
    portal: HubSpot, name: str, value: str, code: str
) -> None:
    contact = create(portal, email="values@example.com")
    with pytest.raises(ApiException) as single:
        update(portal, contact.id, **{name: value})
    _assert_property_error(single.value, name, code)
    with pytest.raises(ApiException) as batch:
        batch_update(portal, contact.id, **{name: value})
    _assert_property_error(batch.value, name, code)
    assert stored(portal, contact.id, name)[name] is None


# ------------------------------------------------------------------------------ clearing


@pytest.mark.parametrize("write", [update, batch_update], ids=["update", "batch update"])
def test_a_cleared_property_reads_back_as_an_empty_string_a_never_set_one_as_null(
    hubspot: HubSpot, write: Any
) -> None:
    # HubSpot answers "" for a property that held a value and was cleared, null for one that
    # never held any (estuary/connectors#4272, singer-io/tap-hubspot#300).
    contact = create(hubspot, email="cleared@example.com", jobtitle="CTO")
    write(hubspot, contact.id, jobtitle="")
    read = stored(hubspot, contact.id, "jobtitle", "city")
    assert (read["jobtitle"], read["city"]) == ("", None)
    listed = hubspot.crm.contacts.basic_api.get_page(limit=100, properties=["jobtitle"])
    assert {c.id: c.properties["jobtitle"] for c in listed.results}[contact.id] == ""


def test_a_null_value_is_accepted_and_changes_nothing(hubspot: HubSpot, sandbox: Sandbox) -> None:
    # "Calling update with { hs_next_step: null } results in a successful response, but the
    # value is not cleared": only "" clears (HubSpot/hubspot-api-nodejs#324, HubSpot's answer).
    contact = create(hubspot, email="null@example.com", jobtitle="CTO", city="Lyon")
    with requests.Session() as session:
        session.trust_env = False
        answer = session.patch(
            f"{sandbox.url}/crm/v3/objects/contacts/{contact.id}",
            json={"properties": {"jobtitle": None, "city": "Paris"}},
            headers={"Authorization": "Bearer sandbox-token"},
            timeout=10,
        )
    assert answer.status_code == 200
    read = stored(hubspot, contact.id, "jobtitle", "city")
    assert (read["jobtitle"], read["city"]) == ("CTO", "Paris")


# ------------------------------------------------------------------------------ request shape


def _raw(sandbox: Sandbox, method: str, path: str, body: Any) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        return session.request(
            method,
            f"{sandbox.url}/crm/v3/objects/contacts{path}",
            json=body,
            headers={"Authorization": "Bearer sandbox-token"},
            timeout=10,
        )


def _assert_invalid_json(answer: requests.Response, *parts: str) -> None:
    # HubSpot's models read the body first: what does not fit them is refused before any
    # value is looked at, with the parser's message and no category (hubspot-api-python#307:
    # "Invalid input JSON on line 1, column 92: Cannot deserialize value of type
    # `java.lang.String` from Array value (token `JsonToken.START_ARRAY`)").
    assert answer.status_code == 400
    body = answer.json()
    assert set(body) == {"status", "message", "correlationId"}
    assert body["message"].startswith("Invalid input JSON")
    for part in parts:
        assert part in body["message"]
    assert "'" not in body["message"]  # never a Python repr


@pytest.mark.parametrize(
    ("value", "token"),
    [
        pytest.param({"city": "Paris"}, "from Object value", id="an object"),
        pytest.param(["Paris"], "from Array value", id="an array"),
    ],
)
def test_a_value_that_is_no_string_refuses_the_request_as_invalid_json(
    hubspot: HubSpot, sandbox: Sandbox, value: Any, token: str
) -> None:
    contact = create(hubspot, email="shape@example.com", city="Lyon")
    other = create(hubspot, email="other@example.com", city="Lyon")
    single = _raw(sandbox, "PATCH", f"/{contact.id}", {"properties": {"city": value}})
    _assert_invalid_json(single, token)
    batch = _raw(
        sandbox,
        "POST",
        "/batch/update",
        {
            "inputs": [
                {"id": other.id, "properties": {"city": "Paris"}},
                {"id": contact.id, "properties": {"city": value}},
            ]
        },
    )
    _assert_invalid_json(batch, token)
    assert stored(hubspot, contact.id, "city")["city"] == "Lyon"
    assert stored(hubspot, other.id, "city")["city"] == "Lyon"


@pytest.mark.parametrize(
    ("path", "item", "missing"),
    [
        pytest.param("/batch/update", {"properties": {"city": "Paris"}}, "id", id="update id"),
        pytest.param("/batch/update", {"id": "CONTACT"}, "properties", id="update properties"),
        pytest.param(
            "/batch/upsert",
            {"idProperty": "email", "id": "shape@example.com"},
            "properties",
            id="upsert properties",
        ),
        pytest.param("/batch/create", {}, "properties", id="create properties"),
    ],
)
def test_a_batch_input_without_a_required_attribute_refuses_the_batch(
    hubspot: HubSpot, sandbox: Sandbox, path: str, item: dict[str, Any], missing: str
) -> None:
    contact = create(hubspot, email="shape@example.com", city="Lyon")
    before = sandbox.hubspot.snapshot()
    item = {k: contact.id if v == "CONTACT" else v for k, v in item.items()}
    fine = {"id": contact.id, "properties": {"city": "Paris"}}
    if path == "/batch/upsert":
        fine = {"idProperty": "email", "id": "new@example.com", "properties": {"city": "Paris"}}
    elif path == "/batch/create":
        fine = {"properties": {"email": "new@example.com"}}
    answer = _raw(sandbox, "POST", path, {"inputs": [fine, item]})
    _assert_invalid_json(answer, "some of required attributes are not set", f"[{missing}]")
    assert sandbox.hubspot.snapshot() == before


@pytest.mark.parametrize(
    ("method", "path", "model"),
    [
        pytest.param("PATCH", "/CONTACT", "SimplePublicObjectInput", id="update"),
        pytest.param("POST", "", "SimplePublicObjectInputForCreate", id="create"),
    ],
)
def test_a_single_write_without_properties_is_refused_as_invalid_json(
    hubspot: HubSpot, sandbox: Sandbox, method: str, path: str, model: str
) -> None:
    contact = create(hubspot, email="shape@example.com", city="Lyon")
    before = sandbox.hubspot.snapshot()
    answer = _raw(sandbox, method, path.replace("CONTACT", contact.id), {})
    _assert_invalid_json(answer, f"Cannot build {model}", "[properties]")
    assert sandbox.hubspot.snapshot() == before


def test_a_batch_update_lists_every_bad_value_of_every_input(hubspot: HubSpot) -> None:
    first = create(hubspot, email="first@example.com")
    second = create(hubspot, email="second@example.com")
    with pytest.raises(ApiException) as refused:
        hubspot.crm.contacts.batch_api.update(
            {
                "inputs": [
                    {"id": first.id, "properties": {"webinars_attended": "many", "city": "Oslo"}},
                    {"id": second.id, "properties": {"numemployees": "7"}},
                ]
            }
        )
    body = json.loads(refused.value.body)
    prefix = "Property values were not valid: "
    listed = json.loads(body["message"][len(prefix) :])
    assert [(item["name"], item["error"]) for item in listed] == [
        ("webinars_attended", "INVALID_DECIMAL"),
        ("numemployees", "INVALID_OPTION"),
    ]
    assert [e["context"]["propertyName"] for e in body["errors"]] == [
        ["webinars_attended"],
        ["numemployees"],
    ]
    assert stored(hubspot, first.id, "city")["city"] is None
