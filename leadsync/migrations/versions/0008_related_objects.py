"""Related records: the Salesforce Contacts and Opportunities converted leads became.

Revision ID: 0008_related_objects
Revises: 0007_handoff
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008_related_objects"
down_revision: str | None = "0007_handoff"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "related",
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("record_id", sa.String(), nullable=False),
        sa.Column("object_name", sa.String(), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("parent_id", sa.String(), nullable=True),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("crm", "record_id", name=op.f("pk_related")),
    )
    op.create_index(op.f("ix_related_parent_id"), "related", ["parent_id"])
    op.create_index(
        op.f("ix_related_crm_object_name_modified_at"),
        "related",
        ["crm", "object_name", "modified_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_related_crm_object_name_modified_at"), table_name="related")
    op.drop_index(op.f("ix_related_parent_id"), table_name="related")
    op.drop_table("related")
