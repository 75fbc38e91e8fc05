"""The HubSpot connector against the sandbox: pulls, describe, writes, faults, pacing, quota."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadsync.connectors.base import Position, RecordUpdate, WriteStatus
from leadsync.connectors.errors import (
    AuthenticationError,
    QuotaReserveReachedError,
    UnreachableError,
)
from leadsync.connectors.hubspot import HubSpotConnector, _ms, _written_stamp
from leadsync.connectors.retry import RetryPolicy
from leadsync.connectors.settings import HubSpotConnection
from leadsync.connectors.writeback import HUBSPOT_WRITEBACK_PROPERTIES
from leadsync.sandbox import FaultSpec, HubSpotSettings, RequestFault, Sandbox, SandboxSettings
from leadsync.secrets import Secret
from tests.support import FakeClock

FIELDS = ["email", "firstname", "lastname", "jobtitle", "lifecyclestage", "numemployees"]
QUICK = RetryPolicy(initial_wait=0.001, max_wait=0.005, max_attempts=12, max_seconds=30)
FAST_SANDBOX = HubSpotSettings(ten_second_limit=100_000, searches_per_second=1_000)


def connector_for(sandbox: Sandbox, **overrides: Any) -> HubSpotConnector:
    settings: dict[str, Any] = {
        "retry": QUICK,
        "requests_per_ten_seconds": 100_000,
        "searches_per_second": 1_000,
        **overrides,
    }
    return HubSpotConnector(HubSpotConnection.for_sandbox(sandbox.url, **settings))


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(port=0, seed=11, leads=450, hubspot=FAST_SANDBOX)


@pytest.fixture
def hubspot_connector(sandbox: Sandbox) -> Iterator[HubSpotConnector]:
    connector = connector_for(sandbox)
    yield connector
    connector.close()


def now() -> datetime:
    return datetime.now(UTC)


def endpoint_calls(sandbox: Sandbox, endpoint: str) -> int:
    return int(sandbox.stats.as_dict()["endpoints"].get(endpoint, 0))


def live_ids(sandbox: Sandbox) -> set[str]:
    return {contact["id"] for contact in sandbox.hubspot.snapshot()}


# ---------------------------------------------------------------- incremental pulls


def test_pull_returns_every_contact_once_oldest_change_first(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    records = [
        record
        for page in hubspot_connector.pull(None, fields=FIELDS, started_at=now())
        for record in page.records
    ]
    assert sorted(r.id for r in records) == sorted(live_ids(sandbox))
    stamps = [record.modified_at for record in records]
    assert stamps == sorted(stamps)
    assert all(set(record.fields) >= set(FIELDS) for record in records)
    assert all(isinstance(v, str | None) for r in records for v in r.fields.values())


def test_pull_streams_page_by_page(sandbox: Sandbox, hubspot_connector: HubSpotConnector) -> None:
    pages = hubspot_connector.pull(None, fields=FIELDS, started_at=now())
    first = next(pages)
    assert len(first.records) == 200
    assert endpoint_calls(sandbox, "hubspot.contacts.search") == 1
    rest = list(pages)
    assert endpoint_calls(sandbox, "hubspot.contacts.search") == 1 + len(rest)


def test_pull_resumes_after_its_position_with_only_later_changes(
    sandbox: Sandbox,
) -> None:
    clock = FakeClock()
    with Sandbox(
        SandboxSettings(port=0, seed=3, leads=120, hubspot=FAST_SANDBOX), clock=clock
    ) as timed:
        connector = connector_for(timed, lookback=timedelta(0))
        pages = list(connector.pull(None, fields=FIELDS, started_at=now()))
        position = pages[-1].position
        assert position is not None
        clock.advance(60)
        changed = sorted(live_ids(timed))[:7]
        for contact_id in changed:
            timed.hubspot.set_activity(int(contact_id), {"jobtitle": "Head of Growth"})
        clock.advance(FAST_SANDBOX.search_lag_ms / 1000)  # until search has caught up
        again = [
            r
            for page in connector.pull(position, fields=FIELDS, started_at=now())
            for r in page.records
        ]
        assert sorted(r.id for r in again) == changed
        assert all(r.fields["jobtitle"] == "Head of Growth" for r in again)


def test_lookback_pulls_recent_changes_again_and_known_stamps_drop_them(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    everything = [
        r
        for page in hubspot_connector.pull(None, fields=FIELDS, started_at=now())
        for r in page.records
    ]
    newest = everything[-1].position
    window = [r for r in everything if r.modified_at >= newest.modified_at - timedelta(days=30)]
    assert 0 < len(window) < len(everything)
    lookback = connector_for(sandbox, lookback=timedelta(days=30))
    again = [
        r for page in lookback.pull(newest, fields=FIELDS, started_at=now()) for r in page.records
    ]
    # Everything in the window again, but the record at the position itself: that one, still at
    # its stamp, is certainly the one the position was taken from.
    assert {r.id for r in again} == {r.id for r in window} - {newest.record_id}

    stored = {r.id: r.modified_at for r in everything}

    def known(ids: Any) -> dict[str, datetime]:
        return {record_id: stored[record_id] for record_id in ids}

    dropped = [
        r
        for page in lookback.pull(newest, fields=FIELDS, started_at=now(), known=known)
        for r in page.records
    ]
    assert dropped == []


def test_contacts_edited_while_a_pull_pages_through_search_push_no_other_out(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    # HubSpot's search `after` is an offset into results worked out afresh for each request.
    # Contacts edited after the first page move to the end of the (lastmodifieddate) order;
    # a pull that paged on by offset would step over as many unchanged contacts, whose older
    # stamps no look-back brings back.
    pages = hubspot_connector.pull(None, fields=FIELDS, started_at=now())
    first = next(pages)
    for record in first.records[:3]:
        sandbox.hubspot.set_activity(int(record.id), {"jobtitle": "Moved on"})
    sandbox.hubspot.settle_search()  # search catches up while the pull is between pages
    pulled = {r.id for r in first.records} | {r.id for page in pages for r in page.records}
    assert pulled == live_ids(sandbox)


def test_position_never_passes_the_moment_the_pull_started(
    hubspot_connector: HubSpotConnector,
) -> None:
    started = datetime(2020, 1, 1, tzinfo=UTC)  # before every seeded change
    pages = list(hubspot_connector.pull(None, fields=FIELDS, started_at=started))
    assert pages
    assert all(page.position == Position(started, "") for page in pages)


@pytest.mark.slow
def test_pull_reissues_its_search_before_the_10000_result_cap() -> None:
    settings = SandboxSettings(port=0, seed=5, leads=10_450, hubspot=FAST_SANDBOX)
    with Sandbox(settings) as big:
        connector = connector_for(big)
        ids = [
            r.id
            for page in connector.pull(None, fields=["email"], started_at=now())
            for r in page.records
        ]
        assert len(ids) == len(set(ids)) == 10_450
        statuses = big.stats.as_dict()["statuses"]
        assert statuses.get("hubspot.contacts.search 400", 0) == 0


@pytest.mark.slow
def test_more_contacts_than_the_cap_sharing_one_millisecond_are_all_pulled() -> None:
    clock = FakeClock()
    settings = SandboxSettings(port=0, seed=5, leads=10_300, hubspot=FAST_SANDBOX)
    with Sandbox(settings, clock=clock) as big:
        clock.advance(3600)
        everyone = sorted(int(i) for i in live_ids(big))
        for contact_id in everyone[:10_150]:  # all touched in the same frozen millisecond
            big.hubspot.set_activity(contact_id, {"jobtitle": "Same moment"})
        big.hubspot.settle_search()  # the lag is not this test's subject: let search catch up
        before = Position(datetime.fromtimestamp(clock.now - 1, UTC), "")
        connector = connector_for(big, lookback=timedelta(0))
        ids = [
            r.id
            for page in connector.pull(before, fields=["jobtitle"], started_at=now())
            for r in page.records
        ]
        assert len(ids) == len(set(ids)) == 10_150
        assert big.stats.as_dict()["statuses"].get("hubspot.contacts.search 400", 0) == 0


# ---------------------------------------------------------------- full pulls


def test_pull_all_lists_every_contact_and_resumes_from_a_checkpoint(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    pages = list(hubspot_connector.pull_all(fields=FIELDS))
    assert [len(p.records) for p in pages] == [100, 100, 100, 100, 50]
    assert pages[-1].checkpoint is None
    every = [r.id for p in pages for r in p.records]
    assert sorted(every) == sorted(live_ids(sandbox))
    resumed = list(hubspot_connector.pull_all(pages[1].checkpoint, fields=FIELDS))
    assert [r.id for p in resumed for r in p.records] == every[200:]
    assert endpoint_calls(sandbox, "hubspot.contacts.list") == 5 + 3


# ---------------------------------------------------------------- describe


def test_describe_gives_types_options_and_writability(
    hubspot_connector: HubSpotConnector,
) -> None:
    description = hubspot_connector.describe()
    stage = description.field("lifecyclestage")
    assert stage is not None
    assert stage.type == "enumeration"
    assert stage.restricted
    assert stage.options[:3] == ("subscriber", "lead", "marketingqualifiedlead")
    views = description.field("hs_analytics_num_page_views")
    assert views is not None
    assert (views.type, views.writable) == ("number", False)
    email = description.field("email")
    assert email is not None
    assert (email.type, email.writable) == ("email", True)
    assert description.field("Email") is None  # HubSpot names are case-sensitive


def test_ensure_properties_creates_the_missing_writeback_properties_once(
    hubspot_connector: HubSpotConnector,
) -> None:
    created = hubspot_connector.ensure_properties()
    assert created == [spec.name for spec in HUBSPOT_WRITEBACK_PROPERTIES]
    assert hubspot_connector.ensure_properties() == []
    description = hubspot_connector.describe()
    score = description.field("leadsync_score")
    reasons = description.field("leadsync_score_reasons")
    assert score is not None
    assert (score.type, score.custom, score.writable) == ("number", True, True)
    assert reasons is not None
    assert reasons.type == "text"


# ---------------------------------------------------------------- writes


def test_write_batches_100_and_reports_each_record_in_order(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    ids = sorted(live_ids(sandbox))[:250]
    updates = [RecordUpdate(i, {"jobtitle": f"Title {i}"}) for i in ids]
    results = hubspot_connector.write(updates)
    assert [r.record_id for r in results] == ids
    assert {r.status for r in results} == {WriteStatus.WRITTEN}
    assert endpoint_calls(sandbox, "hubspot.contacts.batch_update") == 3
    assert sandbox.hubspot.contact(int(ids[-1])).properties["jobtitle"] == f"Title {ids[-1]}"


def test_a_written_result_carries_the_stamp_a_read_of_the_contact_then_gives(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    # The answer's stamp is the contact's own after the write (for a stage moved back, after
    # the set, not the clear before it): versions stamped earlier are older than the write.
    moved_back = _contact_at_stage(sandbox, "customer")
    other = next(i for i in sorted(live_ids(sandbox)) if i != moved_back)
    results = hubspot_connector.write(
        [
            RecordUpdate(moved_back, {"lifecyclestage": "lead"}, {"lifecyclestage": "customer"}),
            RecordUpdate(other, {"jobtitle": "Head of Stamps"}),
        ]
    )
    read = hubspot_connector.fetch([moved_back, other], fields=["lifecyclestage"])
    assert [r.modified_at for r in results] == [
        read[moved_back].modified_at,
        read[other].modified_at,
    ]
    assert all(r.modified_at is not None and r.modified_at.tzinfo is not None for r in results)
    assert read[moved_back].fields["lifecyclestage"] == "lead"


@pytest.mark.parametrize(
    ("contact", "stamp"),
    [
        ({"properties": {"lastmodifieddate": "2026-12-04T10:00:00.123Z"}}, "10:00:00.123"),
        ({"properties": {}, "updatedAt": "2026-12-04T10:00:01Z"}, "10:00:01"),
        ({"properties": {"lastmodifieddate": None}}, None),
        ({"updatedAt": "yesterday"}, None),
    ],
)
def test_a_written_contacts_stamp_is_read_as_a_pull_reads_it_or_left_out(
    contact: dict[str, Any], stamp: str | None
) -> None:
    # A stamp the answer lacks or garbles costs only the shortcut it feeds, never the write.
    expected = None if stamp is None else datetime.fromisoformat(f"2026-12-04T{stamp}+00:00")
    assert _written_stamp(contact) == expected


def test_write_reports_failures_per_record_and_lands_the_rest(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    good, bad, other = sorted(live_ids(sandbox))[:3]
    results = hubspot_connector.write(
        [
            RecordUpdate(good, {"jobtitle": "VP Sales"}),
            RecordUpdate(bad, {"numemployees": "a lot"}),
            RecordUpdate("999999", {"jobtitle": "Ghost"}),
            RecordUpdate(other, {"no_such_property": "x"}),
        ]
    )
    assert [(r.status, r.category, r.fields) for r in results] == [
        (WriteStatus.WRITTEN, "", ()),
        (WriteStatus.FAILED, "invalid_option", ("numemployees",)),
        (WriteStatus.FAILED, "object_not_found", ()),
        (WriteStatus.FAILED, "property_doesnt_exist", ("no_such_property",)),
    ]
    assert "allowed options" in results[1].message
    assert sandbox.hubspot.contact(int(good)).properties["jobtitle"] == "VP Sales"


def test_a_batch_refused_whole_for_one_value_is_split_until_the_bad_input_stands_alone(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    ids = sorted(live_ids(sandbox), key=int)[:100]
    bad = ids[37]
    updates = [
        RecordUpdate(i, {"jobtitle": f"T{i}", "numemployees": "a lot" if i == bad else "1-5"})
        for i in ids
    ]
    results = hubspot_connector.write(updates)
    assert [r.record_id for r in results] == ids
    refused = [r for r in results if r.status is not WriteStatus.WRITTEN]
    assert [(r.record_id, r.status, r.category, r.fields) for r in refused] == [
        (bad, WriteStatus.FAILED, "invalid_option", ("numemployees",))
    ]
    assert all(
        sandbox.hubspot.contact(int(i)).properties["jobtitle"] == f"T{i}" for i in ids if i != bad
    )
    assert sandbox.hubspot.contact(int(bad)).properties.get("jobtitle") != f"T{bad}"
    # Halving: one refused call per level down to the bad input, one good call per level.
    assert endpoint_calls(sandbox, "hubspot.contacts.batch_update") <= 2 * 7 + 1


def test_inputs_carrying_a_property_hubspot_lacks_fail_together_in_one_call(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    ids = sorted(live_ids(sandbox), key=int)[:100]
    missing = set(ids[::3])
    updates = [
        RecordUpdate(i, {"jobtitle": "CTO", **({"leadsync_nowhere": "1"} if i in missing else {})})
        for i in ids
    ]
    results = hubspot_connector.write(updates)
    failed = {r.record_id for r in results if r.status is WriteStatus.FAILED}
    assert failed == missing
    assert {r.category for r in results if r.record_id in missing} == {"property_doesnt_exist"}
    # The refused batch, then the rest in one: no halving for a property that is not there.
    assert endpoint_calls(sandbox, "hubspot.contacts.batch_update") == 2


def test_inputs_carrying_an_option_the_dropdown_lacks_fail_together_in_one_call(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    # An admin's dropdown lacks a value a third of the batch holds (leadsync_grade without
    # "D", say): halving down to each bad input would cost two calls for every one of them,
    # 1,400 calls for a first sync of 1,000 leads. The describe lists the options there are.
    ids = sorted(live_ids(sandbox), key=int)[:100]
    bad = set(ids[::3])
    updates = [
        RecordUpdate(i, {"jobtitle": "CTO", "numemployees": "a lot" if i in bad else "1-5"})
        for i in ids
    ]
    hubspot_connector.describe()  # as a run's preflight does
    sandbox.stats.clear()
    results = hubspot_connector.write(updates)
    failed = {r.record_id for r in results if r.status is WriteStatus.FAILED}
    assert failed == bad
    assert {(r.category, r.fields) for r in results if r.record_id in bad} == {
        ("invalid_option", ("numemployees",))
    }
    assert all(
        sandbox.hubspot.contact(int(i)).properties["jobtitle"] == "CTO" for i in ids if i not in bad
    )
    # The refused batch, then the rest in one.
    assert endpoint_calls(sandbox, "hubspot.contacts.batch_update") == 2


def test_two_updates_of_one_contact_go_out_as_one_input(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    contact = sorted(live_ids(sandbox))[0]
    results = hubspot_connector.write(
        [RecordUpdate(contact, {"jobtitle": "A"}), RecordUpdate(contact, {"firstname": "Bo"})]
    )
    assert [r.status for r in results] == [WriteStatus.WRITTEN, WriteStatus.WRITTEN]
    properties = sandbox.hubspot.contact(int(contact)).properties
    assert (properties["jobtitle"], properties["firstname"]) == ("A", "Bo")


def _contact_at_stage(sandbox: Sandbox, stage: str) -> str:
    return next(
        c["id"]
        for c in sandbox.hubspot.snapshot()
        if c["properties"].get("lifecyclestage") == stage
    )


def test_a_backward_lifecycle_stage_is_cleared_then_set_in_two_requests(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    contact = _contact_at_stage(sandbox, "customer")
    results = hubspot_connector.write(
        [RecordUpdate(contact, {"lifecyclestage": "lead"}, {"lifecyclestage": "customer"})]
    )
    assert results[0].status is WriteStatus.WRITTEN
    assert sandbox.hubspot.contact(int(contact)).properties["lifecyclestage"] == "lead"
    assert endpoint_calls(sandbox, "hubspot.contacts.batch_update") == 2


BATCH_UPDATE = "/crm/v3/objects/contacts/batch/update"


def test_a_batch_refused_for_the_request_itself_fails_every_input_without_splitting(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    # A private app without the write scope: HubSpot answers 403 whatever the values.
    sandbox.faults.fail_requests(RequestFault("POST", BATCH_UPDATE, 403))
    ids = sorted(live_ids(sandbox), key=int)[:100]
    results = hubspot_connector.write([RecordUpdate(i, {"jobtitle": "CTO"}) for i in ids])
    assert {(r.status, r.category) for r in results} == {(WriteStatus.FAILED, "forbidden")}
    assert endpoint_calls(sandbox, "hubspot.fault") == 1


def test_a_backward_stage_whose_set_fails_is_put_back_in_the_same_write(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    contact = _contact_at_stage(sandbox, "customer")
    # Every set of "lead" fails; the clear before it and the put-back after it do not.
    sandbox.faults.fail_requests(
        RequestFault("POST", BATCH_UPDATE, 503, body_contains='"lifecyclestage":"lead"')
    )
    (result,) = hubspot_connector.write(
        [
            RecordUpdate(
                contact,
                {"lifecyclestage": "lead", "jobtitle": "Head of Nurture"},
                {"lifecyclestage": "customer"},
            )
        ]
    )
    assert result.status is WriteStatus.DEFERRED
    assert "lifecycle stage put back to customer" in result.message
    properties = sandbox.hubspot.contact(int(contact)).properties
    assert properties["lifecyclestage"] == "customer"
    assert properties.get("jobtitle") != "Head of Nurture"
    sandbox.faults.clear_request_faults()
    # The next write of the same move goes through: clear, then set.
    again = hubspot_connector.write(
        [RecordUpdate(contact, {"lifecyclestage": "lead"}, {"lifecyclestage": "customer"})]
    )
    assert again[0].status is WriteStatus.WRITTEN
    assert sandbox.hubspot.contact(int(contact)).properties["lifecyclestage"] == "lead"


def test_a_backward_stage_refused_for_another_value_is_put_back_too(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    contact = _contact_at_stage(sandbox, "opportunity")
    (result,) = hubspot_connector.write(
        [
            RecordUpdate(
                contact,
                {"lifecyclestage": "lead", "numemployees": "a lot"},
                {"lifecyclestage": "opportunity"},
            )
        ]
    )
    assert (result.status, result.category) == (WriteStatus.FAILED, "invalid_option")
    assert result.message.endswith("lifecycle stage put back to opportunity")
    assert sandbox.hubspot.contact(int(contact)).properties["lifecyclestage"] == "opportunity"


def test_a_put_back_goes_through_even_past_the_quota_reserve(sandbox: Sandbox) -> None:
    contact = _contact_at_stage(sandbox, "customer")
    sandbox.hubspot.set_limits(daily_limit=1_000)
    # After the describe and the clear, 998 calls are left: the set would eat into a reserve
    # of 998, so it is not sent; the put-back, which repairs leadsync's own clear, is.
    connector = connector_for(sandbox, daily_reserve=998)
    try:
        connector.describe()
        with pytest.raises(QuotaReserveReachedError):
            connector.write(
                [RecordUpdate(contact, {"lifecyclestage": "lead"}, {"lifecyclestage": "customer"})]
            )
    finally:
        connector.close()
    assert sandbox.hubspot.contact(int(contact)).properties["lifecyclestage"] == "customer"
    assert endpoint_calls(sandbox, "hubspot.contacts.batch_update") == 2


@pytest.mark.parametrize(
    ("field", "held", "wanted", "back"),
    [
        ("lifecyclestage", "customer", "lead", True),
        ("lifecyclestage", "other", "customer", True),
        ("lifecyclestage", "lead", "customer", False),
        ("lifecyclestage", "", "lead", False),
        ("lifecyclestage", "lead", "lead", False),
        ("jobtitle", "b", "a", False),
    ],
)
def test_moves_back_follows_the_portals_stage_order(
    hubspot_connector: HubSpotConnector, field: str, held: str, wanted: str, back: bool
) -> None:
    assert hubspot_connector.moves_back(field, held, wanted) is back


def test_a_forward_lifecycle_stage_is_one_request(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    contact = _contact_at_stage(sandbox, "lead")
    hubspot_connector.write(
        [RecordUpdate(contact, {"lifecyclestage": "customer"}, {"lifecyclestage": "lead"})]
    )
    assert sandbox.hubspot.contact(int(contact)).properties["lifecyclestage"] == "customer"
    assert endpoint_calls(sandbox, "hubspot.contacts.batch_update") == 1


def test_without_the_clear_hubspot_would_have_ignored_the_backward_stage(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    # The same write without `current`: the connector cannot know to clear, and the sandbox,
    # like HubSpot, keeps the later stage. This is why RecordUpdate carries `current`.
    contact = _contact_at_stage(sandbox, "customer")
    hubspot_connector.write([RecordUpdate(contact, {"lifecyclestage": "lead"})])
    assert sandbox.hubspot.contact(int(contact)).properties["lifecyclestage"] == "customer"


# ---------------------------------------------------------------- faults, pacing, quota


def _pull_everything(connector: HubSpotConnector) -> dict[str, dict[str, Any]]:
    return {
        r.id: dict(r.fields)
        for page in connector.pull(None, fields=FIELDS, started_at=now())
        for r in page.records
    }


def test_faults_do_not_change_what_a_pull_and_a_write_end_with(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    clean_pull = _pull_everything(hubspot_connector)
    clean_list = [r.id for p in hubspot_connector.pull_all(fields=FIELDS) for r in p.records]
    sandbox.faults.configure(FaultSpec.parse("5xx=0.15,429=0.1,drop=0.05"), seed=4)
    assert _pull_everything(hubspot_connector) == clean_pull
    assert [r.id for p in hubspot_connector.pull_all(fields=FIELDS) for r in p.records] == (
        clean_list
    )
    ids = sorted(clean_pull)[:300]
    results = hubspot_connector.write([RecordUpdate(i, {"jobtitle": f"T{i}"}) for i in ids])
    assert {r.status for r in results} == {WriteStatus.WRITTEN}
    sandbox.faults.configure(FaultSpec())
    after = {c["id"]: c["properties"].get("jobtitle") for c in sandbox.hubspot.snapshot()}
    assert all(after[i] == f"T{i}" for i in ids)
    faulted = sandbox.stats.as_dict()["faulted"]
    assert faulted.get("hubspot 5xx", 0) > 0
    assert faulted.get("hubspot drop", 0) > 0


def test_the_client_side_limiter_keeps_requests_inside_the_window() -> None:
    clock = FakeClock()
    settings = SandboxSettings(
        port=0, seed=2, leads=30, hubspot=HubSpotSettings(ten_second_limit=5)
    )
    with Sandbox(settings, clock=clock) as tight:
        connector = HubSpotConnector(
            HubSpotConnection.for_sandbox(tight.url, requests_per_ten_seconds=5, retry=QUICK),
            clock=clock,
            sleep=clock.advance,
        )
        for _ in range(12):
            connector.describe()
        assert tight.stats.as_dict()["throttled"] == {}
        assert connector.waited_seconds == pytest.approx(20.0, abs=0.1)


def test_quota_comes_from_the_rate_limit_headers(
    sandbox: Sandbox, hubspot_connector: HubSpotConnector
) -> None:
    hubspot_connector.describe()
    hubspot_connector.describe()
    quota = hubspot_connector.quota()
    assert quota.daily_limit == 1_000_000
    assert quota.daily_remaining == 1_000_000 - 2
    assert quota.window_limit == 100_000


def test_the_daily_reserve_stops_new_work_and_says_so(sandbox: Sandbox) -> None:
    sandbox.hubspot.set_limits(daily_limit=10)
    connector = connector_for(sandbox, daily_reserve=7)
    connector.describe()  # 9 left: the connector learns the figure
    connector.describe()  # 8 left
    connector.describe()  # 7 left: the reserve is intact
    with pytest.raises(QuotaReserveReachedError, match="7 API calls left today, a reserve of 7"):
        connector.describe()
    assert sandbox.hubspot.daily.used == 3


def test_a_stopped_crm_fails_fast_naming_its_url_not_a_urllib3_error(sandbox: Sandbox) -> None:
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=3, initial_wait=0.001, sleep=waits.append)
    connector = connector_for(sandbox, retry=policy)
    url = sandbox.url
    sandbox.stop()
    with pytest.raises(UnreachableError) as unreachable:
        connector.describe()
    # Nothing listens there: said at once, not after a minute of retries.
    assert waits == []
    assert f"nothing answers at {url} (connection refused)" in str(unreachable.value)
    assert "is the sandbox running" in str(unreachable.value)


def test_no_secret_reaches_logs_or_errors(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "pat-na1-0123456789-secret"
    connector = HubSpotConnector(
        HubSpotConnection(access_token=Secret(wrong), base_url=sandbox.url, retry=QUICK)
    )
    with pytest.raises(AuthenticationError) as refused:
        connector.describe()
    sandbox.faults.configure(FaultSpec.parse("5xx=0.5"), seed=1)
    right = connector_for(sandbox)
    list(right.pull(None, fields=FIELDS, started_at=now()))
    texts = [str(refused.value), repr(refused.value), *(r.getMessage() for r in caplog.records)]
    assert any("retrying" in text for text in texts)  # the logs were exercised
    for text in texts:
        assert wrong not in text
        assert "sandbox-token" not in text


def test_epoch_milliseconds_are_exact_for_every_millisecond() -> None:
    # Float seconds times 1000 truncates about 0.6% of stamps one millisecond low, and a
    # search bound one millisecond off re-pulls or misses a record.
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    stamps = range(0, 2_000_000_000_000, 99_999_989)  # 20,000 stamps from 1970 to 2033
    assert [_ms(epoch + timedelta(milliseconds=ms)) for ms in stamps] == list(stamps)


def test_a_lagging_search_never_hands_over_a_version_older_than_the_stored_one() -> None:
    clock = FakeClock()
    with Sandbox(
        SandboxSettings(port=0, seed=3, leads=40, hubspot=FAST_SANDBOX), clock=clock
    ) as timed:
        connector = connector_for(timed, lookback=timedelta(days=365))
        everyone = [
            r
            for page in connector.pull(None, fields=FIELDS, started_at=now())
            for r in page.records
        ]
        edited = everyone[-1]
        clock.advance(60)
        timed.hubspot.set_activity(int(edited.id), {"jobtitle": "Edited since"})
        # The store read the edit through a consistent read (a batch read before a write, a
        # backfill's list): it holds the newer version, which search has not caught up with.
        newer = connector.fetch([edited.id], fields=FIELDS)[edited.id]
        assert newer.modified_at > edited.modified_at
        stored = {r.id: r.modified_at for r in everyone} | {edited.id: newer.modified_at}

        def known(ids: Any) -> dict[str, datetime]:
            return {record_id: stored[record_id] for record_id in ids if record_id in stored}

        position = everyone[0].position
        again = [
            r
            for page in connector.pull(position, fields=FIELDS, started_at=now(), known=known)
            for r in page.records
        ]
        # Search still serves the old version of the edited contact: taking it would put an
        # older snapshot over the newer one in the store.
        assert edited.id not in {r.id for r in again}
        clock.advance(FAST_SANDBOX.search_lag_ms / 1000)
        caught_up = [
            r
            for page in connector.pull(position, fields=FIELDS, started_at=now(), known=known)
            for r in page.records
        ]
        assert edited.id not in {r.id for r in caught_up}  # the very version the store holds
