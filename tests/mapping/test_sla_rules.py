"""The [sla] section of the lead definition: the shipped example, every kind of mistake with its
file, key and line, and what the validated rules and calendars answer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from leadsync.mapping.definition import LeadDefinition, load_definition, parse_definition
from leadsync.mapping.sla_rules import CalendarModel, ClockRule, SlaModel, VolumeRule
from leadsync.problems import ConfigError, ConfigProblem
from tests.support import shipped_canonical_fields

EXAMPLE = Path(__file__).resolve().parents[2] / "leadsync" / "examples" / "lead_definition.toml"
FILE = "lead_definition.toml"
NY = ZoneInfo("America/New_York")

SHIPPED_FIELDS = shipped_canonical_fields()
# The shipped mapping has no time zone field: one more text field for `time_zone_field`.
FIELDS = {**SHIPPED_FIELDS, "owner_time_zone": "string"}

# Scoring and lifecycle as short as a whole file allows; the [sla] tables follow.
SCORING_AND_LIFECYCLE = """\
[[scoring.grades]]
grade = "A"
min_score = 0

[lifecycle.stages.mql]
all = [{ field = "score", gte = 60 }]
[lifecycle.stages.sal]
all = [{ field = "owner_id", present = true }]
[lifecycle.stages.sql]
all = [{ field = "rating", equals = "Hot" }]
[lifecycle.stages.opportunity]
all = [{ field = "is_converted", equals = true }]
[lifecycle.stages.customer]
all = [{ field = "opportunity_stage", equals = "Closed Won" }]
"""

SALES_HOURS = """\
[sla.calendars.sales.hours]
mon = ["09:00-12:00", "13:00-17:00"]
tue = ["09:00-17:00"]
wed = ["09:00-17:00"]
thu = ["09:00-17:00"]
fri = ["09:00-15:00"]
"""

SLA = f"""
[sla]
owner_field = "owner_id"

[sla.calendars.sales]
time_zone = "America/New_York"
holidays_country = "US"
holidays_subdivision = "NY"
holidays = [2026-12-24]
time_zone_field = "owner_time_zone"

{SALES_HOURS}
[sla.calendars.marketing]
time_zone = "Europe/Berlin"

[[sla.rules]]
name = "mql_acceptance"
start = "mql"
stop = "sal"
within_hours = 8
calendar = "sales"

[[sla.rules]]
name = "sal_response"
start = "sal"
stop_on_change = ["sf_status", "last_sales_activity"]
within_hours = 16
calendar = "sales"

[[sla.volume]]
name = "weekly_mqls"
period = "week"
at_least = 25
calendar = "marketing"

[[sla.volume]]
name = "monthly_by_source"
stage = "sal"
period = "month"
segment_field = "lead_source"
targets = {{ organic_search = 10, paid_search = 8 }}
calendar = "marketing"
"""

VALID = SCORING_AND_LIFECYCLE + SLA


def parse(text: str, fields: dict[str, str] | None = FIELDS) -> LeadDefinition:
    return parse_definition(text, file=FILE, fields=fields)


def sla_of(text: str, fields: dict[str, str] | None = FIELDS) -> SlaModel:
    sla = parse(text, fields).sla
    assert sla is not None
    return sla


def problems_of(text: str, fields: dict[str, str] | None = FIELDS) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as raised:
        parse(text, fields)
    return raised.value.problems


def problems_or_none(text: str) -> list[ConfigProblem] | None:
    """The problems of a text, None when it loads; any other exception fails the test."""
    try:
        parse(text)
    except ConfigError as error:
        return error.problems
    return None


def line_of(text: str, marker: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if marker in line)


def mutated(old: str, new: str) -> str:
    """VALID with the first `old` replaced by `new`; `old` must be there."""
    assert old in VALID, old
    return VALID.replace(old, new, 1)


# ---------------------------------------------------------------------- what loads


def test_the_valid_base_file_loads_with_every_part() -> None:
    # Guards the mistake table: each mistake there is the only thing wrong with its file.
    sla = sla_of(VALID)
    assert sla.owner_field == "owner_id"
    assert sorted(sla.calendars) == ["marketing", "sales"]
    sales = sla.calendars["sales"]
    assert (sales.time_zone, sales.holidays_country, sales.holidays_subdivision) == (
        "America/New_York",
        "US",
        "NY",
    )
    assert sales.holidays == [date(2026, 12, 24)]
    assert sales.hours["mon"] == ["09:00-12:00", "13:00-17:00"]
    assert [rule.name for rule in sla.rules] == ["mql_acceptance", "sal_response"]
    assert [rule.name for rule in sla.volume] == ["weekly_mqls", "monthly_by_source"]


def test_the_shipped_example_loads_with_its_service_levels() -> None:
    definition = load_definition(EXAMPLE, fields=SHIPPED_FIELDS)
    sla = definition.sla
    assert sla is not None
    assert sla.owner_field == "owner_id"

    acceptance, response = sla.rules
    assert (acceptance.name, acceptance.start, acceptance.stop) == ("mql_acceptance", "mql", "sal")
    assert (acceptance.stop_on_change, acceptance.within, acceptance.calendar) == (
        None,
        timedelta(hours=8),
        "sales",
    )
    assert acceptance.rejected_by == ["recycled", "disqualified"]
    assert (response.name, response.start, response.stop) == ("sal_response", "sal", None)
    assert response.stop_on_change == ["sf_status", "last_sales_activity"]
    assert (response.within, response.calendar) == (timedelta(hours=16), "sales")

    assert sorted(sla.calendars) == ["marketing", "sales"]
    sales, marketing = sla.calendars["sales"], sla.calendars["marketing"]
    assert (sales.time_zone, sales.holidays_country) == ("America/New_York", "US")
    assert sales.holidays == [date(2026, 12, 24), date(2026, 12, 31)]
    assert sales.hours == {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
    # Without `hours`, Monday to Friday, 09:00-17:00.
    assert marketing.hours == sales.hours
    assert (marketing.time_zone, marketing.holidays, marketing.holidays_country) == (
        "America/New_York",
        [],
        "US",
    )

    [weekly] = sla.volume
    assert (weekly.name, weekly.stage, weekly.period, weekly.calendar) == (
        "weekly_mqls",
        "mql",
        "week",
        "marketing",
    )
    assert weekly.goals() == {None: 25}


def test_the_shipped_sales_calendar_keeps_public_and_listed_holidays() -> None:
    sla = load_definition(EXAMPLE, fields=SHIPPED_FIELDS).sla
    assert sla is not None
    sales = sla.calendars["sales"].calendar()
    assert sales.zone == NY
    # Wed 23 Dec 16:00 + 8 h: 1 h on Wednesday; Thu 24 listed, Fri 25 Christmas; 7 h Monday.
    due = sales.add(datetime(2026, 12, 23, 16, tzinfo=NY), timedelta(hours=8))
    assert due == datetime(2026, 12, 28, 16, tzinfo=NY).astimezone(UTC)
    assert sales.spans(date(2026, 11, 26)) == []  # Thanksgiving
    assert sales.spans(date(2026, 12, 31)) == []
    assert sales.spans(date(2027, 1, 1)) == []


def test_the_sla_section_is_optional() -> None:
    assert parse(SCORING_AND_LIFECYCLE).sla is None


def test_an_empty_sla_section_has_no_rules() -> None:
    sla = sla_of(SCORING_AND_LIFECYCLE + "\n[sla]\n")
    assert (sla.owner_field, sla.calendars, sla.rules, sla.volume) == (None, {}, [], [])


def test_the_sla_section_does_not_change_the_model_version() -> None:
    # Service levels judge the handoff; they do not change a lead's score or stage.
    without = parse(SCORING_AND_LIFECYCLE).model_version
    assert parse(VALID).model_version == without
    assert parse(mutated("within_hours = 8", "within_hours = 4")).model_version == without


def test_without_a_field_list_any_field_name_is_accepted() -> None:
    text = mutated('"last_sales_activity"]', '"touched_at"]')
    assert sla_of(text, fields=None).rules[1].stop_on_change == ["sf_status", "touched_at"]
    assert [problem.key for problem in problems_of(text)] == ["sla.rules[1].stop_on_change[1]"]


def test_defaults_of_a_rule_and_a_volume() -> None:
    text = mutated(
        '[sla.calendars.marketing]\ntime_zone = "Europe/Berlin"', "[sla.calendars.default]"
    )
    text = text.replace('calendar = "marketing"\n', "")
    text = text.replace('calendar = "sales"\n', "", 1)
    sla = sla_of(text)
    default = sla.calendars["default"]
    assert (default.time_zone, default.holidays_country, default.holidays) == ("UTC", None, [])
    assert default.hours == {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
    assert (sla.rules[0].calendar, sla.rules[0].rejected_by) == (
        "default",
        ["recycled", "disqualified"],
    )
    assert (sla.volume[0].calendar, sla.volume[0].stage) == ("default", "mql")


def test_a_calendar_from_the_file_has_its_hours_holidays_and_zone() -> None:
    sales = sla_of(VALID).calendars["sales"].calendar()
    assert sales.zone == NY
    monday = date(2026, 1, 5)
    assert sales.spans(monday) == [
        (datetime(2026, 1, 5, 14, tzinfo=UTC), datetime(2026, 1, 5, 17, tzinfo=UTC)),
        (datetime(2026, 1, 5, 18, tzinfo=UTC), datetime(2026, 1, 5, 22, tzinfo=UTC)),
    ]
    assert sales.spans(date(2026, 1, 10)) == []  # Saturday: not listed
    assert sales.spans(date(2026, 12, 24)) == []  # listed
    assert sales.spans(date(2026, 12, 25)) == []  # public
    # Friday closes at 15:00: 2 h after Friday 14:00 is Monday 10:00.
    due = sales.add(datetime(2026, 1, 9, 14, tzinfo=NY), timedelta(hours=2))
    assert due == datetime(2026, 1, 12, 10, tzinfo=NY).astimezone(UTC)


@pytest.mark.parametrize(
    ("subdivision", "holiday", "is_off"),
    [
        (None, date(2026, 4, 20), False),  # Patriots' Day: Massachusetts only
        ("MA", date(2026, 4, 20), True),
        ("NY", date(2026, 2, 12), True),  # Lincoln's Birthday: New York, not all the US
        (None, date(2026, 2, 12), False),
    ],
)
def test_the_subdivision_picks_its_own_public_holidays(
    subdivision: str | None, holiday: date, is_off: bool
) -> None:
    model = CalendarModel(holidays_country="US", holidays_subdivision=subdivision)
    assert (model.calendar().spans(holiday) == []) is is_off


# ---------------------------------------------------------------------- mistakes

HOURS_ON_NO_DAY = "[sla.calendars.sales.hours]\n"

# (case id, text replaced, replacement, expected key, line marker, message fragment)
MISTAKES = [
    (
        "unknown-time-zone",
        'time_zone = "America/New_York"',
        'time_zone = "America/Nowhere"',
        "sla.calendars.sales.time_zone",
        "America/Nowhere",
        "unknown time zone 'America/Nowhere': use an IANA name like Europe/Berlin",
    ),
    (
        "time-zone-abbreviation",
        'time_zone = "Europe/Berlin"',
        'time_zone = "CEST"',
        "sla.calendars.marketing.time_zone",
        '"CEST"',
        "unknown time zone 'CEST'",
    ),
    (
        "span-not-hh-mm",
        'tue = ["09:00-17:00"]',
        'tue = ["09:00-17:00", "9-17"]',
        "sla.calendars.sales.hours.tue[1]",
        "tue = ",
        "'9-17': '9' is not a time of day (HH:MM)",
    ),
    (
        "span-backwards",
        'tue = ["09:00-17:00"]',
        'tue = ["17:00-09:00"]',
        "sla.calendars.sales.hours.tue[0]",
        "tue = ",
        "'17:00-09:00' ends before it starts",
    ),
    (
        "span-without-end",
        'tue = ["09:00-17:00"]',
        'tue = ["09:00"]',
        "sla.calendars.sales.hours.tue[0]",
        "tue = ",
        "'09:00' is not a span: write it as HH:MM-HH:MM",
    ),
    (
        "span-past-the-day",
        'tue = ["09:00-17:00"]',
        'tue = ["25:00-26:00"]',
        "sla.calendars.sales.hours.tue[0]",
        "tue = ",
        "'25:00' is not a time of day",
    ),
    (
        "span-on-its-own-line",
        'wed = ["09:00-17:00"]',
        'wed = [\n  "09:00-12:00",\n  "13:00-17:30 ",\n  "18:00-19:60",\n]',
        "sla.calendars.sales.hours.wed[2]",
        '"18:00-19:60"',
        "'19:60' is not a time of day",
    ),
    (
        "overlapping-spans",
        'mon = ["09:00-12:00", "13:00-17:00"]',
        'mon = ["09:00-12:00", "11:00-17:00"]',
        "sla.calendars.sales.hours.mon[1]",
        "mon = ",
        "'11:00-17:00' overlaps another span",
    ),
    (
        "span-inside-another",
        'mon = ["09:00-12:00", "13:00-17:00"]',
        'mon = ["09:00-17:00", "12:00-13:00"]',
        "sla.calendars.sales.hours.mon[1]",
        "mon = ",
        "'12:00-13:00' overlaps another span",
    ),
    (
        "span-listed-twice",
        'mon = ["09:00-12:00", "13:00-17:00"]',
        'mon = ["09:00-12:00", "09:00-12:00"]',
        "sla.calendars.sales.hours.mon[1]",
        "mon = ",
        "overlaps another span",
    ),
    (
        "span-after-one-until-midnight",
        'mon = ["09:00-12:00", "13:00-17:00"]',
        'mon = ["13:00-24:00", "20:00-21:00"]',
        "sla.calendars.sales.hours.mon[1]",
        "mon = ",
        "'20:00-21:00' overlaps another span",
    ),
    (
        "unknown-weekday",
        'tue = ["09:00-17:00"]',
        'tues = ["09:00-17:00"]',
        "sla.calendars.sales.hours.tues",
        "tues = ",
        "not a weekday: use mon, tue, wed, thu, fri, sat, sun",
    ),
    (
        "weekday-spelled-out",
        'fri = ["09:00-15:00"]',
        'Friday = ["09:00-15:00"]',
        "sla.calendars.sales.hours.Friday",
        "Friday = ",
        "not a weekday",
    ),
    (
        "no-hours-at-all",
        SALES_HOURS,
        HOURS_ON_NO_DAY,
        "sla.calendars.sales.hours",
        "[sla.calendars.sales.hours]",
        "give working hours for at least one weekday",
    ),
    (
        "only-empty-days",
        SALES_HOURS,
        HOURS_ON_NO_DAY + "mon = []\nsat = []\n",
        "sla.calendars.sales.hours",
        "[sla.calendars.sales.hours]",
        "give working hours for at least one weekday",
    ),
    (
        "hours-not-a-list",
        'tue = ["09:00-17:00"]',
        'tue = "09:00-17:00"',
        "sla.calendars.sales.hours.tue",
        "tue = ",
        "valid list",
    ),
    (
        "unsupported-holidays-country",
        'holidays_country = "US"',
        'holidays_country = "Atlantis"',
        "sla.calendars.sales.holidays_country",
        "Atlantis",
        "no public holidays known for 'Atlantis': use an ISO 3166 code like US",
    ),
    (
        "holidays-country-lower-case",
        'holidays_country = "US"',
        'holidays_country = "us"',
        "sla.calendars.sales.holidays_country",
        'holidays_country = "us"',
        "no public holidays known for 'us'",
    ),
    (
        "subdivision-without-country",
        'holidays_country = "US"\n',
        "",
        "sla.calendars.sales.holidays_subdivision",
        "holidays_subdivision",
        "set holidays_country too",
    ),
    (
        "unknown-subdivision",
        'holidays_subdivision = "NY"',
        'holidays_subdivision = "New York"',
        "sla.calendars.sales.holidays_subdivision",
        "New York",
        "US has no subdivision 'New York'; "
        "known: AK, AL, AR, AS, AZ, CA, CO, CT, DC, DE, FL, GA, ...",
    ),
    (
        "holiday-not-a-date",
        "holidays = [2026-12-24]",
        'holidays = ["2026-12-24"]',
        "sla.calendars.sales.holidays[0]",
        "holidays = [",
        "valid date, not '2026-12-24'",
    ),
    (
        "unknown-time-zone-field",
        'time_zone_field = "owner_time_zone"',
        'time_zone_field = "owner_timezone"',
        "sla.calendars.sales.time_zone_field",
        "owner_timezone",
        "unknown field 'owner_timezone': the field mapping has no such canonical field "
        "(did you mean 'owner_time_zone'?)",
    ),
    (
        "time-zone-field-not-text",
        'time_zone_field = "owner_time_zone"',
        'time_zone_field = "employees"',
        "sla.calendars.sales.time_zone_field",
        "time_zone_field",
        "employees is integer; expected string",
    ),
    (
        "unknown-stop-on-change-field",
        '"last_sales_activity"]',
        '"last_sales_activty"]',
        "sla.rules[1].stop_on_change[1]",
        "last_sales_activty",
        "unknown field 'last_sales_activty'",
    ),
    (
        "stop-on-change-hint",
        '"last_sales_activity"]',
        '"last_sales_activty"]',
        "sla.rules[1].stop_on_change[1]",
        "last_sales_activty",
        "(did you mean 'last_sales_activity'?)",
    ),
    (
        "stop-on-change-empty",
        'stop_on_change = ["sf_status", "last_sales_activity"]',
        "stop_on_change = []",
        "sla.rules[1].stop_on_change",
        "stop_on_change = []",
        "at least 1 item",
    ),
    (
        "unknown-segment-field",
        'segment_field = "lead_source"',
        'segment_field = "leadsource"',
        "sla.volume[1].segment_field",
        "leadsource",
        "unknown field 'leadsource': the field mapping has no such canonical field "
        "(did you mean 'lead_source'?)",
    ),
    (
        "unknown-owner-field",
        'owner_field = "owner_id"',
        'owner_field = "owner"',
        "sla.owner_field",
        'owner_field = "owner"',
        "unknown field 'owner'",
    ),
    (
        "owner-field-hint",
        'owner_field = "owner_id"',
        'owner_field = "ownerid"',
        "sla.owner_field",
        "ownerid",
        "(did you mean 'owner_id'?)",
    ),
    (
        "stop-before-start",
        'stop = "sal"',
        'stop = "lead"',
        "sla.rules[0].stop",
        'stop = "lead"',
        "stop must come after start (mql) in the funnel",
    ),
    (
        "stop-at-start",
        'stop = "sal"',
        'stop = "mql"',
        "sla.rules[0].stop",
        'stop = "mql"',
        "stop must come after start (mql)",
    ),
    (
        "stop-not-a-stage",
        'stop = "sal"',
        'stop = "accepted"',
        "sla.rules[0].stop",
        'stop = "accepted"',
        "Input should be 'lead', 'mql', 'sal', 'sql', 'opportunity' or 'customer'",
    ),
    (
        "stop-at-an-exit",
        'stop = "sal"',
        'stop = "recycled"',
        "sla.rules[0].stop",
        'stop = "recycled"',
        "Input should be 'lead', 'mql'",
    ),
    (
        "stop-and-stop-on-change",
        'stop = "sal"',
        'stop = "sal"\nstop_on_change = ["sf_status"]',
        "sla.rules[0]",
        "[[sla.rules]]",
        "give exactly one of stop (a stage) and stop_on_change (fields)",
    ),
    (
        "neither-stop-nor-stop-on-change",
        'stop = "sal"\n',
        "",
        "sla.rules[0]",
        "[[sla.rules]]",
        "give exactly one of stop (a stage) and stop_on_change (fields)",
    ),
    (
        "start-at-customer",
        'start = "mql"',
        'start = "customer"',
        "sla.rules[0].start",
        'start = "customer"',
        "customer is final: a clock cannot start there",
    ),
    (
        "start-missing",
        'start = "mql"\n',
        "",
        "sla.rules[0].start",
        "[[sla.rules]]",
        "missing: this key is required",
    ),
    (
        "within-zero-hours",
        "within_hours = 8",
        "within_hours = 0",
        "sla.rules[0].within_hours",
        "within_hours = 0",
        "greater than 0",
    ),
    (
        "within-negative-hours",
        "within_hours = 16",
        "within_hours = -2.5",
        "sla.rules[1].within_hours",
        "within_hours = -2.5",
        "greater than 0",
    ),
    (
        "within-hours-as-text",
        "within_hours = 8",
        'within_hours = "8"',
        "sla.rules[0].within_hours",
        'within_hours = "8"',
        "valid number, not '8'",
    ),
    (
        "rule-on-undefined-calendar",
        'calendar = "sales"',
        'calendar = "sale"',
        "sla.rules[0].calendar",
        'calendar = "sale"',
        "no calendar 'sale' under [sla.calendars] (defined: marketing, sales)",
    ),
    (
        "rule-on-the-default-calendar-undefined",
        'within_hours = 8\ncalendar = "sales"',
        "within_hours = 8",
        "sla.rules[0].calendar",
        "[[sla.rules]]",
        "no calendar 'default' under [sla.calendars]",
    ),
    (
        "volume-on-undefined-calendar",
        'at_least = 25\ncalendar = "marketing"',
        'at_least = 25\ncalendar = "marketting"',
        "sla.volume[0].calendar",
        "marketting",
        "no calendar 'marketting' under [sla.calendars] (defined: marketing, sales)",
    ),
    (
        "two-rules-with-one-name",
        'name = "sal_response"',
        'name = "mql_acceptance"  # again',
        "sla.rules[1].name",
        "# again",
        "'mql_acceptance' is the name of rules[0] already",
    ),
    (
        "volume-named-as-a-rule",
        'name = "weekly_mqls"',
        'name = "sal_response"  # as the rule',
        "sla.volume[0].name",
        "# as the rule",
        "'sal_response' is the name of rules[1] already",
    ),
    (
        "two-volumes-with-one-name",
        'name = "monthly_by_source"',
        'name = "weekly_mqls"  # as the first',
        "sla.volume[1].name",
        "# as the first",
        "'weekly_mqls' is the name of volume[0] already",
    ),
    (
        "rule-name-with-capitals-and-space",
        'name = "mql_acceptance"',
        'name = "MQL Accept"',
        "sla.rules[0].name",
        "MQL Accept",
        "'MQL Accept': use lower-case letters, digits and _ (e.g. mql_accept)",
    ),
    (
        "rule-name-with-a-dash",
        'name = "sal_response"',
        'name = "sal-response"',
        "sla.rules[1].name",
        "sal-response",
        "use lower-case letters, digits and _",
    ),
    (
        "volume-name-starting-with-a-digit",
        'name = "weekly_mqls"',
        'name = "1_weekly"',
        "sla.volume[0].name",
        "1_weekly",
        "use lower-case letters, digits and _",
    ),
    (
        "unknown-rejection",
        'stop = "sal"',
        'stop = "sal"\nrejected_by = ["lost"]',
        "sla.rules[0].rejected_by[0]",
        "rejected_by",
        "Input should be 'recycled' or 'disqualified'",
    ),
    (
        "volume-at-least-and-targets",
        "at_least = 25",
        "at_least = 25\ntargets = { organic_search = 10 }",
        "sla.volume[0]",
        "[[sla.volume]]",
        "give at_least (overall) or targets (per segment), not both",
    ),
    (
        "volume-neither-at-least-nor-targets",
        "at_least = 25\n",
        "",
        "sla.volume[0]",
        "[[sla.volume]]",
        "give at_least (overall) or targets (per segment)",
    ),
    (
        "targets-without-segment-field",
        'segment_field = "lead_source"\n',
        "",
        "sla.volume[1].targets",
        "targets = ",
        "set segment_field: the field whose values these are",
    ),
    (
        "segment-field-with-at-least",
        "at_least = 25",
        'at_least = 25\nsegment_field = "lead_source"',
        "sla.volume[0].segment_field",
        'segment_field = "lead_source"',
        "per-segment volume takes targets, not at_least",
    ),
    (
        "a-target-of-zero",
        "paid_search = 8",
        "paid_search = 0",
        "sla.volume[1].targets.paid_search",
        "paid_search = 0",
        "a target is at least 1",
    ),
    (
        "no-targets",
        "targets = { organic_search = 10, paid_search = 8 }",
        "targets = {}",
        "sla.volume[1].targets",
        "targets = {}",
        "at least 1 item",
    ),
    (
        "at-least-zero",
        "at_least = 25",
        "at_least = 0",
        "sla.volume[0].at_least",
        "at_least = 0",
        "greater than or equal to 1",
    ),
    (
        "unknown-period",
        'period = "week"',
        'period = "day"',
        "sla.volume[0].period",
        'period = "day"',
        "Input should be 'week' or 'month'",
    ),
    (
        "volume-stage-unknown",
        'stage = "sal"',
        'stage = "won"',
        "sla.volume[1].stage",
        'stage = "won"',
        "Input should be 'lead', 'mql'",
    ),
    (
        "unknown-key-in-sla",
        'owner_field = "owner_id"',
        'owner_field = "owner_id"\nescalate_to = "ops"',
        "sla.escalate_to",
        "escalate_to",
        "unknown key",
    ),
    (
        "unknown-key-in-calendar",
        'time_zone = "Europe/Berlin"',
        'time_zone = "Europe/Berlin"\nzone = "CET"',
        "sla.calendars.marketing.zone",
        'zone = "CET"',
        "unknown key",
    ),
    (
        "unknown-key-in-rule",
        "within_hours = 8",
        "within_hours = 8\nwithin_days = 1",
        "sla.rules[0].within_days",
        "within_days",
        "unknown key",
    ),
    (
        "unknown-key-in-volume",
        "at_least = 25",
        "at_least = 25\nat_most = 90",
        "sla.volume[0].at_most",
        "at_most",
        "unknown key",
    ),
    (
        "unknown-sub-table-of-sla",
        "[[sla.rules]]",
        '[sla.routing]\nqueue = "sales"\n\n[[sla.rules]]',
        "sla.routing",
        "[sla.routing]",
        "unknown key",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "key", "marker", "message"),
    [case[1:] for case in MISTAKES],
    ids=[case[0] for case in MISTAKES],
)
def test_each_mistake_is_a_problem_naming_file_key_and_line(
    old: str, new: str, key: str, marker: str, message: str
) -> None:
    text = mutated(old, new)
    problems = problems_of(text)
    assert len(problems) == 1, problems
    [problem] = problems
    assert (problem.file, problem.key) == (FILE, key)
    assert problem.line == line_of(text, marker), problem
    assert message in problem.message, problem.message
    assert str(problem) == f"{FILE}:{problem.line}: {key}: {problem.message}"


@pytest.mark.parametrize("name", ["America", "Europe"])
def test_a_zone_directory_is_an_unknown_time_zone(name: str) -> None:
    pytest.importorskip("tzdata")
    text = mutated('time_zone = "America/New_York"', f'time_zone = "{name}"')
    [problem] = problems_of(text)
    assert problem.key == "sla.calendars.sales.time_zone"
    assert f"unknown time zone {name!r}" in problem.message


@pytest.mark.parametrize("hours", ["inf", "1e12"])
def test_an_endless_within_hours_is_a_problem(hours: str) -> None:
    text = mutated("within_hours = 8", f"within_hours = {hours}")
    [problem] = problems_of(text)
    assert problem.key == "sla.rules[0].within_hours"


def test_spans_listed_afternoon_first_work_like_in_order() -> None:
    text = mutated('tue = ["09:00-17:00"]', 'tue = ["13:00-17:00", "09:00-12:00"]')
    problems = problems_or_none(text)
    if problems is not None:  # refusing spans out of order would be a fix too
        assert all(problem.key.startswith("sla.calendars.sales.hours.tue") for problem in problems)
        return
    sales = sla_of(text).calendars["sales"].calendar()
    due = sales.add(datetime(2026, 1, 6, 8, tzinfo=NY), timedelta(hours=2))
    assert due == datetime(2026, 1, 6, 11, tzinfo=NY).astimezone(UTC)


def test_several_mistakes_are_all_reported_at_once() -> None:
    text = (
        mutated(
            'time_zone = "Europe/Berlin"', 'time_zone = "Europe/Bern"\nhours = { sat = ["10-14"] }'
        )
        .replace('holidays_subdivision = "NY"', 'holidays_subdivision = "XX"')
        .replace('owner_field = "owner_id"', 'owner_field = "ownerid"')
        .replace('name = "mql_acceptance"', 'name = "MQL Accept"')
        .replace('"last_sales_activity"]', '"last_sales_activty"]')
        .replace("within_hours = 16", "within_hours = 0")
        .replace("at_least = 25", "at_least = 25\ntargets = { organic_search = 1 }")
        .replace("paid_search = 8", "paid_search = 0")
    )
    expected = [
        ("sla.owner_field", "ownerid"),
        ("sla.calendars.sales.holidays_subdivision", "holidays_subdivision"),
        ("sla.calendars.marketing.time_zone", "Europe/Bern"),
        ("sla.calendars.marketing.hours.sat[0]", "hours = { sat"),
        ("sla.rules[0].name", "MQL Accept"),
        ("sla.rules[1].stop_on_change[1]", "last_sales_activty"),
        ("sla.rules[1].within_hours", "within_hours = 0"),
        ("sla.volume[0]", "[[sla.volume]]"),
        ("sla.volume[1].targets.paid_search", "paid_search = 0"),
    ]
    problems = problems_of(text)
    assert [(problem.key, problem.line) for problem in problems] == [
        (key, line_of(text, marker)) for key, marker in expected
    ]
    assert all(problem.file == FILE for problem in problems)


def test_mistakes_with_scoring_and_sla_are_reported_together() -> None:
    text = mutated('grade = "A"\nmin_score = 0', 'grade = "A"\nmin_score = 10').replace(
        'stop = "sal"', 'stop = "lead"'
    )
    assert [problem.key for problem in problems_of(text)] == [
        "scoring.grades[0].min_score",
        "sla.rules[0].stop",
    ]


@pytest.mark.parametrize(
    ("changes", "keys"),
    [
        (
            [
                ('calendar = "sales"', 'calendar = "sale"'),
                ("within_hours = 16", "within_hours = 0"),
            ],
            ["sla.rules[0].calendar", "sla.rules[1].within_hours"],
        ),
        (
            [
                ('holidays_subdivision = "NY"', 'holidays_subdivision = "XX"'),
                ('tue = ["09:00-17:00"]', 'tue = ["9-17"]'),
            ],
            ["sla.calendars.sales.holidays_subdivision", "sla.calendars.sales.hours.tue[0]"],
        ),
    ],
    ids=["undefined-calendar", "unknown-subdivision"],
)
def test_cross_key_mistakes_are_reported_with_the_other_mistakes(
    changes: list[tuple[str, str]], keys: list[str]
) -> None:
    text = VALID
    for old, new in changes:
        assert old in text
        text = text.replace(old, new, 1)
    assert [problem.key for problem in problems_of(text)] == keys


# ---------------------------------------------------------------------- rules' answers


def clock(**settings: Any) -> ClockRule:
    return ClockRule.model_validate({"name": "clock", "within_hours": 8, **settings})


STAGES = ["lead", "mql", "sal", "sql", "opportunity", "customer", "recycled", "disqualified"]
STOPS_AT = [
    # (case id, rule, the stages whose entry meets its clock)
    ("mql-to-sal", clock(start="mql", stop="sal"), {"sal", "sql", "opportunity", "customer"}),
    (
        "lead-to-mql",
        clock(start="lead", stop="mql"),
        {"mql", "sal", "sql", "opportunity", "customer"},
    ),
    ("mql-to-opportunity", clock(start="mql", stop="opportunity"), {"opportunity", "customer"}),
    ("sql-to-customer", clock(start="sql", stop="customer"), {"customer"}),
    (
        "sal-until-worked",
        clock(start="sal", stop_on_change=["sf_status"]),
        {"sql", "opportunity", "customer"},
    ),
    (
        "lead-until-worked",
        clock(start="lead", stop_on_change=["sf_status"]),
        {"mql", "sal", "sql", "opportunity", "customer"},
    ),
    ("opportunity-until-worked", clock(start="opportunity", stop_on_change=["x"]), {"customer"}),
]


@pytest.mark.parametrize(
    ("rule", "stops"), [case[1:] for case in STOPS_AT], ids=[case[0] for case in STOPS_AT]
)
@pytest.mark.parametrize("stage", [*STAGES, "nurture", ""])
def test_stops_at_stage_is_the_stop_or_a_later_forward_stage(
    rule: ClockRule, stops: set[str], stage: str
) -> None:
    # Recycled and disqualified never meet a clock: they reject the lead (rejected_by).
    assert rule.stops_at_stage(stage) is (stage in stops)


def test_a_rule_gives_its_time_as_a_timedelta() -> None:
    assert clock(start="mql", stop="sal", within_hours=1.5).within == timedelta(minutes=90)


@pytest.mark.parametrize(
    ("settings", "goals"),
    [
        ({"at_least": 25}, {None: 25}),
        ({"at_least": 1}, {None: 1}),
        (
            {"segment_field": "lead_source", "targets": {"organic_search": 10, "paid_search": 8}},
            {"organic_search": 10, "paid_search": 8},
        ),
        ({"segment_field": "country", "targets": {"US": 3}}, {"US": 3}),
    ],
    ids=["overall", "overall-one", "per-segment", "one-segment"],
)
def test_volume_goals_are_overall_or_per_segment(
    settings: dict[str, Any], goals: dict[str | None, int]
) -> None:
    rule = VolumeRule.model_validate({"name": "volume", "period": "week", **settings})
    assert rule.goals() == goals


def test_the_volume_goals_of_the_file() -> None:
    weekly, monthly = sla_of(VALID).volume
    assert weekly.goals() == {None: 25}
    assert monthly.goals() == {"organic_search": 10, "paid_search": 8}
    assert (monthly.stage, monthly.period, monthly.segment_field) == ("sal", "month", "lead_source")


ZONED = CalendarModel(time_zone_field="owner_time_zone")
ZONES_FOR = [
    ("valid-name", {"owner_time_zone": "Europe/Berlin"}, ZoneInfo("Europe/Berlin")),
    ("padded-name", {"owner_time_zone": "  Asia/Tokyo \n"}, ZoneInfo("Asia/Tokyo")),
    ("utc", {"owner_time_zone": "UTC"}, ZoneInfo("UTC")),
    ("blank", {"owner_time_zone": ""}, None),
    ("spaces", {"owner_time_zone": "   "}, None),
    ("unknown-name", {"owner_time_zone": "Mars/Olympus_Mons"}, None),
    ("an-abbreviation", {"owner_time_zone": "PDT"}, None),
    ("a-path", {"owner_time_zone": "../../etc/passwd"}, None),
    ("wrong-case", {"owner_time_zone": "europe/berlin"}, None),
    ("none", {"owner_time_zone": None}, None),
    ("a-number", {"owner_time_zone": -5}, None),
    ("missing", {"country": "DE"}, None),
]


@pytest.mark.parametrize(
    ("values", "zone"),
    [case[1:] for case in ZONES_FOR],
    ids=[case[0] for case in ZONES_FOR],
)
def test_zone_for_reads_the_leads_own_zone(
    values: dict[str, object], zone: ZoneInfo | None
) -> None:
    assert ZONED.zone_for(values) == zone


def test_zone_for_without_a_time_zone_field_is_none() -> None:
    unzoned = CalendarModel(time_zone="Europe/Berlin")
    assert unzoned.zone_for({"owner_time_zone": "Asia/Tokyo", "time_zone": "Asia/Tokyo"}) is None


def test_zone_for_a_zone_directory_is_none() -> None:
    pytest.importorskip("tzdata")
    assert ZONED.zone_for({"owner_time_zone": "America"}) is None


def test_the_leads_zone_moves_the_calendar() -> None:
    # The sales hours, kept in a lead's owner's zone: 9-17 in Berlin, not in New York.
    sales = sla_of(VALID).calendars["sales"]
    zone = sales.zone_for({"owner_time_zone": "Europe/Berlin"})
    assert zone is not None
    owners = sales.calendar().with_zone(zone)
    start = datetime(2026, 1, 6, 12, tzinfo=UTC)
    assert owners.add(start, timedelta(hours=2)) == datetime(2026, 1, 6, 14, tzinfo=UTC)
    assert sales.calendar().add(start, timedelta(hours=2)) == datetime(2026, 1, 6, 16, tzinfo=UTC)


# ---------------------------------------------------------------------- no response after handoff


def test_no_response_defaults_to_eight_working_hours_with_nothing_else_said() -> None:
    settings = sla_of(VALID).no_response
    assert (settings.within_hours, settings.fields, settings.calendar) == (8, None, None)


def test_no_response_takes_its_hours_fields_and_calendar() -> None:
    text = (
        VALID
        + '\n[sla.no_response]\nwithin_hours = 4\nfields = ["sf_status"]\ncalendar = "sales"\n'
    )
    settings = sla_of(text).no_response
    assert (settings.within_hours, settings.fields, settings.calendar) == (
        4,
        ["sf_status"],
        "sales",
    )


def test_no_response_mistakes_name_their_keys_all_at_once() -> None:
    text = VALID + (
        '\n[sla.no_response]\nwithin_hours = 0\nfields = ["sf_stats"]\ncalendar = "support"\n'
    )
    problems = {problem.key: problem.message for problem in problems_of(text)}
    assert set(problems) == {
        "sla.no_response.within_hours",
        "sla.no_response.fields[0]",
        "sla.no_response.calendar",
    }, problems
    assert "did you mean 'sf_status'?" in problems["sla.no_response.fields[0]"]
    assert "no calendar 'support' under [sla.calendars]" in problems["sla.no_response.calendar"]
