"""Related records that are people of their own: their normalised email, indexed.

A Contact that no converted lead names (created by sales, imported) is matched to its person
by email; the column lets a sync find such records by the emails of the leads it merges.
Rows pulled before this revision get the email their stored values hold.

Revision ID: 0010_related_email
Revises: 0009_staged_edits
Create Date: 2026-12-03
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010_related_email"
down_revision: str | None = "0009_staged_edits"
branch_labels: str | None = None
depends_on: str | None = None

# What the Salesforce connector names as its people objects and their email fields, as of this
# revision (a migration runs against the data of its day, not the code of later ones).
_PERSON_EMAIL = {"contact": "Email"}


def upgrade() -> None:
    op.add_column("related", sa.Column("email", sa.String(), nullable=True))
    op.create_index(op.f("ix_related_email"), "related", ["email"])
    related = sa.table(
        "related",
        sa.column("crm", sa.String()),
        sa.column("record_id", sa.String()),
        sa.column("object_name", sa.String()),
        sa.column("raw", sa.JSON()),
        sa.column("email", sa.String()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(related.c.crm, related.c.record_id, related.c.object_name, related.c.raw)
    ).all()
    for crm, record_id, object_name, raw in rows:
        email = _email(object_name, raw)
        if email is not None:
            connection.execute(
                related.update()
                .where(related.c.crm == crm, related.c.record_id == record_id)
                .values(email=email)
            )


def _email(object_name: str, raw: Any) -> str | None:
    field = _PERSON_EMAIL.get(str(object_name).lower())
    if field is None:
        return None
    values = json.loads(raw) if isinstance(raw, str) else raw
    value = values.get(field) if isinstance(values, dict) else None
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().lower()


def downgrade() -> None:
    op.drop_index(op.f("ix_related_email"), table_name="related")
    with op.batch_alter_table("related") as batch:
        batch.drop_column("email")
