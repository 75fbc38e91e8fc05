"""HubSpot property values on write: validated and normalised as the CRM object APIs do.

Every rule a written value meets lives here, so that the single-record, batch and upsert
endpoints agree, and so that a change to one rule is made once. Each rule names its source;
where no public source confirms a detail, the stricter choice is taken and marked
*unconfirmed*.

- Values are strings on the wire (CRM_FACTS.md); JSON booleans and numbers are taken as their
  text. `""` clears the property, which then reads back as `""`, while one never set reads
  back as null ("HubSpot's API returns \"\" for cleared properties", estuary/connectors#4272;
  singer-io/tap-hubspot#300). `null` clears nothing: the write is accepted and the property
  keeps its value (HubSpot/hubspot-api-nodejs#324, where HubSpot's answer is to send "").
- Unknown properties: PROPERTY_DOESNT_EXIST; read-only ones: READ_ONLY_VALUE (CRM_FACTS.md).
- Non-string properties (number, bool, date, datetime, enumeration) refuse leading or trailing
  whitespace, invisible characters included: LEADING_TRAILING_WHITESPACE (developers.hubspot.com
  changelog, "Breaking Change: Enhanced Validations for Non-String Properties", 2025).
- Enumerations: each `;`-separated part of a checkbox value, or the one value, must be an
  option: INVALID_OPTION (CRM_FACTS.md; the message shape is HubSpot's).
- Numbers: digits, an optional leading "-" and an optional single "."; commas, spaces,
  exponents ("1e3") and words ("nan") are refused: INVALID_DECIMAL (developers.hubspot.com
  changelog, "Upcoming: A change for number properties in CRM APIs"). Kept as sent: whether
  HubSpot rewrites "10.50" as "10.5" is *unconfirmed*, and keeping the text is the harder case
  for an echo check.
- Booleans: "true" or "false" only; other spellings ("True", "1") refused as INVALID_BOOLEAN
  (*unconfirmed*: the stricter choice).
- datetime: epoch milliseconds or ISO 8601 with a zone (developers.hubspot.com API FAQ, "How
  should I format timestamps"); returned as ISO 8601 UTC with milliseconds whatever was sent
  ("Time values are represented in ISO 8601 format in responses", same FAQ). ISO text without
  a zone is refused (*unconfirmed*: ambiguous, so the stricter choice).
- date: "YYYY-MM-DD", or epoch milliseconds (or an ISO datetime) at midnight UTC; any other
  time is an error ("Date properties ... must be set to midnight UTC ... If you try to set a
  value that is not midnight UTC, you will receive an error", developers.hubspot.com FAQ);
  returned as "YYYY-MM-DD" (same FAQ: "the complete date format").
- Strings: at most 65,536 characters (HubSpot's knowledge base on property field types; the
  error code name is *unconfirmed*).
- `email`: must look like an address: INVALID_EMAIL (CRM_FACTS.md).

The error message of a refused write is JSON, as HubSpot's is: `Property values were not valid:
[{"isValid":false,"message":...,"error":...,"name":...}]` (the changelog above quotes one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from leadsync.sandbox.schema import HubSpotProperty
from leadsync.sandbox.timestamps import hubspot_iso, parse_ms

STRING_LIMIT = 65_536
_DAY_MS = 86_400_000
# Properties the platform computes from the record itself: never writable.
DERIVED = ("hs_object_id", "createdate", "lastmodifieddate")

# ASCII digits only: Python's \d and str.isdigit also take other scripts' digits ("\u0663"),
# which HubSpot is not known to accept (*unconfirmed*: refusing them is the stricter choice).
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_EPOCH_MS = re.compile(r"\d+", re.ASCII)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Whitespace as HubSpot means it: str.strip's, plus the invisible characters it names.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"


@dataclass(frozen=True, slots=True)
class ValueProblem:
    """One refused property value, as HubSpot's VALIDATION_ERROR reports it."""

    name: str
    code: str
    message: str

    def legacy(self) -> dict[str, Any]:
        """The item of the JSON list in HubSpot's error message."""
        return {"isValid": False, "message": self.message, "error": self.code, "name": self.name}

    def detail(self) -> dict[str, Any]:
        """An ErrorDetail of the `errors` list (the OpenAPI spec's schema)."""
        return {
            "message": self.message,
            "code": self.code,
            "in": self.name,
            "context": {"propertyName": [self.name]},
        }


def json_token(raw: Any) -> str:
    """The JSON token `raw` was sent as, as HubSpot's parser (Jackson) names it in a refusal."""
    if isinstance(raw, Mapping):
        return "Object value (token `JsonToken.START_OBJECT`)"
    if isinstance(raw, list):
        return "Array value (token `JsonToken.START_ARRAY`)"
    if isinstance(raw, bool):
        return f"Boolean value (token `JsonToken.VALUE_{str(raw).upper()}`)"
    if isinstance(raw, int):
        return "Integer value (token `JsonToken.VALUE_NUMBER_INT`)"
    if isinstance(raw, float):
        return "Floating-point value (token `JsonToken.VALUE_NUMBER_FLOAT`)"
    return "String value (token `JsonToken.VALUE_STRING`)"


def unreadable_properties(properties: Any) -> str | None:
    """Why HubSpot cannot read an input's `properties` at all, if it cannot: its models take a
    map of strings, so an object or array where a value belongs (or a properties that is no
    object) fails the body's parse, before any value is validated, and the whole request with
    it (hubspot-api-python#307). JSON numbers and booleans are read as their text."""
    if properties is None:
        return None
    if not isinstance(properties, Mapping):
        return (
            "Cannot deserialize value of type `java.util.HashMap<java.lang.String,"
            f"java.lang.String>` from {json_token(properties)}"
        )
    for raw in properties.values():
        if isinstance(raw, Mapping | list):
            return f"Cannot deserialize value of type `java.lang.String` from {json_token(raw)}"
    return None


def problems_message(problems: list[ValueProblem]) -> str:
    """HubSpot's message for refused values: the problems as a JSON list, never a repr."""
    listed = json.dumps([p.legacy() for p in problems], separators=(",", ":"), ensure_ascii=False)
    return f"Property values were not valid: {listed}"


def validate_properties(
    properties: Any, catalogue: Mapping[str, HubSpotProperty]
) -> tuple[dict[str, str | None], list[ValueProblem]]:
    """The values to store (normalised strings, None to clear) and the problems of one input."""
    if not isinstance(properties, Mapping):
        return {}, [ValueProblem("properties", "INVALID_INPUT", "properties must be an object")]
    values: dict[str, str | None] = {}
    problems: list[ValueProblem] = []
    for name, raw in properties.items():
        prop = catalogue.get(name)
        if prop is None:
            problems.append(
                ValueProblem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
            )
            continue
        if prop.read_only or name in DERIVED:
            problems.append(
                ValueProblem(name, "READ_ONLY_VALUE", f'Property "{name}" is read-only')
            )
            continue
        if raw is None:
            continue  # accepted, and changes nothing: only "" clears
        value, refused = normalise(prop, raw)
        if refused is not None:
            problems.append(refused)
            continue
        values[name] = value
    return values, problems


def normalise(prop: HubSpotProperty, raw: Any) -> tuple[str | None, ValueProblem | None]:
    """The stored text for `raw` written to `prop` ("" clears it), or why HubSpot refuses it."""
    text = _as_text(raw)
    if text == "":
        return "", None
    if prop.type != "string" and text != _stripped(text):
        message = f'"{text}" includes leading or trailing whitespace.'
        return None, _problem(prop, "LEADING_TRAILING_WHITESPACE", message)
    checker = _CHECKS.get(prop.type, _string)
    return checker(prop, text)


def _as_text(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def _stripped(text: str) -> str:
    return text.strip().strip(_INVISIBLE).strip()


def _problem(prop: HubSpotProperty, code: str, message: str) -> ValueProblem:
    return ValueProblem(prop.name, code, message)


Checked = tuple[str | None, ValueProblem | None]


def _string(prop: HubSpotProperty, text: str) -> Checked:
    if len(text) > STRING_LIMIT:
        return None, _problem(
            prop,
            "INVALID_STRING_LENGTH",
            f"Value of length {len(text)} exceeds the maximum of {STRING_LIMIT} characters",
        )
    if prop.name == "email" and not _EMAIL.match(text.strip()):
        return None, _problem(prop, "INVALID_EMAIL", f"Email address {text} is invalid")
    return text, None


def _enumeration(prop: HubSpotProperty, text: str) -> Checked:
    # Multi-select (checkbox) values are ";"-joined; every part must be an option.
    parts = text.split(";") if prop.field_type == "checkbox" else [text]
    if all(part in prop.options for part in parts):
        return text, None
    allowed = ", ".join(prop.options)
    return None, _problem(
        prop, "INVALID_OPTION", f"{text} was not one of the allowed options: [{allowed}]"
    )


def _number(prop: HubSpotProperty, text: str) -> Checked:
    if _NUMBER.fullmatch(text):
        return text, None
    return None, _problem(prop, "INVALID_DECIMAL", f"{text} was not a valid number.")


def _bool(prop: HubSpotProperty, text: str) -> Checked:
    if text in ("true", "false"):
        return text, None
    return None, _problem(prop, "INVALID_BOOLEAN", f"{text} was not a valid boolean.")


def _datetime(prop: HubSpotProperty, text: str) -> Checked:
    moment = _epoch_ms(text)
    if moment is None:
        return None, _problem(prop, "INVALID_DATETIME", f"{text} was not a valid datetime.")
    return hubspot_iso(moment), None


def _date(prop: HubSpotProperty, text: str) -> Checked:
    if _DATE.fullmatch(text):
        try:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            return None, _problem(prop, "INVALID_DATE", f"{text} was not a valid date.")
        return day.strftime("%Y-%m-%d"), None
    moment = _epoch_ms(text)
    if moment is None:
        return None, _problem(prop, "INVALID_DATE", f"{text} was not a valid date.")
    if moment % _DAY_MS:
        return None, _problem(
            prop,
            "INVALID_DATE",
            f"{text} is at {hubspot_iso(moment)[11:]} UTC, not at midnight UTC: a date "
            "property holds a day only.",
        )
    return datetime.fromtimestamp(moment / 1000, UTC).strftime("%Y-%m-%d"), None


def _epoch_ms(text: str) -> int | None:
    """Epoch ms of an epoch-ms text or a zoned ISO 8601 text; None for anything else."""
    if _EPOCH_MS.fullmatch(text):
        return int(text)
    if "T" not in text:
        return None
    try:
        return parse_ms(text)
    except ValueError:
        return None


_CHECKS = {
    "string": _string,
    "phone_number": _string,
    "enumeration": _enumeration,
    "number": _number,
    "bool": _bool,
    "datetime": _datetime,
    "date": _date,
}

__all__ = [
    "DERIVED",
    "STRING_LIMIT",
    "ValueProblem",
    "json_token",
    "normalise",
    "problems_message",
    "unreadable_properties",
    "validate_properties",
]
