"""The HubSpot error table: each answer -> the outcome and how many times it was tried.

hubspot-api-client talks through urllib3, which `responses` cannot intercept, so these run
against a scripted HTTP server on loopback.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from leadsync.connectors.errors import (
    AuthenticationError,
    ConnectionFailedError,
    ConnectorError,
    QuotaExhaustedError,
    RequestRejectedError,
    ServerError,
)
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.connectors.retry import RetryPolicy
from leadsync.connectors.settings import HubSpotConnection
from leadsync.secrets import Secret
from tests.support import Scripted, ScriptedServer

ATTEMPTS = 4
PROPERTIES_OK = Scripted(200, {"results": []})


def _error(status: int, category: str, message: str, **extra: Any) -> Scripted:
    body = {"status": "error", "message": message, "correlationId": "c-1", "category": category}
    return Scripted(status, {**body, **extra})


TEN_SECONDLY = Scripted(
    429,
    {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c-2",
        "policyName": "TEN_SECONDLY_ROLLING",
    },
)
DAILY = Scripted(
    429,
    {
        "status": "error",
        "message": "You have reached your daily limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c-3",
        "policyName": "DAILY",
    },
)
SECONDLY = _error(429, "RATE_LIMITS", "You have reached your secondly limit.")


@pytest.mark.parametrize(
    ("script", "outcome", "category", "attempts"),
    [
        pytest.param([PROPERTIES_OK], None, None, 1, id="200"),
        pytest.param([TEN_SECONDLY, PROPERTIES_OK], None, None, 2, id="429-ten-secondly-then-ok"),
        pytest.param([DAILY], QuotaExhaustedError, "daily_limit", 1, id="429-daily"),
        pytest.param(
            [_error(503, "INTERNAL_ERROR", "down")] * ATTEMPTS,
            ServerError,
            "server_error",
            ATTEMPTS,
            id="503-every-time",
        ),
        pytest.param(
            [_error(502, "INTERNAL_ERROR", "bad gateway"), PROPERTIES_OK],
            None,
            None,
            2,
            id="502-then-ok",
        ),
        pytest.param(
            [_error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")],
            AuthenticationError,
            "authentication",
            1,
            id="401",
        ),
        pytest.param(
            [_error(403, "MISSING_SCOPES", "This app hasn't been granted all required scopes")],
            RequestRejectedError,
            "forbidden",
            1,
            id="403",
        ),
        pytest.param(
            [_error(404, "OBJECT_NOT_FOUND", "resource not found")],
            RequestRejectedError,
            "not_found",
            1,
            id="404",
        ),
        pytest.param(
            [_error(400, "VALIDATION_ERROR", "Invalid input JSON")],
            RequestRejectedError,
            "bad_request",
            1,
            id="400",
        ),
        pytest.param(
            [Scripted(drop=True)] * ATTEMPTS,
            ConnectionFailedError,
            "connection",
            ATTEMPTS,
            id="dropped-every-time",
        ),
        pytest.param([Scripted(drop=True), PROPERTIES_OK], None, None, 2, id="dropped-then-ok"),
    ],
)
def test_each_answer_has_its_outcome_and_retry_count(
    script: list[Scripted],
    outcome: type[ConnectorError] | None,
    category: str | None,
    attempts: int,
) -> None:
    waits: list[float] = []
    with ScriptedServer() as server:
        server.script = list(script)
        connector = _connector(server, waits)
        if outcome is None:
            connector.describe()
        else:
            with pytest.raises(outcome) as raised:
                connector.describe()
            assert raised.value.category == category
        assert len(server.requests) == attempts
        assert len(waits) == attempts - 1


def test_retry_after_is_honoured() -> None:
    waits: list[float] = []
    with ScriptedServer() as server:
        limited = Scripted(429, TEN_SECONDLY.body, {"Retry-After": "3"})
        server.script = [limited, PROPERTIES_OK]
        _connector(server, waits).describe()
    assert waits == [3.0]


def test_the_secondly_search_limit_waits_a_second() -> None:
    waits: list[float] = []
    with ScriptedServer() as server:
        server.script = [SECONDLY, Scripted(200, {"total": 0, "results": []})]
        pages = list(
            _connector(server, waits).pull(None, fields=["email"], started_at=datetime.now(UTC))
        )
    assert pages == []
    assert waits == [1.0]


def _connector(server: ScriptedServer, waits: list[float]) -> HubSpotConnector:
    policy = RetryPolicy(max_attempts=ATTEMPTS, initial_wait=0.01, max_wait=10, sleep=waits.append)
    return HubSpotConnector(
        HubSpotConnection(access_token=Secret("t0ken-for-tests"), base_url=server.url, retry=policy)
    )


def test_an_error_body_echoing_contacts_is_cut_and_masked_in_errors_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A 5xx whose message echoes the batch it was sent: a page of people.
    people = [{"email": f"person{n}@example.com", "firstname": f"Name{n}"} for n in range(2000)]
    echo = _error(502, "INTERNAL_ERROR", f"upstream refused {json.dumps(people)}")
    caplog.set_level(logging.DEBUG)
    with ScriptedServer() as server:
        server.script = [echo] * ATTEMPTS
        with pytest.raises(ServerError) as failed:
            _connector(server, []).describe()
    said = [str(failed.value), *(record.getMessage() for record in caplog.records)]
    assert all(len(line) < 600 for line in said)
    assert all("@example.com" not in line and "Name1" not in line for line in said)
    assert "upstream refused" in str(failed.value)


LIST_PAGE = Scripted(
    200,
    {
        "results": [
            {
                "id": "51",
                "properties": {"email": None, "lastmodifieddate": "2026-11-30T09:15:02.250Z"},
                "createdAt": "2026-01-02T03:04:05.000Z",
                "updatedAt": "2026-11-30T09:15:02.250Z",
                "archived": False,
            }
        ]
    },
)


def test_a_page_cut_off_mid_body_is_asked_for_again() -> None:
    # The connector reads pages as raw JSON: the body is read after the headers, so a
    # connection lost in between must still be a connection failure, retried.
    waits: list[float] = []
    with ScriptedServer() as server:
        server.script = [Scripted(200, LIST_PAGE.body, cut=True), LIST_PAGE]
        pages = list(_connector(server, waits).pull_all(fields=["email"]))
    assert len(server.requests) == 2
    assert [record.id for page in pages for record in page.records] == ["51"]
    record = pages[0].records[0]
    assert record.modified_at == datetime(2026, 11, 30, 9, 15, 2, 250000, tzinfo=UTC)
    assert record.fields["email"] is None


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html><body>502 Bad Gateway</body></html>", id="html"),
        pytest.param(b"[]", id="json-but-not-an-object"),
        pytest.param(b"", id="empty"),
    ],
)
def test_a_success_whose_body_is_not_a_json_object_is_a_server_error_retried(
    body: bytes,
) -> None:
    waits: list[float] = []
    with ScriptedServer() as server:
        server.script = [Scripted(200, raw=body)] * ATTEMPTS
        with pytest.raises(ServerError) as failed:
            list(_connector(server, waits).pull_all(fields=["email"]))
    assert len(server.requests) == ATTEMPTS
    assert "not JSON" in str(failed.value)


def test_a_page_holding_half_a_surrogate_pair_is_read_not_refused() -> None:
    # orjson refuses an escaped lone surrogate; HubSpot can send one. The page is read (the
    # record is quarantined downstream), not retried as if it were not JSON.
    body = (
        b'{"results": [{"id": "7", "properties": {"jobtitle": "Head \\ud800 of sales", '
        b'"lastmodifieddate": "2026-11-30T09:15:02.250Z"}, "archived": false}]}'
    )
    with ScriptedServer() as server:
        server.script = [Scripted(200, raw=body)]
        pages = list(_connector(server, []).pull_all(fields=["jobtitle"]))
    assert len(server.requests) == 1
    assert pages[0].records[0].fields["jobtitle"] == "Head \ud800 of sales"


def test_properties_of_odd_shapes_are_read_as_far_as_they_go_never_a_traceback() -> None:
    # describe reads the JSON itself (not the client's models): an entry that is not an
    # object is skipped, a key missing or of another shape read as absent; an option without
    # a value is no value a write could send.
    odd = [
        "not a property",
        {"label": "No name"},
        {"name": "bare"},
        {"name": "meta_text", "type": "string", "modificationMetadata": "readOnly"},
        {"name": "meta_list", "type": "string", "modificationMetadata": [True]},
        {
            "name": "tier",
            "type": "enumeration",
            "fieldType": "select",
            "options": [{"label": "No value"}, {"value": None}, {"value": "gold"}, "silver"],
        },
        {"name": "locked", "modificationMetadata": {"readOnlyValue": True}},
    ]
    with ScriptedServer() as server:
        server.script = [Scripted(200, {"results": odd})]
        fields = _connector(server, []).describe().fields
    assert sorted(fields) == ["bare", "locked", "meta_list", "meta_text", "tier"]
    assert (fields["bare"].label, fields["bare"].writable, fields["bare"].options) == (
        "bare",
        True,
        (),
    )
    assert fields["meta_text"].writable
    assert fields["meta_list"].writable
    assert fields["tier"].options == ("gold",)
    assert not fields["locked"].writable
