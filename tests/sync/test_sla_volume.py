"""Volume service levels: periods on plan, behind their pace, met and missed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from leadsync.mapping.calendar import BusinessCalendar
from leadsync.mapping.lifecycle import Stage, Transition
from leadsync.mapping.sla_rules import CalendarModel, VolumeRule
from leadsync.sync.sla.monitor import VOLUME_BEHIND, VOLUME_MISSED, SlaMonitor
from leadsync.sync.sla.volume import PeriodStatus, period_starts, volume_periods
from leadsync.sync.store import Store
from tests.sync.test_sla_clocks import definition

NEW_YORK = ZoneInfo("America/New_York")
WEEKLY = VolumeRule(name="weekly_mqls", period="week", at_least=10, calendar="marketing")


def ny(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=NEW_YORK)


@pytest.fixture(scope="module")
def calendar() -> BusinessCalendar:
    return CalendarModel(time_zone="America/New_York").calendar()  # Mon-Fri 09:00-17:00


def entries(count: int, at: datetime, segment: Any = None) -> dict[str, tuple[datetime, Any]]:
    return {f"L{n}-{segment}": (at, segment) for n in range(count)}


@pytest.mark.parametrize(
    ("delivered", "status"),
    [
        (4, PeriodStatus.BEHIND),  # the pace asks for 5 by Wednesday 13:00
        (5, PeriodStatus.ON_PLAN),
        (9, PeriodStatus.ON_PLAN),
        (10, PeriodStatus.MET),
    ],
)
def test_a_running_week_is_on_plan_or_behind_its_working_time_pace(
    calendar: BusinessCalendar, delivered: int, status: PeriodStatus
) -> None:
    now = ny(12, 2, 13)  # 20 of the week's 40 working hours gone
    (period,) = volume_periods(
        WEEKLY, calendar, entries(delivered, ny(11, 30, 10)), start=now, now=now
    )
    assert (period.start, period.end) == (ny(11, 30), ny(12, 7))
    assert period.expected == pytest.approx(5.0)
    assert (period.delivered, period.status) == (delivered, status)


@pytest.mark.parametrize(
    ("delivered", "status"), [(9, PeriodStatus.MISSED), (10, PeriodStatus.MET)]
)
def test_an_ended_week_is_met_or_missed(
    calendar: BusinessCalendar, delivered: int, status: PeriodStatus
) -> None:
    (period,) = volume_periods(
        WEEKLY, calendar, entries(delivered, ny(12, 4, 16)), start=ny(12, 1), now=ny(12, 8, 9)
    )
    assert period.status is status
    assert period.expected == pytest.approx(10.0)


def test_leads_outside_the_period_do_not_count(calendar: BusinessCalendar) -> None:
    found = {
        **entries(3, ny(11, 29, 23)),  # Sunday night, the week before
        "inside": (ny(12, 6, 23), None),  # Sunday night, the last hour of this week
        **{f"next-{n}": (ny(12, 7), None) for n in range(3)},  # Monday 00:00: next week's
    }
    (period,) = volume_periods(WEEKLY, calendar, found, start=ny(12, 1), now=ny(12, 9))
    assert period.delivered == 1


def test_a_weekend_does_not_move_the_pace(calendar: BusinessCalendar) -> None:
    friday_evening = volume_periods(WEEKLY, calendar, {}, start=ny(12, 4, 18), now=ny(12, 4, 18))
    sunday = volume_periods(WEEKLY, calendar, {}, start=ny(12, 6, 12), now=ny(12, 6, 12))
    assert friday_evening[0].expected == sunday[0].expected == pytest.approx(10.0)


def test_per_segment_targets_count_each_segment_apart(calendar: BusinessCalendar) -> None:
    rule = VolumeRule(
        name="by_source",
        period="month",
        segment_field="lead_source",
        targets={"organic_search": 3, "paid_search": 2},
        calendar="marketing",
    )
    found = {
        **entries(3, ny(11, 3, 10), "organic_search"),
        **entries(1, ny(11, 3, 10), "PAID_SEARCH"),  # case does not matter
        **entries(5, ny(11, 3, 10), "referrals"),  # no target: not counted anywhere
    }
    periods = volume_periods(rule, calendar, found, start=ny(11, 15), now=ny(12, 1, 9))
    figures = {p.segment: (p.delivered, p.target, p.status) for p in periods}
    assert figures == {
        "organic_search": (3, 3, PeriodStatus.MET),
        "paid_search": (1, 2, PeriodStatus.MISSED),
    }
    assert {(p.start, p.end) for p in periods} == {(ny(11, 1), ny(12, 1))}


def test_period_starts_run_from_the_period_of_since_to_the_current_one(
    calendar: BusinessCalendar,
) -> None:
    starts = period_starts(WEEKLY, calendar, since=ny(11, 18, 12), now=ny(12, 2, 12))
    assert starts == [ny(11, 16), ny(11, 23), ny(11, 30)]


def test_period_starts_leave_out_the_periods_that_ended_before_the_first_run(
    calendar: BusinessCalendar,
) -> None:
    # leadsync's first run on Wednesday 11/25: the week of 11/16 ended before anybody counted.
    starts = period_starts(
        WEEKLY, calendar, since=ny(11, 18, 12), now=ny(12, 2, 12), watching_since=ny(11, 25, 10)
    )
    assert starts == [ny(11, 23), ny(11, 30)]


@pytest.mark.parametrize("delivered", [0, 12])
def test_the_period_leadsync_began_in_is_partial_neither_met_nor_missed(
    calendar: BusinessCalendar, delivered: int
) -> None:
    began = ny(11, 25, 10)
    (period,) = volume_periods(
        WEEKLY,
        calendar,
        entries(delivered, ny(11, 25, 11)),
        start=ny(11, 23),
        now=ny(12, 2, 12),
        watching_since=began,
    )
    assert (period.delivered, period.status) == (delivered, PeriodStatus.PARTIAL)
    (after,) = volume_periods(
        WEEKLY, calendar, {}, start=ny(11, 30), now=ny(12, 7, 1), watching_since=began
    )
    assert after.status == PeriodStatus.MISSED  # the weeks after it are judged as ever


# ------------------------------------------------------------------- the monitor's events


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with Store(database_url) as opened:
        yield opened


def _mqls(store: Store, count: int, at: datetime) -> None:
    store.transitions.add(
        [
            (f"L{n}", Transition(Stage.LEAD, Stage.MQL, at, "score 70 ≥ 60", "advance"))
            for n in range(count)
        ],
        run_id="r1",
    )


def test_a_week_behind_pace_is_warned_once_and_a_missed_week_announced_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    from leadsync.sync.sla.monitor import monitor_for

    monitor = monitor_for(store, definition())  # weekly_mqls: 25 a week, marketing calendar
    assert isinstance(monitor, SlaMonitor)
    # leadsync began watching this week: the week before was nobody's to count.
    store.run_log.start("sync", started_at=ny(11, 30, 0))
    _mqls(store, 3, ny(11, 30, 10))
    caplog.set_level(logging.WARNING, logger="leadsync.sla")
    kinds = []
    for hours in range(0, 48, 4):  # Wednesday and Thursday, checked every four hours
        result = monitor.check(ny(12, 2, 9) + timedelta(hours=hours))
        kinds += [event.kind for event in result.announced]
    assert kinds == [VOLUME_BEHIND]
    warnings = [r.getMessage() for r in caplog.records if "behind pace" in r.getMessage()]
    assert len(warnings) == 1
    assert "3 of 25 delivered" in warnings[0]
    missed = monitor.check(ny(12, 7, 9)).announced + monitor.check(ny(12, 7, 10)).announced
    assert [(event.kind, event.payload["delivered"]) for event in missed] == [(VOLUME_MISSED, 3)]


def test_a_pace_short_of_one_whole_lead_asks_for_none_yet(calendar: BusinessCalendar) -> None:
    (monday,) = volume_periods(WEEKLY, calendar, {}, start=ny(11, 30, 12), now=ny(11, 30, 12))
    assert monday.expected == pytest.approx(0.75)  # 3 of 40 working hours
    assert monday.status is PeriodStatus.ON_PLAN
    (tuesday,) = volume_periods(WEEKLY, calendar, {}, start=ny(12, 1, 10), now=ny(12, 1, 10))
    assert tuesday.expected == pytest.approx(2.25)
    assert tuesday.status is PeriodStatus.BEHIND


def test_no_volume_event_for_the_week_leadsync_began_in_nor_one_before(store: Store) -> None:
    from leadsync.sync.sla.monitor import monitor_for

    monitor = monitor_for(store, definition())  # weekly_mqls: 25 a week
    assert isinstance(monitor, SlaMonitor)
    store.run_log.start("sync", started_at=ny(12, 2, 10))  # leadsync began on a Wednesday
    _mqls(store, 3, ny(12, 2, 10))
    result = monitor.check(ny(12, 7, 10))  # the next Monday: that week ended 22 short
    assert result.announced == []
    assert [(p.start, p.status) for p in result.volume] == [
        (ny(11, 30), PeriodStatus.PARTIAL),
        (ny(12, 7), PeriodStatus.ON_PLAN),
    ]
