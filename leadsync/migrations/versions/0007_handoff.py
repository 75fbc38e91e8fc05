"""The handoff: each lead handed off to the CRM sales work in, once, with its owner.

Revision ID: 0007_handoff
Revises: 0006_console_audit
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007_handoff"
down_revision: str | None = "0006_console_audit"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "handoffs",
        sa.Column("lead_id", sa.String(), nullable=False),
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("record_id", sa.String(), nullable=True),
        sa.Column("record_object", sa.String(), nullable=True),
        sa.Column("owner", sa.String(), nullable=True),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("eligible_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handed_off_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_handoffs")),
    )
    op.create_index(op.f("ix_handoffs_status"), "handoffs", ["status"])
    op.create_index(op.f("ix_handoffs_owner"), "handoffs", ["owner"])
    op.create_index(op.f("ix_handoffs_handed_off_at"), "handoffs", ["handed_off_at"])


def downgrade() -> None:
    op.drop_table("handoffs")
