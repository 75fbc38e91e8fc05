"""Echo fingerprints without a time per field where the row's time says it.

`expected.fields` held {field: [value, microseconds]}: a first sync writes some 17 fields to
a record at one moment, and their 17 copies of that moment (16 digits each) were a third of
the table. A field written at the row's `written_at` now holds its value alone ([value]);
one written before it keeps its time ([value, microseconds]). The upgrade drops each time
equal to its row's `written_at`; the downgrade writes them out again.

Revision ID: 0016_expected_row_stamps
Revises: 0015_own_write_stamps
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0016_expected_row_stamps"
down_revision: str | None = "0015_own_write_stamps"
branch_labels: str | None = None
depends_on: str | None = None

CHUNK = 1_000  # rows rewritten per statement
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_EXPECTED = sa.table(
    "expected",
    sa.column("crm", sa.String()),
    sa.column("record_id", sa.String()),
    sa.column("fields", sa.JSON()),
    sa.column("written_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    _rewrite(_alone)


def downgrade() -> None:
    _rewrite(_stamped)


def _alone(fields: dict[str, Any], stamp: int) -> dict[str, Any]:
    return {
        name: entry[:1] if len(entry) == 2 and entry[1] == stamp else entry
        for name, entry in fields.items()
    }


def _stamped(fields: dict[str, Any], stamp: int) -> dict[str, Any]:
    return {name: [*entry, stamp] if len(entry) == 1 else entry for name, entry in fields.items()}


def _microseconds(moment: datetime) -> int:
    # SQLite gives the UTC wall time back naive.
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _MICROSECOND


def _rewrite(convert: Callable[[dict[str, Any], int], dict[str, Any]]) -> None:
    """Each row's fields through `convert(fields, its written_at in microseconds)`. The
    fields' JSON text is parsed and written again with the json module, which keeps each
    value's number text as it reads (1e+16 stays a float)."""
    connection = op.get_bind()
    expected = _EXPECTED.c
    update = (
        _EXPECTED.update()
        .where(expected.crm == sa.bindparam("key_crm"))
        .where(expected.record_id == sa.bindparam("key_record"))
        .values(fields=sa.bindparam("rewritten", type_=sa.JSON()))
    )
    query = (
        sa.select(expected.crm, expected.record_id, expected.fields, expected.written_at)
        .order_by(expected.crm, expected.record_id)
        .limit(CHUNK)
    )
    after: tuple[str, str] | None = None
    while True:
        # A page of keys at a time, past the last one read: no cursor stays open while its
        # table is updated, and no more than a page is held.
        page = (
            query
            if after is None
            else query.where(sa.tuple_(expected.crm, expected.record_id) > after)
        )
        rows = list(connection.execute(page))
        if not rows:
            return
        batch: list[dict[str, Any]] = []
        for crm, record_id, fields, written_at in rows:
            held = json.loads(fields) if isinstance(fields, str) else fields
            rewritten = convert(held, _microseconds(written_at))
            if rewritten != held:
                batch.append({"key_crm": crm, "key_record": record_id, "rewritten": rewritten})
        if batch:
            connection.execute(update, batch)
        after = rows[-1][0], rows[-1][1]
