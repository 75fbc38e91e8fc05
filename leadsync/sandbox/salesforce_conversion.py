"""What Salesforce's lead conversion makes of a lead: the Contact's values, copied from it.

Conversion copies the standard lead fields onto the new Contact (Salesforce Help, "Map Custom
Lead Fields for Lead Conversion": name, email, phone, title, address, lead source, owner and
the opt-outs map by default; Company goes to the Account, Status and Rating stay behind).
Custom fields travel only where an admin maps them, so leadsync's `Leadsync_*__c` fields start
blank on the Contact. A conversion that creates an Opportunity also ties the Contact to it by
an OpportunityContactRole, primary, with no role ("Opportunity Contact Roles are added by
default ... during lead conversion: Role blank, Primary yes"). The emulator's conversion and
the seed generator both take their Contacts and contact roles from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CONVERTED_STATUS = "Closed - Converted"

# Lead field -> the Contact field conversion copies it to.
CONTACT_FROM_LEAD: Mapping[str, str] = {
    "Salutation": "Salutation",
    "FirstName": "FirstName",
    "LastName": "LastName",
    "Title": "Title",
    "Email": "Email",
    "Phone": "Phone",
    "MobilePhone": "MobilePhone",
    "Fax": "Fax",
    "Street": "MailingStreet",
    "City": "MailingCity",
    "State": "MailingState",
    "PostalCode": "MailingPostalCode",
    "Country": "MailingCountry",
    "Description": "Description",
    "HasOptedOutOfEmail": "HasOptedOutOfEmail",
    "DoNotCall": "DoNotCall",
    "HasOptedOutOfFax": "HasOptedOutOfFax",
    "LeadSource": "LeadSource",
    "OwnerId": "OwnerId",
}

_FLAGS = ("HasOptedOutOfEmail", "DoNotCall", "HasOptedOutOfFax")


def contact_values(lead: Mapping[str, Any], account_id: str) -> dict[str, Any]:
    """The values of the Contact converting `lead` creates, under the Account `account_id`."""
    values: dict[str, Any] = {"AccountId": account_id}
    for lead_field, contact_field in CONTACT_FROM_LEAD.items():
        value = lead.get(lead_field)
        if contact_field in _FLAGS:
            values[contact_field] = bool(value)
        elif value is not None:
            values[contact_field] = value
    return values


def seeded_contact(
    lead: Mapping[str, Any], contact_id: str, account_id: str, stamp: str
) -> dict[str, Any]:
    """The full Contact record a seeded conversion made, as the org stores it: created and
    last changed at `stamp` (the conversion), with every other Contact field unset."""
    return {
        "Id": contact_id,
        "IsDeleted": False,
        "CreatedDate": stamp,
        "LastModifiedDate": stamp,
        "SystemModstamp": stamp,
        **dict.fromkeys(CONTACT_FROM_LEAD.values()),
        **contact_values(lead, account_id),
        "LastActivityDate": lead.get("LastActivityDate"),
    }


def contact_role_values(opportunity_id: str, contact_id: str) -> dict[str, Any]:
    """The OpportunityContactRole a conversion with an opportunity creates."""
    return {
        "OpportunityId": opportunity_id,
        "ContactId": contact_id,
        "Role": None,
        "IsPrimary": True,
    }


def seeded_contact_role(
    role_id: str, opportunity_id: str, contact_id: str, stamp: str
) -> dict[str, Any]:
    """The full OpportunityContactRole record a seeded conversion made, at `stamp`."""
    return {
        "Id": role_id,
        "IsDeleted": False,
        "CreatedDate": stamp,
        "LastModifiedDate": stamp,
        "SystemModstamp": stamp,
        **contact_role_values(opportunity_id, contact_id),
    }
