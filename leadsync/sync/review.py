"""The review queue as RevOps work it: `leadsync review` and the console's Exceptions page.

A record goes to review when matching it is ambiguous (several leads could be its person, or
the lead it matches already has a record of that CRM: a duplicate). So does a Contact no lead
names that could be a person's (`sync.people`): it has no record of its own to show, only its
candidates. A person resolves it:

    link   the record is that lead's: linked now, merged and written by the next sync
    apart  the record is a person of its own: a new lead, made by the next sync
    ignore leave it unlinked; it comes back once the conflict is another (other candidates,
           another reason), not while matching finds the same one again

Every sync matches the open items' records again, so an item whose cause went away (a
duplicate deleted or merged, an email corrected) closes itself, and a deleted record's item
closes too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leadsync.errors import UsageError
from leadsync.mapping.fields import FieldMap
from leadsync.sync import ids
from leadsync.sync.model import Lead, Snapshot
from leadsync.sync.people import MANUAL
from leadsync.sync.quarantine import same_record_id
from leadsync.sync.review_ledger import IGNORED, ReviewItem
from leadsync.sync.runs import SHORTEST_PREFIX
from leadsync.sync.store import Store

__all__ = [
    "ACTIONS",
    "Candidate",
    "ReviewView",
    "UnknownReviewError",
    "in_review_for",
    "resolve_review",
    "review_item",
    "review_items",
]

ACTIONS = ("link", "apart", "ignore")


class UnknownReviewError(UsageError):
    """No open review item for the record given, or a resolution that makes no sense."""


@dataclass(frozen=True, slots=True)
class Candidate:
    lead: Lead
    records: tuple[Snapshot, ...]


@dataclass(frozen=True, slots=True)
class ReviewView:
    item: ReviewItem
    record: Snapshot | None
    candidates: tuple[Candidate, ...]

    @property
    def crm(self) -> str:
        return self.item.crm

    @property
    def record_id(self) -> str:
        return self.item.record_id

    def rows(self, field_map: FieldMap) -> list[tuple[str, list[Any]]]:
        """Side by side: canonical field -> [the record's value, each candidate's value],
        the fields any of them holds, in the mapping's order."""
        columns: list[Any] = [self.record.canonical if self.record is not None else {}]
        columns += [candidate.lead.values for candidate in self.candidates]
        found = []
        for name in field_map.fields:
            values = [column.get(name) for column in columns]
            if any(value not in (None, "") for value in values):
                found.append((name, values))
        return found

    def as_dict(self, field_map: FieldMap) -> dict[str, Any]:
        return {
            "crm": self.crm,
            "record_id": self.record_id,
            "reason": self.item.reason,
            "since": self.item.at.isoformat(),
            "candidates": [
                {
                    "lead_id": c.lead.lead_id,
                    "stage": c.lead.stage,
                    "score": c.lead.score,
                    "records": [[r.crm, r.record_id] for r in c.records],
                }
                for c in self.candidates
            ],
            "fields": dict(self.rows(field_map)),
        }


def review_items(store: Store) -> list[ReviewView]:
    """The open review items, oldest first, each with its record and candidate leads."""
    return [_view(store, item) for item in store.reviews.items()]


def review_item(store: Store, record_id: str, *, crm: str | None = None) -> ReviewView:
    """The open review item of record `record_id` (a Salesforce id of 15 or 18 characters)."""
    found = [
        item
        for item in store.reviews.items()
        if same_record_id(item.record_id, record_id) and crm in (None, item.crm)
    ]
    if not found:
        raise UnknownReviewError(f"no record {record_id} in review (see `leadsync review`)")
    if len(found) > 1:
        raise UnknownReviewError(f"record {record_id} is in review in both CRMs: add --crm")
    return _view(store, found[0])


def in_review_for(store: Store, field_map: FieldMap, key: str) -> list[ReviewView]:
    """The open review items `key` names: by record id, or by the email the record holds."""
    views = review_items(store)
    if "@" not in key:
        return [view for view in views if same_record_id(view.record_id, key)]
    wanted = key.strip().lower()
    identity = field_map.identity_field
    return [
        view
        for view in views
        if view.record is not None
        and str(view.record.canonical.get(identity) or "").strip().lower() == wanted
    ]


def resolve_review(
    store: Store, view: ReviewView, action: str, *, lead_id: str | None = None
) -> str:
    """Resolve one item; returns what was decided, in words. The link (to `lead_id`, or a
    new lead for "apart") is made now and the record made pending: the next sync merges it."""
    if action not in ACTIONS:
        raise UnknownReviewError(f"resolve with one of {', '.join(ACTIONS)}, not {action!r}")
    crm, record_id = view.crm, view.record_id
    if action == "ignore":
        decided = IGNORED
    else:
        if action == "link":
            lead_id = _candidate_named(view, lead_id) if lead_id else _only_candidate(view)
            if not store.leads([lead_id]):
                raise UnknownReviewError(f"no lead {lead_id}")
            decided = f"linked to {lead_id}"
        else:
            lead_id = ids.new_id()
            decided = f"kept apart as lead {lead_id}"
        store.link([(crm, record_id, lead_id, MANUAL)])
        store.mark_pending(crm, [record_id])
        if view.record is None:
            # A person record no lead names (a Contact, `sync.people`) has no snapshot of its
            # own to merge: its lead is merged again, and writes to it.
            for lead_record in store.records_of([lead_id]).get(lead_id, []):
                store.mark_pending(lead_record.crm, [lead_record.record_id])
    store.reviews.resolve(crm, record_id, resolution=decided)
    return decided


def _only_candidate(view: ReviewView) -> str:
    if len(view.candidates) != 1:
        ids = ", ".join(c.lead.lead_id for c in view.candidates)
        raise UnknownReviewError(f"say which lead to link to (--lead): one of {ids}")
    return view.candidates[0].lead.lead_id


def _candidate_named(view: ReviewView, lead_id: str) -> str:
    """The lead `lead_id` names: a candidate's id whole or any unambiguous start of it (the
    review shows each candidate by its first 8 characters), else `lead_id` as given (any
    stored lead may be linked to)."""
    wanted = lead_id.strip().lower()
    candidates = [c.lead.lead_id for c in view.candidates]
    if wanted in candidates:
        return wanted
    if len(wanted) < SHORTEST_PREFIX:
        return lead_id
    starting = [candidate for candidate in candidates if candidate.startswith(wanted)]
    if len(starting) > 1:
        raise UnknownReviewError(
            f"{lead_id!r} names more than one candidate ({', '.join(starting)}): give more of it"
        )
    return starting[0] if starting else lead_id


def _view(store: Store, item: ReviewItem) -> ReviewView:
    record = store.snapshots(item.crm, [item.record_id]).get(item.record_id)
    leads = store.leads(list(item.candidates))
    records = store.records_of(list(item.candidates))
    candidates = tuple(
        Candidate(leads[lead_id], tuple(records.get(lead_id, ())))
        for lead_id in item.candidates
        if lead_id in leads
    )
    return ReviewView(item, record, candidates)
