"""HubSpot CRM search: filter groups compiled into predicates over stored contacts.

A contact matches when every filter of at least one group matches (groups are ORed, filters
within a group ANDed). Comparisons follow the property's type: numbers numerically, datetimes
as epoch milliseconds (filter values may be epoch-ms strings or ISO texts), everything else as
case-insensitive text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from leadsync.sandbox.hubspot_values import json_token
from leadsync.sandbox.schema import HubSpotProperty
from leadsync.sandbox.timestamps import parse_ms

MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18

# A contact's value for a property: text, or epoch ms for the timestamps HubSpot keeps itself.
ValueOf = Callable[[str], str | int | None]
Predicate = Callable[[ValueOf], bool]

OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)


class SearchError(ValueError):
    """A search request HubSpot would answer with 400 VALIDATION_ERROR."""


@dataclass(frozen=True, slots=True)
class SortKey:
    property_name: str
    descending: bool


def _epoch_ms(value: str | int) -> int:
    return value if isinstance(value, int) else parse_ms(value)


def _key_function(prop: HubSpotProperty | None) -> Callable[[Any], Any]:
    if prop is not None and prop.type == "number":
        return float
    if prop is not None and prop.type in ("datetime", "date"):
        return _epoch_ms
    return str.lower


def compile_filter_groups(
    groups: Sequence[Mapping[str, Any]], properties: Mapping[str, HubSpotProperty]
) -> Predicate | None:
    """One predicate for the `filterGroups` of a search body; None when there are no groups."""
    if not isinstance(groups, list):
        raise SearchError("filterGroups must be a list")
    if len(groups) > MAX_FILTER_GROUPS:
        raise SearchError(f"Too many filter groups: {len(groups)} (max {MAX_FILTER_GROUPS})")
    total = 0
    compiled_groups: list[list[Predicate]] = []
    for group in groups:
        filters = group.get("filters", []) if isinstance(group, Mapping) else None
        if not isinstance(filters, list):
            raise SearchError("each filter group needs a list of filters")
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise SearchError(
                f"Too many filters in a group: {len(filters)} (max {MAX_FILTERS_PER_GROUP})"
            )
        total += len(filters)
        compiled_groups.append([_compile_filter(f, properties) for f in filters])
    if total > MAX_FILTERS:
        raise SearchError(f"Too many filters: {total} (max {MAX_FILTERS})")
    if not compiled_groups:
        return None

    def matches(value_of: ValueOf) -> bool:
        return any(all(test(value_of) for test in group) for group in compiled_groups)

    return matches


def unreadable_search(body: Mapping[str, Any]) -> str | None:
    """Why HubSpot cannot read a search body's filters, if it cannot: a filter's `value` and
    `highValue` are strings and its `values` a list of them, so an object or array in their
    place fails the body's parse (an "Invalid input JSON" refusal, not a validation error)."""
    groups = body.get("filterGroups")
    for group in groups if isinstance(groups, list) else ():
        filters = group.get("filters") if isinstance(group, Mapping) else None
        for spec in filters if isinstance(filters, list) else ():
            if not isinstance(spec, Mapping):
                continue
            values = spec.get("values")
            scalars = [spec.get("value"), spec.get("highValue")]
            scalars += values if isinstance(values, list) else [values]
            for raw in scalars:
                if isinstance(raw, Mapping | list):
                    return (
                        f"Cannot deserialize value of type `java.lang.String` from "
                        f"{json_token(raw)}"
                    )
    return None


def _compile_filter(spec: Any, properties: Mapping[str, HubSpotProperty]) -> Predicate:
    if not isinstance(spec, Mapping):
        raise SearchError("a filter must be an object")
    name = spec.get("propertyName")
    operator = spec.get("operator", "EQ")
    if not isinstance(name, str) or not name:
        raise SearchError("a filter needs a propertyName")
    if operator not in OPERATORS:
        raise SearchError(f"Unknown filter operator {json.dumps(operator)}")
    prop = properties.get(name)
    if prop is None:
        raise SearchError(_unknown_property(name))
    key = _key_function(prop)

    if operator == "HAS_PROPERTY":
        return lambda value_of: bool(value_of(name))
    if operator == "NOT_HAS_PROPERTY":
        return lambda value_of: not value_of(name)

    if operator in ("IN", "NOT_IN"):
        raw_values = spec.get("values")
        if not isinstance(raw_values, list) or not raw_values:
            raise SearchError(f"operator {operator} on {name} needs a list of values")
        wanted = {_convert(key, name, raw) for raw in raw_values}
        if operator == "IN":
            return lambda value_of: _converted(key, value_of(name)) in wanted
        return lambda value_of: _converted(key, value_of(name)) not in wanted

    if "value" not in spec:
        raise SearchError(f"operator {operator} on {name} needs a value")
    target = _convert(key, name, spec["value"])

    if operator == "BETWEEN":
        if "highValue" not in spec:
            raise SearchError(f"operator BETWEEN on {name} needs a highValue")
        high = _convert(key, name, spec["highValue"])
        return lambda value_of: _between(_converted(key, value_of(name)), target, high)
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(spec["value"]).lower().strip("*")
        contains = operator == "CONTAINS_TOKEN"
        return lambda value_of: (token in str(value_of(name) or "").lower()) == contains
    if operator == "EQ":
        return lambda value_of: _converted(key, value_of(name)) == target
    if operator == "NEQ":
        return lambda value_of: _converted(key, value_of(name)) != target
    compare = _ORDERINGS[operator]
    return lambda value_of: _ordered(compare, _converted(key, value_of(name)), target)


def _convert(key: Callable[[str], Any], name: str, raw: Any) -> Any:
    try:
        return key(str(raw))
    except ValueError:
        raise SearchError(f"Invalid value {json.dumps(raw)} for property {name}") from None


def _converted(key: Callable[[Any], Any], value: str | int | None) -> Any:
    if value is None or value == "":
        return None
    try:
        return key(value)
    except ValueError:
        return None


def _between(value: Any, low: Any, high: Any) -> bool:
    return value is not None and bool(low <= value <= high)


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "LT": lambda a, b: a < b,
    "LTE": lambda a, b: a <= b,
    "GT": lambda a, b: a > b,
    "GTE": lambda a, b: a >= b,
}


def _ordered(compare: Callable[[Any, Any], bool], value: Any, target: Any) -> bool:
    if value is None:
        return False
    try:
        return compare(value, target)
    except TypeError:
        return False


def parse_sorts(sorts: Any, properties: Mapping[str, HubSpotProperty]) -> list[SortKey]:
    """The `sorts` list: dicts `{propertyName, direction}` or bare property names (ascending).

    HubSpot honours a single sort; more is a validation error, and so is a sort on a property
    the portal does not have.
    """
    if sorts is None:
        return []
    if not isinstance(sorts, list):
        raise SearchError("sorts must be a list")
    if len(sorts) > 1:
        raise SearchError("Only one sort is supported")
    keys = []
    for sort in sorts:
        if isinstance(sort, str):
            keys.append(SortKey(sort, descending=False))
        elif isinstance(sort, Mapping) and isinstance(sort.get("propertyName"), str):
            direction = str(sort.get("direction", "ASCENDING")).upper()
            if direction not in ("ASCENDING", "DESCENDING"):
                raise SearchError(f"Unknown sort direction {json.dumps(direction)}")
            keys.append(SortKey(sort["propertyName"], descending=direction == "DESCENDING"))
        else:
            raise SearchError("a sort is a property name or {propertyName, direction}")
    for key in keys:
        if key.property_name not in properties:
            raise SearchError(_unknown_property(key.property_name))
    return keys


def _unknown_property(name: str) -> str:
    # A filter or sort on a property the portal lacks is refused with 400 VALIDATION_ERROR,
    # not an empty result (issue 15's fidelity audit against HubSpot; exact wording
    # *unconfirmed*).
    return f"Invalid property name {json.dumps(name)}: the portal has no such property."


def sort_key(
    key: SortKey, properties: Mapping[str, HubSpotProperty]
) -> Callable[[str | int | None], tuple[int, Any]]:
    """A key function over one property's value; blanks sort last, as HubSpot does, in either
    direction (the caller sorts with `reverse=key.descending`)."""
    convert = _key_function(properties.get(key.property_name))
    blank = (-1, 0) if key.descending else (1, 0)

    def value_key(value: str | int | None) -> tuple[int, Any]:
        converted = _converted(convert, value)
        return blank if converted is None else (0, converted)

    return value_key
