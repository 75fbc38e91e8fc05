"""Lead assignment rules and the `Sforce-Auto-Assign` header that applies them.

"If the header is not provided in the request, the default value is TRUE" (REST API guide,
Assignment Rule Header): a create or an update through the REST API runs the org's active
assignment rule unless the request says `FALSE`, and the rule's owner replaces the one the
request gave. A client that routes leads itself must send `Sforce-Auto-Assign: FALSE`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leadsync.sandbox.ids import eighteen_character_id, salesforce_id
from leadsync.sandbox.schema import INBOUND_QUEUE_ID, SANDBOX_OWNERS


@dataclass(frozen=True, slots=True)
class RuleEntry:
    """One entry of a lead assignment rule: leads whose `field` holds one of `values` go to
    `owner_id` (a user or a queue). Entries are tried in order; the first that holds wins."""

    field: str
    values: tuple[str, ...]
    owner_id: str


@dataclass(frozen=True, slots=True)
class AssignmentRule:
    """The org's active lead assignment rule (Setup > Lead Assignment Rules)."""

    rule_id: str
    entries: tuple[RuleEntry, ...]
    # Lead Settings' default lead owner: who gets a lead no entry matches.
    default_owner: str

    def owner_for(self, row: Mapping[str, Any]) -> str:
        for entry in self.entries:
            if str(row.get(entry.field) or "").casefold() in {v.casefold() for v in entry.values}:
                return entry.owner_id
        return self.default_owner


_NORTH_AMERICA = ("US", "USA", "United States", "CA", "Canada", "MX", "Mexico")
_EUROPE = ("GB", "UK", "United Kingdom", "DE", "Germany", "FR", "France", "NL", "Netherlands")
# A simple rule as an admin sets one up: by country, the rest to the inbound queue.
DEFAULT_ASSIGNMENT_RULE = AssignmentRule(
    rule_id=salesforce_id("01Q", 1),
    entries=(
        RuleEntry("Country", _NORTH_AMERICA, SANDBOX_OWNERS[1][1]),
        RuleEntry("Country", _EUROPE, SANDBOX_OWNERS[2][1]),
    ),
    default_owner=INBOUND_QUEUE_ID,
)


class AssignmentHeaderError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def rule_for_header(header: str | None, active: AssignmentRule | None) -> AssignmentRule | None:
    """The rule a request applies: TRUE (or no header) the active one, FALSE none, or the
    rule a valid AssignmentRule id names. Raises AssignmentHeaderError otherwise."""
    value = (header or "TRUE").strip()
    if value.upper() == "TRUE":
        return active
    if value.upper() == "FALSE":
        return None
    if not re.fullmatch(r"[0-9A-Za-z]{15}|[0-9A-Za-z]{18}", value):
        raise AssignmentHeaderError("MALFORMED_ID", f"Invalid assignment rule id: {value}")
    if active is None or eighteen_character_id(value) != active.rule_id:
        raise AssignmentHeaderError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
    return active
