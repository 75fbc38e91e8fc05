"""The small vocabulary of the mapping file: canonical types, directions, sync rules, stages."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

CanonicalType = Literal["string", "integer", "number", "boolean", "date", "datetime"]
CANONICAL_TYPES: tuple[CanonicalType, ...] = get_args(CanonicalType)

Crm = Literal["hubspot", "salesforce"]
CRMS: tuple[Crm, ...] = get_args(Crm)
# Each CRM as people name it, for reasons and messages.
CRM_NAMES: dict[str, str] = {"hubspot": "HubSpot", "salesforce": "Salesforce"}

# leadsync's lifecycle stages, in funnel order; the write-back maps each to a CRM value.
CANONICAL_STAGES: tuple[str, ...] = (
    "lead",
    "mql",
    "sal",
    "sql",
    "opportunity",
    "customer",
    "recycled",
    "disqualified",
)


class Direction(StrEnum):
    """Which way a field's values travel between the CRMs and leadsync."""

    PULL = "pull"  # CRM -> leadsync only
    PUSH = "push"  # leadsync -> CRM only
    BOTH = "both"
    NONE = "none"  # mapped, but neither read nor written (switched off)

    @property
    def pulls(self) -> bool:
        return self in (Direction.PULL, Direction.BOTH)

    @property
    def pushes(self) -> bool:
        return self in (Direction.PUSH, Direction.BOTH)


class SyncRule(StrEnum):
    """Which value wins when both CRMs hold one for the same lead."""

    PREFER_HUBSPOT = "prefer_hubspot"
    PREFER_SALESFORCE = "prefer_salesforce"
    MOST_RECENT = "most_recent"
    PREFER_HUBSPOT_UNLESS_BLANK = "prefer_hubspot_unless_blank"
    PREFER_SALESFORCE_UNLESS_BLANK = "prefer_salesforce_unless_blank"
    NEVER_BLANK = "never_blank"

    @property
    def preferred_crm(self) -> Crm | None:
        """The CRM the rule names, which the field must therefore be bound to."""
        if self in (SyncRule.PREFER_HUBSPOT, SyncRule.PREFER_HUBSPOT_UNLESS_BLANK):
            return "hubspot"
        if self in (SyncRule.PREFER_SALESFORCE, SyncRule.PREFER_SALESFORCE_UNLESS_BLANK):
            return "salesforce"
        return None

    @property
    def unless_blank(self) -> bool:
        """Whether the rule's CRM gives way to the other where it holds a blank."""
        return self in (
            SyncRule.PREFER_HUBSPOT_UNLESS_BLANK,
            SyncRule.PREFER_SALESFORCE_UNLESS_BLANK,
        )

    @property
    def blank_wins(self) -> bool:
        """Whether a blank may win, and so be written over the other CRM's value: a person
        clearing the field is an edit like any other (prefer_X, most_recent)."""
        return self is SyncRule.MOST_RECENT or (
            self.preferred_crm is not None and not self.unless_blank
        )

    @classmethod
    def preferring(cls, crm: Crm) -> SyncRule:
        """The rule that takes `crm`'s value: the implied rule of a field bound to one CRM."""
        return cls.PREFER_HUBSPOT if crm == "hubspot" else cls.PREFER_SALESFORCE
