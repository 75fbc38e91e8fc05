"""The store contract suite runs on every backend: `database_url` is parametrized over them.

PostgreSQL tests each get a fresh schema (found through `search_path`), dropped afterwards, so
they are isolated and repeatable on one server. Their sessions run in a time zone far from UTC,
so a timestamp read back in the session's zone instead of UTC shows up in every test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from leadsync.sync.store import Store

SESSION_TIME_ZONE = "Asia/Tokyo"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'leadsync.db'}"
        return
    server_url: str = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex}"
    admin = sa.create_engine(server_url)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        options = f"-csearch_path={schema} -ctimezone={SESSION_TIME_ZONE}"
        url = sa.make_url(server_url).update_query_dict({"options": options})
        yield url.render_as_string(hide_password=False)
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with Store(database_url) as opened:
        yield opened
