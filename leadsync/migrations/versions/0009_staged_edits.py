"""Staged edits: the versions of the mapping and lead definition `leadsync apply` accepted.

Revision ID: 0009_staged_edits
Revises: 0008_related_objects
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009_staged_edits"
down_revision: str | None = "0008_related_objects"
branch_labels: str | None = None
depends_on: str | None = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "accepted_files",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("mapping", sa.Text(), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accepted_files")),
    )


def downgrade() -> None:
    op.drop_table("accepted_files")
