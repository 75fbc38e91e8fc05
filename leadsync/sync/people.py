"""People of their own: a related record that is a person's record in its CRM though no lead
record names it (a Salesforce Contact that sales created or imported, never a Lead).

Such a record is matched to a lead as identity matches any record, in the same order (see
`sync.identity`): leadsync's own link, a cross-reference (the person's record in the other CRM
names it: identity's PERSON_OBJECTS), then the normalised email. Once matched it is linked,
and the lead's results go to it (the mapping's `[writeback.<crm>.contact]` targets) in place
of a lead record, as they go to the Contact of a converted lead. It never votes in the
merge, and never starts a lead: a record that matches nobody waits until a lead holds its
email.

Ambiguity goes to review, never a guess:

    several such records match one lead      two Contacts hold the person's email
    the lead has a live lead record there    a Contact and a live Lead for one person (a
                                             link a person made by hand stands: the lead
                                             record is written, the Contact is not)
    several leads could be its person        as for any record

A lead with such a record is the CRM's already: the handoff matches it and creates nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from leadsync.sync.identity import InMemoryIdentityIndex, match
from leadsync.sync.model import Match, MatchKind, Snapshot
from leadsync.sync.related import Related

__all__ = ["PeopleDecisions", "match_people", "person_view"]

# The link kind of a person's own decision (`leadsync review ... link`).
MANUAL = "manual"


@dataclass
class PeopleDecisions:
    """What matching a slice's person records decided."""

    # Lead id -> the record its results are written to.
    attached: dict[str, Related] = field(default_factory=dict)
    # Lead id -> why a record that may be its person's waits in review.
    in_review: dict[str, str] = field(default_factory=dict)
    # New links, (crm, record_id, lead_id, kind) each; and review items, as the store takes them.
    links: list[tuple[str, str, str, str]] = field(default_factory=list)
    reviews: list[tuple[str, str, tuple[str, ...], str]] = field(default_factory=list)


def person_view(record: Related, *, identity_field: str) -> Snapshot:
    """`record` as identity matches it: its email under the identity field, its own id as
    the cross-reference it is named by."""
    canonical = {identity_field: record.email} if record.email else {}
    return Snapshot(
        record.crm,
        record.record_id,
        record.modified_at,
        dict(record.fields),
        canonical,
        deleted=record.deleted,
        object_name=record.object_name,
    )


def match_people(
    found: Sequence[Related],
    records: Mapping[str, Sequence[Snapshot]],
    links: Mapping[tuple[str, str], tuple[str, str]],
    *,
    leads: Collection[str],
    identity_field: str,
) -> PeopleDecisions:
    """Match the person records `found` (live, no lead record naming them) to the leads whose
    records `records` holds (lead id -> its records: the leads being merged, `leads`, and any
    other that holds one of their emails or links). `links` gives each record of `found`
    that is linked already: (crm, record id) -> (lead id, link kind). Only `leads` get a
    record attached; review items are made whoever the candidates are."""
    index = InMemoryIdentityIndex.of(records, identity_field=identity_field)
    views = {r.record_id: person_view(r, identity_field=identity_field) for r in found}
    for record in found:
        linked = links.get((record.crm, record.record_id))
        if linked is not None:
            index.link(views[record.record_id], linked[0])
    # Matched against the index as it stands, not one after another: two records of one
    # person found together are both in doubt, neither is the first come.
    matched: dict[str, list[tuple[Related, Match]]] = {}
    decisions = PeopleDecisions()
    for record in sorted(found, key=lambda r: (r.crm, r.record_id)):
        found_match = match(views[record.record_id], index, identity_field=identity_field)
        if found_match is None or found_match.kind is MatchKind.NEW:
            continue
        if found_match.kind is MatchKind.REVIEW:
            _review(decisions, record, found_match.candidates, found_match.reason, leads)
            continue
        assert found_match.lead_id is not None
        matched.setdefault(found_match.lead_id, []).append((record, found_match))
    for lead_id, pairs in sorted(matched.items()):
        if len(pairs) > 1:
            held = ", ".join(record.record_id for record, _ in pairs)
            reason = f"{len(pairs)} records ({held}) are the person of lead {lead_id}"
            for record, _ in pairs:
                _review(decisions, record, (lead_id,), reason, leads)
            continue
        ((record, found_match),) = pairs
        lead_record = _live_lead_record(records.get(lead_id, ()), record.crm)
        manual = links.get((record.crm, record.record_id), ("", ""))[1] == MANUAL
        if lead_record is not None and not manual:
            reason = (
                f"{found_match.reason}, which has {record.crm} record {lead_record} already: "
                "a duplicate"
            )
            _review(decisions, record, (lead_id,), reason, leads)
            continue
        if found_match.kind is not MatchKind.LINKED:
            decisions.links.append((record.crm, record.record_id, lead_id, found_match.kind.value))
        if lead_record is None and lead_id in leads:
            decisions.attached[lead_id] = record
    return decisions


def _live_lead_record(records: Sequence[Snapshot], crm: str) -> str | None:
    live = sorted(r.record_id for r in records if r.crm == crm and not r.deleted)
    return live[0] if live else None


def _review(
    decisions: PeopleDecisions,
    record: Related,
    candidates: Sequence[str],
    reason: str,
    leads: Collection[str],
) -> None:
    what = f"{record.object_name} {reason}"
    decisions.reviews.append((record.crm, record.record_id, tuple(candidates), what))
    for lead_id in candidates:
        if lead_id in leads:
            decisions.in_review.setdefault(lead_id, what)
