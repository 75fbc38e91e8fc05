"""The store's Alembic migrations, run from code by `leadsync.sync.database.upgrade_database`.

A new migration: change leadsync/sync/tables.py, upgrade a scratch database, then
`alembic.command.revision(alembic_config(url), autogenerate=True, message="...")` and read what
it wrote. Migrations are frozen once released: they spell out their tables instead of importing
tables.py, which keeps changing.
"""
