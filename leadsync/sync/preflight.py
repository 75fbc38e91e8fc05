"""Preflight: the mapping against what each CRM says it holds, before a run writes anything.

Each CRM is described once a run: its lead object, and each related object the mapping reads
(Salesforce's Opportunity). The connector keeps the description for the run (HubSpot orders its
lifecycle stages by it). A field the mapping names that a CRM lacks, or a write target it cannot
write, would fail every record of that CRM one by one: instead the run stops before its first
write with a `PreflightError` (exit 2) naming each problem and its fix. `leadsync check
--online` runs the same check (`problems`) and reports more: picklist values, field types.

The descriptions also say when a write a CRM refused may land if tried again: a refused record
is tried again once the mapping, the lead definition or that CRM's describe is no longer what
it was refused under (`context`), or after a wait (`QuarantineLedger.due_refusals`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from leadsync.connectors.base import Connector, ObjectDescription
from leadsync.mapping.definition import LeadDefinition
from leadsync.mapping.fields import FieldMap, check_against, related_objects
from leadsync.problems import ConfigError, ConfigProblem

__all__ = ["PreflightError", "context_of", "describe_for", "problems"]


class PreflightError(ConfigError):
    """The mapping does not fit a CRM: the run stopped before its first write (exit 2)."""


def describe_for(connector: Connector, field_map: FieldMap) -> list[ObjectDescription]:
    """`connector`'s lead object, then each related object `field_map` reads from that CRM."""
    found = [connector.describe()]
    found += [connector.describe(name) for name in related_objects(field_map, connector.crm)]
    return found


def problems(
    field_map: FieldMap,
    crm: str,
    descriptions: Sequence[ObjectDescription],
    *,
    file: str,
    preflight: bool = True,
) -> list[ConfigProblem]:
    """What `descriptions` of `crm` say is wrong with `field_map` (read from `file`): with
    `preflight`, only what stops a run (see `check_against`)."""
    return [
        problem
        for description in descriptions
        for problem in check_against(field_map, crm, description, file=file, preflight=preflight)
    ]


def context_of(
    field_map: FieldMap, definition: LeadDefinition, descriptions: Sequence[ObjectDescription]
) -> str:
    """A fingerprint of what a write to one CRM is made under: the mapping, the lead definition
    and that CRM's describe. A write refused under one fingerprint may land under another."""
    digest = hashlib.sha256()
    digest.update(repr(field_map).encode())
    digest.update(definition.model_version.encode())
    for description in descriptions:
        for name in sorted(description.fields):
            digest.update(repr(description.fields[name]).encode())
    return digest.hexdigest()[:16]
