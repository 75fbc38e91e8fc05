"""API economy of a first sync: the write calls its plan says, and no more."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadsync.config import Config
from leadsync.runtime import open_runtime
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from tests.support import set_up_sandbox_config


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    # Enough contacts for several write batches, some holding lifecycle stages moved back.
    return SandboxSettings(
        port=0,
        seed=13,
        leads=900,
        hubspot=HubSpotSettings(ten_second_limit=100_000, searches_per_second=1_000),
    )


def test_a_first_sync_writes_in_as_few_calls_as_its_plan_says(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config: Config = set_up_sandbox_config(sandbox, tmp_path)
    sandbox.stats.clear()
    with open_runtime(config) as runtime:
        first = runtime.engine().run()
    assert first.plan is not None
    planned = first.plan.calls
    endpoints = sandbox.stats.as_dict()["endpoints"]
    hubspot_batches = -(-first.crms["hubspot"].records_to_update // 100)
    # Lifecycle stages moved back (by a recycle or disqualify rule) need a clear first:
    # grouped into batches of their own they cost a clear per 100 moves (one batch may mix
    # both), not one per batch holding one.
    assert "lifecycle clear" in planned["hubspot"].how
    assert planned["hubspot"].calls >= hubspot_batches + 1
    # The handoff's own calls come on top of the plan: an upsert per 200 leads handed off,
    # and a batch per 100 ids written back to HubSpot.
    assert first.handoff is not None
    links = -(-first.handoff.linked // 100)
    assert endpoints["hubspot.contacts.batch_update"] <= planned["hubspot"].calls + 1 + links
    assert endpoints["salesforce.collection_update"] == planned["salesforce"].calls
    assert endpoints["salesforce.collection_upsert"] == -(-first.handoff.handed_off // 200)
