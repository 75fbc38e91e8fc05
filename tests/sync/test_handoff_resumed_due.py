"""A handoff a kill cut off is resumed by the next run only while its lead is still due: a
lead whose HubSpot contact was archived meanwhile, or whose stage moved back (recycled,
disqualified), gets no Salesforce lead. Its pending handoff is withdrawn, as if it had never
begun (due again later, it is handed off then, timed from then), unless the cut-off create
landed: then the handoff is recorded created, with that record, and nothing is sent twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from leadsync.cli.sync import format_summary
from leadsync.config import Config
from leadsync.runtime import open_runtime
from leadsync.sandbox import Sandbox
from leadsync.sync.engine import SyncEngine
from leadsync.sync.handoff_ledger import BLOCKED, CREATED, PENDING, Handoff
from tests.support import Cut, Tripwire, search_caught_up
from tests.sync.test_attack_handoff_deals import _archive_hubspot_contact
from tests.sync.test_handoff import (
    NOW,
    SETTINGS,
    Wrapped,
    config_for,
    handed_off_leads,
    handoffs,
    sync,
)


def _cut_at_the_create(config: Config, *, after: bool) -> dict[str, Handoff]:
    """A run killed at its create: before the upsert's call, or once the CRM applied it and
    before its answer came back. Its handoffs are left pending, by lead."""
    with open_runtime(config) as runtime:
        wire = Tripwire(1, after=after)
        connectors: dict[str, Any] = {
            crm: Wrapped(c, wire, frozenset({"upsert"})) for crm, c in runtime.connectors.items()
        }
        engine = SyncEngine(
            runtime.store, connectors, runtime.field_map, runtime.definition, clock=lambda: NOW
        )
        with pytest.raises(Cut):
            engine.run(write=True)
    pending = {h.lead_id: h for h in handoffs(config) if h.status == PENDING}
    assert pending
    return pending


def _contact_of(config: Config, lead_id: str) -> int:
    """The HubSpot contact of a lead the run was handing off (it had no Salesforce record)."""
    with open_runtime(config, connect=False) as runtime:
        records = runtime.store.records_of([lead_id])[lead_id]
    (contact,) = [r.record_id for r in records if r.crm == "hubspot"]
    return int(contact)


def _best_scored(config: Config, lead_ids: Iterable[str]) -> str:
    """The one of `lead_ids` that meets the MQL criteria by the widest margin: recycled,
    then recycled no more, it requalifies on them (not on the CRMs' evidence, as at first)."""
    with open_runtime(config, connect=False) as runtime:
        leads = runtime.store.leads(sorted(lead_ids)).values()
    best = max(leads, key=lambda lead: (lead.score or 0, lead.lead_id))
    assert (best.score or 0) >= 70
    assert (best.fit or 0) >= 20
    return best.lead_id


def _keyed(sandbox: Sandbox) -> Counter[str]:
    """Lead id -> the Salesforce leads created for it (by the handoff key)."""
    return Counter(str(lead["Leadsync_Id__c"]) for lead in handed_off_leads(sandbox))


def _handoff_of(config: Config, lead_id: str) -> Handoff | None:
    return next((h for h in handoffs(config) if h.lead_id == lead_id), None)


def test_a_contact_archived_after_the_cut_gets_no_salesforce_lead_and_is_withdrawn(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=False)
        gone = sorted(pending)[0]
        _archive_hubspot_contact(sandbox, str(_contact_of(config, gone)))
        summary = sync(config)
        keyed = _keyed(sandbox)
        withdrawn = _handoff_of(config, gone)
        others = {h.lead_id: h for h in handoffs(config) if h.lead_id in pending}
    assert gone not in keyed
    assert withdrawn is None
    # The others were still due: created once each, with the owner they were given.
    assert summary.handoff is not None
    assert summary.handoff.handed_off == len(pending) - 1
    for lead_id, handoff in others.items():
        assert keyed[lead_id] == 1
        assert (handoff.status, handoff.owner) == (CREATED, pending[lead_id].owner)


def test_a_withdrawn_handoff_is_counted_in_the_run_summary(tmp_path: Path) -> None:
    """The run summary counts the handoffs it withdrew beside those it handed off: in the
    summary, its dict (what the run log keeps), and the lines `sync --once` prints."""
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=False)
        gone = sorted(pending)[0]
        _archive_hubspot_contact(sandbox, str(_contact_of(config, gone)))
        summary = sync(config)
        with open_runtime(config, connect=False) as runtime:
            logged = runtime.store.run_log.get(summary.run_id)
    assert summary.handoff is not None
    assert (summary.handoff.handed_off, summary.handoff.withdrawn) == (len(pending) - 1, 1)
    assert summary.handoff.blocked == 0
    assert summary.as_dict()["handoff"]["withdrawn"] == 1
    assert logged is not None
    assert logged.summary["handoff"]["withdrawn"] == 1
    assert "1 withdrawn" in format_summary(summary)


def test_a_cut_off_handoff_blocked_now_is_counted_blocked_not_withdrawn(tmp_path: Path) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=False)
        blocked = sorted(pending)[0]
        sandbox.hubspot.set_activity(_contact_of(config, blocked), {"company": None})
        search_caught_up(config)
        summary = sync(config)
        recorded = _handoff_of(config, blocked)
    assert recorded is not None
    assert recorded.status == BLOCKED
    assert summary.handoff is not None
    assert (summary.handoff.blocked, summary.handoff.withdrawn) == (1, 0)


@pytest.mark.parametrize(
    ("status", "stage"), [("UNQUALIFIED", "disqualified"), ("BAD_TIMING", "recycled")]
)
def test_a_lead_moved_back_after_the_cut_gets_no_salesforce_lead_and_is_withdrawn(
    tmp_path: Path, status: str, stage: str
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=False)
        back = sorted(pending)[0]
        sandbox.hubspot.set_activity(_contact_of(config, back), {"hs_lead_status": status})
        search_caught_up(config)
        summary = sync(config)
        with open_runtime(config, connect=False) as runtime:
            (lead,) = runtime.store.leads([back]).values()
        keyed = _keyed(sandbox)
        withdrawn = _handoff_of(config, back)
    assert lead.stage == stage
    assert back not in keyed
    assert withdrawn is None
    assert summary.handoff is not None
    assert summary.handoff.handed_off == len(pending) - 1
    assert summary.handoff.withdrawn == 1


def test_a_plan_after_the_cut_counts_what_the_sync_then_hands_off(tmp_path: Path) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=False)
        back = sorted(pending)[0]
        sandbox.hubspot.set_activity(_contact_of(config, back), {"hs_lead_status": "UNQUALIFIED"})
        search_caught_up(config)
        with open_runtime(config) as runtime:
            engine = runtime.engine(clock=lambda: NOW)
            planned = engine.run(write=False).handoff_plan
        synced = sync(config).handoff
    assert planned is not None
    assert synced is not None
    assert planned.handed_off == synced.handed_off == len(pending) - 1
    # The owners the plan names are those the resumed handoffs keep.
    kept = Counter(h.owner for lead_id, h in pending.items() if lead_id != back)
    named = Counter(owner for (_, owner), n in planned.owners.items() for _ in range(n))
    assert named == kept


def test_a_withdrawn_lead_due_again_later_is_handed_off_then_timed_from_then(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=False)
        back = _best_scored(config, pending)
        contact = _contact_of(config, back)
        sandbox.hubspot.set_activity(contact, {"hs_lead_status": "BAD_TIMING"})
        search_caught_up(config)
        sync(config)
        assert _handoff_of(config, back) is None
        # Marketing nurtured them back: no recycle rule holds, and they qualify again.
        sandbox.hubspot.set_activity(contact, {"hs_lead_status": "OPEN"})
        search_caught_up(config)
        later = NOW + timedelta(days=1)
        sync(config, at=later)
        again = _handoff_of(config, back)
        keyed = _keyed(sandbox)
    assert again is not None
    assert (again.status, again.eligible_at, again.handed_off_at) == (CREATED, later, later)
    assert keyed[back] == 1


def test_a_create_that_landed_before_the_cut_is_recorded_created_not_withdrawn(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=True)
        gone = sorted(pending)[0]
        landed = {str(lead["Leadsync_Id__c"]): lead for lead in handed_off_leads(sandbox)}
        assert set(pending) <= set(landed)
        _archive_hubspot_contact(sandbox, str(_contact_of(config, gone)))
        summary = sync(config)
        recorded = _handoff_of(config, gone)
        keyed = _keyed(sandbox)
    assert recorded is not None
    assert (recorded.status, recorded.record_id) == (CREATED, landed[gone]["Id"])
    assert recorded.owner == pending[gone].owner
    assert keyed[gone] == 1
    assert summary.handoff is not None
    assert summary.handoff.withdrawn == 0


def test_a_landed_create_the_pull_has_not_brought_is_looked_up_by_its_key_not_sent_again(
    tmp_path: Path,
) -> None:
    """A quarantine retry settles the leads of the records it reads again, and takes up the
    cut-off handoffs, with no pull of Salesforce: the landed record is found by its key."""
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=True)
        gone = sorted(pending)[0]
        landed = {str(lead["Leadsync_Id__c"]): lead for lead in handed_off_leads(sandbox)}
        contact = _contact_of(config, gone)
        _archive_hubspot_contact(sandbox, str(contact))
        with open_runtime(config) as runtime:
            engine = runtime.engine(clock=lambda: NOW)
            summary = engine.retry({"hubspot": [str(contact)]})
        recorded = _handoff_of(config, gone)
        keyed = _keyed(sandbox)
    assert recorded is not None
    assert (recorded.status, recorded.record_id) == (CREATED, landed[gone]["Id"])
    assert keyed[gone] == 1
    # Only the leads still due were sent (their creates landed too: the upsert found them).
    assert summary.handoff is not None
    assert summary.handoff.handed_off == len(pending) - 1


def test_a_resumed_handoff_still_due_creates_one_lead_with_the_kept_owner(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=False)
        summary = sync(config)
        keyed = _keyed(sandbox)
        owners = {
            str(lead["Leadsync_Id__c"]): lead["OwnerId"] for lead in handed_off_leads(sandbox)
        }
        recorded = {h.lead_id: h for h in handoffs(config)}
    assert summary.handoff is not None
    assert summary.handoff.handed_off == len(pending)
    for lead_id, given in pending.items():
        assert keyed[lead_id] == 1
        assert recorded[lead_id].status == CREATED
        assert owners[lead_id] == recorded[lead_id].owner == given.owner


class _Sending:
    """A connector whose writes are kept in `sent`: (record id, the fields written)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.sent: list[tuple[str, set[str]]] = []

    def write(self, updates: Any, *args: Any, **kwargs: Any) -> Any:
        self.sent += [(update.record_id, set(update.values)) for update in updates]
        return self._inner.write(updates, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_landed_create_whose_contact_was_archived_unseen_gets_no_link_to_that_contact(
    tmp_path: Path,
) -> None:
    """A retry of another record takes up the cut-off handoffs too: the store still holds the
    archived contact live (no pull read it again), the read of the leads' other records finds
    it gone, and the landed create is recorded, with no link sent to the gone contact."""
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=True)
        gone, other = sorted(pending)[:2]
        landed = {str(lead["Leadsync_Id__c"]): lead for lead in handed_off_leads(sandbox)}
        contact = str(_contact_of(config, gone))
        _archive_hubspot_contact(sandbox, contact)
        with open_runtime(config) as runtime:
            link = runtime.field_map.writeback["hubspot"].handoff_link
            hubspot = _Sending(runtime.connectors["hubspot"])
            runtime.connectors = {**runtime.connectors, "hubspot": hubspot}
            engine = runtime.engine(clock=lambda: NOW)
            engine.retry({"hubspot": [str(_contact_of(config, other))]})
        recorded = _handoff_of(config, gone)
    assert recorded is not None
    assert (recorded.status, recorded.record_id) == (CREATED, landed[gone]["Id"])
    linked = {record_id for record_id, fields in hubspot.sent if link in fields}
    assert linked  # the other leads' links
    assert contact not in linked


def test_a_landed_create_of_a_lead_blocked_meanwhile_is_recorded_created_not_blocked(
    tmp_path: Path,
) -> None:
    """The lead's company was cleared in HubSpot after the create landed (the handoff now
    `requires company present`): the retry of its contact reads it blank, pulls no Salesforce
    record, and the create is found by its key: sales hold the lead, so it is created, not
    blocked."""
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=True)
        blocked = sorted(pending)[0]
        landed = {str(lead["Leadsync_Id__c"]): lead for lead in handed_off_leads(sandbox)}
        contact = _contact_of(config, blocked)
        sandbox.hubspot.set_activity(contact, {"company": None})
        with open_runtime(config) as runtime:
            runtime.engine(clock=lambda: NOW).retry({"hubspot": [str(contact)]})
        recorded = _handoff_of(config, blocked)
    assert recorded is not None
    assert (recorded.status, recorded.record_id) == (CREATED, landed[blocked]["Id"])
