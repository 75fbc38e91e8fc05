"""Salesforce Contacts that were never a Lead (created by sales, imported), against the sandbox:
matched to their person by the HubSpot contact's salesforcecontactid or by email, written the
person's leadsync values, never doubled by a handoff; ambiguity goes to review (issue 18,
item 1)."""

# The fixture imported from test_handoff is named as the tests' parameter.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from leadsync.cli import main
from leadsync.config import Config
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.runtime import open_runtime
from leadsync.sandbox import Sandbox
from leadsync.sandbox_config import EXAMPLES
from leadsync.sync.engine import SyncEngine
from leadsync.sync.handoff_ledger import MATCHED
from leadsync.sync.model import Lead
from leadsync.sync.related import OPPORTUNITY
from leadsync.sync.review import resolve_review, review_item
from tests.cli.conftest import with_definition
from tests.support import search_caught_up, write_calls

# The handoff tests' reference run (which HubSpot-only people a run hands off), sandbox
# settings and run; their fixture is named as the tests' parameter.
from tests.sync.test_handoff import (  # noqa: F401
    NOW,
    SETTINGS,
    config_for,
    handoffs,
    reference,
    sync,
)

WRITTEN = ("Leadsync_Score__c", "Leadsync_Grade__c", "Leadsync_Stage__c")


def _handed_off_email(expected: dict[str, Any], index: int = 0) -> str:
    """The email of a HubSpot-only person the reference run handed off."""
    handed = sorted(k for k in expected["salesforce"] if k.startswith("handoff:"))
    return handed[index].removeprefix("handoff:")


def _contact(sandbox: Sandbox, email: str, last_name: str = "Direct") -> str:
    """A Contact sales created directly: no lead was ever converted into it."""
    with sandbox.salesforce.lock:
        made = sandbox.salesforce.create_record("Contact", {"LastName": last_name, "Email": email})
    assert made.success
    return str(made.record_id)


def _twin_contacts(sandbox: Sandbox, email: str) -> tuple[str, str]:
    """Two Contacts sales created holding one person's email: a conflict for review."""
    return _contact(sandbox, email, "One"), _contact(sandbox, email, "Two")


def _person(config: Config, email: str) -> Lead:
    with open_runtime(config, connect=False) as runtime:
        (lead,) = runtime.store.find_leads(email=email)
        return lead


def _leads_holding(sandbox: Sandbox, email: str) -> list[str]:
    return [
        lead["Id"]
        for lead in sandbox.salesforce.snapshot("Lead")
        if str(lead.get("Email") or "").strip().lower() == email
    ]


def _review(config: Config) -> dict[str, Any]:
    """The open review items of Contacts (the seeded org has duplicate leads in review too)."""
    with open_runtime(config, connect=False) as runtime:
        return {
            item.record_id: item
            for item in runtime.store.reviews.items()
            if item.record_id.startswith("003")
        }


def test_a_person_only_salesforce_holds_as_a_contact_gets_its_values_there_and_no_lead(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    email = _handed_off_email(expected)
    with Sandbox(SETTINGS) as sandbox:
        # Another case than the person's HubSpot email: matched as identity matches, trimmed
        # and lower-cased.
        contact_id = _contact(sandbox, email.upper())
        config = config_for(sandbox, tmp_path)
        summary = sync(config)

        assert _leads_holding(sandbox, email) == []
        person = _person(config, email)
        contact = sandbox.salesforce.record("Contact", contact_id)
        assert contact is not None
        assert contact["Leadsync_Score__c"] == person.score is not None
        assert contact["Leadsync_Grade__c"] == person.grade
        assert contact["Leadsync_Stage__c"] == "MQL"
        matched = [h for h in handoffs(config) if h.lead_id == person.lead_id]
        assert [(h.status, h.record_object, h.record_id) for h in matched] == [
            (MATCHED, "Contact", contact_id)
        ]
        assert summary.handoff is not None
        assert summary.handoff.matched >= 1
        assert contact_id not in _review(config)


def test_after_the_contact_is_written_a_run_on_an_unchanged_org_writes_nothing(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    email = _handed_off_email(expected)
    with Sandbox(SETTINGS) as sandbox:
        contact_id = _contact(sandbox, email)
        config = config_for(sandbox, tmp_path)
        sync(config)
        written = sandbox.salesforce.record("Contact", contact_id)
        assert written is not None
        assert written["Leadsync_Score__c"] is not None
        search_caught_up(config)
        sync(config)  # takes in the echoes of the first run's writes
        search_caught_up(config)
        before = sandbox.salesforce.record("Contact", contact_id)
        sandbox.stats.clear()
        quiet = sync(config)
        assert write_calls(sandbox) == 0
        assert sum(counts.written for counts in quiet.crms.values()) == 0
        assert sandbox.salesforce.record("Contact", contact_id) == before
        assert _leads_holding(sandbox, email) == []


def test_the_hubspot_contacts_salesforcecontactid_matches_a_contact_of_another_email(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    email = _handed_off_email(expected)
    with Sandbox(SETTINGS) as sandbox:
        contact_id = _contact(sandbox, "the.same.person@elsewhere.example")
        (hubspot,) = [
            c
            for c in sandbox.hubspot.snapshot()
            if str(c["properties"].get("email") or "").strip().lower() == email
        ]
        sandbox.hubspot.set_activity(int(hubspot["id"]), {"salesforcecontactid": contact_id})
        sandbox.hubspot.settle_search()  # the run's search sees the edit
        config = config_for(sandbox, tmp_path)
        sync(config)

        person = _person(config, email)
        contact = sandbox.salesforce.record("Contact", contact_id)
        assert contact is not None
        assert contact["Leadsync_Score__c"] == person.score is not None
        assert _leads_holding(sandbox, email) == []


def _sync_without_contacts(config: Config) -> None:
    """A run of a leadsync that did not follow Contacts yet (before an upgrade): the person
    is merged while the store holds none of the org's Contacts."""
    with open_runtime(config) as runtime:
        salesforce = SalesforceConnector(
            replace(config.salesforce_connection(), related_objects=(OPPORTUNITY,))
        )
        connectors: dict[str, Any] = {**runtime.connectors, "salesforce": salesforce}
        SyncEngine(
            runtime.store, connectors, runtime.field_map, runtime.definition, clock=lambda: NOW
        ).run(write=True)


def test_a_contact_the_store_meets_after_the_person_naming_it_is_matched_by_that_name(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        _sync_without_contacts(config)
        person = _hubspot_only_person(config)
        email = str(person.values["email"]).strip().lower()
        contact_id = _contact(sandbox, "the.same.person@elsewhere.example")
        (hubspot,) = [
            c
            for c in sandbox.hubspot.snapshot()
            if str(c["properties"].get("email") or "").strip().lower() == email
        ]
        sandbox.hubspot.set_activity(int(hubspot["id"]), {"salesforcecontactid": contact_id})
        search_caught_up(config)
        _sync_without_contacts(config)  # the person, naming the Contact, merged
        search_caught_up(config)
        # Neither the person nor the Contact changes now: the Contact's first pull alone
        # must bring the person that names it to the merge (its email is another's).
        sync(config)

        contact = sandbox.salesforce.record("Contact", contact_id)
        assert contact is not None
        assert contact.get("Leadsync_Score__c") == _person(config, email).score is not None


def test_two_contacts_holding_the_persons_email_go_to_review_and_neither_is_written(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    email = _handed_off_email(expected)
    with Sandbox(SETTINGS) as sandbox:
        first, second = _twin_contacts(sandbox, email)
        config = config_for(sandbox, tmp_path)
        summary = sync(config)

        person = _person(config, email)
        review = _review(config)
        assert set(review) == {first, second}
        assert all(item.candidates == (person.lead_id,) for item in review.values())
        for contact_id in (first, second):
            contact = sandbox.salesforce.record("Contact", contact_id)
            assert contact is not None
            assert all(contact.get(name) is None for name in WRITTEN)
        # Nor is the person guessed at by a handoff: no lead made, no contact matched.
        assert _leads_holding(sandbox, email) == []
        assert [h.status for h in handoffs(config) if h.lead_id == person.lead_id] == ["blocked"]
        assert summary.handoff is not None
        assert any("in review" in reason for reason in summary.handoff.problems)

        # A second run leaves them in review, still unwritten.
        search_caught_up(config)
        sync(config)
        assert set(_review(config)) == {first, second}
        contact = sandbox.salesforce.record("Contact", first)
        assert contact is not None
        assert contact.get("Leadsync_Score__c") is None


@pytest.mark.parametrize("converted", [False, True], ids=["open lead", "converted lead"])
def test_a_contact_of_a_person_with_a_salesforce_lead_goes_to_review_unwritten(
    converted: bool, tmp_path: Path
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        sync(config)
        with open_runtime(config, connect=False) as runtime:
            linked = [
                lead
                for lead in sandbox.salesforce.snapshot("Lead")
                if bool(lead["IsConverted"]) == converted
                and lead["Email"]
                and runtime.store.lead_ids_for("salesforce", [lead["Id"]])
            ]
        email = str(linked[0]["Email"]).strip().lower()
        contact_id = _contact(sandbox, email)
        search_caught_up(config)
        sync(config)

        review = _review(config)
        assert contact_id in review
        assert review[contact_id].candidates == (_person(config, email).lead_id,)
        contact = sandbox.salesforce.record("Contact", contact_id)
        assert contact is not None
        assert all(contact.get(name) is None for name in WRITTEN)


def test_a_contact_a_person_links_in_review_gets_the_values_and_its_twin_does_not(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    email = _handed_off_email(expected)
    with Sandbox(SETTINGS) as sandbox:
        first, second = _twin_contacts(sandbox, email)
        config = config_for(sandbox, tmp_path)
        sync(config)
        search_caught_up(config)
        sync(config)  # takes in the echoes: nothing of the person is pending any more
        person = _person(config, email)
        with open_runtime(config, connect=False) as runtime:
            view = review_item(runtime.store, first)
            assert view.record is None  # a Contact has no record of its own to show
            resolve_review(runtime.store, view, "link", lead_id=person.lead_id)
            resolve_review(runtime.store, review_item(runtime.store, second), "ignore")
        search_caught_up(config)
        # A run that starts after the decisions (the runs above keep the handoff tests' clock).
        sync(config, at=datetime.now(UTC))

        linked = sandbox.salesforce.record("Contact", first)
        twin = sandbox.salesforce.record("Contact", second)
        assert linked is not None
        assert twin is not None
        assert linked["Leadsync_Score__c"] == _person(config, email).score is not None
        assert twin.get("Leadsync_Score__c") is None
        # The twin is still a second Contact of the person: it comes back to review.
        assert set(_review(config)) == {second}
        matched = [h for h in handoffs(config) if h.lead_id == person.lead_id]
        assert [(h.status, h.record_id) for h in matched] == [(MATCHED, first)]
        assert _leads_holding(sandbox, email) == []


def test_an_ignored_contact_stays_ignored_until_its_conflict_changes(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    email = _handed_off_email(expected)
    with Sandbox(SETTINGS) as sandbox:
        first, second = _twin_contacts(sandbox, email)
        config = config_for(sandbox, tmp_path)
        sync(config)
        with open_runtime(config, connect=False) as runtime:
            resolve_review(runtime.store, review_item(runtime.store, first), "ignore")
        # The person changes (engagement in HubSpot): merged again, the same two Contacts.
        (hubspot,) = [
            c
            for c in sandbox.hubspot.snapshot()
            if str(c["properties"].get("email") or "").strip().lower() == email
        ]
        sandbox.hubspot.set_activity(int(hubspot["id"]), {"hs_analytics_num_page_views": "40"})
        search_caught_up(config)
        sync(config, at=datetime.now(UTC))
        assert set(_review(config)) == {second}

        # A third Contact of the person: the conflict is another one, shown again.
        third = _contact(sandbox, email, "Three")
        sync(config, at=datetime.now(UTC))
        assert set(_review(config)) == {first, second, third}


def _hubspot_only_person(config: Config, accept: Callable[[Lead], bool] = bool) -> Lead:
    """A person leadsync knows from HubSpot only and did not hand off (below the handoff
    stage): nothing of theirs is pending once the echoes are in. `accept` narrows the choice."""
    with open_runtime(config, connect=False) as runtime:
        handed = {h.lead_id for h in runtime.store.handoffs.all()}
        for lead_id in runtime.store.lead_ids_after(None, limit=10_000):
            records = runtime.store.records_of([lead_id]).get(lead_id, [])
            lead = runtime.store.leads([lead_id])[lead_id]
            if (
                lead_id not in handed
                and [r.crm for r in records] == ["hubspot"]
                and lead.values.get("email")
                and accept(lead)
            ):
                return lead
    raise AssertionError("no HubSpot-only person below the handoff stage in the seeded data")


def test_a_contact_sales_create_later_for_a_synced_person_gets_the_values_next_run(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        sync(config)
        search_caught_up(config)
        sync(config)  # takes in the echoes: nothing of the person is pending any more
        person = _hubspot_only_person(config)
        email = str(person.values["email"]).strip().lower()
        contact_id = _contact(sandbox, email)
        sync(config)

        contact = sandbox.salesforce.record("Contact", contact_id)
        assert contact is not None
        assert contact["Leadsync_Score__c"] == _person(config, email).score is not None
        assert _leads_holding(sandbox, email) == []


def test_a_leadsync_value_a_person_clears_on_the_contact_is_written_again(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    email = _handed_off_email(expected)
    with Sandbox(SETTINGS) as sandbox:
        contact_id = _contact(sandbox, email)
        config = config_for(sandbox, tmp_path)
        sync(config)
        search_caught_up(config)
        sync(config)  # takes in the echoes
        with sandbox.salesforce.lock:
            cleared = sandbox.salesforce.update_record(
                "Contact", contact_id, {"Leadsync_Score__c": None}
            )
        assert cleared.success
        sync(config)

        contact = sandbox.salesforce.record("Contact", contact_id)
        assert contact is not None
        assert contact["Leadsync_Score__c"] == _person(config, email).score is not None


def test_revert_puts_back_what_a_run_wrote_to_a_contact_no_lead_names(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    email = _handed_off_email(expected)
    with Sandbox(SETTINGS) as sandbox:
        contact_id = _contact(sandbox, email)
        config = config_for(sandbox, tmp_path)
        first = sync(config)
        written = sandbox.salesforce.record("Contact", contact_id)
        assert written is not None
        assert written["Leadsync_Score__c"] is not None
        assert config.path is not None
        assert main(["revert", first.run_id, "--config", str(config.path)]) == 0
        reverted = sandbox.salesforce.record("Contact", contact_id)
        assert reverted is not None
        assert all(reverted.get(name) is None for name in WRITTEN)


def test_a_what_if_of_an_edit_shows_the_write_to_a_contact_no_lead_names(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    email = _handed_off_email(expected)
    with Sandbox(SETTINGS) as sandbox:
        contact_id = _contact(sandbox, email)
        config = config_for(sandbox, tmp_path)
        sync(config)
        lead_id = _person(config, email).lead_id

        def contact_update(with_config: Config) -> Any:
            with open_runtime(with_config, connect=False) as runtime:
                engine = SyncEngine(
                    runtime.store, {}, runtime.field_map, runtime.definition, clock=lambda: NOW
                )
                (found,) = engine.reevaluate([lead_id])
                return found.updates.get("salesforce")

        assert contact_update(config) is None  # what the run wrote is not planned again
        shipped = (EXAMPLES / "lead_definition.toml").read_text()
        assert "max_score = 100" in shipped
        folder = tmp_path / "edited"
        folder.mkdir()
        edited = with_definition(
            config, shipped.replace("max_score = 100", "max_score = 99"), folder
        )
        update = contact_update(edited)
        assert update is not None
        assert (update.object_name, update.record_id) == ("Contact", contact_id)
        assert "Leadsync_Model_Version__c" in update.values
