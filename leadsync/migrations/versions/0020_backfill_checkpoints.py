"""Where each CRM's pull of a backfill stands once the records its counts hold are saved.

A backfill commits each page with its checkpoint (its cursor stream), then its chunk's counts
(`backfills.progress`): killed between the two, it resumed from the page's checkpoint and
never counted the page's records. The checkpoint the counts reach is now kept with them,
`backfills.checkpoints` ({crm: checkpoint}), in the same statement; a resumed pull goes on
from there, pulling and saving, unchanged, at most a chunk again. (In the progress JSON it
would break the release before, which reads each CRM's figures as arguments.) Rows of
earlier revisions have none: their backfills resume from the cursor stream, as before.

Revision ID: 0020_backfill_checkpoints
Revises: 0019_packed_expected
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0020_backfill_checkpoints"
down_revision: str | None = "0019_packed_expected"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("backfills", sa.Column("checkpoints", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backfills") as batch:
        batch.drop_column("checkpoints")
