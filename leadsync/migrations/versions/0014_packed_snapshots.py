"""A smaller store: snapshots' values and the log's fields packed, leads' choices listed once
per kind.

Snapshots: the raw and canonical values as one compressed blob (`sync.packed`). The two JSON
columns were the largest part of the store (~2 KB a record after a first sync, a third of
the file), and nothing queries inside them. `packed` holds the compact JSON text
[raw, canonical], compressed, behind a byte that names the format: rows saved before this
revision are carried over DEFLATE-compressed (1), their values as they were stored; the store
writes Zstandard (2). The downgrade unpacks either into the two columns again.

The audit log: a `writes` row's fields ({field: [old, new]}) compressed the same way (~55 %
of the JSON). Rows are carried over in the order written, and back.

Leads: `choices` lists each distinct choice (CRM, rule, reason) once, and one character per
field picks among them (`store._stored_choices`). The form revision 0013 stored (an entry
per field) is rewritten into it, and back by the downgrade; the first form (a mapping of
field -> choice), which both read, stays as it is.

Revision ID: 0014_packed_snapshots
Revises: 0013_write_rows
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import sqlalchemy as sa
import zstandard
from alembic import op
from sqlalchemy.engine import Connection

revision: str = "0014_packed_snapshots"
down_revision: str | None = "0013_write_rows"
branch_labels: str | None = None
depends_on: str | None = None

CHUNK = 1_000  # rows carried over per statement; rows read at a time
_DEFLATE = 1  # the format bytes (`sync.packed`): this revision writes DEFLATE (stdlib only)
_ZSTD = 2
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
    _rewrite_choices(connection, _picked)
    _rebuild_writes(connection, sa.LargeBinary(), _packed_fields)


def _packed(row: dict[str, Any]) -> dict[str, Any]:
    # The stored JSON values as they are (tagged values stay tagged): only their text moves.
    row["packed"] = _pack([_json(row.pop("raw")), _json(row.pop("canonical"))])
    return row


def _pack(value: Any) -> bytes:
    text = json.dumps(value, separators=(",", ":")).encode()
    compressor = zlib.compressobj(6, zlib.DEFLATED, _RAW_DEFLATE)
    return bytes((_DEFLATE,)) + compressor.compress(text) + compressor.flush()


def _unpack(blob: Any) -> Any:
    # Either format the store reads: this revision's DEFLATE, or the Zstandard it writes.
    blob = bytes(blob)
    if blob[:1] == bytes((_DEFLATE,)):
        return json.loads(zlib.decompress(blob[1:], _RAW_DEFLATE))
    if blob[:1] == bytes((_ZSTD,)):
        return json.loads(zstandard.ZstdDecompressor().decompress(blob[1:]))
    raise ValueError(f"unknown packed format {blob[:1]!r}")


# ---------------------------------------------------------------------------------- downgrade


def downgrade() -> None:
    connection = op.get_bind()
    _rewrite_choices(connection, _listed)
    _rebuild_writes(connection, sa.JSON(), _unpacked_fields)
    old = _table(_set_aside(connection), *_BEFORE, "packed", *_AFTER)
    _create_snapshots(
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("canonical", sa.JSON(), nullable=False),
    )
    new = _table("snapshots", *_BEFORE, "raw", "canonical", *_AFTER)
    _carry_over(connection, old, new, _unpacked)
    op.drop_table(old.name)


def _unpacked(row: dict[str, Any]) -> dict[str, Any]:
    row["raw"], row["canonical"] = _unpack(row.pop("packed"))
    return row


# ------------------------------------------------------------------------------------- writes

LOG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WRITES = ("run_id", "crm", "record_id", "fields", "status", "category", "message", "at")
_WRITES_INDEXES = (("run_id",), ("crm", "record_id"))


def _rebuild_writes(connection: Connection, fields_type: Any, convert: Any) -> None:
    """The log again with `fields` of `fields_type`, its rows carried over in the order
    written (new ids: a table made anew numbers its rows from 1, as revision 0013 did)."""
    for columns in _WRITES_INDEXES:
        op.drop_index(op.f(f"ix_writes_{'_'.join(columns)}"), table_name="writes")
    aside = "writes_before_0014"
    op.rename_table("writes", aside)
    if connection.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {aside} RENAME CONSTRAINT pk_writes TO pk_{aside}")
    op.create_table(
        "writes",
        sa.Column("id", LOG_ID, autoincrement=True, nullable=False),
        _text("run_id"),
        _text("crm"),
        _text("record_id"),
        sa.Column("fields", fields_type, nullable=False),
        _text("status"),
        _text("category"),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_writes")),
    )
    for columns in _WRITES_INDEXES:
        op.create_index(op.f(f"ix_writes_{'_'.join(columns)}"), "writes", list(columns))
    # Read as stored (JSON, or bytes), written in the new column's type.
    old = _writes_table(aside, sa.LargeBinary() if isinstance(fields_type, sa.JSON) else sa.JSON())
    new = _writes_table("writes", fields_type)
    batch: list[dict[str, Any]] = []
    query = sa.select(*(old.c[name] for name in _WRITES)).order_by(old.c.id)
    for row in connection.execute(query.execution_options(yield_per=CHUNK)).mappings():
        batch.append({**row, "fields": convert(row["fields"])})
        if len(batch) >= CHUNK:
            connection.execute(new.insert(), batch)
            batch.clear()
    if batch:
        connection.execute(new.insert(), batch)
    op.drop_table(aside)


def _writes_table(name: str, fields_type: Any) -> sa.TableClause:
    return sa.table(
        name,
        sa.column("id", sa.Integer()),
        *(sa.column(column, sa.String()) for column in _WRITES[:3]),
        sa.column("fields", fields_type),
        *(sa.column(column, sa.String()) for column in _WRITES[4:7]),
        sa.column("at", sa.DateTime(timezone=True)),
    )


def _packed_fields(stored: Any) -> bytes:
    return _pack(_json(stored))


def _unpacked_fields(stored: Any) -> Any:
    return _unpack(stored)


# ------------------------------------------------------------------------------ leads.choices

_OBJECT = "$object"  # `tables.encode_value`'s tag for a mapping that looks like a tag
_PICKS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LEADS = sa.table(
    "leads",
    sa.column("lead_id", sa.String()),
    sa.column("values", sa.JSON()),
    sa.column("choices", sa.JSON()),
)


def _rewrite_choices(connection: Connection, rewrite: Any) -> None:
    """Each lead's choices through `rewrite(choices, values)` (stored JSON, parsed, tags kept),
    where it gives a new form."""
    leads = _LEADS.c
    update = (
        _LEADS.update()
        .where(leads.lead_id == sa.bindparam("key"))
        .values(choices=sa.bindparam("rewritten", type_=sa.JSON()))
    )
    batch: list[dict[str, Any]] = []
    query = sa.select(leads.lead_id, leads["values"], leads.choices).order_by(leads.lead_id)
    for lead_id, values, choices in connection.execute(query.execution_options(yield_per=CHUNK)):
        rewritten = rewrite(_json(choices), _json(values))
        if rewritten is not None:
            batch.append({"key": lead_id, "rewritten": rewritten})
        if len(batch) >= CHUNK:
            connection.execute(update, batch)
            batch.clear()
    if batch:
        connection.execute(update, batch)


def _picked(choices: Any, values: dict[str, Any]) -> Any:
    """[crms, rules, {field: [crm, rule, reason, value?]}] as
    [crms, rules, [[crm, rule, reason], ...], picks, {field: value}, fields?]; None for any
    other form."""
    if not (isinstance(choices, list) and len(choices) == 3):
        return None
    crms, rules, fields = choices
    kinds: dict[str, str] = {}
    listed: list[Any] = []
    picks, odd = [], {}
    for name, entry in fields.items():
        kind = json.dumps(entry[:3])
        if kind not in kinds:
            if len(kinds) == len(_PICKS):
                return None  # more kinds than characters: kept an entry a field
            kinds[kind] = _PICKS[len(kinds)]
            listed.append(entry[:3])
        picks.append(kinds[kind])
        if len(entry) > 3:
            odd[name] = entry[3]
    if len(odd) == 1 and next(iter(odd)).startswith("$"):
        odd = {_OBJECT: odd}  # a lone key that looks like a tag, as `encode_value` keeps it
    picked = [crms, rules, listed, "".join(picks), odd]
    if list(fields) != list(values):
        picked.append(list(fields))
    return picked


def _listed(choices: Any, values: dict[str, Any]) -> Any:
    """The inverse of `_picked`."""
    if not (isinstance(choices, list) and len(choices) > 3):
        return None
    crms, rules, listed, picks, odd, *names = choices
    if list(odd) == [_OBJECT]:
        odd = odd[_OBJECT]
    fields = {}
    for name, pick in zip(names[0] if names else list(values), picks, strict=True):
        entry = list(listed[_PICKS.index(pick)])
        if name in odd:
            entry.append(odd[name])
        fields[name] = entry
    return [crms, rules, fields]
