"""First contact with a real org (issue 14): nothing destroyed, nothing silent, no daily churn.

Each guarantee a test over the sandbox, with a real store (SQLite, and PostgreSQL where the
store decides the outcome: see ENGINE_DECIDES):

1. a mapping that does not fit a CRM stops every command before its first write, naming each
   problem with its fix;
2. what the CRMs hold is evidence: an org whose HubSpot already holds customers, opportunities
   and SQLs keeps them, and a person's forward move is adopted;
3. a backward HubSpot stage whose set fails after its clear is put back in the same run;
4. one bad value does not fail the other records of its batch;
5. a refused write is tried again once its cause may have changed;
6. the day after, with nothing changed, almost nothing is written;
7. leadsync's own writes are never evidence for its own rules;
8. a run's summary names what failed, and a run where every write failed says so.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.properties import ApiException, Option, PropertyUpdate

from leadsync.cli import main
from leadsync.config import Config, load_config
from leadsync.connectors.base import Connector, KnownStamps, Page, Position
from leadsync.connectors.hubspot import DEFAULT_LIFECYCLE_ORDER, HubSpotConnector
from leadsync.connectors.retry import RetryPolicy
from leadsync.mapping.fields import related_objects
from leadsync.runtime import open_runtime
from leadsync.sandbox import (
    HubSpotSettings,
    RequestFault,
    SalesforceSettings,
    Sandbox,
    SandboxSettings,
)
from leadsync.sandbox_config import EXAMPLES, write_sandbox_config
from leadsync.sync.backfill import SWEEP, BackfillSpec
from leadsync.sync.engine import SyncEngine
from leadsync.sync.run_summary import RunSummary
from leadsync.sync.store import Store
from tests.support import search_caught_up

SEEDED_UNTIL = datetime(2026, 6, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
OPEN_LIMITS = HubSpotSettings(ten_second_limit=100_000, searches_per_second=1_000)
SETTINGS = SandboxSettings(port=0, seed=5, leads=300, seed_until=SEEDED_UNTIL, hubspot=OPEN_LIMITS)
QUICK = RetryPolicy(initial_wait=0.001, max_wait=0.005, max_attempts=3, max_seconds=30)
RANK = {stage: rank for rank, stage in enumerate(DEFAULT_LIFECYCLE_ORDER)}
WRITE_ENDPOINTS = ("hubspot.contacts.batch_update", "salesforce.collection_update")
BATCH_UPDATE = "/crm/v3/objects/contacts/batch/update"
RULES = {"recycle", "disqualify", "requalify"}


# For a test of what the engine decides from the CRMs (preflight, adoption, rules, a stage put
# back), which reads the store only to see the outcome: on SQLite alone. The store's own say
# (leadsync's writes as evidence, refusals and their backoff, the first sync's history) keeps
# both backends, and the store contract suite covers PostgreSQL's every query.
ENGINE_DECIDES = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SETTINGS


# ------------------------------------------------------------------------------ helpers


def bare_config(sandbox: Sandbox, folder: Path, database_url: str | None = None) -> Config:
    """A config pointed at `sandbox`, as `leadsync sandbox --config-out` writes it: nobody has
    run `leadsync setup`, so HubSpot has none of leadsync's properties yet."""
    path = folder / "leadsync.toml"
    write_sandbox_config(path, sandbox.url, sandbox.credentials())
    # The client paced at the sandbox's open limits (OPEN_LIMITS), not HubSpot's: a run with
    # hundreds of calls (a batch of refusals) would otherwise wait out 10-second windows that
    # no test here is about.
    text = re.sub(
        r"^base_url = .*\n",
        lambda line: (
            line.group(0)
            + f"requests_per_ten_seconds = {OPEN_LIMITS.ten_second_limit}\n"
            + f"searches_per_second = {OPEN_LIMITS.searches_per_second}\n"
        ),
        path.read_text(),
        count=1,
        flags=re.M,
    )
    assert "requests_per_ten_seconds" in text
    path.write_text(text)
    if database_url is not None:
        text = re.sub(r'url = "sqlite:///[^"]*"', f'url = "{database_url}"', path.read_text())
        path.write_text(text)
    return load_config(path)


def set_up(config: Config) -> Config:
    """`leadsync setup`: HubSpot's leadsync_* properties created."""
    connector = HubSpotConnector(config.hubspot_connection())
    try:
        connector.ensure_properties()
    finally:
        connector.close()
    return config


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path, database_url: str) -> Config:
    return set_up(bare_config(sandbox, tmp_path, database_url))


def with_definition(config: Config, text: str) -> Config:
    """`config` pointed at a lead definition holding `text`."""
    assert config.path is not None
    definition = config.path.with_name("lead_definition.toml")
    definition.write_text(text)
    shipped = str(EXAMPLES / "lead_definition.toml")
    current = config.path.read_text()
    config.path.write_text(current.replace(shipped, str(definition)))
    return load_config(config.path)


def cycle(
    config: Config,
    *,
    now: datetime = NOW,
    write: bool = True,
    wrap: Any = None,
) -> RunSummary:
    """One sync run with leadsync's clock held at `now`; HubSpot's retries quick. Runs are
    minutes apart: HubSpot's search has caught up with the edits and writes before it."""
    search_caught_up(config)
    with open_runtime(config) as runtime:
        hubspot = HubSpotConnector(replace(config.hubspot_connection(), retry=QUICK))
        connectors: dict[str, Connector] = {**runtime.connectors, "hubspot": hubspot}
        if wrap is not None:
            connectors = {crm: wrap(crm, c) for crm, c in connectors.items()}
        try:
            engine = SyncEngine(
                runtime.store,
                connectors,
                runtime.field_map,
                runtime.definition,
                clock=lambda: now,
            )
            return engine.run(write=write)
        finally:
            hubspot.close()


def sweep(config: Config, *, now: datetime) -> RunSummary:
    """The nightly sweep, with leadsync's clock held at `now`."""
    search_caught_up(config)
    summaries: list[RunSummary] = []
    with open_runtime(config) as runtime:
        queue = runtime.backfill_queue()
        backfill = queue.create(BackfillSpec(tuple(runtime.enabled_crms()), kind=SWEEP))
        runtime.run_backfill(
            backfill.backfill_id,
            should_stop=lambda: False,
            clock=lambda: now,
            on_summary=summaries.append,
        )
    (summary,) = summaries
    return summary


def hubspot_stages(sandbox: Sandbox) -> dict[str, str | None]:
    return {c["id"]: c["properties"].get("lifecyclestage") for c in sandbox.hubspot.snapshot()}


def write_calls(sandbox: Sandbox) -> int:
    endpoints = sandbox.stats.as_dict()["endpoints"]
    return sum(endpoints.get(name, 0) for name in WRITE_ENDPOINTS)


def lead_of(store: Store, crm: str, record_id: str) -> str:
    lead_id = store.lead_ids_for(crm, [record_id]).get(record_id)
    assert lead_id is not None, f"{crm} {record_id} belongs to no lead"
    return lead_id


def added_up(summary: RunSummary) -> None:
    for crm, counts in summary.crms.items():
        done = counts.written + counts.failed + counts.deferred + counts.held_back
        assert counts.records_to_update == done, (crm, counts)


# ------------------------------------------------------------------------------ 1. preflight


@pytest.mark.parametrize("command", [["sync", "--once"], ["plan"], ["backfill"]])
def test_a_command_on_an_org_without_setup_stops_before_writing_and_names_each_fix(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    config = bare_config(sandbox, tmp_path)
    sandbox.stats.clear()
    assert main([*command, "--config", str(config.path)]) == 2
    err = capsys.readouterr().err
    missing = re.findall(r"no field '(leadsync_\w+)' in hubspot contacts", err)
    assert sorted(missing) == sorted(
        [
            "leadsync_score",
            "leadsync_fit_score",
            "leadsync_engagement_score",
            "leadsync_grade",
            "leadsync_score_reasons",
            "leadsync_model_version",
            "leadsync_sla_breaches",
        ]
    )
    assert err.count("run `leadsync setup` to create it") == len(missing)
    # Located in the mapping file, like any mapping mistake.
    assert re.search(r"mapping\.toml:\d+: writeback\.hubspot\.score: ", err)
    assert "Traceback" not in err
    # Nothing written, and not even a page pulled: the run stopped before both.
    assert write_calls(sandbox) == 0
    assert "hubspot.contacts.search" not in sandbox.stats.as_dict()["endpoints"]


def test_once_set_up_the_same_sync_goes_through(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = bare_config(sandbox, tmp_path)
    assert main(["sync", "--once", "--config", str(config.path)]) == 2
    set_up(config)
    assert main(["sync", "--once", "--config", str(config.path)]) == 0
    assert write_calls(sandbox) > 0


@pytest.mark.parametrize(
    "sandbox_settings",
    [replace(SETTINGS, salesforce=SalesforceSettings(custom_fields=False))],
)
def test_salesforce_fields_no_admin_created_stop_the_run_with_what_to_create(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = set_up(bare_config(sandbox, tmp_path))
    assert main(["sync", "--once", "--config", str(config.path)]) == 2
    err = capsys.readouterr().err
    assert "no field 'Leadsync_Score__c' in salesforce Lead" in err
    assert "a Salesforce admin must create it" in err
    # The Contacts converted leads become are written too: their fields are named as well.
    assert (
        "writeback.salesforce.contact.score: no field 'Leadsync_Score__c' in salesforce Contact"
        in err
    )
    assert write_calls(sandbox) == 0


def test_check_online_reports_what_the_preflight_stops_on_and_more(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = bare_config(sandbox, tmp_path)
    assert main(["sync", "--once", "--config", str(config.path)]) == 2
    stopped = {line for line in capsys.readouterr().err.splitlines() if "leadsync_" in line}
    assert main(["check", "--online", "--config", str(config.path)]) == 2
    checked = {line.removeprefix("leadsync: ") for line in capsys.readouterr().err.splitlines()}
    assert {line.removeprefix("leadsync: ") for line in stopped} <= checked


@pytest.mark.parametrize("command", [["sync", "--once"], ["plan"], ["backfill"]])
def test_a_run_describes_each_crm_object_once(
    sandbox: Sandbox, tmp_path: Path, command: list[str]
) -> None:
    config = set_up(bare_config(sandbox, tmp_path))
    with open_runtime(config, connect=False) as runtime:
        objects = 1 + len(related_objects(runtime.field_map, "salesforce"))
        assert related_objects(runtime.field_map, "hubspot") == ()
    assert objects >= 3  # the Lead, and the Contact and Opportunity converted leads become
    sandbox.stats.clear()
    assert main([*command, "--config", str(config.path)]) == 0
    stats = sandbox.stats.as_dict()
    endpoints = stats["endpoints"]
    # The preflight's describes serve the whole run: none asked again by the pull or writes.
    assert stats["requests"]["hubspot"] > 2
    assert endpoints["hubspot.properties.list"] == 1
    assert endpoints["salesforce.describe"] == objects


@ENGINE_DECIDES
def test_a_property_an_admin_archived_after_setup_stops_the_next_sync_before_writing(
    sandbox: Sandbox, config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sync", "--once", "--config", str(config.path)]) == 0
    # An admin tidies the portal's properties, with HubSpot's own client.
    client = HubSpot(access_token="sandbox-token", host=sandbox.url)
    client.crm.properties.core_api.archive("contacts", "leadsync_grade")
    statuses = client.crm.properties.core_api.get_by_name("contacts", "hs_lead_status").options
    more = [Option(label=o.label, value=o.value, hidden=False) for o in statuses]
    more.append(Option(label="Nurture", value="NURTURE", hidden=False))
    client.crm.properties.core_api.update(
        "contacts", "hs_lead_status", PropertyUpdate(options=more)
    )
    read = client.crm.properties.core_api.get_by_name("contacts", "hs_lead_status")
    assert [o.value for o in read.options][-1] == "NURTURE"
    sandbox.stats.clear()
    capsys.readouterr()
    assert main(["sync", "--once", "--config", str(config.path)]) == 2
    err = capsys.readouterr().err
    assert "writeback.hubspot.grade: no field 'leadsync_grade' in hubspot contacts" in err
    assert "run `leadsync setup` to create it" in err
    assert write_calls(sandbox) == 0
    # HubSpot's own properties stay, whatever the admin asks.
    with pytest.raises(ApiException) as refused:
        client.crm.properties.core_api.archive("contacts", "email")
    assert refused.value.status == 400


# ----------------------------------------------------------- 2. what the CRMs hold is evidence


def test_a_first_sync_keeps_every_stage_the_org_holds_and_moves_none_back_without_a_rule(
    sandbox: Sandbox, config: Config
) -> None:
    before = hubspot_stages(sandbox)
    held = Counter(before.values())
    # The org already has customers, opportunities and SQLs, as a real one would.
    assert min(held["customer"], held["opportunity"], held["salesqualifiedlead"]) >= 5
    summary = cycle(config)
    after = hubspot_stages(sandbox)
    assert [i for i, stage in before.items() if stage and not after[i]] == []
    with Store(config.database_url) as store:
        # Contacts leadsync could not use (no or an invalid email, an ambiguous duplicate) wait
        # in quarantine or review: never written.
        linked = store.lead_ids_for("hubspot", list(before))
        assert all(before[i] == after[i] for i in before if i not in linked)
        backward = [
            i for i, stage in before.items() if stage and RANK[after[i] or ""] < RANK[stage]
        ]
        for contact in backward:
            kinds = {t.kind for t in store.transitions.history(lead_of(store, "hubspot", contact))}
            assert kinds & RULES, f"contact {contact} moved back without a rule"
        # HubSpot's customers stay customers, in HubSpot and in leadsync, those with no
        # Salesforce record too: adopted, with the reason.
        customers = [i for i, stage in before.items() if stage == "customer" and i in linked]
        alone = 0
        for contact in customers:
            lead_id = lead_of(store, "hubspot", contact)
            assert after[contact] == "customer"
            assert store.leads([lead_id])[lead_id].stage == "customer"
            records = store.records_of([lead_id])[lead_id]
            if all(record.crm == "hubspot" for record in records):
                alone += 1
                first = store.transitions.history(lead_id)[0]
                assert (first.kind, first.reason) == ("adopt", "adopted from HubSpot: customer")
        assert alone >= 1
        # Every lead HubSpot holds at SQL or later is at least there in leadsync, unless a
        # rule took it back.
        for contact, stage in before.items():
            if stage not in ("salesqualifiedlead", "opportunity", "customer"):
                continue
            if contact not in linked:
                continue
            lead_id = lead_of(store, "hubspot", contact)
            lead = store.leads([lead_id])[lead_id]
            ladder = ["sql", "opportunity", "customer"]
            wanted = {"salesqualifiedlead": "sql"}.get(stage, stage)
            if lead.stage not in ladder or ladder.index(lead.stage) < ladder.index(wanted):
                assert {t.kind for t in store.transitions.history(lead_id)} & RULES, (
                    contact,
                    lead.stage,
                )
    assert sum(1 for _ in backward) < len(customers)  # a few, each by a rule
    added_up(summary)


@ENGINE_DECIDES
def test_a_first_sync_adopts_the_conversions_and_won_deals_salesforce_holds(
    sandbox: Sandbox, config: Config
) -> None:
    deals = sandbox.salesforce.snapshot("Opportunity")
    won_deals = {deal["Id"] for deal in deals if deal["StageName"] == "Closed Won"}
    converted = [lead for lead in sandbox.salesforce.snapshot("Lead") if lead.get("IsConverted")]
    won = {lead["Id"] for lead in converted if lead.get("ConvertedOpportunityId") in won_deals}
    # The org already has converted leads and won deals, as a real one would.
    assert len(converted) >= 10
    assert len(won) >= 5
    cycle(config)
    with Store(config.database_url) as store:
        linked = store.lead_ids_for("salesforce", [lead["Id"] for lead in converted])
        assert len(linked) >= len(converted) - 3  # a few wait in quarantine (an invalid email)
        customers_alone = 0
        for record_id, lead_id in linked.items():
            lead = store.leads([lead_id])[lead_id]
            history = store.transitions.history(lead_id)
            if record_id in won:
                # A won deal is a customer, in leadsync, whatever HubSpot says.
                assert lead.stage == "customer", (record_id, lead.stage)
                records = store.records_of([lead_id])[lead_id]
                if all(record.crm == "salesforce" for record in records):
                    customers_alone += 1
                    first = history[0]
                    assert (first.kind, first.reason) == (
                        "adopt",
                        "adopted from Salesforce: Closed Won",
                    )
            elif lead.stage not in ("sql", "opportunity", "customer"):
                # A rep converted the lead: it is at least an SQL, unless a rule took it back.
                assert {t.kind for t in history} & RULES, (record_id, lead.stage)
        assert customers_alone >= 1


@ENGINE_DECIDES
def test_explain_shows_the_adopted_stage_and_why(
    sandbox: Sandbox, config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    cycle(config)
    contact = next(i for i, stage in hubspot_stages(sandbox).items() if stage == "opportunity")
    capsys.readouterr()
    assert main(["explain", contact, "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"-> opportunity \(adopt\): adopted from HubSpot: opportunity", out), out


def _lead_alone_at(
    store: Store, sandbox: Sandbox, stage: str, hubspot: str, *, among: Sequence[str] = ()
) -> str:
    """A contact whose lead is at `stage`, HubSpot holding `hubspot`, with no other record
    (and one of `among`, if given)."""
    for contact, held in hubspot_stages(sandbox).items():
        if held != hubspot or (among and contact not in among):
            continue
        lead_id = store.lead_ids_for("hubspot", [contact]).get(contact)
        if lead_id is None or store.leads([lead_id])[lead_id].stage != stage:
            continue
        if all(r.crm == "hubspot" for r in store.records_of([lead_id])[lead_id]):
            return contact
    raise AssertionError(f"no lead alone at {stage} with HubSpot {hubspot}")


@ENGINE_DECIDES
def test_a_persons_forward_move_is_adopted_not_undone(sandbox: Sandbox, config: Config) -> None:
    cycle(config)
    with Store(config.database_url) as store:
        contact = _lead_alone_at(store, sandbox, "lead", "lead")
    sandbox.hubspot.set_activity(int(contact), {"lifecyclestage": "salesqualifiedlead"})
    cycle(config, now=NOW + timedelta(hours=1))
    assert hubspot_stages(sandbox)[contact] == "salesqualifiedlead"
    with Store(config.database_url) as store:
        lead_id = lead_of(store, "hubspot", contact)
        assert store.leads([lead_id])[lead_id].stage == "sql"
        last = store.transitions.history(lead_id)[-1]
        assert (last.kind, last.reason) == ("adopt", "adopted from HubSpot: salesqualifiedlead")
    # Adopted once: the next run moves nothing and writes nothing.
    sandbox.stats.clear()
    again = cycle(config, now=NOW + timedelta(hours=2))
    assert again.transitions == 0
    assert write_calls(sandbox) == 0


@ENGINE_DECIDES
def test_a_later_stage_a_person_set_is_kept(sandbox: Sandbox, config: Config) -> None:
    cycle(config)
    with Store(config.database_url) as store:
        contact = _lead_alone_at(store, sandbox, "customer", "customer")
    sandbox.hubspot.set_activity(int(contact), {"lifecyclestage": "evangelist"})
    cycle(config, now=NOW + timedelta(hours=1))
    # leadsync has no evangelist stage; HubSpot's later stage is a person's, and stays.
    assert hubspot_stages(sandbox)[contact] == "evangelist"
    with Store(config.database_url) as store:
        written = [w.field for w in store.audit_log.entries(crm="hubspot", record_id=contact)]
    assert "lifecyclestage" not in written


@ENGINE_DECIDES
def test_a_crm_value_the_mapping_lists_for_the_leads_stage_is_not_written_over(
    sandbox: Sandbox, config: Config
) -> None:
    # The shipped mapping lists HubSpot's subscriber among the values that hold `lead`.
    before = hubspot_stages(sandbox)
    subscribers = [contact for contact, stage in before.items() if stage == "subscriber"]
    assert len(subscribers) >= 5
    summary = cycle(config)
    after = hubspot_stages(sandbox)
    with Store(config.database_url) as store:
        at_lead = []
        for contact in subscribers:
            lead_id = store.lead_ids_for("hubspot", [contact]).get(contact)
            if lead_id is not None and store.leads([lead_id])[lead_id].stage == "lead":
                at_lead.append(contact)
        assert len(at_lead) >= 5
        for contact in at_lead:
            assert after[contact] == "subscriber", contact
            written = [
                w.field for w in store.audit_log.entries(run_id=summary.run_id, record_id=contact)
            ]
            assert "lifecyclestage" not in written, contact
        # A subscriber leadsync moves on (an MQL by its score) is written the later stage.
        moved = [
            contact
            for contact in subscribers
            if contact not in at_lead and after[contact] not in ("subscriber", None)
        ]
        assert all(RANK[after[contact]] > RANK["subscriber"] for contact in moved)


def test_a_stage_a_person_moved_back_after_leadsync_wrote_it_is_not_written_again(
    sandbox: Sandbox, config: Config
) -> None:
    before = hubspot_stages(sandbox)
    cycle(config)
    with Store(config.database_url) as store:
        # A lead HubSpot held at lead that leadsync made an MQL there, by its score.
        was_lead = [contact for contact, stage in before.items() if stage == "lead"]
        contact = _lead_alone_at(store, sandbox, "mql", "marketingqualifiedlead", among=was_lead)
        wrote = [w.field for w in store.audit_log.entries(crm="hubspot", record_id=contact)]
    assert before[contact] == "lead"
    assert "lifecyclestage" in wrote
    # A marketer knows better: back to lead, in HubSpot's own screen.
    sandbox.hubspot.set_activity(int(contact), {"lifecyclestage": "lead"})
    summary = cycle(config, now=NOW + timedelta(hours=1))
    assert hubspot_stages(sandbox)[contact] == "lead"
    with Store(config.database_url) as store:
        written = [
            w.field for w in store.audit_log.entries(run_id=summary.run_id, record_id=contact)
        ]
        lead_id = lead_of(store, "hubspot", contact)
        assert store.leads([lead_id])[lead_id].stage == "mql"  # no rule took it back
    assert "lifecyclestage" not in written
    # Nor on any run after.
    cycle(config, now=NOW + timedelta(hours=2))
    assert hubspot_stages(sandbox)[contact] == "lead"


def test_a_status_a_rep_changed_after_leadsync_wrote_it_is_not_written_again(
    sandbox: Sandbox, config: Config
) -> None:
    _, sf_lead = _disqualified_pair(sandbox, config)
    assert sandbox.salesforce.record("Lead", sf_lead)["Status"] == "Closed - Not Converted"
    # The rep works the lead again in Salesforce; HubSpot still says unqualified.
    sandbox.salesforce.update_record("Lead", sf_lead, {"Status": "Working - Contacted"})
    summary = cycle(config, now=NOW + timedelta(hours=2))
    assert sandbox.salesforce.record("Lead", sf_lead)["Status"] == "Working - Contacted"
    with Store(config.database_url) as store:
        written = [
            w.field for w in store.audit_log.entries(run_id=summary.run_id, record_id=sf_lead)
        ]
        lead_id = lead_of(store, "salesforce", sf_lead)
        assert store.leads([lead_id])[lead_id].stage == "disqualified"
    assert "Status" not in written


def _customers_from_salesforce_only(config: Config) -> Config:
    """The shipped definition, but RevOps count only a won Salesforce opportunity as proof of
    a customer: HubSpot's customers are no evidence."""
    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    evidence = '  { field = "hubspot_lifecycle", in = ["customer", "evangelist"] },\n'
    assert evidence in shipped
    return with_definition(config, shipped.replace(evidence, ""))


@ENGINE_DECIDES
@pytest.mark.parametrize(
    ("status", "rule"), [("UNQUALIFIED", "disqualify"), ("BAD_TIMING", "recycle")]
)
def test_a_rule_leaves_a_crm_stage_alone_that_the_rule_does_not_leave(
    sandbox: Sandbox, config: Config, status: str, rule: str
) -> None:
    config = _customers_from_salesforce_only(config)
    cycle(config)
    with Store(config.database_url) as store:
        # HubSpot holds customer; leadsync, without evidence, has the lead at an earlier
        # stage (one a recycle rule takes back).
        contact = _lead_alone_at(store, sandbox, "mql", "customer")
    sandbox.hubspot.set_activity(int(contact), {"hs_lead_status": status})
    cycle(config, now=NOW + timedelta(hours=1))
    with Store(config.database_url) as store:
        lead_id = lead_of(store, "hubspot", contact)
        assert store.transitions.history(lead_id)[-1].kind == rule
    # Neither rule takes a customer anywhere: HubSpot's stays.
    assert hubspot_stages(sandbox)[contact] == "customer"


# ------------------------------------------------------------- 3. no half-done stage move


def _adopted_sql(store: Store, sandbox: Sandbox) -> str:
    return _lead_alone_at(store, sandbox, "sql", "salesqualifiedlead")


@ENGINE_DECIDES
def test_a_backward_move_whose_set_fails_is_put_back_in_the_same_run(
    sandbox: Sandbox, config: Config
) -> None:
    cycle(config)
    with Store(config.database_url) as store:
        contact = _adopted_sql(store, sandbox)
    # The rep puts the lead back to nurture: a recycle rule, so HubSpot's stage must go back
    # from SQL to lead: a clear, then a set. Every set of "lead" fails between the two.
    sandbox.hubspot.set_activity(int(contact), {"hs_lead_status": "BAD_TIMING"})
    sandbox.faults.fail_requests(
        RequestFault("POST", BATCH_UPDATE, 503, body_contains='"lifecyclestage":"lead"')
    )
    sandbox.stats.clear()
    summary = cycle(config, now=NOW + timedelta(hours=1))
    assert sandbox.stats.as_dict()["faulted"]["hubspot matched"] >= 1  # the set was tried
    # Put back in the same run: the contact never ends a run without its stage.
    assert hubspot_stages(sandbox)[contact] == "salesqualifiedlead"
    assert summary.crms["hubspot"].deferred >= 1
    with Store(config.database_url) as store:
        lead_id = lead_of(store, "hubspot", contact)
        assert store.leads([lead_id])[lead_id].stage == "recycled"
        (write,) = [
            w
            for w in store.audit_log.entries(run_id=summary.run_id, record_id=contact)
            if w.field == "lifecyclestage"
        ]
        assert write.status == "deferred"
        assert "lifecycle stage put back to salesqualifiedlead" in write.message
    # The CRM answers again: the next run makes the move, by the rule, with its reason.
    sandbox.faults.clear_request_faults()
    cycle(config, now=NOW + timedelta(hours=2))
    assert hubspot_stages(sandbox)[contact] == "lead"
    with Store(config.database_url) as store:
        recycle = [
            t
            for t in store.transitions.history(lead_of(store, "hubspot", contact))
            if t.kind == "recycle"
        ]
        assert [t.reason for t in recycle] == ["HubSpot lead status Bad Timing: back to nurture"]


# ------------------------------------------------ 4 and 5. one bad value, refused then retried


def _grades_without_a(sandbox: Sandbox, grade: str = "A") -> None:
    """An admin made leadsync_grade a dropdown without "A" (or `grade`) before `leadsync
    setup` ran."""
    answer = requests.post(
        f"{sandbox.url}/crm/v3/properties/contacts",
        headers={"Authorization": "Bearer sandbox-token"},
        json={
            "name": "leadsync_grade",
            "label": "Lead grade",
            "type": "enumeration",
            "fieldType": "select",
            "groupName": "contactinformation",
            "options": [{"label": g, "value": g} for g in "ABCD" if g != grade],
        },
        timeout=10,
    )
    assert answer.status_code == 201, answer.text


@pytest.fixture
def refusing(sandbox: Sandbox, tmp_path: Path, database_url: str) -> Config:
    _grades_without_a(sandbox)
    return set_up(bare_config(sandbox, tmp_path, database_url))


def _graded_a(summary: RunSummary) -> int:
    return summary.crms["hubspot"].failures["invalid_option"].count


def test_one_refused_value_fails_only_its_record_and_waits_with_hubspots_reason(
    sandbox: Sandbox, refusing: Config
) -> None:
    summary = cycle(refusing)
    hubspot = summary.crms["hubspot"]
    refused = _graded_a(summary)
    assert refused >= 1
    assert hubspot.failed == refused
    assert hubspot.written == hubspot.records_to_update - refused
    example = hubspot.failures["invalid_option"].example
    assert re.fullmatch(r"record \d+ \(leadsync_grade\)", example)
    with Store(refusing.database_url) as store:
        waiting = [q for q in store.quarantine.entries() if q.crm == "hubspot"]
        refusals = [q for q in waiting if q.reason.startswith("write refused by hubspot")]
    assert len(refusals) == refused
    assert all("invalid_option" in q.reason for q in refusals)
    assert all("was not one of the allowed options" in q.reason for q in refusals)
    # Their neighbours landed: every contact leadsync wrote to holds a score, but the refused.
    scored = [c for c in sandbox.hubspot.snapshot() if c["properties"].get("leadsync_score")]
    assert len(scored) == hubspot.written
    refused_ids = {q.record_id for q in refusals}
    assert not refused_ids & {c["id"] for c in scored}
    added_up(summary)


def test_a_refused_write_is_tried_again_when_its_cause_may_have_changed(
    sandbox: Sandbox, refusing: Config
) -> None:
    refused = _graded_a(cycle(refusing))
    # The echo of the writes that landed comes back once (a lead's other record).
    cycle(refusing, now=NOW + timedelta(minutes=5))
    # Nothing changed since: the refused records wait, no call is made for them.
    sandbox.stats.clear()
    quiet = cycle(refusing, now=NOW + timedelta(minutes=10))
    assert quiet.crms["hubspot"].records_to_update == 0
    assert write_calls(sandbox) == 0
    # After the backoff (an hour, doubling with each refusal) they are tried again, and
    # refused again, nothing having changed.
    later = cycle(refusing, now=NOW + timedelta(hours=5))
    assert _graded_a(later) == refused
    # The CRM's describe changed (another property made): tried again at once.
    answer = requests.post(
        f"{sandbox.url}/crm/v3/properties/contacts",
        headers={"Authorization": "Bearer sandbox-token"},
        json={
            "name": "persona",
            "label": "Persona",
            "type": "string",
            "fieldType": "text",
            "groupName": "contactinformation",
        },
        timeout=10,
    )
    assert answer.status_code == 201
    assert _graded_a(cycle(refusing, now=NOW + timedelta(hours=5, minutes=5))) == refused
    # RevOps drop grade A from the definition: the new model makes the same records writable.
    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    without_a = shipped.replace('[[scoring.grades]]\ngrade = "A"\nmin_score = 80\n\n', "")
    assert without_a != shipped
    fixed = with_definition(refusing, without_a)
    retried = cycle(fixed, now=NOW + timedelta(hours=5, minutes=10))
    assert retried.crms["hubspot"].failed == 0
    assert retried.crms["hubspot"].written >= refused
    with Store(fixed.database_url) as store:
        assert (
            store.quarantine.due_refusals("hubspot", context="", now=NOW + timedelta(days=365))
            == []
        )
        assert not [q for q in store.quarantine.entries() if q.reason.startswith("write refused")]


def test_writes_refused_for_the_request_itself_are_tried_again_by_every_sync(
    sandbox: Sandbox, config: Config
) -> None:
    # A private app without the contacts write scope: HubSpot refuses every batch update,
    # whatever its records hold. Nothing leadsync can see tells when an admin grants it.
    sandbox.faults.fail_requests(RequestFault("POST", BATCH_UPDATE, 403))
    first = cycle(config).crms["hubspot"]
    assert first.failed == first.records_to_update > 0
    # Still refused: every sync tries again and says so, rather than a quiet run with the
    # refused records waiting out a backoff.
    again = cycle(config, now=NOW + timedelta(minutes=5))
    assert again.crms["hubspot"].records_to_update == first.failed
    assert "forbidden" in again.every_write_failed()["hubspot"]
    # The admin grants the scope: the next sync writes every one of them.
    sandbox.faults.clear_request_faults()
    granted = cycle(config, now=NOW + timedelta(minutes=10)).crms["hubspot"]
    assert (granted.written, granted.failed) == (first.failed, 0)
    scored = [c for c in sandbox.hubspot.snapshot() if c["properties"].get("leadsync_score")]
    assert len(scored) == first.failed
    with Store(config.database_url) as store:
        assert not [q for q in store.quarantine.entries() if q.reason.startswith("write refused")]


# ------------------------------------------------------------------------------ 6. no churn


def test_the_day_after_with_nothing_changed_the_sweep_writes_almost_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # Without the handoff: the leads it hands off, not accepted a day later, are flagged as
    # breaches, rightly; the churn of scores is this test's subject.
    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    config = with_definition(
        set_up(bare_config(sandbox, tmp_path)), shipped[: shipped.index("[handoff]")]
    )
    cycle(config)
    day_after = sweep(config, now=NOW + timedelta(days=1))
    records = sum(c.matched for c in day_after.crms.values())
    written = sum(c.written for c in day_after.crms.values())
    assert records > 300
    assert written <= 0.01 * records, day_after.plan.per_field() if day_after.plan else None
    # What little it writes is the score and what comes with it, never the reasons' wording:
    # a reason names a date, so it reads the same tomorrow.
    changed = {name for _, name in (day_after.plan.field_counts if day_after.plan else {})}
    assert changed <= {
        "leadsync_score",
        "leadsync_engagement_score",
        "leadsync_grade",
        "leadsync_score_reasons",
        "Leadsync_Score__c",
        "Leadsync_Engagement_Score__c",
        "Leadsync_Grade__c",
        "Leadsync_Score_Reasons__c",
    }


def test_exact_decay_would_rewrite_many_leads_the_day_after(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # What the steps save, and proof that the test above can fail.
    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    config = with_definition(
        set_up(bare_config(sandbox, tmp_path)), shipped.replace("step = 10", "step = 1")
    )
    cycle(config)
    day_after = sweep(config, now=NOW + timedelta(days=1))
    records = sum(c.matched for c in day_after.crms.values())
    assert sum(c.written for c in day_after.crms.values()) > 0.05 * records


# -------------------------------------------------------- 7. leadsync's writes are not evidence


def _open_pair(store: Store, sandbox: Sandbox) -> tuple[str, str]:
    """A HubSpot contact and an open Salesforce lead of one lead, an MQL: qualified enough
    that, requalified, it becomes an MQL again, where a recycle rule could take it."""
    for lead in sandbox.salesforce.snapshot("Lead"):
        if lead.get("IsConverted") or lead.get("Status") == "Closed - Not Converted":
            continue
        lead_id = store.lead_ids_for("salesforce", [lead["Id"]]).get(lead["Id"])
        if lead_id is None:
            continue
        merged = store.leads([lead_id])[lead_id]
        # An MQL by its score (the shipped criteria), not only by HubSpot's say-so.
        if merged.stage != "mql" or (merged.score or 0) < 60 or (merged.fit or 0) < 20:
            continue
        contacts = [
            r.record_id
            for r in store.records_of([lead_id])[lead_id]
            if r.crm == "hubspot" and not r.deleted
        ]
        if len(contacts) == 1:
            return contacts[0], lead["Id"]
    raise AssertionError("no open pair in the seeded data")


def _disqualified_pair(sandbox: Sandbox, config: Config) -> tuple[str, str]:
    """An open pair (`_open_pair`) after a first sync, disqualified in HubSpot an hour later
    and synced: the contact and the Salesforce lead."""
    cycle(config)
    with Store(config.database_url) as store:
        contact, sf_lead = _open_pair(store, sandbox)
    sandbox.hubspot.set_activity(int(contact), {"hs_lead_status": "UNQUALIFIED"})
    cycle(config, now=NOW + timedelta(hours=1))
    return contact, sf_lead


def test_a_disqualified_lead_reopened_in_hubspot_requalifies_without_recycling(
    sandbox: Sandbox, config: Config
) -> None:
    contact, sf_lead = _disqualified_pair(sandbox, config)
    # Disqualified: leadsync closed the Salesforce lead itself.
    assert sandbox.salesforce.record("Lead", sf_lead)["Status"] == "Closed - Not Converted"
    sandbox.hubspot.set_activity(int(contact), {"hs_lead_status": "OPEN"})
    summary = cycle(config, now=NOW + timedelta(hours=2))
    with Store(config.database_url) as store:
        lead_id = lead_of(store, "hubspot", contact)
        moves = [
            (t.kind, t.to_stage.value)
            for t in store.transitions.history(lead_id)
            if t.at == NOW + timedelta(hours=2)
        ]
        stage = store.leads([lead_id])[lead_id].stage
    # The Status leadsync wrote is its own, not a rep's "Closed - Not Converted": no recycle.
    assert moves == [("requalify", "lead"), ("advance", "mql")]
    assert stage == "mql"
    assert summary.transitions == len(moves)


def test_the_same_status_set_by_a_person_does_recycle(sandbox: Sandbox, config: Config) -> None:
    cycle(config)
    with Store(config.database_url) as store:
        contact, sf_lead = _open_pair(store, sandbox)
        lead_id = lead_of(store, "hubspot", contact)
    sandbox.salesforce.update_record("Lead", sf_lead, {"Status": "Closed - Not Converted"})
    cycle(config, now=NOW + timedelta(hours=1))
    with Store(config.database_url) as store:
        last = store.transitions.history(lead_id)[-1]
        assert store.leads([lead_id])[lead_id].stage == "recycled"
    assert (last.kind, last.reason) == (
        "recycle",
        "Salesforce status Closed - Not Converted: back to nurture",
    )


# ------------------------------------------------------------- 8. an honest outcome


def test_a_run_where_every_hubspot_write_failed_exits_1_naming_the_cause(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = set_up(bare_config(sandbox, tmp_path))
    # A private app without the contacts write scope: every batch update is refused.
    sandbox.faults.fail_requests(RequestFault("POST", BATCH_UPDATE, 403))
    assert main(["sync", "--once", "--config", str(config.path)]) == 1
    captured = capsys.readouterr()
    assert re.search(
        r"leadsync: every hubspot write of the run failed \((\d+)\): forbidden ×\1, "
        r"e\.g\. record \d+",
        captured.err,
    ), captured.err
    table = captured.out
    assert "held back" in table.splitlines()[1]
    assert re.search(r"hubspot forbidden: \d+, e\.g\. record \d+", table)
    assert "@" not in table  # record ids and field names, never an email or a value
    # Salesforce's writes landed: the run is a failure for HubSpot only.
    assert not re.search(r"every salesforce write", captured.err)
    # ... and `leadsync runs` says it failed, as the exit code does.
    assert main(["runs", "--json", "--config", str(config.path)]) == 0
    assert [run["outcome"] for run in json.loads(capsys.readouterr().out)] == ["failed"]


@pytest.mark.parametrize("sandbox_settings", [replace(SETTINGS, seed_until=None)])
def test_a_backfill_where_every_hubspot_write_failed_exits_1_naming_the_cause(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = set_up(bare_config(sandbox, tmp_path))
    sandbox.faults.fail_requests(RequestFault("POST", BATCH_UPDATE, 403))
    assert main(["backfill", "--config", str(config.path)]) == 1
    err = capsys.readouterr().err
    assert re.search(r"leadsync: every hubspot write of the run failed \(\d+\): forbidden", err)


def test_the_json_summary_names_each_failure_cause_with_a_count_and_an_example(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI's clock is the wall clock: "D", the commonest grade, is refused whatever the
    # day's decay makes of the few leads near grade A's threshold.
    _grades_without_a(sandbox, "D")
    config = set_up(bare_config(sandbox, tmp_path))
    assert main(["sync", "--once", "--json", "--config", str(config.path)]) == 0
    body = json.loads(capsys.readouterr().out)
    hubspot = body["crms"]["hubspot"]
    cause = hubspot["failures"]["invalid_option"]
    assert cause["count"] == hubspot["failed"] >= 1
    assert re.fullmatch(r"record \d+ \(leadsync_grade\)", cause["example"])
    assert "every_write_failed" not in body
    for counts in body["crms"].values():
        done = counts["written"] + counts["failed"] + counts["deferred"] + counts["held_back"]
        assert counts["records_to_update"] == done


class _EditsBeforeWrite:
    """A connector whose CRM a person edits once its pull is over, before the run writes."""

    def __init__(self, inner: Connector, edit: Any) -> None:
        self._inner = inner
        self._edit = edit
        self.crm = inner.crm

    def pull(
        self,
        position: Position | None,
        *,
        fields: Sequence[str],
        started_at: datetime,
        known: KnownStamps | None = None,
    ) -> Iterator[Page]:
        yield from self._inner.pull(position, fields=fields, started_at=started_at, known=known)
        self._edit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_run_whose_every_hubspot_write_was_held_back_is_no_failure(
    sandbox: Sandbox, config: Config
) -> None:
    # Every contact archived once the pull is over: each planned write meets a record gone
    # since the pull and is held back by design (the next pull brings the archive), so no
    # HubSpot write lands, and none failed or was deferred.
    def archive_every_contact() -> None:
        ids = [{"id": c["id"]} for c in sandbox.hubspot.snapshot()]
        for start in range(0, len(ids), 100):
            answer = requests.post(
                f"{sandbox.url}/crm/v3/objects/contacts/batch/archive",
                headers={"Authorization": "Bearer sandbox-token"},
                json={"inputs": ids[start : start + 100]},
                timeout=10,
            )
            assert answer.status_code == 204

    summary = cycle(
        config,
        wrap=lambda crm, c: _EditsBeforeWrite(c, archive_every_contact) if crm == "hubspot" else c,
    )
    hubspot = summary.crms["hubspot"]
    assert hubspot.held_back == hubspot.records_to_update > 0
    assert (hubspot.written, hubspot.failed, hubspot.deferred) == (0, 0, 0)
    assert summary.every_write_failed() == {}  # what `sync --once` exits 1 for
    with Store(config.database_url) as store:
        assert [run.status for run in store.run_log.latest(1)] == ["succeeded"]


def test_a_run_whose_every_hubspot_write_was_deferred_fails_saying_so(
    sandbox: Sandbox, config: Config
) -> None:
    # HubSpot away for every write (503s outlasting the retries): the writes are deferred to
    # the next run, and the run, in which HubSpot took none, is one failed at run time (a CRM
    # down: exit 1), its message saying they were deferred, not refused.
    sandbox.faults.fail_requests(RequestFault("POST", BATCH_UPDATE, 503))
    summary = cycle(config)
    hubspot = summary.crms["hubspot"]
    assert hubspot.deferred == hubspot.records_to_update > 0
    assert re.fullmatch(
        r"every hubspot write of the run failed or was deferred \((\d+)\): "
        r"\w+ ×\1, e\.g\. record \d+",
        summary.every_write_failed()["hubspot"],
    )
    with Store(config.database_url) as store:
        assert [run.status for run in store.run_log.latest(1)] == ["failed"]


def test_the_held_back_column_adds_the_rows_up(sandbox: Sandbox, tmp_path: Path) -> None:
    config = set_up(bare_config(sandbox, tmp_path))
    contacts = [c["id"] for c in sandbox.hubspot.snapshot()][:5]

    def edit() -> None:
        for contact in contacts:
            sandbox.hubspot.set_activity(int(contact), {"jobtitle": "Edited meanwhile"})

    summary = cycle(
        config,
        wrap=lambda crm, c: _EditsBeforeWrite(c, edit) if crm == "hubspot" else c,
    )
    assert summary.crms["hubspot"].held_back >= 1
    added_up(summary)
