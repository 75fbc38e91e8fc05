"""Snapshots packed with a dictionary per CRM: the table `dictionaries`.

A snapshot's blob (`sync.packed`) was a Zstandard frame of its record alone, ~780 bytes after
a first sync: a record repeats little within itself, though its field names and most of its
values' shapes are every record's. The store now trains a dictionary on a CRM's first 1,000
stored records and packs the rest with it (format 3: the dictionary's id, then the frame),
~250 bytes a record. The audit log's fields (`writes.fields`) are packed the same way, with
a dictionary per CRM trained on its first 1,000 rows. Stored blobs stay as they are (the
store reads every format); the downgrade packs each blob of format 3 of both tables again
without a dictionary (format 2), then drops the table.

Revision ID: 0017_packing_dictionaries
Revises: 0016_expected_row_stamps
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import zstandard
from alembic import op
from sqlalchemy.engine import Connection

revision: str = "0017_packing_dictionaries"
down_revision: str | None = "0016_expected_row_stamps"
branch_labels: str | None = None
depends_on: str | None = None

CHUNK = 1_000  # rows rewritten per statement
_LogId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ZSTD = 2
_DICTIONARY = 3
_ID_BYTES = 4


def upgrade() -> None:
    op.create_table(
        "dictionaries",
        sa.Column("id", _LogId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dictionaries")),
    )
    op.create_index(op.f("ix_dictionaries_kind"), "dictionaries", ["kind"])


def downgrade() -> None:
    connection = op.get_bind()
    dictionaries = sa.table(
        "dictionaries", sa.column("id", sa.Integer()), sa.column("data", sa.LargeBinary())
    )
    found = {
        dictionary_id: zstandard.ZstdCompressionDict(bytes(data))
        for dictionary_id, data in connection.execute(sa.select(dictionaries))
    }
    _repack(connection, found, "snapshots", ("crm", "record_id"), "packed")
    _repack(connection, found, "writes", ("id",), "fields")
    op.drop_index(op.f("ix_dictionaries_kind"), table_name="dictionaries")
    op.drop_table("dictionaries")


def _repack(
    connection: Connection,
    found: dict[int, zstandard.ZstdCompressionDict],
    name: str,
    keys: tuple[str, ...],
    column: str,
) -> None:
    """Every blob of `name`.`column` packed with a dictionary, packed again without one."""
    table = sa.table(
        name,
        *(sa.column(key, sa.Integer() if key == "id" else sa.String()) for key in keys),
        sa.column(column, sa.LargeBinary()),
    )
    update = table.update().values({column: sa.bindparam("repacked", type_=sa.LargeBinary())})
    for key in keys:
        update = update.where(table.c[key] == sa.bindparam(f"key_{key}"))
    query = (
        sa.select(*(table.c[key] for key in keys), table.c[column])
        .where(sa.func.substr(table.c[column], 1, 1) == bytes((_DICTIONARY,)))
        .order_by(*(table.c[key] for key in keys))
        .limit(CHUNK)
    )
    compressor = zstandard.ZstdCompressor(
        level=3, write_checksum=False, write_content_size=True, write_dict_id=False
    )
    while True:
        # Each page rewritten leaves the query: the next page is the next CHUNK still packed
        # with a dictionary.
        rows = list(connection.execute(query))
        if not rows:
            return
        batch: list[dict[str, Any]] = []
        for *key_values, blob in rows:
            blob = bytes(blob)
            dictionary_id = int.from_bytes(blob[1 : 1 + _ID_BYTES], "big")
            text = zstandard.ZstdDecompressor(dict_data=found[dictionary_id]).decompress(
                blob[1 + _ID_BYTES :]
            )
            repacked = bytes((_ZSTD,)) + compressor.compress(text)
            batch.append(
                {
                    **{f"key_{key}": value for key, value in zip(keys, key_values, strict=True)},
                    "repacked": repacked,
                }
            )
        connection.execute(update, batch)
