"""The store: the only place leadsync keeps state, on SQLite by default or PostgreSQL by URL.

    runs            start_run, finish_run, run, runs, first_run_at
    cursors         cursor, checkpoint, clear_cursor (moved by save_page only)
    ingestion       save_page (snapshots + quarantine + cursor in one transaction),
                    known_stamps, snapshots, pending_records, pending_ids, mark_reconciled,
                    mark_pending, mark_all_pending, mark_unlisted_deleted (the sweep)
    identity        link, lead_ids_for, leads_by_email, records_of
    leads           save_leads, leads, find_leads
    lifecycle       add_transitions, history
    decisions       save_decisions (leads + links + review items + transitions + SLA clocks
                    of one batch, in one transaction)
    SLA ledger      sla (clocks and the events announced about them: sync.sla.ledger)
    writes          record_writes, writes, expected (the echo fingerprints)
    refusals        due_refusals, forget_refusals (writes a CRM refused, tried again later)
    people decide   quarantined, add_review, review_queue, resolve_review

Every method is one short transaction, retried only after transient errors (a locked SQLite
file, a PostgreSQL serialization failure or deadlock), and every upsert is idempotent, so a run
killed anywhere, or several replicas on one PostgreSQL, leave the store consistent. Batch
lookups return only what they find: an id that is not there is absent from the answer.
Timestamps are timezone-aware UTC in and out; naive ones are refused.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from leadsync.connectors.base import Position, WriteStatus, utc
from leadsync.connectors.classify import REQUEST_REFUSALS
from leadsync.mapping.lifecycle import Stage, Transition
from leadsync.sync import ids, packed, write_log
from leadsync.sync import tables as t
from leadsync.sync.database import (
    check_schema,
    make_engine,
    retry_transient,
    upgrade,
    writing,
)
from leadsync.sync.handoff_ledger import HandoffLedger

# One normalisation for matching and for the email index, or the two drift apart.
from leadsync.sync.identity import normalise_email, people_named
from leadsync.sync.model import FieldChoice, Lead, Snapshot
from leadsync.sync.related import Related, RelatedRecords, save_related
from leadsync.sync.run_kinds import RUN_KINDS
from leadsync.sync.sla.clocks import ClockChanges
from leadsync.sync.sla.ledger import SlaLedger, save_clock_changes
from leadsync.sync.sorted_json import sorted_json_text
from leadsync.sync.sql import (
    WRITE_CHUNK,
    Insert,
    aggregate_time,
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

log = logging.getLogger("leadsync.sync")

__all__ = [
    "BACKFILL",
    "IGNORED",
    "INCREMENTAL",
    "RUN_KINDS",
    "LoggedWrite",
    "Quarantined",
    "ReviewItem",
    "RunRow",
    "Store",
    "WriteRow",
    "content_digest",
]

RUNNING = "running"  # a run's status until finish_run
ABANDONED = "abandoned"  # left running by a replica that died; another took its job over
# Snapshots are packed with a dictionary of their CRM's (`sync.packed`) once it has this many
# stored to train one on, its kind this prefix and the CRM's name.
TRAIN_SAMPLES = 1_000
# A dictionary trained to replace a poor one is judged on one sample in this many, held out of
# its training. A process looks for one at most RETRAINS times a kind: data no dictionary packs
# well costs that many trainings, no more.
_HELD_OUT_EVERY = 8
RETRAINS = 2
SNAPSHOT_DICTIONARY = "snapshots:"
LEAD_DICTIONARY = "leads"
WRITE_DICTIONARY = "writes:"
EXPECTED_DICTIONARY = "expected:"
# How a write the CRM refused is named in the quarantine.
REFUSED = "write refused by "
# A refused write is tried again once its cause may have changed (see `due_refusals`), or
# after this wait when nothing did: an hour, doubling with each refusal, a day at the most (the
# nightly sweep tries everything again anyway). A write refused for the request itself
# (REQUEST_REFUSALS: a missing scope) waits for no time: the next run tries it again.
REFUSAL_RETRY_FIRST = timedelta(hours=1)
REFUSAL_RETRY_MOST = timedelta(days=1)
INCREMENTAL = "incremental"  # the cursor stream of incremental pulls (a Position)
BACKFILL = "backfill"  # the cursor stream of full pulls (an opaque checkpoint)
# The resolution of a review item a person chose to leave as it is (`leadsync review ... ignore`).
IGNORED = "ignored"


# ------------------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class RunRow:
    run_id: str
    kind: str
    status: str  # "running" until finished
    started_at: datetime
    finished_at: datetime | None
    summary: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A record the mapping refused, kept with its raw values until a later pull reads it."""

    crm: str
    record_id: str
    reason: str
    raw: Mapping[str, Any]
    run_id: str
    at: datetime
    resolved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WriteRow:
    """One field written (or not) to one record: what it held, what was sent, how it went."""

    record_id: str
    field: str
    old: Any
    new: Any
    status: WriteStatus
    category: str = ""
    message: str = ""
    # The record's stamp after the write, on the CRM's clock, where the CRM said (WriteResult).
    modified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LoggedWrite:
    """A WriteRow as the audit log keeps it."""

    run_id: str
    crm: str
    record_id: str
    field: str
    old: Any
    new: Any
    status: WriteStatus
    category: str
    message: str
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        """For `--json` (`runs show`, `explain`): the values as JSON holds them."""
        return {
            "at": self.at.isoformat(),
            "crm": self.crm,
            "record_id": self.record_id,
            "field": self.field,
            "old": self.old,
            "new": self.new,
            "status": str(self.status),
            "category": self.category,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """An ambiguous match waiting for a person: the leads the record could belong to."""

    crm: str
    record_id: str
    candidates: tuple[str, ...]
    reason: str
    run_id: str
    at: datetime
    resolved_at: datetime | None = None
    resolution: str | None = None


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
        # The dictionaries packed snapshots name (`sync.packed`), and each CRM's to pack with.
        self._codebook = packed.Codebook(self._load_dictionary)
        self._packing: dict[str, packed.Dictionary] = {}
        self._untrainable: set[str] = set()
        # Per kind: the rows saved since its dictionary was last chosen, and how many times
        # this process looked for a better one than a poor dictionary (`_instead_of_poor`),
        # each look taken under the lock (threads share a Store). A look in a transaction
        # rolled back (a transient error) is spent all the same: the next comes 1,000 rows on.
        self._saved_since: Counter[str] = Counter()
        self._retrained: Counter[str] = Counter()
        self._looking = threading.Lock()
        try:
            if migrate:
                upgrade(self._engine)
            else:
                check_schema(self._engine)
        except BaseException:
            self._engine.dispose()
            raise

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

    # ---------------------------------------------------------------------------------- runs

    def start_run(self, kind: str, *, started_at: datetime, holder: str | None = None) -> str:
        """Record a run as started (by `holder`, the lease holder running it: "<replica>/<role>");
        returns its id."""
        if kind not in RUN_KINDS:
            raise ValueError(f"unknown run kind {kind!r}: one of {', '.join(sorted(RUN_KINDS))}")
        # The id is chosen once, outside the retried transaction.
        run_id = ids.new_id()
        self._insert_run(run_id, kind, utc(started_at), holder)
        return run_id

    @retry_transient
    def _insert_run(self, run_id: str, kind: str, started_at: datetime, holder: str | None) -> None:
        row = {
            "run_id": run_id,
            "kind": kind,
            "status": RUNNING,
            "started_at": started_at,
            "finished_at": None,
            "summary": {} if holder is None else {"holder": holder},
        }
        with writing(self._engine) as connection:
            connection.execute(t.runs.insert(), row)

    @retry_transient
    def finish_run(
        self, run_id: str, *, status: str, summary: Mapping[str, Any], finished_at: datetime
    ) -> None:
        """Record how a run ended; raises LookupError for an unknown run."""
        if not status or status == RUNNING:
            raise ValueError(f"a finished run's status cannot be {status!r}")
        values = {"status": status, "summary": dict(summary), "finished_at": utc(finished_at)}
        with writing(self._engine) as connection:
            done = connection.execute(
                t.runs.update().where(t.runs.c.run_id == run_id).values(values)
            )
            if done.rowcount == 0:
                raise LookupError(f"no run {run_id!r}")

    @retry_transient
    def run(self, run_id: str) -> RunRow | None:
        """One run, or None."""
        with self._engine.connect() as connection:
            query = sa.select(t.runs).where(t.runs.c.run_id == run_id)
            row = connection.execute(query).mappings().one_or_none()
        return None if row is None else _run(row)

    @retry_transient
    def runs(self, limit: int = 20, *, kind: str | None = None) -> list[RunRow]:
        """The latest runs (of `kind`, if given), newest first."""
        query = sa.select(t.runs).order_by(t.runs.c.started_at.desc(), t.runs.c.run_id).limit(limit)
        if kind is not None:
            query = query.where(t.runs.c.kind == kind)
        with self._engine.connect() as connection:
            return [_run(row) for row in connection.execute(query).mappings()]

    @retry_transient
    def run_ids_starting(self, prefix: str, *, limit: int = 5) -> list[str]:
        """The ids of runs that start with `prefix` (a short id), at most `limit`."""
        # Run ids are hex digits (`ids.new_id`; an earlier release's UUIDs, with hyphens too): a
        # prefix of other characters names none, and holds no LIKE wildcard.
        if not prefix or prefix.strip("0123456789abcdef-"):
            return []
        query = (
            sa.select(t.runs.c.run_id)
            .where(t.runs.c.run_id.startswith(prefix))
            .order_by(t.runs.c.run_id)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return list(connection.execute(query).scalars())

    @retry_transient
    def abandon_runs(self, holder: str, *, finished_at: datetime) -> int:
        """Mark the runs `holder` ("<replica>/<role>", whose lease was taken over) left running
        as abandoned; how many. What they committed stays; the next run goes on from it."""
        with writing(self._engine) as connection:
            return abandon_runs_of(connection, holder, finished_at=finished_at)

    @retry_transient
    def last_finished(self, kind: str, *, status: str = "succeeded") -> RunRow | None:
        """The run of `kind` that finished last with `status`, or None."""
        query = (
            sa.select(t.runs)
            .where(t.runs.c.kind == kind, t.runs.c.status == status)
            .order_by(t.runs.c.finished_at.desc())
            .limit(1)
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).mappings().one_or_none()
        return None if row is None else _run(row)

    @retry_transient
    def quarantine_size(self) -> int:
        """How many records are in quarantine, not yet read again."""
        query = sa.select(sa.func.count()).where(t.quarantine.c.resolved_at.is_(None))
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar() or 0)

    @retry_transient
    def first_run_at(self) -> datetime | None:
        """When the first run of any kind started: since when leadsync has been watching."""
        with self._engine.connect() as connection:
            first = connection.execute(sa.select(sa.func.min(t.runs.c.started_at))).scalar()
        return None if first is None else aggregate_time(first)

    # ------------------------------------------------------------------------------- cursors

    def cursor(self, crm: str, stream: str = INCREMENTAL) -> Position | None:
        """Where the incremental pull of `crm` resumes; None before the first committed page."""
        row = self._cursor_row(crm, stream)
        if row is None:
            return None
        if row["modified_at"] is None:
            raise ValueError(f"the {crm} {stream} cursor holds a checkpoint, not a position")
        return Position(row["modified_at"], row["record_id"] or "")

    def checkpoint(self, crm: str, stream: str = BACKFILL) -> str | None:
        """Where the full pull of `crm` resumes; None when none is under way."""
        row = self._cursor_row(crm, stream)
        if row is None:
            return None
        if row["checkpoint"] is None:
            raise ValueError(f"the {crm} {stream} cursor holds a position, not a checkpoint")
        return str(row["checkpoint"])

    @retry_transient
    def clear_cursor(self, crm: str, stream: str) -> None:
        """Forget a cursor: the next pull of that stream starts from the beginning."""
        with writing(self._engine) as connection:
            connection.execute(t.cursors.delete().where(*_cursor_key(crm, stream)))

    @retry_transient
    def _cursor_row(self, crm: str, stream: str) -> RowMapping | None:
        query = sa.select(t.cursors).where(*_cursor_key(crm, stream))
        with self._engine.connect() as connection:
            return connection.execute(query).mappings().one_or_none()

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
                dictionary = self._dictionary(
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
            _resolve_quarantine(connection, crm, [s.record_id for s in snapshots], now)
            _upsert_quarantine(connection, quarantined)
            save_related(connection, related, run_id=run_id, now=now)
            if position is not None or checkpoint is not None:
                default = INCREMENTAL if position is not None else BACKFILL
                cursor = _cursor_values(position, checkpoint, run_id=run_id, now=now)
                upsert(connection, t.cursors, [{"crm": crm, "stream": stream or default, **cursor}])
        self._keep(f"{SNAPSHOT_DICTIONARY}{crm}", dictionary)

    def _keep(self, kind: str, dictionary: packed.Dictionary | None) -> None:
        """Keep the dictionary a committed transaction packed `kind` with: one trained in a
        transaction rolled back is not stored, and its id may be another's later."""
        if dictionary is not None:
            self._codebook.add(dictionary)
            if self._packing.get(kind) is not dictionary:
                self._saved_since[kind] = 0
            self._packing[kind] = dictionary

    def _dictionary(
        self,
        connection: Connection,
        kind: str,
        samples: sa.Select[Any],
        now: datetime,
        batch: Callable[[], Iterable[bytes]] | None = None,
        batch_size: int = 0,
    ) -> packed.Dictionary | None:
        """The dictionary to pack `kind` with: the newest stored, or one trained now on
        TRAIN_SAMPLES of the blobs `samples` selects (newest first) once there are as many
        (none before: the first are packed without one); another once it proves poor
        (`_instead_of_poor`). A save of `batch_size` rows, at least TRAIN_SAMPLES,
        trains one on its own texts (`batch()` gives them) when none is stored: a first
        sync's first slice or page is then packed with it too, not left ~3 times larger (and
        rewritten smaller, leaving its pages part empty, when the next sync saves it again)."""
        found = self._packing.get(kind)
        with self._looking:
            self._saved_since[kind] += batch_size
            look = (
                found is not None
                and found.poor
                # Once as many rows as it trains on were saved since: the newest stored are
                # then the rows it packed poorly, not those it was trained on.
                and self._saved_since[kind] >= TRAIN_SAMPLES
                and self._retrained[kind] < RETRAINS
            )
            if look:
                self._retrained[kind] += 1
                self._saved_since[kind] = 0
        if look and found is not None:
            return self._instead_of_poor(connection, kind, samples, now, found, batch, batch_size)
        if found is not None or kind in self._untrainable:
            return found
        d = t.dictionaries
        newest = connection.execute(
            sa.select(d.c.id, d.c.data).where(d.c.kind == kind).order_by(d.c.id.desc()).limit(1)
        ).first()
        if newest is not None:
            return packed.Dictionary(newest.id, bytes(newest.data))
        if batch is not None and batch_size >= TRAIN_SAMPLES:
            data = packed.train(list(itertools.islice(batch(), TRAIN_SAMPLES)))
            if data is None:  # this batch: the stored rows may train one later
                return None
            return _stored_dictionary(connection, kind, data, now, trained_on=batch_size)
        texts = self._stored_samples(connection, samples)
        if texts is None:
            return None
        data = packed.train(texts)
        if data is None:
            self._untrainable.add(kind)
            return None
        return _stored_dictionary(connection, kind, data, now)

    def _instead_of_poor(
        self,
        connection: Connection,
        kind: str,
        samples: sa.Select[Any],
        now: datetime,
        poor: packed.Dictionary,
        batch: Callable[[], Iterable[bytes]] | None,
        batch_size: int,
    ) -> packed.Dictionary | None:
        """What to pack `kind` with now that its dictionary `poor` packs its rows little or no
        smaller than none: a dictionary trained on the batch (of TRAIN_SAMPLES or more) or the
        newest rows stored, if it packs an eighth of them held out of its training smaller by
        a tenth than both; else no dictionary, if none packs them smaller than `poor`; else
        `poor`. (The newest stored dictionary of a kind is the one every process packs with.)"""
        texts: list[bytes] | None
        if batch is not None and batch_size >= TRAIN_SAMPLES:
            texts, trained_on = list(itertools.islice(batch(), TRAIN_SAMPLES)), batch_size
        else:
            texts, trained_on = self._stored_samples(connection, samples), 0
        if texts is None:
            return poor
        held_out = texts[::_HELD_OUT_EVERY]
        trained = packed.train([text for n, text in enumerate(texts) if n % _HELD_OUT_EVERY])

        def packs(pack: Callable[[bytes], bytes]) -> int:
            return sum(len(pack(text)) for text in held_out)

        without, with_poor = packs(packed.pack_text), packs(poor.compress_unjudged)
        if trained is not None:
            # Judged under a stand-in id: an id's bytes are the same length whatever it is.
            candidate = packed.Dictionary(poor.dictionary_id, trained)
            if packs(candidate.compress_unjudged) < 0.9 * min(without, with_poor):
                log.info("the %s packing dictionary packed little: trained another", kind)
                return _stored_dictionary(connection, kind, trained, now, trained_on=trained_on)
        if without < with_poor:
            log.info("the %s packing dictionary packed rows larger: packing without", kind)
            self._packing.pop(kind, None)
            self._untrainable.add(kind)
            return None
        return poor

    def _stored_samples(
        self, connection: Connection, samples: sa.Select[Any]
    ) -> list[bytes] | None:
        """The texts of TRAIN_SAMPLES of the blobs `samples` selects, or None while fewer are
        stored."""
        # Until a kind has TRAIN_SAMPLES stored (a small org's may never), each save asks
        # only whether the last sample needed is there: no blob is read for nothing.
        last_sample = samples.with_only_columns(sa.literal(1), maintain_column_froms=True)
        if connection.execute(last_sample.offset(TRAIN_SAMPLES - 1).limit(1)).first() is None:
            return None
        query = samples.limit(TRAIN_SAMPLES)  # the newest, as `samples` orders them
        blobs = list(connection.execute(query).scalars())
        if len(blobs) < TRAIN_SAMPLES:  # deleted meanwhile (PostgreSQL, another replica)
            return None
        return [packed.unpack_text(blob, self._codebook).encode() for blob in blobs]

    def _load_dictionary(self, dictionary_id: int) -> bytes | None:
        d = t.dictionaries
        with self._engine.connect() as connection:
            data = connection.execute(
                sa.select(d.c.data).where(d.c.id == dictionary_id)
            ).scalar_one_or_none()
        return None if data is None else bytes(data)

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
    def pending_from_plans(self) -> dict[str, int]:
        """CRM -> how many pending records a plan pulled: stored for the sync after it, which
        settles them as if it had pulled them itself (and counts them so)."""
        plans = sa.select(t.runs.c.run_id).where(t.runs.c.kind == "plan")
        query = (
            sa.select(t.snapshots.c.crm, sa.func.count())
            .where(t.snapshots.c.pending.is_(True), t.snapshots.c.run_id.in_(plans))
            .group_by(t.snapshots.c.crm)
        )
        with self._engine.connect() as connection:
            return {crm: int(count) for crm, count in connection.execute(query)}

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
        self._keep(LEAD_DICTIONARY, dictionary)

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
            linked = sa.select(t.links.c.lead_id).where(t.links.c.record_id == crm_id)
            # Not indexed: read by `explain` alone (the command, the console's lead page),
            # one id at a time.
            handed_off = sa.select(t.handoffs.c.lead_id).where(t.handoffs.c.record_id == crm_id)
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
            _close_reviews(connection, links, now)
            _upsert_reviews(connection, reviews, run_id, now)
            _insert_transitions(connection, transitions, run_id)
            save_clock_changes(connection, clocks, run_id=run_id, now=now)
        self._keep(LEAD_DICTIONARY, dictionary)

    def _lead_dictionary(
        self, connection: Connection, leads: Sequence[Lead], now: datetime
    ) -> packed.Dictionary | None:
        if not leads:
            return None
        samples = sa.select(t.leads.c.packed).order_by(t.leads.c.updated_at.desc())
        return self._dictionary(
            connection,
            LEAD_DICTIONARY,
            samples,
            now,
            batch=lambda: map(_lead_text, leads),
            batch_size=len(leads),
        )

    # ----------------------------------------------------------------------------- lifecycle

    @retry_transient
    def add_transitions(self, rows: Sequence[tuple[str, Transition]], *, run_id: str) -> None:
        """Append lifecycle transitions, (lead_id, transition) each, in the order given."""
        with writing(self._engine) as connection:
            _insert_transitions(connection, rows, run_id)

    @retry_transient
    def history(self, lead_id: str) -> list[Transition]:
        """Every transition of a lead, oldest first (in the order added, among equal times)."""
        query = (
            sa.select(t.transitions)
            .where(t.transitions.c.lead_id == lead_id)
            .order_by(t.transitions.c.at, t.transitions.c.id)
        )
        with self._engine.connect() as connection:
            return [_transition(row) for row in connection.execute(query).mappings()]

    # -------------------------------------------------------------------------------- writes

    @retry_transient
    def record_writes(
        self,
        run_id: str,
        crm: str,
        rows: Sequence[WriteRow],
        *,
        context: str = "",
        at: datetime | None = None,
        aside: bool = False,
        also: Callable[[Connection], None] | None = None,
    ) -> None:
        """Log every write of a batch; the values actually written become those records'
        expected values, so the next pull can tell leadsync's own echo from a person's edit.
        Records the CRM refused for good (FAILED) are quarantined with its reason, and wait
        to be tried again (`due_refusals`): `context` names what they were refused under (the
        mapping, the definition and the CRM's describe), `at` is the run's time (the store's
        clock when not given), from which the wait before a retry counts. `aside`: writes
        beside the plan's (the handoff's), which take no record out of quarantine. `also`
        runs in the same transaction (again, should it be retried): what must be committed
        with the batch's record or not at all."""
        if not rows:
            return
        now = self._now()
        refused = _refusals(crm, rows, run_id, now)
        at_once = {
            row.record_id
            for row in rows
            if row.status == WriteStatus.FAILED and row.category in REQUEST_REFUSALS
        }
        landed = sorted({row.record_id for row in rows if row.status == WriteStatus.WRITTEN})
        if aside:
            # Writes beside the plan (the handoff's): they say nothing of whether the plan's
            # refused write to the record would land now.
            landed = []
        kind = f"{WRITE_DICTIONARY}{crm}"
        with writing(self._engine) as connection:
            samples = (
                sa.select(t.writes.c.fields)
                .where(t.writes.c.crm == crm)
                .order_by(t.writes.c.id.desc())
            )
            logged = len({row.record_id for row in rows})  # ~ the log rows: one a record
            dictionary = self._dictionary(connection, kind, samples, now, batch_size=logged)
            log = write_log.log_rows(connection, run_id, crm, rows, now, dictionary)
            write_log.insert_log(connection, log)
            expected_kind = f"{EXPECTED_DICTIONARY}{crm}"
            expected = (
                sa.select(t.expected.c.packed)
                .where(t.expected.c.crm == crm)
                .order_by(t.expected.c.written_at.desc())
            )
            expected_writes = write_log.expected_writes(rows)
            expected_dictionary = self._dictionary(
                connection, expected_kind, expected, now, batch_size=len(expected_writes)
            )
            write_log.merge_expected(
                connection,
                crm,
                run_id,
                now,
                expected_writes,
                dictionary=expected_dictionary,
                codebook=self._codebook,
            )
            # A record whose write the CRM refused waits in quarantine with its reason, for a
            # person to see (the report lists it); a later write that lands takes it out.
            _resolve_quarantine(connection, crm, landed, now, reason_prefix=REFUSED)
            _upsert_quarantine(connection, refused)
            _delete_refusals(connection, crm, landed)
            _add_refusals(
                connection,
                crm,
                [q.record_id for q in refused],
                context,
                run_id,
                at or now,
                at_once=at_once,
            )
            if also is not None:
                also(connection)
        self._keep(kind, dictionary)
        self._keep(expected_kind, expected_dictionary)

    @retry_transient
    def due_refusals(
        self, crm: str, *, context: str, now: datetime, run_id: str | None = None
    ) -> list[str]:
        """The records of `crm` whose refused write is worth trying again: refused under
        another `context` than the current one (the mapping, the definition or the CRM's
        describe changed since), or waiting since before `now`; with `run_id`, none that
        run refused (a backfill settles chunk after chunk in one run)."""
        query = (
            sa.select(t.refusals.c.record_id)
            .where(
                t.refusals.c.crm == crm,
                sa.or_(t.refusals.c.context != context, t.refusals.c.retry_at <= utc(now)),
            )
            .order_by(t.refusals.c.record_id)
        )
        if run_id is not None:
            query = query.where(t.refusals.c.run_id != run_id)
        with self._engine.connect() as connection:
            return list(connection.execute(query).scalars())

    @retry_transient
    def refusals_due_now(self, crm: str, record_ids: Sequence[str]) -> None:
        """A person asked to try these refused writes again: they are due now."""
        with writing(self._engine) as connection:
            for chunk in chunks(record_ids):
                connection.execute(
                    t.refusals.update()
                    .where(t.refusals.c.crm == crm, t.refusals.c.record_id.in_(chunk))
                    .values(retry_at=self._now())
                )

    @retry_transient
    def forget_refusals(self, crm: str, record_ids: Sequence[str]) -> None:
        """Tried again, these records have nothing left to write: they wait no more, and
        their refusal leaves the quarantine."""
        with writing(self._engine) as connection:
            _delete_refusals(connection, crm, record_ids)
            _resolve_quarantine(connection, crm, record_ids, self._now(), reason_prefix=REFUSED)

    @retry_transient
    def writes(
        self, *, run_id: str | None = None, crm: str | None = None, record_id: str | None = None
    ) -> list[LoggedWrite]:
        """The audit log, in the order written, narrowed by any of run, CRM and record."""
        query = sa.select(t.writes).order_by(t.writes.c.id)
        if run_id is not None:
            query = query.where(t.writes.c.run_id == run_id)
        if crm is not None:
            query = query.where(t.writes.c.crm == crm)
        if record_id is not None:
            query = query.where(t.writes.c.record_id == record_id)
        with self._engine.connect() as connection:
            return [
                write
                for row in connection.execute(query).mappings()
                for write in _logged_writes(row, self._codebook)
            ]

    @retry_transient
    def expected(self, crm: str, record_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Record id -> field -> the raw value leadsync last wrote there."""
        found: dict[str, dict[str, Any]] = {}
        columns = (t.expected.c.record_id, t.expected.c.packed, t.expected.c.written_at)
        with self._engine.connect() as connection:
            for chunk in chunks(record_ids):
                query = sa.select(*columns).where(
                    t.expected.c.crm == crm, t.expected.c.record_id.in_(chunk)
                )
                for record_id, blob, written_at in connection.execute(query):
                    fields = write_log.expected_fields(blob, self._codebook)
                    found[record_id] = {
                        name: value
                        for name, (value, _) in write_log.expected_values(
                            fields, written_at
                        ).items()
                    }
        return found

    @retry_transient
    def unseen_writes(self, crm: str, record_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Record id -> field -> the raw value leadsync wrote there after the record's stored
        snapshot was read: what the CRM holds, though no pull has brought it back yet (HubSpot's
        search lags its writes by seconds, so a run right after a write cannot see it)."""
        found: dict[str, dict[str, Any]] = {}
        e, s = t.expected, t.snapshots
        with self._engine.connect() as connection:
            for chunk in chunks(record_ids):
                # The record's latest write came after the read; which of its fields did.
                query = (
                    sa.select(e.c.record_id, e.c.packed, e.c.written_at, s.c.saved_at)
                    .join(s, sa.and_(s.c.crm == e.c.crm, s.c.record_id == e.c.record_id))
                    .where(e.c.crm == crm, e.c.record_id.in_(chunk))
                    .where(e.c.written_at > s.c.saved_at)
                )
                for record_id, blob, written_at, saved_at in connection.execute(query):
                    fields = write_log.expected_fields(blob, self._codebook)
                    read = write_log.microseconds(saved_at)
                    unseen = {
                        name: value
                        for name, (value, stamp) in write_log.expected_values(
                            fields, written_at
                        ).items()
                        if stamp > read
                    }
                    if unseen:
                        found[record_id] = unseen
        return found

    # ---------------------------------------------------------------- quarantine and review

    @retry_transient
    def quarantined(self, *, open_only: bool = True) -> list[Quarantined]:
        """Quarantined records, oldest first; with `open_only`, those not read since."""
        query = sa.select(t.quarantine).order_by(
            t.quarantine.c.at, t.quarantine.c.crm, t.quarantine.c.record_id
        )
        if open_only:
            query = query.where(t.quarantine.c.resolved_at.is_(None))
        with self._engine.connect() as connection:
            return [_quarantined(row) for row in connection.execute(query).mappings()]

    @retry_transient
    def open_quarantine(self, crm: str, record_ids: Sequence[str]) -> dict[str, Quarantined]:
        """Record id -> its open quarantine entry, for those of `record_ids` that have one."""
        q = t.quarantine
        found: dict[str, Quarantined] = {}
        with self._engine.connect() as connection:
            for chunk in chunks(record_ids):
                query = sa.select(q).where(
                    q.c.crm == crm, q.c.record_id.in_(chunk), q.c.resolved_at.is_(None)
                )
                for row in connection.execute(query).mappings():
                    found[row["record_id"]] = _quarantined(row)
        return found

    @retry_transient
    def add_review(
        self, crm: str, record_id: str, candidates: Sequence[str], reason: str, *, run_id: str
    ) -> None:
        """Queue an ambiguous match for a person. One item per record: adding it again while
        open updates its candidates and reason; adding it after resolution reopens it."""
        with writing(self._engine) as connection:
            _upsert_reviews(connection, [(crm, record_id, candidates, reason)], run_id, self._now())

    @retry_transient
    def resolve_review(self, crm: str, record_id: str, *, resolution: str) -> bool:
        """Close an open review item, saying what was decided; False when none was open."""
        with writing(self._engine) as connection:
            done = connection.execute(
                t.review.update()
                .where(
                    t.review.c.crm == crm,
                    t.review.c.record_id == record_id,
                    t.review.c.resolved_at.is_(None),
                )
                .values(resolved_at=self._now(), resolution=resolution)
            )
        return bool(done.rowcount)

    @retry_transient
    def review_queue(self, *, open_only: bool = True) -> list[ReviewItem]:
        """Review items, oldest first; with `open_only`, those still waiting."""
        query = sa.select(t.review).order_by(t.review.c.at, t.review.c.crm, t.review.c.record_id)
        if open_only:
            query = query.where(t.review.c.resolved_at.is_(None))
        with self._engine.connect() as connection:
            return [_review(row) for row in connection.execute(query).mappings()]


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
        # Pending only when the content changed: a page pulled again adds no work.
        "pending": sa.case((changed, sa.true()), else_=table.c.pending),
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


def _stored_dictionary(
    connection: Connection, kind: str, data: bytes, now: datetime, *, trained_on: int = 0
) -> packed.Dictionary:
    """Store a dictionary `kind` packs with from now on (the newest of a kind is used);
    `trained_on`: the rows of the batch it was trained on, which it packs first."""
    d = t.dictionaries
    inserted = connection.execute(
        d.insert().values(kind=kind, data=data, created_at=now).returning(d.c.id)
    ).scalar_one()
    return packed.Dictionary(inserted, data, unjudged=trained_on)


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


def _upsert_quarantine(connection: Connection, entries: Sequence[Quarantined]) -> None:
    rows = last_by_key(
        (
            {
                "crm": entry.crm,
                "record_id": entry.record_id,
                "reason": entry.reason,
                "raw": dict(entry.raw),
                "run_id": entry.run_id,
                "at": entry.at,
                "resolved_at": None,
            }
            for entry in entries
        ),
        ("record_id",),
    )
    upsert(connection, t.quarantine, rows)


def _resolve_quarantine(
    connection: Connection,
    crm: str,
    record_ids: Sequence[str],
    now: datetime,
    *,
    reason_prefix: str | None = None,
) -> None:
    for chunk in chunks(record_ids):
        statement = t.quarantine.update().where(
            t.quarantine.c.crm == crm,
            t.quarantine.c.record_id.in_(chunk),
            t.quarantine.c.resolved_at.is_(None),
        )
        if reason_prefix is not None:
            statement = statement.where(t.quarantine.c.reason.startswith(reason_prefix))
        connection.execute(statement.values(resolved_at=now))


def _refusals(crm: str, rows: Sequence[WriteRow], run_id: str, now: datetime) -> list[Quarantined]:
    sent: dict[str, dict[str, Any]] = {}
    why: dict[str, str] = {}
    for row in rows:
        if row.status == WriteStatus.FAILED:
            sent.setdefault(row.record_id, {})[row.field] = row.new
            why[row.record_id] = f"{REFUSED}{crm}: {row.category}: {row.message}".rstrip(": ")
    return [
        Quarantined(crm, record_id, why[record_id], values, run_id, now)
        for record_id, values in sent.items()
    ]


def _delete_refusals(connection: Connection, crm: str, record_ids: Sequence[str]) -> None:
    for chunk in chunks(record_ids):
        connection.execute(
            t.refusals.delete().where(t.refusals.c.crm == crm, t.refusals.c.record_id.in_(chunk))
        )


def _add_refusals(
    connection: Connection,
    crm: str,
    record_ids: Sequence[str],
    context: str,
    run_id: str,
    now: datetime,
    *,
    at_once: Set[str] = frozenset(),
) -> None:
    """Each record refused once more: it is tried again after a wait that doubles with each
    refusal, or sooner when `context` changes; those `at_once` (refused for the request
    itself) by the next run."""
    attempts: dict[str, int] = {}
    for chunk in chunks(record_ids):
        query = sa.select(t.refusals.c.record_id, t.refusals.c.attempts).where(
            t.refusals.c.crm == crm, t.refusals.c.record_id.in_(chunk)
        )
        attempts.update({row.record_id: row.attempts for row in connection.execute(query)})
    rows = []
    for record_id in dict.fromkeys(record_ids):
        count = attempts.get(record_id, 0) + 1
        wait = min(REFUSAL_RETRY_MOST, REFUSAL_RETRY_FIRST * 2 ** min(count - 1, 16))
        if record_id in at_once:
            wait = timedelta(0)
        rows.append(
            {
                "crm": crm,
                "record_id": record_id,
                "context": context,
                "attempts": count,
                "retry_at": now + wait,
                "run_id": run_id,
            }
        )
    upsert(connection, t.refusals, rows)


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


def _upsert_reviews(
    connection: Connection,
    reviews: Sequence[tuple[str, str, Sequence[str], str]],
    run_id: str,
    now: datetime,
) -> None:
    rows = last_by_key(
        (
            {
                "crm": crm,
                "record_id": record_id,
                "candidates": list(candidates),
                "reason": reason,
                "run_id": run_id,
                "at": now,
                "resolved_at": None,
                "resolution": None,
            }
            for crm, record_id, candidates, reason in reviews
        ),
        ("crm", "record_id"),
    )
    if not rows:
        return
    rows = _not_ignored(connection, _not_decided_since(connection, rows, run_id))
    if not rows:
        return
    insert = insert_for(connection, t.review)
    still_open = t.review.c.resolved_at.is_(None)
    update = {
        **excluded(insert, t.review, ("candidates", "reason", "run_id")),
        # An open item keeps the time it was first queued; a resolved one reopens now.
        "at": sa.case((still_open, t.review.c.at), else_=insert.excluded.at),
        "resolved_at": None,
        "resolution": None,
    }
    statement = insert.on_conflict_do_update(
        index_elements=[t.review.c.crm, t.review.c.record_id], set_=update
    )
    connection.execute(statement, rows)


def _not_decided_since(
    connection: Connection, rows: list[dict[str, Any]], run_id: str
) -> list[dict[str, Any]]:
    """The review rows of records no person resolved while run `run_id` was matching them: a
    run that matched before the decision must not undo it (the next run matches again)."""
    started = connection.execute(
        sa.select(t.runs.c.started_at).where(t.runs.c.run_id == run_id)
    ).scalar()
    if started is None:
        return rows
    decided: set[tuple[str, str]] = set()
    for chunk in chunks([row["record_id"] for row in rows]):
        query = sa.select(t.review.c.crm, t.review.c.record_id).where(
            t.review.c.record_id.in_(chunk), t.review.c.resolved_at >= started
        )
        decided.update((found.crm, found.record_id) for found in connection.execute(query))
    return [row for row in rows if (row["crm"], row["record_id"]) not in decided]


def _not_ignored(connection: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The review rows that are not the very conflict a person ignored: an ignored item
    stays closed while matching finds the same candidates for the same reason (a Contact
    is matched again at every merge of its person), and reopens once either changes."""
    ignored: dict[tuple[str, str], tuple[list[str], str]] = {}
    for chunk in chunks([row["record_id"] for row in rows]):
        query = sa.select(
            t.review.c.crm, t.review.c.record_id, t.review.c.candidates, t.review.c.reason
        ).where(t.review.c.record_id.in_(chunk), t.review.c.resolution == IGNORED)
        for found in connection.execute(query):
            ignored[(found.crm, found.record_id)] = (list(found.candidates), found.reason)
    return [
        row
        for row in rows
        if ignored.get((row["crm"], row["record_id"])) != (row["candidates"], row["reason"])
    ]


def _close_reviews(
    connection: Connection, links: Sequence[tuple[str, str, str, str]], now: datetime
) -> None:
    """A record in review that matching now links without doubt: its cause went away (a
    duplicate deleted, an email corrected), so its item closes itself, saying how."""
    if not links:
        return
    # The open queue is short, the links of a batch may be thousands: read the one.
    still_open = t.review.c.resolved_at.is_(None)
    query = sa.select(t.review.c.crm, t.review.c.record_id).where(still_open)
    waiting = {(row.crm, row.record_id) for row in connection.execute(query)}
    for crm, record_id, lead_id, kind in links:
        if (crm, record_id) not in waiting:
            continue
        connection.execute(
            t.review.update()
            .where(
                t.review.c.crm == crm,
                t.review.c.record_id == record_id,
                t.review.c.resolved_at.is_(None),
            )
            .values(resolved_at=now, resolution=f"closed itself: matched {lead_id} by {kind}")
        )


def _insert_transitions(
    connection: Connection, rows: Sequence[tuple[str, Transition]], run_id: str
) -> None:
    values = (
        {
            "lead_id": lead_id,
            "from_stage": None if move.from_stage is None else move.from_stage.value,
            "to_stage": move.to_stage.value,
            "at": move.at,
            "reason": move.reason,
            "kind": move.kind,
            "run_id": run_id,
        }
        for lead_id, move in rows
    )
    for chunk in batches(values, WRITE_CHUNK):
        connection.execute(t.transitions.insert(), chunk)


def _cursor_key(crm: str, stream: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (t.cursors.c.crm == crm, t.cursors.c.stream == stream)


def _cursor_values(
    position: Position | None, checkpoint: str | None, *, run_id: str, now: datetime
) -> dict[str, Any]:
    return {
        "modified_at": None if position is None else position.modified_at,
        "record_id": None if position is None else position.record_id,
        "checkpoint": checkpoint,
        "run_id": run_id,
        "updated_at": now,
    }


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


def abandon_runs_of(connection: Connection, holder: str, *, finished_at: datetime) -> int:
    """Within a transaction: mark the runs `holder` ("<replica>/<role>") left running as
    abandoned; how many. The replica's runs under its other roles go on; those an older
    release recorded name the replica alone, whichever role ran them: they are abandoned."""
    replica = holder.split("/", 1)[0]
    running = connection.execute(
        sa.select(t.runs.c.run_id, t.runs.c.summary).where(t.runs.c.status == RUNNING)
    ).all()
    ids = [run_id for run_id, summary in running if summary.get("holder") in (holder, replica)]
    for chunk in chunks(ids):
        connection.execute(
            t.runs.update()
            .where(t.runs.c.run_id.in_(chunk), t.runs.c.status == RUNNING)
            .values(status=ABANDONED, finished_at=utc(finished_at))
        )
    return len(ids)


def _check_page(
    crm: str, snapshots: Sequence[Snapshot], quarantined: Sequence[Quarantined]
) -> None:
    strays = {s.crm for s in snapshots} | {q.crm for q in quarantined}
    strays.discard(crm)
    if strays:
        raise ValueError(f"a {crm} page holds records of {', '.join(sorted(strays))}")


# ------------------------------------------------------------------------------ rows to values


def _run(row: RowMapping) -> RunRow:
    return RunRow(
        run_id=row["run_id"],
        kind=row["kind"],
        status=row["status"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        summary=row["summary"],
    )


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


def _transition(row: RowMapping) -> Transition:
    return Transition(
        from_stage=None if row["from_stage"] is None else Stage(row["from_stage"]),
        to_stage=Stage(row["to_stage"]),
        at=row["at"],
        reason=row["reason"],
        kind=row["kind"],
    )


def _logged_writes(row: RowMapping, codebook: packed.Codebook) -> Iterator[LoggedWrite]:
    """A `writes` row's fields, one LoggedWrite each, in the order written."""
    status = WriteStatus(row["status"])
    for name, old, new in write_log.logged_fields(row["fields"], codebook):
        yield LoggedWrite(
            run_id=row["run_id"],
            crm=row["crm"],
            record_id=row["record_id"],
            field=name,
            old=old,
            new=new,
            status=status,
            category=row["category"],
            message=row["message"],
            at=row["at"],
        )


def _quarantined(row: RowMapping) -> Quarantined:
    return Quarantined(
        crm=row["crm"],
        record_id=row["record_id"],
        reason=row["reason"],
        raw=row["raw"],
        run_id=row["run_id"],
        at=row["at"],
        resolved_at=row["resolved_at"],
    )


def _review(row: RowMapping) -> ReviewItem:
    return ReviewItem(
        crm=row["crm"],
        record_id=row["record_id"],
        candidates=tuple(row["candidates"]),
        reason=row["reason"],
        run_id=row["run_id"],
        at=row["at"],
        resolved_at=row["resolved_at"],
        resolution=row["resolution"],
    )
