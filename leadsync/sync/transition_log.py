"""Each lead's lifecycle history (`Store.transitions`): every stage it entered, when, why.

    add         append transitions, in the order given
    history     one lead's, oldest first

A batch's transitions are saved with its leads, in one transaction (`Store.save_decisions`,
through `insert_transitions`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from leadsync.mapping.lifecycle import Stage, Transition
from leadsync.sync import tables as t
from leadsync.sync.database import retry_transient, writing
from leadsync.sync.sql import WRITE_CHUNK, batches

__all__ = ["TransitionLog", "insert_transitions"]


class TransitionLog:
    """The transitions table. Each method is one short transaction, retried after transient
    errors."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @retry_transient
    def add(self, rows: Sequence[tuple[str, Transition]], *, run_id: str) -> None:
        """Append lifecycle transitions, (lead_id, transition) each, in the order given."""
        with writing(self._engine) as connection:
            insert_transitions(connection, rows, run_id)

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


def insert_transitions(
    connection: Connection, rows: Sequence[tuple[str, Transition]], run_id: str
) -> None:
    """Within a transaction: append `rows`, (lead_id, transition) each, made by `run_id`."""
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


def _transition(row: RowMapping) -> Transition:
    return Transition(
        from_stage=None if row["from_stage"] is None else Stage(row["from_stage"]),
        to_stage=Stage(row["to_stage"]),
        at=row["at"],
        reason=row["reason"],
        kind=row["kind"],
    )
