"""A handoff cut off before its create keeps the owner it was given (test_engine_crash), but
only while the routing rules could still give that owner: a definition changed meanwhile to
the CRM's own assignment, or that took the owner out of every team (they left), routes the
lead again, as a handoff not yet begun would be."""

from __future__ import annotations

from pathlib import Path

from leadsync.config import Config
from leadsync.sandbox import Sandbox
from leadsync.sandbox_config import EXAMPLES
from leadsync.sync.handoff_ledger import CREATED
from tests.sync.test_handoff import (
    SETTINGS,
    config_for,
    handed_off_leads,
    handoffs,
    sync,
)
from tests.sync.test_handoff_resumed_due import _cut_at_the_create

SHIPPED = (EXAMPLES / "lead_definition.toml").read_text()
# A member of the shipped north_america team, who leaves between the cut and the rerun.
LEAVER = "0055g0000000006AAA"


def _cut_before_the_create(config: Config) -> dict[str, str | None]:
    """A run cut at its create, its handoffs saved pending: their owners, by lead."""
    return {lead: h.owner for lead, h in _cut_at_the_create(config, after=False).items()}


def test_switched_to_the_crms_assignment_the_resumed_handoff_records_the_owner_it_picked(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path, SHIPPED)
        given = _cut_before_the_create(config)
        assert given
        assert all(given.values())
        crm_assigns = SHIPPED.replace('assignment = "rules"', 'assignment = "salesforce"')
        (tmp_path / "lead_definition.toml").write_text(crm_assigns)
        sync(config)
        owners = {lead["Leadsync_Id__c"]: lead["OwnerId"] for lead in handed_off_leads(sandbox)}
        recorded = {h.lead_id: h.owner for h in handoffs(config) if h.status == CREATED}
    # The org's rule picked them (the sandbox's rule gives some another owner than the routes
    # did): the store says who holds each, not who the routes had picked.
    assert any(owners[lead] != owner for lead, owner in given.items())
    assert {lead: recorded[lead] for lead in given} == {lead: owners[lead] for lead in given}


def test_an_owner_who_left_the_teams_meanwhile_is_not_kept_the_lead_goes_to_another(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path, SHIPPED)
        given = _cut_before_the_create(config)
        theirs = [lead for lead, owner in given.items() if owner == LEAVER]
        assert theirs
        # They left: deactivated in Salesforce, out of their team.
        sandbox.salesforce.system_update("User", LEAVER, {"IsActive": False})
        without = SHIPPED.replace(f', "{LEAVER}"', "")
        assert LEAVER not in without
        (tmp_path / "lead_definition.toml").write_text(without)
        summary = sync(config)
        owners = {lead["Leadsync_Id__c"]: lead["OwnerId"] for lead in handed_off_leads(sandbox)}
        after = {h.lead_id: (h.status, h.owner) for h in handoffs(config)}
    assert summary.handoff is not None
    assert summary.handoff.failed == 0
    assert all(after[lead] == (CREATED, owners[lead]) for lead in theirs)
    assert LEAVER not in {owners[lead] for lead in theirs}
    # The others keep the owner they were given.
    assert {lead: owners[lead] for lead in given if lead not in theirs} == {
        lead: owner for lead, owner in given.items() if lead not in theirs
    }
