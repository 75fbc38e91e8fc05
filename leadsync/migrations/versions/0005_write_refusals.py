"""Refused writes tried again: each record a CRM refused to write waits here until the mapping,
the lead definition or that CRM's describe changes (`context`), or until `retry_at`.

Revision ID: 0005_write_refusals
Revises: 0004_backfill_holds
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005_write_refusals"
down_revision: str | None = "0004_backfill_holds"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "refusals",
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("record_id", sa.String(), nullable=False),
        sa.Column("context", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("crm", "record_id", name=op.f("pk_refusals")),
    )
    op.create_index(op.f("ix_refusals_retry_at"), "refusals", ["retry_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_refusals_retry_at"), "refusals")
    op.drop_table("refusals")
