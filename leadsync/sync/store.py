"""The store: the only place leadsync keeps state, on SQLite by default or PostgreSQL by URL.

`Store` keeps the lead aggregate, the tables a run saves together:

    ingestion       save_page (snapshots + quarantine + cursor in one transaction),
                    known_stamps, snapshots, pending_records, pending_ids, mark_reconciled,
                    mark_pending, mark_all_pending, mark_unlisted_deleted (the sweep)
    identity        link, lead_ids_for, leads_by_email, records_of
    leads           save_leads, leads, find_leads
    decisions       save_decisions (leads + links + review items + transitions + SLA clocks
                    of one batch, in one transaction)

and reaches a repository of its own for each other table (each module says what it holds):

    run_log         every run, started to ended (`sync.run_log`)
    cursors         where each pull resumes (`sync.cursors`; moved by save_page only)
    audit_log       every write, and the echo fingerprints (`sync.audit_log`)
    quarantine      records not usable, writes refused and tried again (`sync.quarantine_ledger`)
    reviews         ambiguous matches a person decides (`sync.review_ledger`)
    transitions     each lead's stage history (`sync.transition_log`)
    handoffs        each lead's handoff to sales (`sync.handoff_ledger`)
    related         Salesforce Contacts and Opportunities (`sync.related`)
    sla             the SLA clocks and their events (`sync.sla.ledger`)

The blobs of snapshots, leads and the audit log are packed with dictionaries the store
chooses per kind (`sync.dictionaries`).

Every method is one short transaction, retried only after transient errors (a locked SQLite
file, a PostgreSQL serialization failure or deadlock), and every upsert is idempotent, so a run
killed anywhere, or several replicas on one PostgreSQL, leave the store consistent. Batch
lookups return only what they find: an id that is not there is absent from the answer.
Timestamps are timezone-aware UTC in and out; naive ones are refused.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadsync.connectors.base import Position, utc
from leadsync.mapping.lifecycle import Transition
from leadsync.sync import packed
from leadsync.sync import tables as t
from leadsync.sync.audit_log import AuditLog
from leadsync.sync.cursors import BACKFILL, INCREMENTAL, Cursors, cursor_row
from leadsync.sync.database import (
    check_schema,
    make_engine,
    retry_transient,
    upgrade,
    writing,
)
from leadsync.sync.dictionaries import PackingDictionaries
from leadsync.sync.handoff_ledger import HandoffLedger

# One normalisation for matching and for the email index, or the two drift apart.
from leadsync.sync.identity import eighteen_character_id, normalise_email, people_named
from leadsync.sync.model import FieldChoice, Lead, Snapshot
from leadsync.sync.quarantine_ledger import (
    Quarantined,
    QuarantineLedger,
    resolve_quarantined,
    upsert_quarantined,
)
from leadsync.sync.related import Related, RelatedRecords, save_related
from leadsync.sync.review_ledger import ReviewLedger, close_reviews, upsert_reviews
from leadsync.sync.run_log import RunLog
from leadsync.sync.sla.clocks import ClockChanges
from leadsync.sync.sla.ledger import SlaLedger, save_clock_changes
from leadsync.sync.sorted_json import sorted_json_text
from leadsync.sync.sql import (
    WRITE_CHUNK,
    Insert,
    batches,
    chunks,
    excluded,
    execute_encoded,
    insert_for,
    last_by_key,
    time_param,
    upsert,
    upsert_statement,
)
from leadsync.sync.tables import unstorable
from leadsync.sync.transition_log import TransitionLog, insert_transitions

log = logging.getLogger("leadsync.sync")

__all__ = [
    "Store",
    "content_digest",
]

SNAPSHOT_DICTIONARY = "snapshots:"
LEAD_DICTIONARY = "leads"


# ------------------------------------------------------------------------------------- values


def content_digest(snapshot: Snapshot) -> str:
    """A fingerprint of what a snapshot holds: stamp, raw and canonical values, deletion.

    Two saves with the same digest are the same content: the second leaves `pending` alone.
    """
    return _digest(
        snapshot.modified_at,
        t.encode_value(snapshot.raw),
        t.encode_value(snapshot.canonical),
        snapshot.deleted,
    )


def _digest(modified_at: datetime, raw: Any, canonical: Any, deleted: bool) -> str:
    """`content_digest` of raw and canonical values `encode_value` already gave. The text
    hashed is the one every earlier version hashed: a new one would make every stored record
    look changed (pending) at its next pull."""
    content = {
        "modified_at": t.encode_value(modified_at),
        "raw": raw,
        "canonical": canonical,
        "deleted": deleted,
    }
    return hashlib.sha256(sorted_json_text(content).encode()).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


# -------------------------------------------------------------------------------------- store


class Store:
    """leadsync's state. Open one per process; it is safe to share between threads."""

    def __init__(
        self,
        url: str,
        *,
        migrate: bool = True,
        email_field: str = "email",
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """Open the database at `url` (sqlite:///path or postgresql+psycopg://...).

        With `migrate` the schema is created or brought up to date first (a new SQLite file is
        created); without it a database not at the newest schema raises SchemaOutOfDateError.
        `email_field` is the canonical field leads are matched on; `clock` stamps bookkeeping
        times (when a row was saved, linked, written).
        """
        self._engine = make_engine(url)
        self._email_field = email_field
        self._clock = clock
        # What each kind of blob is packed with, and the dictionaries packed blobs name.
        self._dictionaries = PackingDictionaries(self._engine)
        self._codebook = self._dictionaries.codebook
        try:
            if migrate:
                upgrade(self._engine)
            else:
                check_schema(self._engine)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def run_log(self) -> RunLog:
        """The runs leadsync made, started to ended."""
        return RunLog(self._engine)

    @property
    def cursors(self) -> Cursors:
        """Where each pull resumes, by CRM and stream."""
        return Cursors(self._engine)

    @property
    def audit_log(self) -> AuditLog:
        """Every write leadsync made, and what it last wrote to each field (its echo)."""
        return AuditLog(self._engine, self._clock, self._dictionaries)

    @property
    def quarantine(self) -> QuarantineLedger:
        """Records leadsync could not use, and writes a CRM refused, with their reasons."""
        return QuarantineLedger(self._engine, self._clock)

    @property
    def reviews(self) -> ReviewLedger:
        """Matches too ambiguous to make, waiting for a person."""
        return ReviewLedger(self._engine, self._clock)

    @property
    def transitions(self) -> TransitionLog:
        """Each lead's lifecycle history."""
        return TransitionLog(self._engine)

    @property
    def sla(self) -> SlaLedger:
        """The SLA ledger's clocks and events."""
        return SlaLedger(self._engine)

    @property
    def related(self) -> RelatedRecords:
        """The records of related objects (Salesforce Contacts and Opportunities)."""
        return RelatedRecords(self._engine)

    @property
    def handoffs(self) -> HandoffLedger:
        """Each lead's handoff to the CRM sales work in."""
        return HandoffLedger(self._engine)

    @property
    def codebook(self) -> packed.Codebook:
        """The dictionaries blobs of this store name, for reading its packed columns directly
        (`sync.packed`)."""
        return self._codebook

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for reports and diagnostics that read the tables directly."""
        return self._engine

    def close(self) -> None:
        """Release the connections."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _now(self) -> datetime:
        return utc(self._clock())

    # ----------------------------------------------------------------------------- ingestion

    @retry_transient
    def save_page(
        self,
        crm: str,
        snapshots: Sequence[Snapshot],
        *,
        quarantined: Sequence[Quarantined] = (),
        position: Position | None,
        checkpoint: str | None = None,
        stream: str | None = None,
        hold_for: str | None = None,
        run_id: str,
        related: Sequence[Related] = (),
    ) -> None:
        """Commit one pulled page: its snapshots, its quarantined records and the cursor past
        it, all or nothing, so a run killed anywhere resumes without skipping or doubling.
        `related` are records of related objects pulled or read with it (`sync.related`).

        A snapshot whose content (stamp, raw, canonical, deleted) changed becomes pending;
        one saved again unchanged keeps its pending flag. Saving a record closes its open
        quarantine entry. `position` moves the incremental cursor, `checkpoint` a backfill's
        (`stream` defaults to INCREMENTAL or BACKFILL accordingly); with neither the cursor
        stays. With `hold_for`, a changed snapshot is held for that backfill instead of made
        pending (`release_held` makes it pending): a sync does not merge half a backfill's
        pull. Snapshot.lead_id is ignored here: links decide it.

        A snapshot the database cannot hold (see `tables.unstorable`) is quarantined with its
        reason instead, so one bad record never stops every sync.
        """
        _check_page(crm, snapshots, quarantined)
        if position is not None and checkpoint is not None:
            raise ValueError("a page moves a position or a checkpoint, not both")
        now = self._now()
        snapshots, refused = self._storable(snapshots, run_id=run_id, now=now)
        quarantined = [*quarantined, *refused]
        with writing(self._engine) as connection:
            dictionary = None
            if snapshots:
                samples = (
                    sa.select(t.snapshots.c.packed)
                    .where(t.snapshots.c.crm == crm)
                    .order_by(t.snapshots.c.saved_at.desc())
                )
                dictionary = self._dictionaries.choose(
                    connection,
                    f"{SNAPSHOT_DICTIONARY}{crm}",
                    samples,
                    now,
                    batch=lambda: map(_snapshot_text, snapshots),
                    batch_size=len(snapshots),
                )
            _upsert_snapshots(
                connection,
                snapshots,
                run_id=run_id,
                now=now,
                hold_for=hold_for,
                dictionary=dictionary,
            )
            resolve_quarantined(connection, crm, [s.record_id for s in snapshots], now)
            upsert_quarantined(connection, quarantined)
            save_related(connection, related, run_id=run_id, now=now)
            if position is not None or checkpoint is not None:
                default = INCREMENTAL if position is not None else BACKFILL
                cursor = cursor_row(
                    crm, stream or default, position, checkpoint, run_id=run_id, now=now
                )
                upsert(connection, t.cursors, [cursor])
        self._dictionaries.keep(f"{SNAPSHOT_DICTIONARY}{crm}", dictionary)

    def _storable(
        self, snapshots: Sequence[Snapshot], *, run_id: str, now: datetime
    ) -> tuple[list[Snapshot], list[Quarantined]]:
        kept, refused = [], []
        for snapshot in snapshots:
            reasons = unstorable(snapshot.raw) or unstorable(snapshot.canonical)
            email = normalise_email(snapshot.canonical.get(self._email_field))
            if email is not None and len(email) > t.MAX_EMAIL_LENGTH:
                reasons.append(f"{self._email_field}: longer than an address can be")
            if reasons:
                reason = "; ".join(reasons)
                entry = Quarantined(
                    snapshot.crm, snapshot.record_id, reason, snapshot.raw, run_id, now
                )
                refused.append(entry)
            else:
                kept.append(snapshot)
        return kept, refused

    @retry_transient
    def known_stamps(self, crm: str, record_ids: Sequence[str]) -> dict[str, datetime]:
        """How far the store knows each of `record_ids` (a connector's KnownStamps): the
        stamp of the snapshot it holds, or, where later, every version before leadsync's own
        last write to the record. That write's version itself is not known: a person's edit
        made between the pre-write check and the write is in it, and must still be pulled."""
        s, e = t.snapshots, t.expected
        query = sa.select(s.c.record_id, s.c.modified_at, e.c.modified_at.label("written")).join(
            e, sa.and_(e.c.crm == s.c.crm, e.c.record_id == s.c.record_id), isouter=True
        )
        found: dict[str, datetime] = {}
        with self._engine.connect() as connection:
            for chunk in chunks(record_ids):
                rows = connection.execute(query.where(s.c.crm == crm, s.c.record_id.in_(chunk)))
                for record_id, modified_at, written in rows:
                    found[record_id] = (
                        modified_at if written is None else max(modified_at, written - _JUST_BEFORE)
                    )
        return found

    @retry_transient
    def snapshots(self, crm: str, record_ids: Sequence[str]) -> dict[str, Snapshot]:
        """The last seen snapshot of each of `record_ids`, with the lead it is linked to."""
        found: dict[str, Snapshot] = {}
        with self._engine.connect() as connection:
            for chunk in chunks(record_ids):
                query = _snapshot_query().where(
                    t.snapshots.c.crm == crm, t.snapshots.c.record_id.in_(chunk)
                )
                found.update(
                    {
                        row.record_id: _snapshot(row, self._codebook)
                        for row in connection.execute(query)
                    }
                )
        return found

    @retry_transient
    def identity_snapshots(
        self, crm: str, record_ids: Sequence[str], *, raw: Sequence[str], canonical: Sequence[str]
    ) -> list[Snapshot]:
        """The snapshots of `record_ids` holding only the `raw` and `canonical` fields of their
        values, and no change times: what grouping records by identity reads. A first sync
        groups every pending record before it settles them; its values alone, unpacked but
        not decoded, cost a quarter of a whole snapshot's read."""
        found: list[Snapshot] = []
        with self._engine.connect() as connection:
            for chunk in chunks(record_ids):
                query = _snapshot_query().where(
                    t.snapshots.c.crm == crm, t.snapshots.c.record_id.in_(chunk)
                )
                found.extend(
                    _identity_snapshot(row, self._codebook, raw, canonical)
                    for row in connection.execute(query)
                )
        return found

    def deleted_records(self, crm: str, record_ids: Sequence[str]) -> set[str]:
        """The ones of `record_ids` the store last saw deleted: lead records and records of
        related objects (a Contact) alike."""
        held = self.snapshots(crm, record_ids)
        related = self.related.get(crm, [i for i in record_ids if i not in held])
        return {i for i, row in held.items() if row.deleted} | {
            i for i, row in related.items() if row.deleted
        }

    @retry_transient
    def pending_records(self, crm: str, *, limit: int | None = None) -> list[Snapshot]:
        """Snapshots saved but not yet reconciled, oldest change first."""
        query = (
            _snapshot_query()
            .where(t.snapshots.c.crm == crm, t.snapshots.c.pending.is_(True))
            .order_by(t.snapshots.c.modified_at, t.snapshots.c.record_id)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [_snapshot(row, self._codebook) for row in connection.execute(query)]

    def pending_ids(self, crm: str) -> list[str]:
        """The ids of the records `pending_records` returns, in its order: what a settle
        groups into slices before it reads them a slice at a time."""
        query = (
            sa.select(t.snapshots.c.record_id)
            .where(t.snapshots.c.crm == crm, t.snapshots.c.pending.is_(True))
            .order_by(t.snapshots.c.modified_at, t.snapshots.c.record_id)
        )
        with self._engine.connect() as connection:
            return list(connection.execute(query).scalars())

    @retry_transient
    def pending_from_plans(self) -> dict[str, set[str]]:
        """CRM -> the ids of the pending records a plan pulled: stored for the sync after it,
        which settles them as if it had pulled them itself (and counts them so, once)."""
        plans = sa.select(t.runs.c.run_id).where(t.runs.c.kind == "plan")
        query = sa.select(t.snapshots.c.crm, t.snapshots.c.record_id).where(
            t.snapshots.c.pending.is_(True), t.snapshots.c.run_id.in_(plans)
        )
        found: dict[str, set[str]] = {}
        with self._engine.connect() as connection:
            for crm, record_id in connection.execute(query):
                found.setdefault(crm, set()).add(record_id)
        return found

    @retry_transient
    def saved_by(self, crm: str, record_ids: Sequence[str], run_id: str) -> set[str]:
        """The ones of `record_ids` whose content as stored run `run_id` saved (pulled)."""
        found: set[str] = set()
        with self._engine.connect() as connection:
            for chunk in chunks(record_ids):
                query = sa.select(t.snapshots.c.record_id).where(
                    t.snapshots.c.crm == crm,
                    t.snapshots.c.record_id.in_(chunk),
                    t.snapshots.c.run_id == run_id,
                )
                found.update(connection.execute(query).scalars())
        return found

    def mark_pending(self, crm: str, record_ids: Sequence[str]) -> None:
        """Make `record_ids` pending: the next run merges their leads again."""
        self._set_pending(crm, record_ids, pending=True)

    def mark_reconciled(self, crm: str, record_ids: Sequence[str]) -> None:
        """Clear the pending flag of `record_ids`: their changes are reconciled and committed."""
        self._set_pending(crm, record_ids, pending=False)

    @retry_transient
    def _set_pending(self, crm: str, record_ids: Sequence[str], *, pending: bool) -> None:
        with writing(self._engine) as connection:
            for chunk in chunks(record_ids):
                connection.execute(
                    t.snapshots.update()
                    .where(t.snapshots.c.crm == crm, t.snapshots.c.record_id.in_(chunk))
                    .values(pending=pending)
                )

    @retry_transient
    def release_held(self, hold_for: str) -> int:
        """Make the snapshots held for a backfill pending; how many there were."""
        with writing(self._engine) as connection:
            done = connection.execute(
                t.snapshots.update()
                .where(t.snapshots.c.held_for == hold_for)
                .values(pending=True, held_for=None)
            )
        return int(done.rowcount or 0)

    @retry_transient
    def mark_all_pending(self) -> int:
        """Make every snapshot pending: the next merge reconsiders every lead (the nightly
        sweep, after a lead-definition change); how many there are."""
        with writing(self._engine) as connection:
            done = connection.execute(t.snapshots.update().values(pending=True))
        return int(done.rowcount or 0)

    @retry_transient
    def mark_gone(self, crm: str, record_ids: Sequence[str], *, run_id: str) -> None:
        """A write found these records of `crm` gone (deleted, archived): mark them deleted
        and pending, for the next merge to take them off their leads. A later pull that lists
        one again (restored) saves it live."""
        with writing(self._engine) as connection:
            for chunk in chunks(record_ids):
                connection.execute(
                    t.snapshots.update()
                    .where(t.snapshots.c.crm == crm, t.snapshots.c.record_id.in_(chunk))
                    .values(deleted=True, pending=True, run_id=run_id, saved_at=self._now())
                )

    @retry_transient
    def mark_unlisted_deleted(self, crm: str, *, listed_since: datetime, run_id: str) -> int:
        """After a complete full pull of `crm` that began at `listed_since`: the live records
        it did not list (saved before it began) are gone from the CRM (deleted, archived,
        merged away); mark them deleted and pending. Records in open quarantine are listed
        but unusable, not gone. How many were marked."""
        quarantined = sa.select(t.quarantine.c.record_id).where(
            t.quarantine.c.crm == crm, t.quarantine.c.resolved_at.is_(None)
        )
        with writing(self._engine) as connection:
            done = connection.execute(
                t.snapshots.update()
                .where(
                    t.snapshots.c.crm == crm,
                    t.snapshots.c.deleted.is_(False),
                    t.snapshots.c.saved_at < utc(listed_since),
                    t.snapshots.c.record_id.not_in(quarantined),
                )
                .values(deleted=True, pending=True, run_id=run_id, saved_at=self._now())
            )
        return int(done.rowcount or 0)

    # ------------------------------------------------------------------------------ identity

    @retry_transient
    def link(self, links: Sequence[tuple[str, str, str, str]]) -> None:
        """Link records to leads, (crm, record_id, lead_id, kind) each; a record has one lead,
        so linking it again moves it. `linked_at` changes only when the lead does."""
        with writing(self._engine) as connection:
            _upsert_links(connection, links, self._now())

    @retry_transient
    def lead_ids_for(self, crm: str, record_ids: Sequence[str]) -> dict[str, str]:
        """The lead each of `record_ids` is linked to."""
        found: dict[str, str] = {}
        with self._engine.connect() as connection:
            for chunk in chunks(record_ids):
                query = sa.select(t.links.c.record_id, t.links.c.lead_id).where(
                    t.links.c.crm == crm, t.links.c.record_id.in_(chunk)
                )
                found.update(
                    {
                        row["record_id"]: row["lead_id"]
                        for row in connection.execute(query).mappings()
                    }
                )
        return found

    @retry_transient
    def links_for(self, crm: str, record_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The (lead id, link kind) each of `record_ids` is linked with: how a link was made
        matters where a person's own decision ("manual") must stand."""
        found: dict[str, tuple[str, str]] = {}
        with self._engine.connect() as connection:
            for chunk in chunks(record_ids):
                query = sa.select(t.links.c.record_id, t.links.c.lead_id, t.links.c.kind).where(
                    t.links.c.crm == crm, t.links.c.record_id.in_(chunk)
                )
                for row in connection.execute(query):
                    found[row.record_id] = (row.lead_id, row.kind)
        return found

    @retry_transient
    def linked_to(self, crm: str, lead_ids: Sequence[str]) -> list[str]:
        """The ids of `crm`'s records linked to any of `lead_ids` (sorted)."""
        found: set[str] = set()
        with self._engine.connect() as connection:
            for chunk in chunks(lead_ids):
                # By lead id alone, the CRM sorted out here: with `crm = ?` in the query,
                # SQLite searched the primary key (crm, record_id), so read every link of
                # the CRM for each chunk (a what-if of 100,000 leads spent a seventh of its
                # time there); a lead has a link or two.
                query = sa.select(t.links.c.crm, t.links.c.record_id).where(
                    t.links.c.lead_id.in_(chunk)
                )
                found.update(record_id for of, record_id in connection.execute(query) if of == crm)
        return sorted(found)

    @retry_transient
    def leads_naming(self, record_ids: Sequence[str]) -> list[str]:
        """The ids of the leads with a live record that names one of `record_ids` as its
        person record (see `identity.people_named`), sorted."""
        found: set[str] = set()
        joined = t.snapshots.join(
            t.links,
            sa.and_(
                t.links.c.crm == t.snapshots.c.crm,
                t.links.c.record_id == t.snapshots.c.record_id,
            ),
        )
        with self._engine.connect() as connection:
            for chunk in chunks(record_ids):
                query = (
                    sa.select(t.links.c.lead_id)
                    .select_from(joined)
                    .where(
                        t.snapshots.c.person_named.in_(chunk),
                        t.snapshots.c.deleted.is_(False),
                    )
                )
                found.update(connection.execute(query).scalars())
        return sorted(found)

    @retry_transient
    def leads_by_email(self, emails: Sequence[str]) -> dict[str, list[str]]:
        """Normalised email -> the ids of the leads holding it (sorted); blanks are ignored."""
        wanted = [email for email in map(normalise_email, emails) if email is not None]
        found: dict[str, list[str]] = {}
        with self._engine.connect() as connection:
            for chunk in chunks(wanted):
                query = (
                    sa.select(t.leads.c.email, t.leads.c.lead_id)
                    .where(t.leads.c.email.in_(chunk))
                    .order_by(t.leads.c.lead_id)
                )
                for row in connection.execute(query).mappings():
                    found.setdefault(row["email"], []).append(row["lead_id"])
        return found

    @retry_transient
    def records_of(self, lead_ids: Sequence[str]) -> dict[str, list[Snapshot]]:
        """Lead id -> the snapshots of the records linked to it (by CRM, then record id)."""
        found: dict[str, list[Snapshot]] = {}
        with self._engine.connect() as connection:
            for chunk in chunks(lead_ids):
                query = (
                    _snapshot_query(outer=False)
                    .where(t.links.c.lead_id.in_(chunk))
                    .order_by(t.snapshots.c.crm, t.snapshots.c.record_id)
                )
                for row in connection.execute(query):
                    found.setdefault(row.lead_id, []).append(_snapshot(row, self._codebook))
        return found

    # --------------------------------------------------------------------------------- leads

    @retry_transient
    def save_leads(self, leads: Sequence[Lead]) -> None:
        """Insert or replace `leads`, keeping the email index in step with their values."""
        now = self._now()
        with writing(self._engine) as connection:
            dictionary = self._lead_dictionary(connection, leads, now)
            _upsert_leads(connection, leads, self._email_field, now, dictionary)
        self._dictionaries.keep(LEAD_DICTIONARY, dictionary)

    @retry_transient
    def lead_ids_after(self, after: str | None, *, limit: int) -> list[str]:
        """Up to `limit` lead ids after `after` (from the first with None), in order: every
        stored lead, a page at a time."""
        query = sa.select(t.leads.c.lead_id).order_by(t.leads.c.lead_id).limit(limit)
        if after is not None:
            query = query.where(t.leads.c.lead_id > after)
        with self._engine.connect() as connection:
            return list(connection.execute(query).scalars())

    @retry_transient
    def leads(self, lead_ids: Sequence[str]) -> dict[str, Lead]:
        """The leads with these ids."""
        found: dict[str, Lead] = {}
        with self._engine.connect() as connection:
            for chunk in chunks(lead_ids):
                query = _lead_query().where(t.leads.c.lead_id.in_(chunk))
                found.update(
                    {row.lead_id: _lead(row, self._codebook) for row in connection.execute(query)}
                )
        return found

    @retry_transient
    def find_leads(self, *, email: str | None = None, crm_id: str | None = None) -> list[Lead]:
        """The leads with this email and/or linked to a record with this id (in any CRM), or
        handed off as it: a record the handoff created is linked only once a pull reads it."""
        if email is None and crm_id is None:
            raise ValueError("find_leads needs an email or a CRM record id")
        query = _lead_query().order_by(t.leads.c.lead_id)
        if email is not None:
            query = query.where(t.leads.c.email == normalise_email(email))
        if crm_id is not None:
            # A Salesforce id as people copy it from its pages (15 characters) or as the API
            # gives it (18): the store holds the API's.
            ids = sorted({crm_id, eighteen_character_id(crm_id)})
            linked = sa.select(t.links.c.lead_id).where(t.links.c.record_id.in_(ids))
            # Not indexed: read by `explain` alone (the command, the console's lead page),
            # one id at a time.
            handed_off = sa.select(t.handoffs.c.lead_id).where(t.handoffs.c.record_id.in_(ids))
            query = query.where(t.leads.c.lead_id.in_(linked.union(handed_off)))
        with self._engine.connect() as connection:
            return [_lead(row, self._codebook) for row in connection.execute(query)]

    # ------------------------------------------------------------------- one batch's decisions

    @retry_transient
    def save_decisions(
        self,
        *,
        leads: Sequence[Lead] = (),
        links: Sequence[tuple[str, str, str, str]] = (),
        reviews: Sequence[tuple[str, str, Sequence[str], str]] = (),
        transitions: Sequence[tuple[str, Transition]] = (),
        clocks: Sequence[ClockChanges] = (),
        run_id: str,
    ) -> None:
        """What matching and merging one batch decided, committed together: the leads, the
        links, the review items ((crm, record_id, candidates, reason) each), the lifecycle
        transitions and the SLA clocks they start and stop. Saved apart, a run killed after
        the leads (and their new stages) but before the transitions would lose those
        transitions, and their clocks, for good: the next run starts from the saved stage."""
        now = self._now()
        with writing(self._engine) as connection:
            dictionary = self._lead_dictionary(connection, leads, now)
            _upsert_leads(connection, leads, self._email_field, now, dictionary)
            _upsert_links(connection, links, now)
            close_reviews(connection, links, now)
            upsert_reviews(connection, reviews, run_id, now)
            insert_transitions(connection, transitions, run_id)
            save_clock_changes(connection, clocks, run_id=run_id, now=now)
        self._dictionaries.keep(LEAD_DICTIONARY, dictionary)

    def _lead_dictionary(
        self, connection: Connection, leads: Sequence[Lead], now: datetime
    ) -> packed.Dictionary | None:
        if not leads:
            return None
        samples = sa.select(t.leads.c.packed).order_by(t.leads.c.updated_at.desc())
        return self._dictionaries.choose(
            connection,
            LEAD_DICTIONARY,
            samples,
            now,
            batch=lambda: map(_lead_text, leads),
            batch_size=len(leads),
        )


# --------------------------------------------------------------------------- rows of each table


def _upsert_snapshots(
    connection: Connection,
    snapshots: Sequence[Snapshot],
    *,
    run_id: str,
    now: datetime,
    hold_for: str | None = None,
    dictionary: packed.Dictionary | None = None,
) -> None:
    # One row per record (a page is of one CRM), the last given winning: one statement may
    # not upsert a row twice.
    latest = {snapshot.record_id: snapshot for snapshot in snapshots}
    if not latest:
        return
    when = time_param(connection.dialect)
    saved_at = when(now)
    # Encoded as `execute_encoded` takes them, WRITE_CHUNK rows at a time: never a whole
    # page's encoded rows beside its snapshots.
    rows = (
        _snapshot_row(
            snapshot,
            when,
            saved_at=saved_at,
            run_id=run_id,
            hold_for=hold_for,
            dictionary=dictionary,
        )
        for snapshot in latest.values()
    )
    statement = _snapshot_upsert(connection, held=hold_for is not None)
    execute_encoded(connection, statement, _SNAPSHOT_COLUMNS, rows)


def _snapshot_upsert(connection: Connection, *, held: bool) -> Insert:
    insert = insert_for(connection, t.snapshots)
    table = t.snapshots
    changed = table.c.content_digest != insert.excluded.content_digest
    update = {
        **excluded(insert, table, [name for name in _SNAPSHOT_COLUMNS if name not in _KEYS]),
        # Pending only when the content changed: a page pulled again adds no work. The run
        # that saved it stays the run that pulled this content (`saved_by`).
        "pending": sa.case((changed, sa.true()), else_=table.c.pending),
        "run_id": sa.case((changed, insert.excluded.run_id), else_=table.c.run_id),
        "held_for": table.c.held_for,
    }
    if held:
        # Held for a backfill (the row's held_for): its change waits there, for the
        # backfill's own settle.
        update["pending"] = table.c.pending
        update["held_for"] = sa.case((changed, insert.excluded.held_for), else_=table.c.held_for)
    return insert.on_conflict_do_update(index_elements=list(_KEYS), set_=update)


_KEYS = ("crm", "record_id")
# A timestamp's resolution: every version stamped before a moment is known up to this before it.
_JUST_BEFORE = timedelta(microseconds=1)
# The parameters of a snapshot row, in the order `_snapshot_row` gives them.
_SNAPSHOT_COLUMNS = (
    "crm",
    "record_id",
    "modified_at",
    "packed",
    "changed_at",
    "deleted",
    "content_digest",
    "pending",
    "held_for",
    "run_id",
    "saved_at",
    "person_named",
)


def _snapshot_row(
    snapshot: Snapshot,
    when: Callable[[datetime], Any],
    *,
    saved_at: Any,
    run_id: str,
    hold_for: str | None,
    dictionary: packed.Dictionary | None,
) -> tuple[Any, ...]:
    """A snapshot's row for `execute_encoded`: each value encoded once, for its column and
    its digest alike."""
    raw = t.encode_value(dict(snapshot.raw))
    canonical = t.encode_value(dict(snapshot.canonical))
    return (
        snapshot.crm,
        snapshot.record_id,
        when(snapshot.modified_at),
        packed.pack(raw, canonical, dictionary),
        t.json_text(_stored_changed_at(snapshot)),
        snapshot.deleted,
        _digest(snapshot.modified_at, raw, canonical, snapshot.deleted),
        hold_for is None,
        hold_for,
        run_id,
        saved_at,
        _person_named(snapshot),
    )


def _snapshot_text(snapshot: Snapshot) -> bytes:
    """The JSON text a snapshot's row packs (`_snapshot_row`)."""
    return packed.text_of(
        t.encode_value(dict(snapshot.raw)), t.encode_value(dict(snapshot.canonical))
    )


# A stored `changed_at` holds under "" (the mark) the time most of the record's fields changed
# at: "modified_at" for the record's own stamp (a first sync of 10,000 leads: all but 435 of
# 395,414 fields), or a time (after leadsync's own write moved the stamp, every field keeps the
# person's older time: 1.4 KB a HubSpot contact stored field by field). Then only the fields
# whose time is another, and null for a field with no change time known; reading fills in
# the rest. One without the mark (as every version before stored) holds every field's time:
# a time is never that text, and a field named "" is stored that way too.
_REST_AT = ""
_REST_AT_MODIFIED = "modified_at"


def _stored_changed_at(snapshot: Snapshot) -> dict[str, Any]:
    times, canonical = snapshot.changed_at, snapshot.canonical
    if (
        _REST_AT in canonical
        or _REST_AT in times
        or not _DATETIMES.issuperset(map(type, times.values()))
    ):
        return dict(times)  # a field named like the mark, or not times: stored as given
    moment = snapshot.modified_at
    rest = _most_common(times.values(), moment)
    stored: dict[str, Any] = {_REST_AT: _REST_AT_MODIFIED if rest == moment else rest}
    stored.update((name, None) for name in canonical if name not in times)
    stored.update(
        (name, at)
        for name, at in times.items()
        if (at is not rest and at != rest) or name not in canonical
    )
    return stored


def _most_common(times: Collection[datetime], moment: datetime) -> datetime:
    """The time most of `times` hold (`moment`, the record's stamp, when none or in a tie)."""
    held = iter(times)
    first = next(held, moment)
    if all(at == first for at in held):  # the usual case, told without counting
        return first
    counts = Counter(times)
    most = max(counts.values())
    return moment if counts.get(moment) == most else max(counts, key=counts.__getitem__)


_DATETIMES = frozenset({datetime})


def _read_changed_at(
    stored: Mapping[str, Any], canonical: Mapping[str, Any], modified_at: datetime
) -> dict[str, datetime]:
    """The inverse of `_stored_changed_at`."""
    mark = stored.get(_REST_AT)
    if mark == _REST_AT_MODIFIED:
        rest = modified_at
    elif isinstance(mark, datetime):
        rest = mark
    else:
        return dict(stored)
    times = dict.fromkeys(canonical, rest)
    times.update(stored)
    for name, at in stored.items():
        if at is None or name == _REST_AT:
            del times[name]
    return times


def _person_named(snapshot: Snapshot) -> str | None:
    """The id of the person record `snapshot` names: a record names at most one (HubSpot's
    salesforcecontactid, a converted lead's ConvertedContactId)."""
    named = sorted(record_id for _, record_id in people_named(snapshot))
    return named[0] if named else None


def _upsert_leads(
    connection: Connection,
    leads: Sequence[Lead],
    email_field: str,
    now: datetime,
    dictionary: packed.Dictionary | None = None,
) -> None:
    # One row per lead, the last given winning; each row built only as its chunk is written.
    latest = {lead.lead_id: lead for lead in leads}
    updated_at = time_param(connection.dialect)(now)
    rows = (_lead_row(lead, email_field, updated_at, dictionary) for lead in latest.values())
    execute_encoded(connection, upsert_statement(connection, t.leads), _LEAD_COLUMNS, rows)


# The parameters of a lead row, in the order `_lead_row` gives them.
_LEAD_COLUMNS = (
    "lead_id",
    "packed",
    "names",
    "score",
    "fit",
    "engagement",
    "grade",
    "model_version",
    "stage",
    "email",
    "updated_at",
)


def _lead_row(
    lead: Lead, email_field: str, updated_at: Any, dictionary: packed.Dictionary | None
) -> tuple[Any, ...]:
    """A lead's row for `execute_encoded`."""
    values = lead.values
    names = {name: values[name] for name in t.NAME_FIELDS if name in values}
    return (
        lead.lead_id,
        packed.pack_text(_lead_text(lead), dictionary),
        t.json_text(names),
        lead.score,
        lead.fit,
        lead.engagement,
        lead.grade,
        lead.model_version,
        lead.stage,
        normalise_email(lead.values.get(email_field)),
        updated_at,
    )


def _lead_text(lead: Lead) -> bytes:
    """The JSON text a lead's row packs: its values, why they won, its score's reasons."""
    return (
        f"[{t.json_text(dict(lead.values))},{t.json_text(_stored_choices(lead))},"
        f"{t.json_text(list(lead.reasons))}]"
    ).encode()


def _upsert_links(
    connection: Connection, links: Sequence[tuple[str, str, str, str]], now: datetime
) -> None:
    rows = last_by_key(
        (
            {"crm": crm, "record_id": record_id, "lead_id": lead_id, "kind": kind, "linked_at": now}
            for crm, record_id, lead_id, kind in links
        ),
        ("crm", "record_id"),
    )
    if not rows:
        return
    insert = insert_for(connection, t.links)
    moved = t.links.c.lead_id != insert.excluded.lead_id
    update = {
        "lead_id": insert.excluded.lead_id,
        "kind": insert.excluded.kind,
        "linked_at": sa.case((moved, insert.excluded.linked_at), else_=t.links.c.linked_at),
    }
    statement = insert.on_conflict_do_update(
        index_elements=[t.links.c.crm, t.links.c.record_id], set_=update
    )
    for chunk in batches(rows, WRITE_CHUNK):
        connection.execute(statement, chunk)


def _snapshot_query(*, outer: bool = True) -> sa.Select[Any]:
    """Snapshots with the lead each is linked to (inner join: linked records only)."""
    joined = sa.and_(
        t.links.c.crm == t.snapshots.c.crm, t.links.c.record_id == t.snapshots.c.record_id
    )
    source = t.snapshots.outerjoin(t.links, joined) if outer else t.snapshots.join(t.links, joined)
    column = t.snapshots.c
    return sa.select(
        column.crm,
        column.record_id,
        column.modified_at,
        # The values as the driver gives them, decoded by `_snapshot`: no per-value
        # processing by SQLAlchemy for the store's largest reads.
        column.packed,
        sa.type_coerce(column.changed_at, sa.Text()).label("changed_at"),
        column.deleted,
        t.links.c.lead_id,
    ).select_from(source)


def _check_page(
    crm: str, snapshots: Sequence[Snapshot], quarantined: Sequence[Quarantined]
) -> None:
    strays = {s.crm for s in snapshots} | {q.crm for q in quarantined}
    strays.discard(crm)
    if strays:
        raise ValueError(f"a {crm} page holds records of {', '.join(sorted(strays))}")


# ------------------------------------------------------------------------------ rows to values


def _snapshot(row: Sequence[Any], codebook: packed.Codebook) -> Snapshot:
    """A row of `_snapshot_query`."""
    crm, record_id, modified_at, values, changed_at, deleted, lead_id = row
    raw, canonical = packed.unpack(values, codebook)
    return Snapshot(
        crm=crm,
        record_id=record_id,
        modified_at=modified_at,
        raw=raw,
        canonical=canonical,
        changed_at=_read_changed_at(t.json_read(changed_at), canonical, modified_at),
        deleted=deleted,
        lead_id=lead_id,
    )


def _identity_snapshot(
    row: Sequence[Any], codebook: packed.Codebook, raw: Sequence[str], canonical: Sequence[str]
) -> Snapshot:
    """A row of `_snapshot_query` as `_snapshot` reads it, but for the `raw` and `canonical`
    fields alone, and without change times."""
    crm, record_id, modified_at, values, _, deleted, lead_id = row
    raw_values, canonical_values = packed.unpack_fields(values, codebook, raw, canonical)
    return Snapshot(
        crm=crm,
        record_id=record_id,
        modified_at=modified_at,
        raw=raw_values,
        canonical=canonical_values,
        deleted=deleted,
        lead_id=lead_id,
    )


# leads.choices, stored compactly (a choice per field of every lead was a fifth of the store):
#     [[crm, ...], [rule, ...], [[crm index, rule index, reason], ...], "picks", {field: value}]
# A lead's fields mostly share a few choices (which CRM, under which rule, why): each distinct
# one is listed once, and "picks" holds one character per field, in the order of the lead's
# `values` (`_PICKS`: the character's place there is the choice's in the list). The reason is
# an index into _REASONS where it is one of them (nearly all are); the last item holds a
# choice's value only where it is not the lead's value of the field. Where the choices' fields
# are not the values' fields in their order, a sixth item lists them.
# Read as they are, the forms of every version before:
#     [[crm, ...], [rule, ...], {field: [crm index, rule index, reason, value?], ...}]
#     {field: {"value", "crm", "rule", "reason"}}
_REASONS = (
    # Append only: an index stored means this text for good.
    "{crm}: the only CRM it is mapped to",
    "{crm}: the only CRM that holds it",
    "{crm}: {rule}",
)
_PICKS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PICK_INDEX = {character: index for index, character in enumerate(_PICKS)}
# The values a lead's own value stands in for, compared by type and equality (a container
# stays a choice's own object, as it was before it was stored).
_SCALAR_VALUES = frozenset({str, int, float, bool, type(None), datetime, date})


def _stored_choices(lead: Lead) -> Any:
    if not lead.choices:
        return {}
    crms: dict[str | None, int] = {}
    rules: dict[str, int] = {}
    kinds: dict[tuple[int, int, int | str], str] = {}
    picks: list[str] = []
    odd: dict[str, Any] = {}
    values = lead.values
    for name, choice in lead.choices.items():
        crm, rule, reason, value = choice.crm, choice.rule, choice.reason, choice.value
        if not (type(rule) is type(reason) is str and (crm is None or type(crm) is str)):
            # Not what reconcile makes: stored as given.
            return {name: _choice_json(choice) for name, choice in lead.choices.items()}
        kind = (
            crms.setdefault(crm, len(crms)),
            rules.setdefault(rule, len(rules)),
            _reason_codes(crm, rule).get(reason, reason),
        )
        pick = kinds.get(kind)
        if pick is None:
            if len(kinds) == len(_PICKS):
                return _listed_choices(lead)  # more kinds than characters: one entry a field
            pick = kinds[kind] = _PICKS[len(kinds)]
        picks.append(pick)
        if not (
            name in values
            and type(held := values[name]) is type(value)
            and type(value) in _SCALAR_VALUES
            and (held is value or _stands_in(held, value))
        ):
            odd[name] = value
    stored = [list(crms), list(rules), [list(kind) for kind in kinds], "".join(picks), odd]
    if list(lead.choices) != list(values):
        stored.append(list(lead.choices))
    return stored


def _listed_choices(lead: Lead) -> Any:
    """The choices in the form revision 0013 stored: an entry for each field."""
    crms: dict[str | None, int] = {}
    rules: dict[str, int] = {}
    fields: dict[str, list[Any]] = {}
    for name, choice in lead.choices.items():
        crm, rule, reason, value = choice.crm, choice.rule, choice.reason, choice.value
        entry = [
            crms.setdefault(crm, len(crms)),
            rules.setdefault(rule, len(rules)),
            _reason_codes(crm, rule).get(reason, reason),
        ]
        held = lead.values.get(name, _MISSING)
        if not (
            type(held) is type(value)
            and type(value) in _SCALAR_VALUES
            and (held is value or _stands_in(held, value))
        ):
            entry.append(value)
        fields[name] = entry
    return [list(crms), list(rules), fields]


_MISSING = object()


def _stands_in(held: Any, value: Any) -> bool:
    """Whether the lead's value `held`, equal in type to a choice's `value` and not the same
    object, reads back as `value` would: equal, and a float of the same sign (0.0 == -0.0,
    and JSON keeps the sign). Two datetimes of one instant do: the store keeps each as UTC.
    (A merge's choices hold the lead's very values: `held is value` decides, this is never
    asked.)"""
    if held != value:
        return False
    return type(value) is not float or math.copysign(1.0, held) == math.copysign(1.0, value)


@functools.lru_cache(maxsize=256)
def _reason_codes(crm: str | None, rule: str) -> dict[str, int]:
    return {text.format(crm=crm, rule=rule): code for code, text in enumerate(_REASONS)}


@functools.lru_cache(maxsize=1_024)
def _reason_text(code: int, crm: str | None, rule: str) -> str:
    return _REASONS[code].format(crm=crm, rule=rule)


def _read_choices(stored: Any, values: Mapping[str, Any]) -> dict[str, FieldChoice]:
    """The inverse of `_stored_choices`."""
    if type(stored) is dict:
        return {name: FieldChoice(**choice) for name, choice in stored.items()}
    if len(stored) == 3:
        return _read_listed(stored, values)
    crms, rules, listed, picks, odd, *names = stored
    kinds = []
    for crm_index, rule_index, reason in listed:
        crm, rule = crms[crm_index], rules[rule_index]
        text = _reason_text(reason, crm, rule) if type(reason) is int else reason
        kinds.append((crm, rule, text))
    fields = names[0] if names else values
    choices = {}
    for name, pick in zip(fields, picks, strict=True):
        crm, rule, reason = kinds[_PICK_INDEX[pick]]
        value = odd[name] if name in odd else values[name]
        choices[name] = FieldChoice(value, crm, rule, reason)
    return choices


def _read_listed(stored: Any, values: Mapping[str, Any]) -> dict[str, FieldChoice]:
    crms, rules, fields = stored
    choices = {}
    for name, entry in fields.items():
        crm, rule, reason = crms[entry[0]], rules[entry[1]], entry[2]
        if type(reason) is int:
            reason = _reason_text(reason, crm, rule)
        value = entry[3] if len(entry) > 3 else values[name]
        choices[name] = FieldChoice(value, crm, rule, reason)
    return choices


def _choice_json(choice: FieldChoice) -> dict[str, Any]:
    return {"value": choice.value, "crm": choice.crm, "rule": choice.rule, "reason": choice.reason}


def _lead_query() -> sa.Select[Any]:
    """Leads, for `_lead`: the JSON as the driver gives it (see `_snapshot_query`)."""
    column = t.leads.c
    return sa.select(
        column.lead_id,
        column.packed,
        column.score,
        column.fit,
        column.engagement,
        column.grade,
        column.model_version,
        column.stage,
    )


def _lead(row: Sequence[Any], codebook: packed.Codebook) -> Lead:
    """A row of `_lead_query`."""
    lead_id, blob, score, fit, engagement, grade, version, stage = row
    values, choices, reasons = t.json_read(packed.unpack_text(blob, codebook))
    return Lead(
        lead_id=lead_id,
        values=values,
        choices=_read_choices(choices, values),
        score=score,
        fit=fit,
        engagement=engagement,
        grade=grade,
        reasons=tuple(reasons),
        model_version=version,
        stage=stage,
    )
