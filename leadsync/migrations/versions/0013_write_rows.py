"""The audit log and the echo fingerprints: one row per record, not one per field.

`writes` keeps one row per record written per batch, its fields one JSON object
{field: [old, new]} in the order written; `expected` one row per record, its fields
{field: [value, written at in microseconds since the epoch]}. A first sync wrote ~23 rows
per lead before, and their processing cost about a sixth of its CPU.

Rows saved before this revision are carried over: a record's field rows that follow one
another in the log with one outcome (run, status, category, message and time) make one row,
in the order they were written; its expected values make one row, each field with the time
it was written. The downgrade splits them into field rows again (each expected value with
the run of its record's latest write: the row keeps no run per field, and nothing reads one).

Revision ID: 0013_write_rows
Revises: 0012_person_named
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

revision: str = "0013_write_rows"
down_revision: str | None = "0012_person_named"
branch_labels: str | None = None
depends_on: str | None = None

LOG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
CHUNK = 1_000  # rows carried over per statement; rows read at a time

# The tables' columns as this revision reads and writes them (the stored values, as they are:
# JSON parsed, never decoded).
_OLD_WRITES: tuple[str, ...] = (
    "run_id",
    "crm",
    "record_id",
    "field",
    "old",
    "new",
    "status",
    "category",
    "message",
    "at",
)
_NEW_WRITES = ("run_id", "crm", "record_id", "fields", "status", "category", "message", "at")


def _table(name: str, *columns: str) -> sa.TableClause:
    types: dict[str, Any] = {
        "id": sa.Integer(),
        "old": sa.JSON(),
        "new": sa.JSON(),
        "value": sa.JSON(),
        "fields": sa.JSON(),
        "at": sa.DateTime(timezone=True),
        "written_at": sa.DateTime(timezone=True),
    }
    return sa.table(
        name, *(sa.column(column, types.get(column, sa.String())) for column in columns)
    )


def _at(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _text(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.String(), nullable=False)


def _index(table: str, *columns: str) -> None:
    op.create_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table, list(columns))


def _set_aside(connection: Connection, table: str) -> str:
    """Rename `table` out of the way (with its primary key, whose name PostgreSQL keeps
    schema-wide), for its rows to be carried over into a new one of that name."""
    aside = f"{table}_before_0013"
    op.rename_table(table, aside)
    if connection.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {aside} RENAME CONSTRAINT pk_{table} TO pk_{aside}")
    return aside


def _create_writes(*field_columns: sa.Column[Any]) -> None:
    op.create_table(
        "writes",
        sa.Column("id", LOG_ID, autoincrement=True, nullable=False),
        _text("run_id"),
        _text("crm"),
        _text("record_id"),
        *field_columns,
        _text("status"),
        _text("category"),
        sa.Column("message", sa.Text(), nullable=False),
        _at("at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_writes")),
    )
    _index("writes", "run_id")
    _index("writes", "crm", "record_id")


def _create_expected(key: tuple[str, ...], *columns: sa.Column[Any]) -> None:
    op.create_table(
        "expected",
        _text("crm"),
        _text("record_id"),
        *columns,
        _text("run_id"),
        _at("written_at"),
        sa.PrimaryKeyConstraint("crm", "record_id", *key, name=op.f("pk_expected")),
    )


def _utc(moment: datetime) -> datetime:
    # SQLite keeps UTC wall time without an offset.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _stored(connection: Connection, moment: datetime) -> datetime:
    return moment.replace(tzinfo=None) if connection.dialect.name == "sqlite" else moment


def _rows(connection: Connection, query: sa.Select[Any]) -> Iterator[sa.RowMapping]:
    yield from connection.execute(query.execution_options(yield_per=CHUNK)).mappings()


def _insert(connection: Connection, table: sa.TableClause, rows: list[dict[str, Any]]) -> None:
    if rows:
        connection.execute(table.insert(), rows)
        rows.clear()


def _drop_old_writes_indexes() -> None:
    op.drop_index(op.f("ix_writes_run_id"), table_name="writes")
    op.drop_index(op.f("ix_writes_crm_record_id"), table_name="writes")


# ------------------------------------------------------------------------------------ upgrade


def upgrade() -> None:
    connection = op.get_bind()
    _drop_old_writes_indexes()
    old_writes = _table(_set_aside(connection, "writes"), "id", *_OLD_WRITES)
    old_expected = _table(
        _set_aside(connection, "expected"),
        "crm",
        "record_id",
        "field",
        "value",
        "run_id",
        "written_at",
    )
    _create_writes(sa.Column("fields", sa.JSON(), nullable=False))
    _create_expected((), sa.Column("fields", sa.JSON(), nullable=False))
    _carry_writes_over(connection, old_writes)
    _carry_expected_over(connection, old_expected)
    op.drop_table(old_writes.name)
    op.drop_table(old_expected.name)


def _carry_writes_over(connection: Connection, old: sa.TableClause) -> None:
    new = _table("writes", *_NEW_WRITES)
    shared = [name for name in _NEW_WRITES if name != "fields"]
    batch: list[dict[str, Any]] = []
    row: dict[str, Any] | None = None
    for field_row in _rows(connection, sa.select(old).order_by(old.c.id)):
        # One record_writes call logged its rows together, with one time: the rows of a
        # record that follow one another with one outcome were one record's write.
        outcome = {name: field_row[name] for name in shared}
        if (
            row is None
            or any(row[n] != v for n, v in outcome.items())
            or (field_row["field"] in row["fields"])
        ):
            if row is not None:
                batch.append(row)
                if len(batch) >= CHUNK:
                    _insert(connection, new, batch)
            row = {**outcome, "fields": {}}
        # The stored values are kept as they are: a pair of them is what the new rows hold.
        row["fields"][field_row["field"]] = [field_row["old"], field_row["new"]]
    if row is not None:
        batch.append(row)
    _insert(connection, new, batch)


def _carry_expected_over(connection: Connection, old: sa.TableClause) -> None:
    new = _table("expected", "crm", "record_id", "fields", "run_id", "written_at")
    batch: list[dict[str, Any]] = []
    row: dict[str, Any] | None = None
    query = sa.select(old).order_by(old.c.crm, old.c.record_id, old.c.written_at, old.c.field)
    for field_row in _rows(connection, query):
        crm, record_id = field_row["crm"], field_row["record_id"]
        if row is None or (row["crm"], row["record_id"]) != (crm, record_id):
            if row is not None:
                batch.append(row)
                if len(batch) >= CHUNK:
                    _insert(connection, new, batch)
            row = {"crm": crm, "record_id": record_id, "fields": {}}
        at = _utc(field_row["written_at"])
        row["fields"][field_row["field"]] = [field_row["value"], (at - EPOCH) // MICROSECOND]
        # In the order written: the latest field's run and time are the row's.
        row.update(run_id=field_row["run_id"], written_at=_stored(connection, at))
    if row is not None:
        batch.append(row)
    _insert(connection, new, batch)


# ---------------------------------------------------------------------------------- downgrade


def downgrade() -> None:
    connection = op.get_bind()
    _drop_old_writes_indexes()
    new_writes = _table(_set_aside(connection, "writes"), "id", *_NEW_WRITES)
    new_expected = _table(
        _set_aside(connection, "expected"), "crm", "record_id", "fields", "run_id", "written_at"
    )
    _create_writes(
        _text("field"),
        sa.Column("old", sa.JSON(), nullable=True),
        sa.Column("new", sa.JSON(), nullable=True),
    )
    _create_expected(("field",), _text("field"), sa.Column("value", sa.JSON(), nullable=True))
    _split_writes(connection, new_writes)
    _split_expected(connection, new_expected)
    op.drop_table(new_writes.name)
    op.drop_table(new_expected.name)


def _split_writes(connection: Connection, new: sa.TableClause) -> None:
    old = _table("writes", *_OLD_WRITES)
    batch: list[dict[str, Any]] = []
    for row in _rows(connection, sa.select(new).order_by(new.c.id)):
        shared = {name: row[name] for name in _NEW_WRITES if name != "fields"}
        for name, (before, after) in _fields(row["fields"]).items():
            batch.append({**shared, "field": name, "old": before, "new": after})
        if len(batch) >= CHUNK:
            _insert(connection, old, batch)
    _insert(connection, old, batch)


def _split_expected(connection: Connection, new: sa.TableClause) -> None:
    old = _table("expected", "crm", "record_id", "field", "value", "run_id", "written_at")
    batch: list[dict[str, Any]] = []
    for row in _rows(connection, sa.select(new).order_by(new.c.crm, new.c.record_id)):
        for name, (value, stamp) in _fields(row["fields"]).items():
            at = EPOCH + stamp * MICROSECOND
            batch.append(
                {
                    "crm": row["crm"],
                    "record_id": row["record_id"],
                    "field": name,
                    "value": value,
                    "run_id": row["run_id"],
                    "written_at": _stored(connection, at),
                }
            )
        if len(batch) >= CHUNK:
            _insert(connection, old, batch)
    _insert(connection, old, batch)


def _fields(stored: Any) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(stored) if isinstance(stored, str) else stored
    return fields
