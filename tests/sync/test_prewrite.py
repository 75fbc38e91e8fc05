"""The check before a write (`leadsync.sync.prewrite`): which updates it skips, and how few
calls it asks the CRM what changed in."""

from __future__ import annotations

from leadsync.connectors.base import RecordUpdate
from leadsync.mapping.fields import CONTACT, WritebackTargets
from leadsync.sync.prewrite import needs_check

TARGETS = WritebackTargets(
    crm="crm",
    score="Score__c",
    fit_score="Fit__c",
    grade="Grade__c",
    reasons="Reasons__c",
    model_version="Model__c",
    sla_breaches="Breaches__c",
    stage="Stage__c",
    stage_values={"lead": "Lead"},
    status_field="Status",
    status_values={"disqualified": "Closed"},
    handoff_link="Linked__c",
    contact={"score": "Contact_Score__c", "stage": "Stage__c"},
)


def update(*names: str, object_name: str | None = None, record_id: str = "r1") -> RecordUpdate:
    return RecordUpdate(record_id, dict.fromkeys(names, "x"), object_name=object_name)


def test_an_update_of_results_alone_takes_no_check() -> None:
    assert not needs_check(TARGETS, update("Score__c", "Fit__c", "Grade__c", "Reasons__c"))
    assert not needs_check(TARGETS, update("Model__c", "Breaches__c"))
    assert not needs_check(TARGETS, update("Contact_Score__c", object_name=CONTACT))


def test_an_update_of_a_field_people_edit_takes_the_check() -> None:
    # The stage and status are people's too (a rep moves them), and so is any mapped field.
    assert needs_check(TARGETS, update("Score__c", "Stage__c"))
    assert needs_check(TARGETS, update("Score__c", "Status"))
    assert needs_check(TARGETS, update("Score__c", "Phone"))
    assert needs_check(TARGETS, update("Linked__c"))
    # On a Contact, the lead object's names are not results, nor the stage.
    assert needs_check(TARGETS, update("Score__c", object_name=CONTACT))
    assert needs_check(TARGETS, update("Contact_Score__c", "Stage__c", object_name=CONTACT))
    assert needs_check(TARGETS, update("Score__c", object_name="Opportunity"))
    # A CRM without write-back targets has no results to tell apart.
    assert needs_check(None, update("Score__c"))
