"""The handoff over the sandbox, end to end: HubSpot-only leads that reach MQL get exactly one
Salesforce lead, with an owner from the routes, linked back to HubSpot; a person Salesforce
already holds is matched, not duplicated; leads that cannot be handed off are named problems;
a run cut at any call of the handoff, then run again, ends as if it had not been cut."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadsync.config import Config
from leadsync.connectors.base import RecordUpdate, WriteResult, WriteStatus
from leadsync.reports.build import report_for
from leadsync.runtime import open_runtime
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sandbox.schema import INBOUND_QUEUE_ID, SANDBOX_OWNERS
from leadsync.sandbox_config import EXAMPLES
from leadsync.sync.engine import SyncEngine
from leadsync.sync.handoff_ledger import CREATED, MATCHED, Handoff
from leadsync.sync.run_summary import RunSummary
from leadsync.sync.sla.report import format_sla, sla_view
from tests.support import Cut, Tripwire, crm_state, set_up_sandbox_config

SEEDED_UNTIL = datetime(2026, 6, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 2, tzinfo=UTC)
SETTINGS = SandboxSettings(
    port=0,
    seed=8,
    leads=120,
    seed_until=SEEDED_UNTIL,
    hubspot=HubSpotSettings(ten_second_limit=100_000, searches_per_second=1_000),
)
ENTERPRISE = {"0055g0000000004AAA", "0055g0000000005AAA"}
NORTH_AMERICA = {"0055g0000000002AAA", "0055g0000000006AAA"}
EUROPE = {"0055g0000000003AAA", "0055g0000000001AAA"}
HANDOFF_CALLS = frozenset({"upsert", "find_people", "write"})
# `unfinished` is asked before the handoff starts: the wire is not armed then.
LEDGER_CALLS = frozenset({"of", "save", "unfinished", "loads"})


class Wrapped:
    """An object whose methods `names` pass the tripwire; `handoffs` (the store's ledger)
    is wrapped the same way, and the store's audit log's methods named "audit_log.<name>"."""

    def __init__(self, inner: Any, wire: Tripwire, names: frozenset[str]) -> None:
        self._inner, self._wire, self._names = inner, wire, names
        self.crm = getattr(inner, "crm", None)

    @property
    def handoffs(self) -> Any:
        return Wrapped(self._inner.handoffs, self._wire, LEDGER_CALLS)

    @property
    def audit_log(self) -> Any:
        prefix = "audit_log."
        names = frozenset(n.removeprefix(prefix) for n in self._names if n.startswith(prefix))
        return Wrapped(self._inner.audit_log, self._wire, names)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if callable(value) and name in self._names:
            return self._wire.wrap(value, arms=name in ("loads", "of"))
        return value


def config_for(sandbox: Sandbox, folder: Path, definition: str | None = None) -> Config:
    config: Config = set_up_sandbox_config(sandbox, folder)
    if definition is not None:
        path = folder / "lead_definition.toml"
        path.write_text(definition)
        shipped = str(EXAMPLES / "lead_definition.toml")
        config.path.write_text(config.path.read_text().replace(shipped, str(path)))
        from leadsync.config import load_config

        config = load_config(config.path)
    return config


def sync(config: Config, wire: Tripwire | None = None, *, at: datetime = NOW) -> RunSummary:
    with open_runtime(config) as runtime:
        store: Any = runtime.store
        connectors: dict[str, Any] = dict(runtime.connectors)
        if wire is not None:
            store = Wrapped(store, wire, frozenset({"audit_log.record"}))
            connectors = {crm: Wrapped(c, wire, HANDOFF_CALLS) for crm, c in connectors.items()}
        engine = SyncEngine(
            store, connectors, runtime.field_map, runtime.definition, clock=lambda: at
        )
        return engine.run(write=True)


def handoffs(config: Config) -> list[Handoff]:
    with open_runtime(config, connect=False) as runtime:
        return runtime.store.handoffs.all()


def handed_off_leads(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [lead for lead in sandbox.salesforce.snapshot("Lead") if lead.get("Leadsync_Id__c")]


def contacts_by_id(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    return {str(c["id"]): c["properties"] for c in sandbox.hubspot.snapshot()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], int]:
    """The CRMs after one uninterrupted run, and the handoff calls it made."""
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path_factory.mktemp("reference"))
        wire = Tripwire(None, after=False, armed=False)
        sync(config, wire)
        return crm_state(sandbox), wire.calls


def test_hubspot_only_mqls_get_exactly_one_salesforce_lead_each_owned_by_the_routes(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        first = sync(config)
        created = [h for h in handoffs(config) if h.status == CREATED]
        assert first.handoff is not None
        assert first.handoff.handed_off == len(created) > 5
        leads = {lead["Leadsync_Id__c"]: lead for lead in handed_off_leads(sandbox)}
        assert sorted(leads) == sorted(h.lead_id for h in created)
        contacts = contacts_by_id(sandbox)
        linked = {p.get("salesforceleadid") for p in contacts.values()}
        for handoff in created:
            lead = leads[handoff.lead_id]
            assert lead["Id"] == handoff.record_id
            assert lead["OwnerId"] == handoff.owner
            assert lead["Leadsync_Stage__c"] in ("MQL", "SAL", "SQL")
            assert lead["Id"] in linked
            employees, country = lead.get("NumberOfEmployees"), lead.get("Country")
            if employees is not None and employees >= 1000:
                assert lead["OwnerId"] in ENTERPRISE, handoff.rule
            elif country in ("US", "CA", "MX", "United States", "Canada", "Mexico"):
                assert lead["OwnerId"] in NORTH_AMERICA, handoff.rule
            elif country in ("GB", "DE", "FR", "NL", "ES", "SE"):
                assert lead["OwnerId"] in EUROPE, handoff.rule
            else:
                assert lead["OwnerId"] == INBOUND_QUEUE_ID
                assert handoff.rule == "fallback owner"
        emails = Counter(str(lead["Email"]).lower() for lead in sandbox.salesforce.snapshot("Lead"))
        assert all(emails[str(lead["Email"]).lower()] == 1 for lead in leads.values())
        sandbox.stats.clear()
        second = sync(config)
        assert sum(c.written for c in second.crms.values()) == 0
        assert second.handoff is not None
        assert second.handoff.handed_off == 0
        endpoints = sandbox.stats.as_dict()["endpoints"]
        assert endpoints.get("salesforce.collection_upsert", 0) == 0
        assert endpoints.get("hubspot.contacts.batch_update", 0) == 0


def _points() -> list[tuple[int, bool]]:
    return [(n, after) for n in range(1, 20) for after in (False, True)]


def test_the_reference_run_has_cut_points_to_test(reference: tuple[Any, int]) -> None:
    _, calls = reference
    assert 5 < calls < 20  # every call is covered by _points()


@pytest.mark.slow
@pytest.mark.parametrize(("at", "after"), _points())
def test_a_run_cut_at_any_call_of_the_handoff_then_rerun_creates_each_lead_once(
    reference: tuple[dict[str, Any], int], tmp_path: Path, at: int, after: bool
) -> None:
    expected, calls = reference
    if at > calls:
        pytest.skip(f"the handoff makes {calls} calls")
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        with pytest.raises(Cut):
            sync(config, Tripwire(at, after, armed=False))
        sync(config)
        assert crm_state(sandbox) == expected
        keys = Counter(lead["Leadsync_Id__c"] for lead in handed_off_leads(sandbox))
        assert set(keys.values()) == {1}


def test_a_person_salesforce_holds_as_a_contact_is_matched_not_duplicated(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    handed = [v for k, v in expected["salesforce"].items() if k.startswith("handoff:")]
    email = str(handed[0]["Email"])
    with Sandbox(SETTINGS) as sandbox:
        sandbox.salesforce.create_record("Contact", {"LastName": "Already", "Email": email.upper()})
        config = config_for(sandbox, tmp_path)
        summary = sync(config)
        assert summary.handoff is not None
        assert summary.handoff.matched == 1
        assert email.lower() not in {
            str(lead["Email"]).lower() for lead in handed_off_leads(sandbox)
        }
        matched = [h for h in handoffs(config) if h.status == MATCHED]
        assert [(h.record_object, h.record_id is not None) for h in matched] == [("Contact", True)]


def test_a_lead_that_fails_require_is_a_named_problem_then_goes_once_it_qualifies(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    handed = [v for k, v in expected["salesforce"].items() if k.startswith("handoff:")]
    email = str(handed[0]["Email"]).lower()
    with Sandbox(SETTINGS) as sandbox:
        contact_id = next(
            int(c["id"])
            for c in sandbox.hubspot.snapshot()
            if str(c["properties"].get("email") or "").strip().lower() == email
        )
        sandbox.hubspot.set_activity(contact_id, {"company": ""})
        sandbox.hubspot.settle_search()
        config = config_for(sandbox, tmp_path)
        summary = sync(config)
        assert summary.handoff is not None
        problem = summary.handoff.problems["requires company present"]
        assert problem.count == 1
        assert email not in {str(lead["Email"]).lower() for lead in handed_off_leads(sandbox)}
        sandbox.hubspot.set_activity(contact_id, {"company": "Fixed Ltd"})
        sandbox.hubspot.settle_search()
        again = sync(config)
        assert again.handoff is not None
        assert again.handoff.handed_off == 1
        assert email in {str(lead["Email"]).lower() for lead in handed_off_leads(sandbox)}


def test_with_assignment_salesforce_the_orgs_rule_picks_the_owner(tmp_path: Path) -> None:
    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    definition = shipped.replace('assignment = "rules"', 'assignment = "salesforce"')
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path, definition)
        sync(config)
        rule = sandbox.salesforce.settings.assignment_rule
        assert rule is not None
        leads = handed_off_leads(sandbox)
        assert leads
        assert all(lead["OwnerId"] == rule.owner_for(lead) for lead in leads)
        recorded = {h.record_id: h.owner for h in handoffs(config) if h.status == CREATED}
        assert recorded == {lead["Id"]: lead["OwnerId"] for lead in leads}


def test_with_assignment_salesforce_a_run_cut_after_the_create_still_records_the_owner(
    tmp_path: Path,
) -> None:
    """Killed between the upsert and the read of the owners the org's rule picked: the next
    run finds the leads by their pull and reads their owners then."""
    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    definition = shipped.replace('assignment = "rules"', 'assignment = "salesforce"')
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path, definition)
        with open_runtime(config) as runtime:
            wire = Tripwire(1, after=True)
            connectors = {
                crm: Wrapped(c, wire, frozenset({"upsert"}))
                for crm, c in runtime.connectors.items()
            }
            engine = SyncEngine(
                runtime.store, connectors, runtime.field_map, runtime.definition, clock=lambda: NOW
            )
            with pytest.raises(Cut):
                engine.run(write=True)
        assert {h.status for h in handoffs(config)} >= {"pending"}
        sync(config)
        leads = handed_off_leads(sandbox)
        recorded = {h.record_id: h.owner for h in handoffs(config) if h.status == CREATED}
    assert leads
    assert recorded == {lead["Id"]: lead["OwnerId"] for lead in leads}


def test_sla_and_the_report_show_system_and_human_delay_apart_and_name_the_problems(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    handed = [v for k, v in expected["salesforce"].items() if k.startswith("handoff:")]
    blocked_email = str(handed[0]["Email"]).lower()
    with Sandbox(SETTINGS) as sandbox:
        contact_id = next(
            int(c["id"])
            for c in sandbox.hubspot.snapshot()
            if str(c["properties"].get("email") or "").strip().lower() == blocked_email
        )
        sandbox.hubspot.set_activity(contact_id, {"company": ""})
        sandbox.hubspot.settle_search()
        config = config_for(sandbox, tmp_path)
        sync(config)  # a Tuesday, 00:00 UTC: before New York's working day
        accepted = handed_off_leads(sandbox)[0]
        sandbox.salesforce.system_update("Lead", accepted["Id"], {"Status": "Working - Contacted"})
        later = NOW + timedelta(hours=16)  # 12:00 in New York: three working hours in
        sync(config, at=later)
        with open_runtime(config, connect=False) as runtime:
            report = report_for(runtime, now=later)
            monitor = runtime.sla_monitor()
            assert monitor is not None
            handoff = runtime.definition.handoff
            assert handoff is not None
            view = sla_view(
                runtime.store.sla,
                monitor,
                lambda ids: dict.fromkeys(ids),
                now=later,
                handoffs=runtime.store.handoffs.all(),
                handoff_stage=handoff.stage,
                owner_names=runtime.store.handoffs.names(),
            )
    speed = report["speed_to_lead"]
    assert speed == view.speed
    assert speed["handed_off"] == len(handed) - 1
    assert speed["waiting_for_sales"] == speed["handed_off"] - 1
    # Handed off in the run that made them MQLs: the system took no time.
    assert speed["system_delay_hours"] == {"median": 0.0, "p90": 0.0}
    assert speed["human_delay_working_hours"] == {"median": 3.0, "p90": 3.0}
    owner = next(row for row in speed["by_owner"] if row["owner"] == accepted["OwnerId"])
    assert owner["accepted"] == 1
    # Owners by the names Salesforce gave them, wherever a report shows one.
    named = {user_id: name for _, user_id, name in SANDBOX_OWNERS}
    assert owner["name"] == named[accepted["OwnerId"]]
    assert all(row["name"] for row in speed["by_owner"])
    assert speed["cannot_hand_off"] == [{"problem": "requires company present", "leads": 1}]
    text = format_sla(view)
    assert f"    {owner['name']:<31}handed off" in text
    assert not any(row["owner"] in text for row in speed["by_owner"])
    assert "human delay (handed off -> accepted): median 3 working h" in text
    assert "cannot hand off: requires company present: 1" in text


class _RefusesPlanWithLink:
    """A HubSpot connector that refuses, once per record, an update carrying both the
    handoff's new Salesforce id and the plan's other values (as a CRM refuses one bad value),
    without sending it; everything else goes through. It keeps the ids it refused."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.crm = inner.crm
        self.refused: set[str] = set()

    def write(self, updates: Sequence[RecordUpdate]) -> list[WriteResult]:
        refuse = {
            u.record_id
            for u in updates
            if LINK in u.values and len(u.values) > 1 and u.record_id not in self.refused
        }
        self.refused |= refuse
        sent = self._inner.write([u for u in updates if u.record_id not in refuse])
        results = {r.record_id: r for r in sent}
        refusal = WriteResult("", WriteStatus.FAILED, "invalid_option", "refused for the test")
        return [
            results.get(u.record_id) or replace(refusal, record_id=u.record_id) for u in updates
        ]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


LINK = "salesforceleadid"


def test_a_link_whose_record_refused_the_plans_values_is_written_alone_and_lands(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        with open_runtime(config) as runtime:
            hubspot = _RefusesPlanWithLink(runtime.connectors["hubspot"])
            connectors = {**runtime.connectors, "hubspot": hubspot}
            engine = SyncEngine(
                runtime.store, connectors, runtime.field_map, runtime.definition, clock=lambda: NOW
            )
            first = engine.run(write=True)
        assert hubspot.refused  # the path under test was taken
        created = {h.lead_id: h for h in handoffs(config) if h.status == CREATED}
        contacts = contacts_by_id(sandbox)
        with open_runtime(config, connect=False) as runtime:
            lead_of = runtime.store.lead_ids_for("hubspot", sorted(hubspot.refused))
        for contact_id in hubspot.refused:
            handoff = created[lead_of[contact_id]]
            # The plan's values were refused; the link, written alone, landed all the same.
            assert contacts[contact_id][LINK] == handoff.record_id
            assert handoff.linked_at is not None
        assert first.handoff is not None
        assert first.handoff.linked == len(created)
        # Nothing is handed off twice: the next run creates no Salesforce lead.
        again = sync(config)
        assert again.handoff is not None
        assert again.handoff.handed_off == 0
        assert len(handed_off_leads(sandbox)) == len(created)
