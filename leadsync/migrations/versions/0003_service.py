"""The service: leases (one replica per job at a time) and the backfill queue.

Revision ID: 0003_service
Revises: 0002_sla_ledger
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_service"
down_revision: str | None = "0002_sla_ledger"
branch_labels: str | None = None
depends_on: str | None = None


def _at(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "leases",
        _text("name"),
        _text("holder"),
        _at("acquired_at"),
        _at("expires_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    op.create_table(
        "backfills",
        _text("backfill_id"),
        _text("kind"),
        sa.Column("crms", sa.JSON(), nullable=False),
        _at("since", nullable=True),
        _at("until", nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        _text("status"),
        _at("created_at"),
        _at("started_at", nullable=True),
        _at("finished_at", nullable=True),
        _text("holder", nullable=True),
        _at("heartbeat_at", nullable=True),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("backfill_id", name=op.f("pk_backfills")),
    )
    op.create_index(op.f("ix_backfills_status"), "backfills", ["status"])


def downgrade() -> None:
    op.drop_table("backfills")
    op.drop_table("leases")
