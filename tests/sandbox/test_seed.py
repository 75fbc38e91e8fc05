"""The seed generator: deterministic, true to both CRMs' schemas, and dirty in the ways promised."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from leadsync.sandbox.ids import is_salesforce_id, salesforce_id
from leadsync.sandbox.schema import (
    HUBSPOT_CONTACT_PROPERTIES,
    LEAD,
    LEAD_STATUSES,
    OPPORTUNITY,
    SANDBOX_OWNERS,
)
from leadsync.sandbox.seed import SeedData, generate

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)  # years before the wall clock: catches its use
LEADS = 3000
OVERLAP = 0.5

HUBSPOT_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
SALESFORCE_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000")
SALESFORCE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
PLAUSIBLE_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

PROPERTIES = {prop.name: prop for prop in HUBSPOT_CONTACT_PROPERTIES}
DATETIME_PROPERTIES = [name for name, prop in PROPERTIES.items() if prop.type == "datetime"]
NUMBER_PROPERTIES = [name for name, prop in PROPERTIES.items() if prop.type == "number"]
SALESFORCE_OWNER_IDS = {owner[1] for owner in SANDBOX_OWNERS}
CLOSED_STAGES = {"Closed Won", "Closed Lost"}


@pytest.fixture(scope="module")
def data() -> SeedData:
    return generate(seed=7, leads=LEADS, overlap=OVERLAP, now=NOW)


@pytest.fixture(scope="module")
def contacts(data: SeedData) -> list[dict[str, str]]:
    return [contact.properties for contact in data.hubspot_contacts]


@pytest.fixture(scope="module")
def leads_by_id(data: SeedData) -> dict[str, dict[str, Any]]:
    return {lead["Id"]: lead for lead in data.salesforce_leads}


def moment(text: str) -> datetime:
    """Either CRM's timestamp text as an aware datetime (strptime reads both "Z" and "+0000")."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def normalised(email: str) -> str:
    return email.strip().lower()


def is_plausible(email: str) -> bool:
    return PLAUSIBLE_EMAIL.fullmatch(email.strip()) is not None


def has_non_ascii(*names: str | None) -> bool:
    return any(name is not None and not name.isascii() for name in names)


def linked_pairs(
    contacts: list[dict[str, str]], leads_by_id: dict[str, dict[str, Any]]
) -> list[tuple[dict[str, str], dict[str, Any]]]:
    return [
        (props, leads_by_id[props["salesforceleadid"]])
        for props in contacts
        if "salesforceleadid" in props
    ]


# ---------------------------------------------------------------------------- determinism, size


def test_the_same_arguments_give_identical_data() -> None:
    first = generate(seed=11, leads=400, overlap=0.3, now=NOW)
    second = generate(seed=11, leads=400, overlap=0.3, now=NOW)
    assert first == second


def test_another_seed_gives_different_data() -> None:
    first = generate(seed=11, leads=400, overlap=0.3, now=NOW)
    second = generate(seed=12, leads=400, overlap=0.3, now=NOW)
    assert [c.properties for c in first.hubspot_contacts] != [
        c.properties for c in second.hubspot_contacts
    ]
    assert first.salesforce_leads != second.salesforce_leads


def test_a_naive_now_is_taken_as_utc() -> None:
    aware = generate(seed=3, leads=50, overlap=0.5, now=NOW)
    naive = generate(seed=3, leads=50, overlap=0.5, now=NOW.replace(tzinfo=None))
    assert aware == naive


@pytest.mark.parametrize(
    ("leads", "overlap"), [(1, 0.0), (1, 1.0), (7, 0.5), (250, 0.0), (250, 1.0), (999, 0.37)]
)
def test_each_crm_gets_exactly_the_requested_number_of_records(leads: int, overlap: float) -> None:
    data = generate(seed=5, leads=leads, overlap=overlap, now=NOW)
    assert len(data.hubspot_contacts) == leads
    assert len(data.salesforce_leads) == leads


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 1.0])
def test_the_overlap_share_of_contacts_is_found_in_salesforce_by_email(overlap: float) -> None:
    data = generate(seed=9, leads=2000, overlap=overlap, now=NOW)
    salesforce_emails = {
        normalised(lead["Email"]) for lead in data.salesforce_leads if lead["Email"] is not None
    }
    matched = sum(
        1
        for contact in data.hubspot_contacts
        if is_plausible(email := contact.properties.get("email", ""))
        and normalised(email) in salesforce_emails
    )
    share = matched / len(data.hubspot_contacts)
    # Missing, invalid and second addresses hide some shared people; none is invented.
    assert overlap * 0.85 <= share <= overlap


def test_zero_leads_gives_empty_data() -> None:
    assert generate(seed=1, leads=0, overlap=0.5, now=NOW) == SeedData([], [], [])


@pytest.mark.parametrize(("leads", "overlap"), [(-1, 0.5), (10, -0.1), (10, 1.5)])
def test_impossible_arguments_are_refused(leads: int, overlap: float) -> None:
    with pytest.raises(ValueError, match=r"leads|overlap"):
        generate(seed=1, leads=leads, overlap=overlap, now=NOW)


# ---------------------------------------------------------------------------- HubSpot


def test_hubspot_contact_ids_count_up_from_1001(data: SeedData) -> None:
    assert [contact.id for contact in data.hubspot_contacts] == list(range(1001, 1001 + LEADS))


def test_hubspot_ids_follow_creation_time(contacts: list[dict[str, str]]) -> None:
    created = [moment(props["createdate"]) for props in contacts]
    assert created == sorted(created)


def test_hubspot_values_are_all_strings_of_known_properties(
    contacts: list[dict[str, str]],
) -> None:
    for props in contacts:
        assert set(props) <= set(PROPERTIES)
        assert all(isinstance(value, str) for value in props.values()), props


def test_hubspot_enumerations_use_the_schema_options(contacts: list[dict[str, str]]) -> None:
    enumerations = [prop for prop in HUBSPOT_CONTACT_PROPERTIES if prop.type == "enumeration"]
    for props in contacts:
        for prop in enumerations:
            if prop.name in props:
                assert props[prop.name] in prop.options, (prop.name, props[prop.name])
    seen = {prop.name for prop in enumerations if any(prop.name in p for p in contacts)}
    assert seen == {prop.name for prop in enumerations}


def test_hubspot_numbers_are_whole_numbers_in_their_ranges(
    contacts: list[dict[str, str]],
) -> None:
    ceilings = {
        "hs_analytics_num_page_views": 300,
        "num_conversion_events": 10,
        "hs_email_click": 30,
        "webinars_attended": 3,
        "pricing_page_views": 8,
    }
    for props in contacts:
        for name in NUMBER_PROPERTIES:
            if name in props:
                assert 0 <= int(props[name]) <= ceilings[name], (name, props[name])
        if "annualrevenue" in props:
            assert int(props["annualrevenue"]) > 0


def test_page_views_are_skewed_towards_few(contacts: list[dict[str, str]]) -> None:
    views = sorted(int(props["hs_analytics_num_page_views"]) for props in contacts)
    median, mean = views[len(views) // 2], sum(views) / len(views)
    assert median < mean < max(views)
    assert max(views) > 150


def test_hubspot_datetimes_have_the_exact_format(contacts: list[dict[str, str]]) -> None:
    for props in contacts:
        for name in DATETIME_PROPERTIES:
            if name in props:
                assert HUBSPOT_STAMP.fullmatch(props[name]), (name, props[name])
                assert moment(props[name]).utcoffset() == timedelta(0)


def test_hubspot_times_are_ordered_and_within_nine_months(
    contacts: list[dict[str, str]],
) -> None:
    earliest = NOW - timedelta(days=280)
    for props in contacts:
        created = moment(props["createdate"])
        modified = moment(props["lastmodifieddate"])
        assert earliest <= created <= modified <= NOW
        for name in ("hs_analytics_last_visit_timestamp", "recent_conversion_date"):
            if name in props:
                assert created <= moment(props[name]) <= modified, name


def test_activity_dates_are_set_exactly_when_there_was_activity(
    contacts: list[dict[str, str]],
) -> None:
    for props in contacts:
        visited = props["hs_analytics_num_page_views"] != "0"
        converted = props["num_conversion_events"] != "0"
        assert ("hs_analytics_last_visit_timestamp" in props) == visited
        assert ("recent_conversion_date" in props) == converted


def test_lifecycle_stages_form_a_funnel(contacts: list[dict[str, str]]) -> None:
    stages = Counter(props["lifecyclestage"] for props in contacts)
    assert stages["subscriber"] + stages["lead"] > len(contacts) / 2
    assert min(stages["subscriber"], stages["lead"]) > stages["marketingqualifiedlead"]
    assert stages["marketingqualifiedlead"] > stages["salesqualifiedlead"]
    assert 0 < stages["opportunity"] < stages["salesqualifiedlead"]
    assert 0 < stages["customer"] < stages["salesqualifiedlead"]


def test_sales_qualified_and_later_contacts_have_an_owner(contacts: list[dict[str, str]]) -> None:
    late = {"salesqualifiedlead", "opportunity", "customer", "evangelist"}
    for props in contacts:
        if props["lifecyclestage"] in late:
            assert "hubspot_owner_id" in props
    early_owned = [
        p for p in contacts if p["lifecyclestage"] not in late and "hubspot_owner_id" in p
    ]
    assert early_owned, "some earlier contacts are owned too"


def test_some_optional_properties_are_left_unset(contacts: list[dict[str, str]]) -> None:
    for name in ("phone", "annualrevenue", "hs_lead_status", "numemployees", "email"):
        present = sum(name in props for props in contacts)
        assert 0 < present < len(contacts), name


def test_portal_defined_counters_stay_unset_rather_than_zero(
    contacts: list[dict[str, str]],
) -> None:
    for name in ("webinars_attended", "pricing_page_views"):
        values = [props[name] for props in contacts if name in props]
        assert values, name
        assert "0" not in values, name


def test_hubspot_emails_are_unique_ignoring_case_and_padding() -> None:
    # Large enough for broken addresses to collide ("jsmith@" from two J. Smiths) unless the
    # generator prevents it, as the HubSpot emulator would refuse the second contact.
    data = generate(seed=7, leads=20_000, overlap=0.5, now=NOW)
    emails = [
        normalised(contact.properties["email"])
        for contact in data.hubspot_contacts
        if "email" in contact.properties
    ]
    assert len(emails) == len(set(emails))


# ---------------------------------------------------------------------------- Salesforce


def test_lead_ids_are_the_first_n_salesforce_ids_in_creation_order(data: SeedData) -> None:
    ids = [lead["Id"] for lead in data.salesforce_leads]
    assert ids == [salesforce_id(LEAD.key_prefix, n) for n in range(1, LEADS + 1)]
    created = [moment(lead["CreatedDate"]) for lead in data.salesforce_leads]
    assert created == sorted(created)


def test_leads_carry_every_standard_field_and_no_leadsync_field(data: SeedData) -> None:
    standard = {field.name for field in LEAD.fields if not field.custom}
    for lead in data.salesforce_leads:
        assert set(lead) == standard


def test_lead_values_have_their_field_types(data: SeedData) -> None:
    for lead in data.salesforce_leads:
        assert lead["IsDeleted"] is False
        assert isinstance(lead["IsConverted"], bool)
        assert lead["NumberOfEmployees"] is None or isinstance(lead["NumberOfEmployees"], int)
        assert lead["AnnualRevenue"] is None or isinstance(lead["AnnualRevenue"], float)
        assert 1 <= (lead["NumberOfEmployees"] or 1) <= 50_000


def test_salesforce_picklist_values_are_in_the_schema(data: SeedData) -> None:
    for sobject, records in (
        (LEAD, data.salesforce_leads),
        (OPPORTUNITY, data.salesforce_opportunities),
    ):
        for field in sobject.fields:
            if field.type != "picklist" or field.custom:
                continue
            values = {record[field.name] for record in records} - {None}
            assert values <= set(field.picklist), (field.name, values - set(field.picklist))
            assert values, field.name


def test_required_lead_fields_are_never_empty(data: SeedData) -> None:
    for lead in data.salesforce_leads:
        for name in ("LastName", "Company", "Status", "OwnerId"):
            assert isinstance(lead[name], str)
            assert lead[name].strip(), name
        assert lead["OwnerId"] in SALESFORCE_OWNER_IDS


def test_salesforce_datetimes_have_the_exact_format_and_order(data: SeedData) -> None:
    for record in [*data.salesforce_leads, *data.salesforce_opportunities]:
        texts = [record[name] for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp")]
        for text in texts:
            assert SALESFORCE_STAMP.fullmatch(text), text
        created, modified, stamp = (moment(text) for text in texts)
        assert NOW - timedelta(days=280) <= created <= modified <= stamp <= NOW


def test_all_four_lead_statuses_occur(data: SeedData) -> None:
    assert {lead["Status"] for lead in data.salesforce_leads} == set(LEAD_STATUSES)


def test_converted_leads_and_only_they_carry_conversion_fields(data: SeedData) -> None:
    conversion_fields = (
        "ConvertedDate",
        "ConvertedAccountId",
        "ConvertedContactId",
        "ConvertedOpportunityId",
    )
    for lead in data.salesforce_leads:
        converted = lead["Status"] == "Closed - Converted"
        assert lead["IsConverted"] is converted
        if not converted:
            assert all(lead[name] is None for name in conversion_fields)
            continue
        assert SALESFORCE_DATE.fullmatch(lead["ConvertedDate"])
        converted_on = date.fromisoformat(lead["ConvertedDate"])
        assert moment(lead["CreatedDate"]).date() <= converted_on <= NOW.date()
        assert converted_on <= moment(lead["LastModifiedDate"]).date()
        for name, prefix in (("ConvertedAccountId", "001"), ("ConvertedContactId", "003")):
            assert is_salesforce_id(lead[name])
            assert lead[name].startswith(prefix)
        if lead["ConvertedOpportunityId"] is not None:
            assert is_salesforce_id(lead["ConvertedOpportunityId"])
            assert lead["ConvertedOpportunityId"].startswith("006")


def test_most_but_not_all_converted_leads_have_an_opportunity(data: SeedData) -> None:
    converted = [lead for lead in data.salesforce_leads if lead["IsConverted"]]
    with_opportunity = [lead for lead in converted if lead["ConvertedOpportunityId"]]
    assert len(converted) / 2 < len(with_opportunity) < len(converted)


def test_opportunities_match_the_leads_converted_into_them(
    data: SeedData, leads_by_id: dict[str, dict[str, Any]]
) -> None:
    by_opportunity = {
        lead["ConvertedOpportunityId"]: lead
        for lead in leads_by_id.values()
        if lead["ConvertedOpportunityId"] is not None
    }
    opportunity_ids = [opportunity["Id"] for opportunity in data.salesforce_opportunities]
    assert sorted(opportunity_ids) == sorted(by_opportunity)
    assert len(set(opportunity_ids)) == len(opportunity_ids)
    for opportunity in data.salesforce_opportunities:
        lead = by_opportunity[opportunity["Id"]]
        assert opportunity["IsDeleted"] is False
        assert opportunity["OwnerId"] == lead["OwnerId"]
        assert opportunity["Name"].startswith(lead["Company"])
        assert opportunity["Amount"] > 0
        assert moment(opportunity["CreatedDate"]) >= moment(lead["CreatedDate"])
        assert opportunity["CreatedDate"][:10] == lead["ConvertedDate"]


def test_opportunity_closed_and_won_flags_follow_the_stage(data: SeedData) -> None:
    for opportunity in data.salesforce_opportunities:
        stage = opportunity["StageName"]
        assert opportunity["IsClosed"] is (stage in CLOSED_STAGES)
        assert opportunity["IsWon"] is (stage == "Closed Won")
        close_date = date.fromisoformat(opportunity["CloseDate"])
        if opportunity["IsClosed"]:
            assert close_date <= NOW.date()
        else:
            assert close_date >= NOW.date()
    stages = {opportunity["StageName"] for opportunity in data.salesforce_opportunities}
    assert stages >= CLOSED_STAGES
    assert stages - CLOSED_STAGES, "open opportunities too"


def test_several_leads_share_one_systemmodstamp(data: SeedData) -> None:
    groups = Counter(lead["SystemModstamp"] for lead in data.salesforce_leads)
    tied = [lead for lead in data.salesforce_leads if groups[lead["SystemModstamp"]] > 1]
    assert max(groups.values()) >= 3
    assert len(tied) >= 0.02 * LEADS
    # A mass update cannot touch converted leads (CANNOT_UPDATE_CONVERTED_LEAD).
    assert not any(lead["IsConverted"] for lead in tied if groups[lead["SystemModstamp"]] > 2)


# ---------------------------------------------------------------------------- both CRMs


def test_salesforceleadid_links_point_at_the_same_person(
    contacts: list[dict[str, str]], leads_by_id: dict[str, dict[str, Any]]
) -> None:
    pairs = linked_pairs(contacts, leads_by_id)
    for props, lead in pairs:
        assert (props["firstname"], props["lastname"]) == (lead["FirstName"], lead["LastName"])
        assert props["salesforceownerid"] == lead["OwnerId"]
        short, long = sorted((props["company"], lead["Company"]), key=len)
        assert long.startswith(short)
        email = props.get("email")
        if email and lead["Email"] and is_plausible(email) and is_plausible(lead["Email"]):
            assert normalised(email) == normalised(lead["Email"])
    # About 60% of the shared people are linked by HubSpot's own integration.
    assert 0.5 < len(pairs) / (LEADS * OVERLAP) < 0.7


def test_linked_contacts_have_the_same_owner_in_both_crms(
    contacts: list[dict[str, str]], leads_by_id: dict[str, dict[str, Any]]
) -> None:
    owner_by_hubspot_id = {owner[0]: owner[1] for owner in SANDBOX_OWNERS}
    owned = [
        (props, lead)
        for props, lead in linked_pairs(contacts, leads_by_id)
        if "hubspot_owner_id" in props
    ]
    assert owned
    for props, lead in owned:
        assert owner_by_hubspot_id[props["hubspot_owner_id"]] == lead["OwnerId"]


def test_linked_records_differ_only_in_small_realistic_ways(
    contacts: list[dict[str, str]], leads_by_id: dict[str, dict[str, Any]]
) -> None:
    pairs = linked_pairs(contacts, leads_by_id)
    assert any(props["company"] != lead["Company"] for props, lead in pairs)
    assert any(
        "jobtitle" in props and lead["Title"] and props["jobtitle"] != lead["Title"]
        for props, lead in pairs
    )
    same_company = sum(props["company"] == lead["Company"] for props, lead in pairs)
    assert same_company > len(pairs) / 2


def test_linked_people_stand_at_the_same_point_of_the_funnel_in_both_crms(
    contacts: list[dict[str, str]], leads_by_id: dict[str, dict[str, Any]]
) -> None:
    # Salesforce converts a lead when a deal exists; HubSpot calls that person an opportunity
    # or later, and nothing earlier.
    dealt = {"opportunity", "customer", "evangelist"}
    pairs = linked_pairs(contacts, leads_by_id)
    for props, lead in pairs:
        assert lead["IsConverted"] is (props["lifecyclestage"] in dealt), props["lifecyclestage"]
    assert any(lead["IsConverted"] for _, lead in pairs)


def test_company_size_maps_to_the_same_hubspot_range_on_both_sides(
    contacts: list[dict[str, str]], leads_by_id: dict[str, dict[str, Any]]
) -> None:
    ranges = [(5, "1-5"), (25, "5-25"), (50, "25-50"), (100, "50-100"), (500, "100-500")]
    ranges += [(1000, "500-1000"), (10**9, "1000+")]
    compared = 0
    for props, lead in linked_pairs(contacts, leads_by_id):
        employees = lead["NumberOfEmployees"]
        if "numemployees" in props and employees is not None:
            expected = next(label for ceiling, label in ranges if employees <= ceiling)
            assert props["numemployees"] == expected
            compared += 1
    assert compared > 100
    assert len({props.get("numemployees") for props in contacts}) >= 7


# ---------------------------------------------------------------------------- dirty data


def test_some_emails_are_mixed_case_or_padded_on_both_sides(
    data: SeedData, contacts: list[dict[str, str]]
) -> None:
    def messy(email: str | None) -> bool:
        return email is not None and is_plausible(email) and email != normalised(email)

    hubspot = [props["email"] for props in contacts if messy(props.get("email"))]
    salesforce = [lead["Email"] for lead in data.salesforce_leads if messy(lead["Email"])]
    for emails in (hubspot, salesforce):
        assert len(emails) >= 0.01 * LEADS
        assert any(email != email.strip() for email in emails), "padded"
        assert any(email.strip() != email.strip().lower() for email in emails), "mixed case"


def test_some_emails_are_missing_on_both_sides(
    data: SeedData, contacts: list[dict[str, str]]
) -> None:
    assert sum("email" not in props for props in contacts) >= 0.01 * LEADS
    assert sum(lead["Email"] is None for lead in data.salesforce_leads) >= 0.01 * LEADS


def test_some_emails_are_invalid_in_each_of_three_ways(
    data: SeedData, contacts: list[dict[str, str]]
) -> None:
    for emails in (
        [props["email"] for props in contacts if "email" in props],
        [lead["Email"] for lead in data.salesforce_leads if lead["Email"] is not None],
    ):
        invalid = [email for email in emails if not is_plausible(email)]
        assert len(invalid) >= 0.005 * LEADS
        assert any(email.endswith("@") for email in invalid), "no domain"
        assert any("@" not in email for email in invalid), "no at sign"
        assert any(re.fullmatch(r"[^@]+@[^@.]+", email) for email in invalid), "no dot"


def test_salesforce_holds_some_people_twice_under_the_same_email(data: SeedData) -> None:
    by_email: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for lead in data.salesforce_leads:
        if lead["Email"] is not None:
            by_email[normalised(lead["Email"])].append(lead)
    twins = [
        group
        for group in by_email.values()
        if len(group) > 1 and len({(lead["FirstName"], lead["LastName"]) for lead in group}) == 1
    ]
    assert len(twins) >= 0.01 * LEADS


def test_hubspot_holds_some_people_twice_under_two_emails(contacts: list[dict[str, str]]) -> None:
    # Phone numbers are drawn per person, so a shared number with the same name is one person.
    by_person: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for props in contacts:
        if "phone" in props:
            by_person[(props["firstname"], props["lastname"], props["phone"])].append(props)
    twins = [
        group
        for group in by_person.values()
        if len(group) > 1 and len({normalised(p.get("email", "")) for p in group}) == len(group)
    ]
    assert len(twins) >= 0.005 * LEADS


def test_about_a_tenth_of_people_have_non_ascii_names(
    data: SeedData, contacts: list[dict[str, str]]
) -> None:
    hubspot = sum(has_non_ascii(p["firstname"], p["lastname"]) for p in contacts)
    salesforce = sum(
        has_non_ascii(lead["FirstName"], lead["LastName"]) for lead in data.salesforce_leads
    )
    for count in (hubspot, salesforce):
        assert 0.05 * LEADS <= count <= 0.2 * LEADS
