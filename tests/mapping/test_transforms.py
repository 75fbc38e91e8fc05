"""Transforms between CRM values and canonical values, both ways, edge cases and round trips."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadsync.mapping.transforms import Binding, Range, TransformError
from leadsync.mapping.types import CanonicalType

HUBSPOT = Binding("hubspot", "prop")
SALESFORCE = Binding("salesforce", "Field__c")

EMPLOYEE_RANGES = (
    Range("1-5", 3, 5),
    Range("5-25", 15, 25),
    Range("25-50", 38, 50),
    Range("50-100", 75, 100),
    Range("100-500", 300, 500),
    Range("500-1000", 750, 1000),
    Range("1000+", 2000),
)
EMPLOYEES = Binding(
    "hubspot", "numemployees", transforms=("trim", "ranges"), ranges=EMPLOYEE_RANGES
)


def read(binding: Binding, raw: Any, kind: CanonicalType) -> Any:
    return binding.to_canonical(raw, canonical_type=kind)


def write(binding: Binding, value: Any, kind: CanonicalType) -> Any:
    return binding.to_crm(value, canonical_type=kind)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# ------------------------------------------------------------------------ reading: text


@pytest.mark.parametrize(
    ("transforms", "raw", "expected"),
    [
        ((), "  as typed  ", "  as typed  "),  # nothing asked, nothing done
        (("trim",), "  Ada  ", "Ada"),
        (("trim",), "\xa0Zoë\u2003", "Zoë"),  # no-break and em spaces are spaces too
        (("trim", "lower"), "  Ada.Lovelace@Example.COM ", "ada.lovelace@example.com"),
        (("lower",), "ÉMILIE", "émilie"),
        (("lower",), "Straße@x.de", "straße@x.de"),  # not casefolded into "strasse"
        (("upper",), "straße", "STRASSE"),
        (("title",), "o'neill-smith", "O'Neill-Smith"),
        (("title",), "JOSÉ ÁLVAREZ", "José Álvarez"),
        (("lower", "trim"), "  MiXeD ", "mixed"),  # listed order does not matter
    ],
)
def test_text_transforms_read(transforms: tuple[str, ...], raw: str, expected: str) -> None:
    assert read(Binding("hubspot", "p", transforms=transforms), raw, "string") == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hello", "hello"),
        (42, "42"),
        (5.0, "5"),  # a Salesforce double holding a whole number
        (2.5, "2.5"),
        (True, "true"),
        (False, "false"),
    ],
)
def test_any_crm_value_reads_as_text(raw: Any, expected: str) -> None:
    assert read(SALESFORCE, raw, "string") == expected


# ------------------------------------------------------------------------ reading: blanks


@pytest.mark.parametrize("raw", [None, "", "   ", "\t\n", "\xa0"])
@pytest.mark.parametrize("kind", ["string", "integer", "number", "boolean", "date", "datetime"])
def test_blank_reads_as_none(raw: Any, kind: CanonicalType) -> None:
    assert read(HUBSPOT, raw, kind) is None


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_blank_reads_as_the_default_when_there_is_one(raw: Any) -> None:
    binding = Binding("hubspot", "webinars_attended", transforms=("integer",), default=0)
    assert read(binding, raw, "integer") == 0


def test_the_default_is_only_for_blanks() -> None:
    binding = Binding("hubspot", "webinars_attended", default=0)
    assert read(binding, "3", "integer") == 3
    with pytest.raises(TransformError):
        read(binding, "three", "integer")


# ------------------------------------------------------------------------ reading: numbers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("42", 42),
        (" 42 ", 42),
        ("+7", 7),
        ("-3", -3),
        ("42.0", 42),  # HubSpot number properties may carry a decimal point
        ("1e3", 1000),
        (42, 42),
        (42.0, 42),
        ("12345678901234", 12345678901234),
    ],
)
def test_integers_read(raw: Any, expected: int) -> None:
    value = read(HUBSPOT, raw, "integer")
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("4.5", "not a whole number"),
        (4.5, "not a whole number"),
        ("abc", "cannot read it as an integer"),
        ("1,000", "cannot read it as an integer"),  # thousands separators are ambiguous
        ("1_000", "cannot read it as an integer"),  # Python reads it; no CRM means it
        ("٤٢", "cannot read it as an integer"),  # Arabic-Indic digits, likewise
        ("nan", "cannot read it as an integer"),
        ("inf", "cannot read it as an integer"),
        (True, "a boolean is not an integer"),
    ],
)
def test_bad_integers_are_refused_with_a_reason(raw: Any, reason: str) -> None:
    with pytest.raises(TransformError) as raised:
        read(Binding("hubspot", "numemployees"), raw, "integer")
    assert raised.value.reason == reason
    assert raised.value.field == "hubspot.numemployees"
    assert raised.value.value == raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1234.5", 1234.5),
        ("5000000", 5_000_000.0),
        ("-3", -3.0),
        (".5", 0.5),
        (" 7 ", 7.0),
        (5000000, 5_000_000.0),
        (12.25, 12.25),
    ],
)
def test_numbers_read_as_floats(raw: Any, expected: float) -> None:
    value = read(HUBSPOT, raw, "number")
    assert value == expected
    assert type(value) is float


@pytest.mark.parametrize("raw", ["12k", "$100", "NaN", "Infinity", "1.2.3", True, float("inf")])
def test_bad_numbers_are_refused(raw: Any) -> None:
    with pytest.raises(TransformError, match=r"cannot read it as a number|not a number"):
        read(HUBSPOT, raw, "number")


def test_a_transform_error_names_field_reason_and_value() -> None:
    with pytest.raises(TransformError) as raised:
        read(Binding("hubspot", "annualrevenue"), "12k", "number")
    assert str(raised.value) == "hubspot.annualrevenue: cannot read it as a number (value '12k')"
    assert isinstance(raised.value, ValueError)


def test_a_long_value_is_shortened_in_the_message() -> None:
    with pytest.raises(TransformError) as raised:
        read(HUBSPOT, "x" * 500, "number")
    assert len(str(raised.value)) < 150
    assert raised.value.value == "x" * 500  # the full value stays on the error


# ------------------------------------------------------------------------ reading: booleans


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("1", True),
        (True, True),
        (1, True),
        ("false", False),
        ("No", False),
        ("0", False),
        (False, False),
        (0, False),
    ],
)
def test_booleans_read(raw: Any, expected: bool) -> None:
    assert read(SALESFORCE, raw, "boolean") is expected


@pytest.mark.parametrize("raw", ["maybe", "y", "2", 2, 1.5])
def test_bad_booleans_are_refused(raw: Any) -> None:
    with pytest.raises(TransformError, match="boolean"):
        read(SALESFORCE, raw, "boolean")


# ------------------------------------------------------------------------ reading: dates


@pytest.mark.parametrize(
    ("raw", "zone", "expected"),
    [
        ("2024-05-01", "UTC", date(2024, 5, 1)),
        (" 2024-05-01 ", "UTC", date(2024, 5, 1)),
        ("1714521600000", "UTC", date(2024, 5, 1)),  # HubSpot: midnight UTC in epoch ms
        ("1714521600000", "America/New_York", date(2024, 5, 1)),  # ...whatever the zone
        ("2024-05-01T23:30:00-05:00", "UTC", date(2024, 5, 2)),
        ("2024-05-01T23:30:00-04:00", "America/New_York", date(2024, 5, 1)),
        ("2024-05-01T23:30:00-05:00", "America/New_York", date(2024, 5, 2)),  # 00:30 EDT
        ("2024-05-01T23:30:00", "Asia/Tokyo", date(2024, 5, 1)),  # naive: its own date
    ],
)
def test_dates_read(raw: str, zone: str, expected: date) -> None:
    assert read(Binding("salesforce", "ConvertedDate", time_zone=zone), raw, "date") == expected


@pytest.mark.parametrize("raw", ["2024-02-30", "May 1st", "01/05/2024", "2024-05"])
def test_bad_dates_are_refused(raw: str) -> None:
    with pytest.raises(TransformError):
        read(SALESFORCE, raw, "date")


# ------------------------------------------------------------------------ reading: datetimes


@pytest.mark.parametrize(
    ("raw", "zone", "expected"),
    [
        ("2024-05-01T10:00:00.000+0000", "UTC", utc(2024, 5, 1, 10)),  # Salesforce
        ("2024-05-01T10:00:00.000Z", "UTC", utc(2024, 5, 1, 10)),  # HubSpot
        ("2024-05-01T12:00:00+02:00", "America/New_York", utc(2024, 5, 1, 10)),
        ("1714557600000", "UTC", utc(2024, 5, 1, 10)),  # HubSpot epoch milliseconds
        ("1714557600123", "UTC", utc(2024, 5, 1, 10, 0, 0, 123000)),
        (1714557600000, "UTC", utc(2024, 5, 1, 10)),
        ("2024-05-01T10:00:00", "Europe/Berlin", utc(2024, 5, 1, 8)),  # naive: local time
        ("2024-05-01 10:00", "Europe/Berlin", utc(2024, 5, 1, 8)),
        ("2024-05-01", "Europe/Berlin", utc(2024, 4, 30, 22)),  # a date: local midnight
        # Spring forward: 02:30 never happens in New York; it moves on by the gap (03:30 EDT).
        ("2024-03-10T02:30:00", "America/New_York", utc(2024, 3, 10, 7, 30)),
        # Fall back: 01:30 happens twice; the first one (EDT, -4) is taken.
        ("2024-11-03T01:30:00", "America/New_York", utc(2024, 11, 3, 5, 30)),
        ("2024-11-03T01:30:00-05:00", "America/New_York", utc(2024, 11, 3, 6, 30)),
    ],
)
def test_datetimes_read_as_aware_utc(raw: Any, zone: str, expected: datetime) -> None:
    value = read(Binding("hubspot", "createdate", time_zone=zone), raw, "datetime")
    assert value == expected
    assert value.tzinfo is UTC


@pytest.mark.parametrize("raw", ["yesterday", "2024-13-01T00:00:00Z", "10:00", "99999999999999999"])
def test_bad_datetimes_are_refused(raw: str) -> None:
    with pytest.raises(TransformError, match="date"):
        read(HUBSPOT, raw, "datetime")


# ------------------------------------------------------------------------ reading: value maps


COUNTRIES = Binding(
    "salesforce",
    "Country",
    transforms=("trim",),
    value_map={"US": "United States", "USA": "United States", "DE": "Germany"},
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("US", "United States"), (" USA ", "United States"), ("DE", "Germany")],
)
def test_value_map_reads_crm_values(raw: str, expected: str) -> None:
    assert read(COUNTRIES, raw, "string") == expected


def test_a_strict_value_map_refuses_an_unlisted_value() -> None:
    with pytest.raises(TransformError) as raised:
        read(COUNTRIES, "Atlantis", "string")
    assert raised.value.reason == "not listed in its value_map"
    assert raised.value.field == "salesforce.Country"


def test_a_lax_value_map_passes_an_unlisted_value_on() -> None:
    lax = Binding(
        "salesforce", "Country", transforms=("trim",), value_map={"US": "x"}, strict=False
    )
    assert read(lax, " Atlantis ", "string") == "Atlantis"


def test_a_passed_on_value_is_still_converted_to_the_type() -> None:
    lax = Binding("hubspot", "size", value_map={"small": 10}, strict=False)
    assert read(lax, "small", "integer") == 10
    assert read(lax, "42", "integer") == 42
    with pytest.raises(TransformError, match="integer"):
        read(lax, "huge", "integer")


def test_value_map_keys_match_non_text_crm_values() -> None:
    flags = Binding("salesforce", "IsConverted", value_map={"true": "converted", "false": "open"})
    assert read(flags, True, "string") == "converted"
    sizes = Binding("salesforce", "Tier__c", value_map={"1": "small", "2": "large"})
    assert read(sizes, 2, "string") == "large"
    assert read(sizes, 1.0, "string") == "small"


def test_steps_run_in_their_fixed_order_whatever_the_list_says() -> None:
    # trim -> case -> value_map -> type conversion; the map's result is final (not re-cased).
    binding = Binding(
        "hubspot",
        "size",
        transforms=("value_map", "integer", "lower", "trim"),
        value_map={"small": 10, "large": 1000},
    )
    assert read(binding, "  SMALL ", "integer") == 10
    mapped = Binding("hubspot", "p", transforms=("lower",), value_map={"us": "United States"})
    assert read(mapped, "US", "string") == "United States"


def test_blank_takes_the_default_before_the_value_map() -> None:
    binding = Binding("hubspot", "p", value_map={"": "never", "x": "y"}, default="unknown")
    assert read(binding, "  ", "string") == "unknown"


# ------------------------------------------------------------------------ reading: ranges


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1-5", 3), ("5-25", 15), (" 100-500 ", 300), ("1000+", 2000)],
)
def test_ranges_read_as_their_representative(raw: str, expected: int) -> None:
    assert read(EMPLOYEES, raw, "integer") == expected


def test_an_unlisted_range_is_refused_when_strict() -> None:
    with pytest.raises(TransformError, match="not listed in its ranges"):
        read(EMPLOYEES, "2-3", "integer")


def test_an_unlisted_range_passes_on_when_lax() -> None:
    lax = Binding("hubspot", "numemployees", ranges=EMPLOYEE_RANGES, strict=False)
    assert read(lax, "42", "integer") == 42


# ------------------------------------------------------------------------ writing


@pytest.mark.parametrize(
    ("kind", "value", "hubspot", "salesforce"),
    [
        ("string", "Ada", "Ada", "Ada"),
        ("string", None, "", None),  # clearing
        ("integer", 42, "42", 42),
        ("integer", 42.0, "42", 42),
        ("number", 5_000_000.0, "5000000", 5_000_000.0),
        ("number", 1234.5, "1234.5", 1234.5),
        ("number", 7, "7", 7.0),
        ("boolean", True, "true", True),
        ("boolean", False, "false", False),
        ("date", date(2024, 5, 1), "1714521600000", "2024-05-01"),
        ("datetime", utc(2024, 5, 1, 10), "1714557600000", "2024-05-01T10:00:00.000Z"),
        (
            "datetime",
            datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
            "1714557600123",
            "2024-05-01T10:00:00.123Z",
        ),
    ],
)
def test_values_are_written_as_each_crm_takes_them(
    kind: CanonicalType, value: Any, hubspot: Any, salesforce: Any
) -> None:
    assert write(HUBSPOT, value, kind) == hubspot
    written = write(SALESFORCE, value, kind)
    assert written == salesforce
    assert type(written) is type(salesforce)


def test_a_naive_datetime_is_written_from_the_binding_time_zone() -> None:
    binding = Binding("salesforce", "Demo__c", time_zone="Europe/Berlin")
    assert write(binding, datetime(2024, 5, 1, 10), "datetime") == "2024-05-01T08:00:00.000Z"


def test_text_is_written_with_the_binding_trim_and_case() -> None:
    binding = Binding("salesforce", "Email", transforms=("trim", "lower"))
    assert write(binding, "  Ada@Example.COM ", "string") == "ada@example.com"


@pytest.mark.parametrize(
    ("kind", "value"),
    [("integer", "many"), ("integer", 4.5), ("boolean", "maybe"), ("datetime", "soon")],
)
def test_a_value_unfit_for_its_type_is_not_written(kind: CanonicalType, value: Any) -> None:
    with pytest.raises(TransformError):
        write(SALESFORCE, value, kind)


def test_value_map_writes_the_first_crm_value_listed() -> None:
    assert write(COUNTRIES, "United States", "string") == "US"
    assert write(COUNTRIES, "Germany", "string") == "DE"


def test_push_value_map_overrides_the_inverted_value_map() -> None:
    binding = Binding(
        "salesforce",
        "Country",
        value_map=COUNTRIES.value_map,
        push_value_map={"United States": "USA"},
    )
    assert write(binding, "United States", "string") == "USA"
    assert write(binding, "Germany", "string") == "DE"


def test_a_strict_value_map_refuses_to_write_an_unmapped_value() -> None:
    with pytest.raises(TransformError, match="no CRM value maps to it"):
        write(COUNTRIES, "Atlantis", "string")


def test_a_lax_value_map_writes_an_unmapped_value_as_it_is() -> None:
    lax = Binding("salesforce", "Country", value_map={"US": "United States"}, strict=False)
    assert write(lax, "Atlantis", "string") == "Atlantis"


def test_a_value_map_inverts_typed_canonical_values() -> None:
    sizes = Binding("hubspot", "size", value_map={"small": 10, "large": 1000})
    assert write(sizes, 1000, "integer") == "large"
    assert write(sizes, "10", "integer") == "small"  # read as the type first


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (-3, "1-5"),  # the first range holds everything below too
        (0, "1-5"),
        (1, "1-5"),
        (5, "1-5"),  # up_to is inclusive
        (6, "5-25"),
        (25, "5-25"),
        (26, "25-50"),
        (1000, "500-1000"),
        (1001, "1000+"),
        (50_000, "1000+"),
        ("75", "50-100"),
    ],
)
def test_ranges_write_the_range_holding_the_number(count: Any, expected: str) -> None:
    assert write(EMPLOYEES, count, "integer") == expected


def test_ranges_refuse_a_number_above_a_closed_last_range_when_strict() -> None:
    closed = Binding("hubspot", "size", ranges=(Range("small", 5, 10), Range("big", 50, 100)))
    with pytest.raises(TransformError, match="above the last of its ranges"):
        write(closed, 101, "integer")
    lax = Binding("hubspot", "size", ranges=closed.ranges, strict=False)
    assert write(lax, 101, "integer") == "101"


def test_ranges_refuse_what_is_not_a_number() -> None:
    with pytest.raises(TransformError):
        write(EMPLOYEES, "many", "integer")


# ------------------------------------------------------------------------ round trips


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("string", "Zoë O'Neill"),
        ("integer", 0),
        ("integer", -17),
        ("number", 1234.5),
        ("number", 5e15),
        ("boolean", True),
        ("boolean", False),
        ("date", date(1999, 12, 31)),
        ("datetime", utc(2024, 3, 10, 7, 30, 0, 999000)),
    ],
)
@pytest.mark.parametrize("binding", [HUBSPOT, SALESFORCE], ids=["hubspot", "salesforce"])
def test_written_values_read_back_the_same(
    binding: Binding, kind: CanonicalType, value: Any
) -> None:
    assert read(binding, write(binding, value, kind), kind) == value


@pytest.mark.parametrize("bucket", EMPLOYEE_RANGES, ids=lambda bucket: bucket.crm_value)
def test_each_range_round_trips_through_its_representative(bucket: Range) -> None:
    assert write(EMPLOYEES, read(EMPLOYEES, bucket.crm_value, "integer"), "integer") == (
        bucket.crm_value
    )


def test_a_value_map_round_trips_through_its_first_crm_value() -> None:
    for crm_value in ("US", "DE"):
        assert write(COUNTRIES, read(COUNTRIES, crm_value, "string"), "string") == crm_value


@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_any_integer_round_trips(number: int) -> None:
    for binding in (HUBSPOT, SALESFORCE):
        assert read(binding, write(binding, number, "integer"), "integer") == number


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),  # before 1970: negative epoch ms
        max_value=datetime(2200, 1, 1),
        timezones=st.just(UTC),
    )
)
def test_any_datetime_round_trips_to_the_millisecond(moment: datetime) -> None:
    expected = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    for binding in (HUBSPOT, SALESFORCE):
        assert read(binding, write(binding, moment, "datetime"), "datetime") == expected
