"""Backfill holds and the SLA ledger's lookups: snapshots a backfill pulled wait for its own
settle (`held_for`); indexes for the SLA check that runs after every sync.

Revision ID: 0004_backfill_holds
Revises: 0003_service
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_backfill_holds"
down_revision: str | None = "0003_service"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("snapshots") as table:
        table.add_column(sa.Column("held_for", sa.String(), nullable=True))
    op.create_index(op.f("ix_snapshots_held_for"), "snapshots", ["held_for"])
    op.create_index(op.f("ix_sla_clocks_breached_at"), "sla_clocks", ["breached_at"])
    op.create_index(op.f("ix_sla_events_clock_id_kind"), "sla_events", ["clock_id", "kind"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sla_events_clock_id_kind"), "sla_events")
    op.drop_index(op.f("ix_sla_clocks_breached_at"), "sla_clocks")
    op.drop_index(op.f("ix_snapshots_held_for"), "snapshots")
    with op.batch_alter_table("snapshots") as table:
        table.drop_column("held_for")
