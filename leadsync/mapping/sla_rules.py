"""The `[sla]` section of the lead definition: the handoff's service levels and their calendars.

    [sla]
    owner_field = "owner_id"                 # whose clock it is, for per-owner figures
    owner_time_zones = { "005A" = "Europe/Berlin" }   # an owner's own zone, where it differs

    [sla.calendars.sales]                    # working time, in one zone
    time_zone = "America/New_York"
    hours = { mon = ["09:00-17:00"], tue = ["09:00-17:00"], ... }
    holidays_country = "US"                  # public holidays (the `holidays` library)
    holidays_subdivision = "NY"
    holidays = [2026-12-24]                  # and listed days off
    time_zone_field = "owner_time_zone"      # a lead's own zone (an IANA name), where mapped

    [[sla.rules]]                            # a clock: from entering `start` ...
    name = "mql_acceptance"
    start = "mql"
    stop = "sal"                             # ... to reaching `stop` or a later stage
    # stop_on_change = ["sf_status"]         # ... or to a person changing one of these fields
    within_hours = 8                         # working hours of `calendar`
    calendar = "sales"
    rejected_by = ["recycled", "disqualified"]   # leaving for these stops it too: a rejection

    [[sla.volume]]                           # marketing's side: MQLs delivered per period
    name = "weekly_mqls"
    stage = "mql"
    period = "week"                          # or "month"
    at_least = 25                            # overall; or per segment:
    # segment_field = "lead_source"
    # targets = { organic_search = 10, paid_search = 8 }
    calendar = "marketing"

    [sla.no_response]                        # a warning sign, not a clock: handed-off leads
    within_hours = 8                         # not worked within this many working hours
    fields = ["sf_status", "last_sales_activity"]   # a change of one of these is work
    calendar = "sales"                       # default: the acceptance clock's calendar

Every mistake is reported with its key by the lead definition's loader.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Mapping
from datetime import date, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import Field, ValidationInfo, field_validator, model_validator

from leadsync.mapping.calendar import WEEKDAYS, BusinessCalendar, Span, parse_span
from leadsync.mapping.validation import StrictModel, known_fields, problems, unknown_field_message

__all__ = [
    "CLOCK_STAGES",
    "CalendarModel",
    "ClockRule",
    "NoResponseModel",
    "SlaModel",
    "VolumeRule",
    "cross_key_problems",
    "time_zone",
]

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_FORWARD = ("lead", "mql", "sal", "sql", "opportunity", "customer")
# A clock starts at a forward stage a lead can still leave: customer is final.
CLOCK_STAGES = _FORWARD[:-1]
StageName = Literal["lead", "mql", "sal", "sql", "opportunity", "customer"]
ExitStage = Literal["recycled", "disqualified"]
_EXIT_STAGES: tuple[ExitStage, ...] = ("recycled", "disqualified")
_DEFAULT_HOURS = {day: ["09:00-17:00"] for day in WEEKDAYS[:5]}


@functools.lru_cache(maxsize=64)
def time_zone(name: str) -> ZoneInfo | None:
    """The IANA zone called `name`, or None when there is none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a folder of the zone database ("America") is no zone.
        return None


def _known_field(name: str, info: ValidationInfo, *, kinds: frozenset[str] | None = None) -> str:
    fields = known_fields(info)
    if fields is None:
        return name
    if name not in fields:
        raise problems(("", unknown_field_message(name, fields)))
    if kinds is not None and fields[name] not in kinds:
        raise problems(("", f"{name} is {fields[name]}; expected {' or '.join(sorted(kinds))}"))
    return name


class CalendarModel(StrictModel):
    """Working hours per weekday in one zone, less public holidays and listed days."""

    time_zone: str = "UTC"
    hours: dict[str, list[str]] = Field(default_factory=lambda: dict(_DEFAULT_HOURS))
    holidays_country: str | None = None
    holidays_subdivision: str | None = None
    holidays: list[date] = Field(default_factory=list)
    time_zone_field: str | None = None

    @field_validator("time_zone")
    @classmethod
    def _zone_exists(cls, name: str) -> str:
        if time_zone(name) is None:
            raise problems(("", f"unknown time zone {name!r}: use an IANA name like Europe/Berlin"))
        return name

    @field_validator("hours")
    @classmethod
    def _hours_are_spans(cls, hours: dict[str, list[str]]) -> dict[str, list[str]]:
        found = []
        for day, spans in hours.items():
            if day not in WEEKDAYS:
                found.append((day, f"not a weekday: use {', '.join(WEEKDAYS)}"))
                continue
            found.extend(_span_problems(day, spans))
        if not found and not any(hours.values()):
            found.append(("", "give working hours for at least one weekday"))
        if found:
            raise problems(*found)
        return hours

    @field_validator("holidays_country")
    @classmethod
    def _country_is_supported(cls, country: str | None) -> str | None:
        if country is not None and country not in holidays.list_supported_countries():
            raise problems(
                ("", f"no public holidays known for {country!r}: use an ISO 3166 code like US")
            )
        return country

    @field_validator("time_zone_field")
    @classmethod
    def _zone_field_is_text(cls, name: str | None, info: ValidationInfo) -> str | None:
        return None if name is None else _known_field(name, info, kinds=frozenset({"string"}))

    @model_validator(mode="after")
    def _subdivision_is_known(self) -> CalendarModel:
        found = _subdivision_problems(self.model_dump())
        if found:
            raise problems(*found)
        return self

    def calendar(self) -> BusinessCalendar:
        """The business calendar these settings describe."""
        zone = time_zone(self.time_zone)
        assert zone is not None  # validated
        listed = frozenset(self.holidays)
        public = (
            holidays.country_holidays(self.holidays_country, subdiv=self.holidays_subdivision)
            if self.holidays_country
            else None
        )

        def is_holiday(day: date) -> bool:
            return day in listed or (public is not None and day in public)

        spans = {
            WEEKDAYS.index(day): tuple(parse_span(text) for text in texts)
            for day, texts in self.hours.items()
        }
        return BusinessCalendar(zone=zone, hours=spans, is_holiday=is_holiday)

    def zone_for(self, values: Mapping[str, object]) -> tzinfo | None:
        """The lead's own zone, when `time_zone_field` names one it holds; else None."""
        if self.time_zone_field is None:
            return None
        name = values.get(self.time_zone_field)
        return time_zone(name.strip()) if isinstance(name, str) and name.strip() else None


def _span_problems(day: str, texts: list[str]) -> list[tuple[str, str]]:
    found = []
    spans: list[tuple[int, Span]] = []
    for index, text in enumerate(texts):
        try:
            spans.append((index, parse_span(text)))
        except ValueError as problem:
            found.append((f"{day}[{index}]", str(problem)))
    ordered = sorted(spans, key=lambda item: item[1].start)
    for (_, earlier), (index, later) in itertools.pairwise(ordered):
        if earlier.end is None or later.start < earlier.end:
            found.append((f"{day}[{index}]", f"{texts[index]!r} overlaps another span"))
    return found


class ClockRule(StrictModel):
    """A clock from entering `start` to reaching `stop` (or a later stage), or to a person
    changing one of `stop_on_change`, within `within_hours` working hours of `calendar`."""

    name: str
    description: str | None = None
    start: StageName
    stop: StageName | None = None
    stop_on_change: list[str] | None = Field(None, min_length=1)
    # At most a year of hours: a clock that long is a typo, and inf would overflow.
    within_hours: float = Field(gt=0, le=24 * 366, allow_inf_nan=False)
    calendar: str = "default"
    rejected_by: list[ExitStage] = Field(default_factory=lambda: list(_EXIT_STAGES))

    @field_validator("name")
    @classmethod
    def _name_is_plain(cls, name: str) -> str:
        return _plain_name(name)

    @field_validator("stop_on_change")
    @classmethod
    def _fields_are_known(cls, names: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return _known_field_names(names, info)

    @model_validator(mode="after")
    def _one_way_to_stop(self) -> ClockRule:
        if self.start == "customer":
            raise problems(("start", "customer is final: a clock cannot start there"))
        if (self.stop is None) == (self.stop_on_change is None):
            raise problems(("", "give exactly one of stop (a stage) and stop_on_change (fields)"))
        if self.stop is not None and _FORWARD.index(self.stop) <= _FORWARD.index(self.start):
            raise problems(("stop", f"stop must come after start ({self.start}) in the funnel"))
        return self

    @property
    def within(self) -> timedelta:
        return timedelta(hours=self.within_hours)

    def stops_at_stage(self, stage: str) -> bool:
        """Whether entering `stage` meets the clock: `stop` or any later forward stage (for a
        stop_on_change clock, any stage after `start`: the lead has been worked)."""
        if stage not in _FORWARD:
            return False
        target = self.stop or _FORWARD[_FORWARD.index(self.start) + 1]
        return _FORWARD.index(stage) >= _FORWARD.index(target)


class VolumeRule(StrictModel):
    """At least `at_least` leads entering `stage` per `period` (or `targets` per segment of
    `segment_field`), paced over the working time of `calendar`."""

    name: str
    description: str | None = None
    stage: StageName = "mql"
    period: Literal["week", "month"]
    at_least: int | None = Field(None, ge=1)
    segment_field: str | None = None
    targets: dict[str, int] | None = Field(None, min_length=1)
    calendar: str = "default"

    @field_validator("name")
    @classmethod
    def _name_is_plain(cls, name: str) -> str:
        return _plain_name(name)

    @field_validator("segment_field")
    @classmethod
    def _segment_is_known(cls, name: str | None, info: ValidationInfo) -> str | None:
        return None if name is None else _known_field(name, info)

    @field_validator("targets")
    @classmethod
    def _targets_are_positive(cls, targets: dict[str, int] | None) -> dict[str, int] | None:
        found = [(key, "a target is at least 1") for key, n in (targets or {}).items() if n < 1]
        if found:
            raise problems(*found)
        return targets

    @model_validator(mode="after")
    def _overall_or_per_segment(self) -> VolumeRule:
        if (self.at_least is None) == (self.targets is None):
            raise problems(("", "give at_least (overall) or targets (per segment), not both"))
        if self.targets is not None and self.segment_field is None:
            raise problems(("targets", "set segment_field: the field whose values these are"))
        if self.at_least is not None and self.segment_field is not None:
            raise problems(("segment_field", "per-segment volume takes targets, not at_least"))
        return self

    def goals(self) -> dict[str | None, int]:
        """Segment (None: overall) -> the leads it must deliver each period."""
        if self.targets is not None:
            goals: dict[str | None, int] = dict(self.targets.items())
            return goals
        assert self.at_least is not None  # validated
        return {None: self.at_least}


def _known_field_names(names: list[str] | None, info: ValidationInfo) -> list[str] | None:
    """`names`, each a canonical field of the mapping (when the mapping is known), or the
    problems naming each unknown one by its index."""
    fields = known_fields(info)
    if names is None or fields is None:
        return names
    found = [
        (f"[{index}]", unknown_field_message(name, fields))
        for index, name in enumerate(names)
        if name not in fields
    ]
    if found:
        raise problems(*found)
    return names


# One working day: sales who have not touched a lead by then have most likely not seen it.
DEFAULT_NO_RESPONSE_HOURS = 8.0


class NoResponseModel(StrictModel):
    """ "No response after handoff": the share of handed-off leads that nobody worked (changed
    one of `fields` in the CRM) within `within_hours` working hours of `calendar`. Without
    `fields`, the fields of the rules' `stop_on_change` (what the response clock calls
    work); without `calendar`, that of the clock that starts at the handoff stage."""

    within_hours: float = Field(DEFAULT_NO_RESPONSE_HOURS, gt=0, le=24 * 366, allow_inf_nan=False)
    fields: list[str] | None = Field(None, min_length=1)
    calendar: str | None = None

    @field_validator("fields")
    @classmethod
    def _fields_are_known(cls, names: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return _known_field_names(names, info)

    @property
    def within(self) -> timedelta:
        return timedelta(hours=self.within_hours)


class SlaModel(StrictModel):
    owner_field: str | None = None
    # Owner (the value of owner_field) -> the IANA zone their clocks run in: an owner in
    # another office than the calendar's. A lead's own zone (time_zone_field) comes first.
    owner_time_zones: dict[str, str] = Field(default_factory=dict)
    calendars: dict[str, CalendarModel] = Field(default_factory=dict)
    rules: list[ClockRule] = Field(default_factory=list)
    volume: list[VolumeRule] = Field(default_factory=list)
    no_response: NoResponseModel = Field(default_factory=NoResponseModel)

    @field_validator("owner_field")
    @classmethod
    def _owner_is_known(cls, name: str | None, info: ValidationInfo) -> str | None:
        return None if name is None else _known_field(name, info)

    @field_validator("owner_time_zones")
    @classmethod
    def _owner_zones_exist(cls, zones: dict[str, str]) -> dict[str, str]:
        found = [
            (owner, f"unknown time zone {name!r}: use an IANA name like Europe/Berlin")
            for owner, name in zones.items()
            if time_zone(name) is None
        ]
        if found:
            raise problems(*found)
        return zones

    def owner_zone(self, owner: object) -> tzinfo | None:
        """The zone the definition gives this owner's clocks, or None."""
        name = self.owner_time_zones.get(str(owner)) if owner not in (None, "") else None
        return None if name is None else time_zone(name)

    @model_validator(mode="after")
    def _names_and_calendars_resolve(self) -> SlaModel:
        if self.owner_time_zones and self.owner_field is None:
            raise problems(("owner_time_zones", "set owner_field: whose owners these are"))
        found = [
            problem
            for problem in cross_key_problems(self.model_dump())
            # A calendar's own validator has reported those.
            if not problem[0].startswith("calendars.")
        ]
        if found:
            raise problems(*found)
        return self


def cross_key_problems(sla: Any) -> list[tuple[str, str]]:
    """The mistakes that span keys of an [sla] table (rules naming calendars that are not
    there, two rules of one name, a subdivision its country lacks), found in the raw table:
    pydantic skips a model's own checks when one of its fields is wrong, and every mistake
    should be reported at once. Keys are below `sla`."""
    if not isinstance(sla, Mapping):
        return []
    calendars = sla.get("calendars")
    calendars = calendars if isinstance(calendars, Mapping) else {}
    found = [
        (f"calendars.{name}.{key}", message)
        for name, calendar in calendars.items()
        if isinstance(calendar, Mapping)
        for key, message in _subdivision_problems(calendar)
    ]
    seen: dict[str, str] = {}
    for section in ("rules", "volume"):
        items = sla.get(section)
        for index, item in enumerate(items if isinstance(items, list) else []):
            if not isinstance(item, Mapping):
                continue
            key = f"{section}[{index}]"
            name = item.get("name")
            if isinstance(name, str):
                if name in seen:
                    found.append((f"{key}.name", f"{name!r} is the name of {seen[name]} already"))
                seen.setdefault(name, key)
            calendar = item.get("calendar", "default")
            if isinstance(calendar, str) and calendar not in calendars:
                known = ", ".join(sorted(map(str, calendars))) or "none yet"
                found.append(
                    (
                        f"{key}.calendar",
                        f"no calendar {calendar!r} under [sla.calendars] (defined: {known})",
                    )
                )
    no_response = sla.get("no_response")
    calendar = no_response.get("calendar") if isinstance(no_response, Mapping) else None
    if isinstance(calendar, str) and calendar not in calendars:
        known = ", ".join(sorted(map(str, calendars))) or "none yet"
        found.append(
            (
                "no_response.calendar",
                f"no calendar {calendar!r} under [sla.calendars] (defined: {known})",
            )
        )
    return found


def _subdivision_problems(calendar: Mapping[str, Any]) -> list[tuple[str, str]]:
    subdivision = calendar.get("holidays_subdivision")
    country = calendar.get("holidays_country")
    if subdivision is None:
        return []
    if country is None:
        return [("holidays_subdivision", "set holidays_country too")]
    supported = holidays.list_supported_countries()
    if not isinstance(country, str) or country not in supported:
        return []  # the country's own mistake is reported
    known = supported[country]
    if subdivision in known:
        return []
    shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    return [
        (
            "holidays_subdivision",
            f"{country} has no subdivision {subdivision!r}"
            + (f"; known: {shown}" if known else ""),
        )
    ]


def _plain_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise problems(("", f"{name!r}: use lower-case letters, digits and _ (e.g. mql_accept)"))
    return name
