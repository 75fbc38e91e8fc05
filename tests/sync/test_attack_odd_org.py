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
