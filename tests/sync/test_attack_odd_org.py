"""Attack probes: first contact with orgs shaped unlike the seed, built record by record
through the sandbox's HubSpot API and its Salesforce store, then synced three times and once
more the day after. Nothing a CRM held may be left worse; the runs after the first write
nothing.

Each test here failed before its fix; what held is listed in the branch's report."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from leadsync.config import Config
from leadsync.sandbox import Sandbox, SandboxSettings
from tests.sync.test_first_contact import (
    ENGINE_DECIDES,
    NOW,
    SETTINGS,
    bare_config,
    cycle,
    set_up,
    write_calls,
)

# An org with nothing in it but what each test makes.
EMPTY = replace(SETTINGS, leads=0)
# Salesforce keeps its stamps to the second: a record made this long after another is later.
A_SECOND_LATER = 1.1


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return EMPTY


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path, database_url: str) -> Config:
    return set_up(bare_config(sandbox, tmp_path, database_url))


def hubspot_contact(sandbox: Sandbox, properties: dict[str, str]) -> str:
    """A contact made as a form or an import makes it, through HubSpot's API."""
    answer = requests.post(
        f"{sandbox.url}/crm/v3/objects/contacts",
        headers={"Authorization": "Bearer sandbox-token"},
        json={"properties": properties},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def salesforce_lead(sandbox: Sandbox, fields: dict[str, Any]) -> str:
    made = sandbox.salesforce.create_record("Lead", fields)
    assert made.record_id is not None, made.errors
    return made.record_id


def quiet_after(sandbox: Sandbox, config: Config) -> None:
    """Two more runs minutes apart, then one the day after: none writes anything."""
    for later in (timedelta(minutes=10), timedelta(minutes=20), timedelta(days=1)):
        sandbox.stats.clear()
        summary = cycle(config, now=NOW + later)
        assert write_calls(sandbox) == 0, (later, summary.crms)


# ------------------------------------------------------- a value only one CRM holds is kept


@ENGINE_DECIDES
def test_a_first_sync_keeps_a_phone_salesforce_holds_when_the_newer_hubspot_contact_has_none(
    sandbox: Sandbox, config: Config
) -> None:
    # Sales typed the phone in long ago; marketing's contact of the person, touched since
    # (HubSpot stamps a contact on every page view), never had one. `phone` is most_recent.
    lead = salesforce_lead(
        sandbox,
        {"Email": "ada@example.com", "LastName": "Byron", "Company": "Acme", "Phone": "(555) 0100"},
    )
    time.sleep(A_SECOND_LATER)
    contact = hubspot_contact(
        sandbox, {"email": "ada@example.com", "lastname": "Byron", "company": "Acme"}
    )
    cycle(config)
    # Nobody cleared the phone: a blank no person is known to have set is no edit.
    assert sandbox.salesforce.record("Lead", lead)["Phone"] == "(555) 0100"
    assert sandbox.hubspot.contact(int(contact)).value("phone") == "(555) 0100"
    quiet_after(sandbox, config)


@ENGINE_DECIDES
def test_a_first_sync_keeps_a_phone_hubspot_holds_when_the_newer_salesforce_lead_has_none(
    sandbox: Sandbox, config: Config
) -> None:
    contact = hubspot_contact(
        sandbox,
        {
            "email": "ada@example.com",
            "lastname": "Byron",
            "company": "Acme",
            "phone": "+1 555 0199",
        },
    )
    time.sleep(A_SECOND_LATER)
    # A rep made the lead later, from a business card without a number.
    lead = salesforce_lead(
        sandbox, {"Email": "ada@example.com", "LastName": "Byron", "Company": "Acme"}
    )
    cycle(config)
    assert sandbox.hubspot.contact(int(contact)).value("phone") == "+1 555 0199"
    assert sandbox.salesforce.record("Lead", lead)["Phone"] == "+1 555 0199"
    quiet_after(sandbox, config)


# ------------------------------------------------ a stage HubSpot holds past the handoff's

# What HubSpot's own tracking records of a person who read, clicked and came back a lot, with
# the firmographics of a good fit: leadsync scores them an MQL.
ENGAGED = {
    "hs_analytics_num_page_views": "80",
    "num_conversion_events": "8",
    "hs_email_click": "10",
    "hs_analytics_last_visit_timestamp": "2026-05-31T10:00:00Z",
    "recent_conversion_date": "2026-05-31T10:00:00Z",
}
GOOD_FIT = {
    "company": "Acme",
    "jobtitle": "VP Sales",
    "numemployees": "1000+",
    "country": "United States",
    "industry": "Computer Software",
    "webinars_attended": "3",
    "pricing_page_views": "6",
}


def engaged_contact(sandbox: Sandbox, email: str, stage: str) -> str:
    contact = hubspot_contact(
        sandbox, {"email": email, "lastname": "Parked", "lifecyclestage": stage, **GOOD_FIT}
    )
    # HubSpot's tracking writes these itself; no API caller may.
    sandbox.hubspot.set_activity(int(contact), ENGAGED)
    return contact


def add_lifecycle_stage(sandbox: Sandbox, value: str) -> None:
    """A portal admin adds a lifecycle stage of their own, after the last of HubSpot's."""
    url = f"{sandbox.url}/crm/v3/properties/contacts/lifecyclestage"
    auth = {"Authorization": "Bearer sandbox-token"}
    options = requests.get(url, headers=auth, timeout=10).json()["options"]
    options.append({"label": value.title(), "value": value})
    answer = requests.patch(url, headers=auth, json={"options": options}, timeout=10)
    assert answer.status_code == 200, answer.text


@ENGINE_DECIDES
@pytest.mark.parametrize("stage", ["other", "partner"])
def test_a_person_hubspot_holds_past_sql_at_a_stage_leadsync_has_no_name_for_is_not_handed_off(
    sandbox: Sandbox, config: Config, stage: str
) -> None:
    if stage == "partner":
        add_lifecycle_stage(sandbox, stage)
    parked = engaged_contact(sandbox, "parked@example.com", stage)
    # The control: the same person at HubSpot's `lead` is handed off, so the score suffices.
    engaged_contact(sandbox, "eager@example.com", "lead")
    summary = cycle(config)
    assert summary.handoff is not None
    emails = {str(lead["Email"]) for lead in sandbox.salesforce.snapshot("Lead")}
    assert "eager@example.com" in emails
    # HubSpot keeps its stage (the plan knows it for a later one than mql) ...
    contact = sandbox.hubspot.contact(int(parked))
    assert contact is not None
    assert contact.value("lifecyclestage") == stage
    # ... and sales get no new lead to accept for a person marketing parked past them.
    assert "parked@example.com" not in emails
    assert not contact.value("salesforceleadid")
    for later in (timedelta(minutes=10), timedelta(minutes=20)):
        sandbox.stats.clear()
        summary = cycle(config, now=NOW + later)
        assert write_calls(sandbox) == 0, (later, summary.crms)
    # The day after, the control's unaccepted MQL is in breach (news); the parked person
    # is still nobody's lead to accept, their stage still theirs.
    cycle(config, now=NOW + timedelta(days=1))
    emails = {str(lead["Email"]) for lead in sandbox.salesforce.snapshot("Lead")}
    assert "parked@example.com" not in emails
    assert sandbox.hubspot.contact(int(parked)).value("lifecyclestage") == stage


# -------------------------------------------- one email conflict fails no other contact


@ENGINE_DECIDES
def test_an_email_another_contact_holds_fails_only_the_contact_it_is_written_to(
    sandbox: Sandbox, config: Config
) -> None:
    # HubSpot's own Salesforce integration linked a contact to the lead of the person's old
    # address; a form made a second contact with that address. Salesforce's email wins
    # (prefer_salesforce_unless_blank), so leadsync writes it to the linked contact, and
    # HubSpot refuses: another contact has it (409, for the whole batch).
    lead = salesforce_lead(
        sandbox, {"Email": "ada@example.com", "LastName": "Lovelace", "Company": "Acme"}
    )
    hubspot_contact(sandbox, {"email": "ada@example.com", "lastname": "Lovelace"})
    linked = hubspot_contact(
        sandbox,
        {"email": "ada.lovelace@example.com", "lastname": "Lovelace", "salesforceleadid": lead},
    )
    others = [
        hubspot_contact(sandbox, {"email": f"p{n}@example.com", "lastname": f"P{n}"})
        for n in range(20)
    ]
    summary = cycle(config)
    hubspot = summary.crms["hubspot"]
    # The refusal is that one contact's: its neighbours in the batch land.
    assert (hubspot.failed, hubspot.failures["conflict"].example) == (1, f"record {linked}")
    assert hubspot.written == hubspot.records_to_update - 1
    scored = [c for c in others if sandbox.hubspot.contact(int(c)).value("leadsync_score")]
    assert scored == others
    assert summary.every_write_failed() == {}


# ------------------------------------- one stuck record is not a failed run, day after day


@ENGINE_DECIDES
def test_runs_that_only_retry_one_record_salesforce_refused_are_not_failed_runs(
    sandbox: Sandbox, config: Config
) -> None:
    # Marketing's title is longer than Salesforce's Title holds (128): the lead's write is
    # refused, its neighbours' land, and it waits in quarantine with Salesforce's reason.
    salesforce_lead(sandbox, {"Email": "long@example.com", "LastName": "Long", "Company": "Acme"})
    hubspot_contact(
        sandbox,
        {"email": "long@example.com", "lastname": "Long", "company": "Acme", "jobtitle": "T" * 200},
    )
    for n in range(3):
        salesforce_lead(
            sandbox, {"Email": f"p{n}@example.com", "LastName": f"P{n}", "Company": "Acme"}
        )
    first = cycle(config)
    assert first.crms["salesforce"].failures["string_too_long"].count == 1
    assert first.every_write_failed() == {}
    # Nothing changes in either CRM; later runs try the refused write again now and then.
    for later in (timedelta(minutes=10), timedelta(hours=5), timedelta(days=1)):
        summary = cycle(config, now=NOW + later)
        assert summary.every_write_failed() == {}, (later, summary.crms["salesforce"])
