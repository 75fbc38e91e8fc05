"""How one canonical field lives in one CRM field: the `Binding`, and the transforms between them.

Reading (CRM -> canonical) runs the steps in one fixed order, whatever order a file lists them in,
so a mapping reads the same however it is written:

    1. blank ("" or whitespace or None)  -> `default`, or None when there is none
    2. trim, then one of lower | upper | title   (text only)
    3. value_map or ranges: a hit is the canonical value, already typed; a miss is a
       TransformError when `strict` (the default), else the value goes on to step 4
    4. conversion to the field's canonical type (number, integer, boolean, date, datetime)

Writing (canonical -> CRM) goes the other way: None clears the field; `ranges` picks the range
holding the number; `push_value_map`, then the inverted `value_map` (the first CRM value listed
for a canonical value), pick the CRM value; anything else is formatted for the CRM (HubSpot:
always a string, dates and datetimes as epoch milliseconds; Salesforce: JSON types) and text gets
the binding's trim and case again, so what is written reads back as the same canonical value.

Canonical values: str, int, float, bool, `datetime.date`, and aware UTC `datetime.datetime`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from leadsync.errors import RecordError
from leadsync.mapping.types import CanonicalType, Crm

TEXT_TRANSFORMS: tuple[str, ...] = ("trim", "lower", "upper", "title")
CASE_TRANSFORMS: frozenset[str] = frozenset({"lower", "upper", "title"})
TABLE_TRANSFORMS: tuple[str, ...] = ("value_map", "ranges")
# Each names the canonical type it converts to; listing one only documents the conversion the
# field's type implies anyway, so it must agree with that type.
TYPE_TRANSFORMS: tuple[str, ...] = ("number", "integer", "boolean", "date", "datetime")
TRANSFORMS: tuple[str, ...] = (*TEXT_TRANSFORMS, *TABLE_TRANSFORMS, *TYPE_TRANSFORMS, "default")

TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})

# ASCII digits only: Python's own parsers also take "1_000" and Arabic-Indic digits, which no CRM
# means as a number.
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
# HubSpot sends dates and datetimes as epoch milliseconds in a string.
_EPOCH_MS = re.compile(r"-?\d+", re.ASCII)
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TransformError(RecordError):
    """A value the mapping cannot transform. The sync engine quarantines that record, with
    `str(error)` (naming the field, the reason and the value) as the reason."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        super().__init__(f"{field}: {reason} (value {_shown(value)})")
        self.field = field
        self.value = value
        self.reason = reason


class _UnreadableError(RecordError):
    """Raised by the converters; the binding adds the field and the value."""


# A binding's reading or writing of one canonical type, compiled once (`Binding.reader`).
Reader = Callable[[Any], Any]
# What a binding compiles, left out of its pickled state.
_COMPILED = frozenset({"_readers", "_writers", "_text_steps"})


@dataclass(frozen=True)
class Range:
    """One bucket of a CRM field that keeps a number as a range (HubSpot's `numemployees`).

    It holds the numbers above the previous range's `up_to` up to and including its own; the
    first range holds everything below too, and `up_to=None` (the last range) everything above.
    """

    crm_value: str
    canonical: int | float  # the representative number read from `crm_value`
    up_to: float | None = None


@dataclass(frozen=True)
class Binding:
    """One canonical field's place in one CRM, and how its values are transformed.

    `object` is None for the lead object itself (HubSpot contacts, Salesforce Lead), or
    "Opportunity": the Salesforce opportunity the lead was converted into, read-only.
    `value_map` maps CRM values (as text, after trim and case) to canonical values.
    `push_value_map` maps canonical values to the CRM value to write where `value_map` is not
    one-to-one; without an entry, the first CRM value `value_map` lists for it is written.
    `strict`: a value missing from `value_map`/`ranges` is an error rather than passed through.
    `time_zone` is the zone of naive dates and datetimes (an IANA name).
    """

    crm: Crm
    field: str
    object: str | None = None
    transforms: tuple[str, ...] = ()
    value_map: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    default: Any = None
    time_zone: str = "UTC"
    strict: bool = True
    ranges: tuple[Range, ...] = ()
    push_value_map: Mapping[Any, str] = dataclasses.field(default_factory=dict)

    @property
    def qualified_name(self) -> str:
        """`hubspot.numemployees`, `salesforce.Opportunity.StageName`: for messages."""
        parts = (self.crm, self.object, self.field)
        return ".".join(part for part in parts if part)

    def to_canonical(self, raw: Any, *, canonical_type: CanonicalType) -> Any:
        """The canonical value of `raw`, a CRM value (HubSpot: a string or None; Salesforce:
        JSON types). Raises TransformError when it cannot be read."""
        return self.reader(canonical_type)(raw)

    def to_crm(self, value: Any, *, canonical_type: CanonicalType) -> Any:
        """What to write to the CRM for the canonical `value`: a string for HubSpot ("" clears
        the property), JSON types for Salesforce (None clears the field)."""
        return self.writer(canonical_type)(value)

    def text_steps(self, text: str) -> str:
        """`text` after this binding's trim and case transforms."""
        steps = self._text_steps
        return text if steps is None else steps(text)

    def reader(self, canonical_type: CanonicalType, label: str | None = None) -> Reader:
        """`to_canonical` for one canonical type as a plain function, made once per binding:
        a sync reads every field of every record through it. Its TransformErrors name
        `label` (by default the binding's `qualified_name`)."""
        key = (canonical_type, label)
        found = self._readers.get(key)
        if found is None:
            found = _reader(self, canonical_type, label or self.qualified_name)
            self._readers[key] = found
        return found

    def writer(self, canonical_type: CanonicalType, label: str | None = None) -> Reader:
        """`to_crm` for one canonical type as a plain function, made once per binding (see
        `reader`)."""
        key = (canonical_type, label)
        found = self._writers.get(key)
        if found is None:
            found = _writer(self, canonical_type, label or self.qualified_name)
            self._writers[key] = found
        return found

    def __getstate__(self) -> dict[str, Any]:
        # The compiled functions are closures, which do not pickle; a copy makes its own.
        return {key: value for key, value in self.__dict__.items() if key not in _COMPILED}

    # ---------------------------------------------------------------- internals

    @functools.cached_property
    def _readers(self) -> dict[tuple[str, str | None], Reader]:
        return {}

    @functools.cached_property
    def _writers(self) -> dict[tuple[str, str | None], Reader]:
        return {}

    @functools.cached_property
    def _text_steps(self) -> Callable[[str], str] | None:
        """The trim and case transforms as one function; None when the binding has none."""
        trim = "trim" in self.transforms
        cases = tuple(CASE_CHANGES[name] for name in self.transforms if name in CASE_TRANSFORMS)
        if not cases:
            return str.strip if trim else None
        if len(cases) == 1:
            case = cases[0]
            return (lambda text: case(text.strip())) if trim else case

        def steps(text: str) -> str:
            if trim:
                text = text.strip()
            for change in cases:
                text = change(text)
            return text

        return steps

    @functools.cached_property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @functools.cached_property
    def _ranges_by_value(self) -> dict[str, int | float]:
        return {bucket.crm_value: bucket.canonical for bucket in self.ranges}

    @functools.cached_property
    def _written_values(self) -> dict[Any, str]:
        # The first CRM value listed for a canonical value wins; push_value_map overrides.
        inverse: dict[Any, str] = {}
        for crm_value, canonical in self.value_map.items():
            inverse.setdefault(canonical, crm_value)
        return {**inverse, **self.push_value_map}

    def _range_value(self, number: Any, value: Any, label: str) -> Any:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise TransformError(label, value, "ranges need a number")
        for bucket in self.ranges:
            if bucket.up_to is None or number <= bucket.up_to:
                return bucket.crm_value
        if self.strict:
            raise TransformError(label, value, "above the last of its ranges")
        return WRITERS[self.crm]["number"](number)


def _reader(binding: Binding, canonical_type: CanonicalType, label: str) -> Reader:
    """`Binding.to_canonical` with everything that does not depend on the value looked up
    once: the steps run in the order the module's docstring gives."""
    default = binding.default
    steps = binding._text_steps
    table: Mapping[str, Any] | None = (
        binding._ranges_by_value if binding.ranges else binding.value_map or None
    )
    strict = binding.strict
    missing = f"not listed in its {'ranges' if binding.ranges else 'value_map'}"
    convert = READERS[canonical_type]
    zone = binding._zone
    # Text read as text, with no table in between: the converter would hand it back as is.
    text_as_is = table is None and convert is read_string

    def read(raw: Any) -> Any:
        if raw is None:
            return default
        if isinstance(raw, str):
            if not raw.strip():  # blank
                return default
            value = raw if steps is None else steps(raw)
            if text_as_is:
                return value
        else:
            value = raw
        if table is not None:
            key = table_key(value)
            if key in table:
                return table[key]
            if strict:
                raise TransformError(label, raw, missing)
        try:
            return convert(value, zone)
        except _UnreadableError as unreadable:
            raise TransformError(label, raw, str(unreadable)) from None

    return read


def _writer(binding: Binding, canonical_type: CanonicalType, label: str) -> Reader:
    """`Binding.to_crm` with everything that does not depend on the value looked up once."""
    cleared = "" if binding.crm == "hubspot" else None
    convert = READERS[canonical_type]
    zone = binding._zone
    ranges = bool(binding.ranges)
    mapped = binding._written_values if binding.value_map or binding.push_value_map else None
    strict = binding.strict
    steps = binding._text_steps
    formats = WRITERS.get(binding.crm, {}).get(canonical_type)

    def write(value: Any) -> Any:
        if value is None:
            return cleared
        try:
            typed = convert(value, zone)
        except _UnreadableError as unreadable:
            raise TransformError(label, value, str(unreadable)) from None
        if ranges:
            return binding._range_value(typed, value, label)
        if mapped is not None:
            crm_value = mapped.get(typed)
            if crm_value is not None:
                return crm_value
            if strict:
                raise TransformError(label, value, "no CRM value maps to it")
        written = (formats or WRITERS[binding.crm][canonical_type])(typed)
        return steps(written) if steps is not None and isinstance(written, str) else written

    return write


def is_blank(raw: Any) -> bool:
    """None, "" and whitespace are blank: no value."""
    return raw is None or (isinstance(raw, str) and not raw.strip())


def table_key(value: Any) -> str:
    """The text a non-text CRM value (a Salesforce number or boolean) is looked up by in a
    value_map, whose keys are text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


CASE_CHANGES: dict[str, Callable[[str], str]] = {
    # str.lower, not casefold: casefold turns "ß" into "ss", which changes an email address.
    "lower": str.lower,
    "upper": str.upper,
    "title": str.title,
}


# ------------------------------------------------------------------------------ reading values


def read_string(value: Any, zone: ZoneInfo) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return table_key(value)
    if isinstance(value, date):
        return value.isoformat()
    raise _UnreadableError(f"cannot read a {type(value).__name__} as text")


def read_integer(value: Any, zone: ZoneInfo) -> int:
    if isinstance(value, bool):
        raise _UnreadableError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    number = _finite(value, "an integer")
    if not number.is_integer():
        raise _UnreadableError("not a whole number")
    return int(number)


def read_number(value: Any, zone: ZoneInfo) -> float:
    if isinstance(value, bool):
        raise _UnreadableError("a boolean is not a number")
    return _finite(value, "a number")


def _finite(value: Any, kind: str) -> float:
    numeric = isinstance(value, int | float)
    if not numeric and not (isinstance(value, str) and _DECIMAL.fullmatch(value.strip())):
        raise _UnreadableError(f"cannot read it as {kind}")
    number = float(value)
    if not math.isfinite(number):
        raise _UnreadableError(f"cannot read it as {kind}")
    return number


def read_boolean(value: Any, zone: ZoneInfo) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise _UnreadableError("cannot read it as a boolean (true/false, yes/no, 1/0)")


def read_date(value: Any, zone: ZoneInfo) -> date:
    if isinstance(value, datetime):
        return _in_zone(value, zone).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE_ONLY.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise _UnreadableError("not a valid date") from None
    if _is_epoch_ms(value):
        # HubSpot keeps a date as midnight UTC in epoch milliseconds: its day is the UTC day.
        return _moment(value, zone).date()
    # A date-time read as a date is the day it was in the binding's time zone.
    return _moment(value, zone).astimezone(zone).date()


def read_datetime(value: Any, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return _in_zone(value, zone).astimezone(UTC)
    if isinstance(value, date):
        return _in_zone(datetime.combine(value, time()), zone).astimezone(UTC)
    if isinstance(value, str) and _DATE_ONLY.fullmatch(value.strip()):
        return read_datetime(read_date(value, zone), zone)
    return _moment(value, zone).astimezone(UTC)


def _is_epoch_ms(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (
        isinstance(value, str) and _EPOCH_MS.fullmatch(value.strip()) is not None
    )


def _moment(value: Any, zone: ZoneInfo) -> datetime:
    """An aware datetime from epoch milliseconds (number or digits) or ISO 8601 text."""
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return _from_epoch_ms(value)
        if isinstance(value, str):
            text = value.strip()
            if _is_epoch_ms(text):
                return _from_epoch_ms(int(text))
            return _in_zone(datetime.fromisoformat(text), zone)
    except (ValueError, OverflowError):
        raise _UnreadableError("not an ISO 8601 date-time or epoch milliseconds") from None
    raise _UnreadableError("not an ISO 8601 date-time or epoch milliseconds")


def _from_epoch_ms(milliseconds: int) -> datetime:
    # Exact integer arithmetic: a float timestamp loses the millisecond for far dates.
    return _EPOCH + timedelta(milliseconds=milliseconds)


def _in_zone(moment: datetime, zone: ZoneInfo) -> datetime:
    """`moment`, a naive one read as wall-clock time in `zone`.

    Around DST changes, zoneinfo's fold=0 applies: a time that happens twice (autumn) is its
    first occurrence, a time that never happens (spring) is moved forward by the gap.
    """
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


READERS: dict[str, Callable[[Any, ZoneInfo], Any]] = {
    "string": read_string,
    "integer": read_integer,
    "number": read_number,
    "boolean": read_boolean,
    "date": read_date,
    "datetime": read_datetime,
}


# ------------------------------------------------------------------------------ writing values


def _epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _hubspot_number(number: Any) -> str:
    return table_key(float(number)) if isinstance(number, float) else str(number)


def _salesforce_datetime(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


WRITERS: dict[str, dict[str, Callable[[Any], Any]]] = {
    # HubSpot takes every value as a string; dates as midnight UTC, both in epoch milliseconds.
    "hubspot": {
        "string": str,
        "integer": str,
        "number": _hubspot_number,
        "boolean": lambda flag: "true" if flag else "false",
        "date": lambda day: str(_epoch_ms(datetime.combine(day, time(), UTC))),
        "datetime": lambda moment: str(_epoch_ms(moment)),
    },
    "salesforce": {
        "string": str,
        "integer": int,
        "number": float,
        "boolean": bool,
        "date": date.isoformat,
        "datetime": _salesforce_datetime,
    },
}
