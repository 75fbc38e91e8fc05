"""Business calendars: working hours per weekday in one time zone, less public holidays.

    calendar.add(start, timedelta(hours=8))   the moment 8 working hours after `start`
    calendar.between(start, end)              the working time from `start` to `end`
    calendar.period(moment, "week")           the week (or month) holding `moment`, in UTC

Working hours are wall-clock spans of the calendar's zone ("09:00-17:00"). Each span is turned
into two UTC instants on its own day, so a daylight-saving change shortens or lengthens only the
spans it falls in (a 00:00-24:00 span is 23 or 25 hours long that day), and a span never
depends on the offset of another day. Holidays are whole local days off. Every datetime in
and out is timezone-aware; results are in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

from leadsync.errors import InputError

__all__ = [
    "WEEKDAYS",
    "BusinessCalendar",
    "NoWorkingTimeError",
    "Period",
    "Span",
    "parse_span",
]

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Period = Literal["week", "month"]
# How far `add` looks for working time before it concludes there is none: ten years.
SEARCH_DAYS = 3_660


class NoWorkingTimeError(InputError, ValueError):
    """The calendar has no working time within reach (every day off, or all holidays)."""


@dataclass(frozen=True, slots=True)
class Span:
    """Working time on one day, from `start` to `end` local time; `end` None is midnight."""

    start: time
    end: time | None

    def on(self, day: date, zone: tzinfo) -> tuple[datetime, datetime]:
        """The span on `day` as UTC instants."""
        opens = _instant(day, self.start, zone)
        if self.end is None:
            return opens, _instant(day + timedelta(days=1), time(0), zone)
        return opens, _instant(day, self.end, zone)


def parse_span(text: str) -> Span:
    """ "09:00-17:00" (or "13:00-24:00") as a Span; ValueError with the reason otherwise."""
    start_text, dash, end_text = text.partition("-")
    if not dash:
        raise ValueError(f"{text!r} is not a span: write it as HH:MM-HH:MM, e.g. 09:00-17:00")
    start = _clock_time(start_text.strip(), text)
    end = None if end_text.strip() == "24:00" else _clock_time(end_text.strip(), text)
    if end is not None and end <= start:
        raise ValueError(f"{text!r} ends before it starts")
    return Span(start, end)


_HH_MM = re.compile(r"(\d\d):(\d\d)")


def _clock_time(text: str, span: str) -> time:
    found = _HH_MM.fullmatch(text)
    try:
        if found is None:
            raise ValueError(text)
        return time(int(found.group(1)), int(found.group(2)))
    except ValueError:
        raise ValueError(f"{span!r}: {text!r} is not a time of day (HH:MM)") from None


def _instant(day: date, at: time, zone: tzinfo) -> datetime:
    # A wall time in a spring-forward gap has no instant of its own: zoneinfo reads it with the
    # offset before the change (fold 0), which lands just after the gap, as a clock would.
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class BusinessCalendar:
    """Working spans per weekday (0 Monday .. 6 Sunday) in `zone`, and the days off."""

    zone: tzinfo
    hours: Mapping[int, Sequence[Span]]
    # Whether a local date is a holiday; a whole day off whatever the weekday's hours.
    is_holiday: Callable[[date], bool] = field(default=lambda day: False)

    def __post_init__(self) -> None:
        if not any(self.hours.get(weekday) for weekday in range(7)):
            raise NoWorkingTimeError("a business calendar needs working hours on some weekday")
        # The walks below take a day's spans in order: "13:00-17:00", "09:00-12:00" is a
        # morning and an afternoon all the same.
        ordered = {day: tuple(sorted(spans, key=_opening)) for day, spans in self.hours.items()}
        object.__setattr__(self, "hours", ordered)

    def with_zone(self, zone: tzinfo) -> BusinessCalendar:
        """The same hours and holidays, kept in another zone (an owner's, say)."""
        return replace(self, zone=zone)

    def spans(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working time of a local day, as UTC instants; none on a holiday."""
        if self.is_holiday(day):
            return []
        return [span.on(day, self.zone) for span in self.hours.get(day.weekday(), ())]

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of working time after `start`. Time outside working hours
        does not count: 2 hours after Friday 16:00, on 9-17 hours, is Monday 10:00."""
        _require_aware(start)
        if duration < timedelta(0):
            raise ValueError("a duration of working time cannot be negative")
        moment = start.astimezone(UTC)
        left = duration
        for opens, closes in self._spans_from(moment):
            opens = max(opens, moment)
            if closes <= opens:
                continue
            if left <= closes - opens:
                return opens + left
            left -= closes - opens
        raise NoWorkingTimeError(f"no working time within {SEARCH_DAYS} days of {start}")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The working time from `start` to `end` (zero when `end` is not after `start`)."""
        _require_aware(start)
        _require_aware(end)
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        total = timedelta(0)
        if end <= start:
            return total
        for opens, closes in self._spans_from(start, until=end):
            if opens >= end:
                break
            overlap = min(closes, end) - max(opens, start)
            if overlap > timedelta(0):
                total += overlap
        return total

    def period(self, moment: datetime, kind: Period) -> tuple[datetime, datetime]:
        """The calendar week (Monday 00:00 to Monday 00:00) or month holding `moment`, local
        to the calendar, as UTC instants."""
        _require_aware(moment)
        day = moment.astimezone(self.zone).date()
        if kind == "week":
            first = day - timedelta(days=day.weekday())
            after = first + timedelta(days=7)
        else:
            first = day.replace(day=1)
            after = (first + timedelta(days=32)).replace(day=1)
        return _instant(first, time(0), self.zone), _instant(after, time(0), self.zone)

    def _spans_from(
        self, moment: datetime, *, until: datetime | None = None
    ) -> Iterator[tuple[datetime, datetime]]:
        """The spans from the local day of `moment`: up to the local day of `until`, or for
        SEARCH_DAYS when there is no end to reach."""
        # A span of an earlier local day ends by that day's midnight: none can hold `moment`.
        day = moment.astimezone(self.zone).date()
        days = SEARCH_DAYS
        if until is not None:
            days = (until.astimezone(self.zone).date() - day).days + 1
        for offset in range(days):
            yield from self.spans(day + timedelta(days=offset))


def _opening(span: Span) -> time:
    return span.start


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass a timezone-aware one")
