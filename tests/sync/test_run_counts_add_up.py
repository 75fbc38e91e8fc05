"""A run's counts add up, per CRM: pulled = quarantined + new + matched + review, what earlier
runs left pending counted apart (earlier), over plans then a sync, a run cut and rerun, a
retry, a backfill and a sweep; and what a first sync writes to records whose fields are null
and to converted leads' Contacts. Found attacking the run counts and the rule that a field
absent from a stored record is unknown."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from leadsync.config import Config
from leadsync.connectors.base import Connector
from leadsync.runtime import open_runtime
from leadsync.sandbox import Sandbox, SandboxSettings
from leadsync.sync.backfill import SWEEP, BackfillSpec
from leadsync.sync.engine import SyncEngine
from leadsync.sync.run_summary import CrmCounts
from tests.support import search_caught_up, set_up_sandbox_config
from tests.sync.test_engine import (
    OPEN_LIMITS,
    _EditsAfterPull,
    _EditsBeforeStamps,
    _linked_pair,
    cycle,
)
from tests.sync.test_first_contact import sweep


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(port=0, seed=21, leads=150, hubspot=OPEN_LIMITS)


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path) -> Config:
    loaded: Config = set_up_sandbox_config(sandbox, tmp_path)
    return loaded


def _accounted(counts: CrmCounts) -> int:
    return counts.quarantined + counts.new_leads + counts.matched + counts.to_review


def test_a_record_edited_between_pull_and_write_is_counted_pulled_once(
    sandbox: Sandbox, config: Config
) -> None:
    cycle(config)
    sandbox.hubspot.settle_search()
    contact_id, lead_id = _linked_pair(sandbox, config)
    sandbox.salesforce.update_record("Lead", lead_id, {"Phone": "+1 555 0100"})

    def edit() -> None:
        sandbox.hubspot.set_activity(int(contact_id), {"phone": "+1 555 0142"})

    def wrap(crm: str, connector: Connector) -> Any:
        return _EditsAfterPull(connector, edit) if crm == "hubspot" else connector

    during = cycle(config, wrap=wrap)
    assert during.crms["hubspot"].held_back == 1
    for crm, counts in during.crms.items():
        assert counts.pulled == _accounted(counts), (crm, counts)
    sandbox.hubspot.settle_search()
    after = cycle(config)
    for crm, counts in after.crms.items():
        assert counts.pulled == _accounted(counts), (crm, counts)


def _balanced(summary: Any) -> None:
    for crm, counts in summary.crms.items():
        assert counts.pulled == _accounted(counts), (crm, counts)


def test_plans_then_a_sync_count_each_record_pulled_once_and_accounted(
    sandbox: Sandbox, config: Config
) -> None:
    cycle(config)
    sandbox.hubspot.settle_search()
    contact_id, lead_id = _linked_pair(sandbox, config)
    sandbox.salesforce.update_record("Lead", lead_id, {"Phone": "+1 555 0101"})
    sandbox.hubspot.set_activity(int(contact_id), {"jobtitle": "CTO"})
    sandbox.hubspot.settle_search()
    _balanced(cycle(config, write=False))
    # Edited again after the plan: the sync pulls it at a new stamp.
    sandbox.salesforce.update_record("Lead", lead_id, {"Phone": "+1 555 0102"})
    _balanced(cycle(config, write=False))
    synced = cycle(config)
    _balanced(synced)
    assert synced.crms["salesforce"].pulled >= 1
    assert synced.crms["hubspot"].pulled >= 1


def test_a_run_cut_between_slices_and_its_rerun_count_each_record_once(
    sandbox: Sandbox, config: Config
) -> None:
    asked = {"n": 0}

    def stop() -> bool:
        asked["n"] += 1
        return asked["n"] > 12

    with open_runtime(config) as runtime:
        engine = SyncEngine(
            runtime.store,
            runtime.connectors,
            runtime.field_map,
            runtime.definition,
            slice_size=10,
        )
        cut = engine.run(should_stop=stop)
    assert cut.interrupted
    sandbox.hubspot.settle_search()
    rerun = cycle(config)
    _balanced(rerun)
    for crm, counts in cut.crms.items():
        # What the cut run pulled and did not match, the rerun matched as earlier (with what
        # the cut run matched but did not write: matched again).
        assert counts.pulled - _accounted(counts) <= rerun.crms[crm].earlier, (crm, counts)


def test_a_retry_of_records_fixed_since_counts_them_pulled_and_matched_or_new(
    sandbox: Sandbox, config: Config
) -> None:
    cycle(config)
    with open_runtime(config) as runtime:
        held = sorted(q.record_id for q in runtime.store.quarantine.entries() if q.crm == "hubspot")
    assert len(held) >= 2
    fixed = held[0]
    sandbox.hubspot.set_activity(int(fixed), {"email": "fixed.since@example.com"})
    with open_runtime(config) as runtime:
        engine = SyncEngine(
            runtime.store, dict(runtime.connectors), runtime.field_map, runtime.definition
        )
        retried = engine.retry({"hubspot": held})
    counts = retried.crms["hubspot"]
    assert (counts.pulled, counts.quarantined) == (len(held), len(held) - 1)
    _balanced(retried)


def test_a_backfill_after_a_sync_counts_what_it_pulled_and_accounts_for_it(
    sandbox: Sandbox, config: Config
) -> None:
    # A sweep right after a sync whose writes to converted leads' Contacts it has not
    # pulled back: those Contacts moved since the store read them, so their writes are held
    # back and the Contacts read again, laid over their lead records. Those lead records,
    # matched again in the same run, were counted matched a second time (matched 169 of 153
    # pulled), not as earlier.
    cycle(config)
    sandbox.hubspot.settle_search()
    contact_id, lead_id = _linked_pair(sandbox, config)
    sandbox.salesforce.update_record("Lead", lead_id, {"Phone": "+1 555 0103"})
    sandbox.hubspot.set_activity(int(contact_id), {"jobtitle": "CFO"})
    summary = sweep(config, now=datetime.now(UTC))
    _balanced(summary)
    assert summary.crms["salesforce"].pulled >= 1


def test_a_record_a_plan_quarantined_and_a_person_fixed_counts_once_in_the_sync(
    sandbox: Sandbox, config: Config
) -> None:
    planned = cycle(config, write=False)
    _balanced(planned)
    with open_runtime(config) as runtime:
        held = sorted(q.record_id for q in runtime.store.quarantine.entries() if q.crm == "hubspot")
    assert len(held) >= 2
    sandbox.hubspot.set_activity(int(held[0]), {"email": "fixed.after.plan@example.com"})
    sandbox.hubspot.set_activity(int(held[1]), {"jobtitle": "Still no email"})
    sandbox.hubspot.settle_search()
    synced = cycle(config)
    _balanced(synced)
    hubspot = synced.crms["hubspot"]
    assert (hubspot.pulled, hubspot.quarantined) == (
        planned.crms["hubspot"].pulled,
        planned.crms["hubspot"].quarantined - 1,
    )


def test_a_first_sync_writes_the_stage_to_every_converted_leads_contact(
    sandbox: Sandbox, config: Config
) -> None:
    cycle(config)
    contacts = {
        str(lead["ConvertedContactId"])
        for lead in sandbox.salesforce.snapshot("Lead")
        # A lead without an email waits in quarantine: leadsync manages none of it.
        if lead.get("IsConverted") and lead.get("ConvertedContactId") and lead.get("Email")
    }
    assert contacts
    for contact_id in sorted(contacts):
        record = sandbox.salesforce.record("Contact", contact_id)
        assert record is not None
        assert record.get("Leadsync_Stage__c"), contact_id
        assert record.get("Leadsync_Score__c") is not None, contact_id


def test_a_sweep_counts_a_record_edited_before_its_write_once(
    sandbox: Sandbox, config: Config
) -> None:
    cycle(config)
    sandbox.hubspot.settle_search()
    cycle(config)
    sandbox.hubspot.settle_search()
    # A change the sweep writes to Salesforce (the phone, HubSpot's newer one) ...
    contact_id, lead_id = _linked_pair(sandbox, config)
    sandbox.hubspot.set_activity(int(contact_id), {"phone": "+1 555 0104"})

    def edit(_asked: Sequence[str]) -> str:
        # ... while a rep edits the lead after the sweep read it.
        sandbox.salesforce.update_record("Lead", lead_id, {"Title": "Rep's edit"})
        return lead_id

    search_caught_up(config)
    summaries: list[Any] = []
    with open_runtime(config) as runtime:
        runtime.connectors = {
            crm: _EditsBeforeStamps(c, edit) if crm == "salesforce" else c  # type: ignore[misc]
            for crm, c in runtime.connectors.items()
        }
        queue = runtime.backfill_queue()
        backfill = queue.create(BackfillSpec(tuple(runtime.enabled_crms()), kind=SWEEP))
        runtime.run_backfill(
            backfill.backfill_id,
            should_stop=lambda: False,
            clock=lambda: datetime.now(UTC),
            on_summary=summaries.append,
        )
    (summary,) = summaries
    # Held back, read again, and written in the same sweep: matched again there, as earlier
    # (it counted matched 1 of 0 pulled).
    assert summary.crms["salesforce"].held_back >= 1
    _balanced(summary)
