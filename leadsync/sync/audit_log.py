"""The audit log as the store keeps it (`Store.audit_log`): every write leadsync made, field by
field (the `writes` table, a row a record), and what it last wrote to each field of each
record (the echo fingerprints, `expected`), so a pull can tell leadsync's own echo from a
person's edit.

    record          log a batch's writes, lay its values over the fingerprints, and quarantine
                    what the CRM refused (one transaction)
    entries         the log, in the order written, by run, CRM or record
    expected        what leadsync last wrote to each field of records
    unseen          what it wrote after the stored snapshot was read (no pull brought it yet)

The rows' encoding is `sync.write_log`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from leadsync.connectors.base import WriteStatus, utc
from leadsync.connectors.classify import REQUEST_REFUSALS
from leadsync.sync import packed, write_log
from leadsync.sync import tables as t
from leadsync.sync.database import retry_transient, writing
from leadsync.sync.dictionaries import PackingDictionaries
from leadsync.sync.quarantine_ledger import (
    REFUSED,
    Quarantined,
    add_refusals,
    delete_refusals,
    resolve_quarantined,
    upsert_quarantined,
)
from leadsync.sync.sql import chunks

__all__ = ["AuditLog", "LoggedWrite", "WriteRow"]

# The kinds of blob the log and the fingerprints are packed as, each with the CRM's name after.
WRITE_DICTIONARY = "writes:"
EXPECTED_DICTIONARY = "expected:"


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


class AuditLog:
    """The `writes` and `expected` tables. Each method is one short transaction, retried after
    transient errors; `clock` stamps when a write was logged."""

    def __init__(
        self, engine: Engine, clock: Callable[[], datetime], dictionaries: PackingDictionaries
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._dictionaries = dictionaries

    def _now(self) -> datetime:
        return utc(self._clock())

    @retry_transient
    def record(
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
        to be tried again (`QuarantineLedger.due_refusals`): `context` names what they were
        refused under (the mapping, the definition and the CRM's describe), `at` is the run's
        time (the store's clock when not given), from which the wait before a retry counts.
        `aside`: writes beside the plan's (the handoff's), which take no record out of
        quarantine. `also` runs in the same transaction (again, should it be retried): what
        must be committed with the batch's record or not at all."""
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
            dictionary = self._dictionaries.choose(
                connection, kind, samples, now, batch_size=logged
            )
            log = write_log.log_rows(connection, run_id, crm, rows, now, dictionary)
            write_log.insert_log(connection, log)
            expected_kind = f"{EXPECTED_DICTIONARY}{crm}"
            expected = (
                sa.select(t.expected.c.packed)
                .where(t.expected.c.crm == crm)
                .order_by(t.expected.c.written_at.desc())
            )
            expected_writes = write_log.expected_writes(rows)
            expected_dictionary = self._dictionaries.choose(
                connection, expected_kind, expected, now, batch_size=len(expected_writes)
            )
            write_log.merge_expected(
                connection,
                crm,
                run_id,
                now,
                expected_writes,
                dictionary=expected_dictionary,
                codebook=self._dictionaries.codebook,
            )
            # A record whose write the CRM refused waits in quarantine with its reason, for a
            # person to see (the report lists it); a later write that lands takes it out.
            resolve_quarantined(connection, crm, landed, now, reason_prefix=REFUSED)
            upsert_quarantined(connection, refused)
            delete_refusals(connection, crm, landed)
            add_refusals(
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
        self._dictionaries.keep(kind, dictionary)
        self._dictionaries.keep(expected_kind, expected_dictionary)

    @retry_transient
    def entries(
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
                for write in _logged_writes(row, self._dictionaries.codebook)
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
                    fields = write_log.expected_fields(blob, self._dictionaries.codebook)
                    found[record_id] = {
                        name: value
                        for name, (value, _) in write_log.expected_values(
                            fields, written_at
                        ).items()
                    }
        return found

    @retry_transient
    def unseen(self, crm: str, record_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
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
                    fields = write_log.expected_fields(blob, self._dictionaries.codebook)
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
