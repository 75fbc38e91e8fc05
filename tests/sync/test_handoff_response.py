"""No response after handoff, over the sandbox: leads handed off to sales, some worked (a Task
logged, a status changed) in time, one too late, the rest not at all; after the working hours
of `[sla.no_response]` the shares per owner and per period are exact, in the SLA view, the
report and the service's metrics, with owners by the names Salesforce gave."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from leadsync.config import Config
from leadsync.mapping.calendar import BusinessCalendar
from leadsync.mapping.definition import load_definition
from leadsync.mapping.fields import load_mapping
from leadsync.metrics import ServiceMetrics
from leadsync.reports.build import report_for
from leadsync.reports.text import format_table
from leadsync.runtime import open_runtime
from leadsync.sandbox import Sandbox
from leadsync.sandbox.schema import INBOUND_QUEUE_ID, SANDBOX_OWNERS
from leadsync.sandbox_config import EXAMPLES
from leadsync.sync.engine import SyncEngine
from leadsync.sync.handoff_ledger import CREATED, MATCHED, Handoff
from leadsync.sync.sla.clocks import SlaRules
from leadsync.sync.sla.report import format_sla, sla_view
from leadsync.sync.sla.response import NoResponseRule, handed_off_within, no_response
from tests.sync.test_handoff import SETTINGS, config_for, handed_off_leads

# Tuesday 2026-06-02, 09:00 in New York (the sales calendar): the working day starts.
T0 = datetime(2026, 6, 2, 13, tzinfo=UTC)
HOUR = timedelta(hours=1)
NAMES = {user_id: name for _, user_id, name in SANDBOX_OWNERS} | {INBOUND_QUEUE_ID: "Inbound Leads"}
WITHIN_FOUR = (EXAMPLES / "lead_definition.toml").read_text() + (
    "\n[sla.no_response]\nwithin_hours = 4\n"
)


class Moment:
    """One clock for the sandbox and leadsync: the records' stamps and the handoff agree."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def seconds(self) -> float:
        return self.at.timestamp()


def sync(config: Config, moment: Moment) -> None:
    with open_runtime(config) as runtime:
        engine = SyncEngine(
            runtime.store,
            runtime.connectors,
            runtime.field_map,
            runtime.definition,
            clock=lambda: moment.at,
        )
        engine.run(write=True)


@contextmanager
def handed_off_at_t0(folder: Path, definition: str) -> Iterator[tuple[Sandbox, Config, Moment]]:
    """A sandbox and leadsync on one clock, after the run at T0 that handed the MQLs off."""
    moment = Moment(T0)
    with Sandbox(SETTINGS, clock=moment.seconds) as sandbox:
        config = config_for(sandbox, folder, definition)
        sync(config, moment)
        yield sandbox, config, moment


def log_task(sandbox: Sandbox, lead: dict[str, Any]) -> None:
    outcome = sandbox.salesforce.create_record(
        "Task", {"Subject": "Call", "WhoId": lead["Id"], "OwnerId": lead["OwnerId"]}
    )
    assert outcome.record_id is not None, outcome.errors


def test_the_share_of_handed_off_leads_nobody_worked_in_time_per_owner_and_period(
    tmp_path: Path,
) -> None:
    with handed_off_at_t0(tmp_path, WITHIN_FOUR) as (sandbox, config, moment):
        leads = sorted(handed_off_leads(sandbox), key=lambda lead: str(lead["Id"]))
        assert len(leads) > 5
        tasked, status_changed, late = leads[0], leads[1], leads[2]
        moment.at = T0 + HOUR  # 10:00 in New York
        log_task(sandbox, tasked)
        moment.at = T0 + 2 * HOUR
        sandbox.salesforce.system_update(
            "Lead", status_changed["Id"], {"Status": "Working - Contacted"}
        )
        moment.at = T0 + 6 * HOUR  # 15:00: six working hours after the handoff, two too late
        log_task(sandbox, late)
        moment.at = T0 + 7 * HOUR
        sync(config, moment)
        with open_runtime(config, connect=False) as runtime:
            handoffs = runtime.store.handoffs.all()
            monitor = runtime.sla_monitor()
            assert monitor is not None
            view = sla_view(
                runtime.store.sla,
                monitor,
                lambda ids: dict.fromkeys(ids),
                now=moment.at,
                handoffs=handoffs,
                handoff_stage="mql",
                owner_names=runtime.store.handoffs.names(),
            )
            report = report_for(runtime, now=moment.at, period="week")
            metrics = ServiceMetrics(
                runtime.store,
                {},
                healthy_within=timedelta(minutes=30),
                clock=lambda: moment.at,
                no_response=lambda now: handed_off_within(
                    runtime.store.handoffs, monitor.rules, "mql", now=now, since=now - 7 * 24 * HOUR
                ),
            )
            scraped = metrics.render().decode()
    by_record = {h.record_id: h for h in handoffs if h.status == CREATED}
    assert by_record[tasked["Id"]].responded_at == T0 + HOUR
    assert by_record[status_changed["Id"]].responded_at == T0 + 2 * HOUR
    assert by_record[late["Id"]].responded_at == T0 + 6 * HOUR
    worked = {tasked["Id"], status_changed["Id"], late["Id"]}
    assert all(h.responded_at is None for h in by_record.values() if h.record_id not in worked)

    figures = view.no_response
    assert figures is not None
    assert report["no_response"] == figures
    total = len(leads)
    assert figures["within_working_hours"] == 4
    assert figures["fields"] == ["sf_status", "last_sales_activity"]
    assert (figures["handed_off"], figures["responded"], figures["waiting"]) == (total, 2, 0)
    assert figures["no_response"] == total - 2
    assert figures["share"] == round((total - 2) / total, 4)
    owners = Counter(str(lead["OwnerId"]) for lead in leads)
    answered = Counter(str(lead["OwnerId"]) for lead in (tasked, status_changed))
    rows = {row["owner"]: row for row in figures["by_owner"]}
    assert set(rows) == set(owners)
    for owner, count in owners.items():
        row = rows[owner]
        assert row["name"] == NAMES[owner]
        assert (row["handed_off"], row["responded"]) == (count, answered[owner])
        assert row["no_response"] == count - answered[owner]
        assert row["share"] == round((count - answered[owner]) / count, 4)
    assert figures["by_period"] == [
        {
            "period": "2026-W23",
            "handed_off": total,
            "responded": 2,
            "no_response": total - 2,
            "waiting": 0,
            "share": figures["share"],
        }
    ]

    first = rows[str(tasked["OwnerId"])]
    text = format_sla(view)
    assert "No response after handoff" in text
    overall = f"{figures['share']:.1%} ({total - 2} of {total}; 0 waiting)"
    assert f"no response within 4 working h (sf_status, last_sales_activity): {overall}" in text
    mine = f"{first['share']:.1%} ({first['no_response']} of {first['handed_off']}; 0 waiting)"
    assert f"    {NAMES[first['owner']]:<31}{mine}" in text
    assert "NO RESPONSE AFTER HANDOFF (per owner, per week of the handoff)" in format_table(report)

    assert f"leadsync_handoff_no_response_ratio {figures['share']}" in scraped
    for owner, count in owners.items():
        silent = count - answered[owner]
        assert f'leadsync_handoff_no_response_leads{{owner="{owner}"}} {silent:.1f}' in scraped
        assert f'leadsync_handoff_response_due_leads{{owner="{owner}"}} {count:.1f}' in scraped


def _handoff(lead: str, owner: str, at: datetime, responded: datetime | None = None) -> Handoff:
    return Handoff(
        lead,
        "salesforce",
        CREATED,
        at,
        "run",
        f"00Q{lead}",
        None,
        owner,
        handed_off_at=at,
        responded_at=responded,
    )


def test_a_lead_within_its_hours_waits_and_each_period_and_owner_counts_apart() -> None:
    nine_to_five = SlaRules.of(
        _definition('[sla.no_response]\nwithin_hours = 8\ncalendar = "sales"\n')
    )
    assert nine_to_five is not None
    rule = NoResponseRule.of(nine_to_five, "mql")
    assert rule is not None
    monday = datetime(2026, 6, 1, 13, tzinfo=UTC)  # 09:00 in New York
    handoffs = [
        _handoff("a", "ann", monday, monday + 7 * HOUR),  # in time: 16:00, due 17:00
        _handoff("b", "ann", monday, monday + 9 * HOUR),  # the next morning: too late
        _handoff("c", "bo", monday),  # never
        _handoff("d", "bo", monday + 7 * 24 * HOUR),  # the next week, not yet due
        Handoff(
            "e", "salesforce", MATCHED, monday, "run", "003e", "Contact", "bo", handed_off_at=monday
        ),  # worked on a contact: out of sight
    ]
    now = monday + 7 * 24 * HOUR + 2 * HOUR
    figures = no_response(handoffs, rule, now=now, period="week", names={"ann": "Ann Example"})
    assert (figures["handed_off"], figures["responded"], figures["no_response"]) == (4, 1, 2)
    assert (figures["waiting"], figures["share"]) == (1, round(2 / 3, 4))
    assert [
        (r["owner"], r["name"], r["no_response"], r["waiting"]) for r in figures["by_owner"]
    ] == [
        ("ann", "Ann Example", 1, 0),
        ("bo", None, 1, 1),
    ]
    assert [(r["period"], r["share"]) for r in figures["by_period"]] == [
        ("2026-W23", round(2 / 3, 4)),
        ("2026-W24", None),
    ]
    # Due at 17:00 on the day of the handoff: met then is met in time.
    assert rule.due(handoffs[0]) == monday + 8 * HOUR
    assert isinstance(rule.calendar, BusinessCalendar)


def test_without_a_no_response_section_the_response_clocks_fields_and_eight_hours_hold() -> None:
    rules = SlaRules.of(_definition(""))
    assert rules is not None
    rule = NoResponseRule.of(rules, "mql")
    assert rule is not None
    assert rule.fields == ("sf_status", "last_sales_activity")
    assert rule.within == 8 * HOUR
    assert rule.calendar_name == "sales"  # the acceptance clock's, which starts at MQL


def _definition(extra: str) -> Any:
    field_map = load_mapping(EXAMPLES / "mapping.toml")
    fields = field_map.canonical_types()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lead_definition.toml"
        path.write_text((EXAMPLES / "lead_definition.toml").read_text() + "\n" + extra)
        return load_definition(path, fields=fields)
