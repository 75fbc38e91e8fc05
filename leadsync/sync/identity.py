"""Identity: which lead a CRM record belongs to. Pure decisions over an index the store keeps.

In this order, the first that answers wins:

    1. leadsync's own link       the record was linked before (a Salesforce lead that was
                                 converted keeps its Id, so it keeps its link)
    2. a CRM cross-reference     HubSpot's salesforceleadid / salesforcecontactid naming a
                                 Salesforce record already linked, or the other way round
    3. the normalised email      exactly one lead holds it
    4. nobody                    a new lead

Ambiguity is never merged automatically: several candidate leads, or a lead that already has
another record of the same CRM (a duplicate within one CRM), go to the review queue.

Email normalisation is trim + lower-case, nothing more: dots and "+tags" are kept, because
several mail providers deliver `a.b@x` and `ab@x` to different people.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from leadsync.mapping.transforms import is_blank
from leadsync.mapping.types import CRMS
from leadsync.sync.model import Match, MatchKind, Snapshot

__all__ = [
    "CROSS_REFERENCED_CRM",
    "CROSS_REFERENCE_FIELDS",
    "PERSON_OBJECTS",
    "CrossRef",
    "IdentityIndex",
    "InMemoryIdentityIndex",
    "Lookups",
    "cross_reference_fields",
    "cross_references",
    "eighteen_character_id",
    "lookups_for",
    "match",
    "match_batch",
    "normalise_email",
    "people_named",
]

# The CRM whose records cross-references name (and so the one records of both CRMs agree on).
CROSS_REFERENCED_CRM = "salesforce"
# What a cross-reference names: a Salesforce lead, or the Salesforce contact a lead became.
SALESFORCE_LEAD = "salesforce_lead"
SALESFORCE_CONTACT = "salesforce_contact"


@dataclass(frozen=True, slots=True, order=True)
class CrossRef:
    """A Salesforce record named by a record of either CRM: `kind` is SALESFORCE_LEAD or
    SALESFORCE_CONTACT, `record_id` its 18-character id. Records of different CRMs that carry
    the same CrossRef are the same person."""

    kind: str
    record_id: str


# CRM field -> the kind of Salesforce record its value names. A Salesforce lead also names
# itself (its Id). The pull must ask for these fields (see `ingest.fields_to_pull`).
CROSS_REFERENCE_FIELDS: Mapping[str, Mapping[str, str]] = {
    # Set by HubSpot's own Salesforce integration; salesforcecontactid once the lead converted.
    "hubspot": {"salesforceleadid": SALESFORCE_LEAD, "salesforcecontactid": SALESFORCE_CONTACT},
    "salesforce": {"ConvertedContactId": SALESFORCE_CONTACT},
}

# CRM -> related object whose records are people of their own -> the kind of record a
# cross-reference to one of them names: HubSpot's salesforcecontactid names a Contact whether
# or not a converted lead names it too.
PERSON_OBJECTS: Mapping[str, Mapping[str, str]] = {"salesforce": {"Contact": SALESFORCE_CONTACT}}

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


class IdentityIndex(Protocol):
    """What identity matching asks of the store. Every answer is about live (not deleted)
    records only, and lists come back in any order (the matcher sorts them)."""

    def lead_for(self, crm: str, record_id: str) -> str | None:
        """The lead leadsync linked this record to, if any."""
        ...

    def leads_for_crossref(self, crm: str, ref: CrossRef) -> list[str]:
        """The leads of the linked records of `crm` that carry `ref` (see `cross_references`)."""
        ...

    def leads_with_email(self, email: str) -> list[str]:
        """The leads whose email (merged, or a linked record's) normalises to `email`."""
        ...

    def record_ids(self, lead_id: str, crm: str) -> list[str]:
        """The ids of the records of `crm` linked to `lead_id`."""
        ...


def normalise_email(value: Any) -> str | None:
    """The matching form of an email: trimmed and lower-cased; None when blank."""
    if is_blank(value):
        return None
    return str(value).strip().lower()


def cross_references(snapshot: Snapshot) -> frozenset[CrossRef]:
    """The Salesforce records `snapshot` names: its own Id for a Salesforce lead, plus the
    ids held in CROSS_REFERENCE_FIELDS. A store indexes these to answer `leads_for_crossref`."""
    if snapshot.object_name is not None:
        # A person record of a related object is named by its own id, under its kind.
        kind = PERSON_OBJECTS.get(snapshot.crm, {}).get(snapshot.object_name)
        if kind is None:
            return frozenset()
        return frozenset({CrossRef(kind, eighteen_character_id(snapshot.record_id))})
    refs = set()
    if snapshot.crm == CROSS_REFERENCED_CRM:
        refs.add(CrossRef(SALESFORCE_LEAD, eighteen_character_id(snapshot.record_id)))
    for field, kind in CROSS_REFERENCE_FIELDS.get(snapshot.crm, {}).items():
        value = snapshot.raw.get(field)
        if not is_blank(value):
            refs.add(CrossRef(kind, eighteen_character_id(str(value).strip())))
    return frozenset(refs)


def cross_reference_fields(crm: str) -> list[str]:
    """The raw fields `cross_references` reads of a record of `crm`'s lead object."""
    return list(CROSS_REFERENCE_FIELDS.get(crm, {}))


def people_named(snapshot: Snapshot) -> frozenset[tuple[str, str]]:
    """(crm, record id) of the records of PERSON_OBJECTS that `snapshot` names (HubSpot's
    salesforcecontactid, a converted lead's ConvertedContactId)."""
    crm_of = {kind: crm for crm, kinds in PERSON_OBJECTS.items() for kind in kinds.values()}
    return frozenset(
        (crm_of[ref.kind], ref.record_id)
        for ref in cross_references(snapshot)
        if ref.kind in crm_of and snapshot.object_name is None
    )


def eighteen_character_id(record_id: str) -> str:
    """A Salesforce id in its 18-character form: HubSpot and reports may hold the 15-character
    one, which differs only by the suffix that encodes the case of the first 15."""
    if len(record_id) != 15:
        return record_id
    suffix = ""
    for start in range(0, 15, 5):
        chunk = record_id[start : start + 5]
        bits = sum(1 << i for i, char in enumerate(chunk) if "A" <= char <= "Z")
        suffix += _SUFFIX_ALPHABET[bits]
    return record_id + suffix


@dataclass(frozen=True, slots=True)
class Lookups:
    """What matching a batch will ask about, for a store to fetch in a few queries and load
    into an InMemoryIdentityIndex: the leads linked to `records` ((crm, record_id) each; the
    Salesforce leads that cross-references name are among them), the leads of records that
    carry one of `refs` (a store that indexes `cross_references`), those holding `emails`, and
    then the records of all those leads."""

    records: frozenset[tuple[str, str]]
    refs: frozenset[CrossRef]
    emails: frozenset[str]


def lookups_for(snapshots: Iterable[Snapshot], *, identity_field: str) -> Lookups:
    """The lookups `match_batch` will make for `snapshots` (see Lookups)."""
    records: set[tuple[str, str]] = set()
    refs: set[CrossRef] = set()
    emails: set[str] = set()
    for snapshot in snapshots:
        records.add((snapshot.crm, snapshot.record_id))
        for ref in cross_references(snapshot):
            refs.add(ref)
            if ref.kind == SALESFORCE_LEAD:
                records.add((CROSS_REFERENCED_CRM, ref.record_id))
        email = normalise_email(snapshot.canonical.get(identity_field))
        if email is not None:
            emails.add(email)
    return Lookups(frozenset(records), frozenset(refs), frozenset(emails))


# ------------------------------------------------------------------------------- one record


def match(snapshot: Snapshot, index: IdentityIndex, *, identity_field: str) -> Match | None:
    """The lead `snapshot` belongs to (FieldMap.identity_field names the email field).

    None only for a deleted record leadsync never linked: there is nothing to sync, and a
    deleted record must not start a lead or join one by its email.
    """
    linked = index.lead_for(snapshot.crm, snapshot.record_id)
    if linked is not None:
        return Match(MatchKind.LINKED, linked, reason=f"linked to {linked} before")
    if snapshot.deleted:
        return None
    by_reference = _by_cross_reference(snapshot, index)
    if by_reference is not None:
        return by_reference
    return _by_email(snapshot, index, identity_field)


def _by_cross_reference(snapshot: Snapshot, index: IdentityIndex) -> Match | None:
    refs = sorted(cross_references(snapshot))
    found: dict[str, CrossRef] = {}
    for crm, ref in itertools.product(_other_crms(snapshot.crm), refs):
        for lead in index.leads_for_crossref(crm, ref):
            found.setdefault(lead, ref)
    if not found:
        return None
    if len(found) > 1:
        return _review(found, f"its Salesforce references name {len(found)} different leads")
    lead, ref = next(iter(found.items()))
    reason = f"{ref.kind.replace('_', ' ')} {ref.record_id} is linked to {lead}"
    return _join(MatchKind.CROSS_REFERENCE, lead, snapshot, index, reason)


def _by_email(snapshot: Snapshot, index: IdentityIndex, identity_field: str) -> Match:
    email = normalise_email(snapshot.canonical.get(identity_field))
    if email is None:
        # Ingest quarantines such records; matching one anyway must not merge it with anybody.
        return Match(MatchKind.NEW, reason=f"no {identity_field}: nothing to match on")
    leads = set(index.leads_with_email(email))
    if not leads:
        return Match(MatchKind.NEW, reason=f"no lead has {identity_field} {email}")
    if len(leads) > 1:
        return _review(leads, f"{len(leads)} leads have {identity_field} {email}")
    lead = leads.pop()
    return _join(MatchKind.EMAIL, lead, snapshot, index, f"{lead} has {identity_field} {email}")


def _join(
    kind: MatchKind, lead: str, snapshot: Snapshot, index: IdentityIndex, reason: str
) -> Match:
    """`kind` to `lead`, unless the lead already has another record of this CRM: then the
    record is a duplicate within its CRM, which a person must resolve."""
    others = sorted(set(index.record_ids(lead, snapshot.crm)) - {snapshot.record_id})
    if others:
        held = ", ".join(others)
        return _review(
            {lead}, f"{reason}, which has {snapshot.crm} record {held} already: a duplicate"
        )
    return Match(kind, lead, reason=reason)


def _review(leads: Iterable[str], reason: str) -> Match:
    return Match(MatchKind.REVIEW, candidates=tuple(sorted(leads)), reason=reason)


def _other_crms(crm: str) -> tuple[str, ...]:
    return tuple(other for other in CRMS if other != crm)


# ------------------------------------------------------------------------------- one batch


def match_batch(
    snapshots: Iterable[Snapshot],
    index: IdentityIndex,
    *,
    identity_field: str,
    new_lead_id: Callable[[], str],
) -> dict[tuple[str, str], Match]:
    """Match a batch of records, consistently: each decision is visible to the next, so two new
    records of one person in the batch become one lead, and a second record of the same CRM
    for a lead goes to review, whether that lead is stored or made in this batch.

    Keys are (crm, record_id). A NEW match carries a fresh id from `new_lead_id`; REVIEW
    candidates may name such ids, so the engine creates the new leads first. Records go in
    (crm, record_id) order, so the result does not depend on the order they are given in.
    Deleted records leadsync never linked are left out (see `match`).
    """
    ordered = sorted(snapshots, key=lambda snapshot: (snapshot.crm, snapshot.record_id))
    keys = [(snapshot.crm, snapshot.record_id) for snapshot in ordered]
    if len(set(keys)) != len(keys):
        raise ValueError("match_batch got the same record twice; give each record once")
    decided = InMemoryIdentityIndex(identity_field=identity_field)
    seen = _Layered(decided, index)
    matches: dict[tuple[str, str], Match] = {}
    for key, snapshot in zip(keys, ordered, strict=True):
        found = match(snapshot, seen, identity_field=identity_field)
        if found is None:
            continue
        if found.kind is MatchKind.NEW:
            found = replace(found, lead_id=new_lead_id())
        if found.lead_id is not None:
            decided.link(snapshot, found.lead_id)
        matches[key] = found
    return matches


class _Layered:
    """The decisions of this batch over the store's index: links made here win, lists join."""

    def __init__(self, first: IdentityIndex, second: IdentityIndex) -> None:
        self._first = first
        self._second = second

    def lead_for(self, crm: str, record_id: str) -> str | None:
        found = self._first.lead_for(crm, record_id)
        return found if found is not None else self._second.lead_for(crm, record_id)

    def leads_for_crossref(self, crm: str, ref: CrossRef) -> list[str]:
        return _union(
            self._first.leads_for_crossref(crm, ref), self._second.leads_for_crossref(crm, ref)
        )

    def leads_with_email(self, email: str) -> list[str]:
        return _union(self._first.leads_with_email(email), self._second.leads_with_email(email))

    def record_ids(self, lead_id: str, crm: str) -> list[str]:
        return _union(self._first.record_ids(lead_id, crm), self._second.record_ids(lead_id, crm))


def _union(*lists: list[str]) -> list[str]:
    return sorted(set(itertools.chain.from_iterable(lists)))


# ------------------------------------------------------------------------------- in memory


class InMemoryIdentityIndex:
    """An IdentityIndex held in dicts: for a batch's own decisions, tests and dry runs."""

    def __init__(self, *, identity_field: str) -> None:
        self._identity_field = identity_field
        self._linked: dict[tuple[str, str], tuple[Snapshot, str]] = {}
        self._by_ref: defaultdict[tuple[str, CrossRef], set[str]] = defaultdict(set)
        self._by_email: defaultdict[str, set[str]] = defaultdict(set)
        self._records: defaultdict[tuple[str, str], set[str]] = defaultdict(set)

    @classmethod
    def of(
        cls, records: Mapping[str, Iterable[Snapshot]], *, identity_field: str
    ) -> InMemoryIdentityIndex:
        """An index of the records linked to each lead (lead id -> its records)."""
        index = cls(identity_field=identity_field)
        for lead_id in sorted(records):
            for snapshot in records[lead_id]:
                index.link(snapshot, lead_id)
        return index

    def link(self, snapshot: Snapshot, lead_id: str) -> None:
        """Link `snapshot`'s record to `lead_id`, replacing what was known of that record."""
        self._forget(snapshot.crm, snapshot.record_id)
        self._linked[(snapshot.crm, snapshot.record_id)] = (snapshot, lead_id)
        if snapshot.deleted:
            return  # kept as a link, but a deleted record answers nothing else
        for ref in cross_references(snapshot):
            self._by_ref[(snapshot.crm, ref)].add(lead_id)
        email = normalise_email(snapshot.canonical.get(self._identity_field))
        if email is not None:
            self._by_email[email].add(lead_id)
        self._records[(lead_id, snapshot.crm)].add(snapshot.record_id)

    def _forget(self, crm: str, record_id: str) -> None:
        known = self._linked.pop((crm, record_id), None)
        if known is None:
            return
        # Rebuilt from the remaining links: a lead may hold a ref or an email twice.
        remaining = list(self._linked.values())
        self._linked.clear()
        self._by_ref.clear()
        self._by_email.clear()
        self._records.clear()
        for snapshot, lead_id in remaining:
            self.link(snapshot, lead_id)

    def lead_for(self, crm: str, record_id: str) -> str | None:
        known = self._linked.get((crm, record_id))
        return known[1] if known is not None else None

    def leads_for_crossref(self, crm: str, ref: CrossRef) -> list[str]:
        return sorted(self._by_ref.get((crm, ref), ()))

    def leads_with_email(self, email: str) -> list[str]:
        return sorted(self._by_email.get(email, ()))

    def record_ids(self, lead_id: str, crm: str) -> list[str]:
        return sorted(self._records.get((lead_id, crm), ()))
