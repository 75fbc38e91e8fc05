"""Grouping pending records by identity reads only their identity fields (Store.identity_snapshots):
on an org shaped unlike the seed, a sync in tiny slices ends where a sync in one slice does.

HubSpot contacts whose salesforceleadid holds a Salesforce lead's id in its 15-character form,
padded with whitespace, a number, or blanks; emails of Salesforce leads with their case and
whitespace changed, on both sides; and, before a second sync, more of them over a store holding
the leads the first made. Two sandboxes seeded alike get the same edits; one engine settles in
slices of 2 records, the other everything at once.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from leadsync.config import Config
from leadsync.runtime import open_runtime
from leadsync.sandbox import Sandbox
from leadsync.sync import tables
from leadsync.sync.grouping import PendingGrouping
from leadsync.sync.model import Snapshot
from leadsync.sync.slices import PersonGroups
from tests.support import set_up_sandbox_config
from tests.sync.test_engine_slices import (
    FIRST_RUN,
    PAST_DUE,
    SETTINGS,
    count_slices,
    store_state,
    sync,
)


def odd_edits(sandbox: Sandbox, seed: int) -> None:
    """The same odd edits in either sandbox (the same seed gives the same records)."""
    rng = random.Random(seed)
    leads = sorted(
        (lead for lead in sandbox.salesforce.snapshot("Lead") if not lead.get("IsConverted")),
        key=lambda lead: lead["Id"],
    )
    converted = sorted(
        str(lead["ConvertedContactId"])
        for lead in sandbox.salesforce.snapshot("Lead")
        if lead.get("ConvertedContactId")
    )
    contacts = sorted(sandbox.hubspot.snapshot(), key=lambda c: int(c["id"]))
    for contact in rng.sample(contacts, min(40, len(contacts) // 2)):
        lead = rng.choice(leads)
        lead_id = lead["Id"]
        reference = rng.choice(
            [lead_id[:15], f"  {lead_id[:15]} ", f"{lead_id}\t", "", "   ", "12345", "0" * 15]
        )
        properties: dict[str, str | None] = {"salesforceleadid": reference}
        if converted and rng.random() < 0.5:
            named = rng.choice(converted)
            properties["salesforcecontactid"] = rng.choice([named[:15], f" {named} ", "  "])
        if lead.get("Email") and rng.random() < 0.5:
            email = str(lead["Email"])
            properties["email"] = rng.choice([email.upper(), f"  {email} ", email.title()])
        sandbox.hubspot.set_activity(int(contact["id"]), properties)
    for lead in rng.sample(leads, min(15, len(leads) // 2)):
        if lead.get("Email"):
            sandbox.salesforce.update_record("Lead", lead["Id"], {"Email": lead["Email"].upper()})


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[tuple[Sandbox, Config], tuple[Sandbox, Config]]]:
    with Sandbox(SETTINGS) as whole, Sandbox(SETTINGS) as sliced:
        yield (
            (whole, set_up_sandbox_config(whole, tmp_path / "whole")),
            (sliced, set_up_sandbox_config(sliced, tmp_path / "sliced")),
        )


def people(config: Config) -> list[tuple[tuple[str, str], ...]]:
    """Each lead as the CRM records it holds that leadsync did not create (a handoff's)."""
    leads = store_state(config)["leads"]
    return sorted(
        tuple(record for record in records if not record[1].startswith("handoff:"))
        for records in leads
    )


def test_a_sync_in_slices_of_two_over_odd_identity_fields_makes_the_leads_one_slice_does(
    twins: tuple[tuple[Sandbox, Config], tuple[Sandbox, Config]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (whole, whole_config), (sliced, sliced_config) = twins
    slices = count_slices(monkeypatch)
    # A first sync.
    odd_edits(whole, 1)
    odd_edits(sliced, 1)
    sync(whole_config, FIRST_RUN, slice_size=100_000)
    slices.clear()
    sync(sliced_config, FIRST_RUN, slice_size=2)
    assert len(slices) > 20
    # Each person's records in one lead, as one slice makes them. (Not the leads' values, nor
    # what lands in HubSpot: the edits are stamped by the sandbox's wall clock, leadsync's is
    # held, so many writes are conflicts and which ones, and so some values, depends on timing.)
    assert people(sliced_config) == people(whole_config)
    # More odd edits over the leads it made: each person's records in one lead either way
    # (which records a handoff picks may differ with the order the slices settle in).
    odd_edits(whole, 2)
    odd_edits(sliced, 2)
    sync(whole_config, PAST_DUE, slice_size=100_000)
    slices.clear()
    sync(sliced_config, PAST_DUE, slice_size=2)
    assert len(slices) > 20
    assert people(sliced_config) == people(whole_config)


def test_grouping_by_identity_fields_alone_groups_as_whole_snapshots_do(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Over a store holding the leads a first sync made of odd records, every stored record
    # grouped again as though pending.
    config = set_up_sandbox_config(sandbox, tmp_path)
    odd_edits(sandbox, 1)
    sync(config, FIRST_RUN, slice_size=100_000)
    with open_runtime(config, connect=False) as runtime:
        store = runtime.store
        with store.engine.connect() as connection:
            rows = connection.execute(
                sa.select(tables.snapshots.c.crm, tables.snapshots.c.record_id)
            )
            pending: dict[str, list[str]] = {}
            for crm, record_id in rows:
                pending.setdefault(crm, []).append(record_id)
        grouping = PendingGrouping(store, identity_field=runtime.field_map.identity_field)

        def grouped() -> list[tuple[dict[str, list[str]], list[str]]]:
            groups: PersonGroups = grouping.grouped({k: list(v) for k, v in pending.items()}, [])
            return [(part.records, part.leads) for part in groups.slices(1)]

        light = grouped()

        def whole(crm: str, record_ids: list[str], **_: object) -> list[Snapshot]:
            return list(store.snapshots(crm, record_ids).values())

        monkeypatch.setattr(store, "identity_snapshots", whole)
        assert grouped() == light
    assert sum(len(ids) for ids in pending.values()) > 100
    assert len(light) < sum(len(ids) for ids in pending.values())  # some groups hold two
