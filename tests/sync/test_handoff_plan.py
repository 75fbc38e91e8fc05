"""`leadsync plan` previews the handoff over the sandbox: how many leads would be handed off,
to which route and owner, and the calls it would cost, creating and recording nothing; the
sync that follows hands off exactly those."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from leadsync.cli.sync import format_summary
from leadsync.runtime import open_runtime
from leadsync.sandbox import Sandbox
from leadsync.sandbox_config import EXAMPLES
from leadsync.sync.handoff import HandoffPreview
from leadsync.sync.handoff_ledger import CREATED
from leadsync.sync.routing import CRM_ASSIGNS
from leadsync.sync.run_summary import RunSummary
from tests.sync.test_handoff import NOW, SETTINGS, config_for, handed_off_leads, handoffs, sync


def plan(config: object) -> RunSummary:
    with open_runtime(config) as runtime:  # type: ignore[arg-type]
        return runtime.engine(clock=lambda: NOW).run(write=False)


def test_a_plan_creates_nothing_and_counts_what_the_next_sync_hands_off(tmp_path: Path) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        leads_before = len(sandbox.salesforce.snapshot("Lead"))
        sandbox.stats.clear()
        planned = plan(config)
        endpoints = sandbox.stats.as_dict()["endpoints"]
        preview = planned.handoff_plan
        assert preview is not None
        assert preview.handed_off > 5
        # Nothing made, nothing recorded, no handoff call.
        assert len(sandbox.salesforce.snapshot("Lead")) == leads_before
        assert handed_off_leads(sandbox) == []
        assert handoffs(config) == []
        assert endpoints.get("salesforce.collection_upsert", 0) == 0
        assert endpoints.get("hubspot.contacts.batch_update", 0) == 0

        sandbox.stats.clear()
        done = sync(config)
        endpoints = sandbox.stats.as_dict()["endpoints"]
        assert done.handoff is not None
        assert done.handoff.handed_off + done.handoff.matched == preview.handed_off
        assert done.handoff.blocked == preview.blocked
        created = [h for h in handoffs(config) if h.status == CREATED]
        assert Counter(h.owner for h in created) == Counter(
            {owner: n for (_, owner), n in preview.owners.items()}
        )
        assert preview.target_calls["upsert"] == endpoints["salesforce.collection_upsert"] == 1
        # Two objects (contacts, open leads) asked once each: fewer than 200 emails.
        assert preview.target_calls["find people"] == 2
        # The owners' names: users, then the queue the fallback names.
        assert preview.target_calls["owner names"] == 2
        assert preview.link_calls == {"hubspot": 1}
        assert preview.calls == 6

    text = format_summary(planned)
    assert (
        f"handoff (plan): {preview.handed_off} would be handed off (or matched to a person the "
        f"CRM holds), {preview.blocked} cannot be handed off; about 6 call(s) (find people 2, "
        f"upsert 1, owner names 2, link back to hubspot 1)"
    ) in text
    (route, owner), count = sorted(preview.owners.items())[0]
    assert f"    {route} -> {owner}: {count}" in text
    assert planned.as_dict()["handoff_plan"]["would_hand_off"] == preview.handed_off


def test_a_plan_names_the_leads_that_cannot_be_handed_off(tmp_path: Path) -> None:
    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    # No route and no fallback: every lead outside the routes has no owner.
    definition = shipped.replace('fallback_owner = "00G5g0000000001EAA"', "")
    assert definition != shipped
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path, definition)
        preview = plan(config).handoff_plan
        assert preview is not None
        done = sync(config)
    assert done.handoff is not None
    problems = {reason: p.count for reason, p in preview.problems.items()}
    assert problems == {reason: p.count for reason, p in done.handoff.problems.items()}
    assert problems["routing found no owner: no route matches the lead"] > 0
    assert preview.handed_off == done.handoff.handed_off + done.handoff.matched


def test_with_the_orgs_assignment_rules_a_plan_counts_them_as_the_owner(tmp_path: Path) -> None:
    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    definition = shipped.replace('assignment = "rules"', 'assignment = "salesforce"')
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path, definition)
        preview = plan(config).handoff_plan
        assert preview is not None
        done = sync(config)
    assert done.handoff is not None
    assert preview.owners == Counter({(CRM_ASSIGNS, "-"): done.handoff.handed_off})
    # Who the org's rule picks is read back after the upsert, then named (users, queues).
    assert preview.target_calls["owners read"] == 1
    assert preview.target_calls["owner names"] == 2


def test_a_plan_names_the_owners_it_routes_to_where_the_store_knows_them() -> None:
    preview = HandoffPreview(
        owners=Counter({("europe", "005A"): 2, ("europe", "005B"): 1}),
        names={"005A": "Ann Example"},
    )
    assert "  europe -> Ann Example: 2" in preview.lines()
    assert "  europe -> 005B: 1" in preview.lines()
    rows = preview.as_dict()["by_owner"]
    assert [(row["owner"], row["name"]) for row in rows] == [
        ("005A", "Ann Example"),
        ("005B", None),
    ]
