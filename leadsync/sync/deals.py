"""The opportunities of people no lead record names: a Contact sales created is tied to its
deals by contact roles (the connector's `contact_roles`: Salesforce's OpportunityContactRole),
not by a conversion.

The roles are pulled as a related object of their own; the store keeps each with the person
record it names as its `parent_id`. When a person record (`sync.people`) is a lead's, the
opportunity of its roles, the primary role first, then the one last changed, counts for that
lead as the opportunity of a converted lead does: the lead holds what a lead converted with
it would (the connector's `converted_flag` and `converted_reference`) and the opportunity's
values the mapping reads (bindings with object = "Opportunity"). So its stage moves to
opportunity, to customer on Closed Won, and recycles on Closed Lost, under the definition's
own rules; and the reports count the deal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from leadsync.connectors.base import ContactRoles
from leadsync.mapping.fields import FieldMap
from leadsync.mapping.transforms import TransformError, is_blank
from leadsync.sync.identity import eighteen_character_id
from leadsync.sync.model import FieldChoice, Snapshot
from leadsync.sync.related import OPPORTUNITY, Related, with_related

__all__ = ["RULE", "chosen_opportunities", "deal_choices", "person_of_role"]

# The rule a value read from a person's opportunity is chosen by (see FieldChoice).
RULE = "contact role"


def person_of_role(record_fields: Mapping[str, Any], spec: ContactRoles) -> str | None:
    """The id of the person record a contact role names (18 characters), if any."""
    value = record_fields.get(spec.person_field)
    return None if is_blank(value) else eighteen_character_id(str(value).strip())


def chosen_opportunities(roles: Iterable[Related], spec: ContactRoles) -> dict[str, str]:
    """Person record id -> the id of the opportunity that counts for it: of its live roles,
    a primary one first, then the one changed last (ties: the highest role id)."""
    best: dict[str, Related] = {}
    for role in roles:
        person = role.parent_id
        opportunity = role.fields.get(spec.opportunity_field)
        if role.deleted or person is None or is_blank(opportunity):
            continue
        held = best.get(person)
        if held is None or _rank(role, spec) > _rank(held, spec):
            best[person] = role
    return {
        person: eighteen_character_id(str(role.fields[spec.opportunity_field]).strip())
        for person, role in best.items()
    }


def _rank(role: Related, spec: ContactRoles) -> tuple[bool, Any, str]:
    primary = role.fields.get(spec.primary_field)
    return (primary is True or str(primary).lower() == "true", role.modified_at, role.record_id)


def deal_choices(
    field_map: FieldMap, spec: ContactRoles, opportunity: Related
) -> dict[str, FieldChoice]:
    """The canonical values a lead converted with `opportunity` holds by it, as chosen values:
    the conversion's facts and the opportunity's own values the mapping reads."""
    crm = opportunity.crm
    raw = {spec.converted_flag: True, spec.converted_reference: opportunity.record_id}
    view = with_related(
        Snapshot(crm, opportunity.record_id, opportunity.modified_at, raw, {}),
        {OPPORTUNITY: opportunity},
        field_map,
    )
    values = dict(view.canonical)
    for mapping in field_map.fields.values():
        binding = mapping.binding(crm)
        if binding is None or binding.object is not None or binding.field not in raw:
            continue
        try:
            values[mapping.name] = mapping.read(crm, raw[binding.field])
        except TransformError:
            continue  # a mapping that cannot read the conversion's facts reads none of them
    reason = f"the person's opportunity {opportunity.record_id}"
    return {name: FieldChoice(value, crm, RULE, reason) for name, value in values.items()}
