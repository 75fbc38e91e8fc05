"""Converted people and their opportunities, against the sandbox: a converted lead is frozen,
so its person's results go to the Contact it became, and its Opportunity's moves move the
person's stage on the next sync (issue 18's "done when")."""

# The fixtures imported from test_engine are named as the tests' parameters.
# ruff: noqa: F811

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from leadsync.cli import main
from leadsync.config import Config
from leadsync.runtime import open_runtime
from leadsync.sandbox import Sandbox
from leadsync.sync.run_summary import RunSummary
from tests.support import search_caught_up

# The engine tests' sandbox (seed 21, 150 leads a CRM) and config, as fixtures.
from tests.sync.test_engine import config, cycle, sandbox_settings, write_calls  # noqa: F401

STAGE = "Leadsync_Stage__c"
CONVERTED = "cannot_update_converted_lead"


def _linked(sandbox: Sandbox, config: Config, *, converted: bool) -> tuple[str, str, str]:
    """(leadsync lead id, HubSpot contact id, Salesforce lead id) of a person in both CRMs
    whose Salesforce lead is (or is not) converted."""
    with open_runtime(config, connect=False) as runtime:
        for lead in sandbox.salesforce.snapshot("Lead"):
            if bool(lead["IsConverted"]) != converted or not lead["Email"]:
                continue
            lead_id = runtime.store.lead_ids_for("salesforce", [lead["Id"]]).get(lead["Id"])
            if lead_id is None:
                continue
            records = runtime.store.records_of([lead_id])[lead_id]
            hubspot = [r.record_id for r in records if r.crm == "hubspot" and not r.deleted]
            if len(hubspot) == 1:
                return lead_id, hubspot[0], lead["Id"]
    raise AssertionError("no such person in the seeded data")


def _lead(config: Config, lead_id: str) -> Any:
    with open_runtime(config, connect=False) as runtime:
        return runtime.store.leads([lead_id])[lead_id]


def _contact(sandbox: Sandbox, lead_record: str) -> dict[str, Any]:
    lead = sandbox.salesforce.record("Lead", lead_record)
    assert lead is not None
    contact = sandbox.salesforce.record("Contact", lead["ConvertedContactId"])
    assert contact is not None
    return contact


def _move(sandbox: Sandbox, opportunity_id: str, stage: str) -> None:
    with sandbox.salesforce.lock:
        outcome = sandbox.salesforce.update_record(
            "Opportunity", opportunity_id, {"StageName": stage}
        )
    assert outcome.success


def _converted_failures(summary: RunSummary) -> int:
    return sum(
        cause.count
        for counts in summary.crms.values()
        for category, cause in counts.failures.items()
        if category == CONVERTED
    )


def test_a_lead_converted_then_won_reaches_customer_with_its_contact_holding_its_values(
    sandbox: Sandbox, config: Config
) -> None:
    cycle(config)
    search_caught_up(config)
    lead_id, _, lead_record = _linked(sandbox, config, converted=False)
    converted = sandbox.salesforce.convert_lead(
        lead_record, opportunity_stage="Prospecting", amount=30_000
    )

    after_conversion = cycle(config)
    assert _converted_failures(after_conversion) == 0
    person = _lead(config, lead_id)
    assert person.stage == "opportunity"
    contact = _contact(sandbox, lead_record)
    assert contact["Leadsync_Score__c"] == person.score
    assert contact["Leadsync_Grade__c"] == person.grade
    assert contact[STAGE] == "Opportunity"

    _move(sandbox, converted["ConvertedOpportunityId"], "Closed Won")
    won = cycle(config)
    assert _converted_failures(won) == 0
    assert _lead(config, lead_id).stage == "customer"
    assert _contact(sandbox, lead_record)[STAGE] == "Customer"
    # The frozen lead was left alone throughout.
    assert sandbox.salesforce.record("Lead", lead_record)[STAGE] == converted[STAGE]  # type: ignore[index]

    search_caught_up(config)
    cycle(config)  # takes in the echoes of the last writes
    search_caught_up(config)
    sandbox.stats.clear()
    quiet = cycle(config)
    assert write_calls(sandbox) == 0
    assert sum(c.written for c in quiet.crms.values()) == 0


def test_a_closed_lost_opportunity_recycles_the_person(sandbox: Sandbox, config: Config) -> None:
    cycle(config)
    search_caught_up(config)
    lead_id, _, lead_record = _linked(sandbox, config, converted=False)
    converted = sandbox.salesforce.convert_lead(lead_record, opportunity_stage="Qualification")
    cycle(config)
    assert _lead(config, lead_id).stage == "opportunity"
    _move(sandbox, converted["ConvertedOpportunityId"], "Closed Lost")
    cycle(config)
    assert _lead(config, lead_id).stage == "recycled"
    assert _contact(sandbox, lead_record)[STAGE] == "Recycled"


def test_an_engagement_edit_in_hubspot_reaches_the_contact(
    sandbox: Sandbox, config: Config
) -> None:
    first = cycle(config)
    assert _converted_failures(first) == 0
    search_caught_up(config)
    lead_id, contact_id, lead_record = _linked(sandbox, config, converted=True)
    before = _lead(config, lead_id)
    assert _contact(sandbox, lead_record)["Leadsync_Engagement_Score__c"] == before.engagement

    # A visit today: the engagement no longer decays (and more webinars, in case it did not).
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sandbox.hubspot.set_activity(
        int(contact_id), {"hs_analytics_last_visit_timestamp": now, "webinars_attended": "9"}
    )
    search_caught_up(config)
    cycle(config)
    after = _lead(config, lead_id)
    assert after.engagement != before.engagement
    contact = _contact(sandbox, lead_record)
    assert contact["Leadsync_Engagement_Score__c"] == after.engagement
    assert contact["Leadsync_Score__c"] == after.score


def test_every_seeded_converted_person_gets_its_contact_written_and_no_frozen_lead_is_tried(
    sandbox: Sandbox, config: Config
) -> None:
    summary = cycle(config)
    assert _converted_failures(summary) == 0
    converted = [lead for lead in sandbox.salesforce.snapshot("Lead") if lead["IsConverted"]]
    assert converted
    with open_runtime(config, connect=False) as runtime:
        linked = runtime.store.lead_ids_for("salesforce", [lead["Id"] for lead in converted])
        people = runtime.store.leads(sorted(set(linked.values())))
    for lead in converted:
        if lead["Id"] not in linked:
            continue  # quarantined (a seeded bad email, say)
        contact = _contact(sandbox, lead["Id"])
        assert contact["Leadsync_Score__c"] == people[linked[lead["Id"]]].score
        assert lead[STAGE] is None  # frozen since before leadsync came
    assert summary.crms["salesforce"].related_pulled > len(converted)


def test_revert_puts_back_what_a_run_wrote_to_contacts(sandbox: Sandbox, config: Config) -> None:
    first = cycle(config)
    converted = [lead for lead in sandbox.salesforce.snapshot("Lead") if lead["IsConverted"]]
    written = [
        lead["Id"]
        for lead in converted
        if _contact(sandbox, lead["Id"]).get("Leadsync_Score__c") is not None
    ]
    assert written
    assert config.path is not None
    assert main(["revert", first.run_id, "--config", str(config.path)]) == 0
    for lead_record in written:
        assert _contact(sandbox, lead_record).get("Leadsync_Score__c") is None
