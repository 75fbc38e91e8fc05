"""mapping.toml: the shipped example, every kind of mistake (file, dotted key, line; all at once;
never a traceback), and `check_against` a CRM's describe."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from leadsync.connectors.base import FieldInfo, FieldType, ObjectDescription
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.connectors.settings import HubSpotConnection, SalesforceConnection
from leadsync.connectors.writeback import LEADSYNC_STAGES
from leadsync.mapping.fields import (
    FieldMap,
    WritebackTargets,
    check_against,
    load_mapping,
)
from leadsync.mapping.transforms import TransformError
from leadsync.mapping.types import CANONICAL_STAGES, Direction, SyncRule
from leadsync.problems import ConfigError, ConfigProblem
from leadsync.sandbox import Sandbox

EXAMPLE = Path(__file__).resolve().parents[2] / "leadsync" / "examples" / "mapping.toml"

# A valid file the mistakes below are added to.
BASE = """\
identity_field = "email"

[fields.email]
type = "string"
direction = "both"
rule = "prefer_salesforce_unless_blank"

[fields.email.hubspot]
field = "email"
transforms = ["trim", "lower"]

[fields.email.salesforce]
field = "Email"
transforms = ["trim", "lower"]
"""

# The line a problem must point at: the line marked "# <-", or the line after "# v" (a comment
# after a [table] header would hide the header from the line finder).
MARKER = "# <-"
NEXT_LINE = "# v"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as raised:
        load_mapping(path)
    return raised.value.problems


def marked_line(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if MARKER in line:
            return number
        if line == NEXT_LINE:
            return number + 1
    return None


# ================================================================================ the example


@pytest.fixture(scope="module")
def example() -> FieldMap:
    return load_mapping(EXAMPLE)


def test_the_example_loads_without_problems(example: FieldMap) -> None:
    assert example.identity_field == "email"
    assert example.fields["email"].required is True
    assert set(example.writeback) == {"hubspot", "salesforce"}


# canonical field -> (type, direction, HubSpot property, Salesforce field), as the issue asks.
EXPECTED_FIELDS: dict[str, tuple[str, Direction, str | None, str | None]] = {
    "email": ("string", Direction.BOTH, "email", "Email"),
    "first_name": ("string", Direction.BOTH, "firstname", "FirstName"),
    "last_name": ("string", Direction.BOTH, "lastname", "LastName"),
    "company": ("string", Direction.BOTH, "company", "Company"),
    "title": ("string", Direction.BOTH, "jobtitle", "Title"),
    "phone": ("string", Direction.BOTH, "phone", "Phone"),
    "website": ("string", Direction.BOTH, "website", "Website"),
    "country": ("string", Direction.BOTH, "country", "Country"),
    "industry": ("string", Direction.BOTH, "industry", "Industry"),
    "employees": ("integer", Direction.BOTH, "numemployees", "NumberOfEmployees"),
    "annual_revenue": ("number", Direction.BOTH, "annualrevenue", "AnnualRevenue"),
    "lead_source": ("string", Direction.PULL, "hs_analytics_source", None),
    "hubspot_lifecycle": ("string", Direction.PULL, "lifecyclestage", None),
    "lead_status": ("string", Direction.PULL, "hs_lead_status", None),
    "sf_status": ("string", Direction.PULL, None, "Status"),
    "rating": ("string", Direction.PULL, None, "Rating"),
    "owner_id": ("string", Direction.PULL, None, "OwnerId"),
    "is_converted": ("boolean", Direction.PULL, None, "IsConverted"),
    "converted_opportunity_id": ("string", Direction.PULL, None, "ConvertedOpportunityId"),
    "opportunity_stage": ("string", Direction.PULL, None, "StageName"),
    "page_views": ("integer", Direction.PULL, "hs_analytics_num_page_views", None),
    "form_submissions": ("integer", Direction.PULL, "num_conversion_events", None),
    "email_clicks": ("integer", Direction.PULL, "hs_email_click", None),
    "webinars_attended": ("integer", Direction.PULL, "webinars_attended", None),
    "pricing_page_views": ("integer", Direction.PULL, "pricing_page_views", None),
    "last_activity_at": ("datetime", Direction.PULL, "hs_analytics_last_visit_timestamp", None),
    "last_conversion_at": ("datetime", Direction.PULL, "recent_conversion_date", None),
    "created_at": ("datetime", Direction.PULL, "createdate", "CreatedDate"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FIELDS))
def test_the_example_maps_each_field_the_issue_names(example: FieldMap, name: str) -> None:
    kind, direction, hubspot, salesforce = EXPECTED_FIELDS[name]
    mapping = example.fields[name]
    assert (mapping.type, mapping.direction) == (kind, direction)
    assert (mapping.hubspot.field if mapping.hubspot else None) == hubspot
    assert (mapping.salesforce.field if mapping.salesforce else None) == salesforce


def test_the_example_reads_the_opportunity_stage_from_the_opportunity(example: FieldMap) -> None:
    binding = example.fields["opportunity_stage"].salesforce
    assert binding is not None
    assert binding.object == "Opportunity"
    assert example.crm_fields("salesforce", object="Opportunity") == ("StageName",)
    assert "StageName" not in example.crm_fields("salesforce")


def test_the_example_hands_the_definition_loader_every_type(example: FieldMap) -> None:
    types = example.canonical_types()
    assert types["employees"] == "integer"
    assert types["last_activity_at"] == "datetime"
    assert set(types) == set(example.fields)


def test_the_example_pulls_every_field_it_maps_and_writes(example: FieldMap) -> None:
    hubspot = example.crm_fields("hubspot")
    assert {"email", "numemployees", "leadsync_score", "lifecyclestage"} <= set(hubspot)
    assert len(hubspot) == len(set(hubspot))
    assert {"Leadsync_Stage__c", "Status", "OwnerId"} <= set(example.crm_fields("salesforce"))


def test_the_example_writes_converted_people_to_their_contacts(example: FieldMap) -> None:
    salesforce = example.writeback["salesforce"]
    assert salesforce.contact["stage"] == "Leadsync_Stage__c"
    contact = salesforce.contact_targets()
    assert contact.status_field is None
    assert contact.stage_values == salesforce.stage_values
    assert set(contact.targets()) == set(salesforce.contact)
    assert "Leadsync_Score__c" in example.crm_fields("salesforce", object="Contact")


def test_the_example_writes_every_stage_to_both_crms(example: FieldMap) -> None:
    hubspot, salesforce = example.writeback["hubspot"], example.writeback["salesforce"]
    assert hubspot.stage == "lifecyclestage"
    assert hubspot.stage_values["sal"] == "marketingqualifiedlead"  # HubSpot has no SAL
    assert hubspot.stage_values["disqualified"] == "other"
    assert salesforce.stage == "Leadsync_Stage__c"
    # leadsync's own stage labels, one for one.
    assert [salesforce.stage_values[stage] for stage in CANONICAL_STAGES] == list(LEADSYNC_STAGES)
    assert salesforce.status_field == "Status"
    # Only disqualified: rewriting Status on recycle would undo the recycle rule next run.
    assert dict(salesforce.status_values) == {"disqualified": "Closed - Not Converted"}


def test_the_example_employee_ranges_go_both_ways(example: FieldMap) -> None:
    employees = example.fields["employees"]
    assert employees.read("hubspot", "100-500") == 300
    assert employees.write("hubspot", 420) == "100-500"
    assert employees.write("hubspot", 5000) == "1000+"
    assert employees.read("salesforce", 42) == 42


def test_the_example_country_map_reads_codes_and_writes_them(example: FieldMap) -> None:
    country = example.fields["country"]
    assert country.read("salesforce", "US") == "United States"
    assert country.read("salesforce", "United States") == "United States"
    assert country.read("hubspot", "United States") == "United States"
    assert country.write("salesforce", "United States") == "US"
    assert country.write("hubspot", "United States") == "United States"
    assert country.read("salesforce", "Atlantis") == "Atlantis"  # not strict: passes on


def test_the_example_reads_each_crm_timestamp_format(example: FieldMap) -> None:
    created = example.fields["created_at"]
    expected = datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert created.read("salesforce", "2024-05-01T10:00:00.000+0000") == expected
    assert created.read("hubspot", "2024-05-01T10:00:00.000Z") == expected
    assert created.read("hubspot", "1714557600000") == expected


def test_a_field_transform_error_names_the_canonical_field(example: FieldMap) -> None:
    with pytest.raises(TransformError) as raised:
        example.fields["annual_revenue"].read("hubspot", "12k")
    assert raised.value.field == "annual_revenue (hubspot.annualrevenue)"
    assert "annual_revenue (hubspot.annualrevenue)" in str(raised.value)


def test_counts_never_set_read_as_zero(example: FieldMap) -> None:
    assert example.fields["webinars_attended"].read("hubspot", None) == 0


def test_what_a_mapping_compiles_is_built_once_per_mapping_object() -> None:
    mapping = load_mapping(EXAMPLE)
    built: list[FieldMap] = []

    def build(field_map: FieldMap) -> int:
        built.append(field_map)
        return len(built)

    assert (mapping.compiled(build), mapping.compiled(build)) == (1, 1)
    copy = replace(mapping, path="elsewhere")
    assert copy.compiled(build) == 2
    assert built == [mapping, copy]


def test_a_mapping_still_pickles_once_read_written_and_compiled() -> None:
    mapping = load_mapping(EXAMPLE)
    employees = mapping.fields["employees"]
    assert employees.read("hubspot", "50-100") == employees.read("hubspot", " 50-100 ")
    assert employees.write("hubspot", 60) == "50-100"
    assert mapping.compiled(lambda field_map: len(field_map.fields)) == len(mapping.fields)

    copy = pickle.loads(pickle.dumps(mapping))  # noqa: S301 - our own bytes

    assert copy == mapping
    assert copy.fields["employees"].read("hubspot", "50-100") == employees.read("hubspot", "50-100")
    assert copy.fields["employees"].write("hubspot", 60) == "50-100"


# ================================================================================ mistakes

# (id, text added to BASE, or a whole file when it starts with "!", dotted key, message part).
# The marked line is the line the problem must point at; no mark: no line.
MISTAKES: list[tuple[str, str, str, str]] = [
    (
        "bad TOML",
        '!identity_field = "email"\n[fields.email  # <-\n',
        "",
        "not valid TOML",
    ),
    (
        "unknown top-level key",
        "!" + 'colour = "blue"  # <-\n' + BASE,
        "colour",
        "unknown key",
    ),
    (
        "unknown key in a field",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\ncolour = "blue"  # <-\n'
        '[fields.size.hubspot]\nfield = "numemployees"\n',
        "fields.size.colour",
        "unknown key",
    ),
    (
        # TOML may spell U+0000 (\\u0000); no CRM field and no PostgreSQL text can hold it.
        "NUL character in a value",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees\\u0000"  # <-\n',
        "fields.size.hubspot.field",
        "NUL character (U+0000)",
    ),
    (
        "NUL character in a key",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\n'
        '[fields.size.value_map]\n"a\\u0000b" = 1  # <-\n',
        'fields.size.value_map."a\\u0000b"',
        "NUL character (U+0000)",
    ),
    (
        "unknown key in a binding",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\ntransfroms = ["trim"]  # <-\n',
        "fields.size.hubspot.transfroms",
        "unknown key",
    ),
    (
        "missing key in a binding",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '# v\n[fields.size.hubspot]\ntransforms = ["trim"]\n',
        "fields.size.hubspot.field",
        "missing: this key is required",
    ),
    (
        "wrong type: text for a boolean",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\nrequired = "yes"  # <-\n'
        '[fields.size.hubspot]\nfield = "numemployees"\n',
        "fields.size.required",
        "valid boolean",
    ),
    (
        "wrong type: text for a list",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\ntransforms = "trim"  # <-\n',
        "fields.size.hubspot.transforms",
        "valid list",
    ),
    (
        "unknown canonical type",
        '[fields.size]\ntype = "money"  # <-\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\n',
        "fields.size.type",
        "not 'money'",
    ),
    (
        "unknown transform",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\ntransforms = ["strip"]  # <-\n',
        "fields.size.hubspot.transforms",
        "unknown transform 'strip'",
    ),
    (
        "type transform unfit for the type",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\ntransforms = ["date"]  # <-\n',
        "fields.size.hubspot.transforms",
        "'date' does not fit the field's type, integer",
    ),
    (
        "two case transforms",
        '[fields.name]\ntype = "string"\ndirection = "pull"\n'
        '[fields.name.hubspot]\nfield = "firstname"\ntransforms = ["lower", "title"]  # <-\n',
        "fields.name.hubspot.transforms",
        "pick one of lower, title",
    ),
    (
        "value_map listed without a value map",
        '[fields.name]\ntype = "string"\ndirection = "pull"\n'
        '[fields.name.hubspot]\nfield = "firstname"\ntransforms = ["value_map"]  # <-\n',
        "fields.name.hubspot.transforms",
        "'value_map' is listed but the binding has no value_map",
    ),
    (
        "bad direction",
        '[fields.size]\ntype = "integer"\ndirection = "sideways"  # <-\n'
        '[fields.size.hubspot]\nfield = "numemployees"\n',
        "fields.size.direction",
        "'pull', 'push', 'both' or 'none', not 'sideways'",
    ),
    (
        "bad rule",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\nrule = "latest"  # <-\n'
        '[fields.size.hubspot]\nfield = "numemployees"\n',
        "fields.size.rule",
        "not 'latest'",
    ),
    (
        "rule for a CRM the field is not mapped to",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        'rule = "prefer_salesforce_unless_blank"  # <-\n'
        '[fields.size.hubspot]\nfield = "numemployees"\n',
        "fields.size.rule",
        "prefer_salesforce_unless_blank needs a [salesforce] binding",
    ),
    (
        "no rule for a field in both CRMs",
        '# v\n[fields.size]\ntype = "integer"\ndirection = "both"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\n'
        '[fields.size.salesforce]\nfield = "NumberOfEmployees"\n',
        "fields.size.rule",
        "required when both CRMs are mapped",
    ),
    (
        "a field mapped to no CRM",
        '# v\n[fields.size]\ntype = "integer"\ndirection = "pull"\n',
        "fields.size",
        "map it to a [hubspot] or [salesforce] field",
    ),
    (
        "a field name in capitals",
        '# v\n[fields.Size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.Size.hubspot]\nfield = "numemployees"\n',
        "fields.Size",
        "lowercase letters",
    ),
    (
        "value map value unfit for the type",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\n'
        '[fields.size.hubspot.value_map]\n"1-5" = "small"  # <-\n',
        "fields.size.hubspot.value_map.1-5",
        "'1-5' maps to 'small', which does not fit type integer",
    ),
    (
        "value map key its own case transform never produces",
        '[fields.land]\ntype = "string"\ndirection = "pull"\n'
        '[fields.land.hubspot]\nfield = "country"\ntransforms = ["trim", "lower"]\n'
        '[fields.land.hubspot.value_map]\nUS = "United States"  # <-\n',
        "fields.land.hubspot.value_map.US",
        "'US' can never match: values pass trim, lower first",
    ),
    (
        "value map and ranges together",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\n'
        'ranges = [{ value = "1-5", canonical = 3 }]\n'
        'value_map = { "1-5" = 3 }  # <-\n',
        "fields.size.hubspot.value_map",
        "use value_map or ranges, not both",
    ),
    (
        "push value map key unfit for the type",
        '[fields.size]\ntype = "integer"\ndirection = "push"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\n'
        'value_map = { "1-5" = 3 }\npush_value_map = { "three" = "1-5" }  # <-\n',
        "fields.size.hubspot.push_value_map.three",
        "'three' is not a integer value",
    ),
    (
        "default unfit for the type",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\ndefault = "none"  # <-\n',
        "fields.size.hubspot.default",
        "'none', which does not fit type integer",
    ),
    (
        "ranges for a text field",
        '[fields.size]\ntype = "string"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\n'
        'ranges = [{ value = "1-5", canonical = 3 }]  # <-\n',
        "fields.size.hubspot.ranges",
        "ranges turn text into numbers",
    ),
    (
        "ranges out of order",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\nranges = [  # <-\n'
        '  { value = "5-25", up_to = 25, canonical = 15 },\n'
        '  { value = "1-5", up_to = 5, canonical = 3 },\n]\n',
        "fields.size.hubspot.ranges",
        "smallest first",
    ),
    (
        # nan compares false with every number: no value would ever land in its range.
        "a range up to nan",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\nranges = [\n'
        '  { value = "1-5", up_to = nan, canonical = 3 },  # <-\n'
        '  { value = "5-25", canonical = 15 },\n]\n',
        "fields.size.hubspot.ranges[0].up_to",
        "finite number",
    ),
    (
        "a range without up_to before the last",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\nranges = [  # <-\n'
        '  { value = "1-5", canonical = 3 },\n'
        '  { value = "5-25", up_to = 25, canonical = 15 },\n]\n',
        "fields.size.hubspot.ranges",
        "only the last range may leave out up_to",
    ),
    (
        "a range's canonical value outside it",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\nranges = [  # <-\n'
        '  { value = "1-5", up_to = 5, canonical = 3 },\n'
        '  { value = "5-25", up_to = 25, canonical = 40 },\n]\n',
        "fields.size.hubspot.ranges",
        "canonical 40 lies outside its own range '5-25'",
    ),
    (
        "a range's canonical value unfit for the type",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\n'
        'ranges = [{ value = "1-5", canonical = 2.5 }]  # <-\n',
        "fields.size.hubspot.ranges.0.canonical",
        "2.5, which does not fit type integer",
    ),
    (
        "unknown time zone",
        '[fields.seen]\ntype = "datetime"\ndirection = "pull"\n'
        '[fields.seen.hubspot]\nfield = "createdate"\ntime_zone = "Mars/Olympus"  # <-\n',
        "fields.seen.hubspot.time_zone",
        "unknown time zone 'Mars/Olympus'",
    ),
    (
        "time zone on a field that is not a date",
        '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
        '[fields.size.hubspot]\nfield = "numemployees"\ntime_zone = "UTC"  # <-\n',
        "fields.size.hubspot.time_zone",
        "applies to date and datetime fields only",
    ),
    (
        "pushing to the opportunity",
        '[fields.stage]\ntype = "string"\ndirection = "both"\n'
        '[fields.stage.salesforce]\nobject = "Opportunity"  # <-\nfield = "StageName"\n',
        "fields.stage.salesforce.object",
        "read-only to leadsync",
    ),
    (
        "an object leadsync cannot read",
        '[fields.stage]\ntype = "string"\ndirection = "pull"\n'
        '[fields.stage.hubspot]\nobject = "deals"  # <-\nfield = "dealstage"\n',
        "fields.stage.hubspot.object",
        "hubspot has no related object 'deals'",
    ),
    (
        "two fields pushing to one CRM field",
        '[fields.work_email]\ntype = "string"\ndirection = "push"\n'
        '[fields.work_email.salesforce]\nfield = "EMAIL"  # <-\n',
        "fields.work_email.salesforce.field",
        "salesforce field 'EMAIL' is written by fields.email.salesforce.field already",
    ),
    (
        "a write-back target that a field pushes to",
        '[writeback.hubspot]\nscore = "email"  # <-\n',
        "writeback.hubspot.score",
        "hubspot field 'email' is written by fields.email.hubspot.field already",
    ),
    (
        "identity field not among the fields",
        '!identity_field = "mail"  # <-\n'
        '[fields.email]\ntype = "string"\ndirection = "pull"\n'
        '[fields.email.hubspot]\nfield = "email"\n',
        "identity_field",
        "no field 'mail' under [fields]",
    ),
    (
        "no identity field",
        '![fields.email]\ntype = "string"\ndirection = "pull"\n'
        '[fields.email.hubspot]\nfield = "email"\n',
        "identity_field",
        "required: the canonical field leads are matched on",
    ),
    (
        "identity field in one CRM only",
        '!identity_field = "email"  # <-\n'
        '[fields.email]\ntype = "string"\ndirection = "pull"\n'
        '[fields.email.hubspot]\nfield = "email"\n',
        "identity_field",
        "must be mapped in both CRMs",
    ),
    (
        "no fields at all",
        '!identity_field = "email"\n',
        "fields",
        "a [fields.NAME] table for each canonical field",
    ),
    (
        "a field that is not a table",
        '!identity_field = "email"\n[fields]\nemail = 3  # <-\n',
        "fields.email",
        "valid dictionary",
    ),
    (
        "write-back to an unknown CRM",
        '# v\n[writeback.pipedrive]\nscore = "score"\n',
        "writeback.pipedrive",
        "unknown CRM",
    ),
    (
        "unknown key in write-back",
        '[writeback.hubspot]\nscroe = "leadsync_score"  # <-\n',
        "writeback.hubspot.scroe",
        "unknown key",
    ),
    (
        "a stage without a value",
        '[writeback.hubspot]\nstage = "lifecyclestage"\n'
        '# v\n[writeback.hubspot.stage_values]\nlead = "lead"\n',
        "writeback.hubspot.stage_values",
        "give a value for every stage: mql, sal, sql",
    ),
    (
        "a stage with an empty list of values",
        '[writeback.hubspot]\nstage = "lifecyclestage"\n[writeback.hubspot.stage_values]\n'
        "lead = []  # <-\n",
        "writeback.hubspot.stage_values.lead",
        "at least 1 item",
    ),
    (
        "an unknown stage",
        '[writeback.salesforce]\nstatus_field = "Status"\n'
        '# v\n[writeback.salesforce.status_values]\nrecyled = "Open - Not Contacted"\n',
        "writeback.salesforce.status_values",
        "unknown stage(s) recyled",
    ),
    (
        "stage values without a stage field",
        '# v\n[writeback.hubspot.stage_values]\nlead = "lead"\n',
        "writeback.hubspot.stage_values",
        "set `stage` to the field these values go to",
    ),
    (
        "status values without a status field",
        '# v\n[writeback.salesforce.status_values]\nrecycled = "Open - Not Contacted"\n',
        "writeback.salesforce.status_values",
        "set status_field: the field these values go to",
    ),
    (
        "a status field without status values",
        '[writeback.salesforce]\nstatus_field = "Status"  # <-\n',
        "writeback.salesforce.status_field",
        "add status_values: the stages that set this field",
    ),
    (
        "a Contact role leadsync does not fill",
        '[writeback.salesforce.contact]\nstatus_field = "Status"  # <-\n',
        "writeback.salesforce.contact.status_field",
        "unknown role; one of score, fit_score",
    ),
    (
        "a Contact stage without the stage values",
        '[writeback.salesforce.contact]\nstage = "Leadsync_Stage__c"  # <-\n',
        "writeback.salesforce.contact.stage",
        "set writeback.salesforce.stage and stage_values",
    ),
    (
        "Contacts in HubSpot",
        '# v\n[writeback.hubspot.contact]\nscore = "leadsync_score"\n',
        "writeback.hubspot.contact",
        "only Salesforce converts leads into Contacts",
    ),
]


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [case[1:] for case in MISTAKES],
    ids=[case[0] for case in MISTAKES],
)
def test_each_mistake_names_file_key_and_line(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    full = text[1:] if text.startswith("!") else BASE + "\n" + text
    path = write(tmp_path, full)
    problems = problems_of(path)
    assert [(problem.key, problem.line) for problem in problems] == [(key, marked_line(full))]
    assert message in problems[0].message
    assert problems[0].file == str(path)


def test_every_mistake_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        BASE
        + '\ncolour = "blue"\n'  # lands in [fields.email.salesforce]: an unknown key there
        + '[fields.size]\ntype = "integer"\ndirection = "sideways"\n'
        + '[fields.size.hubspot]\nfield = "numemployees"\n'
        + '[fields.name]\ntype = "string"\ndirection = "pull"\n'
        + '[fields.name.hubspot]\nfield = "firstname"\ntransforms = ["strip"]\n'
        + '[writeback.hubspot]\nstage = "lifecyclestage"\n'
    )
    path = write(tmp_path, text)
    keys = {problem.key for problem in problems_of(path)}
    assert keys == {
        "fields.email.salesforce.colour",
        "fields.size.direction",
        "fields.name.hubspot.transforms",
        "writeback.hubspot.stage_values",
    }


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    problems = problems_of(tmp_path / "nowhere.toml")
    assert [(p.file, p.message) for p in problems] == [
        (str(tmp_path / "nowhere.toml"), "no such file")
    ]


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_bytes(b'identity_field = "\xff"\n')
    [problem] = problems_of(path)
    assert problem.message.startswith("cannot read")


def test_a_problem_prints_as_file_line_key_message(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + 'colour = "blue"\n')
    [problem] = problems_of(path)
    assert str(problem) == f"{path}:15: fields.email.salesforce.colour: unknown key"


def _mutations(text: str) -> Iterator[str]:
    """The example with one line dropped, or its value replaced by one of several wrong kinds."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        yield "\n".join(lines[:index] + lines[index + 1 :])
        if " = " in line and not line.lstrip().startswith("#"):
            name = line.split(" = ", 1)[0]
            for value in ("1", '"x"', "{}", "true", '["x", 1]'):
                yield "\n".join([*lines[:index], f"{name} = {value}", *lines[index + 1 :]])


def _problems_or_none(path: Path) -> list[ConfigProblem] | None:
    try:
        load_mapping(path)
    except ConfigError as error:
        return error.problems
    return None


def test_no_mistake_in_the_example_ends_in_anything_but_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    outcomes = {"loaded": 0, "refused": 0}
    for text in _mutations(EXAMPLE.read_text(encoding="utf-8")):
        path.write_text(text, encoding="utf-8")
        problems = _problems_or_none(path)  # anything but ConfigError fails the test here
        if problems is None:
            outcomes["loaded"] += 1
            continue
        assert problems, text
        assert all(problem.file == str(path) for problem in problems)
        outcomes["refused"] += 1
    # Guards the guard: most mutations are mistakes, and some (comments, say) are harmless.
    assert outcomes["refused"] > 1000
    assert outcomes["loaded"] > 50


def test_the_file_spellings_match_the_enums() -> None:
    from typing import get_args

    from leadsync.mapping.fields import DirectionName, RuleName

    assert set(get_args(DirectionName)) == {direction.value for direction in Direction}
    assert set(get_args(RuleName)) == {rule.value for rule in SyncRule}


def test_a_field_in_one_crm_takes_that_crms_value(tmp_path: Path) -> None:
    text = BASE + '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
    text += '[fields.size.salesforce]\nfield = "NumberOfEmployees"\n'
    assert load_mapping(write(tmp_path, text)).fields["size"].rule is SyncRule.PREFER_SALESFORCE


def test_tables_on_a_binding_count_as_listed_transforms(tmp_path: Path) -> None:
    text = BASE + '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
    text += '[fields.size.hubspot]\nfield = "numemployees"\ntransforms = ["trim"]\ndefault = 0\n'
    text += 'value_map = { "small" = 10 }\n'
    binding = load_mapping(write(tmp_path, text)).fields["size"].hubspot
    assert binding is not None
    assert binding.transforms == ("trim", "value_map", "default")


def test_toml_dates_and_datetimes_are_canonical_values(tmp_path: Path) -> None:
    text = BASE + '[fields.seen]\ntype = "datetime"\ndirection = "pull"\n'
    text += '[fields.seen.hubspot]\nfield = "createdate"\ntime_zone = "Europe/Berlin"\n'
    text += "default = 2024-05-01T10:00:00\n"
    binding = load_mapping(write(tmp_path, text)).fields["seen"].hubspot
    assert binding is not None
    assert binding.default == datetime(2024, 5, 1, 8, tzinfo=UTC)  # naive: Berlin time


# ================================================================================ check_against


def _info(name: str, kind: FieldType, **extra: Any) -> FieldInfo:
    return FieldInfo(
        name=name, label=name, type=kind, writable=extra.pop("writable", True), **extra
    )


HUBSPOT_CONTACTS = ObjectDescription(
    "hubspot",
    "contacts",
    {
        info.name: info
        for info in (
            _info("email", FieldType.EMAIL),
            _info("firstname", FieldType.STRING),
            _info("createdate", FieldType.DATETIME, writable=False),
            _info(
                "numemployees",
                FieldType.ENUMERATION,
                options=("1-5", "5-25", "25+"),
                restricted=True,
            ),
            _info(
                "lifecyclestage", FieldType.ENUMERATION, options=("lead", "mql"), restricted=True
            ),
            _info("leadsync_score", FieldType.NUMBER),
            _info("leadsync_grade", FieldType.STRING),
        )
    },
)
SALESFORCE_LEAD = ObjectDescription(
    "salesforce",
    "Lead",
    {
        info.name: info
        for info in (
            _info("Email", FieldType.EMAIL),
            _info("NumberOfEmployees", FieldType.INTEGER),
            _info("IsConverted", FieldType.BOOLEAN, writable=False),
            _info("Industry", FieldType.ENUMERATION, options=("Banking", "Retail")),
            _info(
                "Status",
                FieldType.ENUMERATION,
                options=("Open", "Closed"),
                restricted=True,
            ),
        )
    },
    case_insensitive=True,
)
SALESFORCE_OPPORTUNITY = ObjectDescription(
    "salesforce",
    "Opportunity",
    {"StageName": _info("StageName", FieldType.ENUMERATION, options=("Won",), restricted=True)},
    case_insensitive=True,
)


def checked(
    tmp_path: Path,
    text: str,
    crm: str,
    description: ObjectDescription,
    *,
    preflight: bool = False,
) -> list[str]:
    path = write(tmp_path, BASE + text)
    problems = check_against(
        load_mapping(path), crm, description, file=str(path), preflight=preflight
    )
    assert all(problem.file == str(path) for problem in problems)
    return [f"{problem.key}: {problem.message}" for problem in problems]


def test_a_mapping_that_fits_has_no_problems(tmp_path: Path) -> None:
    text = '[fields.size]\ntype = "integer"\ndirection = "both"\nrule = "most_recent"\n'
    text += '[fields.size.hubspot]\nfield = "numemployees"\nranges = [\n'
    text += '  { value = "1-5", up_to = 5, canonical = 3 },\n'
    text += '  { value = "5-25", up_to = 25, canonical = 15 },\n'
    text += '  { value = "25+", canonical = 50 },\n]\n'
    text += '[fields.size.salesforce]\nfield = "numberofemployees"\n'  # any case will do
    assert checked(tmp_path, text, "hubspot", HUBSPOT_CONTACTS) == []
    assert checked(tmp_path, text, "salesforce", SALESFORCE_LEAD) == []


def test_a_field_missing_in_the_crm(tmp_path: Path) -> None:
    text = '[fields.name]\ntype = "string"\ndirection = "pull"\n'
    text += '[fields.name.hubspot]\nfield = "first_name"\n'
    assert checked(tmp_path, text, "hubspot", HUBSPOT_CONTACTS) == [
        "fields.name.hubspot.field: no field 'first_name' in hubspot contacts "
        "(did you mean firstname?)"
    ]


def test_a_problem_from_the_check_points_at_its_line(tmp_path: Path) -> None:
    text = '[fields.name]\ntype = "string"\ndirection = "pull"\n'
    text += '[fields.name.hubspot]\nfield = "first_name"  # <-\n'
    path = write(tmp_path, BASE + text)
    [problem] = check_against(load_mapping(path), "hubspot", HUBSPOT_CONTACTS, file=str(path))
    assert problem.line == marked_line(BASE + text)


def test_a_type_that_cannot_be_read(tmp_path: Path) -> None:
    text = '[fields.signed_up]\ntype = "boolean"\ndirection = "pull"\n'
    text += '[fields.signed_up.hubspot]\nfield = "createdate"\n'
    assert checked(tmp_path, text, "hubspot", HUBSPOT_CONTACTS) == [
        "fields.signed_up.hubspot.field: hubspot.createdate is a datetime field: "
        "it cannot be read as boolean"
    ]


def test_a_type_that_cannot_be_written(tmp_path: Path) -> None:
    text = '[fields.size]\ntype = "number"\ndirection = "push"\n'
    text += '[fields.size.salesforce]\nfield = "NumberOfEmployees"\n'
    assert checked(tmp_path, text, "salesforce", SALESFORCE_LEAD) == [
        "fields.size.salesforce.field: salesforce.NumberOfEmployees is an integer field: "
        "number values cannot be written to it"
    ]


def test_a_pushed_field_that_is_read_only(tmp_path: Path) -> None:
    text = '[fields.converted]\ntype = "boolean"\ndirection = "both"\n'
    text += '[fields.converted.salesforce]\nfield = "IsConverted"\n'
    assert checked(tmp_path, text, "salesforce", SALESFORCE_LEAD) == [
        "fields.converted.salesforce.field: salesforce.IsConverted is read-only: "
        "direction both cannot write it (use pull)"
    ]


def test_a_pulled_read_only_field_is_fine(tmp_path: Path) -> None:
    text = '[fields.converted]\ntype = "boolean"\ndirection = "pull"\n'
    text += '[fields.converted.salesforce]\nfield = "IsConverted"\n'
    assert checked(tmp_path, text, "salesforce", SALESFORCE_LEAD) == []


def test_a_value_map_value_a_restricted_field_does_not_allow(tmp_path: Path) -> None:
    text = '[fields.state]\ntype = "string"\ndirection = "both"\nrule = "most_recent"\n'
    text += '[fields.state.hubspot]\nfield = "firstname"\n'
    text += '[fields.state.salesforce]\nfield = "Status"\n'
    text += "[fields.state.salesforce.value_map]\n"
    text += 'Open = "open"\n"Closed - Lost" = "closed"\nClosed = "closed"\n'
    assert checked(tmp_path, text, "salesforce", SALESFORCE_LEAD) == [
        "fields.state.salesforce.value_map: 'Closed - Lost' not allowed by salesforce.Status; "
        "its options: 'Open', 'Closed'"
    ]


def test_an_open_picklist_takes_any_value(tmp_path: Path) -> None:
    text = '[fields.sector]\ntype = "string"\ndirection = "both"\nrule = "most_recent"\n'
    text += '[fields.sector.hubspot]\nfield = "firstname"\n'
    text += '[fields.sector.salesforce]\nfield = "Industry"\nstrict = false\n'
    text += '[fields.sector.salesforce.value_map]\n"Fintech" = "finance"\n'
    assert checked(tmp_path, text, "salesforce", SALESFORCE_LEAD) == []


def test_a_range_value_a_restricted_field_does_not_allow(tmp_path: Path) -> None:
    text = '[fields.size]\ntype = "integer"\ndirection = "push"\n'
    text += '[fields.size.hubspot]\nfield = "numemployees"\nranges = [\n'
    text += '  { value = "1-5", up_to = 5, canonical = 3 },\n'
    text += '  { value = "6+", canonical = 10 },\n]\n'
    assert checked(tmp_path, text, "hubspot", HUBSPOT_CONTACTS) == [
        "fields.size.hubspot.ranges: '6+' not allowed by hubspot.numemployees; "
        "its options: '1-5', '5-25', '25+'"
    ]


def test_an_option_a_strict_map_leaves_out(tmp_path: Path) -> None:
    text = '[fields.size]\ntype = "integer"\ndirection = "pull"\n'
    text += '[fields.size.hubspot]\nfield = "numemployees"\n'
    text += 'value_map = { "1-5" = 3, "5-25" = 15 }\n'
    assert checked(tmp_path, text, "hubspot", HUBSPOT_CONTACTS) == [
        "fields.size.hubspot.value_map: hubspot.numemployees option(s) '25+' cannot be read "
        "as integer: map them (or set strict = false)"
    ]


def test_an_enumeration_pushed_without_a_map(tmp_path: Path) -> None:
    text = '[fields.size]\ntype = "integer"\ndirection = "push"\n'
    text += '[fields.size.hubspot]\nfield = "numemployees"\n'
    assert checked(tmp_path, text, "hubspot", HUBSPOT_CONTACTS) == [
        "fields.size.hubspot.field: hubspot.numemployees only takes its options: writing "
        "integer values to it needs a value_map or ranges"
    ]


def test_opportunity_bindings_are_checked_against_the_opportunity(tmp_path: Path) -> None:
    text = '[fields.deal_stage]\ntype = "string"\ndirection = "pull"\n'
    text += '[fields.deal_stage.salesforce]\nobject = "Opportunity"\nfield = "Stage"\n'
    assert checked(tmp_path, text, "salesforce", SALESFORCE_LEAD) == []
    assert checked(tmp_path, text, "salesforce", SALESFORCE_OPPORTUNITY) == [
        "fields.deal_stage.salesforce.field: no field 'Stage' in salesforce Opportunity "
        "(did you mean StageName?)"
    ]


def test_write_back_targets_missing_read_only_or_unfit(tmp_path: Path) -> None:
    text = '[writeback.hubspot]\nscore = "leadsync_score"\nfit_score = "leadsync_fit"\n'
    text += 'engagement_score = "firstname"\ngrade = "createdate"\n'
    problems = checked(tmp_path, text, "hubspot", HUBSPOT_CONTACTS)
    assert [problem.split(":")[0] for problem in problems] == [
        "writeback.hubspot.fit_score",
        "writeback.hubspot.grade",
    ]
    assert "no field 'leadsync_fit' in hubspot contacts" in problems[0]
    assert problems[0].endswith("; run `leadsync setup` to create it")
    assert problems[1].endswith("hubspot field createdate is read-only")


def test_a_missing_salesforce_target_says_an_admin_must_create_it(tmp_path: Path) -> None:
    text = '[writeback.salesforce]\nscore = "Leadsync_Nowhere__c"\n'
    (problem,) = checked(tmp_path, text, "salesforce", SALESFORCE_LEAD)
    assert problem.startswith("writeback.salesforce.score: no field 'Leadsync_Nowhere__c'")
    assert "a Salesforce admin must create it" in problem


PREFLIGHT_MAPPING = (
    '[fields.state]\ntype = "string"\ndirection = "pull"\n'
    '[fields.state.salesforce]\nfield = "Status"\nstrict = false\n'
    '[fields.state.salesforce.value_map]\nOpen = "open"\n"Closed - Lost" = "closed"\n'
    '[fields.gone]\ntype = "string"\ndirection = "pull"\n'
    '[fields.gone.salesforce]\nfield = "Nowhere"\n'
    '[writeback.salesforce]\nscore = "IsConverted"\nstage = "Status"\n'
    'stage_values = { lead = "Open", mql = "Open", sal = "Open", sql = "Open", '
    'opportunity = "Open", customer = "Open", recycled = "Open", disqualified = "Lost" }\n'
)


def test_the_preflight_reports_only_what_stops_a_run(tmp_path: Path) -> None:
    everything = checked(tmp_path, PREFLIGHT_MAPPING, "salesforce", SALESFORCE_LEAD)
    assert [problem.split(":")[0] for problem in everything] == [
        "fields.state.salesforce.value_map",
        "fields.gone.salesforce.field",
        "writeback.salesforce.score",
        "writeback.salesforce.stage_values",
    ]
    # A picklist value refused fails the records holding it, one at a time, with the CRM's
    # reason; a field that is not there, or a target that cannot take a score, fails them all.
    blocking = checked(tmp_path, PREFLIGHT_MAPPING, "salesforce", SALESFORCE_LEAD, preflight=True)
    assert [problem.split(":")[0] for problem in blocking] == [
        "fields.gone.salesforce.field",
        "writeback.salesforce.score",
    ]


def test_a_write_back_target_of_the_wrong_type(tmp_path: Path) -> None:
    text = '[writeback.salesforce]\nscore = "IsConverted"\nmodel_version = "NumberOfEmployees"\n'
    bare = ObjectDescription(
        "salesforce",
        "Lead",
        {**SALESFORCE_LEAD.fields, "IsConverted": _info("IsConverted", FieldType.BOOLEAN)},
    )
    assert checked(tmp_path, text, "salesforce", bare) == [
        "writeback.salesforce.score: IsConverted is a boolean field: unfit for the score",
        "writeback.salesforce.model_version: NumberOfEmployees is an integer field: "
        "unfit for the model_version",
    ]


def test_stage_values_a_restricted_stage_field_does_not_allow(tmp_path: Path) -> None:
    stages = "\n".join(
        f'{stage} = "{"mql" if stage == "mql" else "lead"}"' for stage in CANONICAL_STAGES
    )
    text = '[writeback.hubspot]\nstage = "lifecyclestage"\n'
    text += f"[writeback.hubspot.stage_values]\n{stages}\n"
    assert checked(tmp_path, text, "hubspot", HUBSPOT_CONTACTS) == []
    wrong = text.replace('sql = "lead"', 'sql = "salesqualifiedlead"')
    assert checked(tmp_path, wrong, "hubspot", HUBSPOT_CONTACTS) == [
        "writeback.hubspot.stage_values: 'salesqualifiedlead' not allowed by lifecyclestage; "
        "its options: 'lead', 'mql'"
    ]


def test_a_stage_may_list_the_values_that_hold_it_the_first_written(example: FieldMap) -> None:
    hubspot = example.writeback["hubspot"]
    assert hubspot.stage_values["lead"] == "lead"
    assert hubspot.holding("stage", "lead") == ("lead", "subscriber")
    assert hubspot.holding("stage", "mql") == ("marketingqualifiedlead",)
    assert hubspot.stages_held_by("evangelist") == {"customer"}
    assert hubspot.stages_held_by("marketingqualifiedlead") == {"mql", "sal"}
    assert hubspot.stages_held_by("unheard_of") == frozenset()


def test_every_listed_stage_value_is_checked_against_the_options(tmp_path: Path) -> None:
    stages = "\n".join(
        f'{stage} = "{"mql" if stage == "mql" else "lead"}"' for stage in CANONICAL_STAGES
    )
    text = '[writeback.hubspot]\nstage = "lifecyclestage"\n'
    text += f"[writeback.hubspot.stage_values]\n{stages}\n"
    listed = text.replace('lead = "lead"', 'lead = ["lead", "subscribre"]')
    assert checked(tmp_path, listed, "hubspot", HUBSPOT_CONTACTS) == [
        "writeback.hubspot.stage_values: 'subscribre' not allowed by lifecyclestage; "
        "its options: 'lead', 'mql'"
    ]


def test_status_values_a_restricted_status_does_not_allow(tmp_path: Path) -> None:
    text = '[writeback.salesforce]\nstatus_field = "Status"\n'
    text += '[writeback.salesforce.status_values]\nrecycled = "Open"\ndisqualified = "Dead"\n'
    assert checked(tmp_path, text, "salesforce", SALESFORCE_LEAD) == [
        "writeback.salesforce.status_values: 'Dead' not allowed by Status; "
        "its options: 'Open', 'Closed'"
    ]


def test_write_back_roles_are_listed_in_order() -> None:
    targets = WritebackTargets(crm="hubspot", score="a", stage="b", status_field="c")
    assert targets.targets() == {"score": "a", "stage": "b", "status_field": "c"}


# ================================================================================ the sandbox


@pytest.fixture
def hubspot_contacts(sandbox: Sandbox) -> Iterator[HubSpotConnector]:
    connector = HubSpotConnector(HubSpotConnection.for_sandbox(sandbox.url))
    yield connector
    connector.close()


def _salesforce(sandbox: Sandbox, object_name: str = "Lead") -> SalesforceConnector:
    # The Salesforce connector is importable now: its describe, not an adapter, is what is used.
    return SalesforceConnector(
        SalesforceConnection.for_sandbox(sandbox.url, object_name=object_name)
    )


def test_the_example_fits_the_sandbox_hubspot_once_set_up(
    example: FieldMap, hubspot_contacts: HubSpotConnector
) -> None:
    before = check_against(example, "hubspot", hubspot_contacts.describe(), file=str(EXAMPLE))
    # Until setup, leadsync's own properties are missing, and the check says so.
    assert {problem.key for problem in before} == {
        f"writeback.hubspot.{role}"
        for role in (
            "score",
            "fit_score",
            "engagement_score",
            "grade",
            "reasons",
            "model_version",
            "sla_breaches",
        )
    }
    hubspot_contacts.ensure_properties()
    after = check_against(example, "hubspot", hubspot_contacts.describe(), file=str(EXAMPLE))
    assert after == []


def test_the_example_fits_the_sandbox_salesforce(example: FieldMap, sandbox: Sandbox) -> None:
    for object_name in ("Lead", "Opportunity"):
        connector = _salesforce(sandbox, object_name)
        try:
            description = connector.describe()
        finally:
            connector.close()
        assert check_against(example, "salesforce", description, file=str(EXAMPLE)) == []


def test_the_check_finds_a_sandbox_picklist_mistake(
    example: FieldMap, sandbox: Sandbox, tmp_path: Path
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'disqualified = "Closed - Not Converted"', 'disqualified = "Closed"'
    )
    path = write(tmp_path, text)
    connector = _salesforce(sandbox)
    try:
        problems = check_against(
            load_mapping(path), "salesforce", connector.describe(), file=str(path)
        )
    finally:
        connector.close()
    assert [problem.key for problem in problems] == ["writeback.salesforce.status_values"]
    assert problems[0].line == text.splitlines().index("[writeback.salesforce.status_values]") + 1


def test_every_seeded_record_reads_through_the_example(
    example: FieldMap, sandbox: Sandbox, hubspot_contacts: HubSpotConnector
) -> None:
    salesforce = _salesforce(sandbox)
    try:
        read = {
            "hubspot": _read_all(example, "hubspot", hubspot_contacts),
            "salesforce": _read_all(example, "salesforce", salesforce),
        }
    finally:
        salesforce.close()
    assert len(read["hubspot"]) > 30
    assert len(read["salesforce"]) > 30
    hubspot_countries = {lead["country"] for lead in read["hubspot"]}
    salesforce_countries = {lead["country"] for lead in read["salesforce"]} - {None}
    # Salesforce's codes read as HubSpot's names: one vocabulary for the lead definition.
    assert salesforce_countries <= hubspot_countries
    assert all(len(country) > 2 for country in salesforce_countries)
    sizes = {lead["employees"] for lead in read["hubspot"]} - {None}
    assert sizes <= {3, 15, 38, 75, 300, 750, 2000}
    assert all(isinstance(lead["page_views"], int) for lead in read["hubspot"])


def _read_all(example: FieldMap, crm: str, connector: Any) -> list[dict[str, Any]]:
    """Every record of the lead object, read through the mapping: no TransformError allowed."""
    fields = example.crm_fields(crm)
    leads = []
    for page in connector.pull_all(fields=fields):
        for record in page.records:
            leads.append(
                {
                    name: mapping.read(crm, record.fields.get(binding.field))
                    for name, mapping in example.fields.items()
                    if (binding := mapping.binding(crm)) is not None and binding.object is None
                }
            )
    return leads
