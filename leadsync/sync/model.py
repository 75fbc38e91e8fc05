"""The values the sync steps pass between them: plain, frozen, and free of I/O.

Snapshot    the last seen state of one CRM record, raw and mapped, with per-field change
            times (leadsync's own writes excluded) and the lead it belongs to
Lead        one person: the merged canonical values, where each came from, score, stage
FieldChoice which CRM's value a field took, under which rule, and why
Match       what identity matching decided for a record: an existing lead, a new one, or
            the review queue (never an automatic merge of ambiguous duplicates)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple


@dataclass(frozen=True, slots=True)
class Snapshot:
    crm: str
    record_id: str
    modified_at: datetime
    raw: Mapping[str, Any]  # field values as the CRM returned them
    canonical: Mapping[str, Any]  # the same, through the mapping: canonical name -> typed value
    # canonical name -> when a person (not leadsync) last changed it in this CRM
    changed_at: Mapping[str, datetime] = field(default_factory=dict)
    deleted: bool = False
    lead_id: str | None = None
    # None: a record of the CRM's lead object. Else the related object of a record that is a
    # person of its own (a Contact no lead names), as identity matches it (`sync.people`).
    object_name: str | None = None


class FieldChoice(NamedTuple):
    # A tuple, not a frozen dataclass: reconcile makes one for every field of every lead
    # (400,000 in a first sync of 10,000 leads per CRM), and a frozen dataclass's __init__
    # takes twice as long.
    value: Any
    crm: str | None  # the CRM whose value won; None when neither holds one
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class Lead:
    lead_id: str
    values: Mapping[str, Any]
    choices: Mapping[str, FieldChoice] = field(default_factory=dict)
    score: int | None = None
    fit: int | None = None
    engagement: int | None = None
    grade: str | None = None
    reasons: tuple[str, ...] = ()
    model_version: str | None = None
    stage: str | None = None


class MatchKind(StrEnum):
    LINKED = "linked"  # leadsync's own link
    CROSS_REFERENCE = "cross_reference"  # e.g. HubSpot's salesforceleadid
    EMAIL = "email"  # one lead with the same normalised email
    NEW = "new"  # nobody like it yet
    REVIEW = "review"  # ambiguous: a person decides


@dataclass(frozen=True, slots=True)
class Match:
    kind: MatchKind
    lead_id: str | None = None
    candidates: tuple[str, ...] = ()  # for REVIEW: the leads it could be
    reason: str = ""
