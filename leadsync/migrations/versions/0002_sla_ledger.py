"""The SLA ledger: clocks per lead and rule, and the events announced (log and webhook outbox).

Revision ID: 0002_sla_ledger
Revises: 0001_initial
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002_sla_ledger"
down_revision: str | None = "0001_initial"
branch_labels: str | None = None
depends_on: str | None = None


def _at(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _index(table: str, *columns: str) -> None:
    op.create_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table, list(columns))


def upgrade() -> None:
    op.create_table(
        "sla_clocks",
        _text("clock_id"),
        _text("rule"),
        _text("lead_id"),
        _text("owner", nullable=True),
        _text("time_zone"),
        _at("started_at"),
        _at("due_at"),
        _text("status"),
        _at("stopped_at", nullable=True),
        _text("outcome", nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=False),
        _at("breached_at", nullable=True),
        _text("run_id"),
        sa.PrimaryKeyConstraint("clock_id", name=op.f("pk_sla_clocks")),
    )
    _index("sla_clocks", "lead_id")
    _index("sla_clocks", "started_at")
    _index("sla_clocks", "status", "due_at")
    op.create_table(
        "sla_events",
        _text("event_id"),
        _text("kind"),
        _text("rule"),
        _text("clock_id", nullable=True),
        _text("lead_id", nullable=True),
        _at("at"),
        sa.Column("payload", sa.JSON(), nullable=False),
        _at("delivered_at", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _at("next_attempt_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_sla_events")),
    )
    _index("sla_events", "at")
    _index("sla_events", "delivered_at", "next_attempt_at")


def downgrade() -> None:
    op.drop_table("sla_events")
    op.drop_table("sla_clocks")
