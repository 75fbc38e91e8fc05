"""Where each pull resumes (`Store.cursors`), by CRM and stream.

    position            an incremental pull's: the last record committed, by its stamp
    checkpoint          a full pull's (a backfill's): the CRM's opaque page token
    clear               forget one: that stream's next pull starts from the beginning

A cursor moves only with the page it resumes after, in that page's transaction
(`Store.save_page`, through `cursor_row`): a run killed anywhere pulls that page again at
most, never skips one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from leadsync.connectors.base import Position
from leadsync.sync import tables as t
from leadsync.sync.database import retry_transient, writing

__all__ = ["BACKFILL", "INCREMENTAL", "Cursors", "cursor_row"]

INCREMENTAL = "incremental"  # the cursor stream of incremental pulls (a Position)
BACKFILL = "backfill"  # the cursor stream of full pulls (an opaque checkpoint)


class Cursors:
    """The cursors table. Each read or write is one short transaction, retried after
    transient errors."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def position(self, crm: str, stream: str = INCREMENTAL) -> Position | None:
        """Where the incremental pull of `crm` resumes; None before the first committed page."""
        row = self._row(crm, stream)
        if row is None:
            return None
        if row["modified_at"] is None:
            raise ValueError(f"the {crm} {stream} cursor holds a checkpoint, not a position")
        return Position(row["modified_at"], row["record_id"] or "")

    def checkpoint(self, crm: str, stream: str = BACKFILL) -> str | None:
        """Where the full pull of `crm` resumes; None when none is under way."""
        row = self._row(crm, stream)
        if row is None:
            return None
        if row["checkpoint"] is None:
            raise ValueError(f"the {crm} {stream} cursor holds a position, not a checkpoint")
        return str(row["checkpoint"])

    @retry_transient
    def clear(self, crm: str, stream: str) -> None:
        """Forget a cursor: the next pull of that stream starts from the beginning."""
        with writing(self._engine) as connection:
            connection.execute(t.cursors.delete().where(*_key(crm, stream)))

    @retry_transient
    def _row(self, crm: str, stream: str) -> RowMapping | None:
        query = sa.select(t.cursors).where(*_key(crm, stream))
        with self._engine.connect() as connection:
            return connection.execute(query).mappings().one_or_none()


def cursor_row(
    crm: str,
    stream: str,
    position: Position | None,
    checkpoint: str | None,
    *,
    run_id: str,
    now: datetime,
) -> dict[str, Any]:
    """The cursors row that resumes `crm`'s `stream` after a page: its last position, or
    the checkpoint of the page after it."""
    return {
        "crm": crm,
        "stream": stream,
        "modified_at": None if position is None else position.modified_at,
        "record_id": None if position is None else position.record_id,
        "checkpoint": checkpoint,
        "run_id": run_id,
        "updated_at": now,
    }


def _key(crm: str, stream: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (t.cursors.c.crm == crm, t.cursors.c.stream == stream)
