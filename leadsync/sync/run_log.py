"""The run log (`Store.run_log`): every run leadsync made, from started to how it ended.

    start, finish        a run recorded as started (its id chosen here), then as ended
    get, latest          one run by id; the latest, newest first (of one kind)
    ids_starting         the ids a short id may stand for (`leadsync runs show`)
    last_finished        the last run of a kind that ended with a status
    first_started_at     since when leadsync has been watching (the SLA's first clock)
    abandon              the runs a dead lease holder left running, marked abandoned

A run is recorded by its lease holder ("<replica>/<role>"): a replica that takes a lease over
abandons the runs the dead holder left running under that role, and no other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from leadsync.connectors.base import utc
from leadsync.sync import ids
from leadsync.sync import tables as t
from leadsync.sync.database import retry_transient, writing
from leadsync.sync.run_kinds import RUN_KINDS
from leadsync.sync.sql import aggregate_time, chunks

__all__ = ["ABANDONED", "RUNNING", "RunLog", "RunRow", "abandon_runs_of"]

RUNNING = "running"  # a run's status until `finish`
ABANDONED = "abandoned"  # left running by a replica that died; another took its job over


@dataclass(frozen=True, slots=True)
class RunRow:
    run_id: str
    kind: str
    status: str  # "running" until finished
    started_at: datetime
    finished_at: datetime | None
    summary: Mapping[str, Any]


class RunLog:
    """The runs table. Each method is one short transaction, retried after transient errors."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def start(self, kind: str, *, started_at: datetime, holder: str | None = None) -> str:
        """Record a run as started (by `holder`, the lease holder running it: "<replica>/<role>");
        returns its id."""
        if kind not in RUN_KINDS:
            raise ValueError(f"unknown run kind {kind!r}: one of {', '.join(sorted(RUN_KINDS))}")
        # The id is chosen once, outside the retried transaction.
        run_id = ids.new_id()
        self._insert(run_id, kind, utc(started_at), holder)
        return run_id

    @retry_transient
    def _insert(self, run_id: str, kind: str, started_at: datetime, holder: str | None) -> None:
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
    def finish(
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
    def get(self, run_id: str) -> RunRow | None:
        """One run, or None."""
        with self._engine.connect() as connection:
            query = sa.select(t.runs).where(t.runs.c.run_id == run_id)
            row = connection.execute(query).mappings().one_or_none()
        return None if row is None else _run(row)

    @retry_transient
    def latest(self, limit: int = 20, *, kind: str | None = None) -> list[RunRow]:
        """The latest runs (of `kind`, if given), newest first."""
        query = sa.select(t.runs).order_by(t.runs.c.started_at.desc(), t.runs.c.run_id).limit(limit)
        if kind is not None:
            query = query.where(t.runs.c.kind == kind)
        with self._engine.connect() as connection:
            return [_run(row) for row in connection.execute(query).mappings()]

    @retry_transient
    def ids_starting(self, prefix: str, *, limit: int = 5) -> list[str]:
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
    def abandon(self, holder: str, *, finished_at: datetime) -> int:
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
    def first_started_at(self) -> datetime | None:
        """When the first run of any kind started: since when leadsync has been watching."""
        with self._engine.connect() as connection:
            first = connection.execute(sa.select(sa.func.min(t.runs.c.started_at))).scalar()
        return None if first is None else aggregate_time(first)


def abandon_runs_of(connection: Connection, holder: str, *, finished_at: datetime) -> int:
    """Within a transaction: mark the runs `holder` ("<replica>/<role>") left running as
    abandoned; how many. The replica's runs under its other roles go on; those an older
    release recorded name the replica alone, whichever role ran them: they are abandoned."""
    replica = holder.split("/", 1)[0]
    running = connection.execute(
        sa.select(t.runs.c.run_id, t.runs.c.summary).where(t.runs.c.status == RUNNING)
    ).all()
    ids_left = [run_id for run_id, summary in running if summary.get("holder") in (holder, replica)]
    for chunk in chunks(ids_left):
        connection.execute(
            t.runs.update()
            .where(t.runs.c.run_id.in_(chunk), t.runs.c.status == RUNNING)
            .values(status=ABANDONED, finished_at=utc(finished_at))
        )
    return len(ids_left)


def _run(row: RowMapping) -> RunRow:
    return RunRow(
        run_id=row["run_id"],
        kind=row["kind"],
        status=row["status"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        summary=row["summary"],
    )
