"""The PostgreSQL extra and the test server are wired up: what the store tests will stand on."""

from __future__ import annotations

import pytest
import sqlalchemy

pytestmark = pytest.mark.postgres


def test_postgres_extra_connects_with_psycopg3_and_round_trips_aware_timestamps(
    postgres_url: str,
) -> None:
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            assert engine.dialect.driver == "psycopg"
            version = connection.execute(sqlalchemy.text("SHOW server_version_num")).scalar_one()
            assert int(version) >= 130000
            moment = connection.execute(
                sqlalchemy.text("SELECT TIMESTAMPTZ '2024-05-01 10:00:00.123+02'")
            ).scalar_one()
            assert moment.utcoffset() is not None
            assert moment.isoformat().startswith("2024-05-01T")
            assert moment.timestamp() == 1714550400.123
    finally:
        engine.dispose()
