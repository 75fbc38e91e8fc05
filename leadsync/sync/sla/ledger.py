"""The SLA ledger in the store: clocks per lead and rule, and the events announced about them.

    save_clock_changes(connection, ...)   a merge's clock starts and stops, inside the
                                          transaction that saves its transitions
    SlaLedger.running(lead_ids)           the clocks still running, per lead
    SlaLedger.overdue_leads(now)          leads with a running clock past due (to flag)
    SlaLedger.mark_breached(now)          running clocks past due become breached
    SlaLedger.announce(now)               one `breached` and one `resolved` event per clock,
                                          whichever replica gets there first; returns the new
    SlaLedger.add_events(events)          any other events, once each (volume warnings)
    SlaLedger.entries(stage, start, end)  the leads that entered a stage in a period
    SlaLedger.clocks(...), events(...)    for `leadsync sla` and the reports
    SlaLedger.due_deliveries, delivered, delivery_failed   the webhook's outbox

Each status move is one conditional UPDATE and each event one INSERT ... ON CONFLICT DO
NOTHING RETURNING, so however many runs or replicas see a breach, one of them records it and
announces it, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from leadsync.connectors.base import utc
from leadsync.sync import tables as t
from leadsync.sync.database import retry_transient, writing
from leadsync.sync.sla.clocks import Clock, ClockChanges, ClockStatus, Outcome
from leadsync.sync.sql import aggregate_time, chunks, insert_for

__all__ = ["BREACHED", "RESOLVED", "SlaEvent", "SlaLedger", "save_clock_changes"]

BREACHED = "breached"
RESOLVED = "resolved"
_RUNNING = (ClockStatus.OPEN.value, ClockStatus.BREACHED.value)
_EVENTS_PER_INSERT = 500


@dataclass(frozen=True, slots=True)
class SlaEvent:
    """Something the ledger announces once: a breach, its resolution, a volume warning."""

    event_id: str
    kind: str
    rule: str
    at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
    clock_id: str | None = None
    lead_id: str | None = None
    attempts: int = 0
    delivered_at: datetime | None = None
    last_error: str | None = None


# ------------------------------------------------------------------------ inside a merge


def save_clock_changes(
    connection: Connection, changes: Sequence[ClockChanges], *, run_id: str, now: datetime
) -> None:
    """Start and stop clocks, in the caller's transaction. Starting one twice is a no-op but
    for an owner it did not have; a stop moves only a running clock: met when in time, else
    resolved late (a breach, recorded now if no check has recorded it yet)."""
    opened = [clock for change in changes for clock in change.opened]
    if opened:
        insert = insert_for(connection, t.sla_clocks)
        connection.execute(
            insert.on_conflict_do_nothing(index_elements=["clock_id"]),
            [_clock_row(clock, run_id) for clock in opened],
        )
        # A clock started before its owner was known (the CRM's own assignment rules picked
        # one, read back a run later) gets the owner when started again with it.
        owned = [{"id": c.clock_id, "new_owner": c.owner} for c in opened if c.owner]
        if owned:
            clocks = t.sla_clocks
            connection.execute(
                clocks.update()
                .where(clocks.c.clock_id == sa.bindparam("id"), clocks.c.owner.is_(None))
                .values(owner=sa.bindparam("new_owner")),
                owned,
            )
    for stop in (stop for change in changes for stop in change.stopped):
        late = stop.at > t.sla_clocks.c.due_at  # due *at* due_at: met then is in time
        connection.execute(
            t.sla_clocks.update()
            .where(t.sla_clocks.c.clock_id == stop.clock_id, t.sla_clocks.c.status.in_(_RUNNING))
            .values(
                status=sa.case(
                    (late, ClockStatus.RESOLVED_LATE.value), else_=ClockStatus.MET.value
                ),
                stopped_at=stop.at,
                outcome=stop.outcome.value,
                stop_reason=stop.reason,
                breached_at=sa.case(
                    (late, sa.func.coalesce(t.sla_clocks.c.breached_at, now)),
                    else_=t.sla_clocks.c.breached_at,
                ),
            )
        )


def _clock_row(clock: Clock, run_id: str) -> dict[str, Any]:
    return {
        "clock_id": clock.clock_id,
        "rule": clock.rule,
        "lead_id": clock.lead_id,
        "owner": clock.owner,
        "time_zone": clock.time_zone,
        "started_at": clock.started_at,
        "due_at": clock.due_at,
        "status": clock.status.value,
        "stopped_at": clock.stopped_at,
        "outcome": None if clock.outcome is None else clock.outcome.value,
        "stop_reason": clock.stop_reason,
        "breached_at": clock.breached_at,
        "run_id": run_id,
    }


# ------------------------------------------------------------------------ the ledger


class SlaLedger:
    """The SLA tables of one store (`Store.sla`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @retry_transient
    def running(self, lead_ids: Sequence[str]) -> dict[str, list[Clock]]:
        """Lead id -> its running clocks (open or breached), oldest first."""
        found: dict[str, list[Clock]] = {}
        with self._engine.connect() as connection:
            for chunk in chunks(lead_ids):
                query = (
                    sa.select(t.sla_clocks)
                    .where(t.sla_clocks.c.lead_id.in_(chunk), t.sla_clocks.c.status.in_(_RUNNING))
                    .order_by(t.sla_clocks.c.started_at, t.sla_clocks.c.clock_id)
                )
                for row in connection.execute(query).mappings():
                    found.setdefault(row["lead_id"], []).append(_clock(row))
        return found

    @retry_transient
    def overdue_leads(self, now: datetime, *, rules: Sequence[str]) -> list[str]:
        """The leads with a clock of `rules` past due at `now` that no check has recorded as
        breached yet: the leads whose CRMs' breach flag is still to be set."""
        column = t.sla_clocks.c
        query = (
            sa.select(column.lead_id)
            .where(
                column.status == ClockStatus.OPEN.value,
                column.due_at < utc(now),
                column.rule.in_(list(rules)),
            )
            .distinct()
            .order_by(column.lead_id)
        )
        with self._engine.connect() as connection:
            return list(connection.execute(query).scalars())

    @retry_transient
    def open_breaches(self, now: datetime, *, rules: Sequence[str] | None = None) -> int:
        """How many clocks (of `rules`, or any) are running past due at `now`."""
        query = sa.select(sa.func.count()).where(
            t.sla_clocks.c.status.in_(_RUNNING), t.sla_clocks.c.due_at < utc(now)
        )
        if rules is not None:
            query = query.where(t.sla_clocks.c.rule.in_(list(rules)))
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar() or 0)

    @retry_transient
    def mark_breached(self, now: datetime, *, rules: Sequence[str] | None = None) -> int:
        """Record every open clock (of `rules`, or any) past due at `now` as breached; how
        many were. A clock of a rule since removed is not judged any more."""
        condition = [
            t.sla_clocks.c.status == ClockStatus.OPEN.value,
            t.sla_clocks.c.due_at < utc(now),
        ]
        if rules is not None:
            condition.append(t.sla_clocks.c.rule.in_(list(rules)))
        with writing(self._engine) as connection:
            done = connection.execute(
                t.sla_clocks.update()
                .where(*condition)
                .values(status=ClockStatus.BREACHED.value, breached_at=utc(now))
            )
        return int(done.rowcount or 0)

    @retry_transient
    def announce(self, now: datetime, *, delivered: bool = False) -> list[SlaEvent]:
        """Add the `breached` event of every breached clock and the `resolved` event of every
        breach resolved since, once each: the events this call added, for its caller to log
        (and post). With `delivered` there is no webhook: nothing waits in the outbox."""
        now = utc(now)
        with writing(self._engine) as connection:
            candidates = [
                _clock_event(row, BREACHED, now)
                for row in connection.execute(_without_event(BREACHED)).mappings()
            ]
            candidates += [
                _clock_event(row, RESOLVED, now)
                for row in connection.execute(_without_event(RESOLVED)).mappings()
            ]
            return _insert_new(connection, candidates, delivered_at=now if delivered else None)

    @retry_transient
    def add_events(
        self, events: Sequence[SlaEvent], *, delivered_at: datetime | None = None
    ) -> list[SlaEvent]:
        """Add `events` not added before (by event id); the ones this call added."""
        with writing(self._engine) as connection:
            return _insert_new(connection, events, delivered_at=delivered_at)

    @retry_transient
    def entries(self, stage: str, start: datetime, end: datetime) -> dict[str, datetime]:
        """Lead id -> when it first entered `stage` within [start, end)."""
        column = t.transitions.c
        query = (
            sa.select(column.lead_id, sa.func.min(column.at).label("at"))
            .where(column.to_stage == stage, column.at >= utc(start), column.at < utc(end))
            .group_by(column.lead_id)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).mappings()
            return {row["lead_id"]: aggregate_time(row["at"]) for row in rows}

    @retry_transient
    def clocks(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        lead_ids: Sequence[str] | None = None,
        running_only: bool = False,
    ) -> list[Clock]:
        """Clocks started within [since, until), oldest first, narrowed as asked."""
        query = sa.select(t.sla_clocks).order_by(
            t.sla_clocks.c.started_at, t.sla_clocks.c.rule, t.sla_clocks.c.lead_id
        )
        if since is not None:
            query = query.where(t.sla_clocks.c.started_at >= utc(since))
        if until is not None:
            query = query.where(t.sla_clocks.c.started_at < utc(until))
        if running_only:
            query = query.where(t.sla_clocks.c.status.in_(_RUNNING))
        if lead_ids is not None:
            query = query.where(t.sla_clocks.c.lead_id.in_(list(lead_ids)))
        with self._engine.connect() as connection:
            return [_clock(row) for row in connection.execute(query).mappings()]

    @retry_transient
    def owners(self) -> set[str]:
        """Every owner a clock has (the reports show them), whoever's name the store knows."""
        owner = t.sla_clocks.c.owner
        query = sa.select(owner).where(owner.is_not(None), owner != "").distinct()
        with self._engine.connect() as connection:
            return {str(found) for found in connection.execute(query).scalars()}

    @retry_transient
    def events(self, *, kind: str | None = None, since: datetime | None = None) -> list[SlaEvent]:
        """Announced events, oldest first."""
        query = sa.select(t.sla_events).order_by(t.sla_events.c.at, t.sla_events.c.event_id)
        if kind is not None:
            query = query.where(t.sla_events.c.kind == kind)
        if since is not None:
            query = query.where(t.sla_events.c.at >= utc(since))
        with self._engine.connect() as connection:
            return [_event(row) for row in connection.execute(query).mappings()]

    # ------------------------------------------------------------------ the webhook's outbox

    @retry_transient
    def due_deliveries(self, now: datetime, *, limit: int = 100) -> list[SlaEvent]:
        """Events waiting for the webhook whose next attempt is due, oldest first."""
        column = t.sla_events.c
        query = (
            sa.select(t.sla_events)
            .where(
                column.delivered_at.is_(None),
                sa.or_(column.next_attempt_at.is_(None), column.next_attempt_at <= utc(now)),
            )
            .order_by(column.at, column.event_id)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [_event(row) for row in connection.execute(query).mappings()]

    @retry_transient
    def claim_delivery(self, event_id: str, now: datetime, *, hold: timedelta) -> bool:
        """Take an event to post, unless another check took it first: it is not due again
        for `hold` (a check that dies mid-post leaves it to be tried once that has passed)."""
        column = t.sla_events.c
        with writing(self._engine) as connection:
            done = connection.execute(
                t.sla_events.update()
                .where(
                    column.event_id == event_id,
                    column.delivered_at.is_(None),
                    sa.or_(column.next_attempt_at.is_(None), column.next_attempt_at <= utc(now)),
                )
                .values(next_attempt_at=utc(now) + hold)
            )
        return bool(done.rowcount)

    @retry_transient
    def delivered(self, event_id: str, now: datetime) -> None:
        with writing(self._engine) as connection:
            connection.execute(
                t.sla_events.update()
                .where(t.sla_events.c.event_id == event_id)
                .values(
                    delivered_at=utc(now),
                    attempts=t.sla_events.c.attempts + 1,
                    last_error=None,
                )
            )

    @retry_transient
    def delivery_failed(
        self, event_id: str, now: datetime, *, error: str, retry_in: timedelta | None
    ) -> None:
        """Count a failed attempt; `retry_in` None gives the event up (it stays undelivered
        with its error, and is not tried again)."""
        values = {
            "attempts": t.sla_events.c.attempts + 1,
            "last_error": error,
            "next_attempt_at": _NEVER if retry_in is None else utc(now) + retry_in,
        }
        with writing(self._engine) as connection:
            connection.execute(
                t.sla_events.update().where(t.sla_events.c.event_id == event_id).values(values)
            )


# A give-up is an attempt due at the end of time: one column, and the outbox query unchanged.
_NEVER = datetime(9999, 1, 1, tzinfo=UTC)


def _without_event(kind: str) -> sa.Select[Any]:
    """Clocks owing a `kind` event: breached ones (whether resolved since or not) for
    `breached`, breaches resolved late for `resolved`, with the lead's email."""
    clocks = t.sla_clocks.c
    owed = (
        clocks.breached_at.is_not(None)
        if kind == BREACHED
        else clocks.status == ClockStatus.RESOLVED_LATE.value
    )
    announced = sa.exists().where(
        t.sla_events.c.clock_id == clocks.clock_id, t.sla_events.c.kind == kind
    )
    return (
        sa.select(t.sla_clocks, t.leads.c.email)
        .select_from(t.sla_clocks.outerjoin(t.leads, t.leads.c.lead_id == clocks.lead_id))
        .where(owed, ~announced)
        .order_by(clocks.due_at, clocks.clock_id)
    )


def _clock_event(row: RowMapping, kind: str, now: datetime) -> SlaEvent:
    clock = _clock(row)
    payload: dict[str, Any] = {
        "event": f"sla.{kind}",
        "rule": clock.rule,
        "lead_id": clock.lead_id,
        "email": row["email"],
        "owner": clock.owner,
        "started_at": clock.started_at.isoformat(),
        "due_at": clock.due_at.isoformat(),
        "time_zone": clock.time_zone,
    }
    if clock.stopped_at is not None:
        payload.update(
            stopped_at=clock.stopped_at.isoformat(),
            outcome=None if clock.outcome is None else clock.outcome.value,
            reason=clock.stop_reason,
        )
    return SlaEvent(
        event_id=f"{kind}:{clock.clock_id}",
        kind=kind,
        rule=clock.rule,
        at=now,
        payload=payload,
        clock_id=clock.clock_id,
        lead_id=clock.lead_id,
    )


def _insert_new(
    connection: Connection, events: Sequence[SlaEvent], *, delivered_at: datetime | None
) -> list[SlaEvent]:
    unique = list({event.event_id: event for event in events}.values())
    if not unique:
        return []
    rows = [
        {
            "event_id": event.event_id,
            "kind": event.kind,
            "rule": event.rule,
            "clock_id": event.clock_id,
            "lead_id": event.lead_id,
            "at": utc(event.at),
            "payload": dict(event.payload),
            "delivered_at": delivered_at,
            "attempts": 0,
            "next_attempt_at": None,
            "last_error": None,
        }
        for event in unique
    ]
    insert = insert_for(connection, t.sla_events)
    added: set[str] = set()
    # A few hundred rows a statement: far below the bound-parameter limits of both backends.
    for start in range(0, len(rows), _EVENTS_PER_INSERT):
        statement = (
            insert.values(rows[start : start + _EVENTS_PER_INSERT])
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(t.sla_events.c.event_id)
        )
        added.update(connection.execute(statement).scalars())
    return [event for event in unique if event.event_id in added]


def _clock(row: RowMapping) -> Clock:
    return Clock(
        clock_id=row["clock_id"],
        rule=row["rule"],
        lead_id=row["lead_id"],
        started_at=row["started_at"],
        due_at=row["due_at"],
        time_zone=row["time_zone"],
        owner=row["owner"],
        status=ClockStatus(row["status"]),
        stopped_at=row["stopped_at"],
        outcome=None if row["outcome"] is None else Outcome(row["outcome"]),
        stop_reason=row["stop_reason"],
        breached_at=row["breached_at"],
    )


def _event(row: RowMapping) -> SlaEvent:
    return SlaEvent(
        event_id=row["event_id"],
        kind=row["kind"],
        rule=row["rule"],
        at=row["at"],
        payload=row["payload"],
        clock_id=row["clock_id"],
        lead_id=row["lead_id"],
        attempts=row["attempts"],
        delivered_at=row["delivered_at"],
        last_error=row["last_error"],
    )
