"""A person HubSpot holds past the lead's stage is not handed off: the block's edges (a stage
leadsync itself wrote, one a person set past leadsync's own, cleared again; the plan alike),
in an org holding only what each test makes (see tests/sync/test_attack_odd_org.py)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from leadsync.config import Config
from leadsync.sandbox import Sandbox, SandboxSettings
from tests.sync.test_attack_odd_org import EMPTY, engaged_contact, hubspot_contact, salesforce_lead
from tests.sync.test_first_contact import ENGINE_DECIDES, NOW, bare_config, cycle, set_up


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return EMPTY


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path, database_url: str) -> Config:
    return set_up(bare_config(sandbox, tmp_path, database_url))


def _stage(sandbox: Sandbox, contact: str) -> str | None:
    held = sandbox.hubspot.contact(int(contact))
    assert held is not None
    return held.value("lifecyclestage")


def _lead_emails(sandbox: Sandbox) -> set[str]:
    return {str(lead["Email"]) for lead in sandbox.salesforce.snapshot("Lead")}


@ENGINE_DECIDES
def test_a_lead_leadsync_itself_parked_at_other_is_handed_off_once_it_requalifies(
    sandbox: Sandbox, config: Config
) -> None:
    contact = engaged_contact(sandbox, "back@example.com", "lead")
    sandbox.hubspot.set_activity(int(contact), {"hs_lead_status": "UNQUALIFIED"})
    cycle(config)
    # Disqualified: leadsync wrote HubSpot's `other` itself, and handed nobody off.
    assert _stage(sandbox, contact) == "other"
    assert "back@example.com" not in _lead_emails(sandbox)
    cycle(config, now=NOW + timedelta(minutes=10))
    # Sales reopened the person: requalified, an MQL again; the `other` is leadsync's own.
    sandbox.hubspot.set_activity(int(contact), {"hs_lead_status": "OPEN"})
    summary = cycle(config, now=NOW + timedelta(hours=1))
    assert summary.handoff is not None
    assert "back@example.com" in _lead_emails(sandbox), summary.handoff
    assert _stage(sandbox, contact) == ("marketingqualifiedlead")


@ENGINE_DECIDES
def test_a_stage_a_person_set_past_leadsyncs_own_write_blocks_the_handoff_until_cleared(
    sandbox: Sandbox, config: Config
) -> None:
    # No company yet: an MQL leadsync cannot hand off; it writes HubSpot's MQL itself.
    contact = engaged_contact(sandbox, "moved@example.com", "lead")
    sandbox.hubspot.set_activity(int(contact), {"company": None})
    cycle(config)
    assert _stage(sandbox, contact) == ("marketingqualifiedlead")
    assert "moved@example.com" not in _lead_emails(sandbox)
    # Marketing parks the person, then the company comes in: still nobody's to accept.
    sandbox.hubspot.set_activity(int(contact), {"lifecyclestage": "other", "company": "Acme"})
    planned = cycle(config, now=NOW + timedelta(minutes=10), write=False)
    summary = cycle(config, now=NOW + timedelta(minutes=10))
    assert "moved@example.com" not in _lead_emails(sandbox)
    assert _stage(sandbox, contact) == "other"
    assert planned.handoff_plan is not None
    assert summary.handoff is not None
    assert planned.handoff_plan.handed_off == summary.handoff.handed_off == 0
    assert list(planned.handoff_plan.problems) == list(summary.handoff.problems)
    assert list(summary.handoff.problems) == [
        "hubspot holds the person past mql (lifecyclestage other)"
    ]
    # The person clears the stage: the block lifts.
    sandbox.hubspot.set_activity(int(contact), {"lifecyclestage": None})
    cycle(config, now=NOW + timedelta(minutes=20))
    assert "moved@example.com" in _lead_emails(sandbox)


# ------------------------------------------- a person's clear after the first sync still wins


@ENGINE_DECIDES
@pytest.mark.parametrize("cleared_in", ["hubspot", "salesforce"])
def test_a_phone_a_person_clears_after_the_first_sync_is_cleared_in_the_other_crm(
    sandbox: Sandbox, config: Config, cleared_in: str
) -> None:
    # Only Salesforce had the phone; the first sync gave it to HubSpot (a blank read for the
    # first time has no change time). `phone` is most_recent: a person's clear wins.
    lead = salesforce_lead(
        sandbox,
        {"Email": "clear@example.com", "LastName": "Byron", "Company": "Acme", "Phone": "0100"},
    )
    contact = hubspot_contact(
        sandbox, {"email": "clear@example.com", "lastname": "Byron", "company": "Acme"}
    )
    cycle(config)
    held = sandbox.hubspot.contact(int(contact))
    assert held is not None
    assert held.value("phone") == "0100"
    cycle(config, now=NOW + timedelta(minutes=10))
    time.sleep(1.1)  # Salesforce stamps to the second
    if cleared_in == "hubspot":
        sandbox.hubspot.set_activity(int(contact), {"phone": None})
    else:
        sandbox.salesforce.update_record("Lead", lead, {"Phone": None})
    cycle(config, now=NOW + timedelta(minutes=20))
    cycle(config, now=NOW + timedelta(minutes=30))
    held = sandbox.hubspot.contact(int(contact))
    assert held is not None
    assert not held.value("phone")
    record = sandbox.salesforce.record("Lead", lead)
    assert record is not None
    assert not record.get("Phone")


# ---------------------------------------- a first sync writes every field one CRM lacks


SALESFORCE_HOLDS = {
    "FirstName": "Ada",
    "Company": "Acme",
    "Title": "CTO",
    "Phone": "0100",
    "Website": "https://acme.example",
    "Country": "United States",
    "Industry": "Computer Software",
    "NumberOfEmployees": 1200,
    "AnnualRevenue": 5000000,
}
HUBSPOT_GETS = {
    "firstname": "Ada",
    "company": "Acme",
    "jobtitle": "CTO",
    "phone": "0100",
    "website": "https://acme.example",
    "country": "United States",
}


@ENGINE_DECIDES
@pytest.mark.parametrize("first", ["hubspot", "salesforce"])
def test_a_first_sync_gives_a_bare_hubspot_contact_every_field_salesforce_holds(
    sandbox: Sandbox, config: Config, first: str
) -> None:
    # The contact's properties are all null (HubSpot answers them null, not absent).
    def make_contact() -> str:
        return hubspot_contact(sandbox, {"email": "full@example.com", "lastname": "Byron"})

    def make_lead() -> str:
        return salesforce_lead(
            sandbox, {"Email": "full@example.com", "LastName": "Byron", **SALESFORCE_HOLDS}
        )

    if first == "hubspot":
        contact = make_contact()
        time.sleep(1.1)
        make_lead()
    else:
        make_lead()
        time.sleep(1.1)
        contact = make_contact()
    cycle(config)
    held = sandbox.hubspot.contact(int(contact))
    assert held is not None
    assert {name: held.value(name) for name in HUBSPOT_GETS} == HUBSPOT_GETS
    assert held.value("industry")
    assert held.value("numemployees")
    assert held.value("annualrevenue")
    assert held.value("leadsync_score") is not None
    assert held.value("lifecyclestage")


@ENGINE_DECIDES
def test_a_first_sync_gives_a_bare_salesforce_lead_every_field_hubspot_holds(
    sandbox: Sandbox, config: Config
) -> None:
    lead = salesforce_lead(
        sandbox, {"Email": "full@example.com", "LastName": "Byron", "Company": "Acme"}
    )
    time.sleep(1.1)
    hubspot_contact(
        sandbox,
        {
            "email": "full@example.com",
            "lastname": "Byron",
            "firstname": "Ada",
            "jobtitle": "CTO",
            "phone": "0100",
            "website": "https://acme.example",
            "country": "United States",
        },
    )
    cycle(config)
    record = sandbox.salesforce.record("Lead", lead)
    assert record is not None
    assert {
        name: record.get(name) for name in ("FirstName", "Title", "Phone", "Website", "Country")
    } == {
        "FirstName": "Ada",
        "Title": "CTO",
        "Phone": "0100",
        "Website": "https://acme.example",
        "Country": "US",  # through the mapping's value map
    }
    assert record.get("Leadsync_Score__c") is not None
    assert record.get("Leadsync_Stage__c")
