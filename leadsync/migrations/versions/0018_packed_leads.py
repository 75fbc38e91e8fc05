"""Leads' values, choices and reasons packed like snapshots, their names kept for search.

`leads.values`, `choices` and `reasons` were JSON the database only kept (~1.1 KB a lead
after a first sync, the largest part of the table): nothing queries inside them but the
search by name, which reads the name fields. They are now one blob, `packed` (`sync.packed`:
the compact JSON text [values, choices, reasons], compressed; the store packs with a
dictionary of kind "leads" once 1,000 leads are stored), and `names` keeps the lead's name
fields ({"first_name": ..., "last_name": ...}, those it has) as JSON for the search.

The upgrade carries each lead's three JSON texts into the blob as they were stored (format
2); the downgrade unpacks every format (a dictionary's from the table `dictionaries`, which
revision 0017 drops after) into the three columns again.

Revision ID: 0018_packed_leads
Revises: 0017_packing_dictionaries
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
import zstandard
from alembic import op
from sqlalchemy.engine import Connection

revision: str = "0018_packed_leads"
down_revision: str | None = "0017_packing_dictionaries"
branch_labels: str | None = None
depends_on: str | None = None

CHUNK = 1_000  # rows carried over per statement; rows read at a time
NAME_FIELDS = ("first_name", "last_name")  # `sync.search.NAME_FIELDS`
_ZSTD = 2
_DICTIONARY = 3
_ID_BYTES = 4
_SHARED = (
    "lead_id",
    "score",
    "fit",
    "engagement",
    "grade",
    "model_version",
    "stage",
    "email",
    "updated_at",
)
_TYPES: dict[str, Any] = {
    "score": sa.Integer(),
    "fit": sa.Integer(),
    "engagement": sa.Integer(),
    "updated_at": sa.DateTime(timezone=True),
    "values": sa.JSON(),
    "choices": sa.JSON(),
    "reasons": sa.JSON(),
    "names": sa.JSON(),
    "packed": sa.LargeBinary(),
}


def _table(name: str, *columns: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(c, _TYPES.get(c, sa.String())) for c in columns))


def _create_leads(*, packed: bool) -> None:
    """The table in either shape, its columns in the order each revision made them."""

    def json_column(name: str) -> sa.Column[Any]:
        return sa.Column(name, sa.JSON(), nullable=False)

    values = (
        [sa.Column("packed", sa.LargeBinary(), nullable=False), json_column("names")]
        if packed
        else [json_column("values"), json_column("choices")]
    )
    op.create_table(
        "leads",
        sa.Column("lead_id", sa.String(), nullable=False),
        *values,
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("fit", sa.Integer(), nullable=True),
        sa.Column("engagement", sa.Integer(), nullable=True),
        sa.Column("grade", sa.String(), nullable=True),
        *([] if packed else [json_column("reasons")]),
        sa.Column("model_version", sa.String(), nullable=True),
        sa.Column("stage", sa.String(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_leads")),
    )
    op.create_index(op.f("ix_leads_email"), "leads", ["email"])


def _set_aside(connection: Connection) -> str:
    op.drop_index(op.f("ix_leads_email"), table_name="leads")
    aside = "leads_before_0018"
    op.rename_table("leads", aside)
    if connection.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {aside} RENAME CONSTRAINT pk_leads TO pk_{aside}")
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


def _text(stored: Any) -> str:
    # SQLite gives a JSON column's text parsed or not depending on the driver's processing:
    # a text is kept as it is, a parsed value written compactly.
    return stored if isinstance(stored, str) else json.dumps(stored, separators=(",", ":"))


def _parsed(stored: Any) -> Any:
    return json.loads(stored) if isinstance(stored, str) else stored


# ------------------------------------------------------------------------------------ upgrade


def upgrade() -> None:
    connection = op.get_bind()
    old = _table(_set_aside(connection), *_SHARED, "values", "choices", "reasons")
    _create_leads(packed=True)
    new = _table("leads", *_SHARED, "packed", "names")
    compressor = zstandard.ZstdCompressor(
        level=3, write_checksum=False, write_content_size=True, write_dict_id=False
    )

    def pack_row(row: dict[str, Any]) -> dict[str, Any]:
        values, choices, reasons = row.pop("values"), row.pop("choices"), row.pop("reasons")
        text = f"[{_text(values)},{_text(choices)},{_text(reasons)}]"
        row["packed"] = bytes((_ZSTD,)) + compressor.compress(text.encode())
        row["names"] = _names(_parsed(values))
        return row

    _carry_over(connection, old, new, pack_row)
    op.drop_table(old.name)


def _names(values: Any) -> dict[str, Any]:
    if not isinstance(values, dict):
        return {}
    return {name: values[name] for name in NAME_FIELDS if name in values}


# ---------------------------------------------------------------------------------- downgrade


def downgrade() -> None:
    connection = op.get_bind()
    dictionaries = sa.table(
        "dictionaries", sa.column("id", sa.Integer()), sa.column("data", sa.LargeBinary())
    )
    found = {
        dictionary_id: zstandard.ZstdDecompressor(
            dict_data=zstandard.ZstdCompressionDict(bytes(data))
        )
        for dictionary_id, data in connection.execute(sa.select(dictionaries))
    }
    plain = zstandard.ZstdDecompressor()
    old = _table(_set_aside(connection), *_SHARED, "packed", "names")
    _create_leads(packed=False)
    new = _table("leads", *_SHARED, "values", "choices", "reasons")

    def unpacked(row: dict[str, Any]) -> dict[str, Any]:
        blob = bytes(row.pop("packed"))
        row.pop("names")
        if blob[:1] == bytes((_DICTIONARY,)):
            dictionary_id = int.from_bytes(blob[1 : 1 + _ID_BYTES], "big")
            text = found[dictionary_id].decompress(blob[1 + _ID_BYTES :])
        elif blob[:1] == bytes((_ZSTD,)):
            text = plain.decompress(blob[1:])
        else:
            raise ValueError(f"unknown packed format {blob[:1]!r}")
        row["values"], row["choices"], row["reasons"] = json.loads(text)
        return row

    _carry_over(connection, old, new, unpacked)
    op.drop_table(old.name)
