"""The console's audit log: every change made from it, each sign-in and each refused one, with
who did it, as which role, from which replica, and when. Append-only, in the store.

Actions are dotted names: `login`, `login.refused`, `logout`, `backfill.queue`,
`backfill.stop`, `backfill.resume` (and, once they are built, `edit.apply`,
`review.resolve`, `quarantine.resolve`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from leadsync.connectors.base import utc
from leadsync.sync import tables as t
from leadsync.sync.database import retry_transient, writing

__all__ = ["NOBODY", "AuditEntry", "AuditLog"]

NOBODY = "-"  # the actor of a refused sign-in under a name nobody has


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    role: str
    action: str
    target: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    replica: str = ""


class AuditLog:
    def __init__(
        self,
        engine: Engine,
        *,
        replica: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._replica = replica
        self._clock = clock

    @retry_transient
    def record(
        self,
        actor: str,
        role: str,
        action: str,
        target: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one entry; `details` are JSON values (what was asked, what came of it)."""
        entry = AuditEntry(
            utc(self._clock()), actor, role, action, target, dict(details or {}), self._replica
        )
        with writing(self._engine) as connection:
            connection.execute(
                t.console_audit.insert(),
                {
                    "at": entry.at,
                    "actor": entry.actor,
                    "role": entry.role,
                    "action": entry.action,
                    "target": entry.target,
                    "details": entry.details,
                    "replica": entry.replica,
                },
            )
        return entry

    @retry_transient
    def entries(self, *, limit: int = 200, actor: str | None = None) -> list[AuditEntry]:
        """The latest entries, newest first, of everyone or of one actor."""
        column = t.console_audit.c
        query = sa.select(t.console_audit).order_by(column.at.desc(), column.id.desc())
        if actor is not None:
            query = query.where(column.actor == actor)
        with self._engine.connect() as connection:
            return [_entry(row) for row in connection.execute(query.limit(limit)).mappings()]

    @retry_transient
    def count(self, actor: str, action: str, *, since: datetime) -> int:
        """How many times `actor` did `action` since then (refused sign-ins, say)."""
        column = t.console_audit.c
        query = sa.select(sa.func.count()).where(
            column.actor == actor, column.action == action, column.at >= utc(since)
        )
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar() or 0)


def _entry(row: RowMapping) -> AuditEntry:
    return AuditEntry(
        row["at"],
        row["actor"],
        row["role"],
        row["action"],
        row["target"],
        row["details"],
        row["replica"],
    )
