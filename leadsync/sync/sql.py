"""SQL building blocks shared by the store's tables: upserts both backends spell alike, and
id lists cut to a size every backend takes.

    insert_for(connection, table)   INSERT that takes ON CONFLICT, in the connection's dialect
    upsert(connection, table, rows) insert, or replace the other columns of rows already there
    excluded(insert, table, names)  the `excluded.<name>` values of an upsert, by column
    chunks(ids)                     ids without repeats, IN_CHUNK at a time
    last_by_key(rows, key)          one row per key: one statement may not upsert a row twice
    driver_many(connection, statement, rows)
                                    one statement per row, through the database driver itself
    bind_value(connection, column, value)
                                    a value as the column's type hands it to the driver
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = [
    "DRIVER_CHUNK",
    "IN_CHUNK",
    "Insert",
    "aggregate_time",
    "bind_value",
    "chunks",
    "driver_many",
    "excluded",
    "insert_for",
    "last_by_key",
    "upsert",
]

# Ids per IN (...) list: far below SQLite's and PostgreSQL's bound-parameter limits.
IN_CHUNK = 500

# Rows per executemany through the driver: one call's parameters stay small in memory.
DRIVER_CHUNK = 1_000

Insert = sqlite.Insert | postgresql.Insert
K = TypeVar("K")


def insert_for(connection: Connection, table: sa.Table) -> Insert:
    """INSERT with ON CONFLICT: both supported backends spell it alike, each in its dialect."""
    name = connection.dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"the store supports SQLite and PostgreSQL, not {name}")


def excluded(insert: Insert, table: sa.Table, names: Sequence[str]) -> dict[str, Any]:
    return {name: insert.excluded[name] for name in names if name in table.c}


def upsert(connection: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows`, replacing the other columns of rows whose primary key is already there."""
    if not rows:
        return
    keys = [column.name for column in table.primary_key]
    insert = insert_for(connection, table)
    others = [column.name for column in table.c if column.name not in keys]
    statement = insert.on_conflict_do_update(
        index_elements=keys, set_=excluded(insert, table, others)
    )
    connection.execute(statement, list(rows))


def driver_many(
    connection: Connection, statement: sa.ClauseElement, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Execute `statement` once per row, DRIVER_CHUNK rows per executemany of the database
    driver: no SQLAlchemy processing per row. Every row has the same keys, the statement's
    parameters, and values as the driver takes them (JSON as text, a timestamp as
    `bind_value` gives it)."""
    if not rows:
        return
    compiled = statement.compile(dialect=connection.dialect, column_keys=list(rows[0]))
    assert isinstance(compiled, SQLCompiler)
    sql = str(compiled)
    names = compiled.positiontup
    # In the statement's order (qmark) or by name (the pyformat of PostgreSQL's driver).
    values: Callable[[Mapping[str, Any]], Any] = dict
    if compiled.positional and names is not None:
        pick = operator.itemgetter(*names)
        values = (lambda row: (pick(row),)) if len(names) == 1 else pick
    for start in range(0, len(rows), DRIVER_CHUNK):
        connection.exec_driver_sql(sql, [values(row) for row in rows[start : start + DRIVER_CHUNK]])


def bind_value(connection: Connection, column: sa.Column[Any], value: Any) -> Any:
    """`value` as `column`'s type hands it to this connection's driver (for `driver_many`)."""
    process = column.type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    return value if process is None else process(value)


def aggregate_time(value: Any) -> datetime:
    """A min() or max() of a timestamp column as an aware UTC datetime: an aggregate loses the
    column's type, and SQLite hands back the stored text (UTC wall time)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def chunks(items: Sequence[K]) -> Iterator[list[K]]:
    """`items` without repeats, in lists short enough for one IN (...)."""
    unique = list(dict.fromkeys(items))
    for start in range(0, len(unique), IN_CHUNK):
        yield unique[start : start + IN_CHUNK]


def last_by_key(rows: Iterable[dict[str, Any]], key: Sequence[str]) -> list[dict[str, Any]]:
    """One row per key, the last given winning."""
    by_key: dict[Hashable, dict[str, Any]] = {}
    for row in rows:
        by_key[tuple(row[name] for name in key)] = row
    return list(by_key.values())
