"""The sandbox server as a whole: the /_sandbox/ API, fault injection, the command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import responses
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession

from leadsync.connectors.salesforce_routing import RoutingSession, needs_routing
from leadsync.sandbox import Sandbox, SandboxSettings

HUBSPOT_AUTH = {"Authorization": "Bearer sandbox-token"}


def _get(control: requests.Session, path: str, **kwargs: Any) -> requests.Response:
    return control.get(control.base + path, timeout=10, **kwargs)  # type: ignore[attr-defined]


def _post(control: requests.Session, path: str, **kwargs: Any) -> requests.Response:
    return control.post(control.base + path, timeout=10, **kwargs)  # type: ignore[attr-defined]


def test_index_lists_records_credentials_and_endpoints(control: requests.Session) -> None:
    body = _get(control, "/_sandbox/").json()
    assert body["records"]["hubspot_contacts"] == 60
    assert body["records"]["salesforce_leads"] == 60
    assert body["credentials"]["hubspot"]["access_token"] == "sandbox-token"
    assert body["credentials"]["salesforce"]["username"] == "sandbox@leadsync.test"
    assert "POST /_sandbox/faults" in body["inspection_api"]


def test_stats_count_requests_by_crm_endpoint_and_status(
    sandbox: Sandbox, control: requests.Session
) -> None:
    for _ in range(3):
        control.get(f"{sandbox.url}/crm/v3/objects/contacts", headers=HUBSPOT_AUTH, timeout=10)
    control.get(f"{sandbox.url}/crm/v3/objects/contacts", timeout=10)  # no token: 401
    stats = _get(control, "/_sandbox/stats").json()
    assert stats["requests"]["hubspot"] == 4
    assert stats["endpoints"]["hubspot.contacts.list"] == 4
    assert stats["statuses"]["hubspot.contacts.list 200"] == 3
    assert stats["statuses"]["hubspot.contacts.list 401"] == 1
    assert stats["quota"]["hubspot"]["daily_remaining"] == 1_000_000 - 3


def test_reset_reseeds_both_crms_and_clears_stats(
    sandbox: Sandbox, control: requests.Session
) -> None:
    before = _get(control, "/_sandbox/hubspot/contacts").json()["results"]
    body = _post(control, "/_sandbox/reset", json={"seed": 99, "leads": 25, "overlap": 0.2}).json()
    after = _get(control, "/_sandbox/hubspot/contacts").json()["results"]
    leads = _get(control, "/_sandbox/salesforce/leads").json()["records"]
    assert body["records"] == {
        "hubspot_contacts": 25,
        "salesforce_leads": 25,
        "salesforce_contacts": body["records"]["salesforce_contacts"],
        "salesforce_opportunities": body["records"]["salesforce_opportunities"],
    }
    converted = [lead for lead in leads if lead["IsConverted"]]
    assert body["records"]["salesforce_contacts"] == len(converted)
    assert len(after) == 25
    assert len(leads) == 25
    assert {c["properties"].get("email") for c in after} != {
        c["properties"].get("email") for c in before
    }
    assert _get(control, "/_sandbox/stats").json()["requests"] == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"leads": -1}, "leads must be >= 0"),
        ({"overlap": 2}, "overlap between 0 and 1"),
        ({"seed": "x"}, "must be integers"),
    ],
)
def test_reset_rejects_bad_input(
    control: requests.Session, body: dict[str, Any], message: str
) -> None:
    answer = _post(control, "/_sandbox/reset", json=body)
    assert answer.status_code == 400
    assert message in answer.json()["message"]


def test_faults_are_set_and_read_at_run_time(sandbox: Sandbox, control: requests.Session) -> None:
    assert _post(control, "/_sandbox/faults", json={"spec": "5xx=1"}).json()["5xx"] == 1.0
    answer = control.get(f"{sandbox.url}/crm/v3/objects/contacts", headers=HUBSPOT_AUTH, timeout=10)
    assert answer.status_code == 503
    assert answer.json()["status"] == "error"
    stats = _get(control, "/_sandbox/stats").json()
    assert stats["faulted"] == {"hubspot 5xx": 1}
    _post(control, "/_sandbox/faults", json={"spec": ""})
    ok = control.get(f"{sandbox.url}/crm/v3/objects/contacts", headers=HUBSPOT_AUTH, timeout=10)
    assert ok.status_code == 200
    assert _get(control, "/_sandbox/faults").json()["5xx"] == 0.0


BATCH_UPDATE = "/crm/v3/objects/contacts/batch/update"


def _batch_update(sandbox: Sandbox, control: requests.Session, body: str) -> requests.Response:
    return control.post(
        f"{sandbox.url}{BATCH_UPDATE}",
        data=body,
        headers={**HUBSPOT_AUTH, "Content-Type": "application/json"},
        timeout=10,
    )


def test_a_request_fault_fails_only_the_requests_it_matches_as_often_as_told(
    sandbox: Sandbox, control: requests.Session
) -> None:
    contact = sandbox.hubspot.snapshot()[0]["id"]
    rule = {
        "method": "POST",
        "path": BATCH_UPDATE,
        "body_contains": '"lifecyclestage":"lead"',
        "times": 2,
    }
    assert _post(control, "/_sandbox/faults/requests", json=rule).json()["rules"][0]["times"] == 2
    # Matched whatever the client's JSON spacing: the body is compared as compact JSON.
    setting = f'{{"inputs": [{{"id": "{contact}", "properties": {{"lifecyclestage": "lead"}}}}]}}'
    clearing = f'{{"inputs": [{{"id": "{contact}", "properties": {{"lifecyclestage": ""}}}}]}}'
    assert _batch_update(sandbox, control, clearing).status_code == 200
    assert _batch_update(sandbox, control, setting).status_code == 503
    assert _batch_update(sandbox, control, setting).status_code == 503
    assert _batch_update(sandbox, control, setting).status_code == 200  # used up
    assert _get(control, "/_sandbox/faults/requests").json() == {"rules": []}
    assert _get(control, "/_sandbox/stats").json()["faulted"] == {"hubspot matched": 2}


def test_a_request_fault_without_times_stays_until_cleared(
    sandbox: Sandbox, control: requests.Session
) -> None:
    _post(control, "/_sandbox/faults/requests", json={"method": "POST", "path": BATCH_UPDATE})
    for _ in range(3):
        assert _batch_update(sandbox, control, '{"inputs": []}').status_code == 503
    cleared = control.delete(f"{sandbox.url}/_sandbox/faults/requests", timeout=10)
    assert cleared.json() == {"rules": []}
    assert _batch_update(sandbox, control, '{"inputs": []}').status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"path": BATCH_UPDATE}, '"method" and "path"'),
        ({"method": "POST", "path": "/x", "status": 200}, "error status"),
    ],
)
def test_a_bad_request_fault_is_refused(
    control: requests.Session, body: dict[str, Any], message: str
) -> None:
    answer = _post(control, "/_sandbox/faults/requests", json=body)
    assert answer.status_code == 400
    assert message in answer.json()["message"]


def test_a_bad_fault_spec_is_refused(control: requests.Session) -> None:
    answer = _post(control, "/_sandbox/faults", json={"spec": "teapot=1"})
    assert answer.status_code == 400
    assert "unknown fault 'teapot'" in answer.json()["message"]


def test_dropped_connection_closes_without_an_answer(
    sandbox: Sandbox, control: requests.Session
) -> None:
    _post(control, "/_sandbox/faults", json={"spec": "drop=1"})
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as raw:
        raw.sendall(
            b"GET /crm/v3/objects/contacts HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer sandbox-token\r\n\r\n"
        )
        assert raw.recv(1024) == b""  # closed with no status line


def test_latency_delays_every_crm_answer(sandbox: Sandbox, control: requests.Session) -> None:
    _post(control, "/_sandbox/faults", json={"spec": "latency=200ms"})
    started = time.perf_counter()
    control.get(f"{sandbox.url}/crm/v3/objects/contacts", headers=HUBSPOT_AUTH, timeout=10)
    assert time.perf_counter() - started >= 0.2


def test_limits_can_be_tightened_at_run_time(sandbox: Sandbox, control: requests.Session) -> None:
    answer = _post(control, "/_sandbox/limits", json={"hubspot_ten_second_limit": 2})
    assert answer.json()["hubspot_ten_second_limit"] == 2
    codes = [
        control.get(
            f"{sandbox.url}/crm/v3/objects/contacts", headers=HUBSPOT_AUTH, timeout=10
        ).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    assert _get(control, "/_sandbox/stats").json()["throttled"] == {"hubspot": 1}


def test_unknown_limit_is_refused(control: requests.Session) -> None:
    answer = _post(control, "/_sandbox/limits", json={"hubspot_per_minute": 5})
    assert answer.status_code == 400
    assert "hubspot_per_minute" in answer.json()["message"]


def test_unknown_paths_answer_404(sandbox: Sandbox, control: requests.Session) -> None:
    assert control.get(f"{sandbox.url}/nowhere", timeout=10).status_code == 404
    assert _get(control, "/_sandbox/nothing").status_code == 404


def test_the_same_seed_serves_the_same_data() -> None:
    settings = SandboxSettings(
        port=0, seed=5, leads=30, seed_until=datetime(2026, 1, 1, tzinfo=UTC)
    )
    first = Sandbox(settings)
    second = Sandbox(settings)
    assert first.hubspot.snapshot() == second.hubspot.snapshot()
    assert first.salesforce.snapshot("Lead") == second.salesforce.snapshot("Lead")


# ---------------------------------------------------------------- the routing session


@responses.activate
def test_routing_session_rewrites_scheme_and_host_and_keeps_path_and_query() -> None:
    responses.add(responses.GET, "http://127.0.0.1:9999/services/data/v59.0/query/", json={})
    session = RoutingSession("http://127.0.0.1:9999")
    session.get("https://na1.salesforce.com/services/data/v59.0/query/?q=SELECT+Id+FROM+Lead")
    assert responses.calls[0].request.url == (
        "http://127.0.0.1:9999/services/data/v59.0/query/?q=SELECT+Id+FROM+Lead"
    )


def test_routing_session_refuses_a_non_http_base() -> None:
    with pytest.raises(ValueError, match="not an http"):
        RoutingSession("ftp://example.com")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8765", True),
        ("https://acme.my.salesforce.com", False),
    ],
)
def test_needs_routing_only_for_plain_http(url: str, expected: bool) -> None:
    assert needs_routing(url) is expected


# ---------------------------------------------------------------- the command line


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _leadsync(*args: str) -> list[str]:
    return [sys.executable, "-m", "leadsync.cli", *args]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_sandbox_command_serves_prints_credentials_and_stops_on_signal(
    stop_signal: signal.Signals,
) -> None:
    port = _free_port()
    with subprocess.Popen(
        _leadsync("sandbox", "--port", str(port), "--leads", "20", "--seed", "3"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            banner = []
            assert process.stdout is not None
            for line in process.stdout:
                banner.append(line)
                if line.startswith("Stop with"):
                    break
            text = "".join(banner)
            assert f"http://127.0.0.1:{port}" in text
            for credential in ("sandbox-token", "sandbox@leadsync.test", "sandbox-client"):
                assert credential in text
            answer = requests.get(f"http://127.0.0.1:{port}/_sandbox/", timeout=10).json()
            assert answer["records"]["hubspot_contacts"] == 20
            process.send_signal(stop_signal)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize(("timeout", "expired"), [("0", True), ("7200", False)])
def test_sandbox_command_takes_the_orgs_session_timeout(timeout: str, expired: bool) -> None:
    # Orgs set their own session timeout (Setup, Session Settings): a sandbox run from the
    # command line can meet leadsync with a short one, where sessions die mid-run.
    port = _free_port()
    with subprocess.Popen(
        _leadsync("sandbox", "--port", str(port), "--leads", "5", "--session-timeout", timeout),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("Stop with"):
                    break
            client = Salesforce(
                username="sandbox@leadsync.test",
                password="sandbox",
                security_token="sandbox",
                session=RoutingSession(f"http://127.0.0.1:{port}"),
            )
            # A session that expired at once is refused; simple-salesforce logs in again on
            # every refusal through `sf.Lead`, so ask through `query`, which does not.
            if expired:
                with pytest.raises(SalesforceExpiredSession):
                    client.query("SELECT Id FROM Lead LIMIT 1")
            else:
                assert client.query("SELECT Id FROM Lead LIMIT 1")["totalSize"] == 1
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--faults", "5xx=2"], "between 0 and 1"),
        (["--overlap", "1.5"], "not between 0 and 1"),
        (["--leads", "many"], "not a whole number"),
        (["--session-timeout", "-5"], "is negative"),
    ],
)
def test_sandbox_command_bad_options_exit_2_without_traceback(
    args: list[str], message: str
) -> None:
    result = subprocess.run(
        _leadsync("sandbox", *args), capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_sandbox_command_reports_a_busy_port_as_a_run_time_failure() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            _leadsync("sandbox", "--port", str(port), "--leads", "0"),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ},
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_raising_a_limit_can_keep_the_usage_so_far(
    sandbox: Sandbox, control: requests.Session
) -> None:
    for _ in range(2):
        control.get(f"{sandbox.url}/crm/v3/objects/contacts", headers=HUBSPOT_AUTH, timeout=10)
    _post(control, "/_sandbox/limits", json={"hubspot_daily_limit": 10, "reset_usage": False})
    assert _get(control, "/_sandbox/stats").json()["quota"]["hubspot"]["daily_remaining"] == 8
    _post(control, "/_sandbox/limits", json={"hubspot_daily_limit": 10})
    assert _get(control, "/_sandbox/stats").json()["quota"]["hubspot"]["daily_remaining"] == 10


# ------------------------------------------------------------------------------ request bodies

LOGIN_ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8" ?><env:Envelope '
    'xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:n1="urn:partner.soap.sforce.com">'
    "<env:Body><n1:login><n1:username>sandbox@leadsync.test</n1:username>"
    "<n1:password>sandboxsandbox</n1:password></n1:login></env:Body></env:Envelope>"
)


def test_a_chunked_body_is_read_and_the_connection_stays_usable(sandbox: Sandbox) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    envelope = LOGIN_ENVELOPE.encode()
    # In three chunks, with no Content-Length, as Node's HTTP clients send a streamed body.
    pieces = [envelope[:50], envelope[50:120], envelope[120:]]
    connection.request(
        "POST",
        "/services/Soap/u/59.0",
        body=iter(pieces),
        headers={"Content-Type": "text/xml", "SOAPAction": "login"},
        encode_chunked=True,
    )
    login = connection.getresponse()
    text = login.read().decode()
    assert login.status == 200, text
    assert "<sessionId>" in text
    # The next request on the same kept-alive connection is answered, not taken for garbage.
    connection.request("GET", "/crm/v3/objects/contacts?limit=1", headers=HUBSPOT_AUTH)
    listed = connection.getresponse()
    assert listed.status == 200
    assert len(listed.read()) > 0
    connection.close()


def test_a_malformed_chunked_body_is_refused_with_400(sandbox: Sandbox) -> None:
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=10) as raw:
        raw.sendall(
            b"POST /crm/v3/objects/contacts/search HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer sandbox-token\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nnot hex\r\n0\r\n\r\n"
        )
        received = b""
        while chunk := raw.recv(4096):  # the server closes the connection after it
            received += chunk
    answer = received.decode()
    assert answer.startswith("HTTP/1.1 400")
    assert "malformed chunked request body" in answer


def test_every_answer_is_dated_on_the_clock_the_crms_stamp_records_with() -> None:
    # A real server's Date header is on its own clock; leadsync reads Salesforce's clock from
    # it (the check before a write asks what changed since a moment on that clock).
    moment = datetime(2026, 3, 1, 12, 30, 45, 600_000, tzinfo=UTC)
    settings = SandboxSettings(port=0, seed=3, leads=5)
    with Sandbox(settings, clock=moment.timestamp) as sandbox:
        answer = requests.get(sandbox.url + "/_sandbox/", timeout=10)
    assert answer.headers["Date"] == "Sun, 01 Mar 2026 12:30:45 GMT"
