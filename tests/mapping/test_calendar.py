"""Business calendars: working time added and measured across nights, weekends, lunch breaks,
holidays, daylight-saving changes and time zones; periods; refusals; span parsing."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadsync.mapping.calendar import (
    SEARCH_DAYS,
    BusinessCalendar,
    NoWorkingTimeError,
    Period,
    Span,
    parse_span,
)
from leadsync.mapping.sla_rules import CalendarModel

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")

NINE_TO_FIVE = parse_span("09:00-17:00")
MORNING = parse_span("09:00-12:00")
AFTERNOON = parse_span("13:00-17:00")
WHOLE_DAY = parse_span("00:00-24:00")
WEEKDAYS = range(5)
EVERY_DAY = range(7)


def local(
    zone: tzinfo,
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    *,
    fold: int = 0,
) -> datetime:
    """A wall time of `zone`: local(NY, 2026, 1, 6, 16) is Tue 6 Jan 2026 16:00 in New York."""
    return datetime(year, month, day, hour, minute, second, tzinfo=zone, fold=fold)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def calendar(
    zone: tzinfo = NY,
    spans: tuple[Span, ...] = (NINE_TO_FIVE,),
    days: range = WEEKDAYS,
    is_holiday: Callable[[date], bool] | None = None,
) -> BusinessCalendar:
    hours = dict.fromkeys(days, spans)
    if is_holiday is None:
        return BusinessCalendar(zone=zone, hours=hours)
    return BusinessCalendar(zone=zone, hours=hours, is_holiday=is_holiday)


def assert_instant(result: datetime, expected: datetime) -> None:
    """`result` is the UTC instant of `expected` (compared in UTC: folds compare reliably)."""
    assert result.utcoffset() == timedelta(0)
    assert result == expected.astimezone(UTC), (result.astimezone(expected.tzinfo), expected)


# Tue 6 Jan 2026 is in a plain week of New York winter time (UTC-5): no holiday, no change.
H = timedelta(hours=1)
NINE_TO_FIVE_CASES = [
    ("across-the-night", local(NY, 2026, 1, 6, 16), 2 * H, local(NY, 2026, 1, 7, 10)),
    ("before-opening", local(NY, 2026, 1, 6, 7), 2 * H, local(NY, 2026, 1, 6, 11)),
    ("after-closing", local(NY, 2026, 1, 6, 20), 2 * H, local(NY, 2026, 1, 7, 11)),
    ("exactly-at-closing", local(NY, 2026, 1, 6, 17), 2 * H, local(NY, 2026, 1, 7, 11)),
    ("exactly-at-opening", local(NY, 2026, 1, 6, 9), 2 * H, local(NY, 2026, 1, 6, 11)),
    ("just-before-midnight", local(NY, 2026, 1, 6, 23, 59), H, local(NY, 2026, 1, 7, 10)),
    ("a-whole-day-ends-at-closing", local(NY, 2026, 1, 6, 9), 8 * H, local(NY, 2026, 1, 6, 17)),
    ("up-to-closing-not-next-day", local(NY, 2026, 1, 6, 15), 2 * H, local(NY, 2026, 1, 6, 17)),
    ("several-days", local(NY, 2026, 1, 6, 10), 24 * H, local(NY, 2026, 1, 9, 10)),
    ("a-working-week", local(NY, 2026, 1, 5, 9), 40 * H, local(NY, 2026, 1, 9, 17)),
    (
        "to-the-second",
        local(NY, 2026, 1, 6, 16, 59, 30),
        timedelta(minutes=1),
        local(NY, 2026, 1, 7, 9, 0, 30),
    ),
    ("zero-inside-hours", local(NY, 2026, 1, 6, 12), timedelta(0), local(NY, 2026, 1, 6, 12)),
    ("zero-after-closing", local(NY, 2026, 1, 6, 20), timedelta(0), local(NY, 2026, 1, 7, 9)),
    ("friday-over-the-weekend", local(NY, 2026, 1, 9, 16), 2 * H, local(NY, 2026, 1, 12, 10)),
    ("friday-after-closing", local(NY, 2026, 1, 9, 18), 2 * H, local(NY, 2026, 1, 12, 11)),
    ("from-saturday", local(NY, 2026, 1, 10, 12), H, local(NY, 2026, 1, 12, 10)),
    ("from-sunday-night", local(NY, 2026, 1, 11, 23, 59), H / 2, local(NY, 2026, 1, 12, 9, 30)),
]


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [case[1:] for case in NINE_TO_FIVE_CASES],
    ids=[case[0] for case in NINE_TO_FIVE_CASES],
)
def test_add_counts_only_nine_to_five_on_weekdays(
    start: datetime, duration: timedelta, expected: datetime
) -> None:
    assert_instant(calendar().add(start, duration), expected)


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (local(NY, 2026, 1, 9, 16), 2 * H, local(NY, 2026, 1, 10, 10)),  # Fri -> Sat
        (local(NY, 2026, 1, 11, 16), 2 * H, local(NY, 2026, 1, 12, 10)),  # Sun -> Mon
        (local(NY, 2026, 1, 10, 9), 16 * H, local(NY, 2026, 1, 11, 17)),  # all weekend
    ],
    ids=["friday-to-saturday", "sunday-to-monday", "a-whole-weekend"],
)
def test_a_weekend_inclusive_calendar_works_saturday_and_sunday(
    start: datetime, duration: timedelta, expected: datetime
) -> None:
    assert_instant(calendar(days=EVERY_DAY).add(start, duration), expected)


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (local(NY, 2026, 1, 6, 11), 2 * H, local(NY, 2026, 1, 6, 14)),
        (local(NY, 2026, 1, 6, 11), H, local(NY, 2026, 1, 6, 12)),
        (local(NY, 2026, 1, 6, 12, 30), H, local(NY, 2026, 1, 6, 14)),
        (local(NY, 2026, 1, 6, 12), H, local(NY, 2026, 1, 6, 14)),
        (local(NY, 2026, 1, 6, 16), 4 * H, local(NY, 2026, 1, 7, 12)),
        (local(NY, 2026, 1, 6, 16), 5 * H, local(NY, 2026, 1, 7, 14)),
    ],
    ids=[
        "over-lunch",
        "up-to-lunch",
        "from-inside-lunch",
        "from-start-of-lunch",
        "up-to-next-lunch",
        "over-next-lunch",
    ],
)
def test_add_skips_the_gap_between_two_spans_of_a_day(
    start: datetime, duration: timedelta, expected: datetime
) -> None:
    assert_instant(calendar(spans=(MORNING, AFTERNOON)).add(start, duration), expected)


def test_between_does_not_count_lunch() -> None:
    lunch_break = calendar(spans=(MORNING, AFTERNOON))
    tuesday = local(NY, 2026, 1, 6)
    assert lunch_break.between(tuesday, tuesday + timedelta(days=1)) == 7 * H
    assert lunch_break.between(local(NY, 2026, 1, 6, 11, 30), local(NY, 2026, 1, 6, 13, 30)) == H
    assert lunch_break.between(local(NY, 2026, 1, 6, 12), local(NY, 2026, 1, 6, 13)) == timedelta(0)


def test_spans_of_a_day_with_lunch_are_two_utc_intervals() -> None:
    assert calendar(spans=(MORNING, AFTERNOON)).spans(date(2026, 1, 6)) == [
        (utc(2026, 1, 6, 14), utc(2026, 1, 6, 17)),
        (utc(2026, 1, 6, 18), utc(2026, 1, 6, 22)),
    ]


def test_spans_given_out_of_order_count_as_in_order() -> None:
    unordered = calendar(spans=(AFTERNOON, MORNING))
    assert_instant(unordered.add(local(NY, 2026, 1, 6, 8), 2 * H), local(NY, 2026, 1, 6, 11))
    assert unordered.between(local(NY, 2026, 1, 6, 8), local(NY, 2026, 1, 6, 12)) == 3 * H


# -------------------------------------------------------------------------------- holidays


def test_a_listed_holiday_is_a_whole_day_off() -> None:
    days_off = {date(2026, 1, 7)}
    listed = calendar(is_holiday=days_off.__contains__)
    assert listed.spans(date(2026, 1, 7)) == []
    assert_instant(listed.add(local(NY, 2026, 1, 6, 16), 2 * H), local(NY, 2026, 1, 8, 10))
    assert listed.between(local(NY, 2026, 1, 5), local(NY, 2026, 1, 12)) == 32 * H


def test_a_holiday_is_a_local_day_of_the_calendar_zone() -> None:
    # Around the clock in New York, 7 Jan off: the UTC day of 7 Jan still holds 5 hours of
    # New York's 6 Jan (19:00-24:00), and none of its 7 Jan.
    days_off = {date(2026, 1, 7)}
    around_the_clock = calendar(
        spans=(WHOLE_DAY,), days=EVERY_DAY, is_holiday=days_off.__contains__
    )
    assert around_the_clock.between(local(NY, 2026, 1, 7), local(NY, 2026, 1, 8)) == timedelta(0)
    assert around_the_clock.between(utc(2026, 1, 7), utc(2026, 1, 8)) == 5 * H


US_PUBLIC_HOLIDAYS = [
    # (case id, start, expected): 2 working hours after the start, New York, US holidays.
    ("thanksgiving", local(NY, 2026, 11, 25, 16), local(NY, 2026, 11, 27, 10)),
    ("christmas-on-a-friday", local(NY, 2026, 12, 24, 16), local(NY, 2026, 12, 28, 10)),
    ("martin-luther-king-day", local(NY, 2026, 1, 16, 16), local(NY, 2026, 1, 20, 10)),
    # 4 July 2026 is a Saturday: the holiday is observed on Friday 3 July.
    ("independence-day-observed", local(NY, 2026, 7, 2, 16), local(NY, 2026, 7, 6, 10)),
    ("an-ordinary-day", local(NY, 2026, 11, 24, 16), local(NY, 2026, 11, 25, 10)),
]


@pytest.mark.parametrize(
    ("start", "expected"),
    [case[1:] for case in US_PUBLIC_HOLIDAYS],
    ids=[case[0] for case in US_PUBLIC_HOLIDAYS],
)
def test_public_holidays_of_the_holidays_library_are_days_off(
    start: datetime, expected: datetime
) -> None:
    us = CalendarModel(holidays_country="US", time_zone="America/New_York").calendar()
    assert_instant(us.add(start, 2 * H), expected)


def test_a_holiday_week_has_fewer_working_hours() -> None:
    us = CalendarModel(holidays_country="US", time_zone="America/New_York").calendar()
    assert us.spans(date(2026, 11, 26)) == []
    assert us.between(local(NY, 2026, 11, 23), local(NY, 2026, 11, 30)) == 32 * H


def test_a_subdivision_adds_its_own_public_holidays() -> None:
    # Patriots' Day (Monday 20 April 2026) is a holiday in Massachusetts, not in all the US.
    friday = local(NY, 2026, 4, 17, 16)
    us = CalendarModel(holidays_country="US", time_zone="America/New_York").calendar()
    massachusetts = CalendarModel(
        holidays_country="US", holidays_subdivision="MA", time_zone="America/New_York"
    ).calendar()
    assert_instant(us.add(friday, 2 * H), local(NY, 2026, 4, 20, 10))
    assert_instant(massachusetts.add(friday, 2 * H), local(NY, 2026, 4, 21, 10))


def test_listed_days_and_public_holidays_both_count() -> None:
    model = CalendarModel(
        holidays_country="US", time_zone="America/New_York", holidays=[date(2026, 12, 24)]
    )
    # Thu 24 listed, Fri 25 Christmas: Wednesday's last hour, then Monday.
    assert_instant(
        model.calendar().add(local(NY, 2026, 12, 23, 16), 2 * H), local(NY, 2026, 12, 28, 10)
    )


# ------------------------------------------------------------------------ daylight saving

DAY_LENGTHS = [
    # (zone, local day, working time of 00:00-24:00 that day)
    (NY, date(2026, 3, 8), 23 * H),  # spring forward
    (NY, date(2026, 11, 1), 25 * H),  # fall back
    (NY, date(2026, 3, 7), 24 * H),
    (BERLIN, date(2026, 3, 29), 23 * H),
    (BERLIN, date(2026, 10, 25), 25 * H),
    (BERLIN, date(2026, 3, 8), 24 * H),  # New York's change is not Berlin's
]


@pytest.mark.parametrize(("zone", "day", "length"), DAY_LENGTHS, ids=str)
def test_a_whole_local_day_lasts_as_long_as_the_clock_says(
    zone: ZoneInfo, day: date, length: timedelta
) -> None:
    around_the_clock = calendar(zone=zone, spans=(WHOLE_DAY,), days=EVERY_DAY)
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    assert around_the_clock.between(midnight, next_midnight) == length
    [(opens, closes)] = around_the_clock.spans(day)
    assert closes - opens == length


WALL_TIMES = [
    # (zone, local day, UTC instants of its 09:00-17:00): the same wall times, shifted an hour.
    (NY, date(2026, 3, 7), utc(2026, 3, 7, 14), utc(2026, 3, 7, 22)),
    (NY, date(2026, 3, 8), utc(2026, 3, 8, 13), utc(2026, 3, 8, 21)),
    (NY, date(2026, 10, 31), utc(2026, 10, 31, 13), utc(2026, 10, 31, 21)),
    (NY, date(2026, 11, 1), utc(2026, 11, 1, 14), utc(2026, 11, 1, 22)),
    (BERLIN, date(2026, 3, 28), utc(2026, 3, 28, 8), utc(2026, 3, 28, 16)),
    (BERLIN, date(2026, 3, 29), utc(2026, 3, 29, 7), utc(2026, 3, 29, 15)),
    (BERLIN, date(2026, 10, 24), utc(2026, 10, 24, 7), utc(2026, 10, 24, 15)),
    (BERLIN, date(2026, 10, 25), utc(2026, 10, 25, 8), utc(2026, 10, 25, 16)),
]


@pytest.mark.parametrize(("zone", "day", "opens", "closes"), WALL_TIMES, ids=str)
def test_nine_to_five_keeps_its_wall_times_across_a_change(
    zone: ZoneInfo, day: date, opens: datetime, closes: datetime
) -> None:
    assert calendar(zone=zone, days=EVERY_DAY).spans(day) == [(opens, closes)]


ACROSS_A_CHANGE = [
    # (case id, zone, hours, days, start, duration, expected local wall time)
    (
        "ny-spring-weekend",
        NY,
        NINE_TO_FIVE,
        WEEKDAYS,
        local(NY, 2026, 3, 6, 16),
        2 * H,
        local(NY, 2026, 3, 9, 10),
    ),
    (
        "ny-fall-weekend",
        NY,
        NINE_TO_FIVE,
        WEEKDAYS,
        local(NY, 2026, 10, 30, 16),
        2 * H,
        local(NY, 2026, 11, 2, 10),
    ),
    (
        "berlin-spring-weekend",
        BERLIN,
        NINE_TO_FIVE,
        WEEKDAYS,
        local(BERLIN, 2026, 3, 27, 16),
        2 * H,
        local(BERLIN, 2026, 3, 30, 10),
    ),
    (
        "berlin-fall-weekend",
        BERLIN,
        NINE_TO_FIVE,
        WEEKDAYS,
        local(BERLIN, 2026, 10, 23, 16),
        2 * H,
        local(BERLIN, 2026, 10, 26, 10),
    ),
    (
        "ny-spring-overnight",
        NY,
        NINE_TO_FIVE,
        EVERY_DAY,
        local(NY, 2026, 3, 7, 16),
        2 * H,
        local(NY, 2026, 3, 8, 10),
    ),
    (
        "berlin-fall-overnight",
        BERLIN,
        NINE_TO_FIVE,
        EVERY_DAY,
        local(BERLIN, 2026, 10, 24, 16),
        2 * H,
        local(BERLIN, 2026, 10, 25, 10),
    ),
    # Around the clock, working time is elapsed time: 4 h after 22:00 is 03:00 the morning the
    # clocks skip 02:00-03:00, and 01:00 (the second one) the morning they repeat 01:00-02:00.
    (
        "ny-spring-through-the-gap",
        NY,
        WHOLE_DAY,
        EVERY_DAY,
        local(NY, 2026, 3, 7, 22),
        4 * H,
        local(NY, 2026, 3, 8, 3),
    ),
    (
        "ny-fall-into-the-repeat",
        NY,
        WHOLE_DAY,
        EVERY_DAY,
        local(NY, 2026, 10, 31, 22),
        4 * H,
        local(NY, 2026, 11, 1, 1, fold=1),
    ),
    (
        "berlin-spring-through-the-gap",
        BERLIN,
        WHOLE_DAY,
        EVERY_DAY,
        local(BERLIN, 2026, 3, 28, 23),
        4 * H,
        local(BERLIN, 2026, 3, 29, 4),
    ),
]


@pytest.mark.parametrize(
    ("zone", "span", "days", "start", "duration", "expected"),
    [case[1:] for case in ACROSS_A_CHANGE],
    ids=[case[0] for case in ACROSS_A_CHANGE],
)
def test_add_across_a_change_lands_on_the_right_wall_time(
    zone: ZoneInfo,
    span: Span,
    days: range,
    start: datetime,
    duration: timedelta,
    expected: datetime,
) -> None:
    due = calendar(zone=zone, spans=(span,), days=days).add(start, duration)
    assert_instant(due, expected)
    wall = due.astimezone(zone)
    assert (wall.date(), wall.time(), wall.fold) == (
        expected.date(),
        expected.time(),
        expected.fold,
    )


def test_the_weekend_of_a_change_is_an_hour_shorter_or_longer_in_elapsed_time() -> None:
    # The working time is the same; the real time from Friday's close to Monday's open is not.
    nine_to_five = calendar()
    spring_due = nine_to_five.add(local(NY, 2026, 3, 6, 16), 2 * H)
    fall_due = nine_to_five.add(local(NY, 2026, 10, 30, 16), 2 * H)
    assert spring_due - local(NY, 2026, 3, 6, 16) == 65 * H
    assert fall_due - local(NY, 2026, 10, 30, 16) == 67 * H


# ------------------------------------------------------------------------------ time zones


def test_the_same_hours_in_two_zones_give_different_due_instants() -> None:
    new_york = calendar()
    berlin = new_york.with_zone(BERLIN)
    start = utc(2026, 1, 6, 12)  # 07:00 in New York, 13:00 in Berlin
    assert_instant(new_york.add(start, 2 * H), utc(2026, 1, 6, 16))  # 11:00 New York
    assert_instant(berlin.add(start, 2 * H), utc(2026, 1, 6, 14))  # 15:00 Berlin


def test_two_zones_differ_by_their_own_offsets_between_their_changes() -> None:
    # 10 March 2026: New York is on summer time (UTC-4), Berlin still on winter time (UTC+1).
    new_york = calendar()
    start = utc(2026, 3, 10, 12)  # 08:00 New York, 13:00 Berlin
    assert_instant(new_york.add(start, 3 * H), utc(2026, 3, 10, 16))  # 12:00 New York
    assert_instant(new_york.with_zone(BERLIN).add(start, 3 * H), utc(2026, 3, 10, 15))


def test_with_zone_keeps_hours_and_holidays_and_leaves_the_original_alone() -> None:
    days_off = {date(2026, 1, 7)}
    new_york = calendar(spans=(MORNING, AFTERNOON), is_holiday=days_off.__contains__)
    berlin = new_york.with_zone(BERLIN)
    assert (berlin.zone, berlin.hours, berlin.is_holiday) == (
        BERLIN,
        new_york.hours,
        new_york.is_holiday,
    )
    assert new_york.zone is NY
    assert berlin.spans(date(2026, 1, 7)) == []
    assert berlin.spans(date(2026, 1, 6))[0] == (utc(2026, 1, 6, 8), utc(2026, 1, 6, 11))


@pytest.mark.parametrize(
    "start",
    [
        utc(2026, 1, 6, 21),
        local(NY, 2026, 1, 6, 16),
        local(BERLIN, 2026, 1, 6, 22),
        local(TOKYO, 2026, 1, 7, 6),
        datetime(2026, 1, 6, 14, tzinfo=timezone(timedelta(hours=-7))),
    ],
    ids=["utc", "new-york", "berlin", "tokyo", "fixed-offset"],
)
def test_a_start_in_any_zone_is_the_same_instant(start: datetime) -> None:
    # Every start is Tue 6 Jan 2026 16:00 in New York.
    nine_to_five = calendar()
    assert_instant(nine_to_five.add(start, 2 * H), local(NY, 2026, 1, 7, 10))
    assert nine_to_five.between(start, local(NY, 2026, 1, 7, 10)) == 2 * H


# -------------------------------------------------------------------------------- between

BETWEEN_CASES = [
    ("same-day", local(NY, 2026, 1, 6, 10), local(NY, 2026, 1, 6, 12), 2 * H),
    ("across-the-night", local(NY, 2026, 1, 6, 16), local(NY, 2026, 1, 7, 10), 2 * H),
    ("over-the-weekend", local(NY, 2026, 1, 9, 16), local(NY, 2026, 1, 12, 10), 2 * H),
    ("a-week", local(NY, 2026, 1, 5), local(NY, 2026, 1, 12), 40 * H),
    ("only-the-weekend", local(NY, 2026, 1, 10), local(NY, 2026, 1, 12), timedelta(0)),
    ("only-the-night", local(NY, 2026, 1, 6, 17), local(NY, 2026, 1, 7, 9), timedelta(0)),
    ("equal", local(NY, 2026, 1, 6, 10), local(NY, 2026, 1, 6, 10), timedelta(0)),
    ("end-before-start", local(NY, 2026, 1, 7, 10), local(NY, 2026, 1, 6, 10), timedelta(0)),
    ("end-well-before", local(NY, 2026, 2, 7, 10), local(NY, 2026, 1, 6, 10), timedelta(0)),
    ("a-year", local(NY, 2026, 1, 5), local(NY, 2027, 1, 4), 52 * 40 * H),
]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [case[1:] for case in BETWEEN_CASES],
    ids=[case[0] for case in BETWEEN_CASES],
)
def test_between_measures_working_time(start: datetime, end: datetime, expected: timedelta) -> None:
    assert calendar().between(start, end) == expected


def test_between_counts_a_range_longer_than_the_search_horizon() -> None:
    around_the_clock = calendar(zone=UTC, spans=(WHOLE_DAY,), days=EVERY_DAY)
    start = utc(2026, 1, 1)
    end = start + timedelta(days=SEARCH_DAYS + 10)
    assert around_the_clock.between(start, end) == end - start


# Hours with a lunch break, a short Saturday and a day off, in a zone that changes its clocks.
HOLIDAY = date(2026, 7, 3)
PROPERTY_CALENDAR = BusinessCalendar(
    zone=NY,
    hours={**dict.fromkeys(WEEKDAYS, (MORNING, AFTERNOON)), 5: (parse_span("10:00-14:00"),)},
    is_holiday=lambda day: day == HOLIDAY,
)
instants = st.datetimes(
    min_value=datetime(2026, 1, 1),
    max_value=datetime(2026, 12, 31),
    timezones=st.sampled_from([UTC, NY, BERLIN, TOKYO]),
    allow_imaginary=False,
)
durations = st.integers(min_value=0, max_value=80 * 60).map(lambda m: timedelta(minutes=m))


@settings(max_examples=300, deadline=None, database=None)
@given(start=instants, duration=durations)
def test_between_undoes_add(start: datetime, duration: timedelta) -> None:
    due = PROPERTY_CALENDAR.add(start, duration)
    assert due >= start
    assert PROPERTY_CALENDAR.between(start, due) == duration


@settings(max_examples=300, deadline=None, database=None)
@given(moments=st.lists(instants, min_size=2, max_size=2))
def test_add_undoes_between(moments: list[datetime]) -> None:
    start, end = sorted(moments)
    worked = PROPERTY_CALENDAR.between(start, end)
    due = PROPERTY_CALENDAR.add(start, worked)
    assert PROPERTY_CALENDAR.between(start, due) == worked
    # An end inside a span (after its opening) is the very moment that much work is done.
    local_day = end.astimezone(NY).date()
    if worked and any(
        opens < end <= closes for opens, closes in PROPERTY_CALENDAR.spans(local_day)
    ):
        assert due == end
    else:
        assert PROPERTY_CALENDAR.between(due, end) == timedelta(0)


@settings(max_examples=200, deadline=None, database=None)
@given(moments=st.lists(instants, min_size=3, max_size=3))
def test_between_adds_up_over_consecutive_ranges(moments: list[datetime]) -> None:
    first, middle, last = sorted(moments)
    assert PROPERTY_CALENDAR.between(first, last) == PROPERTY_CALENDAR.between(
        first, middle
    ) + PROPERTY_CALENDAR.between(middle, last)


def test_add_and_between_agree_at_every_quarter_hour_of_a_changing_week() -> None:
    # Every start from Thu 5 to Tue 10 March 2026 (New York springs forward on the 8th), by
    # quarter hours, with durations crossing nights, the weekend and the change.
    around_the_change = calendar(spans=(MORNING, AFTERNOON), days=range(6))
    start = local(NY, 2026, 3, 5)
    for step in range(6 * 24 * 4):
        moment = start + timedelta(minutes=15 * step)
        for duration in (timedelta(0), H / 4, 3 * H, 7 * H, 20 * H):
            due = around_the_change.add(moment, duration)
            assert around_the_change.between(moment, due) == duration, (moment, duration)


# -------------------------------------------------------------------------------- periods

PERIODS = [
    # (case id, kind, moment, expected first instant, expected instant after)
    ("week", "week", local(NY, 2026, 1, 7, 12), local(NY, 2026, 1, 5), local(NY, 2026, 1, 12)),
    (
        "week-from-its-first-instant",
        "week",
        local(NY, 2026, 1, 12),
        local(NY, 2026, 1, 12),
        local(NY, 2026, 1, 19),
    ),
    (
        "week-at-its-last-minute",
        "week",
        local(NY, 2026, 1, 11, 23, 59),
        local(NY, 2026, 1, 5),
        local(NY, 2026, 1, 12),
    ),
    # Sunday 23:30 in New York is already Monday 03:30 in UTC: it is still New York's week.
    (
        "sunday-night-is-monday-in-utc",
        "week",
        utc(2026, 3, 16, 3, 30),
        local(NY, 2026, 3, 9),
        local(NY, 2026, 3, 16),
    ),
    (
        "week-of-spring-forward",
        "week",
        local(NY, 2026, 3, 5),
        local(NY, 2026, 3, 2),
        local(NY, 2026, 3, 9),
    ),
    (
        "week-of-fall-back",
        "week",
        local(NY, 2026, 10, 28),
        local(NY, 2026, 10, 26),
        local(NY, 2026, 11, 2),
    ),
    (
        "week-across-new-year",
        "week",
        local(NY, 2027, 1, 1),
        local(NY, 2026, 12, 28),
        local(NY, 2027, 1, 4),
    ),
    ("month", "month", local(NY, 2026, 11, 15), local(NY, 2026, 11, 1), local(NY, 2026, 12, 1)),
    (
        "december",
        "month",
        local(NY, 2026, 12, 31, 23),
        local(NY, 2026, 12, 1),
        local(NY, 2027, 1, 1),
    ),
    (
        "february",
        "month",
        local(NY, 2026, 2, 28, 12),
        local(NY, 2026, 2, 1),
        local(NY, 2026, 3, 1),
    ),
    ("january-31st", "month", local(NY, 2026, 1, 31), local(NY, 2026, 1, 1), local(NY, 2026, 2, 1)),
    (
        "first-of-month-in-utc-is-last-day-local",
        "month",
        utc(2026, 12, 1, 3),
        local(NY, 2026, 11, 1),
        local(NY, 2026, 12, 1),
    ),
]


@pytest.mark.parametrize(
    ("kind", "moment", "first", "after"),
    [case[1:] for case in PERIODS],
    ids=[case[0] for case in PERIODS],
)
def test_period_is_the_local_week_or_month_in_utc(
    kind: Period, moment: datetime, first: datetime, after: datetime
) -> None:
    opens, closes = calendar().period(moment, kind)
    assert_instant(opens, first)
    assert_instant(closes, after)


@pytest.mark.parametrize(
    ("moment", "length"),
    [
        (local(NY, 2026, 3, 5), timedelta(days=7) - H),
        (local(NY, 2026, 10, 28), timedelta(days=7) + H),
        (local(NY, 2026, 1, 7), timedelta(days=7)),
    ],
    ids=["spring-forward", "fall-back", "plain"],
)
def test_a_week_with_a_change_is_an_hour_shorter_or_longer(
    moment: datetime, length: timedelta
) -> None:
    opens, closes = calendar().period(moment, "week")
    assert closes - opens == length


def test_the_same_moment_is_in_different_weeks_in_different_zones() -> None:
    moment = utc(2026, 3, 16, 3, 30)  # Sunday 23:30 in New York, Monday 04:30 in Berlin
    new_york = calendar()
    assert new_york.period(moment, "week") == (utc(2026, 3, 9, 4), utc(2026, 3, 16, 4))
    assert new_york.with_zone(BERLIN).period(moment, "week") == (
        utc(2026, 3, 15, 23),
        utc(2026, 3, 22, 23),
    )


# ------------------------------------------------------------------------------- refusals

NAIVE = datetime(2026, 1, 6, 16)
AWARE = local(NY, 2026, 1, 6, 16)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.add(NAIVE, H),
        lambda c: c.between(NAIVE, AWARE),
        lambda c: c.between(AWARE, NAIVE),
        lambda c: c.period(NAIVE, "week"),
    ],
    ids=["add", "between-start", "between-end", "period"],
)
def test_naive_datetimes_are_refused(call: Callable[[BusinessCalendar], object]) -> None:
    with pytest.raises(ValueError, match="naive datetime") as raised:
        call(calendar())
    assert not isinstance(raised.value, NoWorkingTimeError)


def test_a_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be negative") as raised:
        calendar().add(AWARE, -timedelta(minutes=1))
    assert not isinstance(raised.value, NoWorkingTimeError)


@pytest.mark.parametrize(
    "hours",
    [{}, {0: ()}, dict.fromkeys(EVERY_DAY, ()), {7: (NINE_TO_FIVE,)}],
    ids=["no-days", "an-empty-day", "every-day-empty", "not-a-weekday"],
)
def test_a_calendar_without_working_hours_is_refused(hours: dict[int, tuple[Span, ...]]) -> None:
    with pytest.raises(NoWorkingTimeError, match="needs working hours"):
        BusinessCalendar(zone=NY, hours=hours)


def test_a_calendar_of_holidays_only_has_no_working_time_to_add() -> None:
    always_off = calendar(is_holiday=lambda day: True)
    with pytest.raises(NoWorkingTimeError, match="no working time within 3660 days"):
        always_off.add(AWARE, H)
    assert always_off.between(AWARE, AWARE + timedelta(days=30)) == timedelta(0)


def test_no_working_time_error_is_a_value_error() -> None:
    # Callers that refuse bad input with one `except ValueError` catch this too.
    assert issubclass(NoWorkingTimeError, ValueError)


# ----------------------------------------------------------------------------- parse_span


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00-17:00", Span(time(9), time(17))),
        ("13:00-24:00", Span(time(13), None)),
        ("00:00-24:00", Span(time(0), None)),
        ("08:30-12:45", Span(time(8, 30), time(12, 45))),
        ("00:00-00:01", Span(time(0), time(0, 1))),
        (" 09:00 - 17:00 ", Span(time(9), time(17))),
    ],
)
def test_parse_span_reads_hh_mm_ranges(text: str, expected: Span) -> None:
    assert parse_span(text) == expected


def test_a_span_until_24_00_ends_at_the_next_local_midnight() -> None:
    opens, closes = parse_span("13:00-24:00").on(date(2026, 3, 7), NY)
    assert (opens, closes) == (utc(2026, 3, 7, 18), utc(2026, 3, 8, 5))
    # On the day New York springs forward, midnight is already on summer time.
    assert parse_span("13:00-24:00").on(date(2026, 3, 8), NY)[1] == utc(2026, 3, 9, 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9-17", "'9-17': '9' is not a time of day (HH:MM)"),
        ("17:00-09:00", "'17:00-09:00' ends before it starts"),
        ("09:00-09:00", "'09:00-09:00' ends before it starts"),
        ("09:00", "'09:00' is not a span: write it as HH:MM-HH:MM"),
        ("", "is not a span"),
        ("25:00-26:00", "'25:00-26:00': '25:00' is not a time of day"),
        ("09:60-10:00", "'09:60' is not a time of day"),
        ("24:00-24:00", "'24:00' is not a time of day"),
        ("09:00-17:00-18:00", "'17:00-18:00' is not a time of day"),
        ("9:00-17:00", "'9:00' is not a time of day"),
        ("nine-five", "'nine' is not a time of day"),
    ],
)
def test_parse_span_errors_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_span(text)


@pytest.mark.parametrize("text", ["+9:00-17:00", "9 :00-17:00"])
def test_parse_span_refuses_what_is_not_hh_mm(text: str) -> None:
    with pytest.raises(ValueError, match="is not a time of day"):
        parse_span(text)
