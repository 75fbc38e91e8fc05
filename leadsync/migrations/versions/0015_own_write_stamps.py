"""The CRM's stamp of leadsync's last write to a record: `expected.modified_at`.

HubSpot's search serves a contact some seconds behind its writes. A pull that meets a version
older than leadsync's own last write to it (between the two writes of a stage moved back, the
clear and then the set) must not take it for news: the store keeps the stamp the CRM gave the
record in its answer to that write. Rows written before this revision have none (NULL): for
them a pull is judged as before.

Revision ID: 0015_own_write_stamps
Revises: 0014_packed_snapshots
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0015_own_write_stamps"
down_revision: str | None = "0014_packed_snapshots"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("expected", sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("expected") as batch:
        batch.drop_column("modified_at")
