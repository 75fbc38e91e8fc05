"""The initial schema: runs, cursors, snapshots, quarantine, leads, links, transitions,
writes, expected values and the review queue.

Revision ID: 0001_initial
Revises:
Create Date: 2026-05-01

Column types are spelled as the database sees them: leadsync's UtcDateTime is a timezone-aware
DateTime and its TaggedJSON is JSON, converted in Python only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

LOG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _json(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.JSON(), nullable=nullable)


def _index(table: str, *columns: str) -> None:
    op.create_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table, list(columns))


def upgrade() -> None:
    op.create_table(
        "runs",
        _text("run_id"),
        _text("kind"),
        _text("status"),
        _at("started_at"),
        _at("finished_at", nullable=True),
        _json("summary"),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_runs")),
    )
    _index("runs", "started_at")
    op.create_table(
        "cursors",
        _text("crm"),
        _text("stream"),
        _at("modified_at", nullable=True),
        _text("record_id", nullable=True),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        _text("run_id"),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("crm", "stream", name=op.f("pk_cursors")),
    )
    op.create_table(
        "snapshots",
        _text("crm"),
        _text("record_id"),
        _at("modified_at"),
        _json("raw"),
        _json("canonical"),
        _json("changed_at"),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        _text("content_digest"),
        sa.Column("pending", sa.Boolean(), nullable=False),
        _text("run_id"),
        _at("saved_at"),
        sa.PrimaryKeyConstraint("crm", "record_id", name=op.f("pk_snapshots")),
    )
    _index("snapshots", "crm", "pending", "modified_at")
    op.create_table(
        "quarantine",
        _text("crm"),
        _text("record_id"),
        sa.Column("reason", sa.Text(), nullable=False),
        _json("raw"),
        _text("run_id"),
        _at("at"),
        _at("resolved_at", nullable=True),
        sa.PrimaryKeyConstraint("crm", "record_id", name=op.f("pk_quarantine")),
    )
    op.create_table(
        "leads",
        _text("lead_id"),
        _json("values"),
        _json("choices"),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("fit", sa.Integer(), nullable=True),
        sa.Column("engagement", sa.Integer(), nullable=True),
        _text("grade", nullable=True),
        _json("reasons"),
        _text("model_version", nullable=True),
        _text("stage", nullable=True),
        _text("email", nullable=True),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_leads")),
    )
    _index("leads", "email")
    op.create_table(
        "links",
        _text("crm"),
        _text("record_id"),
        _text("lead_id"),
        _text("kind"),
        _at("linked_at"),
        sa.PrimaryKeyConstraint("crm", "record_id", name=op.f("pk_links")),
    )
    _index("links", "lead_id")
    _index("links", "record_id")
    op.create_table(
        "transitions",
        sa.Column("id", LOG_ID, autoincrement=True, nullable=False),
        _text("lead_id"),
        _text("from_stage", nullable=True),
        _text("to_stage"),
        _at("at"),
        sa.Column("reason", sa.Text(), nullable=False),
        _text("kind"),
        _text("run_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transitions")),
    )
    _index("transitions", "lead_id")
    op.create_table(
        "writes",
        sa.Column("id", LOG_ID, autoincrement=True, nullable=False),
        _text("run_id"),
        _text("crm"),
        _text("record_id"),
        _text("field"),
        _json("old", nullable=True),
        _json("new", nullable=True),
        _text("status"),
        _text("category"),
        sa.Column("message", sa.Text(), nullable=False),
        _at("at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_writes")),
    )
    _index("writes", "run_id")
    _index("writes", "crm", "record_id")
    op.create_table(
        "expected",
        _text("crm"),
        _text("record_id"),
        _text("field"),
        _json("value", nullable=True),
        _text("run_id"),
        _at("written_at"),
        sa.PrimaryKeyConstraint("crm", "record_id", "field", name=op.f("pk_expected")),
    )
    op.create_table(
        "review",
        _text("crm"),
        _text("record_id"),
        _json("candidates"),
        sa.Column("reason", sa.Text(), nullable=False),
        _text("run_id"),
        _at("at"),
        _at("resolved_at", nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("crm", "record_id", name=op.f("pk_review")),
    )


def downgrade() -> None:
    for table in (
        "review",
        "expected",
        "writes",
        "transitions",
        "links",
        "leads",
        "quarantine",
        "snapshots",
        "cursors",
        "runs",
    ):
        op.drop_table(table)  # its indexes go with it
