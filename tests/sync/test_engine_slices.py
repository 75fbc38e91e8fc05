"""A settle done a slice at a time ends where a settle of everything at once does.

Two sandboxes seeded alike (people in both CRMs, cross-references, duplicates, conversions),
each synced twice with leadsync's clock held: a first sync that makes MQLs and starts their
acceptance clocks, then, after people edited records, a sync past the clocks' due time that
flags the breaches (leads merged again only for their clock). One engine settles everything in
one slice, the other in slices of a dozen records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from leadsync.cli import format_summary
from leadsync.config import Config
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.mapping.definition import load_definition
from leadsync.mapping.fields import load_mapping
from leadsync.mapping.types import CRMS
from leadsync.runtime import Runtime, open_runtime
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sync import tables
from leadsync.sync.carry import WriteCarry
from leadsync.sync.engine import StopCheck, SyncEngine
from leadsync.sync.model import Lead, Snapshot
from leadsync.sync.run_summary import CrmCounts, RunSummary
from leadsync.sync.slices import Slice
from leadsync.sync.store import Store
from tests.support import crm_state, search_caught_up, set_up_sandbox_config

EXAMPLES = Path(__file__).resolve().parents[2] / "leadsync" / "examples"
NEW_YORK = ZoneInfo("America/New_York")
FIRST_RUN = datetime(2026, 6, 2, 15, 0, tzinfo=NEW_YORK)
PAST_DUE = datetime(2026, 6, 4, 15, 0, tzinfo=NEW_YORK)
SETTINGS = SandboxSettings(
    port=0,
    seed=5,
    leads=120,
    seed_until=datetime(2026, 6, 1, tzinfo=UTC),
    hubspot=HubSpotSettings(ten_second_limit=100_000, searches_per_second=1_000),
)


def sliced_engine(runtime: Runtime, at: datetime, slice_size: int) -> SyncEngine:
    return SyncEngine(
        runtime.store,
        runtime.connectors,
        runtime.field_map,
        runtime.definition,
        clock=lambda: at.astimezone(UTC),
        sla_monitor=runtime.sla_monitor(),
        slice_size=slice_size,
    )


def sync(
    config: Config,
    at: datetime,
    slice_size: int,
    *,
    should_stop: StopCheck | None = None,
    write_batch: int | None = None,
) -> RunSummary:
    """A scheduled run at `at`: minutes after the last one, when search has caught up; with
    `write_batch`, both CRMs' write batches that size."""
    search_caught_up(config)
    with open_runtime(config) as runtime:
        if write_batch is not None:
            runtime.connectors = {
                "hubspot": HubSpotConnector(
                    replace(config.hubspot_connection(), batch_size=write_batch)
                ),
                "salesforce": SalesforceConnector(
                    replace(config.salesforce_connection(), collection_size=write_batch)
                ),
            }
        try:
            engine = sliced_engine(runtime, at, slice_size)
            return engine.run(should_stop=should_stop or (lambda: False))
        finally:
            if write_batch is not None:
                for connector in runtime.connectors.values():
                    connector.close()


def edit(sandbox: Sandbox) -> None:
    """The same edits in either sandbox: people change titles in both CRMs."""
    for contact in sorted(sandbox.hubspot.snapshot(), key=lambda c: int(c["id"]))[:15]:
        sandbox.hubspot.set_activity(int(contact["id"]), {"jobtitle": "Head of Revenue"})
    live = [lead for lead in sandbox.salesforce.snapshot("Lead") if not lead.get("IsConverted")]
    for lead in sorted(live, key=lambda lead: lead["Id"])[:15]:
        sandbox.salesforce.update_record("Lead", lead["Id"], {"Title": "VP Sales"})


def store_state(config: Config) -> dict[str, Any]:
    """The store as far as it does not depend on lead ids (uuids): each lead as the records
    it holds, with its stage, score and values; the SLA clocks and breaches per lead."""
    with open_runtime(config, connect=False) as runtime, runtime.store.engine.connect() as db:
        store = runtime.store
        # Leads a handoff created: by their lead's email (their ids follow the order of
        # creation).
        created = {h.record_id: h.lead_id for h in store.handoffs.all() if h.status == "created"}
        emails = {
            lead_id: lead.values.get("email")
            for lead_id, lead in store.leads(sorted(created.values())).items()
        }
        links: dict[str, list[tuple[str, str]]] = {}
        for row in db.execute(sa.select(tables.links)).mappings():
            record_id = row["record_id"]
            if record_id in created:
                record_id = f"handoff:{emails[created[record_id]]}"
            links.setdefault(row["lead_id"], []).append((row["crm"], record_id))
        name = {lead_id: tuple(sorted(records)) for lead_id, records in links.items()}
        leads = {
            name[lead.lead_id]: (lead.stage, lead.score, lead.values)
            for lead in store.leads(sorted(links)).values()
        }
        clocks = sorted(
            (name[c.lead_id], c.rule, c.status.value, c.started_at, c.due_at)
            for c in store.sla.clocks()
        )
        breached = sorted(name[e.lead_id or ""] for e in store.sla.events(kind="breached"))
        reviews = len(store.reviews.items())
    return {"leads": leads, "clocks": clocks, "breached": breached, "reviews": reviews}


WRITE_ENDPOINTS = ("hubspot.contacts.batch_update", "salesforce.collection_update")
# Write batches a few slices of a dozen records fill (the CRMs' own take 100 and 200).
BATCH = 20


def count_slices(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each slice the engines settle from now on, in order."""
    sizes: list[int] = []
    settle_slice = SyncEngine._settle_slice

    def counted(engine: SyncEngine, part: Slice, *args: Any, **kwargs: Any) -> None:
        sizes.append(len(part))
        settle_slice(engine, part, *args, **kwargs)

    monkeypatch.setattr(SyncEngine, "_settle_slice", counted)
    return sizes


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[tuple[Sandbox, Config], tuple[Sandbox, Config]]]:
    with Sandbox(SETTINGS) as whole, Sandbox(SETTINGS) as sliced:
        yield (
            (whole, set_up_sandbox_config(whole, tmp_path / "whole")),
            (sliced, set_up_sandbox_config(sliced, tmp_path / "sliced")),
        )


def test_a_settle_in_slices_ends_in_the_state_of_a_settle_in_one(
    twins: tuple[tuple[Sandbox, Config], tuple[Sandbox, Config]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (whole, whole_config), (sliced, sliced_config) = twins
    slices = count_slices(monkeypatch)
    for config in (whole_config, sliced_config):
        with open_runtime(config, connect=False) as runtime:
            runtime.store.run_log.start("sync", started_at=datetime(2026, 5, 1, tzinfo=UTC))
    summaries: dict[str, list[RunSummary]] = {"whole": [], "sliced": []}
    for at in (FIRST_RUN, PAST_DUE):
        if at is PAST_DUE:
            edit(whole)
            edit(sliced)
        whole.stats.clear()
        slices.clear()
        summaries["whole"].append(sync(whole_config, at, slice_size=100_000))
        whole_calls = whole.stats.as_dict()["endpoints"]
        assert len(slices) == 1
        sliced.stats.clear()
        slices.clear()
        summaries["sliced"].append(sync(sliced_config, at, slice_size=12))
        sliced_calls = sliced.stats.as_dict()["endpoints"]
        # Sliced for real, at no write call more: a slice's part-full batches wait for the
        # next slice's updates (`leadsync.sync.carry`).
        assert len(slices) > 5
        for endpoint in WRITE_ENDPOINTS:
            assert sliced_calls.get(endpoint, 0) == whole_calls.get(endpoint, 0), endpoint

    # Owners too: the slices come in email order, which round-robin follows.
    assert crm_state(sliced) == crm_state(whole)
    assert store_state(sliced_config) == store_state(whole_config)
    for whole_run, sliced_run in zip(summaries["whole"], summaries["sliced"], strict=True):
        assert sliced_run.leads_changed == whole_run.leads_changed
        assert sliced_run.transitions == whole_run.transitions
        assert sliced_run.stages == whole_run.stages
        assert (sliced_run.clocks_started, sliced_run.clocks_stopped) == (
            whole_run.clocks_started,
            whole_run.clocks_stopped,
        )
        for crm, counts in whole_run.crms.items():
            assert sliced_run.crms[crm] == counts, crm
        assert sliced_run.plan is not None
        assert whole_run.plan is not None
        assert sliced_run.plan.calls == whole_run.plan.calls
    first, second = summaries["whole"]
    assert first.clocks_started > 0
    assert second.sla is not None
    assert second.sla.breached > 0
    assert second.crms["hubspot"].pulled > 0  # the edits were pulled and settled


def test_nothing_is_pending_after_a_sliced_settle_and_a_second_sync_writes_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config: Config = set_up_sandbox_config(sandbox, tmp_path)
    first = sync(config, FIRST_RUN, slice_size=5)
    assert sum(c.written for c in first.crms.values()) > 0
    with open_runtime(config, connect=False) as runtime:
        assert runtime.store.pending_ids("hubspot") == []
        assert runtime.store.pending_ids("salesforce") == []
    again = sync(config, FIRST_RUN, slice_size=5)
    assert {crm: c.written for crm, c in again.crms.items()} == {"hubspot": 0, "salesforce": 0}


def reconciled(config: Config) -> int:
    with open_runtime(config, connect=False) as runtime, runtime.store.engine.connect() as db:
        query = sa.select(sa.func.count()).where(tables.snapshots.c.pending.is_(False))
        return int(db.execute(query).scalar_one())


def test_a_run_stopped_between_slices_keeps_what_it_settled_and_the_next_run_ends_it(
    twins: tuple[tuple[Sandbox, Config], tuple[Sandbox, Config]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (whole, whole_config), (sliced, sliced_config) = twins
    whole_run = sync(whole_config, FIRST_RUN, slice_size=100_000, write_batch=BATCH)
    waiting = carried_at_clear(monkeypatch)

    # Told to stop once a whole write batch went out and the slice that wrote it settled:
    # slices write only whole batches, their leftovers wait for more (`leadsync.sync.carry`),
    # their records pending, and the rest stops with the run.
    def written() -> bool:
        endpoints = sliced.stats.as_dict()["endpoints"]
        return endpoints.get("hubspot.contacts.batch_update", 0) > 0 and (
            reconciled(sliced_config) >= 12
        )

    sliced.stats.clear()
    stopped = sync(sliced_config, FIRST_RUN, 12, should_stop=written, write_batch=BATCH)
    assert stopped.interrupted
    assert waiting[-1]  # updates waited for a whole batch when the run stopped
    with open_runtime(sliced_config, connect=False) as runtime:
        left = len(runtime.store.pending_ids("hubspot")) + len(
            runtime.store.pending_ids("salesforce")
        )
    # Some slices settled, and what waits (or was never sliced) is pending.
    assert reconciled(sliced_config) >= 12
    assert left > 20
    assert sum(c.written for c in stopped.crms.values()) > 0

    rest = sync(sliced_config, FIRST_RUN, slice_size=12, write_batch=BATCH)
    assert not rest.interrupted
    assert crm_state(sliced) == crm_state(whole)
    for crm, counts in whole_run.crms.items():  # nothing written twice, nothing skipped
        assert stopped.crms[crm].written + rest.crms[crm].written == counts.written
    # The resumed run already read back what the first slice wrote; one more sync each, and
    # the stores hold the same, with nothing left to write.
    for config in (whole_config, sliced_config):
        after = sync(config, FIRST_RUN, slice_size=12)
        assert {crm: c.written for crm, c in after.crms.items()} == {"hubspot": 0, "salesforce": 0}
    assert store_state(sliced_config) == store_state(whole_config)


def carried_at_clear(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether updates waited for a whole batch each time a settle let them go, in order."""
    found: list[bool] = []
    clear = WriteCarry.clear

    def noted(carry: WriteCarry) -> None:
        found.append(bool(carry))
        clear(carry)

    monkeypatch.setattr(WriteCarry, "clear", noted)
    return found


# ------------------------------------------------------------------- over a store with leads

MAPPING = load_mapping(EXAMPLES / "mapping.toml")
DEFINITION = load_definition(EXAMPLES / "lead_definition.toml", fields=MAPPING.canonical_types())
AT = datetime(2026, 6, 1, tzinfo=UTC)
S1, S2 = "00Q000000000001AAA", "00Q000000000002AAA"


def stored_lead(store: Store, run_id: str, *records: Snapshot) -> None:
    """Lead L, holding `records`, settled before: none of them is pending."""
    for crm in {r.crm for r in records}:
        mine = [r for r in records if r.crm == crm]
        store.save_page(crm, mine, position=None, run_id=run_id)
        store.mark_reconciled(crm, [r.record_id for r in mine])
    store.save_decisions(
        leads=[Lead("L", {"email": records[0].canonical["email"]})],
        links=[(r.crm, r.record_id, "L", "new") for r in records],
        run_id=run_id,
    )


def contact(record_id: str, email: str, **raw: str) -> Snapshot:
    return Snapshot("hubspot", record_id, AT, {"email": email, **raw}, {"email": email})


def salesforce_lead(record_id: str, email: str, *, edited: bool = False) -> Snapshot:
    at, title = (AT + timedelta(hours=1), "CFO") if edited else (AT, "")
    return Snapshot("salesforce", record_id, at, {"Email": email, "Title": title}, {"email": email})


# (stored records of lead L, pending records): in each, one pending record can only be matched
# through a stored record of L that another pending record's lookups fetch.
THROUGH_STORED_RECORDS = {
    # S1 is named by L's contact; S2 has L's email: S1 joins L, S2 is a duplicate.
    "a cross-reference held by a stored record": (
        [contact("h1", "a@x.com", salesforceleadid=S1)],
        [salesforce_lead(S1, "b@y.com"), salesforce_lead(S2, "a@x.com")],
    ),
    # L's merged email is its Salesforce record's, edited since; h2 has the email of L's
    # other record: a duplicate of h1.
    "the email of a stored record": (
        [salesforce_lead(S1, "c@z.com"), contact("h1", "a@x.com")],
        [salesforce_lead(S1, "c@z.com", edited=True), contact("h2", "a@x.com")],
    ),
}


@pytest.mark.parametrize("case", sorted(THROUGH_STORED_RECORDS))
def test_records_joined_through_a_stored_leads_other_records_are_never_split(
    store: Store, case: str
) -> None:
    held, pending = THROUGH_STORED_RECORDS[case]
    run_id = store.run_log.start("sync", started_at=AT)
    stored_lead(store, run_id, *held)
    for record in pending:
        store.save_page(record.crm, [record], position=None, run_id=run_id)

    def matches(slice_size: int) -> dict[str, CrmCounts]:
        engine = SyncEngine(
            store, dict.fromkeys(CRMS), MAPPING, DEFINITION, clock=lambda: AT, slice_size=slice_size
        )
        summary = RunSummary(run_id, wrote=False, started_at=AT)  # a plan: nothing is kept
        summary.crms = {crm: CrmCounts() for crm in CRMS}
        engine.settle(summary)
        return summary.crms

    whole = matches(slice_size=100)
    assert sum(c.new_leads for c in whole.values()) == 0  # all joined L or are its duplicates
    assert sum(c.to_review for c in whole.values()) == 1
    assert matches(slice_size=1) == whole


def test_a_syncs_summary_counts_its_changes_by_field_without_keeping_each_one(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config: Config = set_up_sandbox_config(sandbox, tmp_path)
    summary = sync(config, FIRST_RUN, slice_size=5)
    assert summary.plan is not None
    assert summary.plan.changes == ()  # a sync keeps counts; `leadsync plan` keeps the changes
    written = sum(c.written for c in summary.crms.values())
    assert summary.plan.change_count >= written > 0
    assert summary.as_dict()["changes"] == summary.plan.change_count
    shown = format_summary(summary)
    assert "changes by field, and the write calls they take:" in shown
    assert "hubspot leadsync_score:" in shown


def test_a_lead_settled_twice_in_one_run_is_counted_once_with_its_last_stage(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config: Config = set_up_sandbox_config(sandbox, tmp_path)
    with open_runtime(config) as runtime:
        engine = sliced_engine(runtime, FIRST_RUN, slice_size=7)
        summary = engine.run()
        once = (summary.leads_changed, dict(summary.stages))
        # As a backfill settles again, in the same run, what changed meanwhile.
        runtime.store.mark_all_pending()
        engine.settle(summary)
    assert once[0] > 0
    assert (summary.leads_changed, dict(summary.stages)) == once
    assert sum(summary.stages.values()) == summary.leads_changed
