"""The Salesforce connector against the sandbox, over real HTTP: the three logins and re-login,
incremental and full pulls (REST and Bulk alike), describe, writes (collections and Bulk),
injected faults, quota, and secrets kept out of logs and errors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce.api import Salesforce
from simple_salesforce.login import SalesforceLogin

from leadsync.connectors.base import CrmRecord, FieldType, Page, Position, RecordUpdate, WriteStatus
from leadsync.connectors.errors import (
    AuthenticationError,
    QuotaExhaustedError,
    QuotaReserveReachedError,
)
from leadsync.connectors.retry import RetryPolicy
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.connectors.salesforce_routing import RoutingSession
from leadsync.connectors.settings import SalesforceConnection
from leadsync.connectors.writeback import SALESFORCE_WRITEBACK_FIELDS
from leadsync.sandbox import SalesforceCredentials, SalesforceSettings, Sandbox, SandboxSettings
from leadsync.secrets import Secret
from tests.support import FakeClock

USERNAME = "sandbox@leadsync.test"
RETRY = RetryPolicy(max_attempts=6, max_seconds=20, initial_wait=0.001, max_wait=0.01)
# For faults drawn at random: twelve failures in a row are too unlikely to matter.
PATIENT = RetryPolicy(max_attempts=12, max_seconds=30, initial_wait=0.001, max_wait=0.005)
SEED_UNTIL = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)
LATER = datetime(2100, 1, 1, tzinfo=UTC)  # a run start after every stamp in the sandbox
BATCH = {"Sforce-Query-Options": "batchSize=200"}
# Raw values of many kinds: text, picklists, numbers, booleans, dates, datetimes, references,
# custom fields, null ones.
FIELDS = (
    "Email",
    "FirstName",
    "LastName",
    "Company",
    "Title",
    "Phone",
    "Industry",
    "Status",
    "NumberOfEmployees",
    "AnnualRevenue",
    "IsConverted",
    "ConvertedDate",
    "ConvertedOpportunityId",
    "CreatedDate",
    "OwnerId",
    "Leadsync_Score__c",
    "Leadsync_Score_Reasons__c",
    "Leadsync_Stage__c",
)


# ------------------------------------------------------------------------------------ helpers


class Inspector:
    """The sandbox's /_sandbox/ API: what the org holds and what it was asked."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.base = sandbox.url
        self.http = requests.Session()
        self.http.trust_env = False

    def post(self, path: str, body: Any = None) -> Any:
        answer = self.http.post(f"{self.base}/_sandbox/{path}", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def stats(self) -> dict[str, Any]:
        answer = self.http.get(f"{self.base}/_sandbox/stats")
        answer.raise_for_status()
        return dict(answer.json())

    def served(self, endpoint: str) -> int:
        return int(self.stats()["endpoints"].get(endpoint, 0))

    def logins(self) -> int:
        return int(self.stats()["quota"]["salesforce"]["logins"])

    def leads(self, *, deleted: bool = False) -> dict[str, dict[str, Any]]:
        params = {"deleted": "true"} if deleted else {}
        answer = self.http.get(f"{self.base}/_sandbox/salesforce/leads", params=params)
        answer.raise_for_status()
        return {row["Id"]: row for row in answer.json()["records"]}

    def close(self) -> None:
        self.http.close()


@contextlib.contextmanager
def running(
    *, leads: int = 60, clock: FakeClock | None = None, **salesforce: Any
) -> Iterator[tuple[Sandbox, Inspector]]:
    """A sandbox of its own for one test; `salesforce` are `SalesforceSettings`. Without a
    clock the seed is pinned, so two sandboxes hold the very same records."""
    settings = SandboxSettings(
        port=0,
        seed=7,
        leads=leads,
        seed_until=SEED_UNTIL if clock is None else None,
        salesforce=SalesforceSettings(**salesforce),
    )
    sandbox = Sandbox(settings) if clock is None else Sandbox(settings, clock=clock)
    with sandbox:
        inspector = Inspector(sandbox)
        try:
            yield sandbox, inspector
        finally:
            inspector.close()


@contextlib.contextmanager
def connected(sandbox: Sandbox, **settings: Any) -> Iterator[SalesforceConnector]:
    """A connector logged in with the sandbox's password; `settings` override the connection's."""
    settings = {"retry": RETRY, "bulk_poll_seconds": 0.0, **settings}
    connection = SalesforceConnection.for_sandbox(sandbox.url, **settings)
    connector = SalesforceConnector(connection)
    try:
        yield connector
    finally:
        connector.close()


def client(sandbox: Sandbox) -> Salesforce:
    """simple-salesforce logged in on the side, to change the org as its users would."""
    return Salesforce(
        username=USERNAME,
        password="sandbox",
        security_token="sandbox",
        session=RoutingSession(sandbox.url),
    )


def records(pages: Iterable[Page]) -> list[CrmRecord]:
    return [record for page in pages for record in page.records]


def ids(found: Iterable[CrmRecord]) -> list[str]:
    return [record.id for record in found]


def known_from(held: Iterable[CrmRecord]) -> Callable[[Sequence[str]], Mapping[str, datetime]]:
    """What a store holding `held` tells a pull (`known`): their stamps."""
    stamps = {record.id: record.modified_at for record in held}
    return lambda wanted: {i: stamps[i] for i in wanted if i in stamps}


def unseen(pulled: Iterable[CrmRecord], held: Iterable[CrmRecord]) -> list[CrmRecord]:
    """Of `pulled`, what a store holding `held` finds new: a Salesforce pull gives again the
    records at a stamp the store holds (two saves may share a second), and the store drops
    those whose content it already has."""
    have = {(r.id, r.modified_at, r.deleted, tuple(sorted(r.fields.items()))) for r in held}
    return [
        r
        for r in pulled
        if (r.id, r.modified_at, r.deleted, tuple(sorted(r.fields.items()))) not in have
    ]


def open_lead_ids(inspector: Inspector, count: int) -> list[str]:
    leads = inspector.leads()
    return sorted(i for i, row in leads.items() if not row["IsConverted"])[:count]


def converted_lead_id(inspector: Inspector) -> str:
    return min(i for i, row in inspector.leads().items() if row["IsConverted"])


def create_leads(sandbox: Sandbox, count: int) -> None:
    sf = client(sandbox)
    people = [{"LastName": f"Tie {n:04d}", "Company": "Same Moment Ltd"} for n in range(count)]
    for start in range(0, count, 200):
        body = {
            "allOrNone": True,
            "records": [{"attributes": {"type": "Lead"}, **p} for p in people[start : start + 200]],
        }
        answers = sf.restful("composite/sobjects", method="POST", json=body)
        assert all(answer["success"] for answer in answers)


def in_stamp_order(found: Sequence[CrmRecord]) -> bool:
    return [r.position for r in found] == sorted(r.position for r in found)


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def jwt_connection(sandbox: Sandbox, key_file: Path) -> SalesforceConnection:
    return SalesforceConnection(
        username=USERNAME,
        consumer_key="sandbox-client",
        private_key_file=key_file,
        instance_url=sandbox.url,
        retry=RETRY,
    )


# ------------------------------------------------------------------------------------ auth


def test_password_login_reads_the_org() -> None:
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        pulled = records(connector.pull(None, fields=["Email"], started_at=LATER))
        assert len(pulled) == 60
        assert inspector.logins() == 1


def test_jwt_bearer_login_reads_the_org(key_pair: tuple[str, str], tmp_path: Path) -> None:
    private, public = key_pair
    key_file = tmp_path / "leadsync.key"
    key_file.write_text(private)
    credentials = SalesforceCredentials(jwt_public_key=public)
    with running(credentials=credentials) as (sandbox, inspector):
        connector = SalesforceConnector(jwt_connection(sandbox, key_file))
        assert connector.connection.auth_method == "jwt"
        assert connector.describe().field("Email") is not None
        assert inspector.logins() == 1
        connector.close()


def test_jwt_bearer_login_with_an_unregistered_key_is_refused(
    key_pair: tuple[str, str], tmp_path: Path
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "other.key"
    key_file.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with running(credentials=SalesforceCredentials(jwt_public_key=key_pair[1])) as (
        sandbox,
        _inspector,
    ):
        connector = SalesforceConnector(jwt_connection(sandbox, key_file))
        with pytest.raises(AuthenticationError, match="invalid assertion"):
            connector.describe()
        connector.close()


def test_session_id_login_needs_no_login_of_its_own() -> None:
    with running() as (sandbox, inspector):
        session_id, _ = SalesforceLogin(
            username=USERNAME,
            password="sandbox",
            security_token="sandbox",
            session=RoutingSession(sandbox.url),
        )
        connection = SalesforceConnection(
            session_id=Secret(session_id), instance_url=sandbox.url, retry=RETRY
        )
        connector = SalesforceConnector(connection)
        assert len(records(connector.pull(None, fields=["Email"], started_at=LATER))) == 60
        assert inspector.logins() == 1  # the one above, none by the connector

        inspector.post("salesforce/expire-sessions")
        with pytest.raises(AuthenticationError, match="no credentials to log in again"):
            connector.describe()
        connector.close()


def test_bad_credentials_raise_authentication_error() -> None:
    with running() as (sandbox, inspector):
        connection = replace(
            SalesforceConnection.for_sandbox(sandbox.url, retry=RETRY), password=Secret("wrong")
        )
        connector = SalesforceConnector(connection)
        with pytest.raises(AuthenticationError, match="INVALID_LOGIN") as refused:
            connector.describe()
        assert refused.value.category == "authentication"
        assert inspector.stats()["endpoints"] == {"salesforce.auth.soap": 1}  # not retried
        connector.close()


def test_a_session_expired_mid_pull_logs_in_once_and_completes() -> None:
    with running(leads=450) as (sandbox, inspector), connected(sandbox, query_batch_size=200) as c:
        pages = c.pull(None, fields=["Email"], started_at=LATER)
        first = next(pages)
        inspector.post("salesforce/expire-sessions")
        pulled = [*first.records, *records(pages)]
        assert len(ids(pulled)) == len(set(ids(pulled))) == 450
        assert inspector.logins() == 2


def test_logins_that_expire_at_once_end_in_authentication_error_after_two() -> None:
    with running(session_timeout_seconds=0) as (sandbox, inspector), connected(sandbox) as c:
        with pytest.raises(AuthenticationError, match="expired again"):
            c.describe()
        assert inspector.logins() == 2


# ------------------------------------------------------------------------------------ pull


def test_pull_streams_every_record_page_by_page_in_stamp_order() -> None:
    with running(leads=450) as (sandbox, inspector), connected(sandbox, query_batch_size=200) as c:
        pages = c.pull(None, fields=FIELDS, started_at=LATER)
        first = next(pages)
        assert len(first.records) == 200
        # COUNT() and the first page only: the second page is not fetched before it is asked for.
        assert inspector.served("salesforce.query_all") == 2
        assert inspector.served("salesforce.query_more") == 0

        pulled = [*first.records, *records(pages)]
        assert inspector.served("salesforce.query_more") == 2
        assert sorted(ids(pulled)) == sorted(inspector.leads(deleted=True))
        assert in_stamp_order(pulled)
        assert first.position == first.records[-1].position
        assert set(pulled[0].fields) == set(FIELDS)
        assert all(record.modified_at.tzinfo is UTC for record in pulled)


def test_pull_resumes_from_a_position_with_only_later_changes() -> None:
    with running() as (sandbox, inspector), connected(sandbox, lookback=timedelta(0)) as connector:
        before = list(connector.pull(None, fields=["Title"], started_at=LATER))
        changed = open_lead_ids(inspector, 3)
        result = connector.write([RecordUpdate(i, {"Title": "Moved on"}) for i in changed])
        assert {r.status for r in result} == {WriteStatus.WRITTEN}

        position, held = before[-1].position, known_from(records(before))
        pulled = records(connector.pull(position, fields=["Title"], started_at=LATER, known=held))
        after = unseen(pulled, records(before))
        assert sorted(ids(after)) == sorted(changed)
        assert {record.fields["Title"] for record in after} == {"Moved on"}
        # Nothing older than the position's second comes again.
        second = position.modified_at.replace(microsecond=0)
        assert all(r.modified_at >= second for r in pulled)


def test_pull_skips_no_record_sharing_a_stamp_across_pages_and_repeats_only_the_tie() -> None:
    clock = FakeClock()  # frozen: every write below gets the same SystemModstamp
    with running(leads=10, clock=clock) as (sandbox, _inspector):
        create_leads(sandbox, 450)
        with connected(sandbox, query_batch_size=200, lookback=timedelta(0)) as connector:
            pages = list(connector.pull(None, fields=["LastName"], started_at=LATER))
            everything = records(pages)
            assert [len(page.records) for page in pages] == [200, 200, 60]
            assert len(set(ids(everything))) == 460
            assert in_stamp_order(everything)
            shared = {r.modified_at for r in everything if r.fields["LastName"].startswith("Tie")}
            assert len(shared) == 1

            # Resuming from either page boundary, inside the tie, with the records read so far
            # held, reads the whole second again (a tie may grow after a pull, and a record
            # in it may have changed within the second): the store finds exactly the rest new.
            for done, page in ((200, pages[0]), (400, pages[1])):
                held = known_from(everything[:done])
                again = records(
                    connector.pull(page.position, fields=["LastName"], started_at=LATER, known=held)
                )
                (stamp,) = shared
                assert ids(again) == ids([r for r in everything if r.modified_at == stamp])
                assert ids(unseen(again, everything[:done])) == ids(everything)[done:]


def test_lookback_pulls_recent_records_again_and_known_drops_those_held_at_a_later_stamp() -> None:
    clock = FakeClock(SEED_UNTIL.timestamp())
    with running(clock=clock) as (sandbox, inspector):
        sf = client(sandbox)
        first, second = open_lead_ids(inspector, 2)
        clock.advance(60)
        sf.Lead.update(first, {"Title": "Earlier change"})
        with connected(sandbox, lookback=timedelta(minutes=5)) as connector:
            held = records(connector.pull(None, fields=["Title"], started_at=LATER))
            stamps = {record.id: record.modified_at for record in held}
            position = max(record.position for record in held)
            assert position.record_id == first

            clock.advance(60)
            sf.Lead.update(second, {"Title": "Later change"})
            window = position.modified_at - timedelta(minutes=5)
            again = records(connector.pull(position, fields=["Title"], started_at=LATER))
            expected = {r.id for r in held if r.modified_at >= window} | {second}
            assert set(ids(again)) == expected
            assert first in ids(again)  # read again by the look-back

            def known(wanted: Sequence[str]) -> Mapping[str, datetime]:
                return {i: stamps[i] for i in wanted if i in stamps}

            fresh = records(
                connector.pull(position, fields=["Title"], started_at=LATER, known=known)
            )
            # The held ones at their held stamp come again (a stamp of whole seconds is no
            # proof of the same version); the store finds only the later change new.
            assert set(ids(fresh)) == expected
            assert ids(unseen(fresh, held)) == [second]
            assert unseen(fresh, held)[0].fields["Title"] == "Later change"
            # A record the store holds at a later stamp (a read before a write) is dropped.
            ahead = {first: stamps[first] + timedelta(seconds=1)}
            newer = records(
                connector.pull(
                    position,
                    fields=["Title"],
                    started_at=LATER,
                    known=lambda wanted: {i: ahead[i] for i in wanted if i in ahead},
                )
            )
            assert first not in ids(newer)


def test_an_edit_later_in_the_second_of_the_position_is_pulled_whatever_the_lookback() -> None:
    # Salesforce stamps keep whole seconds: an edit made after a pull, in the very second of
    # the pull's last record, carries that record's stamp and may sort before it by Id. A pull
    # resumed from (second, Id) would step over it for good when no look-back covers it.
    clock = FakeClock(SEED_UNTIL.timestamp())  # frozen: the writes below share one second
    with running(clock=clock) as (sandbox, inspector):
        sf = client(sandbox)
        low, high = open_lead_ids(inspector, 2)
        clock.advance(60)
        sf.Lead.update(high, {"Title": "Read by the first pull"})
        with connected(sandbox, lookback=timedelta(0)) as connector:
            held = records(connector.pull(None, fields=["Title"], started_at=LATER))
            position = held[-1].position
            assert position.record_id == high
            sf.Lead.update(low, {"Title": "Same second, lower Id"})
            again = records(
                connector.pull(position, fields=["Title"], started_at=LATER, known=known_from(held))
            )
            assert ids(unseen(again, held)) == [low]
            assert unseen(again, held)[0].fields["Title"] == "Same second, lower Id"


def test_a_record_edited_again_in_the_second_it_was_pulled_is_pulled_again() -> None:
    # Two versions of one record can share a whole-second SystemModstamp: a stamp the store
    # already holds is no proof that it holds this version (leadsync's own write landing in
    # the second of the pull before it, a person's second save), so the record comes again.
    clock = FakeClock(SEED_UNTIL.timestamp())  # frozen: the edits below share one second
    with running(clock=clock) as (sandbox, inspector):
        sf = client(sandbox)
        (lead,) = open_lead_ids(inspector, 1)
        clock.advance(60)
        sf.Lead.update(lead, {"Title": "First save"})
        with connected(sandbox, lookback=timedelta(0)) as connector:
            held = records(connector.pull(None, fields=["Title"], started_at=LATER))
            position = held[-1].position
            assert position.record_id == lead
            sf.Lead.update(lead, {"Title": "Second save, same second"})
            again = records(
                connector.pull(position, fields=["Title"], started_at=LATER, known=known_from(held))
            )
            assert ids(again) == [lead]
            assert again[0].modified_at == position.modified_at
            assert again[0].fields["Title"] == "Second save, same second"


def test_page_positions_never_pass_the_start_of_the_run() -> None:
    with running(leads=450) as (sandbox, _inspector), connected(sandbox, query_batch_size=200) as c:
        everything = records(c.pull(None, fields=["Email"], started_at=LATER))
        started_at = everything[-100].modified_at - timedelta(milliseconds=1)
        pages = list(c.pull(None, fields=["Email"], started_at=started_at))
        cap = Position(started_at, "")
        assert all(page.position is not None and page.position <= cap for page in pages)
        assert pages[-1].position == cap
        assert records(pages) == everything  # records after the start still come, once


def test_deleted_records_come_back_flagged() -> None:
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        gone = open_lead_ids(inspector, 2)
        sf = client(sandbox)
        for lead_id in gone:
            sf.Lead.delete(lead_id)
        pulled = records(connector.pull(None, fields=["Email"], started_at=LATER))
        assert sorted(r.id for r in pulled if r.deleted) == sorted(gone)
        assert len(pulled) == 60


def test_a_lost_query_cursor_is_reopened_from_the_last_record_read() -> None:
    with running(leads=450) as (sandbox, inspector), connected(sandbox, query_batch_size=200) as c:
        expected = ids(records(c.pull(None, fields=["Email"], started_at=LATER)))
        pages = c.pull(None, fields=["Email"], started_at=LATER)
        first = next(pages)
        sf = client(sandbox)
        for _ in range(10):  # Salesforce keeps 10 cursors open; these close the connector's
            sf.query("SELECT Id FROM Lead", headers=BATCH)
        pulled = [*first.records, *records(pages)]
        assert ids(pulled) == expected
        assert inspector.stats()["statuses"]["salesforce.query_more 400"] == 1


def test_the_bulk_path_yields_exactly_the_records_of_the_rest_path() -> None:
    with running(leads=450) as (sandbox, inspector):
        sf = client(sandbox)
        for lead_id in open_lead_ids(inspector, 2):
            sf.Lead.delete(lead_id)
        since = Position(SEED_UNTIL - timedelta(days=60), "")
        with connected(sandbox, query_batch_size=200) as rest:
            by_rest = [list(rest.pull(p, fields=FIELDS, started_at=LATER)) for p in (None, since)]
        with connected(sandbox, bulk_query_threshold=0, bulk_page_size=100) as bulk:
            by_bulk = [list(bulk.pull(p, fields=FIELDS, started_at=LATER)) for p in (None, since)]
        assert inspector.served("salesforce.bulk.query_create") == 2
        assert [len(page.records) for page in by_bulk[0]] == [100, 100, 100, 100, 50]
        for rest_pages, bulk_pages in zip(by_rest, by_bulk, strict=True):
            assert records(bulk_pages) == records(rest_pages)
        assert sum(r.deleted for r in records(by_bulk[0])) == 2
        assert 0 < len(records(by_bulk[1])) < 450


def test_a_bulk_result_page_is_handed_on_in_chunks_of_the_rest_page_size() -> None:
    with running(leads=450) as (sandbox, inspector):
        sf = client(sandbox)
        odd = open_lead_ids(inspector, 1)[0]
        # Text beyond Latin-1 and beyond ASCII, a quoted line break, a cell emptied to null.
        sf.Lead.update(odd, {"FirstName": "Zoë 渡辺", "Title": 'Head of "Ops"\r\nEMEA'})
        sf.Lead.update(odd, {"Phone": None})
        with connected(sandbox, query_batch_size=200) as rest:
            by_rest = records(rest.pull(None, fields=FIELDS, started_at=LATER))
        with connected(
            sandbox, bulk_query_threshold=0, bulk_page_size=1000, query_batch_size=120
        ) as bulk:
            pages = list(bulk.pull(None, fields=FIELDS, started_at=LATER))
        assert inspector.served("salesforce.bulk.query_results") == 1
        assert [len(page.records) for page in pages] == [120, 120, 120, 90]
        assert [page.position for page in pages] == [page.records[-1].position for page in pages]
        by_bulk = records(pages)
        assert by_bulk == by_rest
        fields = next(r.fields for r in by_bulk if r.id == odd)
        assert (fields["FirstName"], fields["Title"], fields["Phone"]) == (
            "Zoë 渡辺",
            'Head of "Ops"\r\nEMEA',
            None,
        )
        assert {type(r.fields["IsConverted"]) for r in by_bulk} == {bool}
        assert {type(r.fields["NumberOfEmployees"]) for r in by_bulk} <= {int, type(None)}
        assert int in {type(r.fields["NumberOfEmployees"]) for r in by_bulk}
        assert float in {type(r.fields["AnnualRevenue"]) for r in by_bulk}


def test_pull_all_pages_by_id_and_resumes_after_a_checkpoint() -> None:
    with running(leads=450) as (sandbox, inspector):
        sf = client(sandbox)
        gone = open_lead_ids(inspector, 1)[0]
        sf.Lead.delete(gone)
        with connected(sandbox, query_batch_size=200) as rest:
            pages = list(rest.pull_all(fields=FIELDS))
            everything = records(pages)
            assert ids(everything) == sorted(inspector.leads())
            assert gone not in ids(everything)
            assert [page.checkpoint for page in pages] == [page.records[-1].id for page in pages]

            resumed = records(rest.pull_all(pages[0].checkpoint, fields=FIELDS))
            assert resumed == everything[200:]
        with connected(sandbox, bulk_query_threshold=0, bulk_page_size=150) as bulk:
            assert records(bulk.pull_all(fields=FIELDS)) == everything
            assert records(bulk.pull_all(pages[0].checkpoint, fields=FIELDS)) == everything[200:]


# ------------------------------------------------------------------------------------ describe


def test_describe_maps_types_options_and_writability() -> None:
    with running() as (sandbox, _inspector), connected(sandbox) as connector:
        lead = connector.describe()
    assert lead.object_name == "Lead"
    assert lead.case_insensitive
    status = lead.fields["Status"]
    assert (status.type, status.restricted, status.writable) == (FieldType.ENUMERATION, True, True)
    assert status.options[0] == "Open - Not Contacted"
    industry = lead.fields["Industry"]
    assert (industry.type, industry.restricted) == (FieldType.ENUMERATION, False)
    assert "Technology" in industry.options
    kinds = {name: lead.fields[name].type for name in lead.fields}
    assert kinds["Email"] is FieldType.EMAIL
    assert kinds["Phone"] is FieldType.PHONE
    assert kinds["Website"] is FieldType.URL
    assert kinds["NumberOfEmployees"] is FieldType.INTEGER
    assert kinds["AnnualRevenue"] is FieldType.NUMBER
    assert kinds["IsConverted"] is FieldType.BOOLEAN
    assert kinds["ConvertedDate"] is FieldType.DATE
    assert kinds["CreatedDate"] is FieldType.DATETIME
    assert kinds["Id"] is FieldType.ID
    assert kinds["OwnerId"] is FieldType.REFERENCE
    assert kinds["Leadsync_Score_Reasons__c"] is FieldType.TEXT
    assert kinds["Leadsync_Grade__c"] is FieldType.STRING
    assert not lead.fields["IsConverted"].writable
    assert not lead.fields["CreatedDate"].writable
    assert lead.fields["LastName"].required
    assert not lead.fields["Status"].required  # it has a default
    assert lead.fields["Leadsync_Score__c"].custom
    assert not lead.fields["Email"].custom
    assert lead.fields["Email"].max_length == 80
    assert lead.field("email") is lead.fields["Email"]


def test_missing_writeback_fields_is_empty_when_an_admin_created_them() -> None:
    with running() as (sandbox, _inspector), connected(sandbox) as connector:
        assert connector.missing_writeback_fields() == []


def test_missing_writeback_fields_lists_all_nine_with_admin_instructions() -> None:
    with running(custom_fields=False) as (sandbox, _inspector), connected(sandbox) as connector:
        missing = connector.missing_writeback_fields()
    assert missing == list(SALESFORCE_WRITEBACK_FIELDS)
    assert len(missing) == 9
    instructions = [spec.admin_instruction() for spec in missing]
    assert instructions[0].startswith('Leadsync_Score__c: label "Lead score", type Number(18, 0)')
    assert "Picklist (restricted) with values Lead, MQL" in instructions[-2]
    assert instructions[-1].startswith(
        'Leadsync_Id__c: label "Leadsync ID", type Text(64), Unique, External ID.'
    )


# ------------------------------------------------------------------------------------ write


def test_write_sends_collections_of_200_and_answers_in_input_order() -> None:
    with running(leads=1000) as (sandbox, inspector), connected(sandbox) as connector:
        all_ids = list(inspector.leads())
        updates = [RecordUpdate(i, {"Title": f"Title {n}"}) for n, i in enumerate(all_ids)]
        results = connector.write(updates)
        assert inspector.served("salesforce.collection_update") == 5
        assert [r.record_id for r in results] == all_ids
        stored = inspector.leads()
        for n, (lead_id, result) in enumerate(zip(all_ids, results, strict=True)):
            if stored[lead_id]["IsConverted"]:
                assert result.category == "cannot_update_converted_lead"
            else:
                assert result.status is WriteStatus.WRITTEN
                assert stored[lead_id]["Title"] == f"Title {n}"


def test_write_reports_each_record_on_its_own() -> None:
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        plain, picky, unknown, cleared = open_lead_ids(inspector, 4)
        converted = converted_lead_id(inspector)
        results = connector.write(
            [
                RecordUpdate(plain, {"Leadsync_Score__c": 42, "Leadsync_Stage__c": "MQL"}),
                RecordUpdate(picky, {"Status": "Qualified-ish"}),
                RecordUpdate(converted, {"Title": "Too late"}),
                RecordUpdate(unknown, {"No_Such_Field__c": "x"}),
                RecordUpdate(cleared, {"Title": None}),
            ]
        )
        summary = [(r.record_id, r.status, r.category) for r in results]
        assert summary == [
            (plain, WriteStatus.WRITTEN, ""),
            (picky, WriteStatus.FAILED, "invalid_or_null_for_restricted_picklist"),
            (converted, WriteStatus.FAILED, "cannot_update_converted_lead"),
            (unknown, WriteStatus.FAILED, "invalid_field"),
            (cleared, WriteStatus.WRITTEN, ""),
        ]
        assert "Qualified-ish" in results[1].message
        # The fields Salesforce named: what a run's summary shows, never the values.
        assert results[1].fields == ("Status",)
        assert results[0].fields == ()
        stored = inspector.leads()
        assert stored[plain]["Leadsync_Score__c"] == 42.0
        assert stored[plain]["Leadsync_Stage__c"] == "MQL"
        assert stored[picky]["Status"] != "Qualified-ish"
        assert stored[cleared]["Title"] is None


def test_a_collection_refused_for_a_value_it_cannot_parse_is_split_until_it_stands_alone() -> None:
    # Salesforce parses a request before it saves any record of it: one value whose JSON does
    # not fit its field's type fails the whole collection (400 JSON_PARSER_ERROR). Deferring
    # every record for it would block the other 199 at every run.
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        targets = open_lead_ids(inspector, 5)
        updates = [RecordUpdate(i, {"Title": f"Parsed {n}"}) for n, i in enumerate(targets)]
        bad = targets[3]
        updates[3] = RecordUpdate(bad, {"NumberOfEmployees": "a dozen"})
        results = connector.write(updates)
        assert [(r.record_id, r.status) for r in results] == [
            (i, WriteStatus.FAILED if i == bad else WriteStatus.WRITTEN) for i in targets
        ]
        assert results[3].category == "json_parser_error"
        assert "a dozen" in results[3].message
        stored = inspector.leads()
        assert [stored[i]["Title"] for i in targets if i != bad] == [
            f"Parsed {n}" for n, i in enumerate(targets) if i != bad
        ]
        assert stored[bad]["NumberOfEmployees"] != "a dozen"


def test_locked_rows_are_retried_until_written() -> None:
    with running() as (sandbox, inspector), connected(sandbox, retry=PATIENT) as connector:
        targets = open_lead_ids(inspector, 40)
        inspector.post("faults", {"spec": "lock=0.3", "seed": 5})
        results = connector.write([RecordUpdate(i, {"Title": "Locked once"}) for i in targets])
        assert {r.status for r in results} == {WriteStatus.WRITTEN}
        assert max(r.attempts for r in results) > 1
        stored = inspector.leads()
        assert {stored[i]["Title"] for i in targets} == {"Locked once"}


def test_rows_that_stay_locked_are_deferred_after_the_bounded_attempts() -> None:
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        targets = open_lead_ids(inspector, 5)
        inspector.post("faults", {"spec": "lock=1"})
        results = connector.write([RecordUpdate(i, {"Title": "Never"}) for i in targets])
        assert {(r.status, r.category, r.attempts) for r in results} == {
            (WriteStatus.DEFERRED, "unable_to_lock_row", RETRY.max_attempts)
        }
        assert inspector.served("salesforce.collection_update") == RETRY.max_attempts


@pytest.mark.parametrize("bulk_write_threshold", [200, 2], ids=["collection", "bulk"])
def test_two_updates_of_one_record_in_a_write_land_together_and_alone_harm_nobody(
    bulk_write_threshold: int,
) -> None:
    # Salesforce saves a request through one DML call, which treats a record named twice
    # apart (the Apex guide's "Attempt to update Id more than once"; the sandbox refuses the
    # whole collection for it, the stricter reading): send each record once.
    with (
        running() as (sandbox, inspector),
        connected(sandbox, bulk_write_threshold=bulk_write_threshold) as connector,
    ):
        twice, once = open_lead_ids(inspector, 2)
        results = connector.write(
            [
                RecordUpdate(twice, {"Title": "Head of Data"}),
                RecordUpdate(once, {"Title": "Buyer"}),
                RecordUpdate(twice, {"Phone": "+1 555 0100"}),
            ]
        )
        assert [(r.record_id, r.status) for r in results] == [
            (twice, WriteStatus.WRITTEN),
            (once, WriteStatus.WRITTEN),
            (twice, WriteStatus.WRITTEN),
        ]
        stored = inspector.leads()
        assert (stored[twice]["Title"], stored[twice]["Phone"]) == ("Head of Data", "+1 555 0100")
        assert stored[once]["Title"] == "Buyer"


def test_bulk_writes_report_each_row_and_keep_non_ascii_text() -> None:
    with running() as (sandbox, inspector), connected(sandbox, bulk_write_threshold=2) as c:
        umlauts, picky, cleared, scored = open_lead_ids(inspector, 4)
        converted = converted_lead_id(inspector)
        results = c.write(
            [
                RecordUpdate(umlauts, {"Company": "Göttingen Präzision", "FirstName": "Łukasz"}),
                RecordUpdate(picky, {"Status": "Geöffnet"}),
                RecordUpdate(converted, {"Title": "Zu spät"}),
                RecordUpdate(cleared, {"Title": None}),
                RecordUpdate(scored, {"Leadsync_Score__c": 87.5, "Leadsync_Stage__c": "SQL"}),
            ]
        )
        summary = [(r.record_id, r.status, r.category) for r in results]
        assert summary == [
            (umlauts, WriteStatus.WRITTEN, ""),
            (picky, WriteStatus.FAILED, "invalid_or_null_for_restricted_picklist"),
            (converted, WriteStatus.FAILED, "cannot_update_converted_lead"),
            (cleared, WriteStatus.WRITTEN, ""),
            (scored, WriteStatus.WRITTEN, ""),
        ]
        assert "Geöffnet" in results[1].message
        assert inspector.served("salesforce.bulk.ingest_create") == 1
        assert inspector.served("salesforce.collection_update") == 0
        stored = inspector.leads()
        assert (stored[umlauts]["Company"], stored[umlauts]["FirstName"]) == (
            "Göttingen Präzision",
            "Łukasz",
        )
        assert stored[cleared]["Title"] is None
        assert (stored[scored]["Leadsync_Score__c"], stored[scored]["Leadsync_Stage__c"]) == (
            87.5,
            "SQL",
        )


def test_bulk_writes_retry_locked_rows_in_a_new_job() -> None:
    with (
        running() as (sandbox, inspector),
        connected(sandbox, bulk_write_threshold=2, retry=PATIENT) as c,
    ):
        targets = open_lead_ids(inspector, 20)
        inspector.post("faults", {"spec": "lock=0.4"})
        results = c.write([RecordUpdate(i, {"Title": "Eventually"}) for i in targets])
        assert {r.status for r in results} == {WriteStatus.WRITTEN}
        assert inspector.served("salesforce.bulk.ingest_create") == max(r.attempts for r in results)
        assert inspector.served("salesforce.bulk.ingest_create") > 1
        assert {inspector.leads()[i]["Title"] for i in targets} == {"Eventually"}


# ------------------------------------------------------------------------------------ faults

# Seed 3 draws every kind of fault within the first ten requests.
FAULTS = {"spec": "5xx=0.15,429=0.1,drop=0.05", "seed": 3}
FAULT_KINDS = {"salesforce 5xx", "salesforce 429", "salesforce drop"}


def test_a_pull_through_injected_faults_yields_the_fault_free_records() -> None:
    with running(leads=2000) as (sandbox, inspector):
        with connected(sandbox, query_batch_size=200) as calm:
            expected = records(calm.pull(None, fields=FIELDS, started_at=LATER))
        inspector.post("faults", FAULTS)
        with connected(sandbox, query_batch_size=200, retry=PATIENT) as stormy:
            assert records(stormy.pull(None, fields=FIELDS, started_at=LATER)) == expected
        assert set(inspector.stats()["faulted"]) == FAULT_KINDS


def test_a_write_through_injected_faults_leaves_the_fault_free_state() -> None:
    def write_all(faults: dict[str, Any] | None) -> tuple[list[Any], dict[str, Any]]:
        with running(leads=600) as (sandbox, inspector):
            if faults:
                inspector.post("faults", faults)
            with connected(sandbox, retry=PATIENT, collection_size=50) as connector:
                updates = [
                    RecordUpdate(i, {"Title": f"Wave {n}", "Leadsync_Score__c": n})
                    for n, i in enumerate(sorted(inspector.leads()))
                ]
                results = connector.write(updates)
            inspector.post("faults", {"spec": ""})
            state = {
                lead_id: {
                    k: v for k, v in row.items() if k not in ("SystemModstamp", "LastModifiedDate")
                }
                for lead_id, row in inspector.leads().items()
            }
            faulted = set(inspector.stats()["faulted"])
        assert faulted == (FAULT_KINDS if faults else set())
        return [(r.record_id, r.status, r.category) for r in results], state

    assert write_all(FAULTS) == write_all(None)


# ------------------------------------------------------------------------------------ quota


def test_sforce_limit_info_reaches_quota() -> None:
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        records(connector.pull(None, fields=["Email"], started_at=LATER))
        quota = connector.quota()
        figures = inspector.stats()["quota"]["salesforce"]
        assert quota.daily_limit == 100_000
        assert quota.daily_remaining == figures["daily_remaining"]
        assert quota.daily_used == figures["daily_used"] > 0
        assert connector.refresh_quota().daily_remaining == figures["daily_remaining"] - 1


def test_the_reserve_stops_new_work_before_it_starts() -> None:
    with running() as (sandbox, inspector), connected(sandbox, daily_reserve=2) as connector:
        inspector.post("limits", {"salesforce_daily_limit": 3})
        with pytest.raises(QuotaReserveReachedError, match="a reserve of 2 is kept"):
            records(connector.pull(None, fields=["Email"], started_at=LATER))
        assert inspector.served("salesforce.query_all") == 0
        assert connector.quota().daily_remaining == 2


def test_a_daily_limit_spent_by_others_stops_the_run_without_retries() -> None:
    with running() as (sandbox, inspector), connected(sandbox) as connector:
        target = open_lead_ids(inspector, 1)[0]
        inspector.post("limits", {"salesforce_daily_limit": 3})
        connector.refresh_quota()
        sf = client(sandbox)
        sf.query("SELECT COUNT() FROM Lead")
        sf.query("SELECT COUNT() FROM Lead")
        with pytest.raises(QuotaExhaustedError):
            connector.write([RecordUpdate(target, {"Title": "x"})])
        assert inspector.stats()["statuses"]["salesforce.collection_update 403"] == 1


# ------------------------------------------------------------------------------------ secrets


def test_no_secret_reaches_a_log_line_or_an_error(
    caplog: pytest.LogCaptureFixture, key_pair: tuple[str, str], tmp_path: Path
) -> None:
    password, token = "pw-Correct-Horse-42", "tok-Battery-Staple-7"
    private, public = key_pair
    key_file = tmp_path / "leadsync.key"
    key_file.write_text(private)
    credentials = SalesforceCredentials(
        password=password, security_token=token, jwt_public_key=public
    )
    errors: list[BaseException] = []
    caplog.set_level("DEBUG")
    with running(credentials=credentials) as (sandbox, inspector):
        good = replace(
            SalesforceConnection.for_sandbox(sandbox.url, retry=RETRY),
            password=Secret(password),
            security_token=Secret(token),
        )
        with pytest.raises(AuthenticationError) as refused:
            SalesforceConnector(replace(good, security_token=Secret("tok-wrong"))).describe()
        errors.append(refused.value)

        connector = SalesforceConnector(good)
        records(connector.pull(None, fields=["Email"], started_at=LATER))
        inspector.post("salesforce/expire-sessions")
        failing = connector.write([RecordUpdate(converted_lead_id(inspector), {"Title": "x"})])
        assert failing[0].status is WriteStatus.FAILED
        inspector.post("faults", {"spec": "5xx=0.3", "seed": 3})
        connector.describe()
        inspector.post("faults", {"spec": ""})

        jwt_connector = SalesforceConnector(jwt_connection(sandbox, key_file))
        jwt_connector.describe()
        assert inspector.logins() == 3

    texts = [caplog.text, *map(str, errors), *map(repr, errors), repr(good)]
    key_lines = [line for line in private.splitlines() if "PRIVATE KEY" not in line]
    for text in texts:
        assert password not in text
        assert token not in text
        assert "00D5g000000SANDBOX!" not in text  # every sandbox session id starts so
        assert "PRIVATE KEY" not in text
        assert not any(line in text for line in key_lines)
    assert "Salesforce session expired; logging in again" in caplog.text
