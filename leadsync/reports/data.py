"""What the reports read from the store, in a few queries: no CRM is called.

The store's tables are read directly (`Store.engine`), once each, narrowed to the window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from leadsync.connectors.base import utc
from leadsync.connectors.traits import traits_of
from leadsync.mapping.lifecycle import Stage, Transition
from leadsync.sync import tables as t
from leadsync.sync.deals import chosen_opportunities
from leadsync.sync.model import Snapshot
from leadsync.sync.related import OPPORTUNITY, RelatedRecords
from leadsync.sync.run_log import RunRow
from leadsync.sync.sla.clocks import Clock
from leadsync.sync.store import Store

__all__ = ["LeadFacts", "OpportunityFacts", "ReportData", "load", "opportunities"]


@dataclass(frozen=True, slots=True)
class LeadFacts:
    lead_id: str
    stage: str | None
    score: int | None
    grade: str | None
    segment: Any  # the value of the field reports are broken down by (lead source)
    email: str | None = None
    history: tuple[Transition, ...] = ()
    # When the CRMs created the earliest of the lead's records, where the store holds it.
    created_at: datetime | None = None

    @property
    def entered_at(self) -> datetime | None:
        """When the lead entered the funnel: the CRMs' own creation date of its earliest
        record, else when leadsync first saw it (its first stage). A first sync sees every
        lead at once; the CRMs know when each came."""
        if self.created_at is not None:
            return self.created_at
        return self.history[0].at if self.history else None


@dataclass(frozen=True, slots=True)
class OpportunityFacts:
    """The opportunity a lead was converted into, as its CRM last said."""

    created_at: datetime | None
    close_date: date | None
    amount: float | None
    closed: bool
    won: bool


@dataclass(frozen=True)
class ReportData:
    leads: Sequence[LeadFacts]
    clocks: Sequence[Clock]
    runs: Sequence[RunRow]
    # (category, count) of writes that failed or were deferred in the window
    write_errors: Mapping[str, int] = field(default_factory=dict)
    quarantine_reasons: Sequence[str] = ()
    # lead id -> the opportunity its converted lead became (live ones only)
    opportunities: Mapping[str, OpportunityFacts] = field(default_factory=dict)


def load(
    store: Store,
    *,
    segment_field: str | None,
    since: datetime | None,
    until: datetime,
) -> ReportData:
    """The leads (with their whole history), clocks started and runs begun within
    [since, until), and the errors of the window."""
    histories = _histories(store)
    segments, created = _segments_and_created(store, segment_field)
    columns = (t.leads.c.lead_id, t.leads.c.stage, t.leads.c.score, t.leads.c.grade)
    leads = [
        LeadFacts(
            lead_id=row["lead_id"],
            stage=row["stage"],
            score=row["score"],
            grade=row["grade"],
            segment=segments.get(row["lead_id"]),
            email=row["email"],
            history=tuple(histories.get(row["lead_id"], ())),
            created_at=created.get(row["lead_id"]),
        )
        for row in _rows(store, sa.select(*columns, t.leads.c.email))
    ]
    clocks = store.sla.clocks(since=since, until=until)
    runs = [
        run
        for run in store.run_log.latest(limit=1_000_000)
        if (since is None or run.started_at >= utc(since)) and run.started_at < utc(until)
    ]
    return ReportData(
        leads=leads,
        clocks=clocks,
        runs=sorted(runs, key=lambda run: run.started_at),
        write_errors=_write_errors(store, since, until),
        quarantine_reasons=[
            row["reason"]
            for row in _rows(
                store,
                sa.select(t.quarantine.c.reason).where(t.quarantine.c.resolved_at.is_(None)),
            )
        ],
        opportunities=opportunities(store),
    )


def opportunities(store: Store) -> dict[str, OpportunityFacts]:
    """Lead id -> its opportunity: the related records of that object whose lead record
    (`parent_id`) is linked to a lead, and for a lead with none, the opportunity the contact
    roles of its person record (a Contact no lead names) choose (`sync.deals`)."""
    column = t.related.c
    query = sa.select(t.related).where(
        column.object_name == OPPORTUNITY, column.parent_id.is_not(None), column.deleted.is_(False)
    )
    rows = _rows(store, query)
    found: dict[str, OpportunityFacts] = {}
    for crm in sorted({row["crm"] for row in rows}):
        mine = [row for row in rows if row["crm"] == crm]
        leads = store.lead_ids_for(crm, [row["parent_id"] for row in mine])
        for row in mine:
            lead_id = leads.get(row["parent_id"])
            if lead_id is not None:
                found[lead_id] = _opportunity(row["raw"])
    for lead_id, facts in _opportunities_of_roles(store).items():
        found.setdefault(lead_id, facts)
    return found


def _opportunities_of_roles(store: Store) -> dict[str, OpportunityFacts]:
    query = sa.select(t.related.c.crm).distinct()
    related = RelatedRecords(store.engine)
    found: dict[str, OpportunityFacts] = {}
    for crm in (row["crm"] for row in _rows(store, query)):
        spec = traits_of(crm).contact_roles
        if spec is None:
            continue
        chosen = chosen_opportunities(related.of_object(crm, spec.object_name), spec)
        leads = store.lead_ids_for(crm, sorted(chosen))
        deals = related.get(crm, sorted(set(chosen.values())))
        for person_id, opportunity_id in chosen.items():
            deal = deals.get(opportunity_id)
            if person_id in leads and deal is not None and not deal.deleted:
                found[leads[person_id]] = _opportunity(deal.fields)
    return found


def _opportunity(raw: Mapping[str, Any]) -> OpportunityFacts:
    created, close, amount = raw.get("CreatedDate"), raw.get("CloseDate"), raw.get("Amount")
    return OpportunityFacts(
        created_at=_moment(created),
        close_date=close if isinstance(close, date) else _day(close),
        amount=None if amount in (None, "") else float(amount),
        closed=_flag(raw.get("IsClosed")),
        won=_flag(raw.get("IsWon")),
    )


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return utc(value)
    try:
        return utc(datetime.fromisoformat(str(value)))
    except (TypeError, ValueError):
        return None


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except (TypeError, ValueError):
        return None


def _flag(value: Any) -> bool:
    # JSON gives a boolean; a Bulk query's CSV gives "true".
    return value is True or str(value).strip().lower() == "true"


def _histories(store: Store) -> dict[str, list[Transition]]:
    column = t.transitions.c
    query = sa.select(t.transitions).order_by(column.lead_id, column.at, column.id)
    found: dict[str, list[Transition]] = {}
    for row in _rows(store, query):
        found.setdefault(row["lead_id"], []).append(
            Transition(
                None if row["from_stage"] is None else Stage(row["from_stage"]),
                Stage(row["to_stage"]),
                row["at"],
                row["reason"],
                row["kind"],
            )
        )
    return found


def _write_errors(store: Store, since: datetime | None, until: datetime) -> dict[str, int]:
    column = t.writes.c
    # One row per record and batch: a record's fields share their outcome.
    records = (
        sa.select(column.status, column.category, column.run_id, column.crm, column.record_id)
        .where(column.status.in_(("failed", "deferred")), column.at < utc(until))
        .distinct()
    )
    if since is not None:
        records = records.where(column.at >= utc(since))
    counts: dict[str, int] = {}
    for row in _rows(store, records):
        category = row["category"] or row["status"]
        key = f"{row['crm']}: {category}" + (" (deferred)" if row["status"] == "deferred" else "")
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


# Leads read at a time for their segments: their values are packed (`leads.packed`).
SEGMENT_PAGE = 2_000


def _segments_and_created(
    store: Store, segment_field: str | None
) -> tuple[dict[str, Any], dict[str, datetime]]:
    """Lead id -> its value of `segment_field`, for the leads that hold one; and lead id ->
    the earliest creation date the CRMs stamped on its records, for those the store holds
    one of."""
    segments: dict[str, Any] = {}
    created: dict[str, datetime] = {}
    after: str | None = None
    while ids := store.lead_ids_after(after, limit=SEGMENT_PAGE):
        if segment_field is not None:
            for lead_id, lead in store.leads(ids).items():
                value = lead.values.get(segment_field)
                if value is not None:
                    segments[lead_id] = value
        for lead_id, records in store.records_of(ids).items():
            stamps = [stamp for record in records if (stamp := _created(record)) is not None]
            if stamps:
                created[lead_id] = min(stamps)
        after = ids[-1]
    return segments, created


def _created(record: Snapshot) -> datetime | None:
    try:
        name = traits_of(record.crm).created_field
    except ValueError:  # a CRM leadsync has no traits of: nothing known
        return None
    value = record.raw.get(name) if name else None
    return None if value in (None, "") else _moment(value)


def _rows(store: Store, query: sa.Select[Any]) -> list[sa.RowMapping]:
    with store.engine.connect() as connection:
        return list(connection.execute(query).mappings())
