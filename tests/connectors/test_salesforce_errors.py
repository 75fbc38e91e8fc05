"""The Salesforce connector's error table, over `responses`: every answer the sandbox cannot be
made to give (any status and error code, Retry-After, broken transports, odd login answers)
mapped to the exception, category and number of HTTP attempts it must end in."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import requests
import responses

from leadsync.connectors.base import RecordUpdate, WriteStatus
from leadsync.connectors.errors import (
    AuthenticationError,
    ConnectionFailedError,
    ConnectorError,
    QuotaExhaustedError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    UnreachableError,
)
from leadsync.connectors.retry import RetryPolicy
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.connectors.settings import SalesforceConnection

BASE = "http://salesforce.test"
SOAP = f"{BASE}/services/Soap/u/59.0"
API = f"{BASE}/services/data/v59.0"
DESCRIBE = f"{API}/sobjects/Lead/describe"
COLLECTION = f"{API}/composite/sobjects"
MAX_ATTEMPTS = 4
LEAD_DESCRIBE = {"name": "Lead", "fields": []}


def soap_login(session_id: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
        'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns="urn:partner.soap.sforce.com"><soapenv:Body><loginResponse><result>'
        f"<serverUrl>{SOAP}/00D000000000001</serverUrl><sessionId>{session_id}</sessionId>"
        "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
    )


def error_body(code: str, message: str) -> list[dict[str, str]]:
    return [{"message": message, "errorCode": code}]


def calls_to(mocked: responses.RequestsMock, url: str) -> list[Any]:
    return [call for call in mocked.calls if call.request.url.split("?")[0] == url]


@pytest.fixture
def sleeps() -> list[float]:
    """Every wait the retry policy asked for; nothing really sleeps."""
    return []


def make_connector(sleeps: list[float], **options: Any) -> SalesforceConnector:
    policy = RetryPolicy(
        max_attempts=MAX_ATTEMPTS,
        max_seconds=600,
        initial_wait=0.001,
        max_wait=60,
        jitter=0,
        sleep=sleeps.append,
    )
    clock = options.pop("clock", None)
    connection = SalesforceConnection.for_sandbox(BASE, retry=policy, **options)
    return SalesforceConnector(connection, clock=clock)


@pytest.fixture
def connector(sleeps: list[float]) -> Iterator[SalesforceConnector]:
    connected = make_connector(sleeps)
    yield connected
    connected.close()


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """A SOAP login and `/limits` answered; each test registers the rest."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(SOAP, body=soap_login("00D000000000001!first"), content_type="text/xml")
        mock.get(
            f"{API}/limits",
            json={"DailyApiRequests": {"Max": 15000, "Remaining": 14000}},
            headers={"Sforce-Limit-Info": "api-usage=1000/15000"},
        )
        yield mock


# ------------------------------------------------------------------------------------ the table

ERROR_TABLE = [
    pytest.param(
        503,
        "SERVER_UNAVAILABLE",
        "Server temporarily unavailable. Please try again.",
        ServerError,
        "server_error",
        MAX_ATTEMPTS,
        id="503-retried",
    ),
    pytest.param(
        500,
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred.",
        ServerError,
        "server_error",
        MAX_ATTEMPTS,
        id="500-retried",
    ),
    pytest.param(
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "ConcurrentPerOrgLongTxn Limit exceeded.",
        RateLimitedError,
        "concurrency_limit",
        MAX_ATTEMPTS,
        id="concurrent-limit-retried",
    ),
    pytest.param(
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "TotalRequests Limit exceeded.",
        QuotaExhaustedError,
        "daily_limit",
        1,
        id="daily-limit-final",
    ),
    pytest.param(
        403,
        "INSUFFICIENT_ACCESS",
        "insufficient access rights on object id",
        RequestRejectedError,
        "forbidden",
        1,
        id="forbidden",
    ),
    pytest.param(
        400,
        "MALFORMED_QUERY",
        "unexpected token: FROM",
        RequestRejectedError,
        "bad_request",
        1,
        id="malformed-query",
    ),
    pytest.param(
        400,
        "INVALID_FIELD",
        "No such column 'Foo__c' on entity 'Lead'.",
        RequestRejectedError,
        "bad_request",
        1,
        id="invalid-field",
    ),
    pytest.param(
        404,
        "NOT_FOUND",
        "The requested resource does not exist",
        RequestRejectedError,
        "not_found",
        1,
        id="not-found",
    ),
    pytest.param(
        401,
        "INVALID_AUTH_HEADER",
        "INVALID_HEADER_TYPE",
        AuthenticationError,
        "authentication",
        1,
        id="401-other-than-expiry",
    ),
]


@pytest.mark.parametrize(
    ("status", "code", "message", "raised", "category", "attempts"), ERROR_TABLE
)
def test_error_answers_end_as_the_table_says(
    connector: SalesforceConnector,
    mocked: responses.RequestsMock,
    sleeps: list[float],
    status: int,
    code: str,
    message: str,
    raised: type[ConnectorError],
    category: str,
    attempts: int,
) -> None:
    mocked.get(DESCRIBE, status=status, json=error_body(code, message))
    with pytest.raises(raised) as failed:
        connector.describe()
    assert type(failed.value) is raised
    assert (failed.value.status, failed.value.code, failed.value.category) == (
        status,
        code,
        category,
    )
    assert message in str(failed.value)
    assert len(calls_to(mocked, DESCRIBE)) == attempts
    assert len(sleeps) == attempts - 1
    assert len(calls_to(mocked, SOAP)) == 1


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(requests.ConnectionError("Connection reset by peer"), id="reset"),
        pytest.param(requests.ReadTimeout("Read timed out. (read timeout=30)"), id="timeout"),
        pytest.param(requests.exceptions.ChunkedEncodingError("Connection broken"), id="chunked"),
    ],
)
def test_broken_transports_end_in_connection_failed_after_every_attempt(
    connector: SalesforceConnector,
    mocked: responses.RequestsMock,
    broken: Exception,
) -> None:
    mocked.get(DESCRIBE, body=broken)
    with pytest.raises(ConnectionFailedError) as failed:
        connector.describe()
    assert type(broken).__name__ in str(failed.value)
    assert len(calls_to(mocked, DESCRIBE)) == MAX_ATTEMPTS


def test_nothing_listening_at_the_url_fails_fast_naming_it(sleeps: list[float]) -> None:
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}"
        policy = RetryPolicy(max_attempts=MAX_ATTEMPTS, initial_wait=0.001, sleep=sleeps.append)
        connector = SalesforceConnector(SalesforceConnection.for_sandbox(url, retry=policy))
        with pytest.raises(UnreachableError) as unreachable:
            connector.describe()
    assert sleeps == []
    assert f"nothing answers at {url} (connection refused)" in str(unreachable.value)
    assert "is the sandbox running" in str(unreachable.value)


def test_a_passing_outage_is_ridden_out(
    connector: SalesforceConnector, mocked: responses.RequestsMock, sleeps: list[float]
) -> None:
    mocked.get(DESCRIBE, status=503, json=error_body("SERVER_UNAVAILABLE", "down"))
    mocked.get(DESCRIBE, json=LEAD_DESCRIBE)
    assert connector.describe().object_name == "Lead"
    assert len(calls_to(mocked, DESCRIBE)) == 2
    assert len(sleeps) == 1


def test_retry_after_sets_the_wait(
    connector: SalesforceConnector, mocked: responses.RequestsMock, sleeps: list[float]
) -> None:
    mocked.get(
        DESCRIBE,
        status=503,
        json=error_body("SERVER_UNAVAILABLE", "down for maintenance"),
        headers={"Retry-After": "7"},
    )
    mocked.get(DESCRIBE, json=LEAD_DESCRIBE)
    connector.describe()
    assert sleeps == [7.0]


def test_a_repeated_next_records_url_ends_the_pull_instead_of_looping(
    connector: SalesforceConnector, mocked: responses.RequestsMock
) -> None:
    locator = "/services/data/v59.0/queryAll/01gA-200"
    mocked.get(f"{API}/queryAll/", json={"totalSize": 400, "done": True, "records": []})
    page = {"totalSize": 400, "done": False, "nextRecordsUrl": locator, "records": []}
    mocked.get(f"{API}/queryAll/", json=page)
    mocked.get(f"{BASE}{locator}", json=page)
    with pytest.raises(ServerError, match="repeated the page"):
        list(connector.pull(None, fields=["Email"], started_at=datetime.now(UTC)))
    assert len(calls_to(mocked, f"{BASE}{locator}")) == 1


def test_an_answer_that_is_not_json_is_a_server_error(
    connector: SalesforceConnector, mocked: responses.RequestsMock
) -> None:
    mocked.get(DESCRIBE, body="<html>proxy error</html>", content_type="text/html")
    with pytest.raises(ServerError, match="not JSON"):
        connector.describe()
    assert len(calls_to(mocked, DESCRIBE)) == MAX_ATTEMPTS


def test_limit_info_on_an_error_answer_still_reaches_quota(
    connector: SalesforceConnector, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        DESCRIBE,
        status=403,
        json=error_body("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
        headers={"Sforce-Limit-Info": "api-usage=15000/15000"},
    )
    with pytest.raises(QuotaExhaustedError):
        connector.describe()
    assert (connector.quota().daily_limit, connector.quota().daily_remaining) == (15000, 0)


# ------------------------------------------------------------------------------------ sessions


def test_an_expired_session_logs_in_once_and_replays(
    connector: SalesforceConnector, mocked: responses.RequestsMock
) -> None:
    mocked.post(SOAP, body=soap_login("00D000000000001!second"), content_type="text/xml")
    mocked.get(DESCRIBE, status=401, json=error_body("INVALID_SESSION_ID", "Session expired"))
    mocked.get(DESCRIBE, json=LEAD_DESCRIBE)
    assert connector.describe().object_name == "Lead"
    describes = calls_to(mocked, DESCRIBE)
    assert len(describes) == 2
    assert len(calls_to(mocked, SOAP)) == 2
    assert describes[1].request.headers["Authorization"] == "Bearer 00D000000000001!second"


def test_a_second_expiry_in_a_row_is_an_authentication_error(
    connector: SalesforceConnector, mocked: responses.RequestsMock
) -> None:
    mocked.get(DESCRIBE, status=401, json=error_body("INVALID_SESSION_ID", "Session expired"))
    with pytest.raises(AuthenticationError, match="expired again"):
        connector.describe()
    assert len(calls_to(mocked, DESCRIBE)) == 2
    assert len(calls_to(mocked, SOAP)) == 2


def test_a_refused_soap_login_is_not_retried(
    connector: SalesforceConnector, sleeps: list[float]
) -> None:
    fault = (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
        'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault>'
        "<faultcode>sf:INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid</faultstring>"
        "<detail><sf:LoginFault><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>"
        "<sf:exceptionMessage>Invalid username, password, security token; or user locked out."
        "</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body>"
        "</soapenv:Envelope>"
    )
    with responses.RequestsMock() as mocked:
        mocked.post(SOAP, status=500, body=fault, content_type="text/xml")
        with pytest.raises(AuthenticationError, match="user locked out") as refused:
            connector.describe()
        assert refused.value.code == "INVALID_LOGIN"
        assert len(calls_to(mocked, SOAP)) == 1
    assert sleeps == []


def test_a_login_outage_is_retried(connector: SalesforceConnector, sleeps: list[float]) -> None:
    with responses.RequestsMock() as mocked:
        mocked.post(SOAP, status=503, body="<html>Service Unavailable</html>")
        mocked.post(SOAP, body=soap_login("00D000000000001!after"), content_type="text/xml")
        mocked.get(DESCRIBE, json=LEAD_DESCRIBE)
        connector.describe()
        assert len(calls_to(mocked, SOAP)) == 2
        assert calls_to(mocked, DESCRIBE)[0].request.headers["Authorization"].endswith("!after")
    assert len(sleeps) == 1


# ------------------------------------------------------------------------------------ writes


def test_write_sends_iso_utc_dates_and_json_nulls(
    connector: SalesforceConnector, mocked: responses.RequestsMock
) -> None:
    mocked.patch(COLLECTION, json=[{"id": "00Q000000000001AAA", "success": True, "errors": []}])
    berlin = timezone(timedelta(hours=2))
    update = RecordUpdate(
        "00Q000000000001AAA",
        {
            "Birthday__c": date(1990, 5, 1),
            "Last_Seen__c": datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=berlin),
            "Title": None,
            "Leadsync_Score__c": 7.5,
        },
    )
    (result,) = connector.write([update])
    assert result.status is WriteStatus.WRITTEN
    (call,) = calls_to(mocked, COLLECTION)
    assert json.loads(call.request.body) == {
        "allOrNone": False,
        "records": [
            {
                "attributes": {"type": "Lead"},
                "Birthday__c": "1990-05-01",
                "Last_Seen__c": "2024-05-01T10:00:00.123Z",
                "Title": None,
                "Leadsync_Score__c": 7.5,
                "id": "00Q000000000001AAA",
            }
        ],
    }


def test_write_refuses_naive_datetimes(connector: SalesforceConnector) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.post(SOAP, body=soap_login("00D000000000001!first"), content_type="text/xml")
        mocked.get(f"{API}/limits", json={"DailyApiRequests": {"Max": 15000, "Remaining": 9}})
        with pytest.raises(ValueError, match="naive"):
            connector.write([RecordUpdate("00Q1", {"Seen__c": datetime(2024, 5, 1, 12, 0)})])
        assert calls_to(mocked, COLLECTION) == []


def test_a_locked_row_waits_through_the_policy_and_goes_again_alone(
    connector: SalesforceConnector, mocked: responses.RequestsMock, sleeps: list[float]
) -> None:
    locked = {"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access"}
    mocked.patch(
        COLLECTION,
        json=[
            {"id": "00QA", "success": False, "errors": [locked]},
            {"id": "00QB", "success": True, "errors": []},
        ],
    )
    mocked.patch(COLLECTION, json=[{"id": "00QA", "success": True, "errors": []}])
    results = connector.write([RecordUpdate("00QA", {"Title": "a"}), RecordUpdate("00QB", {})])
    assert [(r.status, r.attempts) for r in results] == [
        (WriteStatus.WRITTEN, 2),
        (WriteStatus.WRITTEN, 1),
    ]
    second = json.loads(calls_to(mocked, COLLECTION)[1].request.body)
    assert [record["id"] for record in second["records"]] == ["00QA"]
    assert len(sleeps) == 1


def test_a_request_failure_that_outlasts_the_retries_defers_the_chunk(
    connector: SalesforceConnector, mocked: responses.RequestsMock
) -> None:
    mocked.patch(COLLECTION, status=503, json=error_body("SERVER_UNAVAILABLE", "down"))
    results = connector.write([RecordUpdate("00QA", {"Title": "a"}), RecordUpdate("00QB", {})])
    assert {(r.status, r.category, r.message) for r in results} == {
        (WriteStatus.DEFERRED, "server_error", "down")
    }
    assert len(calls_to(mocked, COLLECTION)) == MAX_ATTEMPTS


@pytest.mark.parametrize(
    ("status", "code", "message", "raised"),
    [
        (403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", QuotaExhaustedError),
        (401, "INVALID_SESSION_ID", "Session expired or invalid", AuthenticationError),
    ],
)
def test_errors_that_stop_the_run_are_raised_from_write(
    connector: SalesforceConnector,
    mocked: responses.RequestsMock,
    status: int,
    code: str,
    message: str,
    raised: type[ConnectorError],
) -> None:
    mocked.patch(COLLECTION, status=status, json=error_body(code, message))
    with pytest.raises(raised):
        connector.write([RecordUpdate("00QA", {"Title": "a"})])


# ------------------------------------------------------------------------------------ Bulk jobs

JOB = "7505g0000000001AAA"
INGEST = f"{API}/jobs/ingest"


def bulk_job_until_polled(mocked: responses.RequestsMock) -> None:
    mocked.post(INGEST, json={"id": JOB, "state": "Open"})
    mocked.put(f"{INGEST}/{JOB}/batches", status=201)
    mocked.patch(f"{INGEST}/{JOB}", json={"id": JOB, "state": "UploadComplete"})


def test_a_bulk_job_that_never_finishes_is_given_up_and_its_records_deferred(
    mocked: responses.RequestsMock, sleeps: list[float]
) -> None:
    bulk_job_until_polled(mocked)
    mocked.get(f"{INGEST}/{JOB}", json={"id": JOB, "state": "InProgress"})
    start = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)
    ticks = iter(start + timedelta(minutes=20 * n) for n in range(100))
    connector = make_connector(
        sleeps, clock=lambda: next(ticks), bulk_write_threshold=0, bulk_poll_seconds=2.5
    )
    results = connector.write([RecordUpdate("00QA", {"Title": "a"})])
    assert [(r.status, r.category) for r in results] == [(WriteStatus.DEFERRED, "bulk_timeout")]
    # The clock reads +20, +40, +60 minutes after the polls that find the job running, with
    # the poll interval waited after each; the fourth poll reads +80, past the hour: given up.
    polls = [call for call in calls_to(mocked, f"{INGEST}/{JOB}") if call.request.method == "GET"]
    assert len(polls) == 4
    assert sleeps == [2.5, 2.5, 2.5]
    connector.close()


def test_a_failed_bulk_job_defers_its_records_with_the_reason(
    mocked: responses.RequestsMock, sleeps: list[float]
) -> None:
    bulk_job_until_polled(mocked)
    reason = "InvalidBatch : Field name not found : Foo__c"
    mocked.get(f"{INGEST}/{JOB}", json={"id": JOB, "state": "Failed", "errorMessage": reason})
    connector = make_connector(sleeps, bulk_write_threshold=0)
    (result,) = connector.write([RecordUpdate("00QA", {"Foo__c": "a"})])
    assert (result.status, result.category) == (WriteStatus.DEFERRED, "bulk_job_failed")
    assert reason in result.message
    connector.close()


def test_every_request_carries_the_connection_timeout(
    mocked: responses.RequestsMock, sleeps: list[float]
) -> None:
    # simple-salesforce passes no timeout to its logins or its Bulk client; requests would
    # wait for ever without one.
    bulk_job_until_polled(mocked)
    mocked.get(f"{INGEST}/{JOB}", json={"id": JOB, "state": "JobComplete"})
    for kind in ("successfulResults", "failedResults"):
        mocked.get(f"{INGEST}/{JOB}/{kind}", body='"sf__Id","Id"\n', content_type="text/csv")
    mocked.get(DESCRIBE, json=LEAD_DESCRIBE)
    connector = make_connector(sleeps, bulk_write_threshold=0, timeout_seconds=12.5)
    connector.describe()
    connector.write([RecordUpdate("00QA", {"Title": "a"})])
    paths = {call.request.path_url.split("?")[0] for call in mocked.calls}
    assert {"/services/Soap/u/59.0", "/services/data/v59.0/jobs/ingest"} <= paths
    assert {call.request.req_kwargs["timeout"] for call in mocked.calls} == {12.5}
    connector.close()
