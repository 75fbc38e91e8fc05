"""The sandbox's HubSpot limits, driven by the official hubspot-api-client with a fake clock.

The ten-secondly and daily limits, the 5-searches-a-second limit, their headers and 429 bodies,
the delay before an edit reaches search, and the 10,000-result cap of one search
(CRM_FACTS.md). Time moves only when a test says so: nothing here sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.contacts import (
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException
from urllib3.util.retry import Retry

from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sandbox.timestamps import parse_ms
from tests.support import FakeClock

START = 1_700_000_000.0  # a whole second, so that fake-clock arithmetic stays exact
RATE_LIMIT_HEADERS = (
    "X-HubSpot-RateLimit-Daily",
    "X-HubSpot-RateLimit-Daily-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def hubspot_settings() -> HubSpotSettings:
    """The portal's limits; a test parametrizes this name to change them."""
    return HubSpotSettings()


@pytest.fixture
def sandbox(clock: FakeClock, hubspot_settings: HubSpotSettings) -> Iterator[Sandbox]:
    settings = SandboxSettings(port=0, seed=7, leads=20, hubspot=hubspot_settings)
    with Sandbox(settings, clock=clock) as running:
        yield running


def body_of(error: Any) -> dict[str, Any]:
    parsed = json.loads(error.body)
    assert isinstance(parsed, dict)
    return parsed


def rate_limit_headers(headers: Any) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower().startswith("x-hubspot")}


def list_one(hubspot: HubSpot) -> Any:
    return hubspot.crm.contacts.basic_api.get_page(limit=1)


def search_all(hubspot: HubSpot) -> Any:
    return hubspot.crm.contacts.search_api.do_search_with_http_info(
        PublicObjectSearchRequest(limit=1)
    )


# ------------------------------------------------------------------------------ headers

COUNTED_CALLS: dict[str, Callable[[HubSpot], Any]] = {
    "list": lambda hs: hs.crm.contacts.basic_api.get_page_with_http_info(limit=1),
    "get": lambda hs: hs.crm.contacts.basic_api.get_by_id_with_http_info("1001"),
    "update": lambda hs: hs.crm.contacts.basic_api.update_with_http_info(
        "1001", SimplePublicObjectInput(properties={"jobtitle": "CFO"})
    ),
    "batch read": lambda hs: hs.crm.contacts.batch_api.read_with_http_info(
        BatchReadInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id="1001")])
    ),
    "properties": lambda hs: hs.crm.properties.core_api.get_all_with_http_info("contacts"),
}


@pytest.mark.parametrize("call", COUNTED_CALLS.values(), ids=COUNTED_CALLS.keys())
def test_responses_carry_rate_limit_headers_that_count_down(
    hubspot: HubSpot, call: Callable[[HubSpot], Any]
) -> None:
    seen = [rate_limit_headers(call(hubspot)[2]) for _ in range(3)]
    assert seen == [
        {
            "X-HubSpot-RateLimit-Daily": "1000000",
            "X-HubSpot-RateLimit-Daily-Remaining": str(1_000_000 - n),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": "190",
            "X-HubSpot-RateLimit-Remaining": str(190 - n),
        }
        for n in (1, 2, 3)
    ]


def test_search_responses_carry_no_rate_limit_headers(hubspot: HubSpot) -> None:
    _, status, headers = search_all(hubspot)
    assert status == 200
    assert rate_limit_headers(headers) == {}


# ------------------------------------------------------------------------------ ten-secondly


def _assert_ten_secondly_429(error: ApiException) -> None:
    assert error.status == 429
    body = body_of(error)
    assert body.pop("correlationId")
    assert body == {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "policyName": "TEN_SECONDLY_ROLLING",
    }


def test_ten_second_limit_is_190_requests_in_any_rolling_window(
    hubspot: HubSpot, clock: FakeClock
) -> None:
    for _ in range(100):
        list_one(hubspot)
    clock.advance(5)
    for _ in range(90):
        list_one(hubspot)
    with pytest.raises(ApiException) as limited:
        list_one(hubspot)
    _assert_ten_secondly_429(limited.value)
    clock.advance(5)  # the first 100 leave the window, the last 90 stay in it
    for _ in range(100):
        list_one(hubspot)
    with pytest.raises(ApiException) as again:
        list_one(hubspot)
    _assert_ten_secondly_429(again.value)


@pytest.mark.parametrize("hubspot_settings", [HubSpotSettings(ten_second_limit=3)])
def test_ten_second_limit_also_refuses_writes_and_frees_after_ten_seconds(
    hubspot: HubSpot, sandbox: Sandbox, clock: FakeClock
) -> None:
    api = hubspot.crm.contacts.basic_api
    for n in range(3):
        api.create(SimplePublicObjectInputForCreate(properties={"email": f"p{n}@example.com"}))
    with pytest.raises(ApiException) as limited:
        api.create(SimplePublicObjectInputForCreate(properties={"email": "late@example.com"}))
    _assert_ten_secondly_429(limited.value)
    assert len(sandbox.hubspot.snapshot()) == 23  # the refused create did nothing
    clock.advance(9.5)
    with pytest.raises(ApiException):
        list_one(hubspot)
    clock.advance(0.5)
    assert len(list_one(hubspot).results) == 1


# ------------------------------------------------------------------------------ daily


@pytest.mark.parametrize("hubspot_settings", [HubSpotSettings(daily_limit=3)])
def test_daily_limit_refuses_with_its_own_body_until_a_day_passes(
    hubspot: HubSpot, clock: FakeClock
) -> None:
    remaining = [
        hubspot.crm.contacts.basic_api.get_page_with_http_info(limit=1)[2][
            "X-HubSpot-RateLimit-Daily-Remaining"
        ]
        for _ in range(3)
    ]
    assert remaining == ["2", "1", "0"]
    clock.advance(10)  # a new ten-second window does not help
    for call in (list_one, search_all):
        with pytest.raises(ApiException) as limited:
            call(hubspot)
        assert limited.value.status == 429
        body = body_of(limited.value)
        assert body["message"] == "You have reached your daily limit."
        assert (body["errorType"], body["policyName"]) == ("RATE_LIMIT", "DAILY")
    clock.advance(24 * 60 * 60)
    assert len(list_one(hubspot).results) == 1


# ------------------------------------------------------------------------------ search


def test_search_limit_is_five_a_second_with_a_bare_429(hubspot: HubSpot, clock: FakeClock) -> None:
    for _ in range(5):
        assert search_all(hubspot)[1] == 200
    with pytest.raises(ApiException) as limited:
        search_all(hubspot)
    error = limited.value
    assert error.status == 429
    assert "Retry-After" not in error.headers
    assert rate_limit_headers(error.headers) == {}
    body = body_of(error)
    assert body["category"] == "RATE_LIMITS"
    assert body["message"] == "You have reached your secondly limit."
    assert "policyName" not in body
    # Only searches are held back; other endpoints go on.
    assert len(list_one(hubspot).results) == 1
    clock.advance(1)
    assert search_all(hubspot)[1] == 200


LAG = HubSpotSettings(search_lag_ms=2_000)


def _search_by(hubspot: HubSpot, name: str, operator: str, value: str | None = None) -> list[Any]:
    found = hubspot.crm.contacts.search_api.do_search(
        PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(filters=[Filter(property_name=name, operator=operator, value=value)])
            ],
            properties=["firstname", "lastmodifieddate"],
            limit=200,
        )
    )
    return list(found.results)


@pytest.mark.parametrize("hubspot_settings", [LAG])
def test_search_serves_the_old_version_until_the_lag_has_passed(
    hubspot: HubSpot, clock: FakeClock
) -> None:
    api = hubspot.crm.contacts.basic_api
    before = api.get_by_id("1001", properties=["firstname", "lastmodifieddate"]).properties
    api.update("1001", SimplePublicObjectInput(properties={"firstname": "Zebedee"}))
    created = api.create(
        SimplePublicObjectInputForCreate(
            properties={"email": "zeb@example.com", "firstname": "Zebedee"}
        )
    )
    # Reads see the writes at once; search has the old version, judged on its old values.
    assert api.get_by_id("1001", properties=["firstname"]).properties["firstname"] == "Zebedee"
    assert _search_by(hubspot, "firstname", "EQ", "Zebedee") == []
    [old] = _search_by(hubspot, "firstname", "EQ", before["firstname"])
    assert old.id == "1001"
    assert old.properties["lastmodifieddate"] == before["lastmodifieddate"]
    assert created.id not in {c.id for c in _search_by(hubspot, "email", "HAS_PROPERTY")}
    clock.advance(0.999)  # no write reaches search before half the lag
    assert _search_by(hubspot, "firstname", "EQ", "Zebedee") == []
    clock.advance(1.001)  # and every write has after the whole of it
    assert [c.id for c in _search_by(hubspot, "firstname", "EQ", "Zebedee")] == ["1001", created.id]


@pytest.mark.parametrize("hubspot_settings", [LAG])
def test_edits_reach_search_out_of_edit_order(hubspot: HubSpot, clock: FakeClock) -> None:
    api = hubspot.crm.contacts.basic_api
    edited = [str(contact_id) for contact_id in range(1001, 1021)]
    for contact_id in edited:  # one edit every 10 ms
        api.update(contact_id, SimplePublicObjectInput(properties={"firstname": "Edited"}))
        clock.advance(0.01)
    clock.advance(1.3)
    seen = {c.id for c in _search_by(hubspot, "firstname", "EQ", "Edited")}
    # Some later edits are searchable while earlier ones are not yet: a cursor on
    # lastmodifieddate that trusts the order would skip the earlier ones for good.
    assert 0 < len(seen) < len(edited)
    assert any(
        later in seen and earlier not in seen
        for position, earlier in enumerate(edited)
        for later in edited[position + 1 :]
    )
    clock.advance(1)
    assert {c.id for c in _search_by(hubspot, "firstname", "EQ", "Edited")} == set(edited)


@pytest.mark.parametrize("hubspot_settings", [LAG])
def test_an_archived_contact_stays_searchable_until_the_lag_has_passed(
    hubspot: HubSpot, clock: FakeClock
) -> None:
    hubspot.crm.contacts.basic_api.archive("1001")
    assert "1001" in {c.id for c in _search_by(hubspot, "hs_object_id", "EQ", "1001")}
    clock.advance(2)
    assert _search_by(hubspot, "hs_object_id", "EQ", "1001") == []


@pytest.mark.parametrize("hubspot_settings", [LAG])
def test_settling_search_brings_every_write_in_at_once(hubspot: HubSpot, sandbox: Sandbox) -> None:
    hubspot.crm.contacts.basic_api.update(
        "1001", SimplePublicObjectInput(properties={"firstname": "Zebedee"})
    )
    assert sandbox.hubspot.search_backlog == 1
    answer = requests.post(f"{sandbox.url}/_sandbox/hubspot/settle-search", timeout=5)
    assert answer.json() == {"caught_up": 1}
    assert [c.id for c in _search_by(hubspot, "firstname", "EQ", "Zebedee")] == ["1001"]


def test_the_default_portal_lags_as_real_hubspot_does() -> None:
    assert HubSpotSettings().search_lag_ms >= 1_000


# ------------------------------------------------------------------------------ 10,000 cap

CROWD = 10_050


@pytest.fixture(scope="module")
def crowded() -> Iterator[tuple[Sandbox, FakeClock]]:
    """A portal with more contacts than one search can page through."""
    clock = FakeClock(START)
    with Sandbox(SandboxSettings(port=0, seed=7, leads=CROWD), clock=clock) as running:
        yield running, clock


def _by_lastmodifieddate(since_ms: int | None, after: str | None) -> PublicObjectSearchRequest:
    filters = [Filter(property_name="lastmodifieddate", operator="HAS_PROPERTY")]
    if since_ms is not None:
        filters = [Filter(property_name="lastmodifieddate", operator="GTE", value=str(since_ms))]
    return PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=filters)],
        sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        properties=["email"],
        limit=200,
        after=after,
    )


def _walk(
    hubspot: HubSpot, clock: FakeClock, since_ms: int | None
) -> tuple[list[Any], int, ApiException | None, str | None]:
    """Follow one search's paging to its end or its first error: (results, total, error,
    the `after` the error answered)."""
    results: list[Any] = []
    total = -1
    after: str | None = None
    while True:
        clock.advance(0.25)  # four searches a second, under the limit of five
        try:
            page = hubspot.crm.contacts.search_api.do_search(_by_lastmodifieddate(since_ms, after))
        except ApiException as error:
            return results, total, error, after
        total = page.total
        results.extend(page.results)
        if page.paging is None:
            return results, total, None, None
        after = page.paging.next.after


def _client(sandbox: Sandbox) -> HubSpot:
    return HubSpot(access_token="sandbox-token", host=sandbox.url, retry=Retry(0))


def test_one_search_cannot_page_past_10000_results(
    crowded: tuple[Sandbox, FakeClock],
) -> None:
    sandbox, clock = crowded
    results, total, error, failed_after = _walk(_client(sandbox), clock, None)
    assert total == CROWD
    assert len(results) == 10_000
    assert len({contact.id for contact in results}) == 10_000
    assert error is not None
    assert failed_after == "10000"
    assert error.status == 400
    assert body_of(error)["category"] == "VALIDATION_ERROR"


def test_resuming_from_the_last_lastmodifieddate_reaches_the_rest(
    crowded: tuple[Sandbox, FakeClock],
) -> None:
    sandbox, clock = crowded
    hubspot = _client(sandbox)
    first, _, error, _ = _walk(hubspot, clock, None)
    assert error is not None
    last_ms = parse_ms(first[-1].properties["lastmodifieddate"])
    rest, total, rest_error, _ = _walk(hubspot, clock, last_ms)
    assert rest_error is None
    assert total < 10_000
    stamps = [parse_ms(contact.properties["lastmodifieddate"]) for contact in first + rest]
    assert stamps == sorted(stamps)
    every_id = {contact["id"] for contact in sandbox.hubspot.snapshot()}
    assert {contact.id for contact in first + rest} == every_id
