"""Snapshots: the person record each names, indexed.

A Contact no converted lead names is matched to the person whose record names it (a HubSpot
contact's salesforcecontactid). When the store meets such a Contact after that person was
merged, the sync finds the person by this column. Rows saved before this revision get the id
their stored values name.

Revision ID: 0012_person_named
Revises: 0011_handoff_responses
Create Date: 2026-12-03
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from leadsync.sync.identity import eighteen_character_id

revision: str = "0012_person_named"
down_revision: str | None = "0011_handoff_responses"
branch_labels: str | None = None
depends_on: str | None = None

# The fields that name a person record (a Salesforce Contact), as of this revision (a
# migration runs against the data of its day, not the code of later ones).
_NAMING = {"hubspot": "salesforcecontactid", "salesforce": "ConvertedContactId"}


def upgrade() -> None:
    op.add_column("snapshots", sa.Column("person_named", sa.String(), nullable=True))
    op.create_index(op.f("ix_snapshots_person_named"), "snapshots", ["person_named"])
    snapshots = sa.table(
        "snapshots",
        sa.column("crm", sa.String()),
        sa.column("record_id", sa.String()),
        sa.column("raw", sa.JSON()),
        sa.column("person_named", sa.String()),
    )
    connection = op.get_bind()
    for crm, field in _NAMING.items():
        rows = connection.execute(
            sa.select(snapshots.c.record_id, snapshots.c.raw).where(snapshots.c.crm == crm)
        ).all()
        for record_id, raw in rows:
            named = _named(raw, field)
            if named is not None:
                connection.execute(
                    snapshots.update()
                    .where(snapshots.c.crm == crm, snapshots.c.record_id == record_id)
                    .values(person_named=named)
                )


def _named(raw: Any, field: str) -> str | None:
    values = json.loads(raw) if isinstance(raw, str) else raw
    value = values.get(field) if isinstance(values, dict) else None
    if not isinstance(value, str) or not value.strip():
        return None
    return eighteen_character_id(value.strip())


def downgrade() -> None:
    op.drop_index(op.f("ix_snapshots_person_named"), table_name="snapshots")
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("person_named")
