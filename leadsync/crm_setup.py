"""`leadsync setup`: get both CRMs ready for leadsync's write-back fields.

HubSpot custom properties can be created through the API, so they are; Salesforce custom fields
cannot (that takes the Metadata API and an admin's say), so the missing ones are listed with
what an admin must create.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from leadsync.config import Config
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.connectors.writeback import (
    HUBSPOT_WRITEBACK_PROPERTIES,
    SALESFORCE_WRITEBACK_FIELDS,
    FieldSpec,
    specs_for_targets,
)
from leadsync.mapping.fields import CONTACT, FieldMap


@dataclass
class SetupReport:
    hubspot_created: list[str] = field(default_factory=list)
    hubspot_checked: bool = False
    salesforce_missing: list[FieldSpec] = field(default_factory=list)
    salesforce_checked: bool = False
    # Where converted leads' people are written ([writeback.salesforce.contact]).
    salesforce_contact_missing: list[FieldSpec] = field(default_factory=list)
    salesforce_contact_checked: bool = False

    @property
    def complete(self) -> bool:
        return not self.salesforce_missing and not self.salesforce_contact_missing

    def as_dict(self) -> dict[str, Any]:
        """`setup --json`: a CRM not checked (disabled) is null."""

        def missing(checked: bool, specs: Sequence[FieldSpec]) -> list[dict[str, Any]] | None:
            if not checked:
                return None
            return [
                {"name": spec.name, "label": spec.label, "how": spec.admin_instruction()}
                for spec in specs
            ]

        return {
            "complete": self.complete,
            "hubspot_created": self.hubspot_created if self.hubspot_checked else None,
            "salesforce_lead_missing": missing(self.salesforce_checked, self.salesforce_missing),
            "salesforce_contact_missing": missing(
                self.salesforce_contact_checked, self.salesforce_contact_missing
            ),
        }

    def text(self) -> str:
        lines = []
        if self.hubspot_checked:
            if self.hubspot_created:
                lines.append(
                    "HubSpot: created contact properties " + ", ".join(self.hubspot_created)
                )
            else:
                lines.append("HubSpot: every contact property leadsync writes exists")
        if self.salesforce_checked:
            lines.extend(_missing_lines("Lead", self.salesforce_missing))
        if self.salesforce_contact_checked:
            lines.extend(_missing_lines("Contact", self.salesforce_contact_missing))
        return "\n".join(lines)


def _missing_lines(object_name: str, missing: Sequence[FieldSpec]) -> list[str]:
    if not missing:
        return [f"Salesforce: every {object_name} field leadsync writes exists"]
    return [
        f"Salesforce: these {object_name} fields are missing; an admin must create them "
        f"(Setup > Object Manager > {object_name} > Fields & Relationships > New):",
        *(f"  - {spec.admin_instruction()}" for spec in missing),
    ]


def set_up_crms(config: Config, mapping: FieldMap | None = None) -> SetupReport:
    """Create HubSpot's write-back properties and list Salesforce's missing fields, under the
    names `mapping` gives them (leadsync's defaults without one)."""
    report = SetupReport()
    if config.model.hubspot.enabled:
        hubspot = HubSpotConnector(config.hubspot_connection())
        try:
            report.hubspot_created = hubspot.ensure_properties(_specs(mapping, "hubspot"))
            report.hubspot_checked = True
        finally:
            hubspot.close()
    if config.model.salesforce.enabled:
        salesforce = SalesforceConnector(config.salesforce_connection())
        try:
            report.salesforce_missing = salesforce.missing_writeback_fields(
                _specs(mapping, "salesforce")
            )
            report.salesforce_checked = True
            contact = _contact_specs(mapping)
            if contact:
                report.salesforce_contact_missing = salesforce.missing_writeback_fields(
                    contact, object_name=CONTACT
                )
                report.salesforce_contact_checked = True
        finally:
            salesforce.close()
    return report


def _specs(mapping: FieldMap | None, crm: str) -> Sequence[FieldSpec]:
    if mapping is None or crm not in mapping.writeback:
        return HUBSPOT_WRITEBACK_PROPERTIES if crm == "hubspot" else SALESFORCE_WRITEBACK_FIELDS
    return specs_for_targets(crm, mapping.writeback[crm].targets())


def _contact_specs(mapping: FieldMap | None) -> Sequence[FieldSpec]:
    """The Contact fields converted people are written to: the mapping's, else the defaults."""
    if mapping is None:
        return SALESFORCE_WRITEBACK_FIELDS
    targets = mapping.writeback.get("salesforce")
    if targets is None or not targets.contact:
        return ()
    return specs_for_targets("salesforce", targets.contact)
