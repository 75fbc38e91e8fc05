"""The echo fingerprints merged in Python (revision 0019) hold what the database's merge of
revision 0018 held, for random sequences of writes, on every backend.

The oracle is 0018's statement as it shipped (c930780, `write_log.merge_expected`): an upsert
whose JSON column is merged by json_each in the database. Each sequence is run once through
it, on a table of 0018's shape, and once through `write_log.merge_expected` on the packed
table; each record's row must come out alike: its fields (value and time of each), run, time
and stamp. The writes come at times moving on, standing still, and going back (a write stamped
before the row's), fields are written twice in a batch, and the values are the odd ones:
integers past 64 bits, 1e16, NaN and infinities, mappings that look tagged, text past ASCII
(half a surrogate pair on SQLite only: PostgreSQL's json refused it, so 0018 could not store it).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from leadsync.connectors.base import WriteStatus
from leadsync.sync import tables, write_log
from leadsync.sync.audit_log import WriteRow
from leadsync.sync.sql import execute_encoded, time_param

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
OLD = sa.Table(
    "expected",
    sa.MetaData(),
    sa.Column("crm", sa.String(), primary_key=True),
    sa.Column("record_id", sa.String(), primary_key=True),
    sa.Column("fields", sa.JSON(), nullable=False),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("written_at", tables.UtcDateTime(), nullable=False),
    sa.Column("modified_at", tables.UtcDateTime(), nullable=True),
)
NEW = tables.expected

# 0018's merge, as shipped.
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


def old_merge(
    connection: sa.Connection, crm: str, run_id: str, now: datetime, rows: Sequence[WriteRow]
) -> None:
    """0018's `expected_rows` and `merge_expected`."""
    written = write_log.expected_writes(rows)
    if not written:
        return
    as_time = time_param(connection.dialect)
    values = [
        (crm, record_id, tables.encoded_json_text(fields), run_id, as_time(now), as_time(stamp))
        for record_id, (fields, stamp) in written.items()
    ]
    if connection.dialect.name == "sqlite":
        insert: Any = sqlite.insert(OLD)
        merged: Any = sa.literal_column(_SQLITE_MERGE, sa.JSON())
        latest: Any = sa.func.max(OLD.c.written_at, insert.excluded.written_at)
    else:
        insert = postgresql.insert(OLD)
        merged = sa.literal_column(_POSTGRESQL_MERGE, sa.JSON())
        latest = sa.func.greatest(OLD.c.written_at, insert.excluded.written_at)
    statement = insert.on_conflict_do_update(
        index_elements=[OLD.c.crm, OLD.c.record_id],
        set_={
            "fields": merged,
            "run_id": insert.excluded.run_id,
            "written_at": latest,
            "modified_at": sa.func.coalesce(insert.excluded.modified_at, OLD.c.modified_at),
        },
    )
    columns = ("crm", "record_id", "fields", "run_id", "written_at", "modified_at")
    execute_encoded(connection, statement, columns, values)


VALUES: list[Any] = [
    0,
    -7,
    2**63 - 1,
    2**64 - 1,
    2**64,
    2**70,
    -(2**70),
    1e16,
    1.5,
    -0.0,
    1e-7,
    float("nan"),
    float("inf"),
    float("-inf"),
    None,
    True,
    "",
    "Zoë ✓ 日本",
    "1e16",
    {"$date": "2024-05-01"},
    {"$float": "nan"},
    {"$x": 1, "y": 2},
    {"a": {"$datetime": "z"}},
    [1, "a", None],
    [],
    {},
    datetime(2024, 5, 1, 3, 4, 5, 6, tzinfo=UTC),
    date(2024, 5, 1),
]
SURROGATES = ["\ud800", "a\udc00b"]
FIELDS = ["a", "b", "$x", "Zoë", "$object", ""]
# From one batch to the next: on, standing still, a microsecond back, days back.
STEPS = [0, 1, 123, 999_999, 5_000_000, -1, -3_000_000, -86_400_000_000]


def batches(
    seed: int, values: Sequence[Any], count: int
) -> list[tuple[str, datetime, list[WriteRow]]]:
    rng = random.Random(seed)
    found, at = [], T0
    for number in range(count):
        at += timedelta(microseconds=rng.choice(STEPS))
        rows = [
            WriteRow(
                rng.choice(["1", "2", "00Q000000000001"]),
                rng.choice(FIELDS),
                None,
                rng.choice(values),
                rng.choice([WriteStatus.WRITTEN] * 4 + [WriteStatus.FAILED]),
                modified_at=rng.choice([None, at + timedelta(seconds=rng.randint(-99, 99))]),
            )
            for _ in range(rng.randint(1, 6))
        ]
        found.append((f"run-{number}", at, rows))
    return found


def _rows(connection: sa.Connection, table: sa.Table) -> dict[str, tuple[Any, ...]]:
    found = {}
    for row in connection.execute(sa.select(table)).mappings():
        if table is OLD:
            # The text as stored (the driver's parse of PostgreSQL's json is json.loads too).
            text = connection.execute(
                sa.select(sa.cast(OLD.c.fields, sa.Text())).where(
                    OLD.c.record_id == row["record_id"]
                )
            ).scalar_one()
            fields = json.loads(text)
        else:
            fields = write_log.expected_fields(row["packed"])
        values = write_log.expected_values(fields, row["written_at"])
        found[row["record_id"]] = (
            repr(sorted(fields.items())),  # as stored: [value] or [value, microseconds]
            repr(sorted(values.items())),  # decoded (NaN compares equal as text)
            row["run_id"],
            row["written_at"],
            row["modified_at"],
        )
    return found


@pytest.mark.parametrize("seed", range(12))
def test_the_python_merge_holds_what_the_database_merge_of_0018_held(
    database_url: str, seed: int
) -> None:
    engine = sa.create_engine(database_url)
    values = VALUES + (SURROGATES if database_url.startswith("sqlite") else [])
    sequence = batches(seed, values, 25)
    found = {}
    for table in (OLD, NEW):
        with engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE IF EXISTS expected"))
            table.create(connection)
        for run_id, at, rows in sequence:
            with engine.begin() as connection:
                if table is OLD:
                    old_merge(connection, "hubspot", run_id, at, rows)
                else:
                    write_log.merge_expected(
                        connection, "hubspot", run_id, at, write_log.expected_writes(rows)
                    )
        with engine.connect() as connection:
            found[table is NEW] = _rows(connection, table)
    engine.dispose()
    assert found[True] == found[False]
    assert found[True]  # something was written
