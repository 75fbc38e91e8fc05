"""The sandbox's HubSpot CRM v3, driven by the official hubspot-api-client over loopback HTTP.

Every test talks to the sandbox the way a connector does (basic, batch, search and properties
APIs with the client's own model classes) and checks what CRM_FACTS.md says HubSpot does,
errors included. Rate limits, search lag and the 10,000-result cap are in
test_hubspot_limits.py, where a fake clock drives time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import requests
import urllib3
from hubspot import HubSpot
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    BatchResponseSimplePublicObject,
    BatchResponseSimplePublicObjectWithErrors,
    BatchResponseSimplePublicUpsertObject,
    CollectionResponseWithTotalSimplePublicObjectForwardPaging,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObject,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import (
    ApiException,
    NotFoundException,
    ServiceException,
    UnauthorizedException,
)
from hubspot.crm.properties import ModelProperty, OptionInput, PropertyCreate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from hubspot.crm.properties.exceptions import NotFoundException as PropertyNotFoundException
from hubspot.crm.properties.exceptions import (
    UnauthorizedException as PropertiesUnauthorizedException,
)
from urllib3.util.retry import Retry

from leadsync.sandbox import Sandbox
from leadsync.sandbox.schema import LIFECYCLE_STAGES

ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MISSING_ID = "999999"
LEADS = 60


# ------------------------------------------------------------------------------ helpers


def body_of(error: Any) -> dict[str, Any]:
    """The JSON body of an ApiException (the client leaves it as text)."""
    parsed = json.loads(error.body)
    assert isinstance(parsed, dict)
    return parsed


def live_ids(sandbox: Sandbox) -> list[str]:
    return sorted((c["id"] for c in sandbox.hubspot.snapshot()), key=int)


def create(hubspot: HubSpot, **properties: Any) -> SimplePublicObject:
    return hubspot.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties=properties)
    )


def update(hubspot: HubSpot, contact_id: str, **properties: Any) -> SimplePublicObject:
    return hubspot.crm.contacts.basic_api.update(
        contact_id, SimplePublicObjectInput(properties=properties)
    )


def batch_update(hubspot: HubSpot, contact_id: str, **properties: Any) -> Any:
    return hubspot.crm.contacts.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=contact_id, properties=properties)]
        )
    )


def batch_upsert_by_email(hubspot: HubSpot, email: str, **properties: Any) -> Any:
    return hubspot.crm.contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(
                    id=email, id_property="email", properties=properties
                )
            ]
        )
    )


def stored(hubspot: HubSpot, contact_id: str, *names: str) -> dict[str, str | None]:
    """A contact's properties as a fresh read through the client returns them."""
    found = hubspot.crm.contacts.basic_api.get_by_id(contact_id, properties=list(names))
    properties: dict[str, str | None] = found.properties
    return properties


def _url(control: requests.Session, path: str) -> str:
    """An inspection-API address; the `control` fixture keeps the sandbox URL in `.base`."""
    base: str = control.base  # type: ignore[attr-defined]
    return base + path


def search(hubspot: HubSpot, **request: Any) -> Any:
    return hubspot.crm.contacts.search_api.do_search(PublicObjectSearchRequest(**request))


# ------------------------------------------------------------------------------ auth


WRONG_TOKEN_CALLS: dict[str, Callable[[HubSpot], Any]] = {
    "list": lambda hs: hs.crm.contacts.basic_api.get_page(limit=1),
    "get": lambda hs: hs.crm.contacts.basic_api.get_by_id("1001"),
    "create": lambda hs: hs.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "new@example.com"})
    ),
    "batch read": lambda hs: hs.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id="1001")])
    ),
    "search": lambda hs: hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest()),
    "properties": lambda hs: hs.crm.properties.core_api.get_all("contacts"),
}


@pytest.mark.parametrize("call", WRONG_TOKEN_CALLS.values(), ids=WRONG_TOKEN_CALLS.keys())
def test_a_wrong_bearer_token_is_refused_with_401(
    sandbox: Sandbox, call: Callable[[HubSpot], Any]
) -> None:
    intruder = HubSpot(access_token="not-the-token", host=sandbox.url, retry=Retry(0))
    with pytest.raises((UnauthorizedException, PropertiesUnauthorizedException)) as refused:
        call(intruder)
    assert refused.value.status == 401
    assert body_of(refused.value)["category"] == "INVALID_AUTHENTICATION"
    assert len(sandbox.hubspot.snapshot()) == LEADS  # nothing was created


@pytest.mark.parametrize(
    ("headers", "params", "status"),
    [
        pytest.param({"Authorization": "Bearer sandbox-token"}, {}, 200, id="bearer"),
        pytest.param({"Authorization": "sandbox-token"}, {}, 401, id="no Bearer prefix"),
        pytest.param({"Authorization": "Basic c2FuZGJveC10b2tlbg=="}, {}, 401, id="basic"),
        pytest.param({}, {"hapikey": "sandbox-token"}, 401, id="legacy hapikey"),
        pytest.param({}, {}, 401, id="no credentials"),
    ],
)
def test_only_a_bearer_header_authenticates(
    sandbox: Sandbox, headers: dict[str, str], params: dict[str, str], status: int
) -> None:
    with requests.Session() as session:
        session.trust_env = False
        answer = session.get(
            f"{sandbox.url}/crm/v3/objects/contacts", headers=headers, params=params, timeout=10
        )
    assert answer.status_code == status


# ------------------------------------------------------------------------------ list and get


def test_list_pages_with_after_until_paging_is_absent(hubspot: HubSpot, sandbox: Sandbox) -> None:
    seen: list[str] = []
    cursors: list[str] = []
    kwargs: dict[str, Any] = {"limit": 7}
    while True:
        page = hubspot.crm.contacts.basic_api.get_page(**kwargs)
        seen.extend(contact.id for contact in page.results)
        if page.paging is None:
            break
        cursors.append(page.paging.next.after)
        kwargs["after"] = page.paging.next.after
    assert seen == live_ids(sandbox)
    assert len(cursors) == -(-LEADS // 7) - 1  # one cursor per page but the last
    assert all(cursor.isdigit() for cursor in cursors)


@pytest.mark.parametrize("limit", [1, 100])
def test_list_accepts_limits_up_to_100(hubspot: HubSpot, limit: int) -> None:
    page = hubspot.crm.contacts.basic_api.get_page(limit=limit)
    assert len(page.results) == min(limit, LEADS)


@pytest.mark.parametrize("limit", [0, 101])
def test_list_refuses_limits_outside_1_to_100(hubspot: HubSpot, limit: int) -> None:
    with pytest.raises(ApiException) as refused:
        hubspot.crm.contacts.basic_api.get_page(limit=limit)
    assert refused.value.status == 400
    assert body_of(refused.value)["category"] == "VALIDATION_ERROR"


def test_list_without_properties_returns_the_default_set(hubspot: HubSpot) -> None:
    page = hubspot.crm.contacts.basic_api.get_page(limit=5)
    for contact in page.results:
        assert set(contact.properties) == {
            "createdate",
            "email",
            "firstname",
            "hs_object_id",
            "lastmodifieddate",
            "lastname",
        }


def test_every_property_value_comes_back_as_a_string(hubspot: HubSpot) -> None:
    # The client sends Python ints and floats as JSON numbers; HubSpot keeps strings.
    created = create(
        hubspot, email="numbers@example.com", webinars_attended=3, pricing_page_views=2.5
    )
    assert created.properties["webinars_attended"] == "3"
    assert created.properties["pricing_page_views"] == "2.5"
    names = ["email", "webinars_attended", "hs_analytics_num_page_views", "lifecyclestage"]
    page = hubspot.crm.contacts.basic_api.get_page(limit=100, properties=names)
    assert len(page.results) == LEADS + 1
    for contact in page.results:
        values = contact.properties
        assert all(value is None or isinstance(value, str) for value in values.values())
        assert values["hs_object_id"] == contact.id
        assert ISO_MS_Z.match(values["createdate"])
        assert ISO_MS_Z.match(values["lastmodifieddate"])
        assert contact.archived is False


def test_list_archived_true_lists_only_archived_contacts(
    hubspot: HubSpot, sandbox: Sandbox
) -> None:
    gone = live_ids(sandbox)[:3]
    for contact_id in reversed(gone):
        hubspot.crm.contacts.basic_api.archive(contact_id)
    # The client sends the boolean as "True".
    archived = hubspot.crm.contacts.basic_api.get_page(limit=100, archived=True)
    live = hubspot.crm.contacts.basic_api.get_page(limit=100, archived=False)
    assert [c.id for c in archived.results] == gone
    assert all(c.archived and c.archived_at is not None for c in archived.results)
    assert not set(gone) & {c.id for c in live.results}
    assert len(live.results) == LEADS - 3


def test_get_by_id_returns_requested_properties_even_when_empty(
    hubspot: HubSpot, sandbox: Sandbox
) -> None:
    contact_id = live_ids(sandbox)[0]
    update(hubspot, contact_id, jobtitle="Buyer", phone="")
    found = hubspot.crm.contacts.basic_api.get_by_id(contact_id, properties=["jobtitle", "phone"])
    assert found.id == contact_id
    assert found.properties["jobtitle"] == "Buyer"
    assert found.properties["phone"] == ""  # cleared: "", where a never-set one is null
    assert found.properties["hs_object_id"] == contact_id
    assert set(found.properties) == {
        "jobtitle",
        "phone",
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
    }


def test_get_by_email_with_id_property(hubspot: HubSpot) -> None:
    created = create(hubspot, email="lookup@example.com")
    found = hubspot.crm.contacts.basic_api.get_by_id("Lookup@Example.com", id_property="email")
    assert found.id == created.id


def test_get_of_an_unknown_id_raises_not_found(hubspot: HubSpot) -> None:
    with pytest.raises(NotFoundException) as missing:
        hubspot.crm.contacts.basic_api.get_by_id(MISSING_ID)
    assert missing.value.status == 404
    body = body_of(missing.value)
    assert body["status"] == "error"
    assert body["category"] == "OBJECT_NOT_FOUND"
    assert body["correlationId"]


# ------------------------------------------------------------------------------ create, update


def test_create_answers_201_with_the_new_contact(hubspot: HubSpot, sandbox: Sandbox) -> None:
    before = [int(i) for i in live_ids(sandbox)]
    created, status, _ = hubspot.crm.contacts.basic_api.create_with_http_info(
        SimplePublicObjectInputForCreate(
            properties={
                "email": "grace@example.com",
                "firstname": "Grace",
                "lifecyclestage": "lead",
            }
        )
    )
    assert status == 201
    assert isinstance(created, SimplePublicObject)
    assert int(created.id) > max(before)
    assert created.properties["email"] == "grace@example.com"
    assert created.properties["lifecyclestage"] == "lead"
    assert created.properties["createdate"] == created.properties["lastmodifieddate"]
    assert created.created_at == created.updated_at
    assert stored(hubspot, created.id, "firstname")["firstname"] == "Grace"


@pytest.mark.parametrize("email", ["taken@example.com", "TAKEN@Example.COM"])
def test_create_with_an_existing_email_conflicts(hubspot: HubSpot, email: str) -> None:
    first = create(hubspot, email="taken@example.com")
    with pytest.raises(ApiException) as conflict:
        create(hubspot, email=email, firstname="Second")
    assert conflict.value.status == 409
    body = body_of(conflict.value)
    assert body["category"] == "CONFLICT"
    assert body["message"] == f"Contact already exists. Existing ID: {first.id}"


def test_update_changes_only_the_given_properties(hubspot: HubSpot) -> None:
    created = create(hubspot, email="ada@example.com", firstname="Ada", jobtitle="Analyst")
    updated = update(hubspot, created.id, jobtitle="Engineer")
    assert updated.properties["jobtitle"] == "Engineer"
    assert stored(hubspot, created.id, "firstname", "jobtitle") == {
        "firstname": "Ada",
        "jobtitle": "Engineer",
        "hs_object_id": created.id,
        "createdate": created.properties["createdate"],
        "lastmodifieddate": updated.properties["lastmodifieddate"],
    }


def test_update_of_an_unknown_id_raises_not_found(hubspot: HubSpot) -> None:
    with pytest.raises(NotFoundException):
        update(hubspot, MISSING_ID, jobtitle="Ghost")


def _write_by_update(hubspot: HubSpot, contact_id: str, email: str) -> None:
    update(hubspot, contact_id, jobtitle="CTO")


def _write_by_batch_update(hubspot: HubSpot, contact_id: str, email: str) -> None:
    batch_update(hubspot, contact_id, jobtitle="CTO")


def _write_by_batch_upsert(hubspot: HubSpot, contact_id: str, email: str) -> None:
    batch_upsert_by_email(hubspot, email, jobtitle="CTO")


@pytest.mark.parametrize(
    "write",
    [_write_by_update, _write_by_batch_update, _write_by_batch_upsert],
    ids=["update", "batch update", "batch upsert"],
)
def test_every_write_moves_lastmodifieddate_forward(
    hubspot: HubSpot, write: Callable[[HubSpot, str, str], None]
) -> None:
    created = create(hubspot, email="mover@example.com")
    stamps = [created.properties["lastmodifieddate"]]
    for _ in range(3):  # back to back, usually within one millisecond
        write(hubspot, created.id, "mover@example.com")
        after = hubspot.crm.contacts.basic_api.get_by_id(created.id, properties=["jobtitle"])
        assert after.properties["jobtitle"] == "CTO"
        assert after.updated_at == datetime.fromisoformat(after.properties["lastmodifieddate"])
        stamps.append(after.properties["lastmodifieddate"])
    assert stamps == sorted(set(stamps))  # strictly increasing


# ------------------------------------------------------------------------------ lifecycle stage


def _stage_by_update(hubspot: HubSpot, contact_id: str, stage: str) -> None:
    update(hubspot, contact_id, lifecyclestage=stage)


def _stage_by_batch_update(hubspot: HubSpot, contact_id: str, stage: str) -> None:
    result = batch_update(hubspot, contact_id, lifecyclestage=stage)
    assert isinstance(result, BatchResponseSimplePublicObject)  # 200: an ignored write is no error


@pytest.mark.parametrize(
    "write", [_stage_by_update, _stage_by_batch_update], ids=["update", "batch update"]
)
@pytest.mark.parametrize(
    ("start", "writes", "kept"),
    [
        pytest.param("lead", ["marketingqualifiedlead"], "marketingqualifiedlead", id="forward"),
        pytest.param("subscriber", ["customer"], "customer", id="forward, skipping stages"),
        pytest.param("salesqualifiedlead", ["lead"], "salesqualifiedlead", id="backward ignored"),
        pytest.param("customer", ["subscriber", "opportunity"], "customer", id="twice backward"),
        pytest.param("customer", ["", "lead"], "lead", id="cleared first, then back"),
        pytest.param("opportunity", [""], "", id="cleared"),
    ],
)
def test_lifecyclestage_only_moves_forward_unless_cleared_first(
    hubspot: HubSpot,
    write: Callable[[HubSpot, str, str], None],
    start: str,
    writes: list[str],
    kept: str,
) -> None:
    created = create(hubspot, email="stage@example.com", lifecyclestage=start)
    for stage in writes:  # each a separate request, as HubSpot's docs require
        write(hubspot, created.id, stage)
    assert stored(hubspot, created.id, "lifecyclestage")["lifecyclestage"] == kept


# ------------------------------------------------------------------------------ validation

INVALID_WRITES = [
    pytest.param("favourite_colour", "blue", "PROPERTY_DOESNT_EXIST", id="unknown property"),
    pytest.param("lifecyclestage", "prospect", "INVALID_OPTION", id="not a lifecycle option"),
    pytest.param("numemployees", "7", "INVALID_OPTION", id="not an employee range"),
    pytest.param("hs_analytics_num_page_views", "5", "READ_ONLY_VALUE", id="read-only"),
    pytest.param("lastmodifieddate", "2024-01-01T00:00:00Z", "READ_ONLY_VALUE", id="derived"),
    pytest.param("webinars_attended", "several", "INVALID_DECIMAL", id="not a number"),
    pytest.param("email", "not-an-email", "INVALID_EMAIL", id="bad email"),
]


def _assert_property_error(error: Any, name: str, code: str) -> None:
    assert error.status == 400
    body = body_of(error)
    assert body["status"] == "error"
    assert body["category"] == "VALIDATION_ERROR"
    # HubSpot's message lists the bad values as JSON, never as a Python repr.
    prefix = "Property values were not valid: "
    assert body["message"].startswith(prefix)
    listed = json.loads(body["message"][len(prefix) :])
    assert [(item["error"], item["name"], item["isValid"]) for item in listed] == [
        (code, name, False)
    ]
    assert [(e["code"], e["context"]["propertyName"]) for e in body["errors"]] == [(code, [name])]


@pytest.mark.parametrize(("name", "value", "code"), INVALID_WRITES)
def test_create_with_an_invalid_property_is_rejected(
    hubspot: HubSpot, sandbox: Sandbox, name: str, value: str, code: str
) -> None:
    with pytest.raises(ApiException) as refused:
        create(hubspot, **{"email": "valid@example.com", name: value})
    _assert_property_error(refused.value, name, code)
    assert len(sandbox.hubspot.snapshot()) == LEADS


@pytest.mark.parametrize(("name", "value", "code"), INVALID_WRITES)
def test_update_with_an_invalid_property_changes_nothing(
    hubspot: HubSpot, name: str, value: str, code: str
) -> None:
    created = create(hubspot, email="valid@example.com", jobtitle="Before")
    with pytest.raises(ApiException) as refused:
        update(hubspot, created.id, jobtitle="After", **{name: value})
    _assert_property_error(refused.value, name, code)
    after = stored(hubspot, created.id, "jobtitle")
    assert after["jobtitle"] == "Before"
    assert after["lastmodifieddate"] == created.properties["lastmodifieddate"]


# ------------------------------------------------------------------------------ archive


def test_archive_answers_204_and_hides_the_contact(hubspot: HubSpot, sandbox: Sandbox) -> None:
    contact_id = live_ids(sandbox)[0]
    result, status, _ = hubspot.crm.contacts.basic_api.archive_with_http_info(contact_id)
    assert (result, status) == (None, 204)
    with pytest.raises(NotFoundException):
        hubspot.crm.contacts.basic_api.get_by_id(contact_id)
    page = hubspot.crm.contacts.basic_api.get_page(limit=100)
    assert contact_id not in {c.id for c in page.results}


def test_an_archived_contact_is_read_with_archived_true_only(
    hubspot: HubSpot, sandbox: Sandbox
) -> None:
    contact_id = live_ids(sandbox)[0]
    live = live_ids(sandbox)[1]
    hubspot.crm.contacts.basic_api.archive(contact_id)
    found = hubspot.crm.contacts.basic_api.get_by_id(contact_id, archived=True)
    assert (found.id, found.archived) == (contact_id, True)
    assert found.archived_at is not None
    # archived=true returns only archived records: a live one is not found that way.
    with pytest.raises(NotFoundException):
        hubspot.crm.contacts.basic_api.get_by_id(live, archived=True)


def test_archive_of_an_unknown_id_still_answers_204(hubspot: HubSpot, sandbox: Sandbox) -> None:
    _, status, _ = hubspot.crm.contacts.basic_api.archive_with_http_info(MISSING_ID)
    assert status == 204
    assert len(sandbox.hubspot.snapshot()) == LEADS


# ------------------------------------------------------------------------------ batches


def test_batch_read_of_found_ids_answers_200(hubspot: HubSpot, sandbox: Sandbox) -> None:
    wanted = live_ids(sandbox)[:3]
    response, status, _ = hubspot.crm.contacts.batch_api.read_with_http_info(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in wanted], properties=["company"]
        )
    )
    assert status == 200
    assert isinstance(response, BatchResponseSimplePublicObject)
    assert response.status == "COMPLETE"
    assert sorted((r.id for r in response.results), key=int) == wanted
    assert all("company" in r.properties for r in response.results)


def test_batch_read_with_a_missing_id_answers_207_with_errors(
    hubspot: HubSpot, sandbox: Sandbox
) -> None:
    wanted = live_ids(sandbox)[:2]
    response, status, _ = hubspot.crm.contacts.batch_api.read_with_http_info(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in [*wanted, MISSING_ID]],
            properties=["email"],
        )
    )
    assert status == 207
    assert isinstance(response, BatchResponseSimplePublicObjectWithErrors)
    assert sorted((r.id for r in response.results), key=int) == wanted
    assert response.num_errors == 1
    [error] = response.errors
    assert (error.status, error.category) == ("error", "OBJECT_NOT_FOUND")
    assert error.context == {"ids": [MISSING_ID]}


def test_batch_read_with_archived_true_reads_archived_contacts_only(
    hubspot: HubSpot, sandbox: Sandbox
) -> None:
    # `archived` on batch/read: "Whether to return only results that have been archived"
    # (HubSpot's OpenAPI spec for contacts), as on a single read.
    gone, live = live_ids(sandbox)[:2]
    hubspot.crm.contacts.basic_api.archive(gone)
    body = BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id=gone), SimplePublicObjectId(id=live)], properties=["email"]
    )
    archived = hubspot.crm.contacts.batch_api.read(body, archived=True)
    assert [(r.id, r.archived) for r in archived.results] == [(gone, True)]
    assert archived.errors[0].context == {"ids": [live]}
    current = hubspot.crm.contacts.batch_api.read(body)
    assert [(r.id, r.archived) for r in current.results] == [(live, False)]


def test_batch_read_by_email(hubspot: HubSpot) -> None:
    created = create(hubspot, email="reader@example.com")
    response = hubspot.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            id_property="email",
            inputs=[SimplePublicObjectId(id="reader@example.com")],
            properties=["email"],
        )
    )
    assert [r.id for r in response.results] == [created.id]


def test_batch_create_answers_201_with_every_new_contact(
    hubspot: HubSpot, sandbox: Sandbox
) -> None:
    emails = ["one@example.com", "two@example.com"]
    response, status, _ = hubspot.crm.contacts.batch_api.create_with_http_info(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[SimplePublicObjectBatchInputForCreate(properties={"email": e}) for e in emails]
        )
    )
    assert status == 201
    assert isinstance(response, BatchResponseSimplePublicObject)
    assert sorted(r.properties["email"] for r in response.results) == emails
    assert len(sandbox.hubspot.snapshot()) == LEADS + 2


@pytest.mark.parametrize("email", ["taken@example.com", "Taken@EXAMPLE.com"])
def test_batch_create_with_an_existing_email_fails_whole_with_409(
    hubspot: HubSpot, sandbox: Sandbox, email: str
) -> None:
    first = create(hubspot, email="taken@example.com")
    with pytest.raises(ApiException) as conflict:
        hubspot.crm.contacts.batch_api.create(
            BatchInputSimplePublicObjectBatchInputForCreate(
                inputs=[
                    SimplePublicObjectBatchInputForCreate(
                        properties={"email": "fresh@example.com"}
                    ),
                    SimplePublicObjectBatchInputForCreate(properties={"email": email}),
                ]
            )
        )
    assert conflict.value.status == 409
    body = body_of(conflict.value)
    assert body["category"] == "CONFLICT"
    assert body["message"] == f"Contact already exists. Existing ID: {first.id}"
    emails = {c["properties"].get("email") for c in sandbox.hubspot.snapshot()}
    assert "fresh@example.com" not in emails  # nothing of the batch was created


def test_batch_update_with_missing_records_answers_207_and_applies_the_rest(
    hubspot: HubSpot,
) -> None:
    good = create(hubspot, email="good@example.com")
    response, status, _ = hubspot.crm.contacts.batch_api.update_with_http_info(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(id=good.id, properties={"jobtitle": "Head"}),
                SimplePublicObjectBatchInput(id=MISSING_ID, properties={"jobtitle": "Ghost"}),
            ]
        )
    )
    assert status == 207
    assert isinstance(response, BatchResponseSimplePublicObjectWithErrors)
    assert [(r.id, r.properties["jobtitle"]) for r in response.results] == [(good.id, "Head")]
    assert response.num_errors == 1
    [error] = response.errors
    assert (error.category, error.context) == ("OBJECT_NOT_FOUND", {"ids": [MISSING_ID]})
    # The StandardError of HubSpot's OpenAPI spec requires these, empty or not.
    assert (error.status, error.errors, error.links) == ("error", [], {})
    assert stored(hubspot, good.id, "jobtitle")["jobtitle"] == "Head"


def test_batch_update_with_one_invalid_value_is_refused_whole(hubspot: HubSpot) -> None:
    good = create(hubspot, email="good@example.com")
    bad = create(hubspot, email="bad@example.com", lifecyclestage="lead")
    with pytest.raises(ApiException) as refused:
        hubspot.crm.contacts.batch_api.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[
                    SimplePublicObjectBatchInput(id=good.id, properties={"jobtitle": "Head"}),
                    SimplePublicObjectBatchInput(id=MISSING_ID, properties={"jobtitle": "X"}),
                    SimplePublicObjectBatchInput(id=bad.id, properties={"lifecyclestage": "nope"}),
                ]
            )
        )
    _assert_property_error(refused.value, "lifecyclestage", "INVALID_OPTION")
    assert stored(hubspot, good.id, "jobtitle")["jobtitle"] is None
    assert stored(hubspot, bad.id, "lifecyclestage")["lifecyclestage"] == "lead"


def test_batch_update_by_email_id_property(hubspot: HubSpot) -> None:
    created = create(hubspot, email="by-email@example.com")
    response, status, _ = hubspot.crm.contacts.batch_api.update_with_http_info(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[
                SimplePublicObjectBatchInput(
                    id="by-email@example.com", id_property="email", properties={"jobtitle": "VP"}
                )
            ]
        )
    )
    assert status == 200
    assert [r.id for r in response.results] == [created.id]
    assert stored(hubspot, created.id, "jobtitle")["jobtitle"] == "VP"


def test_batch_update_with_a_duplicate_id_is_rejected(hubspot: HubSpot) -> None:
    created = create(hubspot, email="twice@example.com")
    with pytest.raises(ApiException) as refused:
        hubspot.crm.contacts.batch_api.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[
                    SimplePublicObjectBatchInput(id=created.id, properties={"jobtitle": "A"}),
                    SimplePublicObjectBatchInput(id=created.id, properties={"jobtitle": "B"}),
                ]
            )
        )
    assert refused.value.status == 400
    assert body_of(refused.value)["category"] == "VALIDATION_ERROR"
    assert stored(hubspot, created.id, "jobtitle")["jobtitle"] is None


def test_batch_upsert_by_email_updates_or_creates(hubspot: HubSpot, sandbox: Sandbox) -> None:
    existing = create(hubspot, email="known@example.com", jobtitle="Old")
    response, status, _ = hubspot.crm.contacts.batch_api.upsert_with_http_info(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(
                    id="known@example.com", id_property="email", properties={"jobtitle": "New"}
                ),
                SimplePublicObjectBatchInputUpsert(
                    id="unknown@example.com", id_property="email", properties={"jobtitle": "Hi"}
                ),
            ]
        )
    )
    assert status == 200
    assert isinstance(response, BatchResponseSimplePublicUpsertObject)
    outcome = {r.properties["email"]: (r.new, r.properties["jobtitle"]) for r in response.results}
    assert outcome == {"known@example.com": (False, "New"), "unknown@example.com": (True, "Hi")}
    assert stored(hubspot, existing.id, "jobtitle")["jobtitle"] == "New"
    assert len(sandbox.hubspot.snapshot()) == LEADS + 2


def test_batch_upsert_with_one_invalid_value_is_refused_whole(
    hubspot: HubSpot, sandbox: Sandbox
) -> None:
    with pytest.raises(ApiException) as refused:
        hubspot.crm.contacts.batch_api.upsert(
            BatchInputSimplePublicObjectBatchInputUpsert(
                inputs=[
                    SimplePublicObjectBatchInputUpsert(
                        id="fine@example.com", id_property="email", properties={"jobtitle": "Ok"}
                    ),
                    SimplePublicObjectBatchInputUpsert(
                        id="wrong@example.com",
                        id_property="email",
                        properties={"numemployees": "7"},
                    ),
                ]
            )
        )
    _assert_property_error(refused.value, "numemployees", "INVALID_OPTION")
    emails = {c["properties"].get("email") for c in sandbox.hubspot.snapshot()}
    assert not {"fine@example.com", "wrong@example.com"} & emails


def test_batch_archive_answers_204_and_archives_each(hubspot: HubSpot, sandbox: Sandbox) -> None:
    doomed = live_ids(sandbox)[:2]
    result, status, _ = hubspot.crm.contacts.batch_api.archive_with_http_info(
        BatchInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=i) for i in doomed])
    )
    assert (result, status) == (None, 204)
    assert not set(doomed) & set(live_ids(sandbox))
    assert len(live_ids(sandbox)) == LEADS - 2


def _bulk_emails(count: int) -> list[str]:
    return [f"bulk{n}@example.com" for n in range(count)]


def test_batches_of_exactly_100_inputs_are_accepted(hubspot: HubSpot, sandbox: Sandbox) -> None:
    batch = hubspot.crm.contacts.batch_api
    emails = _bulk_emails(100)
    created = batch.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[SimplePublicObjectBatchInputForCreate(properties={"email": e}) for e in emails]
        )
    )
    ids = [r.id for r in created.results]
    assert len(ids) == 100
    read = batch.read(
        BatchReadInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=i) for i in ids])
    )
    assert isinstance(read, BatchResponseSimplePublicObject)
    assert len(read.results) == 100
    updated = batch.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=i, properties={"jobtitle": "X"}) for i in ids]
        )
    )
    assert isinstance(updated, BatchResponseSimplePublicObject)
    assert len(updated.results) == 100
    upserted = batch.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(
                    id=e, id_property="email", properties={"jobtitle": "Y"}
                )
                for e in emails
            ]
        )
    )
    assert isinstance(upserted, BatchResponseSimplePublicUpsertObject)
    assert len(upserted.results) == 100
    assert not any(r.new for r in upserted.results)
    batch.archive(BatchInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=i) for i in ids]))
    assert len(sandbox.hubspot.snapshot()) == LEADS


OVERSIZED_BATCHES: dict[str, Callable[[Any, list[str]], Any]] = {
    "read": lambda batch, ids: batch.read(
        BatchReadInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=i) for i in ids])
    ),
    "create": lambda batch, ids: batch.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                SimplePublicObjectBatchInputForCreate(properties={"email": e})
                for e in _bulk_emails(len(ids))
            ]
        )
    ),
    "update": lambda batch, ids: batch.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=i, properties={"jobtitle": "X"}) for i in ids]
        )
    ),
    "upsert": lambda batch, ids: batch.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(
                    id=e, id_property="email", properties={"jobtitle": "X"}
                )
                for e in _bulk_emails(len(ids))
            ]
        )
    ),
    "archive": lambda batch, ids: batch.archive(
        BatchInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=i) for i in ids])
    ),
}


@pytest.mark.parametrize("call", OVERSIZED_BATCHES.values(), ids=OVERSIZED_BATCHES.keys())
def test_a_batch_of_101_inputs_is_rejected_whole(
    hubspot: HubSpot, sandbox: Sandbox, call: Callable[[Any, list[str]], Any]
) -> None:
    ids = live_ids(sandbox)
    before = sandbox.hubspot.snapshot()
    wanted = [*ids, *(str(int(ids[-1]) + n) for n in range(1, 102 - len(ids)))]
    assert len(wanted) == 101
    with pytest.raises(ApiException) as refused:
        call(hubspot.crm.contacts.batch_api, wanted)
    assert refused.value.status == 400
    assert body_of(refused.value)["category"] == "VALIDATION_ERROR"
    assert sandbox.hubspot.snapshot() == before


# ------------------------------------------------------------------------------ search

# Five contacts whose values exercise every operator: numbers that sort differently as text
# ("10" < "3"), a missing value, mixed-case text and dates given as epoch milliseconds.
SEARCH_CONTACTS: list[tuple[int, dict[str, str]]] = [
    (
        101,
        {
            "email": "ada@example.com",
            "firstname": "Ada",
            "lifecyclestage": "lead",
            "webinars_attended": "3",
            "phone": "+44 20 0000 0001",
            "createdate": "2024-01-01T00:00:00.000Z",
            "lastmodifieddate": "2024-03-01T00:00:00.000Z",
        },
    ),
    (
        102,
        {
            "email": "grace@example.com",
            "firstname": "Grace",
            "lifecyclestage": "customer",
            "webinars_attended": "10",
            "createdate": "2024-01-02T00:00:00.000Z",
            "lastmodifieddate": "2024-03-02T00:00:00.000Z",
        },
    ),
    (
        103,
        {
            "email": "linus@example.com",
            "firstname": "Linus",
            "lifecyclestage": "lead",
            "webinars_attended": "0",
            "phone": "+1 555 0100",
            "createdate": "2024-01-03T00:00:00.000Z",
            "lastmodifieddate": "2024-03-03T00:00:00.000Z",
        },
    ),
    (
        104,
        {
            "email": "barbara@example.com",
            "firstname": "Barbara",
            "lifecyclestage": "opportunity",
            "webinars_attended": "25",
            "createdate": "2024-01-04T00:00:00.000Z",
            "lastmodifieddate": "2024-03-04T00:00:00.000Z",
        },
    ),
    (
        105,
        {
            "email": "edsger@example.com",
            "firstname": "Edsger",
            "lifecyclestage": "subscriber",
            "createdate": "2024-01-05T00:00:00.000Z",
            "lastmodifieddate": "2024-03-05T00:00:00.000Z",
        },
    ),
]
MARCH_3_MS = "1709424000000"  # 2024-03-03T00:00:00Z


@pytest.fixture
def searchable(sandbox: Sandbox) -> Sandbox:
    sandbox.hubspot.load(SEARCH_CONTACTS)
    return sandbox


def _filter(name: str, operator: str, value: str | None = None, values: Any = None) -> Filter:
    return Filter(property_name=name, operator=operator, value=value, values=values)


@pytest.mark.parametrize(
    ("search_filter", "expected"),
    [
        pytest.param(_filter("email", "EQ", "grace@example.com"), ["102"], id="EQ"),
        pytest.param(_filter("lifecyclestage", "NEQ", "lead"), ["102", "104", "105"], id="NEQ"),
        pytest.param(_filter("webinars_attended", "LT", "3"), ["103"], id="LT number"),
        pytest.param(_filter("webinars_attended", "LTE", "3"), ["101", "103"], id="LTE number"),
        pytest.param(_filter("webinars_attended", "GT", "3"), ["102", "104"], id="GT number"),
        pytest.param(_filter("webinars_attended", "GTE", "10"), ["102", "104"], id="GTE number"),
        pytest.param(
            _filter("lastmodifieddate", "GT", MARCH_3_MS), ["104", "105"], id="GT epoch ms"
        ),
        pytest.param(
            _filter("lastmodifieddate", "LTE", MARCH_3_MS), ["101", "102", "103"], id="LTE date"
        ),
        pytest.param(
            _filter("lifecyclestage", "IN", values=["customer", "opportunity"]),
            ["102", "104"],
            id="IN",
        ),
        pytest.param(_filter("phone", "HAS_PROPERTY"), ["101", "103"], id="HAS_PROPERTY"),
        pytest.param(
            _filter("phone", "NOT_HAS_PROPERTY"), ["102", "104", "105"], id="NOT_HAS_PROPERTY"
        ),
    ],
)
def test_search_filter_operators(
    hubspot: HubSpot, searchable: Sandbox, search_filter: Filter, expected: list[str]
) -> None:
    found = search(hubspot, filter_groups=[FilterGroup(filters=[search_filter])], limit=100)
    assert isinstance(found, CollectionResponseWithTotalSimplePublicObjectForwardPaging)
    assert sorted(r.id for r in found.results) == expected
    assert found.total == len(expected)


def test_search_ands_filters_within_a_group_and_ors_groups(
    hubspot: HubSpot, searchable: Sandbox
) -> None:
    found = search(
        hubspot,
        filter_groups=[
            FilterGroup(
                filters=[
                    _filter("lifecyclestage", "EQ", "lead"),
                    _filter("webinars_attended", "GT", "1"),
                ]
            ),
            FilterGroup(filters=[_filter("firstname", "EQ", "Edsger")]),
        ],
    )
    assert sorted(r.id for r in found.results) == ["101", "105"]


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("ASCENDING", ["103", "101", "102", "104", "105"]),
        ("DESCENDING", ["104", "102", "101", "103", "105"]),
    ],
)
def test_search_sorts_by_one_property_numerically_with_blanks_last(
    hubspot: HubSpot, searchable: Sandbox, direction: str, expected: list[str]
) -> None:
    # The client types `sorts` as list[str]; HubSpot wants the dict form, which passes through.
    found = search(hubspot, sorts=[{"propertyName": "webinars_attended", "direction": direction}])
    assert [r.id for r in found.results] == expected


def test_search_pages_with_after(hubspot: HubSpot, searchable: Sandbox) -> None:
    seen: list[str] = []
    cursors: list[str] = []
    after: str | None = None
    while True:
        page = search(hubspot, limit=2, after=after, sorts=[{"propertyName": "createdate"}])
        assert page.total == 5
        seen.extend(r.id for r in page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
        cursors.append(after)
    assert seen == ["101", "102", "103", "104", "105"]
    assert cursors == ["2", "4"]


def test_search_returns_requested_properties_and_the_default_set(
    hubspot: HubSpot, searchable: Sandbox
) -> None:
    asked = search(hubspot, properties=["phone"], limit=1)
    default = search(hubspot, limit=1)
    assert set(asked.results[0].properties) == {
        "phone",
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
    }
    assert set(default.results[0].properties) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }


@pytest.mark.parametrize(
    "request_fields",
    [
        pytest.param({"limit": 201}, id="limit over 200"),
        pytest.param({"limit": 0}, id="limit 0"),
        pytest.param(
            {"sorts": [{"propertyName": "email"}, {"propertyName": "firstname"}]}, id="two sorts"
        ),
        pytest.param(
            {"filter_groups": [FilterGroup(filters=[_filter("email", "HAS_PROPERTY")])] * 6},
            id="six filter groups",
        ),
        pytest.param(
            {"filter_groups": [FilterGroup(filters=[_filter("email", "HAS_PROPERTY")] * 7)]},
            id="seven filters in a group",
        ),
        pytest.param(
            {"filter_groups": [FilterGroup(filters=[_filter("email", "HAS_PROPERTY")] * 4)] * 5},
            id="twenty filters",
        ),
        pytest.param(
            {"filter_groups": [FilterGroup(filters=[_filter("email", "LIKE", "a")])]},
            id="unknown operator",
        ),
        pytest.param({"query": "x" * 3_000}, id="body over 3000 characters"),
        pytest.param(
            {"filter_groups": [FilterGroup(filters=[_filter("favourite_colour", "EQ", "red")])]},
            id="filter on an unknown property",
        ),
        pytest.param(
            {"sorts": [{"propertyName": "favourite_colour", "direction": "ASCENDING"}]},
            id="sort on an unknown property",
        ),
        pytest.param({"after": "9900", "limit": 101}, id="a page reaching past 10000"),
        pytest.param({"after": "-1"}, id="a negative after"),
    ],
)
def test_search_rejects_invalid_requests_with_400(
    hubspot: HubSpot, searchable: Sandbox, request_fields: dict[str, Any]
) -> None:
    with pytest.raises(ApiException) as refused:
        search(hubspot, **request_fields)
    assert refused.value.status == 400
    assert body_of(refused.value)["category"] == "VALIDATION_ERROR"


def _raw_search(sandbox: Sandbox, body: Any) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        return session.post(
            f"{sandbox.url}/crm/v3/objects/contacts/search",
            json=body,
            headers={"Authorization": "Bearer sandbox-token"},
            timeout=10,
        )


@pytest.mark.parametrize(
    ("search_filter", "named"),
    [
        pytest.param(
            {"propertyName": "favourite_colour", "operator": "EQ", "value": "red"},
            '"favourite_colour"',
            id="unknown property",
        ),
        pytest.param(
            {"propertyName": "email", "operator": "LIKE", "value": "a"}, '"LIKE"', id="operator"
        ),
        pytest.param(
            {"propertyName": "webinars_attended", "operator": "EQ", "value": "many"},
            '"many"',
            id="a word for a number",
        ),
    ],
)
def test_refused_searches_name_what_they_refuse_as_json_never_a_python_repr(
    searchable: Sandbox, search_filter: dict[str, Any], named: str
) -> None:
    answer = _raw_search(searchable, {"filterGroups": [{"filters": [search_filter]}]})
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert named in message
    assert "'" not in message


@pytest.mark.parametrize("value", [{"gte": 5}, [5]], ids=["an object", "an array"])
def test_a_search_filter_value_that_is_no_string_is_invalid_json(
    searchable: Sandbox, value: Any
) -> None:
    search_filter = {"propertyName": "webinars_attended", "operator": "EQ", "value": value}
    answer = _raw_search(searchable, {"filterGroups": [{"filters": [search_filter]}]})
    assert answer.status_code == 400
    body = answer.json()
    assert set(body) == {"status", "message", "correlationId"}
    assert body["message"].startswith("Invalid input JSON")
    assert "'" not in body["message"]


def test_search_accepts_a_limit_of_200(hubspot: HubSpot, sandbox: Sandbox) -> None:
    found = search(hubspot, limit=200)
    assert len(found.results) == LEADS
    assert found.total == LEADS
    assert found.paging is None


# ------------------------------------------------------------------------------ properties


def test_properties_list_describes_contact_properties(hubspot: HubSpot) -> None:
    listed = hubspot.crm.properties.core_api.get_all("contacts")
    by_name = {prop.name: prop for prop in listed.results}
    stage = by_name["lifecyclestage"]
    assert (stage.type, stage.field_type) == ("enumeration", "radio")
    assert [option.value for option in stage.options] == list(LIFECYCLE_STAGES)
    assert by_name["email"].modification_metadata.read_only_value is False
    assert by_name["hs_analytics_num_page_views"].modification_metadata.read_only_value is True
    assert {"createdate", "lastmodifieddate", "hs_object_id"} <= set(by_name)


def test_property_get_by_name(hubspot: HubSpot) -> None:
    prop = hubspot.crm.properties.core_api.get_by_name("contacts", "numemployees")
    assert isinstance(prop, ModelProperty)
    assert prop.name == "numemployees"
    assert [option.value for option in prop.options][:2] == ["1-5", "5-25"]


def test_property_get_of_an_unknown_name_raises_not_found(hubspot: HubSpot) -> None:
    with pytest.raises(PropertyNotFoundException) as missing:
        hubspot.crm.properties.core_api.get_by_name("contacts", "favourite_colour")
    assert missing.value.status == 404
    assert body_of(missing.value)["category"] == "OBJECT_NOT_FOUND"


def _grade_property() -> PropertyCreate:
    return PropertyCreate(
        name="lead_grade",
        label="Lead grade",
        type="enumeration",
        field_type="select",
        group_name="contactinformation",
        options=[
            OptionInput(label=grade, value=grade, display_order=n, hidden=False)
            for n, grade in enumerate("ABC")
        ],
    )


def test_property_create_answers_201_and_the_property_is_then_writable(
    hubspot: HubSpot,
) -> None:
    created, status, _ = hubspot.crm.properties.core_api.create_with_http_info(
        "contacts", _grade_property()
    )
    assert status == 201
    assert isinstance(created, ModelProperty)
    assert [option.value for option in created.options] == ["A", "B", "C"]
    assert hubspot.crm.properties.core_api.get_by_name("contacts", "lead_grade").label == (
        "Lead grade"
    )
    contact = create(hubspot, email="graded@example.com", lead_grade="B")
    assert contact.properties["lead_grade"] == "B"
    with pytest.raises(ApiException) as refused:
        update(hubspot, contact.id, lead_grade="Z")
    _assert_property_error(refused.value, "lead_grade", "INVALID_OPTION")


def test_property_create_of_an_existing_name_conflicts(hubspot: HubSpot) -> None:
    hubspot.crm.properties.core_api.create("contacts", _grade_property())
    with pytest.raises(PropertiesApiException) as conflict:
        hubspot.crm.properties.core_api.create("contacts", _grade_property())
    assert conflict.value.status == 409
    assert body_of(conflict.value)["category"] == "CONFLICT"


# ------------------------------------------------------------------------------ inspection API


def test_inspection_lists_what_the_client_lists(
    hubspot: HubSpot, control: requests.Session
) -> None:
    archived_id = hubspot.crm.contacts.basic_api.get_page(limit=1).results[0].id
    hubspot.crm.contacts.basic_api.archive(archived_id)
    listed = hubspot.crm.contacts.basic_api.get_page(limit=100)
    live = control.get(_url(control, "/_sandbox/hubspot/contacts"), timeout=10)
    everything = control.get(
        _url(control, "/_sandbox/hubspot/contacts"),
        params={"archived": "true"},
        timeout=10,
    )
    assert live.status_code == everything.status_code == 200
    assert sorted(c["id"] for c in live.json()["results"]) == sorted(c.id for c in listed.results)
    assert {c["id"] for c in everything.json()["results"]} == {
        archived_id,
        *(c.id for c in listed.results),
    }


def test_inspection_patch_sets_read_only_engagement_properties(
    hubspot: HubSpot, control: requests.Session
) -> None:
    created = create(hubspot, email="engaged@example.com")
    answer = control.patch(
        _url(control, f"/_sandbox/hubspot/contacts/{created.id}"),
        json={"properties": {"hs_analytics_num_page_views": 42, "num_conversion_events": "2"}},
        timeout=10,
    )
    assert answer.status_code == 200
    seen = stored(hubspot, created.id, "hs_analytics_num_page_views", "num_conversion_events")
    assert seen["hs_analytics_num_page_views"] == "42"
    assert seen["num_conversion_events"] == "2"
    assert seen["lastmodifieddate"] > created.properties["lastmodifieddate"]
    with pytest.raises(ApiException) as refused:  # what HubSpot may write, an API user may not
        update(hubspot, created.id, hs_analytics_num_page_views="43")
    _assert_property_error(refused.value, "hs_analytics_num_page_views", "READ_ONLY_VALUE")


def test_inspection_patch_stores_values_in_the_form_hubspot_returns(
    hubspot: HubSpot, control: requests.Session
) -> None:
    # HubSpot's own writes (a visit, a form) are stored as any write is: a datetime comes back
    # as ISO UTC with milliseconds, however the simulation spelled it.
    created = create(hubspot, email="visited@example.com")
    answer = control.patch(
        _url(control, f"/_sandbox/hubspot/contacts/{created.id}"),
        json={
            "properties": {
                "hs_analytics_last_visit_timestamp": "2024-05-01T12:00:00+02:00",
                "recent_conversion_date": "1714557600000",
            }
        },
        timeout=10,
    )
    assert answer.status_code == 200
    seen = stored(
        hubspot, created.id, "hs_analytics_last_visit_timestamp", "recent_conversion_date"
    )
    assert seen["hs_analytics_last_visit_timestamp"] == "2024-05-01T10:00:00.000Z"
    assert seen["recent_conversion_date"] == "2024-05-01T10:00:00.000Z"


@pytest.mark.parametrize(
    ("contact_id", "properties"),
    [
        pytest.param(MISSING_ID, {"hs_analytics_num_page_views": "1"}, id="unknown contact"),
        pytest.param("1001", {"favourite_colour": "blue"}, id="unknown property"),
    ],
)
def test_inspection_patch_of_unknown_things_answers_404(
    control: requests.Session, contact_id: str, properties: dict[str, str]
) -> None:
    answer = control.patch(
        _url(control, f"/_sandbox/hubspot/contacts/{contact_id}"),
        json={"properties": properties},
        timeout=10,
    )
    assert answer.status_code == 404


# ------------------------------------------------------------------------------ faults


def _set_faults(control: requests.Session, spec: str) -> None:
    answer = control.post(
        _url(control, "/_sandbox/faults"),
        json={"spec": spec},
        timeout=10,
    )
    assert answer.status_code == 200


def test_fault_5xx_raises_the_client_service_exception(
    hubspot: HubSpot, control: requests.Session
) -> None:
    _set_faults(control, "5xx=1")
    with pytest.raises(ServiceException) as failed:
        hubspot.crm.contacts.basic_api.get_page(limit=1)
    assert 500 <= failed.value.status <= 599
    _set_faults(control, "")
    assert len(hubspot.crm.contacts.basic_api.get_page(limit=1).results) == 1


def test_fault_429_answers_rate_limited_with_retry_after(
    hubspot: HubSpot, control: requests.Session
) -> None:
    _set_faults(control, "429=1")
    with pytest.raises(ApiException) as limited:
        hubspot.crm.contacts.basic_api.get_page(limit=1)
    assert limited.value.status == 429
    assert limited.value.headers["Retry-After"] == "1"
    body = body_of(limited.value)
    assert (body["errorType"], body["policyName"]) == ("RATE_LIMIT", "TEN_SECONDLY_ROLLING")


def test_fault_drop_is_a_connection_error_not_an_api_exception(
    hubspot: HubSpot, control: requests.Session
) -> None:
    _set_faults(control, "drop=1")
    with pytest.raises(urllib3.exceptions.HTTPError) as dropped:
        hubspot.crm.contacts.basic_api.get_page(limit=1)
    assert not isinstance(dropped.value, ApiException)
    _set_faults(control, "")
    assert len(hubspot.crm.contacts.basic_api.get_page(limit=1).results) == 1
