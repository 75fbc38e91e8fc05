"""SLA clocks, no I/O: which transitions and edits start and stop them, and when they fall due.

The shipped lead definition's service levels are used: mql_acceptance (8 working hours on the
New York sales calendar, stop at SAL) and sal_response (16 working hours, stop on a change of
sf_status or last_sales_activity).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from leadsync.mapping.definition import LeadDefinition, load_definition, parse_definition
from leadsync.mapping.lifecycle import Stage, Transition, TransitionKind
from leadsync.sync.model import Snapshot
from leadsync.sync.sla.clocks import Clock, ClockStatus, Outcome, SlaRules, clock_id
from tests.support import shipped_canonical_fields

EXAMPLE = Path(__file__).resolve().parents[2] / "leadsync" / "examples" / "lead_definition.toml"
NEW_YORK = ZoneInfo("America/New_York")
LEAD = "lead-1"


def ny(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=NEW_YORK)


def definition(text: str | None = None) -> LeadDefinition:
    fields = shipped_canonical_fields()
    if text is None:
        return load_definition(EXAMPLE, fields=fields)
    return parse_definition(text, file="definition.toml", fields=fields)


@pytest.fixture(scope="module")
def rules() -> SlaRules:
    found = SlaRules.of(definition())
    assert found is not None
    return found


def move(
    to: Stage, at: datetime, *, source: Stage | None = None, kind: TransitionKind = "advance"
) -> Transition:
    return Transition(source, to, at.astimezone(UTC), f"why {to}", kind)


def snapshot(changed_at: dict[str, datetime], crm: str = "salesforce") -> Snapshot:
    return Snapshot(crm, "00Q1", ny(1, 9), raw={}, canonical={}, changed_at=changed_at)


def test_a_definition_without_service_levels_has_no_rules() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert SlaRules.of(definition(text[: text.index("\n[sla]")])) is None


def test_entering_mql_starts_the_acceptance_clock_due_eight_working_hours_later(
    rules: SlaRules,
) -> None:
    # Tuesday 15:00 New York: two hours that day, six on Wednesday.
    changes = rules.clock_changes(LEAD, {"owner_id": "005A"}, [move(Stage.MQL, ny(1, 15))], [], {})
    (clock,) = changes.opened
    assert clock.rule == "mql_acceptance"
    assert clock.started_at == ny(1, 15)
    assert clock.due_at == ny(2, 15)
    assert clock.owner == "005A"
    assert clock.time_zone == "America/New_York"
    assert clock.clock_id == clock_id("mql_acceptance", LEAD, ny(1, 15).astimezone(UTC))
    assert changes.stopped == ()


def test_a_clock_started_on_a_friday_evening_runs_over_the_weekend(rules: SlaRules) -> None:
    changes = rules.clock_changes(LEAD, {}, [move(Stage.MQL, ny(4, 20))], [], {})
    # Friday after hours: nothing counts until Monday 09:00; 8 hours is Monday 17:00.
    assert changes.opened[0].due_at == ny(7, 17)


def test_the_company_holiday_and_christmas_are_days_off(rules: SlaRules) -> None:
    # Wednesday 23 December 13:00: 4 hours that day, 24th (listed) and 25th (US holiday) off,
    # the weekend, then 4 hours on Monday 28th.
    changes = rules.clock_changes(LEAD, {}, [move(Stage.MQL, ny(23, 13))], [], {})
    assert changes.opened[0].due_at == ny(28, 13)


def test_reaching_sal_meets_the_acceptance_clock_and_starts_the_response_clock(
    rules: SlaRules,
) -> None:
    running = rules.clock_changes(LEAD, {}, [move(Stage.MQL, ny(1, 10))], [], {}).opened
    changes = rules.clock_changes(
        LEAD, {}, [move(Stage.SAL, ny(1, 14), source=Stage.MQL)], running, {}
    )
    (stop,) = changes.stopped
    assert stop.clock_id == running[0].clock_id
    assert stop.outcome is Outcome.MET
    assert stop.at == ny(1, 14)
    assert "reached sal" in stop.reason
    (response,) = changes.opened
    assert response.rule == "sal_response"
    assert response.due_at == ny(3, 14)  # 16 working hours: Wednesday and Thursday to 14:00


def test_skipping_sal_for_sql_meets_the_acceptance_clock(rules: SlaRules) -> None:
    running = rules.clock_changes(LEAD, {}, [move(Stage.MQL, ny(1, 10))], [], {}).opened
    changes = rules.clock_changes(
        LEAD, {}, [move(Stage.SQL, ny(1, 11), source=Stage.MQL)], running, {}
    )
    assert [(s.outcome, s.reason.split(":")[0]) for s in changes.stopped] == [
        (Outcome.MET, "reached sql")
    ]
    assert changes.opened == ()  # sql starts no clock of the shipped rules


@pytest.mark.parametrize("exit_stage", [Stage.RECYCLED, Stage.DISQUALIFIED])
def test_recycling_or_disqualifying_an_mql_is_a_rejection_with_its_reason(
    rules: SlaRules, exit_stage: Stage
) -> None:
    running = rules.clock_changes(LEAD, {}, [move(Stage.MQL, ny(1, 10))], [], {}).opened
    changes = rules.clock_changes(
        LEAD, {}, [move(exit_stage, ny(1, 12), source=Stage.MQL)], running, {}
    )
    (stop,) = changes.stopped
    assert (stop.outcome, stop.reason) == (Outcome.REJECTED, f"why {exit_stage}")


def test_a_lead_passing_mql_and_sal_in_one_run_meets_acceptance_at_once(
    rules: SlaRules,
) -> None:
    at = ny(1, 10)
    changes = rules.clock_changes(
        LEAD,
        {},
        [move(Stage.MQL, at, source=Stage.LEAD), move(Stage.SAL, at, source=Stage.MQL)],
        [],
        {},
    )
    assert [clock.rule for clock in changes.opened] == ["mql_acceptance", "sal_response"]
    (stop,) = changes.stopped
    assert stop.clock_id == changes.opened[0].clock_id
    assert stop.at == changes.opened[0].started_at
    assert [c.rule for c in changes.running_after([])] == ["sal_response"]


def test_a_rule_already_running_for_the_lead_is_not_started_twice(rules: SlaRules) -> None:
    running = rules.clock_changes(LEAD, {}, [move(Stage.MQL, ny(1, 10))], [], {}).opened
    again = rules.clock_changes(
        LEAD, {}, [move(Stage.MQL, ny(1, 11), source=Stage.RECYCLED, kind="requalify")], [], {}
    )
    assert len(again.opened) == 1  # with nothing running, a requalified MQL gets a clock
    assert rules.clock_changes(LEAD, {}, [move(Stage.MQL, ny(1, 11))], running, {}).opened == ()


def _sal_clock(rules: SlaRules) -> Clock:
    at = ny(1, 10)
    opened = rules.clock_changes(LEAD, {}, [move(Stage.SAL, at, source=Stage.MQL)], [], {})
    return next(clock for clock in opened.opened if clock.rule == "sal_response")


def test_a_status_change_after_acceptance_meets_the_response_clock_at_its_time(
    rules: SlaRules,
) -> None:
    clock = _sal_clock(rules)
    worked = ny(1, 13, 30)
    changes = rules.clock_changes(
        LEAD, {}, [], [clock], {"salesforce": snapshot({"sf_status": worked})}
    )
    (stop,) = changes.stopped
    assert (stop.at, stop.outcome) == (worked, Outcome.MET)
    assert stop.reason == "sf_status changed in salesforce"


def test_the_status_change_that_made_the_lead_an_sal_does_not_count(rules: SlaRules) -> None:
    clock = _sal_clock(rules)
    before = clock.started_at - timedelta(minutes=3)
    changes = rules.clock_changes(
        LEAD, {}, [], [clock], {"salesforce": snapshot({"sf_status": before})}
    )
    assert changes.stopped == ()


def test_the_first_of_several_watched_changes_stops_the_response_clock(
    rules: SlaRules,
) -> None:
    clock = _sal_clock(rules)
    edits = {"sf_status": ny(2, 11), "last_sales_activity": ny(1, 16)}
    changes = rules.clock_changes(LEAD, {}, [], [clock], {"salesforce": snapshot(edits)})
    assert [(s.at, s.reason) for s in changes.stopped] == [
        (ny(1, 16), "last_sales_activity changed in salesforce")
    ]


def test_a_lead_moving_on_from_sal_has_been_worked(rules: SlaRules) -> None:
    clock = _sal_clock(rules)
    changes = rules.clock_changes(
        LEAD, {}, [move(Stage.SQL, ny(1, 12), source=Stage.SAL)], [clock], {}
    )
    assert [s.outcome for s in changes.stopped] == [Outcome.MET]


def test_a_clock_of_a_rule_no_longer_defined_is_left_alone(rules: SlaRules) -> None:
    stale = Clock("c0", "old_rule", LEAD, ny(1, 9), ny(1, 10), "UTC")
    changes = rules.clock_changes(
        LEAD, {}, [move(Stage.SAL, ny(1, 12), source=Stage.MQL)], [stale], {}
    )
    assert all(stop.clock_id != "c0" for stop in changes.stopped)


def test_the_breach_flag_names_the_rules_past_due_now(rules: SlaRules) -> None:
    due = ny(2, 15)
    second = timedelta(seconds=1)
    clocks = [
        Clock("a", "mql_acceptance", LEAD, ny(1, 15), due, "America/New_York"),
        Clock("b", "sal_response", LEAD, ny(1, 15), due + timedelta(days=2), "America/New_York"),
        Clock("c", "a_rule_since_removed", LEAD, ny(1, 15), due, "America/New_York"),
    ]
    assert rules.breaches_at(clocks, due) == ()  # due at 15:00: met then is in time
    assert rules.breaches_at(clocks, due + second) == ("mql_acceptance",)
    assert rules.breaches_at(clocks, due + timedelta(days=3)) == (
        "mql_acceptance",
        "sal_response",
    )


def test_a_running_clock_reads_as_breached_once_due_even_before_a_check() -> None:
    clock = Clock("a", "mql_acceptance", LEAD, ny(1, 15), ny(2, 15), "America/New_York")
    assert clock.status_at(ny(2, 15)) is ClockStatus.OPEN
    assert clock.status_at(ny(2, 15, 1)) is ClockStatus.BREACHED


OWN_ZONE = """
[sla.calendars.sales]
time_zone = "America/New_York"
time_zone_field = "owner_time_zone"
"""


def test_a_calendar_with_a_zone_field_runs_in_the_leads_own_zone() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    start = text.index("[sla.calendars.sales]")
    end = text.index("[sla.calendars.marketing]")
    fields = {**shipped_canonical_fields(), "owner_time_zone": "string"}
    changed = parse_definition(
        text[:start] + OWN_ZONE.strip() + "\n\n" + text[end:], file="d.toml", fields=fields
    )
    rules = SlaRules.of(changed)
    assert rules is not None
    at = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    berlin = rules.clock_changes(
        LEAD, {"owner_time_zone": "Europe/Berlin"}, [move(Stage.MQL, at)], [], {}
    ).opened[0]
    default = rules.clock_changes(LEAD, {}, [move(Stage.MQL, at)], [], {}).opened[0]
    # 15:00 Berlin: 2 hours that day, 6 the next, to 15:00 Berlin = 14:00 UTC.
    assert berlin.due_at == datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    assert berlin.time_zone == "Europe/Berlin"
    # 09:00 New York: the whole 8 hours that day, to 17:00 New York = 22:00 UTC.
    assert default.due_at == datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
    assert default.time_zone == "America/New_York"


def test_the_edit_that_started_a_response_clock_does_not_stop_it(rules: SlaRules) -> None:
    # The pull that saw Status become "Working - Contacted" made the lead an SAL: that
    # status change is the acceptance, not the work that follows it.
    at = ny(1, 10)
    changes = rules.clock_changes(
        LEAD,
        {},
        [move(Stage.SAL, at, source=Stage.MQL)],
        [],
        {"salesforce": snapshot({"sf_status": at + timedelta(minutes=1)})},
    )
    assert [clock.rule for clock in changes.running_after([])] == ["sal_response"]


def test_an_owner_in_another_office_gets_clocks_in_their_zone() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'owner_field = "owner_id"',
        'owner_field = "owner_id"\nowner_time_zones = { "005BERLIN" = "Europe/Berlin" }',
    )
    rules = SlaRules.of(definition(text))
    assert rules is not None
    at = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # 15:00 in Berlin, 09:00 in New York
    berlin = rules.clock_changes(LEAD, {"owner_id": "005BERLIN"}, [move(Stage.MQL, at)], [], {})
    other = rules.clock_changes(LEAD, {"owner_id": "005OTHER"}, [move(Stage.MQL, at)], [], {})
    assert berlin.opened[0].time_zone == "Europe/Berlin"
    assert berlin.opened[0].due_at == datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    assert other.opened[0].time_zone == "America/New_York"
    assert other.opened[0].due_at == datetime(2026, 12, 1, 22, 0, tzinfo=UTC)


def test_owner_zones_must_be_real_zones_and_need_an_owner_field() -> None:
    from leadsync.problems import ConfigError

    text = EXAMPLE.read_text(encoding="utf-8")
    bad_zone = text.replace(
        'owner_field = "owner_id"',
        'owner_field = "owner_id"\nowner_time_zones = { "005A" = "Mars/Olympus" }',
    )
    with pytest.raises(ConfigError) as wrong:
        definition(bad_zone)
    assert [p.key for p in wrong.value.problems] == ["sla.owner_time_zones.005A"]
    no_owner = text.replace(
        'owner_field = "owner_id"', 'owner_time_zones = { "005A" = "Europe/Berlin" }'
    )
    with pytest.raises(ConfigError) as missing:
        definition(no_owner)
    assert [p.key for p in missing.value.problems] == ["sla.owner_time_zones"]
