"""No response after handoff: when a handed-off lead was first worked, and owners' names.

Revision ID: 0011_handoff_responses
Revises: 0010_related_email
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011_handoff_responses"
down_revision: str | None = "0010_related_email"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("handoffs", sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "owner_names",
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("owner_id", sa.String(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("crm", "owner_id", name=op.f("pk_owner_names")),
    )


def downgrade() -> None:
    op.drop_table("owner_names")
    with op.batch_alter_table("handoffs") as batch:
        batch.drop_column("responded_at")
