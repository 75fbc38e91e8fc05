"""Attack probes: no response after handoff at the edges.

Each of these once failed (bugs found, since fixed): the deleted handed-off lead counted as no
response, the owners of `assignment = "salesforce"` all counted as '-'. The rest held."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from leadsync.config import Config
from leadsync.runtime import open_runtime
from leadsync.sandbox import Sandbox
from leadsync.sync.engine import SyncEngine
from leadsync.sync.handoff_ledger import CREATED, DELETED
from leadsync.sync.sla.clocks import Outcome, SlaRules
from leadsync.sync.sla.response import (
    NoResponseRule,
    format_no_response,
    handed_off_within,
    no_response,
)
from tests.sync.test_handoff import SETTINGS, config_for, handed_off_leads
from tests.sync.test_handoff_response import (
    NAMES,
    T0,
    WITHIN_FOUR,
    _definition,
    _handoff,
    handed_off_at_t0,
    sync,
)

HOUR = timedelta(hours=1)


def _rule(
    extra: str = '[sla.no_response]\nwithin_hours = 8\ncalendar = "sales"\n',
) -> NoResponseRule:
    rules = SlaRules.of(_definition(extra))
    assert rules is not None
    rule = NoResponseRule.of(rules, "mql")
    assert rule is not None
    return rule


def _figures(config: Config, now: datetime) -> dict[str, Any]:
    """No response after handoff as of `now`, from the store of `config`."""
    with open_runtime(config, connect=False) as runtime:
        monitor = runtime.sla_monitor()
        assert monitor is not None
        figures = handed_off_within(runtime.store.handoffs, monitor.rules, "mql", now=now)
    assert figures is not None
    return figures


def test_a_weekend_handoff_is_due_after_mondays_working_hours() -> None:
    rule = _rule()
    saturday = datetime(2026, 6, 6, 15, tzinfo=UTC)  # 11:00 in New York, a Saturday
    due = rule.due(_handoff("w", "ann", saturday))
    # Monday 2026-06-08 09:00 NY + 8 working hours = 17:00 NY = 21:00 UTC.
    assert due == datetime(2026, 6, 8, 21, tzinfo=UTC)
    monday_morning = datetime(2026, 6, 8, 14, tzinfo=UTC)
    figures = no_response(
        [_handoff("w", "ann", saturday, monday_morning)], rule, now=monday_morning + 24 * HOUR
    )
    assert (figures["responded"], figures["no_response"]) == (1, 0)
    # Before Monday's hours are over: waiting, not a no-response.
    figures = no_response(
        [_handoff("w", "ann", saturday)], rule, now=datetime(2026, 6, 8, 15, tzinfo=UTC)
    )
    assert (figures["waiting"], figures["no_response"]) == (1, 0)


def test_an_owner_without_a_name_or_an_id_shows_its_id_or_a_dash() -> None:
    rule = _rule()
    monday = datetime(2026, 6, 1, 13, tzinfo=UTC)
    handoffs = [
        _handoff("a", "zed", monday),
        _handoff("b", "", monday),
        _handoff("c", "ann", monday),
    ]
    figures = no_response(
        handoffs, rule, now=monday + 72 * HOUR, names={"ann": "Ann Example", "zed": ""}
    )
    assert all(row["owner"] for row in figures["by_owner"])
    # An owner's row is the line after the overall one: its label, then the figures.
    rows = format_no_response(figures)[1 : 1 + len(figures["by_owner"])]
    assert {line[4:35].strip() for line in rows} == {"zed", "-", "Ann Example"}


def test_a_lead_whose_record_sales_deleted_is_counted_apart_in_no_share() -> None:
    rule = _rule()
    monday = datetime(2026, 6, 1, 13, tzinfo=UTC)
    deleted = replace(_handoff("d", "ann", monday), status=DELETED)
    figures = no_response([_handoff("a", "ann", monday), deleted], rule, now=monday + 72 * HOUR)
    assert (figures["handed_off"], figures["no_response"], figures["deleted_by_sales"]) == (1, 1, 1)
    assert [(row["owner"], row["handed_off"]) for row in figures["by_owner"]] == [("ann", 1)]
    assert "deleted by sales after the handoff (not counted): 1" in "\n".join(
        format_no_response(figures)
    )


def test_a_handed_off_lead_sales_delete_is_not_counted_as_no_response_and_goes_again(
    tmp_path: Path,
) -> None:
    """Sales delete one handed-off lead before its hours are over. Once they are, the others
    count as no response, and it does not: it is handed off again, to one new lead, whose
    own hours are still running. The acceptance clock of the first handoff stops (sales
    decided: rejected), the new handoff's runs."""
    with handed_off_at_t0(tmp_path, WITHIN_FOUR) as (sandbox, config, moment):
        leads = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))
        gone = leads[0]
        moment.at = T0 + HOUR
        with sandbox.salesforce.lock:
            assert sandbox.salesforce.delete_record("Lead", gone["Id"]).success
        moment.at = T0 + 5 * HOUR  # 14:00 in New York: the first handoffs are an hour overdue
        sync(config, moment)
        moment.at = T0 + 6 * HOUR
        sync(config, moment)
        figures = _figures(config, moment.at)
        with open_runtime(config, connect=False) as runtime:
            clocks = runtime.store.sla.clocks(lead_ids=[str(gone["Leadsync_Id__c"])])
        email = str(gone["Email"]).lower()
        (again,) = [
            lead for lead in handed_off_leads(sandbox) if str(lead["Email"]).lower() == email
        ]
    assert again["Id"] != gone["Id"]
    assert again["Leadsync_Id__c"] == gone["Leadsync_Id__c"]
    assert (figures["handed_off"], figures["responded"]) == (len(leads), 0)
    assert (figures["no_response"], figures["waiting"]) == (len(leads) - 1, 1)
    first, second = sorted(clocks, key=lambda clock: clock.started_at)
    assert (first.started_at, first.stopped_at, first.outcome) == (
        T0,
        T0 + 5 * HOUR,
        Outcome.REJECTED,
    )
    assert first.stop_reason == "sales deleted the salesforce record"
    assert (second.started_at, second.stopped_at) == (T0 + 5 * HOUR, None)


def test_with_the_orgs_assignment_rules_no_response_is_counted_per_real_owner(
    tmp_path: Path,
) -> None:
    """`assignment = "salesforce"`: the org's rules pick the owner; the lead Salesforce holds
    names them. No response per owner names that owner, by name, not '-'."""
    definition = WITHIN_FOUR.replace('assignment = "rules"', 'assignment = "salesforce"')
    with handed_off_at_t0(tmp_path, definition) as (sandbox, config, moment):
        moment.at = T0 + 8 * HOUR
        sync(config, moment)
        owners = {str(lead["OwnerId"]) for lead in handed_off_leads(sandbox)}
        figures = _figures(config, moment.at)
    assert {row["owner"] for row in figures["by_owner"]} == owners
    assert {row["name"] for row in figures["by_owner"]} == {NAMES[owner] for owner in owners}


def test_a_lead_nobody_touched_has_no_response_on_a_real_clock(tmp_path: Path) -> None:
    """Engine and Salesforce on the wall clock (as in production, where Salesforce's stamps
    come a moment after leadsync's `now`): the pull of the lead leadsync created is not a
    person's work."""

    def run(config: Any) -> None:
        with open_runtime(config) as runtime:
            SyncEngine(
                runtime.store,
                runtime.connectors,
                runtime.field_map,
                runtime.definition,
                clock=lambda: datetime.now(UTC),
            ).run(write=True)

    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path, WITHIN_FOUR)
        for later in (False, True, True):
            if later:
                time.sleep(1.1)  # a moment later: past the stamps of the run before
            run(config)
        with open_runtime(config, connect=False) as runtime:
            created = [h for h in runtime.store.handoffs.all() if h.status == CREATED]
    assert created
    worked = [(h.record_id, h.handed_off_at, h.responded_at) for h in created if h.responded_at]
    assert worked == []
