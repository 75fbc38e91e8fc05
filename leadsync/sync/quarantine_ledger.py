"""The quarantine as the store keeps it (`Store.quarantine`): records leadsync could not use,
and writes a CRM refused, each with its reason, until a later pull reads the record or a
retried write lands.

    entries, open_for, size     the quarantine, all or a batch's open entries, how many open
    due_refusals                refused writes worth trying again (their cause may have
                                changed, or their wait is over)
    refused_before              which records were refused and wait to be tried again
    refusals_due_now            a person asked to try these again
    forget_refusals             tried again, nothing left to write: out of the quarantine

Within another transaction of the store's (a page saved, a batch of writes recorded):
`upsert_quarantined`, `resolve_quarantined`, `add_refusals`, `delete_refusals`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from leadsync.connectors.base import utc
from leadsync.sync import tables as t
from leadsync.sync.database import retry_transient, writing
from leadsync.sync.sql import (
    WRITE_CHUNK,
    batches,
    chunks,
    excluded,
    insert_for,
    last_by_key,
    upsert,
)

__all__ = [
    "REFUSAL_RETRY_FIRST",
    "REFUSAL_RETRY_MOST",
    "REFUSED",
    "QuarantineLedger",
    "Quarantined",
    "add_refusals",
    "delete_refusals",
    "resolve_quarantined",
    "upsert_quarantined",
]

# How a write the CRM refused is named in the quarantine.
REFUSED = "write refused by "
# A refused write is tried again once its cause may have changed (see `due_refusals`), or
# after this wait when nothing did: an hour, doubling with each refusal, a day at the most (the
# nightly sweep tries everything again anyway). A write refused for the request itself
# (REQUEST_REFUSALS: a missing scope) waits for no time: the next run tries it again.
REFUSAL_RETRY_FIRST = timedelta(hours=1)
REFUSAL_RETRY_MOST = timedelta(days=1)


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


class QuarantineLedger:
    """The quarantine and refusals tables. Each method is one short transaction, retried
    after transient errors; `clock` stamps when an entry was resolved or made due."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def _now(self) -> datetime:
        return utc(self._clock())

    @retry_transient
    def entries(self, *, open_only: bool = True) -> list[Quarantined]:
        """Quarantined records, oldest first; with `open_only`, those not read since."""
        query = sa.select(t.quarantine).order_by(
            t.quarantine.c.at, t.quarantine.c.crm, t.quarantine.c.record_id
        )
        if open_only:
            query = query.where(t.quarantine.c.resolved_at.is_(None))
        with self._engine.connect() as connection:
            return [_quarantined(row) for row in connection.execute(query).mappings()]

    @retry_transient
    def open_for(self, crm: str, record_ids: Sequence[str]) -> dict[str, Quarantined]:
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
    def left_by_plans(self, run_id: str) -> dict[str, set[str]]:
        """CRM -> the records in quarantine that a plan run after the last sync (other than
        `run_id`) put there: the sync after a plan pulled them as much as what the plan left
        pending, and counts them so, once."""
        r, q = t.runs, t.quarantine
        last_sync = (
            sa.select(sa.func.max(r.c.started_at))
            .where(r.c.kind == "sync", r.c.run_id != run_id)
            .scalar_subquery()
        )
        plans = sa.select(r.c.run_id).where(
            r.c.kind == "plan", sa.or_(last_sync.is_(None), r.c.started_at > last_sync)
        )
        query = sa.select(q.c.crm, q.c.record_id).where(
            q.c.resolved_at.is_(None), q.c.run_id.in_(plans)
        )
        found: dict[str, set[str]] = {}
        with self._engine.connect() as connection:
            for crm, record_id in connection.execute(query):
                found.setdefault(crm, set()).add(record_id)
        return found

    @retry_transient
    def size(self) -> int:
        """How many records are in quarantine, not yet read again."""
        query = sa.select(sa.func.count()).where(t.quarantine.c.resolved_at.is_(None))
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar() or 0)

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
    def refused_before(self, crm: str, record_ids: Sequence[str]) -> set[str]:
        """Those of `record_ids` whose write `crm` refused and that no write has landed on
        since: a record waiting to be tried again (its quarantine entry may be closed, a pull
        having read the record again meanwhile)."""
        found: set[str] = set()
        with self._engine.connect() as connection:
            for chunk in chunks(record_ids):
                query = sa.select(t.refusals.c.record_id).where(
                    t.refusals.c.crm == crm, t.refusals.c.record_id.in_(chunk)
                )
                found.update(connection.execute(query).scalars())
        return found

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
            delete_refusals(connection, crm, record_ids)
            resolve_quarantined(connection, crm, record_ids, self._now(), reason_prefix=REFUSED)


def upsert_quarantined(connection: Connection, entries: Sequence[Quarantined]) -> None:
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
    if not rows:
        return
    q = t.quarantine
    insert = insert_for(connection, q)
    still = sa.and_(q.c.resolved_at.is_(None), q.c.reason == insert.excluded.reason)
    statement = insert.on_conflict_do_update(
        index_elements=["crm", "record_id"],
        set_={
            **excluded(insert, q, ["reason", "raw", "run_id", "resolved_at"]),
            # Since when it waits: the first time for this reason, however often pulled again.
            "at": sa.case((still, q.c.at), else_=insert.excluded.at),
        },
    )
    for batch in batches(rows, WRITE_CHUNK):
        connection.execute(statement, batch)


def resolve_quarantined(
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


def delete_refusals(connection: Connection, crm: str, record_ids: Sequence[str]) -> None:
    for chunk in chunks(record_ids):
        connection.execute(
            t.refusals.delete().where(t.refusals.c.crm == crm, t.refusals.c.record_id.in_(chunk))
        )


def add_refusals(
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
