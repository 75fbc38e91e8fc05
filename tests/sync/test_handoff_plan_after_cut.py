"""Attack probes: `leadsync plan` after a run cut mid-handoff previews what the next sync does;
after the handoff it previews nothing, and the next sync stays quiet."""

# ruff: noqa: F811

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from leadsync.sandbox import Sandbox
from leadsync.sync.handoff import RESUMED_PICK
from leadsync.sync.handoff_ledger import PENDING
from tests.support import Cut, Tripwire, caught_up_runs, search_caught_up
from tests.sync.test_contacts_without_lead import _contact, _handed_off_email, write_calls
from tests.sync.test_handoff import (  # noqa: F401
    SETTINGS,
    config_for,
    handoffs,
    reference,
    sync,
)
from tests.sync.test_handoff_plan import plan


@pytest.mark.parametrize("at", [3, 4, 5, 7])
def test_a_plan_after_a_cut_handoff_counts_the_handoffs_the_next_sync_finishes(
    reference: tuple[dict[str, Any], int], tmp_path: Path, at: int
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        with pytest.raises(Cut):
            sync(config, Tripwire(at, False, armed=False))
        pending = {h.lead_id: h.owner for h in handoffs(config) if h.status == PENDING}
        preview = plan(config).handoff_plan
        done = sync(config)
        after = handoffs(config)
        made = {h.lead_id: h.owner for h in after if h.run_id == done.run_id}
        owners = {h.lead_id: h.owner for h in after}
    assert preview is not None
    assert done.handoff is not None
    assert preview.handed_off == done.handoff.handed_off + done.handoff.matched
    # The owners previewed are those the sync gives; those cut off keep the owner they had.
    previewed: Counter[str | None] = Counter()
    for (_, owner), n in preview.owners.items():
        previewed[owner] += n
    assert previewed == Counter(made.values())
    assert {lead: owners[lead] for lead in pending} == pending
    resumed = sum(n for (route, _), n in preview.owners.items() if route == RESUMED_PICK)
    assert resumed == len(pending.keys() & made.keys())


def test_a_plan_after_the_handoff_previews_nothing_and_the_next_sync_stays_quiet(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    with Sandbox(SETTINGS) as sandbox:
        _contact(sandbox, _handed_off_email(expected))
        config = config_for(sandbox, tmp_path)
        caught_up_runs(config, sync)
        search_caught_up(config)
        before = handoffs(config)
        preview = plan(config).handoff_plan
        assert preview is not None
        assert handoffs(config) == before
        sandbox.stats.clear()
        quiet = sync(config)
        assert preview.handed_off == 0
        assert write_calls(sandbox) == 0
        assert quiet.handoff is None or quiet.handoff.handed_off == 0
