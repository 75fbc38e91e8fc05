"""The fields leadsync writes back to each CRM: score, its parts, grade, reasons, model version,
the service levels in breach and the lifecycle stage.

HubSpot custom properties can be created through the API (`HubSpotConnector.ensure_properties`);
Salesforce custom fields cannot, so the Salesforce connector reports the missing ones with what
an admin must create. The mapping file may rename any of these; these are the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from leadsync.connectors.base import FieldType

LEADSYNC_STAGES: tuple[str, ...] = (
    "Lead",
    "MQL",
    "SAL",
    "SQL",
    "Opportunity",
    "Customer",
    "Recycled",
    "Disqualified",
)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A field leadsync needs, described well enough to create it by hand or by API."""

    name: str
    label: str
    type: FieldType
    description: str
    length: int | None = None
    options: tuple[str, ...] = ()
    # Salesforce: an External ID field, unique (what upserts find records by).
    external_id: bool = False

    def admin_instruction(self) -> str:
        """How a Salesforce admin creates it (Setup > Object Manager > Lead > Fields)."""
        if self.type is FieldType.NUMBER:
            kind = "Number(18, 0)"
        elif self.type is FieldType.TEXT:
            kind = f"Long Text Area({self.length})"
        elif self.type is FieldType.ENUMERATION:
            kind = f"Picklist (restricted) with values {', '.join(self.options)}"
        elif self.external_id:
            kind = f"Text({self.length}), Unique, External ID"
        else:
            kind = f"Text({self.length})"
        return f'{self.name}: label "{self.label}", type {kind}. {self.description}'


# (name stem, label, type, description, length): one table, named per CRM's conventions below.
_SCORE_FIELDS: tuple[tuple[str, str, FieldType, str, int | None], ...] = (
    (
        "score",
        "Lead score",
        FieldType.NUMBER,
        "leadsync's combined score (fit + engagement).",
        None,
    ),
    ("fit_score", "Fit score", FieldType.NUMBER, "The firmographic part of the score.", None),
    (
        "engagement_score",
        "Engagement score",
        FieldType.NUMBER,
        "The behavioural part of the score, after decay.",
        None,
    ),
    ("grade", "Lead grade", FieldType.STRING, "A letter grade for the score.", 10),
    (
        "score_reasons",
        "Score reasons",
        FieldType.TEXT,
        'Why the lead scored what it did, e.g. "+20 employees >= 200".',
        32768,
    ),
    (
        "model_version",
        "Scoring model version",
        FieldType.STRING,
        "The hash of the lead definition that produced the score.",
        64,
    ),
    (
        "sla_breaches",
        "SLA breaches",
        FieldType.STRING,
        "The service levels the lead is in breach of, by name; blank when none.",
        255,
    ),
)


def _salesforce_name(stem: str) -> str:
    return "Leadsync_" + "_".join(part.capitalize() for part in stem.split("_")) + "__c"


HUBSPOT_WRITEBACK_PROPERTIES: tuple[FieldSpec, ...] = tuple(
    FieldSpec(f"leadsync_{stem}", label, kind, description, length)
    for stem, label, kind, description, length in _SCORE_FIELDS
)

SALESFORCE_WRITEBACK_FIELDS: tuple[FieldSpec, ...] = (
    *(
        FieldSpec(_salesforce_name(stem), label, kind, description, length)
        for stem, label, kind, description, length in _SCORE_FIELDS
    ),
    FieldSpec(
        "Leadsync_Stage__c",
        "Lifecycle stage",
        FieldType.ENUMERATION,
        "leadsync's lifecycle stage of the lead.",
        options=LEADSYNC_STAGES,
    ),
    FieldSpec(
        "Leadsync_Id__c",
        "Leadsync ID",
        FieldType.STRING,
        "leadsync's id of the lead: what a handoff finds the lead it created by, so a "
        "create is never made twice. Tick Unique and External ID.",
        64,
        external_id=True,
    ),
)


# The mapping file names its write-back targets by role; these are the roles leadsync fills.
_ROLE_STEMS = {
    "score": "score",
    "fit_score": "fit_score",
    "engagement_score": "engagement_score",
    "grade": "grade",
    "reasons": "score_reasons",
    "model_version": "model_version",
    "sla_breaches": "sla_breaches",
}


def specs_for_targets(crm: str, targets: Mapping[str, str]) -> list[FieldSpec]:
    """The fields leadsync needs under the names a mapping gives them (role -> field name)."""
    defaults = HUBSPOT_WRITEBACK_PROPERTIES if crm == "hubspot" else SALESFORCE_WRITEBACK_FIELDS
    by_stem = {
        stem: spec
        for spec in defaults
        for stem in _ROLE_STEMS.values()
        if spec.name.lower().removeprefix("leadsync_").removesuffix("__c") == stem
    }
    specs = [
        replace(by_stem[stem], name=targets[role])
        for role, stem in _ROLE_STEMS.items()
        if role in targets
    ]
    for role, default_name in (("stage", "Leadsync_Stage__c"), ("handoff_key", "Leadsync_Id__c")):
        spec = next((spec for spec in defaults if spec.name == default_name), None)
        if spec is not None and role in targets:
            specs.append(replace(spec, name=targets[role]))
    if "handoff_link" in targets:
        specs.append(replace(HANDOFF_LINK, name=targets["handoff_link"]))
    return specs


# Where the other CRM keeps the id of the record a handoff created (HubSpot's own Salesforce
# integration names it `salesforceleadid`; a portal without that integration lacks it).
HANDOFF_LINK = FieldSpec(
    "salesforceleadid",
    "Salesforce Lead ID",
    FieldType.STRING,
    "The id of the Salesforce lead leadsync handed this contact off to.",
    18,
)
