"""Attack probes on the day's changes (newly mapped fields, the held-past handoff block, the
first blank's change time, run counts, slices in email order). Each test here failed before
its fix, or is a strict xfail naming the bug it shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leadsync.config import Config
from leadsync.connectors.base import Connector
from leadsync.sandbox import Sandbox, SandboxSettings
from leadsync.sync.run_summary import CrmCounts
from tests.support import set_up_sandbox_config
from tests.sync.test_engine import OPEN_LIMITS, _EditsAfterPull, _linked_pair, cycle


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
