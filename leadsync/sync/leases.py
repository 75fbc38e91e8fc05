"""Leases: at most one replica runs each job at a time, and a dead replica's job is taken over.

    leases = Leases(store.engine, holder="host-a:4242")
    with leases.hold("sync", ttl=timedelta(seconds=60), stalled_after=timedelta(minutes=15)) \
            as lease:                     # None: someone else has it
        should_stop = lease.stop_check(should_stop)   # each call: progress made
        ... should_stop() ...             # True once the lease was taken (or we stalled)

A lease is one row per name: (holder, expires_at). Taking it is one upsert that only succeeds
when the row is absent, expired, or already ours, so two replicas racing for it cannot both
win (PostgreSQL makes the second wait for the first's commit, then re-checks the row). The
holder renews it every third of its time to live while it works; a replica killed mid-job
stops renewing, and the lease is free again once it expires. Renewal is tied to progress, not
to a timer alone: a job that reaches no batch boundary (asks no stop check) for
`stalled_after` is stuck (a hung call, a pattern gone wild) and stops renewing too, so another
replica takes the job over instead of waiting behind it forever; the stuck one stops at its
next boundary, seeing its lease lost. On PostgreSQL, where replicas on several hosts share
the store, a lease's times are the server's clock (`clock_timestamp()`), so a host whose clock
runs ahead never takes a live lease; on SQLite (one host) they are the host's.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadsync.connectors.base import utc
from leadsync.errors import RunError
from leadsync.sync import tables as t
from leadsync.sync.database import is_transient, retry_transient, shared_now, writing
from leadsync.sync.sql import insert_for

__all__ = [
    "REPLICA_PREFIX",
    "SYNC_LEASE",
    "Lease",
    "LeaseHeldError",
    "LeaseInfo",
    "LeaseLostError",
    "Leases",
    "all_leases",
    "forget_gone_replicas",
    "replica_lease",
    "replica_name",
]

# Every writer of the CRMs (a sync run, a backfill's chunk or settle) holds this one.
SYNC_LEASE = "sync"
# A service replica's heartbeat: a lease of its own, "replica:<holder>", renewed while it
# runs (between jobs too) and released when it stops; a killed one's runs out.
REPLICA_PREFIX = "replica:"

log = logging.getLogger("leadsync.service")


def replica_name() -> str:
    """This process as a lease holder: host, pid and a random tail (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def replica_lease(holder: str) -> str:
    """The name of the heartbeat lease of the replica `holder`."""
    return REPLICA_PREFIX + holder


class LeaseHeldError(RunError):
    """A command that writes (`sync --once`, `plan`, `quarantine retry`, `revert`) found the
    `sync` lease held by another process past its wait: it did nothing."""


class LeaseLostError(RunError):
    """Another process took the `sync` lease while a command held it (the command stalled,
    or could not renew it in time): the command stopped at a batch boundary."""


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime


@dataclass
class Lease:
    """A lease held: `lost` is set when a renewal found it taken by someone else, or the
    holder stalled; `took_over_from` names the holder whose expired lease this one replaced."""

    name: str
    holder: str
    lost: threading.Event = field(default_factory=threading.Event)
    took_over_from: str | None = None
    # When the holder last showed progress (time.monotonic()).
    progressed_at: float = field(default_factory=time.monotonic)

    def progress(self) -> None:
        """The holder reached a batch boundary: keep renewing."""
        self.progressed_at = time.monotonic()

    def stop_check(self, outer: Callable[[], bool] = lambda: False) -> Callable[[], bool]:
        """`outer`, as asked at each batch boundary: each call is progress, and the answer
        is also yes once the lease is lost."""

        def should_stop() -> bool:
            self.progress()
            return outer() or self.lost.is_set()

        return should_stop


class Leases:
    def __init__(
        self,
        engine: Engine,
        holder: str,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """`clock` judges and sets lease times instead of the database's (tests)."""
        self._engine = engine
        self.holder = holder
        self._clock = clock

    def _now(self, connection: Connection) -> datetime:
        """The moment a lease's expiry is judged and set by, within the transaction: the clock
        given, else PostgreSQL's own (one clock for every host), else this host's."""
        return utc(self._clock()) if self._clock is not None else shared_now(connection)

    def now(self) -> datetime:
        """The moment the leases are judged by now: what a lease's `expires_at` is compared
        with (on PostgreSQL the server's clock, not this host's)."""
        with self._engine.connect() as connection:
            return self._now(connection)

    def _local_now(self) -> datetime:
        """This process's time, for how long it waits (not for the leases' times)."""
        return utc(self._clock()) if self._clock is not None else datetime.now(UTC)

    def acquire(self, name: str, ttl: timedelta) -> bool:
        """Take the lease `name` for `ttl` if it is free, expired or ours; True if taken."""
        return self._take(name, ttl)[0]

    def _take(self, name: str, ttl: timedelta, *, waiting: bool = False) -> tuple[bool, str | None]:
        """Whether the lease was taken, and from which other holder (its lease expired).
        `waiting`: for a caller that waits for the lease anyway, tried once, a database
        another writer holds locked being the lease not free yet. Retried, each attempt would
        block a lock wait, running a wait past its end by all of them, and end in the error
        rather than in "held by another"."""
        if not waiting:
            return self._take_retried(name, ttl)
        try:
            return self._take_once(name, ttl)
        except sa.exc.DBAPIError as error:
            if not is_transient(error):
                raise
            return False, None

    @retry_transient
    def _take_retried(self, name: str, ttl: timedelta) -> tuple[bool, str | None]:
        return self._take_once(name, ttl)

    def _take_once(self, name: str, ttl: timedelta) -> tuple[bool, str | None]:
        """`_take`'s one transaction, not retried."""
        with writing(self._engine) as connection:
            now = self._now(connection)
            row = {"name": name, "holder": self.holder, "acquired_at": now, "expires_at": now + ttl}
            before = connection.execute(
                sa.select(t.leases.c.holder).where(t.leases.c.name == name)
            ).scalar()
            insert = insert_for(connection, t.leases)
            current = t.leases.c
            statement = insert.values(row).on_conflict_do_update(
                index_elements=["name"],
                set_={
                    "holder": insert.excluded.holder,
                    # Renewing our own lease keeps the time we first took it.
                    "acquired_at": sa.case(
                        (current.holder == self.holder, current.acquired_at),
                        else_=insert.excluded.acquired_at,
                    ),
                    "expires_at": insert.excluded.expires_at,
                },
                where=sa.or_(current.expires_at <= now, current.holder == self.holder),
            )
            taken = connection.execute(statement.returning(current.holder)).scalar()
        if taken != self.holder:
            return False, None
        return True, before if before not in (None, self.holder) else None

    @retry_transient
    def renew(self, name: str, ttl: timedelta) -> bool:
        """Push our lease's expiry out by `ttl` from now; False if it is not ours any more."""
        with writing(self._engine) as connection:
            now = self._now(connection)
            done = connection.execute(
                t.leases.update()
                .where(t.leases.c.name == name, t.leases.c.holder == self.holder)
                .values(expires_at=now + ttl)
            )
        return bool(done.rowcount)

    @retry_transient
    def release(self, name: str) -> None:
        """Give the lease up now, if it is ours."""
        with writing(self._engine) as connection:
            connection.execute(
                t.leases.delete().where(t.leases.c.name == name, t.leases.c.holder == self.holder)
            )

    @retry_transient
    def info(self, name: str) -> LeaseInfo | None:
        """Who holds `name` and until when (maybe expired), or None."""
        with self._engine.connect() as connection:
            row = (
                connection.execute(sa.select(t.leases).where(t.leases.c.name == name))
                .mappings()
                .one_or_none()
            )
        if row is None:
            return None
        return LeaseInfo(row["name"], row["holder"], row["acquired_at"], row["expires_at"])

    @contextmanager
    def hold(
        self,
        name: str,
        *,
        ttl: timedelta,
        wait: timedelta = timedelta(0),
        stop: threading.Event | Callable[[], bool] | None = None,
        poll_seconds: float = 0.5,
        stalled_after: timedelta | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> Iterator[Lease | None]:
        """The lease `name` while the block runs, renewed in the background while the holder
        shows progress (`Lease.progress`, `Lease.stop_check`) within `stalled_after` (None:
        always), or None when it could not be taken within `wait` (or `stop` said stop while
        waiting). `on_wait` is called once, when the lease is found taken and waited for."""
        deadline = self._local_now() + wait
        stopped = stop.is_set if isinstance(stop, threading.Event) else stop or (lambda: False)
        waiting = wait > timedelta(0)
        while not (taken := self._take(name, ttl, waiting=waiting))[0]:
            if self._local_now() >= deadline or stopped():
                yield None
                return
            if on_wait is not None:
                on_wait()
                on_wait = None
            time.sleep(poll_seconds)
            if stopped():
                yield None
                return
        lease = Lease(name, self.holder, took_over_from=taken[1])
        done = threading.Event()
        renewer = threading.Thread(
            target=self._keep,
            args=(lease, ttl, stalled_after, done),
            name=f"lease-{name}",
            daemon=True,
        )
        renewer.start()
        try:
            yield lease
        finally:
            done.set()
            renewer.join(timeout=ttl.total_seconds())
            if not lease.lost.is_set():
                self.release(name)

    def _keep(
        self, lease: Lease, ttl: timedelta, stalled_after: timedelta | None, done: threading.Event
    ) -> None:
        while not done.wait(ttl.total_seconds() / 3):
            idle = time.monotonic() - lease.progressed_at
            if stalled_after is not None and idle > stalled_after.total_seconds():
                # Not released: the stuck holder may still wake up mid-batch; its lease runs
                # out in `ttl`, and it stops at its next boundary, seeing `lost`.
                log.error(
                    "lease %s: no progress for %.0f s: no longer renewed, so another replica "
                    "can take the job over",
                    lease.name,
                    idle,
                )
                lease.lost.set()
                return
            try:
                kept = self.renew(lease.name, ttl)
            except sa.exc.SQLAlchemyError as problem:
                # The database is away: the lease may expire; the next renewal decides.
                log.warning("lease %s: renewal failed: %s", lease.name, problem.__class__.__name__)
                continue
            if not kept:
                log.error("lease %s: taken over by another replica; stopping", lease.name)
                lease.lost.set()
                return


@retry_transient
def all_leases(engine: Engine) -> list[LeaseInfo]:
    """Every lease by name, held or expired (a lease is a row until released)."""
    with engine.connect() as connection:
        rows = connection.execute(sa.select(t.leases).order_by(t.leases.c.name)).mappings()
        return [
            LeaseInfo(row["name"], row["holder"], row["acquired_at"], row["expires_at"])
            for row in rows
        ]


@retry_transient
def forget_gone_replicas(engine: Engine, *, before: datetime) -> int:
    """Drop the heartbeats that ran out before `before` (replicas killed long ago)."""
    with writing(engine) as connection:
        done = connection.execute(
            t.leases.delete().where(
                t.leases.c.name.startswith(REPLICA_PREFIX, autoescape=True),
                t.leases.c.expires_at < utc(before),
            )
        )
    return int(done.rowcount or 0)
