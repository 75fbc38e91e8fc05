"""The web console: its audit log (who changed what from it) and its server-side sessions.

Revision ID: 0006_console_audit
Revises: 0005_write_refusals
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006_console_audit"
down_revision: str | None = "0005_write_refusals"
branch_labels: str | None = None
depends_on: str | None = None

_LogId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _text(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.String(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "console_audit",
        sa.Column("id", _LogId, primary_key=True, autoincrement=True),
        _at("at"),
        _text("actor"),
        _text("role"),
        _text("action"),
        _text("target"),
        sa.Column("details", sa.JSON(), nullable=False),
        _text("replica"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_audit")),
    )
    op.create_index(op.f("ix_console_audit_at"), "console_audit", ["at"])
    op.create_index(
        op.f("ix_console_audit_actor_action_at"), "console_audit", ["actor", "action", "at"]
    )
    op.create_table(
        "console_sessions",
        _text("token_digest"),
        _text("user"),
        _text("csrf_token"),
        _at("created_at"),
        _at("expires_at"),
        sa.PrimaryKeyConstraint("token_digest", name=op.f("pk_console_sessions")),
    )
    op.create_index(op.f("ix_console_sessions_expires_at"), "console_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_console_sessions_expires_at"), "console_sessions")
    op.drop_table("console_sessions")
    op.drop_index(op.f("ix_console_audit_actor_action_at"), "console_audit")
    op.drop_index(op.f("ix_console_audit_at"), "console_audit")
    op.drop_table("console_audit")
