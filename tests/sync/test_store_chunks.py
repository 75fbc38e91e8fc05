"""A slice's decisions written WRITE_CHUNK rows an execute, and stored JSON read back with its
keys shared: what bounds a settle's memory (docs/BENCHMARKS.md, "Peak memory")."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from leadsync.mapping.lifecycle import Stage, Transition
from leadsync.sync import store as store_module
from leadsync.sync.model import Lead, Snapshot
from leadsync.sync.sql import WRITE_CHUNK, batches
from leadsync.sync.store import Store

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_batches_take_the_items_as_they_come_in_lists_of_the_size() -> None:
    taken: list[int] = []

    def items() -> Iterator[int]:
        for n in range(7):
            taken.append(n)
            yield n

    found = batches(items(), 3)
    assert next(found) == [0, 1, 2]
    assert taken == [0, 1, 2]  # no more read than the first list needs
    assert list(found) == [[3, 4, 5], [6]]
    assert list(batches([], 3)) == []


def test_a_slice_of_decisions_is_written_in_chunks_and_all_of_it_lands(store: Store) -> None:
    count = WRITE_CHUNK * 2 + 3
    leads = [Lead(f"L{n}", {"email": f"{n}@example.com"}) for n in range(count)]
    # A lead given twice: the last one given is the one stored.
    leads.append(Lead("L0", {"email": "again@example.com"}))
    links = [("hubspot", str(n), f"L{n}", "new") for n in range(count)]
    moves = [
        (f"L{n}", Transition(None, Stage.LEAD, T0, "first seen", "enter")) for n in range(count)
    ]
    sizes: list[int] = []

    def executed(_conn: Any, _cursor: Any, _sql: str, params: Any, _ctx: Any, many: bool) -> None:
        sizes.append(len(params) if many else 1)

    engine: sa.Engine = store._engine
    sa.event.listen(engine, "before_cursor_execute", executed)
    try:
        store.save_decisions(leads=leads, links=links, transitions=moves, run_id="run-1")
    finally:
        sa.event.remove(engine, "before_cursor_execute", executed)

    assert max(sizes) == WRITE_CHUNK
    stored = store.leads([f"L{n}" for n in range(count)])
    assert len(stored) == count
    assert stored["L0"].values["email"] == "again@example.com"
    assert len(store.lead_ids_for("hubspot", [str(n) for n in range(count)])) == count
    assert [move.to_stage for move in store.transitions.history(f"L{count - 1}")] == [Stage.LEAD]


def test_stored_records_read_back_share_their_field_names(store: Store) -> None:
    def snapshot(record_id: str) -> Snapshot:
        fields = {"a_rather_long_field_name": record_id, "another_long_field_name": 1}
        return Snapshot("hubspot", record_id, T0, dict(fields), dict(fields), {})

    store.save_page("hubspot", [snapshot("1"), snapshot("2")], position=None, run_id="run-1")
    read = store.snapshots("hubspot", ["1", "2"])

    first, second = (list(read[i].raw) + list(read[i].canonical) for i in ("1", "2"))
    assert first == second
    assert all(one is other for one, other in zip(first, second, strict=True))


def test_a_pages_snapshot_rows_are_encoded_as_each_chunk_is_written(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = WRITE_CHUNK * 2 + 3
    encoded: list[int] = []
    encode = store_module._snapshot_row

    def counted(*args: Any, **kwargs: Any) -> Any:
        encoded.append(1)
        return encode(*args, **kwargs)

    monkeypatch.setattr(store_module, "_snapshot_row", counted)
    encoded_before: list[int] = []

    def executed(_conn: Any, _cursor: Any, sql: str, _params: Any, _ctx: Any, many: bool) -> None:
        if many and "snapshots" in sql:
            encoded_before.append(len(encoded))

    page = [
        Snapshot("hubspot", str(n), T0, {"email": f"{n}@example.com"}, {}, {}) for n in range(count)
    ]
    engine: sa.Engine = store._engine
    sa.event.listen(engine, "before_cursor_execute", executed)
    try:
        store.save_page("hubspot", page, position=None, run_id="run-1")
    finally:
        sa.event.remove(engine, "before_cursor_execute", executed)

    # Each chunk's rows encoded when it is written, not the whole page's before the first.
    assert encoded_before == [WRITE_CHUNK, WRITE_CHUNK * 2, count]
    assert len(store.snapshots("hubspot", [str(n) for n in range(count)])) == count
