"""Attacks on a handoff a kill cut off, taken up by the next run: the lookup of its create
failing or spanning several queries, a landed create of a lead that moved on meanwhile (no
SLA clock that breaches), PostgreSQL, and a plan counting what the sync then hands off."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from leadsync.connectors.base import UpsertResult, WriteStatus
from leadsync.errors import ConnectorError
from leadsync.runtime import open_runtime
from leadsync.sandbox import Sandbox
from leadsync.sync.engine import SyncEngine
from leadsync.sync.handoff_ledger import CREATED, PENDING
from tests.support import search_caught_up
from tests.sync.test_backfill_crash import (
    _on,
)
from tests.sync.test_handoff import NOW, SETTINGS, config_for, handoffs, sync
from tests.sync.test_handoff_resumed_due import (
    _contact_of,
    _cut_at_the_create,
    _handoff_of,
    _keyed,
)


class _LookupRefused:
    """Salesforce, whose lookup of cut-off creates by their key fails (an outage, a timeout)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.asked = 0

    def records_by_key(self, keys: Any, *, key_field: str) -> dict[str, str]:
        self.asked += 1
        raise ConnectorError("read failed", crm="salesforce")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _sync_with(config: Any, wrap: Any) -> Any:
    with open_runtime(config) as runtime:
        connectors: dict[str, Any] = dict(runtime.connectors)
        connectors["salesforce"] = wrap(connectors["salesforce"])
        engine = SyncEngine(
            runtime.store, connectors, runtime.field_map, runtime.definition, clock=lambda: NOW
        )
        return engine.run(write=True), connectors["salesforce"]


def _disqualify(sandbox: Sandbox, config: Any, contact: int) -> None:
    """Sales disqualify the person in HubSpot, and search shows it."""
    sandbox.hubspot.set_activity(contact, {"hs_lead_status": "UNQUALIFIED"})
    search_caught_up(config)


def _stage_and_open_clocks(config: Any, lead_id: str) -> tuple[str, list[Any]]:
    """The lead's stage, and its SLA clocks still running."""
    with open_runtime(config, connect=False) as runtime:
        (lead,) = runtime.store.leads([lead_id]).values()
        clocks = runtime.store.sla.clocks()
    return str(lead.stage), [c for c in clocks if c.lead_id == lead_id and c.stopped_at is None]


def test_a_lookup_salesforce_fails_leaves_the_moved_back_lead_pending_then_withdraws_it(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=False)
        back = sorted(pending)[0]
        _disqualify(sandbox, config, _contact_of(config, back))
        summary, salesforce = _sync_with(config, _LookupRefused)
        held = _handoff_of(config, back)
        assert salesforce.asked == 1
        assert held is not None
        assert held.status == PENDING
        assert back not in _keyed(sandbox)
        assert summary.handoff is not None
        assert summary.handoff.handed_off == len(pending) - 1
        sync(config)
        withdrawn = _handoff_of(config, back)
    assert withdrawn is None
    assert back not in _keyed(sandbox)


def test_cut_off_creates_are_looked_up_past_one_query_of_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More cut-off handoffs than one query's keys (200; 2 here): each landed create found."""
    import leadsync.connectors.salesforce as salesforce

    monkeypatch.setattr(salesforce, "COLLECTION_IDS", 2)
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=True)
        back = sorted(pending)[: min(5, len(pending))]
        assert len(back) > 2
        for lead_id in back:
            sandbox.hubspot.set_activity(
                _contact_of(config, lead_id), {"hs_lead_status": "UNQUALIFIED"}
            )
        search_caught_up(config)
        with open_runtime(config) as runtime:
            keys: Any = runtime.connectors["salesforce"]
            found = keys.records_by_key(back, key_field="Leadsync_Id__c")
        assert set(found) == set(back)
        sync(config)
        recorded = {h.lead_id: h for h in handoffs(config)}
        keyed = _keyed(sandbox)
    for lead_id in back:
        assert recorded[lead_id].status == CREATED
        assert keyed[lead_id] == 1


def test_a_landed_create_of_a_lead_disqualified_meanwhile_starts_no_clock_that_breaches(
    tmp_path: Path,
) -> None:
    """The lead was disqualified before the rerun found its cut-off create landed: recorded
    created, but no SLA clock runs for it (as a handed-off lead disqualified has its clock
    stopped, rejected), so no breach is charged to its owner a week on."""
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=True)
        back = sorted(pending)[0]
        _disqualify(sandbox, config, _contact_of(config, back))
        sync(config)
        later = NOW + timedelta(days=7)
        search_caught_up(config)
        sync(config, at=later)
        recorded = _handoff_of(config, back)
        stage, open_clocks = _stage_and_open_clocks(config, back)
    assert recorded is not None
    assert recorded.status == CREATED
    assert stage == "disqualified"
    assert open_clocks == []


@pytest.mark.postgres
def test_on_postgresql_a_lead_moved_back_after_the_cut_is_withdrawn_and_freed(
    tmp_path: Path, postgresql_database_url: str
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = _on(postgresql_database_url, config_for(sandbox, tmp_path))
        pending = _cut_at_the_create(config, after=False)
        back = sorted(pending)[0]
        _disqualify(sandbox, config, _contact_of(config, back))
        summary = sync(config)
        withdrawn = _handoff_of(config, back)
        keyed = _keyed(sandbox)
    assert withdrawn is None
    assert back not in keyed
    assert summary.handoff is not None
    assert summary.handoff.handed_off == len(pending) - 1


def test_a_landed_create_looked_up_by_its_key_for_a_disqualified_lead_starts_no_clock(
    tmp_path: Path,
) -> None:
    """As above, the create found by its key (a quarantine retry of the contact pulls no
    Salesforce record): recorded created, with no clock left running."""
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        pending = _cut_at_the_create(config, after=True)
        back = sorted(pending)[0]
        contact = _contact_of(config, back)
        _disqualify(sandbox, config, contact)
        with open_runtime(config) as runtime:
            runtime.engine(clock=lambda: NOW).retry({"hubspot": [str(contact)]})
        recorded = _handoff_of(config, back)
        stage, open_clocks = _stage_and_open_clocks(config, back)
    assert recorded is not None
    assert recorded.status == CREATED
    assert stage == "disqualified"
    assert open_clocks == []


class _Deferring:
    """Salesforce, throttling every create (as its REQUEST_LIMIT_EXCEEDED would): each
    handoff is deferred, left pending for the next run."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def upsert(self, records: Any, **kwargs: Any) -> list[UpsertResult]:
        return [UpsertResult(r.key, WriteStatus.DEFERRED, category="rate_limited") for r in records]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_plan_after_deferred_handoffs_counts_what_the_sync_then_hands_off(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        first, _ = _sync_with(config, _Deferring)
        assert first.handoff is not None
        assert first.handoff.deferred > 0
        waiting = [h for h in handoffs(config) if h.status == PENDING]
        assert waiting
        with open_runtime(config) as runtime:
            engine = SyncEngine(
                runtime.store,
                runtime.connectors,
                runtime.field_map,
                runtime.definition,
                clock=lambda: NOW,
            )
            planned = engine.run(write=False).handoff_plan
        synced = sync(config).handoff
    assert synced is not None
    assert synced.handed_off == len(waiting)
    assert planned is not None
    assert planned.handed_off == synced.handed_off
