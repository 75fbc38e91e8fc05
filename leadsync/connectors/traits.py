"""Each CRM's traits (`CrmTraits`): what sets it apart and is known without calling it.

A connector's `traits` are these, with the batch size of its connection; plans, what-ifs and
explanations that run from the store alone, with no connector, read them here. This module is
light on purpose: it imports neither CRM's client library.
"""

from __future__ import annotations

from types import MappingProxyType

from leadsync.connectors.base import ContactRoles, CrmTraits

__all__ = ["HUBSPOT", "HUBSPOT_LIFECYCLE", "HUBSPOT_LIFECYCLE_ORDER", "SALESFORCE", "traits_of"]

HUBSPOT_LIFECYCLE = "lifecyclestage"
# HubSpot's default lifecycle stages, earliest first; a portal's own order comes from describe.
HUBSPOT_LIFECYCLE_ORDER: tuple[str, ...] = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)

HUBSPOT = CrmTraits(
    crm="hubspot",
    write_batch=100,  # contacts a batch update takes
    write_call="batch update",
    blank="",
    tie_rank=1,
    # HubSpot ignores a lifecycle stage moved back unless it is cleared first.
    stage_field=HUBSPOT_LIFECYCLE,
    stage_order=HUBSPOT_LIFECYCLE_ORDER,
    stage_clear="lifecycle clear",
    # A 207's error for an id no live contact has (archived, merged away).
    gone_errors=frozenset({"object_not_found"}),
    created_field="createdate",
)

_CONVERTED = "IsConverted"
_CONVERTED_REFERENCES = {"Contact": "ConvertedContactId", "Opportunity": "ConvertedOpportunityId"}

SALESFORCE = CrmTraits(
    crm="salesforce",
    # Records a composite/sobjects collection takes. The engine hands over no more at a time,
    # each batch checked just before and recorded just after: never one Bulk job.
    write_batch=200,
    write_call="collection update",
    blank=None,
    # Ties go to Salesforce: its values are entered by people who have spoken with the lead.
    tie_rank=0,
    # Salesforce refuses any update to a converted lead (CANNOT_UPDATE_CONVERTED_LEAD); the
    # person lives on in the Contact and Opportunity the lead names.
    frozen_flag=_CONVERTED,
    gone_errors=frozenset({"entity_is_deleted", "not_found"}),
    frozen_errors=frozenset({"cannot_update_converted_lead"}),
    created_field="CreatedDate",
    related_references=MappingProxyType(_CONVERTED_REFERENCES),
    # An Opportunity is tied to a Contact by its contact roles (primary first): a Contact
    # with an opportunity stands for a lead converted with it.
    contact_roles=ContactRoles(
        object_name="OpportunityContactRole",
        opportunity_field="OpportunityId",
        person_field="ContactId",
        primary_field="IsPrimary",
        converted_flag=_CONVERTED,
        converted_reference=_CONVERTED_REFERENCES["Opportunity"],
    ),
)

_TRAITS = {traits.crm: traits for traits in (HUBSPOT, SALESFORCE)}


def traits_of(crm: str) -> CrmTraits:
    """The traits of `crm` by its defaults (a connector's `traits` carry its connection's)."""
    try:
        return _TRAITS[crm]
    except KeyError:
        raise ValueError(f"unknown CRM {crm!r}; one of {', '.join(_TRAITS)}") from None
