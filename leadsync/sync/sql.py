"""SQL building blocks shared by the store's tables: upserts both backends spell alike, and
id lists cut to a size every backend takes.

    insert_for(connection, table)   INSERT that takes ON CONFLICT, in the connection's dialect
    upsert(connection, table, rows) insert, or replace the other columns of rows already there
                                    (WRITE_CHUNK rows an execute)
    excluded(insert, table, names)  the `excluded.<name>` values of an upsert, by column
    chunks(ids)                     ids without repeats, IN_CHUNK at a time
    last_by_key(rows, key)          one row per key: one statement may not upsert a row twice
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

__all__ = [
    "IN_CHUNK",
    "WRITE_CHUNK",
    "Insert",
    "aggregate_time",
    "batches",
    "chunks",
    "excluded",
    "insert_for",
    "last_by_key",
    "upsert",
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
    keys = [column.name for column in table.primary_key]
    insert = insert_for(connection, table)
    others = [column.name for column in table.c if column.name not in keys]
    statement = insert.on_conflict_do_update(
        index_elements=keys, set_=excluded(insert, table, others)
    )
    for chunk in batches(rows, WRITE_CHUNK):
        connection.execute(statement, chunk)


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
