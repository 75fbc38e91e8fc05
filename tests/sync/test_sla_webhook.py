"""The SLA webhook: signed JSON posts, retried within a check and across checks, never leaking
its URL's path or its secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses

from leadsync.secrets import Secret
from leadsync.sync.sla.clocks import Clock, ClockChanges
from leadsync.sync.sla.ledger import SlaEvent
from leadsync.sync.sla.monitor import SlaMonitor, monitor_for
from leadsync.sync.sla.webhook import (
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookError,
    WebhookSender,
    signature,
)
from leadsync.sync.store import Store
from tests.sync.test_sla_clocks import definition

URL = "https://hooks.example.com/services/T000/B000/XXXXSECRETPATH"
SECRET = "shh-its-a-secret"
NOW = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)
EVENT = SlaEvent(
    "breached:abc", "breached", "mql_acceptance", NOW, {"rule": "mql_acceptance", "lead_id": "L1"}
)


def sender(*, attempts: int = 3) -> WebhookSender:
    return WebhookSender(
        Secret(URL),
        Secret(SECRET),
        attempts=attempts,
        clock=lambda: 1_764_705_600.0,
        sleep=lambda _: None,
    )


@responses.activate
def test_an_event_is_posted_as_json_signed_with_the_shared_secret() -> None:
    responses.post(URL, status=204)
    sender().send(EVENT)
    (call,) = responses.calls
    body = call.request.body
    assert isinstance(body, bytes)
    assert json.loads(body) == {
        "id": "breached:abc",
        "type": "sla.breached",
        "created_at": NOW.isoformat(),
        "data": {"rule": "mql_acceptance", "lead_id": "L1"},
    }
    headers = call.request.headers
    assert headers[EVENT_HEADER] == "breached:abc"
    assert headers[TIMESTAMP_HEADER] == "1764705600"
    # What a receiver computes from the secret it shares:
    expected = hmac.new(SECRET.encode(), b"1764705600." + body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert signature(SECRET, 1764705600, body) == headers[SIGNATURE_HEADER]
    assert signature("another secret", 1764705600, body) != headers[SIGNATURE_HEADER]


@pytest.mark.parametrize(
    ("answers", "posts", "delivered", "retriable"),
    [
        ([503, 200], 2, True, None),
        ([429, 502, 200], 3, True, None),
        ([500, 500, 500], 3, False, True),
        ([404], 1, False, False),  # a wrong URL: no point asking again at once
        ([401], 1, False, False),
        (["drop", 200], 2, True, None),
    ],
)
@responses.activate
def test_busy_or_failing_receivers_are_retried_within_bounds(
    answers: list[int | str], posts: int, delivered: bool, retriable: bool | None
) -> None:
    for answer in answers:
        if answer == "drop":
            responses.post(URL, body=requests.ConnectionError("reset by peer"))
        else:
            responses.post(URL, status=int(answer))
    if delivered:
        sender().send(EVENT)
    else:
        with pytest.raises(WebhookError) as failed:
            sender().send(EVENT)
        assert failed.value.retriable is retriable
    assert len(responses.calls) == posts


@responses.activate
def test_errors_name_the_host_only_never_the_path_or_the_secret() -> None:
    responses.post(URL, body=requests.ConnectionError(f"cannot reach {URL}"))
    with pytest.raises(WebhookError) as failed:
        sender(attempts=1).send(EVENT)
    message = str(failed.value)
    assert "hooks.example.com" in message
    assert "XXXXSECRETPATH" not in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "url",
    [
        "http://hookuser:hookpass@127.0.0.1:9/hook?token=querysecret",
        "https://hookuser:hookpass@hooks.example.com/services/XXXXSECRETPATH",
    ],
)
def test_credentials_in_the_url_reach_no_error_log_or_stored_error(
    url: str, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.post(url, status=503)
        webhook = WebhookSender(Secret(url), Secret(SECRET), attempts=2, sleep=lambda _: None)
        with Store(database_url) as store:
            _breach(store, "L1")
            monitor = monitor_for(store, definition(), webhook=webhook, max_attempts=3)
            assert monitor is not None
            assert monitor.check(NOW).failed == 1
            (event,) = store.sla.events()
    said = [event.last_error or "", *(record.getMessage() for record in caplog.records)]
    assert event.last_error is not None
    assert event.last_error.endswith("answered 503")
    for secret in ("hookuser", "hookpass", "querysecret", "XXXXSECRETPATH", SECRET):
        assert all(secret not in line for line in said), secret


# ------------------------------------------------------------------- the monitor's outbox


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with Store(database_url) as opened:
        yield opened


def _breach(store: Store, lead: str) -> None:
    started = NOW - timedelta(days=2)
    due = NOW - timedelta(minutes=1)
    clock = Clock(f"c-{lead}", "mql_acceptance", lead, started, due, "America/New_York")
    store.save_decisions(clocks=[ClockChanges(opened=(clock,))], run_id="r1")


def _monitor(store: Store, *, max_attempts: int = 3) -> SlaMonitor:
    monitor = monitor_for(store, definition(), webhook=sender(), max_attempts=max_attempts)
    assert monitor is not None
    return monitor


@responses.activate
def test_an_undelivered_event_is_posted_again_by_a_later_check_until_it_lands(
    store: Store,
) -> None:
    _breach(store, "L1")
    monitor = _monitor(store)
    responses.post(URL, status=503)
    first = monitor.check(NOW)
    assert (first.delivered, first.failed) == (0, 1)
    assert monitor.check(NOW + timedelta(seconds=30)).failed == 0  # not due again yet
    responses.replace(responses.POST, URL, status=200)
    later = monitor.check(NOW + timedelta(minutes=1))
    assert (later.delivered, later.failed) == (1, 0)
    assert monitor.check(NOW + timedelta(hours=1)).delivered == 0  # delivered once
    posted = [json.loads(call.request.body or b"")["id"] for call in responses.calls]
    assert set(posted) == {"breached:c-L1"}
    (event,) = store.sla.events()
    assert event.delivered_at == NOW + timedelta(minutes=1)


@responses.activate
def test_an_event_the_receiver_keeps_refusing_is_given_up_with_its_error_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    _breach(store, "L1")
    monitor = _monitor(store, max_attempts=2)
    responses.post(URL, status=410)
    caplog.set_level(logging.WARNING, logger="leadsync.sla")
    monitor.check(NOW)
    monitor.check(NOW + timedelta(minutes=1))
    assert monitor.check(NOW + timedelta(days=30)).failed == 0
    assert len(responses.calls) == 2
    (event,) = store.sla.events()
    assert (event.attempts, event.delivered_at) == (2, None)
    assert event.last_error == "hooks.example.com answered 410"
    assert any(
        "gave up on breached:c-L1 after 2 attempts" in r.getMessage() for r in caplog.records
    )
    assert all("XXXXSECRETPATH" not in r.getMessage() for r in caplog.records)
