"""The audit log and the echo fingerprints as the store keeps them: one row per record.

    log_rows(...)          a batch's field writes as `writes` rows: one per record (a run of
                           its rows that share status, category and message), its fields one
                           JSON object {field: [old, new]} in the order written, compressed
                           (`sync.packed`: nothing queries inside it)
    expected_rows(...)     the values a batch wrote, as one `expected` row per record
    insert_log(...)        insert `writes` rows, through the driver
    merge_expected(...)    upsert `expected` rows, each laid over the record's earlier fields
    logged_fields(fields)  a `writes` row's fields, decoded, in the order written
    expected_values(...)   an `expected` row's fields, decoded, with when each was written

A first sync writes some 10 fields to each of tens of thousands of records: a row per field
(and SQLAlchemy's processing of each, and a JSON encoding of each value) cost about as much
as everything else the store does. Each row's JSON is encoded once, here, and the rows go to
the database driver as they are.

Both tables keep values as `encode_value` gives them, pair by pair, under field names of
their own: a mapping's top level is never tagged (a field named "$x" stays a field), so the
database can merge one record's fields with another's (SQLite's json_patch, PostgreSQL's
jsonb ||), which keeps the values of fields a later write leaves alone, even when two
transactions write one record at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadsync.connectors.base import WriteStatus
from leadsync.sync import packed
from leadsync.sync import tables as t
from leadsync.sync.sql import execute_encoded, insert_for, time_param

__all__ = [
    "Written",
    "expected_rows",
    "expected_values",
    "insert_log",
    "log_rows",
    "logged_fields",
    "merge_expected",
    "microseconds",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# The exact types JSON holds as they are: most values, kept without a call.
_PLAIN = frozenset({str, int, bool, type(None)})


class Written(Protocol):
    """One field written (or not) to one record, as the store is given it (a WriteRow)."""

    @property
    def record_id(self) -> str: ...
    @property
    def field(self) -> str: ...
    @property
    def old(self) -> Any: ...
    @property
    def new(self) -> Any: ...
    @property
    def status(self) -> WriteStatus: ...
    @property
    def category(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def modified_at(self) -> datetime | None: ...


def microseconds(moment: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch: exact, and compact in JSON."""
    return (moment - EPOCH) // _MICROSECOND


def _alone(value: Any) -> list[Any]:
    if type(value) in _PLAIN:
        return [value]
    encoded: list[Any] = t.encode_value([value])
    return encoded


def _pair(first: Any, second: Any) -> list[Any]:
    if type(first) in _PLAIN and type(second) in _PLAIN:
        return [first, second]
    encoded: list[Any] = t.encode_value([first, second])
    return encoded


# A status as the log keeps it, looked up: a member and its value hash alike.
_STATUSES = {status.value: status.value for status in WriteStatus}


def _status(status: WriteStatus) -> str:
    try:
        return _STATUSES[status]
    except KeyError:
        return WriteStatus(status).value  # raises ValueError, naming it


def _decoded(value: Any) -> Any:
    return t.decode_value(value) if type(value) in _CONTAINERS else value


_CONTAINERS = (dict, list)


def _text(fields: Mapping[str, list[Any]]) -> str:
    # The pairs are encoded already: orjson writes them (the json module, ~5x slower, only
    # for what orjson refuses). Both are read back as JSON, never compared as text.
    return t.encoded_json_text(fields)


def log_rows(
    connection: Connection,
    run_id: str,
    crm: str,
    rows: Sequence[Written],
    now: datetime,
    dictionary: packed.Dictionary | None = None,
) -> list[dict[str, Any]]:
    """`writes` rows for a batch, ready for `insert_log`, their fields packed with
    `dictionary` where given. Rows of one record that follow one another with one outcome make
    one row; another outcome, another record in between, or a field written twice starts a new
    one, so reading back gives every write in its order."""
    at = time_param(connection.dialect)(now)
    found: list[dict[str, Any]] = []
    key: tuple[str, str, str, str] | None = None
    fields: dict[str, list[Any]] = {}
    for row in rows:
        outcome = (row.record_id, _status(row.status), row.category, row.message)
        if outcome != key or row.field in fields:
            if key is not None:
                found.append(_log_row(run_id, crm, key, fields, at, dictionary))
            key, fields = outcome, {}
        fields[row.field] = _pair(row.old, row.new)
    if key is not None:
        found.append(_log_row(run_id, crm, key, fields, at, dictionary))
    return found


def _log_row(
    run_id: str,
    crm: str,
    key: tuple[str, str, str, str],
    fields: dict[str, list[Any]],
    at: Any,
    dictionary: packed.Dictionary | None,
) -> dict[str, Any]:
    record_id, status, category, message = key
    return {
        "run_id": run_id,
        "crm": crm,
        "record_id": record_id,
        "fields": packed.pack_text(_text(fields).encode(), dictionary),
        "status": status,
        "category": category,
        "message": message,
        "at": at,
    }


def insert_log(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append `log_rows` to the audit log."""
    _execute(connection, t.writes.insert(), rows)


def expected_rows(
    connection: Connection, run_id: str, crm: str, rows: Sequence[Written], now: datetime
) -> list[dict[str, Any]]:
    """One `expected` row per record with a write that landed: the values written, the last
    of a field written twice winning."""
    values: dict[str, dict[str, list[Any]]] = {}
    modified: dict[str, datetime] = {}
    for row in rows:
        if row.status == WriteStatus.WRITTEN:
            # Written now, at the row's `written_at`: the value alone (`expected_values`).
            values.setdefault(row.record_id, {})[row.field] = _alone(row.new)
            if row.modified_at is not None:
                modified[row.record_id] = max(row.modified_at, modified.get(row.record_id, EPOCH))
    as_time = time_param(connection.dialect)
    written_at = as_time(now)
    return [
        {
            "crm": crm,
            "record_id": record_id,
            "fields": _text(fields),
            "run_id": run_id,
            "written_at": written_at,
            "modified_at": as_time(modified.get(record_id)),
        }
        for record_id, fields in values.items()
    ]


def merge_expected(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Upsert `expected_rows`: a record's row takes the fields written now over those it held,
    keeping the others, as one statement in the database (no read first).

    A field written at the row's `written_at` holds its value alone ([value]); the row's
    other fields hold when they were written beside it ([value, microseconds]). So a kept
    field that held its value alone gets its time written out once the row's `written_at`
    moves on (and a field written now, when another transaction wrote the row later)."""
    if not rows:
        return
    insert = insert_for(connection, t.expected)
    held, new = t.expected.c, insert.excluded
    if connection.dialect.name == "sqlite":
        fields: Any = sa.literal_column(_SQLITE_MERGE, sa.JSON())
        latest: Any = sa.func.max(held.written_at, new.written_at)
    else:
        # json has no merge, and jsonb's || rewrites every value it merges (1e+16 comes back
        # the integer 10000000000000000, an object's keys in jsonb's order): the record's
        # fields are merged as json, each value's text kept as it was written.
        fields = sa.literal_column(_POSTGRESQL_MERGE, sa.JSON())
        latest = sa.func.greatest(held.written_at, new.written_at)
    statement = insert.on_conflict_do_update(
        index_elements=[held.crm, held.record_id],
        set_={
            "fields": fields,
            "run_id": new.run_id,
            "written_at": latest,
            # The last write's stamp, or the one before it where the CRM gave none now.
            "modified_at": sa.func.coalesce(new.modified_at, held.modified_at),
        },
    )
    _execute(connection, statement, rows)


# Each side's fields, a value alone given its row's time where the merged row's is another
# (json_insert appends to the array, and every value's text is kept as it was written). SQLite
# keeps a timestamp as its UTC wall time, "YYYY-MM-DD HH:MM:SS.ffffff": its microseconds since
# the epoch are the whole seconds strftime reads, and the fraction's digits.
_SQLITE_MERGE = """(SELECT json_group_object(merged.key, json(merged.value)) FROM (
 SELECT key, CASE WHEN json_array_length(value) = 1 AND expected.written_at < excluded.written_at
  THEN json_insert(value, '$[#]',
   CAST(strftime('%s', substr(expected.written_at, 1, 19)) AS INTEGER) * 1000000
   + CAST(substr(expected.written_at, 21, 6) AS INTEGER))
  ELSE value END AS value
 FROM json_each(expected.fields)
 WHERE key NOT IN (SELECT key FROM json_each(excluded.fields))
 UNION ALL
 SELECT key, CASE WHEN json_array_length(value) = 1 AND excluded.written_at < expected.written_at
  THEN json_insert(value, '$[#]',
   CAST(strftime('%s', substr(excluded.written_at, 1, 19)) AS INTEGER) * 1000000
   + CAST(substr(excluded.written_at, 21, 6) AS INTEGER))
  ELSE value END
 FROM json_each(excluded.fields)) AS merged)"""

_POSTGRESQL_MERGE = """(SELECT json_object_agg(merged.key, merged.value) FROM (
 SELECT key, CASE WHEN json_array_length(value) = 1 AND expected.written_at < excluded.written_at
  THEN json_build_array(value -> 0,
   round(extract(epoch FROM expected.written_at) * 1000000)::bigint)
  ELSE value END AS value
 FROM json_each(expected.fields)
 WHERE key NOT IN (SELECT json_object_keys(excluded.fields))
 UNION ALL
 SELECT key, CASE WHEN json_array_length(value) = 1 AND excluded.written_at < expected.written_at
  THEN json_build_array(value -> 0,
   round(extract(epoch FROM excluded.written_at) * 1000000)::bigint)
  ELSE value END
 FROM json_each(excluded.fields)) AS merged)"""


def _execute(
    connection: Connection, statement: sa.ClauseElement, rows: Sequence[Mapping[str, Any]]
) -> None:
    """`statement` once per row, the rows' values already as the driver takes them."""
    if rows:
        columns = tuple(rows[0])
        execute_encoded(connection, statement, columns, [tuple(row.values()) for row in rows])


def logged_fields(
    stored: bytes, codebook: packed.Codebook | None = None
) -> Iterator[tuple[str, Any, Any]]:
    """A `writes` row's fields, decoded: (field, old, new), in the order written (a
    dictionary's blob unpacked through `codebook`, the store's)."""
    fields: Mapping[str, Any] = json.loads(packed.unpack_text(stored, codebook))
    for name, (old, new) in fields.items():
        yield name, _decoded(old), _decoded(new)


def expected_values(fields: Mapping[str, Any], written_at: datetime) -> dict[str, tuple[Any, int]]:
    """An `expected` row's fields, decoded: field -> (value, when written, in microseconds).
    A value alone was written at the row's `written_at`."""
    row_stamp = microseconds(written_at)
    return {
        name: (_decoded(entry[0]), entry[1] if len(entry) > 1 else row_stamp)
        for name, entry in fields.items()
    }
