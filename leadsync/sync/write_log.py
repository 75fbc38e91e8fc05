"""The audit log and the echo fingerprints as the store keeps them: one row per record.

    log_rows(...)          a batch's field writes as `writes` rows: one per record (a run of
                           its rows that share status, category and message), its fields one
                           JSON object {field: [old, new]} in the order written, compressed
                           (`sync.packed`: nothing queries inside it)
    expected_writes(rows)  the values a batch wrote, by record
    insert_log(...)        insert `writes` rows, through the driver
    merge_expected(...)    upsert `expected` rows, each laid over the record's earlier fields
                           (JSON {field: [value]} or [value, microseconds], compressed)
    logged_fields(fields)  a `writes` row's fields, decoded, in the order written
    expected_fields(blob)  an `expected` row's fields as stored
    expected_values(...)   those fields, decoded, with when each was written

A first sync writes some 10 fields to each of tens of thousands of records: a row per field
(and SQLAlchemy's processing of each, and a JSON encoding of each value) cost about as much
as everything else the store does. Each row's JSON is encoded once, here, and the rows go to
the database driver as they are.

Both tables keep values as `encode_value` gives them, pair by pair, under field names of
their own: a mapping's top level is never tagged (a field named "$x" stays a field), so one
record's fields merge with another's write by name, keeping the values of fields a later
write leaves alone.
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
from leadsync.sync.sql import chunks, execute_encoded, time_param, upsert_statement

__all__ = [
    "EXPECTED_LOCK_KEY",
    "Written",
    "expected_fields",
    "expected_values",
    "expected_writes",
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


def expected_writes(
    rows: Sequence[Written],
) -> dict[str, tuple[dict[str, list[Any]], datetime | None]]:
    """Record id -> (its fields a batch wrote, each value alone, the last of a field written
    twice winning; the record's stamp after the write, or None): for `merge_expected`."""
    values: dict[str, dict[str, list[Any]]] = {}
    modified: dict[str, datetime] = {}
    for row in rows:
        if row.status == WriteStatus.WRITTEN:
            # Written now, at the row's `written_at`: the value alone (`expected_values`).
            values.setdefault(row.record_id, {})[row.field] = _alone(row.new)
            if row.modified_at is not None:
                modified[row.record_id] = max(row.modified_at, modified.get(row.record_id, EPOCH))
    return {record_id: (fields, modified.get(record_id)) for record_id, fields in values.items()}


def merge_expected(
    connection: Connection,
    crm: str,
    run_id: str,
    written_at: datetime,
    written: Mapping[str, tuple[dict[str, list[Any]], datetime | None]],
    *,
    dictionary: packed.Dictionary | None = None,
    codebook: packed.Codebook | None = None,
) -> None:
    """Lay `expected_writes`, written at `written_at`, over the records' rows: a record's row
    takes the fields written now over those it held, keeping the others, packed with
    `dictionary` where given (held rows unpacked through `codebook`, the store's).

    A field written at the row's `written_at` holds its value alone ([value]); the row's
    other fields hold when they were written beside it ([value, microseconds]). So a kept
    field that held its value alone gets its time written out once the row's `written_at`
    moves on (and a field written now, when another transaction wrote the row later).

    The rows are read, merged here and written back within the caller's transaction: on
    PostgreSQL under a lock every transaction merging echo fingerprints takes, so that two
    writing one record's fields at once both keep theirs (SQLite's write transactions are
    one at a time already)."""
    if not written:
        return
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": EXPECTED_LOCK_KEY}
        )
    e = t.expected.c
    held: dict[str, tuple[dict[str, list[Any]], datetime, datetime | None]] = {}
    for chunk in chunks(list(written)):
        query = sa.select(e.record_id, e.packed, e.written_at, e.modified_at).where(
            e.crm == crm, e.record_id.in_(chunk)
        )
        for record_id, blob, held_at, held_modified in connection.execute(query):
            held[record_id] = (expected_fields(blob, codebook), held_at, held_modified)
    as_time = time_param(connection.dialect)
    rows = []
    for record_id, (fields, modified_at) in written.items():
        latest = written_at
        before = held.get(record_id)
        if before is not None:
            held_fields, held_at, held_modified = before
            fields = _laid_over(held_fields, held_at, fields, written_at)
            latest = max(held_at, written_at)
            # The last write's stamp, or the one before it where the CRM gave none now.
            modified_at = held_modified if modified_at is None else modified_at
        rows.append(
            {
                "crm": crm,
                "record_id": record_id,
                "packed": packed.pack_text(_text(fields).encode(), dictionary),
                "run_id": run_id,
                "written_at": as_time(latest),
                "modified_at": as_time(modified_at),
            }
        )
    _execute(connection, upsert_statement(connection, t.expected), rows)


# Taken by every transaction that merges echo fingerprints on PostgreSQL (`merge_expected`).
EXPECTED_LOCK_KEY = 0x1EAD50E0


def _laid_over(
    held: Mapping[str, list[Any]],
    held_at: datetime,
    fields: Mapping[str, list[Any]],
    written_at: datetime,
) -> dict[str, list[Any]]:
    """`fields` written at `written_at` over the `held` ones of a row written at `held_at`:
    the held fields first, in their order, then those written now. A value alone stands for
    its row's time, so it gets that time written out where the merged row's is another."""
    merged = {
        name: [*entry, microseconds(held_at)] if len(entry) == 1 and held_at < written_at else entry
        for name, entry in held.items()
        if name not in fields
    }
    for name, entry in fields.items():
        late = len(entry) == 1 and written_at < held_at
        merged[name] = [*entry, microseconds(written_at)] if late else entry
    return merged


def expected_fields(stored: bytes, codebook: packed.Codebook | None = None) -> dict[str, Any]:
    """An `expected` row's packed fields as stored: {field: [value] or [value, microseconds]},
    each value still as `encode_value` gave it (see `expected_values`)."""
    fields: dict[str, Any] = json.loads(packed.unpack_text(stored, codebook))
    return fields


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
