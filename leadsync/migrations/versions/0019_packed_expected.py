"""The echo fingerprints packed like snapshots: `expected.fields` becomes `expected.packed`.

`expected.fields` was JSON the database merged (SQLite's json_each, PostgreSQL's json_each)
and otherwise only kept: after a first sync the largest table of the store (~400 bytes a
record written, a fifth of the file). It is now `packed` (`sync.packed`: the same compact
JSON text {field: [value] or [value, microseconds]}, compressed; the store packs with a
dictionary of kind "expected:<crm>" once 1,000 rows of that CRM are stored, ~60-120 bytes a
row), and the store merges a record's fields in Python (`sync.write_log.merge_expected`).

The upgrade carries each row's JSON text into the blob as it was stored, packed with a
dictionary it trains for each CRM that has 1,000 rows (format 3, as the store would have
packed them), else without one (format 2). The downgrade unpacks every format (a
dictionary's from the table `dictionaries`) into the JSON column again, and drops the
dictionaries of kind "expected:..."

Revision ID: 0019_packed_expected
Revises: 0018_packed_leads
Create Date: 2026-12-05
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import zstandard
from alembic import op
from sqlalchemy.engine import Connection

revision: str = "0019_packed_expected"
down_revision: str | None = "0018_packed_leads"
branch_labels: str | None = None
depends_on: str | None = None

CHUNK = 1_000  # rows carried over per statement; rows read at a time
TRAIN_SAMPLES = 1_000  # `sync.store.TRAIN_SAMPLES`
DICTIONARY_SIZE = 32_768  # `sync.packed.DICTIONARY_SIZE`
KIND = "expected:"  # `sync.store.EXPECTED_DICTIONARY`
_ZSTD = 2
_DICTIONARY = 3
_ID_BYTES = 4
_LEVEL = 3
_SHARED = ("crm", "record_id", "run_id", "written_at", "modified_at")
_TYPES: dict[str, Any] = {
    "written_at": sa.DateTime(timezone=True),
    "modified_at": sa.DateTime(timezone=True),
    "fields": sa.JSON(),
    "packed": sa.LargeBinary(),
}


def _table(name: str, *columns: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(c, _TYPES.get(c, sa.String())) for c in columns))


def _create_expected(*, packed: bool) -> None:
    """The table in either shape, its columns in the order each revision made them."""
    values = (
        sa.Column("packed", sa.LargeBinary(), nullable=False)
        if packed
        else sa.Column("fields", sa.JSON(), nullable=False)
    )
    op.create_table(
        "expected",
        sa.Column("crm", sa.String(), nullable=False),
        sa.Column("record_id", sa.String(), nullable=False),
        values,
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("crm", "record_id", name=op.f("pk_expected")),
    )


def _set_aside(connection: Connection) -> str:
    aside = "expected_before_0019"
    op.rename_table("expected", aside)
    if connection.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {aside} RENAME CONSTRAINT pk_expected TO pk_{aside}")
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


# ------------------------------------------------------------------------------------ upgrade


def upgrade() -> None:
    connection = op.get_bind()
    old = _table(_set_aside(connection), *_SHARED, "fields")
    _create_expected(packed=True)
    new = _table("expected", *_SHARED, "packed")
    plain = _compressor()
    packers = _trained_packers(connection, old)

    def pack_row(row: dict[str, Any]) -> dict[str, Any]:
        text = _text(row.pop("fields")).encode()
        packer = packers.get(row["crm"])
        row["packed"] = packer(text) if packer else bytes((_ZSTD,)) + plain.compress(text)
        return row

    _carry_over(connection, old, new, pack_row)
    op.drop_table(old.name)


def _compressor(dictionary: zstandard.ZstdCompressionDict | None = None) -> Any:
    return zstandard.ZstdCompressor(
        level=_LEVEL,
        dict_data=dictionary,
        write_checksum=False,
        write_content_size=True,
        write_dict_id=False,
    )


def _trained_packers(connection: Connection, old: sa.TableClause) -> dict[str, Any]:
    """CRM -> a function packing a row's text with a dictionary trained on TRAIN_SAMPLES of
    that CRM's rows and stored (format 3), for each CRM with as many rows."""
    dictionaries = sa.table(
        "dictionaries",
        sa.column("id", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("data", sa.LargeBinary()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    if connection.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # SQLite keeps UTC wall time
    crms = connection.execute(sa.select(old.c.crm).distinct()).scalars().all()
    packers: dict[str, Any] = {}
    for crm in sorted(crms):
        query = sa.select(old.c.fields).where(old.c.crm == crm).limit(TRAIN_SAMPLES)
        samples: list[bytes | bytearray | memoryview[int]] = [
            _text(fields).encode() for fields in connection.execute(query).scalars()
        ]
        if len(samples) < TRAIN_SAMPLES:
            continue
        try:
            data = bytes(zstandard.train_dictionary(DICTIONARY_SIZE, samples).as_bytes())
        except zstandard.ZstdError:
            continue  # too little in them to train on: packed without one
        dictionary_id = connection.execute(
            dictionaries.insert()
            .values(kind=f"{KIND}{crm}", data=data, created_at=now)
            .returning(dictionaries.c.id)
        ).scalar_one()
        mark = bytes((_DICTIONARY,)) + int(dictionary_id).to_bytes(_ID_BYTES, "big")
        compressor = _compressor(zstandard.ZstdCompressionDict(data))
        packers[crm] = functools.partial(_pack_with, mark, compressor)
    return packers


def _pack_with(mark: bytes, compressor: Any, text: bytes) -> bytes:
    return bytes(mark + compressor.compress(text))


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
    old = _table(_set_aside(connection), *_SHARED, "packed")
    _create_expected(packed=False)
    new = _table("expected", *_SHARED, "fields")

    def unpacked(row: dict[str, Any]) -> dict[str, Any]:
        blob = bytes(row.pop("packed"))
        if blob[:1] == bytes((_DICTIONARY,)):
            dictionary_id = int.from_bytes(blob[1 : 1 + _ID_BYTES], "big")
            text = found[dictionary_id].decompress(blob[1 + _ID_BYTES :])
        elif blob[:1] == bytes((_ZSTD,)):
            text = plain.decompress(blob[1:])
        else:
            raise ValueError(f"unknown packed format {blob[:1]!r}")
        row["fields"] = json.loads(text)
        return row

    _carry_over(connection, old, new, unpacked)
    op.drop_table(old.name)
    connection.execute(
        sa.delete(sa.table("dictionaries", sa.column("kind", sa.String()))).where(
            sa.column("kind").like(f"{KIND}%")
        )
    )
