"""bench/full_reconcile.py's floors: the fewest calls a first sync's work takes, kind by kind,
so that all calls ÷ floor compares like with like."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from full_reconcile import (
    OTHER,
    Counted,
    Sample,
    by_kind,
    calls_over_floor,
    handoff_floor,
    lower_bound,
    pull_floor,
)

from leadsync.connectors.base import CrmRecord, HandoffTarget, Page

STAMP = datetime(2026, 12, 4, tzinfo=UTC)
SALESFORCE_STREAMS = ["Lead", "Contact", "Opportunity", "OpportunityContactRole"]


def sample(calls: dict[str, int], work: dict[str, dict[str, Any]]) -> Sample:
    return Sample(
        wall=1.0,
        cpu=1.0,
        peak_rss=1,
        calls=Counter(calls),
        statuses=Counter(),
        written={},
        pulled={},
        run_seconds=1.0,
        write_floor={"hubspot": 100, "salesforce": 48},
        work=work,
        store_bytes=0,
        leads_stored=0,
    )


def test_the_salesforce_pull_floor_counts_every_object_it_follows() -> None:
    # The 100,000-lead run's reads: the leads through Bulk, the converted leads' contacts,
    # opportunities and contact roles through REST. Its 28 calls were set against the leads'
    # 4 alone (×7.00): the floor of the same reads is 22.
    work = {
        "streams": SALESFORCE_STREAMS,
        "pulled": {
            "Lead": 100_000,
            "Contact": 11_802,
            "Opportunity": 10_099,
            "OpportunityContactRole": 10_099,
        },
    }
    assert pull_floor("salesforce", work) == (2 + 2) + 6 + 6 + 6


def test_an_empty_object_still_takes_a_query() -> None:
    work = {"streams": SALESFORCE_STREAMS, "pulled": {"Lead": 2_000}}
    assert pull_floor("salesforce", work) == 1 + 1 + 1 + 1


def test_the_hubspot_pull_floor_is_a_search_page_per_200() -> None:
    assert pull_floor("hubspot", {"streams": ["contacts"], "pulled": {"contacts": 10_001}}) == 51


def test_the_handoff_floor_is_upserts_of_200_and_lookups_as_the_uri_holds() -> None:
    emails = [f"person{n:05d}@example.com" for n in range(1_000)]  # ~27 bytes each quoted
    work = {
        "emails": emails,
        "upserted": 401,
        "owners_read": [],
        "owners_named": ["005000000000001AAA", "005000000000002AAA"],
        "assignee_lists": 0,
    }
    # 401 upserts: 3 collections; 1,000 emails fit 3 lists of the URI's 12,000 bytes (not
    # the 5 of 200 leadsync sends), asked of contacts and of leads; 2 owners: one query.
    assert handoff_floor(work) == 3 + 2 * 3 + 1


def test_the_handoff_calls_are_a_row_of_their_own() -> None:
    calls = {
        "salesforce.query": 50,  # checks and the handoff's lookups and names share it
        "salesforce.collection_upsert": 8,
        "salesforce.collection_update": 48,
        "salesforce.query_all": 12,
        "salesforce.auth.soap": 1,
    }
    handoff = {"salesforce.query": 9, "salesforce.collection_upsert": 8}
    work = {
        "salesforce": {
            "streams": SALESFORCE_STREAMS,
            "pulled": {"Lead": 10_000, "Contact": 1_174},
            "handoff_calls": handoff,
            "emails": ["a@example.com"],
            "upserted": 1_500,
        }
    }
    kinds = by_kind(sample(calls, work))
    assert kinds["salesforce check"] == 41
    assert kinds["salesforce handoff"] == 17
    assert kinds[OTHER] == 1  # the upserts are no longer "other"
    assert sum(kinds.values()) == sum(calls.values())
    floors = lower_bound(sample(calls, work))
    assert floors["salesforce handoff"] == 8 + 2  # 1,500 upserted, one email on two objects
    assert floors["salesforce pull"] == 5 + 1 + 1 + 1
    assert calls_over_floor(sample(calls, work)) == sum(calls.values()) / sum(floors.values())


class _HubSpotLike:
    crm = "hubspot"
    streams = ("contacts",)

    def pull(self, position: Any, **options: Any) -> Any:
        yield from ()


class _SalesforceLike(_HubSpotLike):
    crm = "salesforce"

    def upsert(self, records: Any, **options: Any) -> list[Any]:
        return []

    def find_people(self, emails: Any) -> dict[str, Any]:
        return {}

    def assignees(self) -> set[str]:
        return set()

    def owners_of(self, record_ids: Any) -> dict[str, str]:
        return {}

    def records_by_key(self, keys: Any, **options: Any) -> dict[str, str]:
        return {}

    def owner_names(self, owner_ids: Any) -> dict[str, str]:
        return {}

    def owner_name_calls(self, owner_ids: Any) -> int:
        return 0

    def handoff_calls(self, **counts: int) -> dict[str, int]:
        return {}


def test_counting_keeps_which_connector_is_the_handoff_target() -> None:
    # The engine tells the target by its methods: a counted HubSpot connector must not grow
    # a handoff, nor a counted Salesforce one lose it.
    assert not isinstance(Counted(_HubSpotLike(), "http://unused"), HandoffTarget)
    assert isinstance(Counted(_SalesforceLike(), "http://unused"), HandoffTarget)


def test_counting_a_pull_counts_its_records_by_stream() -> None:
    class Pages(_HubSpotLike):
        def pull(self, position: Any, **options: Any) -> Any:
            yield _page(3)
            yield _page(2)

    counted = Counted(Pages(), "http://unused")
    assert sum(1 for _ in counted.pull(None, fields=())) == 2
    assert counted.work()["pulled"] == {"contacts": 5}


def _page(records: int) -> Page:
    return Page(tuple(CrmRecord("hubspot", str(n), STAMP, {}) for n in range(records)))
