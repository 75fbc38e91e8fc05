"""The field catalogues of the emulated CRMs: HubSpot contact properties and Salesforce sObjects.

One table per CRM drives everything that depends on a field's definition: validation of writes,
`describe` and the properties API, SOQL type checks and the seed generator. Names, types and
option values follow the real products' defaults (CRM_FACTS.md); leadsync's own write-back
fields are present on the Salesforce side because custom fields there can only be created by an
admin, not through the REST API.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from leadsync.sandbox.ids import salesforce_id

# --------------------------------------------------------------------------------------------
# HubSpot
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HubSpotProperty:
    """One contact property as `GET /crm/v3/properties/contacts` describes it."""

    name: str
    label: str
    type: str  # string | number | enumeration | datetime | date | bool
    field_type: str  # text | textarea | number | select | radio | booleancheckbox | date | ...
    options: tuple[str, ...] = ()
    read_only: bool = False
    group: str = "contactinformation"
    hubspot_defined: bool = True


# HubSpot's internal lifecycle values, in the order the stage may only move forward through.
LIFECYCLE_STAGES: tuple[str, ...] = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)

HUBSPOT_LEAD_STATUSES: tuple[str, ...] = (
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "BAD_TIMING",
)

HUBSPOT_ANALYTICS_SOURCES: tuple[str, ...] = (
    "ORGANIC_SEARCH",
    "PAID_SEARCH",
    "EMAIL_MARKETING",
    "SOCIAL_MEDIA",
    "REFERRALS",
    "OTHER_CAMPAIGNS",
    "DIRECT_TRAFFIC",
    "OFFLINE",
    "PAID_SOCIAL",
)

# A portal's personas: HubSpot names the values persona_1, persona_2, ... and portals label them.
HUBSPOT_PERSONAS: tuple[str, ...] = ("persona_1", "persona_2", "persona_3")

HUBSPOT_LANGUAGES: tuple[str, ...] = ("en", "de", "es", "fr", "ja", "nl", "pt-br", "sv")

# HubSpot keeps company size as a range, not a number.
HUBSPOT_EMPLOYEE_RANGES: tuple[str, ...] = (
    "1-5",
    "5-25",
    "25-50",
    "50-100",
    "100-500",
    "500-1000",
    "1000+",
)

# Owners exist in both CRMs; the sandbox seeds the same people with one id per CRM.
_OWNER_NAMES = (
    "Dana Whitfield",
    "Marco Bianchi",
    "Priya Raman",
    "Jonas Lindqvist",
    "Aiko Tanaka",
    "Sam O'Neill",
)
# Owners exist in both CRMs; the sandbox seeds the same people with one id per CRM:
# (HubSpot owner id, Salesforce user id, name).
SANDBOX_OWNERS: tuple[tuple[str, str, str], ...] = tuple(
    (str(71000001 + n), salesforce_id("005", 1 + n), name) for n, name in enumerate(_OWNER_NAMES)
)

_HS = HubSpotProperty

HUBSPOT_CONTACT_PROPERTIES: tuple[HubSpotProperty, ...] = (
    _HS("email", "Email", "string", "text"),
    _HS("firstname", "First Name", "string", "text"),
    _HS("lastname", "Last Name", "string", "text"),
    _HS("company", "Company Name", "string", "text"),
    _HS("jobtitle", "Job Title", "string", "text"),
    _HS("phone", "Phone Number", "string", "phonenumber"),
    _HS("mobilephone", "Mobile Phone Number", "string", "phonenumber"),
    _HS("fax", "Fax Number", "string", "phonenumber"),
    _HS("salutation", "Salutation", "string", "text"),
    _HS("website", "Website URL", "string", "text"),
    _HS("address", "Street Address", "string", "text"),
    _HS("city", "City", "string", "text"),
    _HS("state", "State/Region", "string", "text"),
    _HS("zip", "Postal Code", "string", "text"),
    _HS("country", "Country/Region", "string", "text"),
    _HS("industry", "Industry", "string", "text"),
    _HS("numemployees", "Number of Employees", "enumeration", "select", HUBSPOT_EMPLOYEE_RANGES),
    # A text property on contacts (a number on companies): HubSpot's default contact schema.
    _HS("annualrevenue", "Annual Revenue", "string", "text"),
    _HS("message", "Message", "string", "textarea"),
    _HS("hs_persona", "Persona", "enumeration", "radio", HUBSPOT_PERSONAS),
    _HS("hs_language", "Preferred language", "enumeration", "select", HUBSPOT_LANGUAGES),
    _HS("closedate", "Close Date", "datetime", "date", group="contactinformation"),
    _HS(
        "hs_email_optout",
        "Unsubscribed from all email",
        "bool",
        "booleancheckbox",
        ("true", "false"),
        read_only=True,
        group="emailinformation",
    ),
    _HS(
        "first_conversion_date",
        "First Conversion Date",
        "datetime",
        "date",
        read_only=True,
        group="conversioninformation",
    ),
    _HS(
        "notes_last_updated",
        "Last Activity Date",
        "datetime",
        "date",
        read_only=True,
        group="sales_properties",
    ),
    _HS("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", LIFECYCLE_STAGES),
    _HS("hs_lead_status", "Lead Status", "enumeration", "radio", HUBSPOT_LEAD_STATUSES),
    _HS(
        "hubspot_owner_id",
        "Contact owner",
        "enumeration",
        "select",
        tuple(owner[0] for owner in SANDBOX_OWNERS),
    ),
    _HS(
        "hs_analytics_source",
        "Original Source",
        "enumeration",
        "select",
        HUBSPOT_ANALYTICS_SOURCES,
        read_only=True,
        group="analyticsinformation",
    ),
    _HS(
        "hs_analytics_num_page_views",
        "Number of Pageviews",
        "number",
        "number",
        read_only=True,
        group="analyticsinformation",
    ),
    _HS(
        "hs_analytics_last_visit_timestamp",
        "Time of Last Session",
        "datetime",
        "date",
        read_only=True,
        group="analyticsinformation",
    ),
    _HS(
        "num_conversion_events",
        "Number of Form Submissions",
        "number",
        "number",
        read_only=True,
        group="conversioninformation",
    ),
    _HS(
        "recent_conversion_date",
        "Recent Conversion Date",
        "datetime",
        "date",
        read_only=True,
        group="conversioninformation",
    ),
    _HS(
        "hs_email_click",
        "Marketing emails clicked",
        "number",
        "number",
        read_only=True,
        group="emailinformation",
    ),
    # Portal-specific custom properties a marketing team typically adds for engagement.
    _HS(
        "webinars_attended",
        "Webinars attended",
        "number",
        "number",
        group="engagement",
        hubspot_defined=False,
    ),
    _HS(
        "pricing_page_views",
        "Pricing page views",
        "number",
        "number",
        group="engagement",
        hubspot_defined=False,
    ),
    # Written by HubSpot's own Salesforce integration (names unconfirmed, CRM_FACTS.md).
    _HS("salesforceleadid", "Salesforce Lead ID", "string", "text", group="salesforceinformation"),
    _HS(
        "salesforcecontactid",
        "Salesforce Contact ID",
        "string",
        "text",
        group="salesforceinformation",
    ),
    _HS(
        "salesforceownerid",
        "Salesforce Owner ID",
        "string",
        "text",
        group="salesforceinformation",
    ),
    _HS(
        "salesforcelastsynctime",
        "Last Salesforce Sync Time",
        "datetime",
        "date",
        group="salesforceinformation",
    ),
    _HS("createdate", "Create Date", "datetime", "date", read_only=True),
    _HS("lastmodifieddate", "Last Modified Date", "datetime", "date", read_only=True),
    _HS("hs_object_id", "Record ID", "number", "number", read_only=True),
)

# Always present on a returned contact, whatever `properties` asked for.
HUBSPOT_DEFAULT_PROPERTIES: tuple[str, ...] = (
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
)


# --------------------------------------------------------------------------------------------
# Salesforce
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SalesforceField:
    """One sObject field as `describe` reports it."""

    name: str
    label: str
    type: str  # id | string | email | phone | url | picklist | int | double | currency |
    #            boolean | date | datetime | reference | textarea
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    picklist: tuple[str, ...] = ()
    restricted_picklist: bool = False
    default_picklist_value: str | None = None
    reference_to: tuple[str, ...] = ()
    custom: bool = False
    precision: int = 0
    scale: int = 0
    # Fields the platform sets itself and that a create may not supply either.
    system: bool = False
    # An External ID field: upserts may name records by it (`composite/sobjects/Lead/F`).
    external_id: bool = False
    # No two live records hold the same value (case-insensitively, as Salesforce's default).
    unique: bool = False


@dataclass(frozen=True, slots=True)
class SalesforceObject:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: tuple[SalesforceField, ...] = field(default=())

    def field_named(self, name: str) -> SalesforceField | None:
        """Look a field up the way SOQL and the REST API do: case-insensitively."""
        lowered = name.lower()
        for candidate in self.fields:
            if candidate.name.lower() == lowered:
                return candidate
        return None


LEAD_STATUSES: tuple[str, ...] = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)

SALUTATIONS: tuple[str, ...] = ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")

LEAD_SOURCES: tuple[str, ...] = (
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
)

SALESFORCE_INDUSTRIES: tuple[str, ...] = (
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Entertainment",
    "Environmental",
    "Finance",
    "Food & Beverage",
    "Government",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Machinery",
    "Manufacturing",
    "Media",
    "Not For Profit",
    "Recreation",
    "Retail",
    "Shipping",
    "Technology",
    "Telecommunications",
    "Transportation",
    "Utilities",
    "Other",
)

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

OPPORTUNITY_TYPES: tuple[str, ...] = (
    "Existing Customer - Upgrade",
    "Existing Customer - Replacement",
    "Existing Customer - Downgrade",
    "New Customer",
)

FORECAST_CATEGORIES: tuple[str, ...] = ("Omitted", "Pipeline", "Best Case", "Commit", "Closed")

OPPORTUNITY_STAGES: tuple[str, ...] = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
)

# A default Salesforce org's stage → probability (%); forecast category follows the stage.
STAGE_PROBABILITY: dict[str, int] = {
    "Prospecting": 10,
    "Qualification": 10,
    "Needs Analysis": 20,
    "Proposal/Price Quote": 75,
    "Negotiation/Review": 90,
    "Closed Won": 100,
    "Closed Lost": 0,
}
STAGE_FORECAST: dict[str, str] = {"Closed Won": "Closed", "Closed Lost": "Omitted"}


def forecast_category(stage: str) -> str:
    return STAGE_FORECAST.get(stage, "Pipeline")


_SF = SalesforceField


def _system_field(name: str, label: str, kind: str, length: int = 0) -> SalesforceField:
    return SalesforceField(
        name, label, kind, length, nillable=False, createable=False, updateable=False, system=True
    )


def _system_fields() -> tuple[SalesforceField, ...]:
    return (
        _system_field("Id", "Record ID", "id", 18),
        _system_field("IsDeleted", "Deleted", "boolean"),
        _system_field("CreatedDate", "Created Date", "datetime"),
        _system_field("LastModifiedDate", "Last Modified Date", "datetime"),
        _system_field("SystemModstamp", "System Modstamp", "datetime"),
    )


LEAD = SalesforceObject(
    name="Lead",
    label="Lead",
    label_plural="Leads",
    key_prefix="00Q",
    fields=(
        *_system_fields(),
        _SF("Salutation", "Salutation", "picklist", 255, picklist=SALUTATIONS),
        _SF("FirstName", "First Name", "string", 40),
        _SF("LastName", "Last Name", "string", 80, nillable=False),
        _SF("Company", "Company", "string", 255, nillable=False),
        _SF("Title", "Title", "string", 128),
        _SF("Email", "Email", "email", 80),
        _SF("Phone", "Phone", "phone", 40),
        _SF("MobilePhone", "Mobile Phone", "phone", 40),
        _SF("Fax", "Fax", "phone", 40),
        _SF("Website", "Website", "url", 255),
        # The parts of the Address compound field, as an org without state and country
        # picklists has them (lengths as Salesforce's Lead object reference gives them).
        _SF("Street", "Street", "textarea", 255),
        _SF("City", "City", "string", 40),
        _SF("State", "State/Province", "string", 80),
        _SF("PostalCode", "Zip/Postal Code", "string", 20),
        _SF("Country", "Country", "string", 80),
        _SF("Description", "Description", "textarea", 32000),
        _SF("HasOptedOutOfEmail", "Email Opt Out", "boolean", nillable=False),
        _SF("DoNotCall", "Do Not Call", "boolean", nillable=False),
        _SF("HasOptedOutOfFax", "Fax Opt Out", "boolean", nillable=False),
        _SF("IsUnreadByOwner", "Unread By Owner", "boolean", nillable=False),
        _SF("EmailBouncedReason", "Email Bounced Reason", "string", 255),
        _SF("EmailBouncedDate", "Email Bounced Date", "datetime"),
        _SF("Industry", "Industry", "picklist", 255, picklist=SALESFORCE_INDUSTRIES),
        _SF("NumberOfEmployees", "Employees", "int", precision=8),
        _SF("AnnualRevenue", "Annual Revenue", "currency", precision=18, scale=0),
        _SF("LeadSource", "Lead Source", "picklist", 255, picklist=LEAD_SOURCES),
        _SF(
            "Status",
            "Status",
            "picklist",
            255,
            nillable=False,
            picklist=LEAD_STATUSES,
            restricted_picklist=True,
            default_picklist_value="Open - Not Contacted",
        ),
        _SF("Rating", "Rating", "picklist", 255, picklist=("Hot", "Warm", "Cold")),
        _SF("OwnerId", "Owner ID", "reference", 18, nillable=False, reference_to=("User",)),
        _SF(
            "IsConverted",
            "Converted",
            "boolean",
            nillable=False,
            createable=False,
            updateable=False,
        ),
        _SF("ConvertedDate", "Converted Date", "date", createable=False, updateable=False),
        # Set by Salesforce when an activity (call, task, event) is logged on the lead.
        _SF("LastActivityDate", "Last Activity", "date", createable=False, updateable=False),
        _SF(
            "ConvertedAccountId",
            "Converted Account ID",
            "reference",
            18,
            createable=False,
            updateable=False,
            reference_to=("Account",),
        ),
        _SF(
            "ConvertedContactId",
            "Converted Contact ID",
            "reference",
            18,
            createable=False,
            updateable=False,
            reference_to=("Contact",),
        ),
        _SF(
            "ConvertedOpportunityId",
            "Converted Opportunity ID",
            "reference",
            18,
            createable=False,
            updateable=False,
            reference_to=("Opportunity",),
        ),
        # leadsync's write-back fields, as an admin creates them from leadsync's instructions.
        # The lead's id in leadsync: what a handoff upserts by, so a create cut off before
        # leadsync recorded it is found again instead of made twice.
        _SF(
            "Leadsync_Id__c",
            "Leadsync ID",
            "string",
            64,
            custom=True,
            external_id=True,
            unique=True,
        ),
        _SF("Leadsync_Score__c", "Lead Score", "double", precision=18, scale=0, custom=True),
        _SF("Leadsync_Fit_Score__c", "Fit Score", "double", precision=18, scale=0, custom=True),
        _SF(
            "Leadsync_Engagement_Score__c",
            "Engagement Score",
            "double",
            precision=18,
            scale=0,
            custom=True,
        ),
        _SF("Leadsync_Grade__c", "Lead Grade", "string", 10, custom=True),
        _SF("Leadsync_Score_Reasons__c", "Score Reasons", "textarea", 32768, custom=True),
        _SF("Leadsync_Model_Version__c", "Scoring Model Version", "string", 64, custom=True),
        _SF("Leadsync_Sla_Breaches__c", "SLA Breaches", "string", 255, custom=True),
        _SF(
            "Leadsync_Stage__c",
            "Lifecycle Stage",
            "picklist",
            255,
            picklist=LEADSYNC_STAGES,
            restricted_picklist=True,
            custom=True,
        ),
    ),
)

OPPORTUNITY = SalesforceObject(
    name="Opportunity",
    label="Opportunity",
    label_plural="Opportunities",
    key_prefix="006",
    fields=(
        *_system_fields(),
        _SF("Name", "Name", "string", 120, nillable=False),
        _SF(
            "StageName",
            "Stage",
            "picklist",
            255,
            nillable=False,
            picklist=OPPORTUNITY_STAGES,
            restricted_picklist=True,
        ),
        _SF("Amount", "Amount", "currency", precision=18, scale=2),
        _SF("Probability", "Probability (%)", "percent", precision=3, scale=0),
        _SF(
            "ExpectedRevenue",
            "Expected Amount",
            "currency",
            precision=18,
            scale=2,
            createable=False,
            updateable=False,
        ),
        _SF("CloseDate", "Close Date", "date", nillable=False),
        _SF("Type", "Opportunity Type", "picklist", 255, picklist=OPPORTUNITY_TYPES),
        _SF("NextStep", "Next Step", "string", 255),
        _SF("LeadSource", "Lead Source", "picklist", 255, picklist=LEAD_SOURCES),
        _SF(
            "ForecastCategoryName",
            "Forecast Category",
            "picklist",
            255,
            picklist=FORECAST_CATEGORIES,
            restricted_picklist=True,
        ),
        _SF("Description", "Description", "textarea", 32000),
        _SF("IsClosed", "Closed", "boolean", nillable=False, createable=False, updateable=False),
        _SF("IsWon", "Won", "boolean", nillable=False, createable=False, updateable=False),
        _SF("OwnerId", "Owner ID", "reference", 18, nillable=False, reference_to=("User",)),
    ),
)

# leadsync's write-back fields: the Contact a lead becomes gets the same ones, because a
# converted lead is frozen and its person's score and stage live on in the Contact.
LEADSYNC_FIELDS: tuple[SalesforceField, ...] = tuple(spec for spec in LEAD.fields if spec.custom)


def _lead_fields(*names: str) -> tuple[SalesforceField, ...]:
    """Fields the Contact defines as the Lead does (same name, label, type and length)."""
    found = tuple(spec for name in names if (spec := LEAD.field_named(name)) is not None)
    assert len(found) == len(names), names
    return found


# The people and queues records are routed to. Users come from the org's setup, not the API.
USER = SalesforceObject(
    name="User",
    label="User",
    label_plural="Users",
    key_prefix="005",
    fields=(
        *_system_fields(),
        _SF("FirstName", "First Name", "string", 40, createable=False, updateable=False),
        _SF("LastName", "Last Name", "string", 80, createable=False, updateable=False),
        _SF("Name", "Full Name", "string", 121, createable=False, updateable=False),
        _SF("Email", "Email", "email", 128, createable=False, updateable=False),
        _SF("IsActive", "Active", "boolean", nillable=False, createable=False, updateable=False),
    ),
)

GROUP_TYPES: tuple[str, ...] = ("Regular", "Role", "Queue", "Organization")

GROUP = SalesforceObject(
    name="Group",
    label="Group",
    label_plural="Groups",
    key_prefix="00G",
    fields=(
        *_system_fields(),
        _SF("Name", "Name", "string", 40, createable=False, updateable=False),
        _SF("DeveloperName", "Developer Name", "string", 80, createable=False, updateable=False),
        _SF(
            "Type",
            "Type",
            "picklist",
            40,
            picklist=GROUP_TYPES,
            restricted_picklist=True,
            createable=False,
            updateable=False,
        ),
    ),
)

CONTACT = SalesforceObject(
    name="Contact",
    label="Contact",
    label_plural="Contacts",
    key_prefix="003",
    fields=(
        *_system_fields(),
        _SF("AccountId", "Account ID", "reference", 18, reference_to=("Account",)),
        *_lead_fields("Salutation", "FirstName", "LastName", "Title", "Email"),
        _SF("Phone", "Business Phone", "phone", 40),
        *_lead_fields("MobilePhone"),
        _SF("Fax", "Business Fax", "phone", 40),
        # The Mailing Address compound field's parts (Contact object reference).
        _SF("MailingStreet", "Mailing Street", "textarea", 255),
        _SF("MailingCity", "Mailing City", "string", 40),
        _SF("MailingState", "Mailing State/Province", "string", 80),
        _SF("MailingPostalCode", "Mailing Zip/Postal Code", "string", 20),
        _SF("MailingCountry", "Mailing Country", "string", 80),
        _SF("Description", "Contact Description", "textarea", 32000),
        *_lead_fields("HasOptedOutOfEmail", "DoNotCall", "HasOptedOutOfFax", "LeadSource"),
        *_lead_fields("OwnerId", "LastActivityDate"),
        *LEADSYNC_FIELDS,
    ),
)

TASK_STATUSES: tuple[str, ...] = ("Not Started", "In Progress", "Completed")

# An activity logged on a lead or contact ("worked"): Salesforce sets the lead's
# LastActivityDate from it.
TASK = SalesforceObject(
    name="Task",
    label="Task",
    label_plural="Tasks",
    key_prefix="00T",
    fields=(
        *_system_fields(),
        _SF("Subject", "Subject", "string", 255),
        _SF(
            "Status",
            "Status",
            "picklist",
            40,
            nillable=False,
            picklist=TASK_STATUSES,
            restricted_picklist=True,
            default_picklist_value="Not Started",
        ),
        _SF("ActivityDate", "Due Date Only", "date"),
        _SF("WhoId", "Name ID", "reference", 18, reference_to=("Lead", "Contact")),
        _SF("OwnerId", "Assigned To ID", "reference", 18, nillable=False, reference_to=("User",)),
    ),
)

# A default org's contact roles (Setup, "Contact Roles on Opportunities").
CONTACT_ROLES: tuple[str, ...] = (
    "Business User",
    "Decision Maker",
    "Economic Buyer",
    "Economic Decision Maker",
    "Evaluator",
    "Executive Sponsor",
    "Influencer",
    "Technical Buyer",
    "Other",
)

# Who an Opportunity is with: a Contact and the role they play in the deal, at most one of an
# opportunity's roles primary (setting another primary clears it). A role's opportunity is
# fixed once created (OpportunityId is not updateable); its contact may change.
OPPORTUNITY_CONTACT_ROLE = SalesforceObject(
    name="OpportunityContactRole",
    label="Opportunity Contact Role",
    label_plural="Opportunity Contact Role",
    key_prefix="00K",
    fields=(
        *_system_fields(),
        _SF(
            "OpportunityId",
            "Opportunity ID",
            "reference",
            18,
            nillable=False,
            updateable=False,
            reference_to=("Opportunity",),
        ),
        _SF(
            "ContactId",
            "Contact ID",
            "reference",
            18,
            nillable=False,
            reference_to=("Contact",),
        ),
        _SF("Role", "Role", "picklist", 40, picklist=CONTACT_ROLES),
        _SF("IsPrimary", "Primary", "boolean", nillable=False),
    ),
)

SALESFORCE_OBJECTS: dict[str, SalesforceObject] = {
    obj.name.lower(): obj
    for obj in (LEAD, CONTACT, OPPORTUNITY, OPPORTUNITY_CONTACT_ROLE, TASK, USER, GROUP)
}

# The queue the default assignment rule sends leads to that no entry of it routes.
INBOUND_QUEUE_ID = salesforce_id("00G", 1)
# The user the API logs in as: the owner of records created without one.
API_USER_ID = SANDBOX_OWNERS[0][1]
# A user who left: routing to them is refused (INACTIVE_OWNER_OR_USER).
INACTIVE_USER_ID = salesforce_id("005", len(SANDBOX_OWNERS) + 1)


def org_setup_records() -> dict[str, list[dict[str, Any]]]:
    """The users and queues every sandbox org has, whatever its seed: the seeded owners
    (active), one user who left, and the "Inbound Leads" queue."""
    stamp = "2024-01-01T00:00:00.000+0000"
    system = {"IsDeleted": False, "CreatedDate": stamp, "LastModifiedDate": stamp}
    users = []
    people = [(owner[1], owner[2], True) for owner in SANDBOX_OWNERS]
    people.append((INACTIVE_USER_ID, "Lee Former", False))
    for user_id, name, active in people:
        first, _, last = name.partition(" ")
        users.append(
            {
                "Id": user_id,
                **system,
                "SystemModstamp": stamp,
                "FirstName": first,
                "LastName": last,
                "Name": name,
                "Email": f"{first.lower()}@sandbox.example",
                "IsActive": active,
            }
        )
    queue = {
        "Id": INBOUND_QUEUE_ID,
        **system,
        "SystemModstamp": stamp,
        "Name": "Inbound Leads",
        "DeveloperName": "Inbound_Leads",
        "Type": "Queue",
    }
    return {"User": users, "Group": [queue]}


def salesforce_object(
    name: str, objects: dict[str, SalesforceObject] | None = None
) -> SalesforceObject | None:
    """The sObject called `name` among `objects` (default: the full catalogue), matched
    case-insensitively as Salesforce does."""
    return (SALESFORCE_OBJECTS if objects is None else objects).get(name.lower())


def salesforce_objects(*, custom_fields: bool = True) -> dict[str, SalesforceObject]:
    """The catalogue an org serves. Without custom fields it is an org where no admin has yet
    created leadsync's write-back fields: they are then unknown to describe, writes and SOQL."""
    if custom_fields:
        return dict(SALESFORCE_OBJECTS)
    return {
        key: replace(obj, fields=tuple(spec for spec in obj.fields if not spec.custom))
        for key, obj in SALESFORCE_OBJECTS.items()
    }
