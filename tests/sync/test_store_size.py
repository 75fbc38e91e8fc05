"""What keeps the store small beyond its columns: a new SQLite file's page size."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from leadsync.sync.database import SQLITE_PAGE_SIZE
from leadsync.sync.store import Store


def test_a_new_sqlite_store_has_large_pages(tmp_path: Path) -> None:
    # A ~1 KB snapshot row left a quarter of each 4 KB page unused.
    store = Store(f"sqlite:///{tmp_path / 'leadsync.db'}")
    with store, store.engine.connect() as connection:
        size = connection.execute(sa.text("PRAGMA page_size")).scalar_one()
        mode = connection.execute(sa.text("PRAGMA journal_mode")).scalar_one()
    assert size == SQLITE_PAGE_SIZE
    assert SQLITE_PAGE_SIZE == 16_384
    assert mode == "wal"
