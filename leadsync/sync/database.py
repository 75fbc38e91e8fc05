"""Engines, migrations and transient-error retries: how the store reaches its database.

make_engine(url)          SQLite (the file and its folder created on first use) or
                          PostgreSQL (postgresql+psycopg://...)
writing(engine)           a write transaction; on SQLite BEGIN IMMEDIATE, and real
                          transactions for DDL and reads too
upgrade_database(url)     Alembic `upgrade head`, from code: no alembic.ini at run time
downgrade_database(url, to)  Alembic `downgrade` to an older revision (`leadsync db downgrade`)
refuse_unknown_revision   a store migrated by a newer leadsync, refused before anything is
                          read or written (SchemaTooNewError)
alembic_config(url)       the Alembic Config, for developers writing a new migration:
                          command.revision(alembic_config(url), autogenerate=True, message=...)
retry_transient           re-runs a whole transaction after an error that rolled it back
shared_now(connection)    now by the store's one clock (PostgreSQL's; SQLite: the host's)
                          for reasons of concurrency alone, a few times, then gives up
store_error(error, url)   a database failure as one line naming the cause and the database
                          (its password masked): a StoreError, never a traceback
shown_url(url)            the database URL fit to print: password and query values masked

Statements' parameters never reach a log or an error message (`hide_parameters`): they are
customers' emails and names.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from leadsync.errors import StoreError, UsageError
from leadsync.secrets import MASK

__all__ = [
    "MIGRATIONS",
    "SchemaOutOfDateError",
    "SchemaTooNewError",
    "alembic_config",
    "check_schema",
    "downgrade_database",
    "is_transient",
    "known_revisions",
    "make_engine",
    "refuse_unknown_revision",
    "retry_transient",
    "shared_now",
    "shown_url",
    "store_error",
    "store_errors",
    "upgrade",
    "upgrade_database",
    "writing",
]

log = logging.getLogger("leadsync.store")

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"

# Replicas starting together on one PostgreSQL take turns migrating (any fixed 64-bit number).
MIGRATION_LOCK_KEY = 0x1EAD5_0C0


class SchemaOutOfDateError(StoreError):
    """The database is not at the schema this version of leadsync needs."""

    def __init__(self, current: str | None, head: str | None) -> None:
        super().__init__(
            f"the database schema is at {current or 'nothing'}, this leadsync needs {head}: "
            "run `leadsync db upgrade`"
        )
        self.current = current
        self.head = head


class SchemaTooNewError(StoreError):
    """The store was migrated by a newer leadsync, to a revision this one does not know: it
    cannot tell what that revision changed, so it neither reads nor migrates the store."""

    def __init__(self, url: str | sa.URL, current: str, head: str | None) -> None:
        super().__init__(
            f"the store at {shown_url(url)} was migrated by a newer leadsync (revision "
            f"{current}, this one knows up to {head}): run the newer release, or downgrade the "
            f"store with it first, `leadsync db downgrade --to {head}` (see README: "
            "Downgrading)"
        )
        self.current = current
        self.head = head


# ------------------------------------------------------------------------------------ engines


# How long one statement waits for another process's write lock on a SQLite file (the
# driver's own default, said here): a transaction retried RETRY_ATTEMPTS times waits ~25 s
# in all before the run gives up with "database is locked".
SQLITE_LOCK_WAIT_SECONDS = 5.0
# The page size of a new SQLite file. A snapshot's row is ~1 KB: SQLite's default 4 KB page
# holds three, a quarter of it left unused; a 16 KB page wastes a sixteenth.
SQLITE_PAGE_SIZE = 16_384


def _interned(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {sys.intern(key): value for key, value in pairs}


# The store's JSON columns come back with their object keys interned. They are field names:
# a slice of 20,000 snapshots holds the same few dozen names ~60 times a record (raw,
# canonical and changed_at), and json.loads makes every one anew for each record: the slice's
# snapshots were the biggest holder at a first sync's peak (docs/BENCHMARKS.md, "Peak memory").
json_loads = partial(json.loads, object_pairs_hook=_interned)


def make_engine(url: str) -> Engine:
    """An engine for `url`. A new SQLite file is created, with its folder; an empty file where
    a database was expected is refused (StoreError), never taken for a new database."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise StoreError(f"{url!r} is not a database URL") from None
    if parsed.get_backend_name() != "sqlite":
        # A long-running service outlives server restarts: test connections before use.
        return sa.create_engine(
            parsed, pool_pre_ping=True, hide_parameters=True, json_deserializer=json_loads
        )
    database = parsed.database or ""
    if database in ("", ":memory:"):
        # One in-memory database shared by every use of the engine, not one per connection.
        engine = sa.create_engine(
            parsed,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
            hide_parameters=True,
            json_deserializer=json_loads,
        )
    else:
        _sqlite_file(Path(database).expanduser(), shown=shown_url(parsed))
        engine = sa.create_engine(
            parsed,
            connect_args={"timeout": SQLITE_LOCK_WAIT_SECONDS},
            hide_parameters=True,
            json_deserializer=json_loads,
        )
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_file(path: Path, *, shown: str) -> None:
    """Create the SQLite database at `path` if there is none; refuse an empty file.

    SQLite takes an empty file for a new database: a file truncated by a full disk or a bad
    copy would silently start leadsync over, every record new, every history lost. So leadsync
    never leaves one itself: a new database is made under a temporary name (its header written)
    and linked into place only if no other process got there first.
    """
    try:
        if path.stat().st_size == 0:
            raise StoreError(
                f"the SQLite database {shown} is an empty file, not a leadsync database "
                "(truncated?): restore it from a backup, or remove it to start afresh"
            )
        return
    except (FileNotFoundError, NotADirectoryError):
        pass  # none there: made below, or said why it cannot be
    except OSError as problem:
        raise StoreError(f"cannot open the SQLite database {path}: {problem.strerror}") from None
    fresh = path.with_name(f".{path.name}.{uuid.uuid4().hex}.new")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(fresh) as connection:
            # Before the header is written: a database's page size is fixed from then on.
            connection.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            connection.execute("PRAGMA journal_mode=WAL")  # writes the header: not empty
        connection.close()
        with contextlib.suppress(FileExistsError):  # another replica made it meanwhile: theirs
            os.link(fresh, path)
    except (OSError, sqlite3.Error) as problem:
        # A folder that cannot be made or written (read-only, missing mount, a file in the
        # way): the environment's doing, said in one line like every store failure.
        cause = problem.strerror if isinstance(problem, OSError) else str(problem)
        raise StoreError(f"cannot create the SQLite database {path}: {cause}") from problem
    finally:
        for leftover in (fresh, Path(f"{fresh}-wal"), Path(f"{fresh}-shm")):
            with contextlib.suppress(OSError):  # none made, or no folder to make them in
                leftover.unlink()


def shown_url(url: str | sa.URL) -> str:
    """The database URL fit to print: its password masked, in the userinfo and in the query
    (libpq takes `?password=` too, and `sslpassword`, `passfile`...: every value is masked)."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return "(not a database URL)"
    shown = parsed.set(query={}).render_as_string(hide_password=True)
    if parsed.query:
        shown += "?" + "&".join(f"{name}={MASK}" for name in parsed.query)
    return shown


def store_error(error: BaseException, url: str | sa.URL) -> StoreError:
    """`error` from the database at `url`, as a StoreError of one line: the cause and the
    database, its password masked. The driver's message only, its first line: SQLAlchemy's own
    text carries the statement, and the driver's detail lines may carry values."""
    if isinstance(error, StoreError):
        return error
    original = getattr(error, "orig", None) or error
    cause = str(original).strip().splitlines()[0] if str(original).strip() else ""
    cause = cause.removeprefix("connection failed: ")
    shown = shown_url(url)
    hint = ""
    lowered = cause.lower()
    if "file is not a database" in lowered or "malformed" in lowered:
        hint = " (the file is damaged or not a SQLite database: restore it from a backup)"
    elif "database is locked" in lowered:
        hint = " (another process holds it: SQLite suits one replica; more need PostgreSQL)"
    elif "connection refused" in lowered or "could not connect" in lowered:
        hint = " (is the database server running?)"
    return StoreError(f"database {shown}: {type(original).__name__}: {cause or 'failed'}{hint}")


@contextmanager
def store_errors(url: str) -> Iterator[None]:
    """Database failures inside the block leave it as StoreError (see store_error)."""
    try:
        yield
    except sa.exc.SQLAlchemyError as error:
        raise store_error(error, url) from error


# An execution option: how a SQLite transaction begins (DEFERRED unless said otherwise).
SQLITE_BEGIN = "leadsync_sqlite_begin"


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite begins transactions itself, but only before INSERT, UPDATE and DELETE: DDL (a
    # migration) and reads would run outside them. SQLAlchemy says BEGIN instead (_sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers (reports, `explain`) work while a sync run writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction. On SQLite it takes the write lock at once (BEGIN IMMEDIATE),
    waiting for another writer, rather than failing halfway through when one got there first."""
    with engine.connect() as connection:
        connection.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        with connection.begin():
            yield connection


# ------------------------------------------------------------------------------------ retries

# Errors after which the database has rolled the whole transaction back, so running it again
# is safe. A lost connection is not one: the commit may have happened.
TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
    }
)
SQLITE_LOCKED_MESSAGES = ("database is locked", "database table is locked")
RETRY_ATTEMPTS = 5


def shared_now(connection: Connection) -> datetime:
    """Now, by the clock every process sharing the store judges leases and heartbeats by:
    PostgreSQL's own (replicas on several hosts, whose clocks may disagree), else this
    host's (SQLite: one host)."""
    if connection.dialect.name == "postgresql":
        moment: datetime = connection.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
        return moment.astimezone(UTC)
    return datetime.now(UTC)


def is_transient(error: BaseException) -> bool:
    """True for database errors that a retry of the same transaction may get past."""
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    original = error.orig
    if getattr(original, "sqlstate", None) in TRANSIENT_SQLSTATES:
        return True
    if isinstance(original, sqlite3.OperationalError):
        message = str(original).lower()
        return any(text in message for text in SQLITE_LOCKED_MESSAGES)
    return False


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    # The driver's message only: SQLAlchemy's own text carries the statement's parameters.
    original = getattr(error, "orig", error)
    log.warning(
        "transient database error in %s (attempt %d of %d), retrying: %s: %s",
        getattr(state.fn, "__qualname__", "store"),
        state.attempt_number,
        RETRY_ATTEMPTS,
        type(original).__name__,
        str(original).splitlines()[0] if str(original) else "",
    )


P = ParamSpec("P")
R = TypeVar("R")


def retry_transient(function: Callable[P, R]) -> Callable[P, R]:
    """Run `function` (one whole transaction) again after a transient error, up to
    RETRY_ATTEMPTS times in all with a short backoff; any other error is raised at once."""
    retrying = retry(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(RETRY_ATTEMPTS),
        wait=wait_exponential(multiplier=0.05, max=2.0),
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(function)


# --------------------------------------------------------------------------------- migrations


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic Config for leadsync/migrations, on `connection` or else on `url`."""
    config = Config()
    # Config values go through configparser interpolation, where "%" is special.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


# Alembic keeps the running migration in module globals (`alembic.context`): one at a time in a
# process. Processes take turns through a PostgreSQL advisory lock (see migrations/env.py).
_MIGRATING = threading.Lock()


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


@cache
def _release_revisions() -> tuple[tuple[str, ...], str | None]:
    """This release's revisions, oldest first, and its head. Read once a process: Alembic
    compiles every migration script each time it loads them (~15 ms, paid by every store
    opened), and a running process's scripts are those it was installed with."""
    scripts = _scripts()
    return tuple(_walked(scripts)), scripts.get_current_head()


def _walked(scripts: ScriptDirectory) -> list[str]:
    return [script.revision for script in reversed(list(scripts.walk_revisions()))]


def known_revisions(scripts: ScriptDirectory | None = None) -> list[str]:
    """The revisions this leadsync knows, oldest first."""
    return _walked(scripts) if scripts is not None else list(_release_revisions()[0])


def refuse_unknown_revision(connection: Connection, scripts: ScriptDirectory | None = None) -> None:
    """Raise SchemaTooNewError if the store on `connection` is at a revision this leadsync does
    not know: one a newer release migrated it to. Alembic would only say it "can't locate" it,
    after a traceback; and no code of this release may read or write a schema it cannot know.
    StoreError if it names more than one revision."""
    known = set(known_revisions(scripts))
    head = scripts.get_current_head() if scripts is not None else _release_revisions()[1]
    currents = MigrationContext.configure(connection).get_current_heads()
    for current in currents:
        if current not in known:
            raise SchemaTooNewError(connection.engine.url, current, head)
    if len(currents) > 1:
        # A leadsync store is at one revision: two rows (a restore or a tool gone wrong) name
        # no schema this release may read or migrate.
        raise StoreError(
            f"database {shown_url(connection.engine.url)}: its alembic_version names "
            f"{len(currents)} revisions ({', '.join(sorted(currents))}), where a leadsync store "
            "names one: restore it from a backup, or keep the row of the schema it holds"
        )


def hold_migration_lock(connection: Connection) -> None:
    """On PostgreSQL, take the migration lock, held to the transaction's end: processes (and
    test schemas) migrate one at a time. Taken again in the same transaction, it is held twice,
    to the commit (env.py takes it for the migrations). SQLite's write transaction is the lock."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
        )


@retry_transient
def upgrade(engine: Engine) -> None:
    """Migrate the database of `engine` to the newest schema, in one transaction. A store a
    newer leadsync migrated is refused (SchemaTooNewError; migrations/env.py checks it once it
    holds the migration lock), nothing written."""
    with _MIGRATING, writing(engine) as connection:
        # A store at head (every one but the first open after an install) needs no Alembic;
        # read under the lock, as a newer release migrating meanwhile may commit its revision.
        hold_migration_lock(connection)
        head = _release_revisions()[1]
        if MigrationContext.configure(connection).get_current_heads() == (head,):
            return
        command.upgrade(alembic_config(connection=connection), "head")


def upgrade_database(url: str) -> None:
    """Create or migrate the database at `url` to the newest schema (`leadsync db upgrade`)."""
    with store_errors(url):
        engine = make_engine(url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()


def revision_named(name: str) -> str:
    """The revision of this leadsync that `name` names: its id, or a start of it that only one
    id has ("0015"). UsageError, listing them, for any other."""
    revisions = known_revisions()
    matching = [revision for revision in revisions if revision.startswith(name)] if name else []
    if name in revisions:
        return name
    if len(matching) == 1:
        return matching[0]
    if matching:
        raise UsageError(
            f"{name!r} starts {len(matching)} revisions ({', '.join(matching)}): give more of "
            "the one to go back to"
        )
    raise UsageError(
        f"no revision {name!r} in this leadsync: one of {', '.join(revisions)} "
        "(`leadsync db downgrade --help`)"
    )


def downgrade_database(
    url: str, to: str, *, before: Callable[[str, list[str]], None] | None = None
) -> list[str]:
    """Migrate the store at `url` down to the older revision `to`, in one transaction: what a
    store needs before an older release, whose newest revision is `to`, can open it
    (`leadsync db downgrade`). `before(current revision, revisions to undo, newest first)` is
    called once they are known, before anything is changed. Returns the revisions undone (none
    if the store is at `to` already); UsageError if it is older than `to`."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        # make_engine would create one: a command that undoes must not leave a new store.
        raise StoreError(f"no SQLite database at {shown_url(parsed)}: nothing to downgrade")
    with store_errors(url):
        engine = make_engine(url)
        try:
            return _downgrade(engine, revision_named(to), before or (lambda _current, _undo: None))
        finally:
            engine.dispose()


@retry_transient
def _downgrade(engine: Engine, to: str, before: Callable[[str, list[str]], None]) -> list[str]:
    with _MIGRATING, writing(engine) as connection:
        # Before the revision is read: a downgrade or upgrade under way changes it.
        hold_migration_lock(connection)
        scripts = _scripts()
        refuse_unknown_revision(connection, scripts)
        revisions = known_revisions(scripts)
        current = MigrationContext.configure(connection).get_current_revision()
        shown = shown_url(engine.url)
        if current is None:
            raise StoreError(f"the database {shown} holds no leadsync store: nothing to downgrade")
        if revisions.index(current) < revisions.index(to):
            raise UsageError(
                f"the store at {shown} is at {current}, older than {to}: nothing to downgrade "
                "(the release that needs it migrates the store up itself)"
            )
        undo = revisions[revisions.index(to) + 1 : revisions.index(current) + 1][::-1]
        if undo:
            _refuse_live_writers(connection, shown)
        before(current, undo)
        if undo:
            command.downgrade(alembic_config(connection=connection), to)
        return undo


def _refuse_live_writers(connection: Connection, shown: str) -> None:
    """StoreError if a sync (the `sync` lease) or a replica of the service (its heartbeat) is
    live: a sync going on past the downgrade fails on the tables it took away, its run left
    running, and a replica would start its next job on a schema it cannot know. Judged, like
    the leases, by PostgreSQL's clock there. Plain SQL: leases.py needs this module, and the
    store may be at a revision the live tables do not describe."""
    if not sa.inspect(connection).has_table("leases"):
        return  # older than 0003_service: no service, no leases
    moment = shared_now(connection)
    # SQLite keeps UTC wall times as text, as SQLAlchemy writes them.
    now = moment if connection.dialect.name == "postgresql" else f"{moment:%Y-%m-%d %H:%M:%S.%f}"
    live = connection.execute(
        sa.text(
            "SELECT name, holder, expires_at FROM leases WHERE expires_at > :now "
            "AND (name = 'sync' OR name LIKE 'replica:%') ORDER BY name"
        ),
        {"now": now},
    ).first()
    if live is not None:
        name, holder, expires_at = live
        # A datetime on PostgreSQL (in the session's zone), UTC wall time text on SQLite.
        until = datetime.fromisoformat(str(expires_at))
        until = until.astimezone(UTC) if until.tzinfo else until.replace(tzinfo=UTC)
        raise StoreError(
            f"the {name} lease is held by {holder} until {until:%Y-%m-%d %H:%M:%S} UTC: stop "
            "every replica of the service and every command that syncs first (a killed one's "
            f"lease runs out by then); nothing downgraded at {shown}"
        )


def check_schema(engine: Engine) -> None:
    """Raise SchemaOutOfDateError unless the database of `engine` is at the newest schema
    (SchemaTooNewError if a newer leadsync migrated it)."""
    with engine.connect() as connection:
        refuse_unknown_revision(connection)
        current = MigrationContext.configure(connection).get_current_revision()
    head = _release_revisions()[1]
    if current != head:
        raise SchemaOutOfDateError(current, head)
