"""Snapshots: the raw and canonical values as one compressed blob (`sync.packed`).

The two JSON columns were the largest part of the store (~2 KB a record after a first sync,
two fifths of the file), and nothing queries inside them. `packed` holds the compact JSON
text [raw, canonical], DEFLATE-compressed, behind a byte that names the format (1).

Rows saved before this revision are carried over, their values as they were stored; the
downgrade unpacks them into the two columns again.

Revision ID: 0014_packed_snapshots
Revises: 0013_write_rows
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

revision: str = "0014_packed_snapshots"
down_revision: str | None = "0013_write_rows"
branch_labels: str | None = None
depends_on: str | None = None

CHUNK = 1_000  # rows carried over per statement; rows read at a time
_DEFLATE = 1  # the format byte (`sync.packed`, as of this revision)
_RAW_DEFLATE = -15

# The columns both shapes share, in the order the table has them.
_BEFORE = ("crm", "record_id", "modified_at")
_AFTER = (
    "changed_at",
    "deleted",
    "content_digest",
    "pending",
    "run_id",
    "saved_at",
    "held_for",
    "person_named",
)
_INDEXES = (("held_for",), ("person_named",), ("crm", "pending", "modified_at"))


def _table(name: str, *columns: str) -> sa.TableClause:
    types: dict[str, Any] = {
        "modified_at": sa.DateTime(timezone=True),
        "saved_at": sa.DateTime(timezone=True),
        "raw": sa.JSON(),
        "canonical": sa.JSON(),
        "changed_at": sa.JSON(),
        "packed": sa.LargeBinary(),
        "deleted": sa.Boolean(),
        "pending": sa.Boolean(),
    }
    return sa.table(
        name, *(sa.column(column, types.get(column, sa.String())) for column in columns)
    )


def _text(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _create_snapshots(*values: sa.Column[Any]) -> None:
    op.create_table(
        "snapshots",
        _text("crm"),
        _text("record_id"),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        *values,
        sa.Column("changed_at", sa.JSON(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        _text("content_digest"),
        sa.Column("pending", sa.Boolean(), nullable=False),
        _text("run_id"),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        _text("held_for", nullable=True),
        _text("person_named", nullable=True),
        sa.PrimaryKeyConstraint("crm", "record_id", name=op.f("pk_snapshots")),
    )
    for columns in _INDEXES:
        op.create_index(op.f(f"ix_snapshots_{'_'.join(columns)}"), "snapshots", list(columns))


def _set_aside(connection: Connection) -> str:
    """Rename the snapshots out of the way (their indexes dropped, their primary key renamed:
    PostgreSQL keeps both names schema-wide), for their rows to be carried over."""
    for columns in _INDEXES:
        op.drop_index(op.f(f"ix_snapshots_{'_'.join(columns)}"), table_name="snapshots")
    aside = "snapshots_before_0014"
    op.rename_table("snapshots", aside)
    if connection.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {aside} RENAME CONSTRAINT pk_snapshots TO pk_{aside}")
    return aside


def _carry_over(
    connection: Connection, old: sa.TableClause, new: sa.TableClause, convert: Any
) -> None:
    batch: list[dict[str, Any]] = []
    query = sa.select(old).execution_options(yield_per=CHUNK)
    for row in connection.execute(query).mappings():
        batch.append(convert(dict(row)))
        if len(batch) >= CHUNK:
            connection.execute(new.insert(), batch)
            batch.clear()
    if batch:
        connection.execute(new.insert(), batch)


def _json(stored: Any) -> Any:
    return json.loads(stored) if isinstance(stored, str) else stored


# ------------------------------------------------------------------------------------ upgrade


def upgrade() -> None:
    connection = op.get_bind()
    old = _table(_set_aside(connection), *_BEFORE, "raw", "canonical", *_AFTER)
    _create_snapshots(sa.Column("packed", sa.LargeBinary(), nullable=False))
    new = _table("snapshots", *_BEFORE, "packed", *_AFTER)
    _carry_over(connection, old, new, _packed)
    op.drop_table(old.name)


def _packed(row: dict[str, Any]) -> dict[str, Any]:
    # The stored JSON values as they are (tagged values stay tagged): only their text moves.
    values = [_json(row.pop("raw")), _json(row.pop("canonical"))]
    text = json.dumps(values, separators=(",", ":")).encode()
    compressor = zlib.compressobj(6, zlib.DEFLATED, _RAW_DEFLATE)
    row["packed"] = bytes((_DEFLATE,)) + compressor.compress(text) + compressor.flush()
    return row


# ---------------------------------------------------------------------------------- downgrade


def downgrade() -> None:
    connection = op.get_bind()
    old = _table(_set_aside(connection), *_BEFORE, "packed", *_AFTER)
    _create_snapshots(
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("canonical", sa.JSON(), nullable=False),
    )
    new = _table("snapshots", *_BEFORE, "raw", "canonical", *_AFTER)
    _carry_over(connection, old, new, _unpacked)
    op.drop_table(old.name)


def _unpacked(row: dict[str, Any]) -> dict[str, Any]:
    blob = bytes(row.pop("packed"))
    if blob[:1] != bytes((_DEFLATE,)):
        raise ValueError(f"unknown snapshot format {blob[:1]!r}")
    row["raw"], row["canonical"] = json.loads(zlib.decompress(blob[1:], _RAW_DEFLATE))
    return row
