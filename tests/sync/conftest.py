"""The store contract suite runs on every backend: `database_url` (tests/conftest.py) is
parametrized over them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leadsync.sync.store import Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with Store(database_url) as opened:
        yield opened
