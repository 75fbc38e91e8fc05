"""Attack probes: Contacts no lead names, in orgs shaped unlike the seed; plan before sync.

Each of these once failed (bugs found, since fixed): the deleted matched Contact, the Contact
without email named by salesforcecontactid, the linked Contact whose email is cleared, the
linked Contact whose email changes to another (not yet handed off) person. The rest held."""

# The fixture imported from test_handoff is named as the tests' parameter.
# ruff: noqa: F811

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leadsync.runtime import open_runtime
from leadsync.sandbox import Sandbox
from leadsync.sync.handoff_ledger import CREATED, MATCHED
from tests.support import caught_up_runs, crm_state, search_caught_up
from tests.sync.test_contacts_without_lead import (
    _contact,
    _handed_off_email,
    _hubspot_only_person,
    _leads_holding,
    _person,
    _review,
    _twin_contacts,
    write_calls,
)
from tests.sync.test_handoff import (  # noqa: F401
    NOW,
    SETTINGS,
    config_for,
    handed_off_leads,
    handoffs,
    reference,
    sync,
)
from tests.sync.test_handoff_plan import plan


@pytest.fixture
def email(reference: tuple[dict[str, Any], int]) -> str:
    """The email of a HubSpot-only person the reference run hands off."""
    expected, _ = reference
    return _handed_off_email(expected)


def _hubspot_of(sandbox: Sandbox, email: str) -> dict[str, Any]:
    (found,) = [
        c
        for c in sandbox.hubspot.snapshot()
        if str(c["properties"].get("email") or "").strip().lower() == email
    ]
    return found


def _edit_hubspot(sandbox: Sandbox, contact: dict[str, Any], values: dict[str, Any]) -> None:
    """A marketer's edit of a HubSpot contact, which HubSpot's search then finds."""
    sandbox.hubspot.set_activity(int(contact["id"]), values)
    sandbox.hubspot.settle_search()


def _synced_with_contact(sandbox: Sandbox, folder: Path, email: str) -> tuple[Any, str]:
    """A Contact sales created for `email`, then two runs: the person is matched to it."""
    contact_id = _contact(sandbox, email)
    config = config_for(sandbox, folder)
    caught_up_runs(config, sync)
    return config, contact_id


def _third_run_writes(sandbox: Sandbox, config: Any) -> int:
    """Two runs a scheduler apart, then a third: the write calls the third made (none once
    the first two settled everything)."""
    caught_up_runs(config, sync)
    search_caught_up(config)
    sandbox.stats.clear()
    sync(config)
    return write_calls(sandbox)


def _score_on(sandbox: Sandbox, contact_id: str) -> Any:
    """The leadsync score the Contact holds (it must still exist)."""
    contact = sandbox.salesforce.record("Contact", contact_id)
    assert contact is not None
    return contact.get("Leadsync_Score__c")


def _email_of(config: Any, lead_id: str) -> str:
    with open_runtime(config, connect=False) as runtime:
        return str(runtime.store.leads([lead_id])[lead_id].values.get("email"))


def test_a_person_whose_matched_contact_sales_delete_is_handed_off_again_once(
    email: str, tmp_path: Path
) -> None:
    """The Contact the handoff matched is deleted: sales see the person nowhere, so the next
    run hands them off again, to one new lead, and the run after it creates nothing."""
    with Sandbox(SETTINGS) as sandbox:
        config, contact_id = _synced_with_contact(sandbox, tmp_path, email)
        person = _person(config, email)
        (matched,) = [h for h in handoffs(config) if h.lead_id == person.lead_id]
        assert (matched.status, matched.record_id) == (MATCHED, contact_id)
        with sandbox.salesforce.lock:
            assert sandbox.salesforce.delete_record("Contact", contact_id).success
        search_caught_up(config)
        again = sync(config)
        search_caught_up(config)
        sync(config)
        (lead_id,) = _leads_holding(sandbox, email)
        (handoff,) = [h for h in handoffs(config) if h.lead_id == person.lead_id]
        assert again.handoff is not None
        assert again.handoff.handed_off == 1
        assert (handoff.status, handoff.record_object, handoff.record_id) == (
            CREATED,
            None,
            lead_id,
        )


def test_a_plan_before_the_first_sync_changes_nothing_the_sync_does_for_a_contact(
    email: str, tmp_path: Path
) -> None:
    states = []
    for with_plan in (False, True):
        folder = tmp_path / str(with_plan)
        folder.mkdir()
        with Sandbox(SETTINGS) as sandbox:
            contact_id = _contact(sandbox, email)
            config = config_for(sandbox, folder)
            if with_plan:
                before = sandbox.salesforce.record("Contact", contact_id)
                sandbox.stats.clear()
                plan(config)
                assert write_calls(sandbox) == 0
                assert sandbox.salesforce.record("Contact", contact_id) == before
            sync(config)
            contact = sandbox.salesforce.record("Contact", contact_id)
            assert contact is not None
            states.append(
                (
                    {k: contact.get(k) for k in ("Leadsync_Score__c", "Leadsync_Stage__c")},
                    sorted(
                        (_email_of(config, h.lead_id), h.status, h.record_object, h.owner)
                        for h in handoffs(config)
                    ),
                    len(sandbox.salesforce.snapshot("Lead")),
                )
            )
    assert states[0][0] == states[1][0]
    assert states[0][2] == states[1][2]
    assert states[0][1] == states[1][1]


def test_two_plans_then_a_sync_leave_the_crms_as_a_sync_alone(tmp_path: Path) -> None:
    """Full CRM state: sync alone vs plan, plan, sync."""
    results = []
    for plans in (0, 2):
        folder = tmp_path / str(plans)
        folder.mkdir()
        with Sandbox(SETTINGS) as sandbox:
            config = config_for(sandbox, folder)
            for _ in range(plans):
                plan(config)
            sync(config)
            state = crm_state(sandbox)
            results.append(state)
    a, b = results
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], key


def test_a_contact_whose_email_changes_to_a_handed_off_person_is_not_matched_twice(
    reference: Any, tmp_path: Path
) -> None:
    expected, _ = reference
    first_email = _handed_off_email(expected, 0)
    second_email = _handed_off_email(expected, 1)
    with Sandbox(SETTINGS) as sandbox:
        contact_id = _contact(sandbox, first_email)
        config = config_for(sandbox, tmp_path)
        caught_up_runs(config, sync)
        with sandbox.salesforce.lock:
            assert sandbox.salesforce.update_record(
                "Contact", contact_id, {"Email": second_email}
            ).success
        caught_up_runs(config, sync)
        matched_to_contact = [
            h for h in handoffs(config) if h.record_id == contact_id and h.status == MATCHED
        ]
        assert len(matched_to_contact) <= 1, "two people handed off onto one Contact"


def test_a_contact_without_email_named_by_salesforcecontactid_is_matched_not_duplicated(
    email: str, tmp_path: Path
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        with sandbox.salesforce.lock:
            made = sandbox.salesforce.create_record("Contact", {"LastName": "NoMail"})
        contact_id = str(made.record_id)
        hubspot = _hubspot_of(sandbox, email)
        _edit_hubspot(sandbox, hubspot, {"salesforcecontactid": contact_id})
        config = config_for(sandbox, tmp_path)
        sync(config)
        assert _score_on(sandbox, contact_id) is not None
        assert _leads_holding(sandbox, email) == []


def test_a_twin_contact_deleted_in_review_leaves_the_other_written(
    email: str, tmp_path: Path
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        first, second = _twin_contacts(sandbox, email)
        config = config_for(sandbox, tmp_path)
        caught_up_runs(config, sync)
        assert set(_review(config)) == {first, second}
        with sandbox.salesforce.lock:
            assert sandbox.salesforce.delete_record("Contact", second).success
        caught_up_runs(config, sync)
        assert _review(config) == {}
        assert _score_on(sandbox, first) is not None
        assert _leads_holding(sandbox, email) == []


def test_a_contact_named_by_a_15_character_salesforcecontactid_gets_a_quiet_third_run(
    email: str, tmp_path: Path
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        contact_id = _contact(sandbox, "Other.Person@Elsewhere.example")
        hubspot = _hubspot_of(sandbox, email)
        _edit_hubspot(sandbox, hubspot, {"salesforcecontactid": contact_id[:15]})
        config = config_for(sandbox, tmp_path)
        writes = _third_run_writes(sandbox, config)
        assert _score_on(sandbox, contact_id) is not None
        assert _leads_holding(sandbox, email) == []
        assert writes == 0, sandbox.stats.as_dict()["endpoints"]


def test_plans_between_syncs_do_not_swallow_a_new_contact(tmp_path: Path) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        caught_up_runs(config, sync)
        person = _hubspot_only_person(config)
        email = str(person.values["email"]).strip().lower()
        contact_id = _contact(sandbox, email)
        sandbox.stats.clear()
        plan(config)
        plan(config)
        assert write_calls(sandbox) == 0
        assert _score_on(sandbox, contact_id) is None
        sync(config)
        assert _score_on(sandbox, contact_id) == _person(config, email).score is not None


def test_a_plan_between_syncs_does_not_swallow_an_edit_of_the_contact(
    email: str, tmp_path: Path
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config, contact_id = _synced_with_contact(sandbox, tmp_path, email)
        with sandbox.salesforce.lock:
            assert sandbox.salesforce.update_record(
                "Contact", contact_id, {"Leadsync_Score__c": None}
            ).success
        plan(config)
        sync(config)
        assert _score_on(sandbox, contact_id) == _person(config, email).score is not None


def test_two_hubspot_contacts_of_one_email_and_a_contact_create_nothing_and_go_quiet(
    email: str, tmp_path: Path
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        _contact(sandbox, email)
        target = _hubspot_of(sandbox, email)
        other = next(
            c
            for c in sandbox.hubspot.snapshot()
            if c["id"] != target["id"]
            and c["properties"].get("email")
            and not c["properties"].get("salesforceleadid")
        )
        _edit_hubspot(sandbox, other, {"email": f" {email.upper()}"})
        config = config_for(sandbox, tmp_path)
        writes = _third_run_writes(sandbox, config)
        assert _leads_holding(sandbox, email) == []
        assert writes == 0, sandbox.stats.as_dict()["endpoints"]


def test_a_linked_contact_whose_email_sales_clear_is_still_written(
    email: str, tmp_path: Path
) -> None:
    """The link is leadsync's own and comes first: a Contact whose email a rep blanks stays
    the person's record, as README says of matching (own link, then reference, then email)."""
    with Sandbox(SETTINGS) as sandbox:
        config, contact_id = _synced_with_contact(sandbox, tmp_path, email)
        with sandbox.salesforce.lock:
            assert sandbox.salesforce.update_record(
                "Contact", contact_id, {"Email": None, "Leadsync_Score__c": None}
            ).success
        search_caught_up(config)
        sync(config)
        assert _score_on(sandbox, contact_id) == _person(config, email).score is not None


def test_a_contact_linked_to_one_person_is_not_the_match_of_another_handoff(
    reference: Any, tmp_path: Path
) -> None:
    """A Contact leadsync linked to person A (and writes A's values to), whose email sales
    then change to person B's: B's handoff must not be 'matched' to A's Contact (B would then
    never reach sales, and the Contact holds A's score)."""
    expected, _ = reference
    email_a = _handed_off_email(expected, 0)
    email_b = _handed_off_email(expected, 1)
    with Sandbox(SETTINGS) as sandbox:
        contact_id = _contact(sandbox, email_a)
        hubspot_b = _hubspot_of(sandbox, email_b)
        company = hubspot_b["properties"].get("company")
        assert company
        # B fails `require` at first: not handed off yet.
        _edit_hubspot(sandbox, hubspot_b, {"company": None})
        config = config_for(sandbox, tmp_path)
        caught_up_runs(config, sync)
        person_a = _person(config, email_a)
        person_b = _person(config, email_b)
        assert [h.status for h in handoffs(config) if h.lead_id == person_b.lead_id] == ["blocked"]
        with sandbox.salesforce.lock:
            assert sandbox.salesforce.update_record(
                "Contact", contact_id, {"Email": email_b}
            ).success
        _edit_hubspot(sandbox, hubspot_b, {"company": company})
        caught_up_runs(config, sync)
        b_handoffs = [
            (h.status, h.record_object, h.record_id)
            for h in handoffs(config)
            if h.lead_id == person_b.lead_id
        ]
        assert person_a.lead_id != person_b.lead_id
        assert ("matched", "Contact", contact_id) not in b_handoffs


def test_a_handed_off_lead_sales_convert_gets_its_values_on_the_contact_and_goes_quiet(
    email: str, tmp_path: Path
) -> None:
    """A Contact and a converted Lead both naming the person (the handoff's own lead,
    converted): the Contact is written, not reviewed as a second person record; no new lead."""
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        caught_up_runs(config, sync)
        (lead,) = [
            lead for lead in handed_off_leads(sandbox) if str(lead["Email"]).lower() == email
        ]
        converted = sandbox.salesforce.convert_lead(lead["Id"])
        contact_id = str(converted.get("ConvertedContactId") or converted.get("contact_id") or "")
        writes = _third_run_writes(sandbox, config)
        after = sandbox.salesforce.record("Lead", lead["Id"])
        assert after is not None
        contact_id = str(after["ConvertedContactId"])
        assert _score_on(sandbox, contact_id) == _person(config, email).score is not None
        assert contact_id not in _review(config)
        assert _leads_holding(sandbox, email) == [lead["Id"]]
        assert writes == 0, sandbox.stats.as_dict()["endpoints"]
