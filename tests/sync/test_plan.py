"""Plan: desired values minus held values; formatting never writes; runs in memory settle.

The simulated runs at the bottom chain the real steps (ingest, identity, reconcile, scoring,
lifecycle, plan) over seeded sandbox data and fake CRMs that store what is written the way
the real ones do (HubSpot keeps text, Salesforce hands number fields back as floats).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadsync.connectors.base import CrmRecord, RecordUpdate
from leadsync.connectors.traits import HUBSPOT
from leadsync.mapping.definition import LeadDefinition, load_definition
from leadsync.mapping.fields import FieldMap, FieldMapping, load_mapping
from leadsync.mapping.lifecycle import Stage, next_transitions
from leadsync.mapping.scoring import Score, score_lead
from leadsync.mapping.transforms import Binding, TransformError
from leadsync.mapping.types import Direction, SyncRule
from leadsync.sandbox.seed import generate
from leadsync.sync import plan as plan_module
from leadsync.sync.identity import InMemoryIdentityIndex, match_batch
from leadsync.sync.ingest import QuarantineError, to_snapshot
from leadsync.sync.model import Lead, MatchKind, Snapshot
from leadsync.sync.plan import (
    FieldChange,
    PlanTally,
    estimate_api_calls,
    field_changes,
    plan_summary,
    plan_updates,
    with_score,
)
from leadsync.sync.reconcile import reconcile

EXAMPLES = Path(__file__).resolve().parents[2] / "leadsync" / "examples"
MAPPING: FieldMap = load_mapping(EXAMPLES / "mapping.toml")
DEFINITION: LeadDefinition = load_definition(
    EXAMPLES / "lead_definition.toml", fields=MAPPING.canonical_types()
)
NOW = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)


def hs(fields: dict[str, Any], *, deleted: bool = False) -> Snapshot:
    return Snapshot("hubspot", "1001", NOW, fields, {}, deleted=deleted)


def sf(fields: dict[str, Any]) -> Snapshot:
    return Snapshot("salesforce", "00Q1", NOW, fields, {})


def writes(lead: Lead, snapshot: Snapshot, field_map: FieldMap = MAPPING) -> dict[str, Any]:
    update = plan_updates(field_map, lead, {snapshot.crm: snapshot})[snapshot.crm]
    return dict(update.values) if update is not None else {}


# ------------------------------------------------------------------------------- canonical fields


@pytest.mark.parametrize(
    ("case", "values", "held", "written"),
    [
        ("same value, no write", {"phone": "555-1"}, {"phone": "555-1"}, {}),
        ("padding is not a difference", {"email": "a@x.com"}, {"email": "  A@x.com "}, {}),
        ("a range holding the number", {"employees": 60}, {"numemployees": "50-100"}, {}),
        ("a range not holding it", {"employees": 60}, {"numemployees": "1-5"},
         {"numemployees": "50-100"}),
        ("a number as HubSpot text", {"annual_revenue": 100.0}, {"annualrevenue": "100"}, {}),
        ("a value map's other spelling", {"industry": "Technology"},
         {"industry": "Computer Software"}, {}),
        ("a different value is written", {"phone": "555-2"}, {"phone": "555-1"},
         {"phone": "555-2"}),
        ("a value over a blank is written", {"title": "CEO"}, {"jobtitle": None},
         {"jobtitle": "CEO"}),
        # Read without the field (mapped since): what the CRM holds is unknown.
        ("nothing over a field the record was not read with", {"title": "CEO"}, {}, {}),
        ("pull-only fields are never written", {"lead_source": "offline"},
         {"hs_analytics_source": "PAID_SEARCH"}, {}),
        ("no blank over a value (prefer_salesforce_unless_blank)", {"company": None},
         {"company": "Acme"}, {}),
        ("a blank may win under most_recent", {"phone": None}, {"phone": "555-1"},
         {"phone": ""}),
        ("blank over blank is nothing to do", {"phone": None}, {"phone": "  "}, {}),
        ("fields leadsync has no value for are left alone", {}, {"phone": "555-1"}, {}),
    ],
)  # fmt: skip
def test_hubspot_writes_only_what_differs_in_meaning(
    case: str, values: dict[str, Any], held: dict[str, Any], written: dict[str, Any]
) -> None:
    assert writes(Lead("L1", values), hs(held)) == written, case


@pytest.mark.parametrize(
    ("case", "values", "held", "written"),
    [
        ("a number held as float", {"employees": 60}, {"NumberOfEmployees": 60.0}, {}),
        ("the value map's code for a name", {"country": "United States"}, {"Country": "US"}, {}),
        ("the name itself reads the same", {"country": "United States"},
         {"Country": "United States"}, {}),
        ("a name is written as its code", {"country": "Germany"}, {"Country": "France"},
         {"Country": "DE"}),
        ("no blank over a value (prefer_salesforce_unless_blank)", {"email": None},
         {"Email": "a@x.com"}, {}),
    ],
)  # fmt: skip
def test_salesforce_writes_only_what_differs_in_meaning(
    case: str, values: dict[str, Any], held: dict[str, Any], written: dict[str, Any]
) -> None:
    assert writes(Lead("L1", values), sf(held)) == written, case


def test_a_never_blank_field_never_writes_a_blank_and_a_prefer_field_may() -> None:
    held = hs({"f_hs": "kept"})
    for rule, written in [(SyncRule.NEVER_BLANK, {}), (SyncRule.PREFER_SALESFORCE, {"f_hs": ""})]:
        mapping = FieldMapping("f", "string", Direction.BOTH, rule, Binding("hubspot", "f_hs"))
        field_map = FieldMap({"f": mapping}, {}, "f")
        assert writes(Lead("L1", {"f": None}), held, field_map) == written, rule


def test_fields_on_a_related_object_and_push_only_fields() -> None:
    opportunity = Binding("salesforce", "StageName", object="Opportunity")
    pushed = Binding("salesforce", "Pushed__c")
    field_map = FieldMap(
        {
            "stage": FieldMapping("stage", "string", Direction.BOTH, SyncRule.PREFER_SALESFORCE,
                                  salesforce=opportunity),
            "pushed": FieldMapping("pushed", "string", Direction.PUSH, SyncRule.PREFER_SALESFORCE,
                                   salesforce=pushed),
        },
        {},
        "pushed",
    )  # fmt: skip
    lead = Lead("L1", {"stage": "Closed Won", "pushed": "yes"})
    held = {"StageName": "Prospecting", "Pushed__c": None}
    assert writes(lead, sf(held), field_map) == {"Pushed__c": "yes"}


def test_a_value_the_mapping_cannot_write_is_a_transform_error() -> None:
    strict = Binding("hubspot", "tier", value_map={"Gold": "gold"})
    mapping = FieldMapping("tier", "string", Direction.BOTH, SyncRule.PREFER_HUBSPOT, strict)
    field_map = FieldMap({"tier": mapping}, {}, "tier")
    with pytest.raises(TransformError, match="tier"):
        writes(Lead("L1", {"tier": "platinum"}), hs({"tier": "Gold"}), field_map)


# ------------------------------------------------------------------------------- write-back


def scored(stage: Stage | None = Stage.MQL, **changes: Any) -> Lead:
    score = Score(60, 30, 30, "B", ("+20 employees ≥ 200", "+10 title"), "v1")
    return replace(with_score(Lead("L1", {}), score, stage=stage), **changes)


def test_with_score_carries_the_score_and_the_stage() -> None:
    lead = scored(Stage.SAL)
    assert (lead.score, lead.fit, lead.engagement, lead.grade) == (60, 30, 30, "B")
    assert (lead.reasons, lead.model_version, lead.stage) == (
        ("+20 employees ≥ 200", "+10 title"),
        "v1",
        "sal",
    )


def test_write_back_to_both_crms_in_their_own_formats() -> None:
    assert writes(scored(Stage.SAL), hs({"lifecyclestage": None})) == {
        "leadsync_score": "60",
        "leadsync_fit_score": "30",
        "leadsync_engagement_score": "30",
        "leadsync_grade": "B",
        "leadsync_score_reasons": "+20 employees ≥ 200\n+10 title",
        "leadsync_model_version": "v1",
        "lifecyclestage": "marketingqualifiedlead",  # HubSpot has no SAL: the nearest stage
    }
    read_blank = {"Leadsync_Stage__c": None, "Status": None}
    assert writes(scored(Stage.DISQUALIFIED), sf(read_blank)) == {
        "Leadsync_Score__c": 60,
        "Leadsync_Fit_Score__c": 30,
        "Leadsync_Engagement_Score__c": 30,
        "Leadsync_Grade__c": "B",
        "Leadsync_Score_Reasons__c": "+20 employees ≥ 200\n+10 title",
        "Leadsync_Model_Version__c": "v1",
        "Leadsync_Stage__c": "Disqualified",
        "Status": "Closed - Not Converted",  # disqualified is one of the status_values
    }


def test_no_stage_is_written_to_a_record_read_without_its_stage_field() -> None:
    # Mapped since the record was read: it may hold a later stage a person set.
    assert "lifecyclestage" not in writes(scored(Stage.SAL), hs({}))
    assert writes(scored(Stage.SAL), hs({"lifecyclestage": "lead"}))["lifecyclestage"] == (
        "marketingqualifiedlead"
    )


HELD_HUBSPOT = {
    "leadsync_score": "60",
    "leadsync_fit_score": " 30 ",
    "leadsync_engagement_score": "30.0",
    "leadsync_grade": "B",
    "leadsync_score_reasons": "+20 employees ≥ 200\r\n+10 title\n",
    "leadsync_model_version": "v1",
    "lifecyclestage": "marketingqualifiedlead",
}


def test_write_back_values_held_in_another_format_are_not_written_again() -> None:
    assert writes(scored(Stage.MQL), hs(HELD_HUBSPOT)) == {}
    held = {"Leadsync_Score__c": 60.0, "Leadsync_Stage__c": "MQL", "Status": "Working - Contacted"}
    assert set(writes(scored(Stage.MQL), sf(held))) == {
        "Leadsync_Fit_Score__c",
        "Leadsync_Engagement_Score__c",
        "Leadsync_Grade__c",
        "Leadsync_Score_Reasons__c",
        "Leadsync_Model_Version__c",
    }  # score and stage held already; Status left to the reps for an MQL


def test_write_back_skips_what_leadsync_has_no_value_for() -> None:
    unscored = Lead("L1", {})
    assert writes(unscored, hs({"leadsync_score": "12"})) == {}


def test_the_update_carries_what_the_crm_holds_for_the_fields_written() -> None:
    held = {**HELD_HUBSPOT, "lifecyclestage": "customer"}
    update = plan_updates(MAPPING, scored(Stage.MQL), {"hubspot": hs(held)})["hubspot"]
    assert update == RecordUpdate("1001", {"lifecyclestage": "marketingqualifiedlead"},
                                  {"lifecyclestage": "customer"})  # fmt: skip


@pytest.mark.parametrize(
    "snapshot",
    [
        hs({}, deleted=True),
        sf({"IsConverted": True}),
        sf({"IsConverted": "true"}),  # as a Bulk query's CSV has it
    ],
)
def test_deleted_records_and_converted_salesforce_leads_are_not_written(snapshot: Snapshot) -> None:
    assert plan_updates(MAPPING, scored(), {snapshot.crm: snapshot}) == {snapshot.crm: None}


def test_an_open_salesforce_lead_is_written() -> None:
    assert plan_updates(MAPPING, scored(), {"salesforce": sf({"IsConverted": False})})["salesforce"]


# ------------------------------------------------------------------------------- summaries


def update(record_id: str, **values: Any) -> RecordUpdate:
    current = {"lifecyclestage": "customer"} if "lifecyclestage" in values else {}
    return RecordUpdate(record_id, values, current)


@pytest.mark.parametrize(
    ("crm", "count", "backward", "calls", "how"),
    [
        ("hubspot", 0, 0, 0, "0 batch update(s)"),
        ("hubspot", 100, 0, 1, "1 batch update(s)"),
        ("hubspot", 101, 0, 2, "2 batch update(s)"),
        ("hubspot", 250, 150, 5, "3 batch update(s), 2 lifecycle clear(s)"),
        ("salesforce", 200, 0, 1, "1 collection update(s)"),
        ("salesforce", 450, 0, 3, "3 collection update(s)"),
        ("salesforce", 10_000, 0, 50, "50 collection update(s)"),
        ("salesforce", 10_001, 0, 51, "51 collection update(s)"),
    ],
)
def test_api_call_estimates(crm: str, count: int, backward: int, calls: int, how: str) -> None:
    updates = [
        update(str(n), lifecyclestage="lead") if n < backward else update(str(n), x="1")
        for n in range(count)
    ]
    estimate = estimate_api_calls(crm, updates)
    assert (estimate.records, estimate.calls, estimate.how) == (count, calls, how)


def test_api_call_estimates_follow_the_batch_size_they_are_given() -> None:
    # A sync estimates with its connectors' traits, which carry their connections' sizes.
    updates = [update(str(n), lifecyclestage="lead") for n in range(50)]
    traits = {"hubspot": replace(HUBSPOT, write_batch=20)}
    estimate = estimate_api_calls("hubspot", updates, traits=traits.__getitem__)
    assert (estimate.calls, estimate.how) == (6, "3 batch update(s), 3 lifecycle clear(s)")


def test_a_forward_lifecycle_move_costs_no_clear() -> None:
    forward = RecordUpdate("1", {"lifecyclestage": "customer"}, {"lifecyclestage": "lead"})
    assert estimate_api_calls("hubspot", [forward]).calls == 1


def test_plan_summary_lists_old_and_new_values_per_crm_and_field() -> None:
    plans: list[dict[str, RecordUpdate | None]] = [
        {"hubspot": RecordUpdate("1", {"phone": "2"}, {"phone": "1"}), "salesforce": None},
        {"hubspot": RecordUpdate("2", {"phone": "3"}, {"phone": None})},
    ]
    summary = plan_summary(plans)
    assert summary.changes == (
        FieldChange("hubspot", "1", "phone", "1", "2"),
        FieldChange("hubspot", "2", "phone", None, "3"),
    )
    assert [change.describe() for change in summary.changes] == [
        "hubspot 1 phone: '1' → '2'",
        "hubspot 2 phone: (blank) → '3'",
    ]
    assert summary.per_field() == {("hubspot", "phone"): 2}
    assert summary.lines() == [
        "hubspot: 2 record(s), about 1 call(s) (1 batch update(s))",
        "  hubspot phone: 2",
    ]
    assert field_changes({"salesforce": None}) == []


def test_a_tally_that_keeps_no_changes_counts_them_and_estimates_calls_over_all_it_was_given() -> (
    None
):
    plans: list[dict[str, RecordUpdate | None]] = [
        {"hubspot": update(str(n), lifecyclestage="lead" if n < 150 else "customer")}
        for n in range(250)
    ]
    kept, counted = PlanTally(), PlanTally(keep_changes=False)
    for plan in plans:  # as a settle adds them, slice after slice
        kept.add(plan)
        counted.add(plan)
    summary = counted.summary()
    assert summary.changes == ()
    assert summary.change_count == len(kept.summary().changes) == 250
    assert summary.per_field() == kept.summary().per_field() == {("hubspot", "lifecyclestage"): 250}
    # One estimate over all 250, not one per slice: ⌈250/100⌉ batches + ⌈150/100⌉ clears.
    assert summary.calls["hubspot"].calls == 3 + 2


# ------------------------------------------------------------------------------- simulated runs


class FakeCrm:
    """One CRM's records, written the way the real one stores values."""

    def __init__(self, crm: str, records: list[CrmRecord]) -> None:
        self.crm = crm
        self.records = {record.id: record for record in records}

    def apply(self, update: RecordUpdate, at: datetime) -> None:
        record = self.records[update.record_id]
        stored = {name: self._stored(name, value) for name, value in update.values.items()}
        self.records[update.record_id] = replace(
            record, modified_at=at, fields={**record.fields, **stored}
        )

    def edit(self, record_id: str, at: datetime, **values: Any) -> None:
        """A person's edit in the CRM's own UI."""
        self.apply(RecordUpdate(record_id, values), at)

    def _stored(self, name: str, value: Any) -> Any:
        if self.crm == "hubspot":
            return None if value in ("", None) else str(value)  # properties are text
        if name.endswith("__c") and isinstance(value, int) and not isinstance(value, bool):
            return float(value)  # number fields come back as 60.0
        return value


@dataclass
class World:
    """The store's part, in memory: snapshots, echo fingerprints, links, leads, stages."""

    crms: dict[str, FakeCrm]
    opportunity_stages: Mapping[str, str]
    reverse: bool = False  # present everything in the opposite order
    echo_aware: bool = True  # False: forget what leadsync wrote, to show what that costs
    snapshots: dict[tuple[str, str], Snapshot] = field(default_factory=dict)
    expected: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    leads: dict[str, Lead] = field(default_factory=dict)
    quarantined: dict[tuple[str, str], str] = field(default_factory=dict)
    reviews: set[tuple[str, str]] = field(default_factory=set)
    index: InMemoryIdentityIndex = field(
        default_factory=lambda: InMemoryIdentityIndex(identity_field=MAPPING.identity_field)
    )
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def run(
        self, at: datetime, *, while_running: Callable[[], None] = lambda: None
    ) -> list[dict[str, RecordUpdate | None]]:
        """One sync run writing at `at`; `while_running` happens after the pull. Returns the
        plans carried out."""
        fresh = [snapshot for record in self._records() if (snapshot := self._ingest(record))]
        while_running()
        matches = match_batch(
            fresh,
            self.index,
            identity_field=MAPPING.identity_field,
            new_lead_id=lambda: f"L{next(self.ids)}",
        )
        by_lead: dict[str, dict[str, Snapshot]] = {}
        for snapshot in fresh:
            key = (snapshot.crm, snapshot.record_id)
            found = matches.get(key)
            if found is None or found.lead_id is None:
                self.reviews.add(key)
                continue
            linked = replace(snapshot, lead_id=found.lead_id)
            self.snapshots[key] = linked
            self.index.link(linked, found.lead_id)
            held = by_lead.setdefault(found.lead_id, {})
            assert snapshot.crm not in held, "identity linked two records of one CRM"
            held[snapshot.crm] = self._with_opportunity(linked)
        return [self._sync(lead_id, by_lead[lead_id], at) for lead_id in self._order(by_lead)]

    def _records(self) -> list[CrmRecord]:
        records = [record for crm in self.crms.values() for record in crm.records.values()]
        return records[::-1] if self.reverse else records

    def _order(self, items: Mapping[str, Any]) -> list[str]:
        return sorted(items, reverse=self.reverse)

    def _ingest(self, record: CrmRecord) -> Snapshot | None:
        key = (record.crm, record.id)
        try:
            return to_snapshot(
                record,
                MAPPING,
                previous=self.snapshots.get(key),
                expected=self.expected.get(key) if self.echo_aware else None,
            )
        except QuarantineError as error:
            self.quarantined[key] = error.reason
            return None

    def _with_opportunity(self, snapshot: Snapshot) -> Snapshot:
        # The engine reads the opportunity a lead converted into and supplies its fields.
        opportunity = snapshot.raw.get("ConvertedOpportunityId")
        if snapshot.crm != "salesforce" or opportunity is None:
            return snapshot
        stage = self.opportunity_stages[opportunity]
        return replace(snapshot, canonical={**snapshot.canonical, "opportunity_stage": stage})

    def _sync(
        self, lead_id: str, snapshots: dict[str, Snapshot], at: datetime
    ) -> dict[str, RecordUpdate | None]:
        if self.reverse:
            snapshots = dict(reversed(list(snapshots.items())))
        previous = self.leads.get(lead_id)
        choices = reconcile(MAPPING, snapshots, previous=previous)
        lead = Lead(lead_id, {name: choice.value for name, choice in choices.items()}, choices)
        # Scored as of one fixed moment: decay over time is a real change, not ping-pong.
        score = score_lead(lead.values, DEFINITION, now=NOW)
        current = Stage(previous.stage) if previous and previous.stage else None
        moves = next_transitions(current, lead.values, score, DEFINITION, now=NOW)
        lead = with_score(lead, score, stage=moves[-1].to_stage if moves else current)
        self.leads[lead_id] = lead
        plan = plan_updates(MAPPING, lead, snapshots)
        for crm, planned in plan.items():
            if planned is not None:
                self.crms[crm].apply(planned, at)
                self.expected.setdefault((crm, planned.record_id), {}).update(planned.values)
        return plan


def written(plans: list[dict[str, RecordUpdate | None]]) -> list[RecordUpdate]:
    return [update for plan in plans for update in plan.values() if update is not None]


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


SEED_NOW = datetime(2024, 6, 1, tzinfo=UTC)
ADA = "00Q5g00000zzzzzAAA"  # a lead of ours beside the seeded ones


def ada_records() -> list[CrmRecord]:
    """One person in both CRMs, linked by salesforceleadid, disagreeing on every field leadsync
    pushes, in value or only in format: the first run must write each of them somewhere."""
    contact = {
        "email": " Ada@X.com ",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "company": "Analytical Engines",
        "jobtitle": "Chief Executive Officer",
        "phone": "+44 20 7946 0001",
        "website": "https://www.analytical.example",
        "country": "United Kingdom",
        "industry": "Banking",
        "numemployees": "1-5",
        "annualrevenue": "2500000",
        "salesforceleadid": ADA,
        "hs_lead_status": "OPEN_DEAL",
        "hs_analytics_num_page_views": "80",
        "num_conversion_events": "4",
    }
    lead = {
        "Id": ADA,
        "Email": "ada.l@x.com",
        "FirstName": "Augusta Ada",
        "LastName": "King",
        "Company": None,
        "Title": "CEO",
        "Phone": "+44 20 7946 0000",
        "Website": "analytical.example",
        "Country": "US",
        "Industry": "Technology",
        "NumberOfEmployees": 250,
        "AnnualRevenue": None,
        "IsConverted": False,
        "Status": "Working - Contacted",
        "OwnerId": "0055g00000000001AAA",
    }
    return [
        CrmRecord("hubspot", "999", SEED_NOW - timedelta(days=1), contact),
        CrmRecord("salesforce", ADA, SEED_NOW - timedelta(days=2), lead),
    ]


def seeded_world(*, reverse: bool = False) -> World:
    data = generate(seed=11, leads=50, overlap=0.5, now=SEED_NOW)
    hubspot = [
        CrmRecord("hubspot", str(c.id), parse_time(c.properties["lastmodifieddate"]), c.properties)
        for c in data.hubspot_contacts
    ]
    salesforce = [
        CrmRecord("salesforce", lead["Id"], parse_time(lead["SystemModstamp"]), lead)
        for lead in data.salesforce_leads
    ]
    ada_contact, ada_lead = ada_records()
    stages = {o["Id"]: o["StageName"] for o in data.salesforce_opportunities}
    crms = {
        "hubspot": FakeCrm("hubspot", [*hubspot, ada_contact]),
        "salesforce": FakeCrm("salesforce", [*salesforce, ada_lead]),
    }
    return World(crms, stages, reverse=reverse)


RUNS = [SEED_NOW + timedelta(hours=hours) for hours in (1, 2, 3, 4, 5)]
# (crm, CRM field) -> the canonical field leadsync pushes there
PUSHED: dict[tuple[str, str], str] = {
    (binding.crm, binding.field): mapping.name
    for mapping in MAPPING.fields.values()
    if mapping.direction.pushes
    for binding in mapping.bindings
}


def test_the_first_run_writes_every_pushed_field_and_later_runs_nothing() -> None:
    world = seeded_world()
    first = world.run(RUNS[0])
    touched = {
        PUSHED.get((crm, name))
        for plan in first
        for crm, planned in plan.items()
        if planned is not None
        for name in planned.values
    }
    assert set(PUSHED.values()) <= touched  # so what follows holds for every pushed field
    assert written(world.run(RUNS[1])) == []
    assert written(world.run(RUNS[2])) == []


def test_the_seeded_population_is_matched_without_merging_duplicates() -> None:
    world = seeded_world()
    world.run(RUNS[0])
    linked = {key: snapshot.lead_id for key, snapshot in world.snapshots.items()}
    ada = {lead for (crm, record_id), lead in linked.items() if record_id in ("999", ADA)}
    assert len(ada) == 1  # the cross-reference joined the pair despite different emails
    per_lead_and_crm = [(lead, crm) for (crm, _), lead in linked.items()]
    assert len(per_lead_and_crm) == len(set(per_lead_and_crm))
    assert world.reviews  # the seed's duplicate records wait for a person
    assert world.quarantined  # and its broken emails are set aside with their reasons
    assert all(
        reason.startswith(("no email", "invalid email")) for reason in world.quarantined.values()
    )


def edit_both_crms(world: World) -> None:
    hubspot, salesforce = world.crms["hubspot"], world.crms["salesforce"]
    hubspot.edit("999", RUNS[2] + timedelta(minutes=10), phone="+44 1", email="ada@hs.example",
                 website="https://hs.example", jobtitle="Countess")  # fmt: skip
    salesforce.edit(ADA, RUNS[2] + timedelta(minutes=20), Phone="+44 2", Email="ada@sf.example",
                    Website="sf.example", Title=None)  # fmt: skip


def ada_state(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    contact = world.crms["hubspot"].records["999"].fields
    lead = world.crms["salesforce"].records[ADA].fields
    names = ("phone", "email", "website", "jobtitle")
    return {n: contact.get(n) for n in names}, {
        n: lead.get(n) for n in ("Phone", "Email", "Website", "Title")
    }


def test_edits_to_one_field_in_both_crms_are_settled_by_its_rule() -> None:
    world = seeded_world()
    for at in RUNS[:2]:
        world.run(at)
    edit_both_crms(world)
    world.run(RUNS[3])
    contact, lead = ada_state(world)
    assert contact == {
        "phone": "+44 2",  # most_recent: Salesforce's edit came later
        "email": "ada@sf.example",  # prefer_salesforce_unless_blank
        "website": "https://hs.example",  # prefer_hubspot_unless_blank
        "jobtitle": "Countess",  # Salesforce's title was cleared: HubSpot's stands
    }
    assert lead == {
        "Phone": "+44 2",
        "Email": "ada@sf.example",
        "Website": "https://hs.example",
        "Title": "Countess",
    }
    assert written(world.run(RUNS[4])) == []


def test_the_settlement_does_not_depend_on_the_order_records_come_in() -> None:
    results = []
    for reverse in (False, True):
        world = seeded_world(reverse=reverse)
        for at in RUNS[:2]:
            world.run(at)
        edit_both_crms(world)
        world.run(RUNS[3])
        results.append(
            {
                crm: {i: r.fields for i, r in fake.records.items()}
                for crm, fake in world.crms.items()
            }
        )
    assert results[0] == results[1]


def test_a_match_decision_is_stable_across_runs() -> None:
    world = seeded_world()
    world.run(RUNS[0])
    first = {key: snapshot.lead_id for key, snapshot in world.snapshots.items()}
    world.run(RUNS[1])
    assert {key: snapshot.lead_id for key, snapshot in world.snapshots.items()} == first
    kinds = match_batch(
        list(world.snapshots.values()),
        world.index,
        identity_field="email",
        new_lead_id=lambda: "unused",
    )
    assert {found.kind for found in kinds.values()} == {MatchKind.LINKED}


@pytest.mark.parametrize(("echo_aware", "phone"), [(True, "+44 3"), (False, "+44 2")])
def test_leadsyncs_own_write_is_not_mistaken_for_a_later_edit(echo_aware: bool, phone: str) -> None:
    world = seeded_world()
    world.echo_aware = echo_aware
    for at in RUNS[:2]:
        world.run(at)
    salesforce = world.crms["salesforce"]
    salesforce.edit(ADA, RUNS[2] - timedelta(minutes=30), Phone="+44 2")
    # Pulled "+44 2", the run writes it to HubSpot at RUNS[2]; meanwhile a rep types "+44 3".
    world.run(RUNS[2], while_running=lambda: salesforce.edit(
        ADA, RUNS[2] - timedelta(minutes=1), Phone="+44 3"
    ))  # fmt: skip
    world.run(RUNS[3])
    # HubSpot's "+44 2" is leadsync's echo, older than the rep's edit, which wins (most_recent).
    # Taken for a person's edit at RUNS[2], it would overwrite the rep's newer number.
    assert world.crms["salesforce"].records[ADA].fields["Phone"] == phone
    assert world.crms["hubspot"].records["999"].fields["phone"] == phone


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("  \t\n ", ""),
        ("  one line \u00a0", "one line"),
        (" +20 employees\r\n  +10 title \n", "+20 employees\n+10 title"),
        # Every line end str.splitlines knows, inside a value and around it.
        ("a\x0bb\x0cc\x1cd\x1de\x1ef\x85g\u2028h\u2029i", "a\nb\nc\nd\ne\nf\ng\nh\ni"),
        ("\u2028 a \u2029", "a"),
        (72, "72"),
        (False, "False"),
    ],
)
def test_values_are_compared_as_their_lines_stripped(value: Any, text: str) -> None:
    assert plan_module._text(value) == text
