"""SQL building blocks shared by the store's tables: upserts both backends spell alike, and
id lists cut to a size every backend takes.

    insert_for(connection, table)   INSERT that takes ON CONFLICT, in the connection's dialect
    upsert(connection, table, rows) insert, or replace the other columns of rows already there
                                    (WRITE_CHUNK rows an execute)
    upsert_statement(connection, table)  that upsert's statement
    batches(items, size)            lists of `size`, taken from an iterable as they come
    excluded(insert, table, names)  the `excluded.<name>` values of an upsert, by column
    chunks(ids)                     ids without repeats, IN_CHUNK at a time
    last_by_key(rows, key)          one row per key: one statement may not upsert a row twice
    execute_encoded(connection, statement, columns, rows)
                                    a statement once per row, its parameters already in the
                                    driver's form: no per-row processing by SQLAlchemy
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler

from leadsync.sync import tables

__all__ = [
    "IN_CHUNK",
    "WRITE_CHUNK",
    "Insert",
    "aggregate_time",
    "batches",
    "chunks",
    "excluded",
    "execute_encoded",
    "insert_for",
    "last_by_key",
    "time_param",
    "upsert",
    "upsert_statement",
]

# Ids per IN (...) list: far below SQLite's and PostgreSQL's bound-parameter limits.
IN_CHUNK = 500
# Rows per executemany of an upsert. The driver's parameters, and SQLAlchemy's processed copy
# of them (every JSON column encoded), exist for one chunk at a time: a slice's 20,000 leads
# in one execute held ~150 MB at once (docs/BENCHMARKS.md, "Peak memory").
WRITE_CHUNK = 1_000

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


def upsert(connection: Connection, table: sa.Table, rows: Iterable[Mapping[str, Any]]) -> None:
    """Insert `rows`, replacing the other columns of rows whose primary key is already there;
    WRITE_CHUNK rows an execute, `rows` taken as they come (a generator is never held whole).
    No primary key may come twice (see `last_by_key`)."""
    statement = upsert_statement(connection, table)
    for chunk in batches(rows, WRITE_CHUNK):
        connection.execute(statement, chunk)


def upsert_statement(connection: Connection, table: sa.Table) -> Insert:
    """`upsert`'s statement: for `execute_encoded`, with every column's value in each row."""
    keys = [column.name for column in table.primary_key]
    insert = insert_for(connection, table)
    others = [column.name for column in table.c if column.name not in keys]
    return insert.on_conflict_do_update(index_elements=keys, set_=excluded(insert, table, others))


def batches(items: Iterable[K], size: int) -> Iterator[list[K]]:
    """`items` in lists of `size` (the last may be shorter), taken from `items` as they come."""
    batch: list[K] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


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


def execute_encoded(
    connection: Connection,
    statement: sa.ClauseElement,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """Execute `statement` once for each of `rows`, tuples of values for `columns` (its bind
    parameters, in that order) already in the form the driver takes: JSON as text
    (`tables.json_text`), timestamps through `time_param`. SQLAlchemy processes every
    parameter of every row of an ordinary executemany, and a first sync saves millions of
    them; here they go to the driver as they are, WRITE_CHUNK rows at a time, taken from
    `rows` as they come (a generator is never held whole)."""
    sql, order = _compiled(connection.dialect, statement, tuple(columns))
    for chunk in batches(rows, WRITE_CHUNK):
        if order is None:  # named parameters (PostgreSQL's psycopg)
            parameters: list[Any] = [dict(zip(columns, row, strict=True)) for row in chunk]
        elif order == tuple(range(len(columns))):
            parameters = list(chunk)
        else:
            parameters = list(map(_picker(order), chunk))
        connection.exec_driver_sql(sql, parameters)


def _compiled(
    dialect: sa.Dialect, statement: sa.ClauseElement, columns: tuple[str, ...]
) -> tuple[str, tuple[int, ...] | None]:
    """The statement's SQL in `dialect`, and for positional parameters (SQLite's qmark) where
    each placeholder takes its value from among `columns`."""
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    assert isinstance(compiled, SQLCompiler)
    if not compiled.positional:
        return compiled.string, None
    names = compiled.positiontup or []
    unknown = sorted(set(names) - set(columns))
    if unknown:
        raise ValueError(f"no value given for the parameters {', '.join(unknown)}")
    return compiled.string, tuple(columns.index(name) for name in names)


@functools.lru_cache(maxsize=64)
def _picker(order: tuple[int, ...]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    if len(order) == 1:
        (only,) = order
        return lambda row: (row[only],)
    return operator.itemgetter(*order)


def time_param(dialect: sa.Dialect) -> Callable[[datetime | None], Any]:
    """What a timestamp column (`tables.UtcDateTime`) binds in `dialect`, for
    `execute_encoded`: the very value SQLAlchemy would pass (SQLite's UTC wall-time text)."""
    column_type = tables.UtcDateTime().dialect_impl(dialect)
    process = column_type.bind_processor(dialect)
    if process is None:  # pragma: no cover - UtcDateTime always converts
        raise AssertionError("UtcDateTime binds through its processor")
    return process
