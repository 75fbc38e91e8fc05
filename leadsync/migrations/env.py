"""Alembic's entry point: migrate on the connection leadsync passes, or on `sqlalchemy.url`.

Online only: leadsync has no use for offline SQL scripts.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from leadsync.sync.database import hold_migration_lock, make_engine, refuse_unknown_revision
from leadsync.sync.tables import metadata


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        # Held until commit: a second replica waits, then finds the schema already at head.
        hold_migration_lock(connection)
        # Under the lock: a newer replica that migrated meanwhile has committed its revision.
        refuse_unknown_revision(connection, context.script)
        context.run_migrations()


def run() -> None:
    if context.is_offline_mode():
        raise RuntimeError("leadsync migrations run online only, on a live database")
    given = context.config.attributes.get("connection")
    if given is not None:
        _migrate(given)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("no connection and no sqlalchemy.url to migrate")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


run()
