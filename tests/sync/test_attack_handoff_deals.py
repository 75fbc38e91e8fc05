"""Attack probes on the handoff of a deleted record, owners read back from the org's rules, and
a Contact's opportunities through its contact roles (issues 17 and 18), with orgs unlike the
seeds: records deleted twice, a matched Contact deleted, an owner read that fails, deals
deleted or re-opened. After each, two more runs write nothing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from leadsync.config import Config
from leadsync.errors import ConnectorError
from leadsync.reports.data import opportunities
from leadsync.runtime import open_runtime
from leadsync.sandbox import Sandbox
from leadsync.sync.backfill import SWEEP, BackfillSpec, Status
from leadsync.sync.engine import SyncEngine
from leadsync.sync.handoff_ledger import CREATED, MATCHED
from leadsync.sync.run_summary import RunSummary
from tests.support import Cut, Tripwire, crm_state, search_caught_up
from tests.sync.test_contact_opportunities import _deal, _move, _stage, _synced_person_with_contact
from tests.sync.test_contacts_without_lead import _contact, _person
from tests.sync.test_handoff import (
    HANDOFF_CALLS,
    SETTINGS,
    Wrapped,
    config_for,
    handed_off_leads,
    handoffs,
    reference,
)
from tests.sync.test_handoff import sync as sync_at_now
from tests.sync.test_handoff_response import HOUR, T0, WITHIN_FOUR, Moment, handed_off_at_t0

__all__ = ["reference"]  # the module fixture the matched-Contact probe reads its email from


def _run(config: Config, moment: Moment, *, broken_owner_reads: bool = False) -> RunSummary:
    """One sync on `moment`'s clock; `broken_owner_reads`: the target's owner read-back fails
    as a Salesforce that does not answer would."""
    with open_runtime(config) as runtime:
        connectors: dict[str, Any] = dict(runtime.connectors)
        if broken_owner_reads:

            def fails(_ids: Any) -> dict[str, str]:
                raise ConnectorError("salesforce is away", crm="salesforce", status=503)

            connectors["salesforce"].owners_of = fails
        engine = SyncEngine(
            runtime.store,
            connectors,
            runtime.field_map,
            runtime.definition,
            clock=lambda: moment.at,
        )
        return engine.run(write=True)


def _writes(summary: RunSummary) -> int:
    handed = summary.handoff.handed_off + summary.handoff.matched if summary.handoff else 0
    return sum(counts.written for counts in summary.crms.values()) + handed


def _two_runs(config: Config, moment: Moment) -> None:
    """Two syncs, an hour apart, each once HubSpot's search caught up."""
    for _ in range(2):
        moment.at += HOUR
        search_caught_up(config)
        _run(config, moment)


def _sweep(config: Config, moment: Moment) -> None:
    """The nightly sweep (a full pull of both CRMs), now, run to its end."""
    with open_runtime(config) as runtime:
        chosen = runtime.backfill_queue().create(
            BackfillSpec(("hubspot", "salesforce"), kind=SWEEP)
        )
        done = runtime.run_backfill(
            chosen.backfill_id, should_stop=lambda: False, clock=lambda: moment.at
        )
    assert done.status == Status.SUCCEEDED, done.message


def _settled_twice(sandbox: Sandbox, config: Config, moment: Moment) -> None:
    """Two more runs, an hour apart, once HubSpot's search caught up: neither writes, and the
    CRMs end as they were."""
    search_caught_up(config)
    before = crm_state(sandbox)
    for _ in range(2):
        moment.at += HOUR
        search_caught_up(config)
        assert _writes(_run(config, moment)) == 0
    assert crm_state(sandbox) == before


def _live_leads_keyed(sandbox: Sandbox, key: str) -> list[dict[str, Any]]:
    return [lead for lead in handed_off_leads(sandbox) if lead["Leadsync_Id__c"] == key]


def _archive_hubspot_contact(sandbox: Sandbox, contact_id: str) -> None:
    with requests.Session() as session:
        session.trust_env = False
        answer = session.delete(
            f"{sandbox.url}/crm/v3/objects/contacts/{contact_id}",
            headers={"Authorization": "Bearer sandbox-token"},
        )
    assert answer.status_code == 204


def _delete(sandbox: Sandbox, object_name: str, record_id: str) -> None:
    with sandbox.salesforce.lock:
        assert sandbox.salesforce.delete_record(object_name, record_id).success


def _cut_after_upsert(config: Config, moment: Moment) -> None:
    """A sync killed right after the handoff's upsert, before the record of it."""
    with open_runtime(config) as runtime:
        wire = Tripwire(1, after=True)
        connectors = {
            crm: Wrapped(c, wire, frozenset({"upsert"})) for crm, c in runtime.connectors.items()
        }
        engine = SyncEngine(
            runtime.store,
            connectors,
            runtime.field_map,
            runtime.definition,
            clock=lambda: moment.at,
        )
        with pytest.raises(Cut):
            engine.run(write=True)


def test_a_record_sales_delete_twice_is_handed_off_a_third_time_as_one_live_lead(
    tmp_path: Path,
) -> None:
    with handed_off_at_t0(tmp_path, WITHIN_FOUR) as (sandbox, config, moment):
        first = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        key = str(first["Leadsync_Id__c"])
        seen = {str(first["Id"])}
        for _ in range(2):
            (live,) = _live_leads_keyed(sandbox, key)
            _delete(sandbox, "Lead", str(live["Id"]))
            moment.at += HOUR
            _run(config, moment)
            moment.at += HOUR
            search_caught_up(config)
            _run(config, moment)
            (again,) = _live_leads_keyed(sandbox, key)
            assert str(again["Id"]) not in seen
            seen.add(str(again["Id"]))
        (handoff,) = [h for h in handoffs(config) if h.lead_id == key]
        assert (handoff.status, handoff.record_id) == (CREATED, again["Id"])
        hubspot = {c["properties"].get("salesforceleadid") for c in sandbox.hubspot.snapshot()}
        assert again["Id"] in hubspot
        with open_runtime(config, connect=False) as runtime:
            assert [i for i in runtime.store.reviews.items() if key in i.candidates] == []
            linked = runtime.store.records_of([key])[key]
        live = [r.record_id for r in linked if r.crm == "salesforce" and not r.deleted]
        assert live == [again["Id"]]
        _settled_twice(sandbox, config, moment)


def test_a_record_deleted_while_the_run_that_would_see_it_is_cut_is_handed_off_once(
    tmp_path: Path,
) -> None:
    """Deleted, then a run handing it off again fails at the owners' read (the org's rules
    assign): the re-created lead is recorded once its owner is read, never created twice."""
    definition = WITHIN_FOUR.replace('assignment = "rules"', 'assignment = "salesforce"')
    with handed_off_at_t0(tmp_path, definition) as (sandbox, config, moment):
        first = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        key = str(first["Leadsync_Id__c"])
        _delete(sandbox, "Lead", str(first["Id"]))
        moment.at += HOUR
        _run(config, moment, broken_owner_reads=True)
        moment.at += HOUR
        search_caught_up(config)
        _run(config, moment)
        (again,) = _live_leads_keyed(sandbox, key)
        (handoff,) = [h for h in handoffs(config) if h.lead_id == key]
        assert (handoff.status, handoff.record_id, handoff.owner) == (
            CREATED,
            again["Id"],
            again["OwnerId"],
        )
        _settled_twice(sandbox, config, moment)


def test_owners_not_read_back_are_read_at_the_next_run_and_nothing_is_handed_off_twice(
    tmp_path: Path,
) -> None:
    definition = WITHIN_FOUR.replace('assignment = "rules"', 'assignment = "salesforce"')
    moment = Moment(T0)
    with Sandbox(SETTINGS, clock=moment.seconds) as sandbox:
        config = config_for(sandbox, tmp_path, definition)
        first = _run(config, moment, broken_owner_reads=True)
        assert first.handoff is not None
        assert first.handoff.handed_off > 0
        unowned = [h for h in handoffs(config) if h.status == CREATED]
        assert unowned
        assert all(h.owner is None for h in unowned)
        moment.at += HOUR
        search_caught_up(config)
        again = _run(config, moment)
        assert again.handoff is not None
        assert again.handoff.handed_off == 0
        leads = handed_off_leads(sandbox)
        assert set(Counter(lead["Leadsync_Id__c"] for lead in leads).values()) == {1}
        recorded = {h.record_id: h.owner for h in handoffs(config) if h.status == CREATED}
        assert recorded == {lead["Id"]: lead["OwnerId"] for lead in leads}
        _settled_twice(sandbox, config, moment)


def test_an_owner_sales_change_before_the_read_back_is_the_one_recorded(tmp_path: Path) -> None:
    """The owners' read fails; sales reassign one lead (to the inbound queue) before the next
    run reads them: the owner recorded is the one Salesforce holds, a queue is an owner."""
    from leadsync.sandbox.schema import INBOUND_QUEUE_ID

    definition = WITHIN_FOUR.replace('assignment = "rules"', 'assignment = "salesforce"')
    moment = Moment(T0)
    with Sandbox(SETTINGS, clock=moment.seconds) as sandbox:
        config = config_for(sandbox, tmp_path, definition)
        _run(config, moment, broken_owner_reads=True)
        lead = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        moment.at += HOUR
        sandbox.salesforce.system_update("Lead", lead["Id"], {"OwnerId": INBOUND_QUEUE_ID})
        moment.at += HOUR
        search_caught_up(config)
        _run(config, moment)
        (handoff,) = [h for h in handoffs(config) if h.record_id == lead["Id"]]
        assert handoff.owner == INBOUND_QUEUE_ID
        with open_runtime(config, connect=False) as runtime:
            assert runtime.store.handoffs.names()[INBOUND_QUEUE_ID] == "Inbound Leads"
        _settled_twice(sandbox, config, moment)


def test_a_matched_contact_sales_delete_hands_the_lead_off_as_one_new_lead(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    handed = [v for k, v in expected["salesforce"].items() if k.startswith("handoff:")]
    email = str(handed[0]["Email"]).lower()
    moment = Moment(T0)
    with Sandbox(SETTINGS, clock=moment.seconds) as sandbox:
        contact_id = _contact(sandbox, email)
        config = config_for(sandbox, tmp_path)
        _run(config, moment)
        person = _person(config, email)
        (matched,) = [h for h in handoffs(config) if h.lead_id == person.lead_id]
        assert (matched.status, matched.record_id) == (MATCHED, contact_id)
        moment.at += HOUR
        _delete(sandbox, "Contact", contact_id)
        moment.at += HOUR
        search_caught_up(config)
        _run(config, moment)
        moment.at += HOUR
        search_caught_up(config)
        _run(config, moment)
        (again,) = _live_leads_keyed(sandbox, person.lead_id)
        (handoff,) = [h for h in handoffs(config) if h.lead_id == person.lead_id]
        assert (handoff.status, handoff.record_id) == (CREATED, again["Id"])
        _settled_twice(sandbox, config, moment)


def test_a_deleted_opportunity_takes_its_values_away_from_the_contacts_person(
    tmp_path: Path,
) -> None:
    """Salesforce deletes an opportunity's contact roles with it; the person's deal is gone."""
    with Sandbox(SETTINGS) as sandbox:
        config, person, contact_id = _synced_person_with_contact(sandbox, tmp_path)
        deal = _deal(sandbox, contact_id, "Prospecting")
        sync_at_now(config)
        assert _stage(sandbox, config, person, contact_id)[0] == "opportunity"
        _delete(sandbox, "Opportunity", deal)
        sync_at_now(config)
        with open_runtime(config, connect=False) as runtime:
            lead = runtime.store.leads([person.lead_id])[person.lead_id]
            assert person.lead_id not in opportunities(runtime.store)
        assert lead.values.get("opportunity_stage") is None


def test_a_won_deal_reopened_keeps_its_person_a_customer_and_then_writes_nothing(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config, person, contact_id = _synced_person_with_contact(sandbox, tmp_path)
        deal = _deal(sandbox, contact_id, "Prospecting")
        sync_at_now(config)
        _move(sandbox, deal, "Closed Won")
        sync_at_now(config)
        _move(sandbox, deal, "Negotiation/Review")
        sync_at_now(config)
        # A stage moves back only by a recycle or disqualify rule: the customer stays one.
        assert _stage(sandbox, config, person, contact_id) == ("customer", "Customer")
        with open_runtime(config, connect=False) as runtime:
            facts = opportunities(runtime.store)[person.lead_id]
        assert (facts.won, facts.closed) == (False, False)
        for _ in range(2):
            search_caught_up(config)
            assert _writes(sync_at_now(config)) == 0


def test_the_primary_role_moved_to_another_contact_moves_the_deal_with_it(
    tmp_path: Path,
) -> None:
    """Two Contacts on one won deal; the primary role moves from the first to the second. The
    first keeps its (non-primary) role: the deal still counts for it, as its only role."""
    with Sandbox(SETTINGS) as sandbox:
        config, person, contact_id = _synced_person_with_contact(sandbox, tmp_path)
        deal = _deal(sandbox, contact_id, "Closed Won")
        other = _contact(sandbox, "other.buyer@example.org", "Other")
        with sandbox.salesforce.lock:
            assert sandbox.salesforce.create_record(
                "OpportunityContactRole",
                {"OpportunityId": deal, "ContactId": other, "IsPrimary": True},
            ).success
        sync_at_now(config)
        assert _stage(sandbox, config, person, contact_id)[0] == "customer"
        with open_runtime(config, connect=False) as runtime:
            assert opportunities(runtime.store)[person.lead_id].won is True
        for _ in range(2):
            search_caught_up(config)
            assert _writes(sync_at_now(config)) == 0


def test_a_contact_with_many_deals_counts_the_primary_and_settles(tmp_path: Path) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config, person, contact_id = _synced_person_with_contact(sandbox, tmp_path)
        for stage in ("Closed Lost", "Prospecting", "Closed Lost", "Qualification"):
            _deal(sandbox, contact_id, stage, primary=False)
        _deal(sandbox, contact_id, "Closed Won", primary=True)
        sync_at_now(config)
        assert _stage(sandbox, config, person, contact_id) == ("customer", "Customer")
        for _ in range(2):
            search_caught_up(config)
            assert _writes(sync_at_now(config)) == 0


def test_a_handed_off_lead_deleted_in_both_crms_stops_its_clock_and_is_not_handed_off_again(
    tmp_path: Path,
) -> None:
    """Sales delete the Salesforce lead and marketing archive the HubSpot contact: nobody
    holds the person any more. Leadsync creates no Salesforce lead for them again, and the
    clock their handoff started stops (sales decided), as when only the lead is deleted."""
    with handed_off_at_t0(tmp_path, WITHIN_FOUR) as (sandbox, config, moment):
        first = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        key = str(first["Leadsync_Id__c"])
        contact = next(
            c
            for c in sandbox.hubspot.snapshot()
            if c["properties"].get("salesforceleadid") == first["Id"]
        )
        _delete(sandbox, "Lead", str(first["Id"]))
        _archive_hubspot_contact(sandbox, str(contact["id"]))
        _two_runs(config, moment)
        assert _live_leads_keyed(sandbox, key) == []
        with open_runtime(config, connect=False) as runtime:
            (clock,) = runtime.store.sla.clocks(lead_ids=[key])
            (handoff,) = [h for h in runtime.store.handoffs.all() if h.lead_id == key]
        assert clock.stopped_at is not None
        assert clock.stop_reason == "sales deleted the salesforce record"
        assert not (handoff.status == CREATED and handoff.record_id == first["Id"])


def test_a_lead_deleted_in_both_crms_and_swept_is_not_handed_off_again(tmp_path: Path) -> None:
    """As above, with the nightly sweep between: it sees the HubSpot contact gone (HubSpot's
    search never shows an archived contact, so only a full listing does). Nobody holds the
    person: no Salesforce lead is created for them again, and their clock stops."""
    with handed_off_at_t0(tmp_path, WITHIN_FOUR) as (sandbox, config, moment):
        first = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        key = str(first["Leadsync_Id__c"])
        contact = next(
            c
            for c in sandbox.hubspot.snapshot()
            if c["properties"].get("salesforceleadid") == first["Id"]
        )
        _delete(sandbox, "Lead", str(first["Id"]))
        _archive_hubspot_contact(sandbox, str(contact["id"]))
        moment.at += HOUR
        _sweep(config, moment)
        _two_runs(config, moment)
        assert _live_leads_keyed(sandbox, key) == []
        with open_runtime(config, connect=False) as runtime:
            (clock,) = runtime.store.sla.clocks(lead_ids=[key])
        assert clock.stop_reason == "sales deleted the salesforce record"


def test_a_lead_sales_merge_into_their_own_duplicate_is_matched_not_created_again(
    tmp_path: Path,
) -> None:
    """Sales merge the handed-off lead into a lead they made by hand for the same person (a
    merge deletes the loser): the person has a live lead; leadsync creates none."""
    with handed_off_at_t0(tmp_path, WITHIN_FOUR) as (sandbox, config, moment):
        first = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        email = str(first["Email"]).lower()
        moment.at += HOUR
        with sandbox.salesforce.lock:
            kept = sandbox.salesforce.create_record(
                "Lead", {"LastName": "Kept", "Company": "Kept Inc", "Email": email}
            )
            assert kept.success
        _delete(sandbox, "Lead", str(first["Id"]))
        _two_runs(config, moment)
        live = [
            lead["Id"]
            for lead in sandbox.salesforce.snapshot("Lead")
            if str(lead.get("Email") or "").lower() == email
        ]
        assert live == [kept.record_id]
        _settled_twice(sandbox, config, moment)


def test_a_rehandoff_cut_after_its_upsert_ends_with_one_live_lead(tmp_path: Path) -> None:

    with handed_off_at_t0(tmp_path, WITHIN_FOUR) as (sandbox, config, moment):
        first = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        key = str(first["Leadsync_Id__c"])
        _delete(sandbox, "Lead", str(first["Id"]))
        moment.at += HOUR
        _cut_after_upsert(config, moment)
        _two_runs(config, moment)
        (again,) = _live_leads_keyed(sandbox, key)
        (handoff,) = [h for h in handoffs(config) if h.lead_id == key]
        assert (handoff.status, handoff.record_id) == (CREATED, again["Id"])
        _settled_twice(sandbox, config, moment)


def test_a_record_deleted_while_its_lead_is_blocked_goes_once_the_lead_qualifies(
    tmp_path: Path,
) -> None:
    with handed_off_at_t0(tmp_path, WITHIN_FOUR) as (sandbox, config, moment):
        first = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        key = str(first["Leadsync_Id__c"])
        contact = next(
            c
            for c in sandbox.hubspot.snapshot()
            if c["properties"].get("salesforceleadid") == first["Id"]
        )
        moment.at += HOUR
        sandbox.hubspot.set_activity(int(contact["id"]), {"company": ""})
        _delete(sandbox, "Lead", str(first["Id"]))
        _two_runs(config, moment)
        assert _live_leads_keyed(sandbox, key) == []
        (blocked,) = [h for h in handoffs(config) if h.lead_id == key]
        assert blocked.problem == "requires company present"
        moment.at += HOUR
        sandbox.hubspot.set_activity(int(contact["id"]), {"company": "Back Again Ltd"})
        _two_runs(config, moment)
        (again,) = _live_leads_keyed(sandbox, key)
        assert again["Company"] == "Back Again Ltd"
        _settled_twice(sandbox, config, moment)


@pytest.mark.parametrize("late", [False, True])
def test_owners_read_back_late_own_the_clocks_their_handoff_started(
    tmp_path: Path, late: bool
) -> None:
    """The owners' read fails at the handoff (`late`) and succeeds a run later: the acceptance
    clocks the handoff started belong to those owners, as when the read succeeds at once."""
    definition = WITHIN_FOUR.replace('assignment = "rules"', 'assignment = "salesforce"')
    moment = Moment(T0)
    with Sandbox(SETTINGS, clock=moment.seconds) as sandbox:
        config = config_for(sandbox, tmp_path, definition)
        _run(config, moment, broken_owner_reads=late)
        moment.at += HOUR
        search_caught_up(config)
        _run(config, moment)
        owners = {
            str(lead["Leadsync_Id__c"]): lead["OwnerId"] for lead in handed_off_leads(sandbox)
        }
        with open_runtime(config, connect=False) as runtime:
            clocks = runtime.store.sla.clocks(lead_ids=sorted(owners))
            names = runtime.store.handoffs.names()
    assert clocks
    assert {clock.lead_id: clock.owner for clock in clocks} == owners
    assert set(owners.values()) <= set(names)


def _cut_run(config: Config, moment: Moment, wire: Tripwire) -> None:
    """A sync whose handoff calls (the target's, the ledger's, the echo record) pass `wire`."""
    with open_runtime(config) as runtime:
        store: Any = Wrapped(runtime.store, wire, frozenset({"audit_log.record"}))
        connectors = {crm: Wrapped(c, wire, HANDOFF_CALLS) for crm, c in runtime.connectors.items()}
        engine = SyncEngine(
            store, connectors, runtime.field_map, runtime.definition, clock=lambda: moment.at
        )
        engine.run(write=True)


def _rehandoff_calls(tmp_path: Path) -> int:
    with handed_off_at_t0(tmp_path, WITHIN_FOUR) as (sandbox, config, moment):
        first = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        _delete(sandbox, "Lead", str(first["Id"]))
        moment.at += HOUR
        wire = Tripwire(None, after=False, armed=False)
        _cut_run(config, moment, wire)
        return wire.calls


# The run makes 11 handoff calls; every one, both sides, held (47 s): a sample stays.
@pytest.mark.slow
@pytest.mark.parametrize(("at", "after"), [(1, False), (4, True), (7, True), (10, True)])
def test_the_run_that_sees_the_delete_cut_at_any_handoff_call_then_rerun_ends_with_one_lead(
    tmp_path: Path, at: int, after: bool
) -> None:
    with handed_off_at_t0(tmp_path, WITHIN_FOUR) as (sandbox, config, moment):
        first = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        key = str(first["Leadsync_Id__c"])
        _delete(sandbox, "Lead", str(first["Id"]))
        moment.at += HOUR
        with pytest.raises(Cut):
            _cut_run(config, moment, Tripwire(at, after, armed=False))
        _two_runs(config, moment)
        (again,) = _live_leads_keyed(sandbox, key)
        (handoff,) = [h for h in handoffs(config) if h.lead_id == key]
        assert (handoff.status, handoff.record_id) == (CREATED, again["Id"])
        hubspot = {c["properties"].get("salesforceleadid") for c in sandbox.hubspot.snapshot()}
        assert again["Id"] in hubspot


def _person_stage(config: Config, lead_id: str) -> str | None:
    with open_runtime(config, connect=False) as runtime:
        return runtime.store.leads([lead_id])[lead_id].stage


@pytest.mark.parametrize("converted_with", [None, "Closed Lost"])
def test_a_converted_leads_contact_winning_a_later_deal_makes_its_person_a_customer(
    tmp_path: Path, converted_with: str | None
) -> None:
    """A handed-off lead is converted (with no opportunity, or one lost); sales later open a
    deal for its Contact, primary role, and win it: the person is a customer, and the Contact
    says so."""
    with handed_off_at_t0(tmp_path, WITHIN_FOUR) as (sandbox, config, moment):
        first = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        key = str(first["Leadsync_Id__c"])
        moment.at += HOUR
        converted = sandbox.salesforce.convert_lead(
            str(first["Id"]), opportunity_stage=converted_with, amount=1000.0
        )
        contact_id = str(converted["ConvertedContactId"])
        _two_runs(config, moment)
        moment.at += HOUR
        deal = _deal(sandbox, contact_id, "Prospecting")
        moment.at += HOUR
        _move(sandbox, deal, "Closed Won")
        _two_runs(config, moment)
        contact = sandbox.salesforce.record("Contact", contact_id)
        assert contact is not None
        assert (_person_stage(config, key), contact["Leadsync_Stage__c"]) == (
            "customer",
            "Customer",
        )
        # A day later the other handed-off leads' acceptance clocks have fallen due: their
        # breach flags are written once; then nothing is.
        moment.at += 24 * HOUR
        _run(config, moment)
        _settled_twice(sandbox, config, moment)


def test_a_deal_converted_from_another_lead_moves_a_contact_with_a_role_on_it(
    tmp_path: Path,
) -> None:
    """Lead A is converted with its opportunity; sales add the Contact of another person, B, to
    that deal (a role, B's only one). The deal is then won, its roles unchanged: B is a
    customer on the next sync, as when the deal were B's alone."""
    with Sandbox(SETTINGS) as sandbox:
        config, person, contact_id = _synced_person_with_contact(sandbox, tmp_path)
        other = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        converted = sandbox.salesforce.convert_lead(
            str(other["Id"]), opportunity_stage="Prospecting", amount=2000.0
        )
        deal = str(converted["ConvertedOpportunityId"])
        with sandbox.salesforce.lock:
            assert sandbox.salesforce.create_record(
                "OpportunityContactRole",
                {"OpportunityId": deal, "ContactId": contact_id, "IsPrimary": False},
            ).success
        sync_at_now(config)
        assert _stage(sandbox, config, person, contact_id) == ("opportunity", "Opportunity")
        _move(sandbox, deal, "Closed Won")
        sync_at_now(config)
        assert _stage(sandbox, config, person, contact_id) == ("customer", "Customer")


def test_a_lead_sales_delete_before_the_rerun_of_its_cut_handoff_is_created_again_once(
    tmp_path: Path,
) -> None:
    """The first handoff is cut right after its upsert (the ledger says pending); before the
    rerun, sales delete one of the leads it created. The rerun creates it again: one live
    lead per key, each recorded, linked back to HubSpot."""
    moment = Moment(T0)
    with Sandbox(SETTINGS, clock=moment.seconds) as sandbox:
        config = config_for(sandbox, tmp_path, WITHIN_FOUR)
        _cut_after_upsert(config, moment)
        created = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))
        assert created
        gone = created[0]
        moment.at += HOUR
        _delete(sandbox, "Lead", str(gone["Id"]))
        _two_runs(config, moment)
        leads = handed_off_leads(sandbox)
        assert set(Counter(lead["Leadsync_Id__c"] for lead in leads).values()) == {1}
        assert {lead["Leadsync_Id__c"] for lead in leads} == {
            lead["Leadsync_Id__c"] for lead in created
        }
        recorded = {h.lead_id: h.record_id for h in handoffs(config) if h.status == CREATED}
        assert recorded == {lead["Leadsync_Id__c"]: lead["Id"] for lead in leads}
        hubspot = {c["properties"].get("salesforceleadid") for c in sandbox.hubspot.snapshot()}
        assert {lead["Id"] for lead in leads} <= hubspot
        _settled_twice(sandbox, config, moment)


def test_the_primary_deal_deleted_leaves_the_contacts_other_deal_counting(
    tmp_path: Path,
) -> None:
    """A Contact's primary role is on a deal sales then delete; its other role's deal (open)
    counts from then on."""
    with Sandbox(SETTINGS) as sandbox:
        config, person, contact_id = _synced_person_with_contact(sandbox, tmp_path)
        primary = _deal(sandbox, contact_id, "Negotiation/Review", primary=True)
        other = _deal(sandbox, contact_id, "Qualification", primary=False)
        sync_at_now(config)
        _delete(sandbox, "Opportunity", primary)
        sync_at_now(config)
        with open_runtime(config, connect=False) as runtime:
            lead = runtime.store.leads([person.lead_id])[person.lead_id]
        assert lead.values.get("opportunity_stage") == "Qualification"
        assert lead.values.get("opportunity_id") in (None, other)
        for _ in range(2):
            search_caught_up(config)
            assert _writes(sync_at_now(config)) == 0


def test_a_customers_contact_sales_delete_leaves_it_a_customer_and_settles(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config, person, contact_id = _synced_person_with_contact(sandbox, tmp_path)
        _deal(sandbox, contact_id, "Closed Won")
        sync_at_now(config)
        assert _stage(sandbox, config, person, contact_id)[0] == "customer"
        _delete(sandbox, "Contact", contact_id)
        sync_at_now(config)
        email = str(person.values["email"]).strip().lower()
        assert _person(config, email).stage == "customer"
        for _ in range(2):
            search_caught_up(config)
            assert _writes(sync_at_now(config)) == 0


def test_a_plan_between_the_delete_and_the_sync_counts_it_and_the_sync_hands_it_off(
    tmp_path: Path,
) -> None:
    """A plan pulls the deletion into the store and hands nothing off; the sync after it still
    hands the lead off again."""
    with handed_off_at_t0(tmp_path, WITHIN_FOUR) as (sandbox, config, moment):
        first = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        key = str(first["Leadsync_Id__c"])
        _delete(sandbox, "Lead", str(first["Id"]))
        moment.at += HOUR
        with open_runtime(config) as runtime:
            planned = runtime.engine(clock=lambda: moment.at).run(write=False)
        assert planned.handoff_plan is not None
        assert planned.handoff_plan.handed_off == 1
        assert _live_leads_keyed(sandbox, key) == []
        _two_runs(config, moment)
        (again,) = _live_leads_keyed(sandbox, key)
        assert again["Id"] != first["Id"]
        _settled_twice(sandbox, config, moment)


def test_a_sweep_between_the_delete_and_the_sync_leaves_the_lead_handed_off_again(
    tmp_path: Path,
) -> None:
    """The nightly sweep (a full pull of both CRMs) runs after sales deleted the handed-off
    lead and before the next sync: the sync still hands the lead off again."""
    with handed_off_at_t0(tmp_path, WITHIN_FOUR) as (sandbox, config, moment):
        first = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        key = str(first["Leadsync_Id__c"])
        _delete(sandbox, "Lead", str(first["Id"]))
        moment.at += HOUR
        _sweep(config, moment)
        _two_runs(config, moment)
        (handoff,) = [h for h in handoffs(config) if h.lead_id == key]
        assert (handoff.status, handoff.record_id) != (CREATED, first["Id"])
        (again,) = _live_leads_keyed(sandbox, key)
        assert again["Id"] != first["Id"]
        _settled_twice(sandbox, config, moment)


def test_a_lead_sales_replace_with_a_contact_is_matched_to_it_not_created_again(
    tmp_path: Path,
) -> None:
    """Sales make a Contact for the handed-off person, then delete the lead: the person is
    matched to the Contact; no lead is created again."""
    with handed_off_at_t0(tmp_path, WITHIN_FOUR) as (sandbox, config, moment):
        first = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))[0]
        key = str(first["Leadsync_Id__c"])
        moment.at += HOUR
        contact_id = _contact(sandbox, str(first["Email"]).lower())
        _delete(sandbox, "Lead", str(first["Id"]))
        _two_runs(config, moment)
        assert _live_leads_keyed(sandbox, key) == []
        (handoff,) = [h for h in handoffs(config) if h.lead_id == key]
        assert (handoff.status, handoff.record_object, handoff.record_id) == (
            MATCHED,
            "Contact",
            contact_id,
        )
        _settled_twice(sandbox, config, moment)
