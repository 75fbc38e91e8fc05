"""Opportunities of Contacts that were never a Lead, tied to them by contact roles
(OpportunityContactRole), against the sandbox: they move the person's stage (opportunity,
customer on Closed Won, recycled on Closed Lost), the primary role first, are noticed on the
next sync when they change, and count in the revenue figures (issue 18)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leadsync.config import Config
from leadsync.reports.data import opportunities
from leadsync.runtime import open_runtime
from leadsync.sandbox import Sandbox
from leadsync.sync.model import Lead
from tests.support import search_caught_up
from tests.sync.test_contacts_without_lead import _contact, _hubspot_only_person, _person
from tests.sync.test_handoff import SETTINGS, config_for, sync
from tests.sync.test_handoff_plan import plan

# HubSpot lifecycle stages before any deal.
LEADS = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", None)


def _deal(sandbox: Sandbox, contact_id: str, stage: str, *, primary: bool = True) -> str:
    """An Opportunity sales open for a Contact, tied to it by a contact role."""
    with sandbox.salesforce.lock:
        made = sandbox.salesforce.create_record(
            "Opportunity",
            {"Name": "Direct deal", "StageName": stage, "CloseDate": "2026-09-30", "Amount": 5000},
        )
        assert made.success
        role = sandbox.salesforce.create_record(
            "OpportunityContactRole",
            {"OpportunityId": made.record_id, "ContactId": contact_id, "IsPrimary": primary},
        )
        assert role.success
    return str(made.record_id)


def _move(sandbox: Sandbox, opportunity_id: str, stage: str) -> None:
    with sandbox.salesforce.lock:
        assert sandbox.salesforce.update_record(
            "Opportunity", opportunity_id, {"StageName": stage}
        ).success


def _synced_person_with_contact(sandbox: Sandbox, tmp_path: Path) -> tuple[Config, Lead, str]:
    """A person only HubSpot held, then a Contact sales created for them (matched by email),
    every change taken in: nothing of theirs is pending."""
    config = config_for(sandbox, tmp_path)
    sync(config)
    search_caught_up(config)
    sync(config)
    # Not one HubSpot already calls an opportunity or a customer: that would be evidence of
    # its own, whatever the Contact's deals say.
    # Nor one a recycle or disqualify rule holds (HubSpot's Bad Timing, say): it stays there
    # whatever its deals do, and which person that is varies with the seed's clock.
    person = _hubspot_only_person(
        config,
        lambda lead: (
            lead.values.get("hubspot_lifecycle") in LEADS
            and lead.stage not in ("recycled", "disqualified")
        ),
    )
    contact_id = _contact(sandbox, str(person.values["email"]).strip().lower())
    sync(config)
    search_caught_up(config)
    sync(config)
    assert person.stage not in ("opportunity", "customer")
    return config, person, contact_id


def _stage(sandbox: Sandbox, config: Config, person: Lead, contact_id: str) -> tuple[Any, Any]:
    contact = sandbox.salesforce.record("Contact", contact_id)
    assert contact is not None
    email = str(person.values["email"]).strip().lower()
    return _person(config, email).stage, contact["Leadsync_Stage__c"]


def test_a_contacts_opportunity_moves_its_person_to_opportunity_then_customer(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config, person, contact_id = _synced_person_with_contact(sandbox, tmp_path)
        deal = _deal(sandbox, contact_id, "Prospecting")
        sync(config)
        assert _stage(sandbox, config, person, contact_id) == ("opportunity", "Opportunity")

        _move(sandbox, deal, "Closed Won")
        sync(config)
        assert _stage(sandbox, config, person, contact_id) == ("customer", "Customer")
        with open_runtime(config, connect=False) as runtime:
            facts = opportunities(runtime.store)[person.lead_id]
        assert (facts.won, facts.closed, facts.amount) == (True, True, 5000.0)


def test_a_contacts_opportunity_closed_lost_recycles_its_person(tmp_path: Path) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config, person, contact_id = _synced_person_with_contact(sandbox, tmp_path)
        deal = _deal(sandbox, contact_id, "Negotiation/Review")
        sync(config)
        assert _stage(sandbox, config, person, contact_id)[0] == "opportunity"
        _move(sandbox, deal, "Closed Lost")
        sync(config)
        assert _stage(sandbox, config, person, contact_id) == ("recycled", "Recycled")


def test_the_primary_role_counts_before_another_role_of_the_contact(tmp_path: Path) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config, person, contact_id = _synced_person_with_contact(sandbox, tmp_path)
        _deal(sandbox, contact_id, "Prospecting", primary=True)
        won_elsewhere = _deal(sandbox, contact_id, "Closed Won", primary=False)
        sync(config)
        assert _stage(sandbox, config, person, contact_id)[0] == "opportunity"
        with open_runtime(config, connect=False) as runtime:
            assert opportunities(runtime.store)[person.lead_id].won is False

        # Made primary on its deal (a role of its own): now that deal counts.
        with sandbox.salesforce.lock:
            (role,) = [
                r
                for r in sandbox.salesforce.snapshot("OpportunityContactRole")
                if r["OpportunityId"] == won_elsewhere
            ]
            assert sandbox.salesforce.update_record(
                "OpportunityContactRole", role["Id"], {"IsPrimary": True}
            ).success
        sync(config)
        assert _stage(sandbox, config, person, contact_id)[0] == "customer"


def test_a_what_if_from_the_store_alone_reads_the_contacts_opportunity(tmp_path: Path) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config, person, contact_id = _synced_person_with_contact(sandbox, tmp_path)
        deal = _deal(sandbox, contact_id, "Prospecting")
        sync(config)
        _move(sandbox, deal, "Closed Won")
        plan(config)  # pulls the move into the store, decides nothing
        with open_runtime(config, connect=False) as runtime:
            (found,) = runtime.engine().reevaluate([person.lead_id])
        assert found.before is not None
        assert found.before.stage == "opportunity"
        assert (found.after.stage, found.after.values["opportunity_stage"]) == (
            "customer",
            "Closed Won",
        )


def test_a_deleted_role_takes_its_opportunity_away_from_the_person(tmp_path: Path) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config, person, contact_id = _synced_person_with_contact(sandbox, tmp_path)
        deal = _deal(sandbox, contact_id, "Prospecting")
        sync(config)
        with sandbox.salesforce.lock:
            (role,) = [
                r
                for r in sandbox.salesforce.snapshot("OpportunityContactRole")
                if r["OpportunityId"] == deal
            ]
            assert sandbox.salesforce.delete_record("OpportunityContactRole", role["Id"]).success
        sync(config)
        with open_runtime(config, connect=False) as runtime:
            lead = runtime.store.leads([person.lead_id])[person.lead_id]
            assert person.lead_id not in opportunities(runtime.store)
        assert lead.values.get("opportunity_stage") is None
        # A stage moves back only by a recycle or disqualify rule: it stays.
        assert lead.stage == "opportunity"
