"""A settle done a slice at a time ends where a settle of everything at once does.

Two sandboxes seeded alike (people in both CRMs, cross-references, duplicates, conversions),
each synced twice with leadsync's clock held: a first sync that makes MQLs and starts their
acceptance clocks, then, after people edited records, a sync past the clocks' due time that
flags the breaches (leads merged again only for their clock). One engine settles everything in
one slice, the other in slices of a dozen records.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from leadsync.config import Config
from leadsync.runtime import open_runtime
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sync import tables
from leadsync.sync.engine import RunSummary, StopCheck, SyncEngine
from tests.support import crm_state, set_up_sandbox_config

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


def sync(
    config: Config, at: datetime, slice_size: int, *, should_stop: StopCheck | None = None
) -> RunSummary:
    with open_runtime(config) as runtime:
        engine = SyncEngine(
            runtime.store,
            runtime.connectors,
            runtime.field_map,
            runtime.definition,
            clock=lambda: at.astimezone(UTC),
            sla_monitor=runtime.sla_monitor(),
            slice_size=slice_size,
        )
        return engine.run(**({} if should_stop is None else {"should_stop": should_stop}))


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
        links: dict[str, list[tuple[str, str]]] = {}
        for row in db.execute(sa.select(tables.links)).mappings():
            links.setdefault(row["lead_id"], []).append((row["crm"], row["record_id"]))
        name = {lead_id: tuple(sorted(records)) for lead_id, records in links.items()}
        leads = {
            name[lead.lead_id]: (lead.stage, lead.score, dict(lead.values))
            for lead in store.leads(sorted(links)).values()
        }
        clocks = sorted(
            (name[c.lead_id], c.rule, c.status.value, c.started_at, c.due_at)
            for c in store.sla.clocks()
        )
        breached = sorted(name[e.lead_id or ""] for e in store.sla.events(kind="breached"))
        reviews = len(store.review_queue())
    return {"leads": leads, "clocks": clocks, "breached": breached, "reviews": reviews}


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[tuple[Sandbox, Config], tuple[Sandbox, Config]]]:
    with Sandbox(SETTINGS) as whole, Sandbox(SETTINGS) as sliced:
        yield (
            (whole, set_up_sandbox_config(whole, tmp_path / "whole")),
            (sliced, set_up_sandbox_config(sliced, tmp_path / "sliced")),
        )


def test_a_settle_in_slices_ends_in_the_state_of_a_settle_in_one(
    twins: tuple[tuple[Sandbox, Config], tuple[Sandbox, Config]],
) -> None:
    (whole, whole_config), (sliced, sliced_config) = twins
    for config in (whole_config, sliced_config):
        with open_runtime(config, connect=False) as runtime:
            runtime.store.start_run("sync", started_at=datetime(2026, 5, 1, tzinfo=UTC))
    summaries: dict[str, list[RunSummary]] = {"whole": [], "sliced": []}
    for at in (FIRST_RUN, PAST_DUE):
        if at is PAST_DUE:
            edit(whole)
            edit(sliced)
        whole.stats.clear()
        summaries["whole"].append(sync(whole_config, at, slice_size=100_000))
        whole_calls = whole.stats.as_dict()["endpoints"]
        sliced.stats.clear()
        summaries["sliced"].append(sync(sliced_config, at, slice_size=12))
        sliced_calls = sliced.stats.as_dict()["endpoints"]
        # Sliced for real: its writes went out in more, smaller batches.
        assert (
            sliced_calls["hubspot.contacts.batch_update"]
            > (whole_calls["hubspot.contacts.batch_update"])
        )

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
) -> None:
    (whole, whole_config), (sliced, sliced_config) = twins
    whole_run = sync(whole_config, FIRST_RUN, slice_size=100_000)

    # Told to stop as soon as a slice is settled: the check before the next slice says yes.
    stopped = sync(sliced_config, FIRST_RUN, 12, should_stop=lambda: reconciled(sliced_config) > 0)
    assert stopped.interrupted
    with open_runtime(sliced_config, connect=False) as runtime:
        left = len(runtime.store.pending_ids("hubspot")) + len(
            runtime.store.pending_ids("salesforce")
        )
    # One slice settled (a dozen records, or a little more: a slice ends with a whole person).
    assert 12 <= reconciled(sliced_config) < 20 < left
    assert sum(c.written for c in stopped.crms.values()) > 0

    rest = sync(sliced_config, FIRST_RUN, slice_size=12)
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
