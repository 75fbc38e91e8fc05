"""Backfills: full pulls through the list and Bulk APIs, reconciled and written like a sync.

    queue = BackfillQueue(store.engine)
    job = queue.create(BackfillSpec(("hubspot", "salesforce"), since=..., dry_run=False))
    claimed = queue.claim(job.backfill_id, holder, stale_after=...)
    BackfillRunner(engine, queue=queue, ...).run(claimed)

A backfill pulls every record of each CRM (`pull_all`, through `SyncEngine.pull_full`: one
path with the sync's, from the page to the store) and keeps those modified within
[since, until), `chunk_records` at a time; once every CRM is pulled it settles them (merge,
plan, write, SLA) as a sync run does. Only then, because a lead's two records must be merged
together: merged from its HubSpot record alone, then again once its Salesforce record
arrives, it would be written twice, the first time wrongly. (The settle goes a slice at a
time, each person's records in one slice: `leadsync.sync.slices`.) Each chunk's counts are
committed with the checkpoint they reach, so a backfill killed anywhere goes on from there
when resumed (or rerun with the same arguments), counting each record once: the pages saved
since (at most a chunk's; each is committed with its checkpoint too, in a cursor stream of the
backfill's own) are pulled, and saved unchanged, again. A settle cut off is done again from
the records still pending, writing only what the CRMs do not hold yet; its written counts are
committed with each write batch's record in the audit log, so they hold every write recorded
once, whichever runner made it. Each chunk
holds the `sync` lease, and waits `yield_seconds` after giving it back, so a scheduled
incremental sync gets in between. Reaching a CRM's API quota reserve pauses the backfill; it
resumes when asked again (the service retries paused backfills).

The nightly sweep is a backfill of kind `sweep` over every CRM without a window: after its
pull it marks the records no CRM listed any more as deleted, and settles every lead again, so
drift the incremental pulls missed (an opportunity won later, a value overwritten, a changed
lead definition) is repaired.

A dry run is `leadsync plan` over the full pull: it stores what it pulled and writes nothing;
the next sync reconciles it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from leadsync.connectors.base import CrmRecord, utc
from leadsync.connectors.errors import QuotaReserveReachedError
from leadsync.errors import RunError, RunPausedError, UsageError
from leadsync.sync import tables as t
from leadsync.sync.database import retry_transient, shared_now, store_error, writing
from leadsync.sync.engine import (
    FullPull,
    PulledPage,
    RunInterruptedError,
    StopCheck,
    SyncEngine,
    WrittenHook,
)
from leadsync.sync.leases import SYNC_LEASE, Leases
from leadsync.sync.run_log import abandon_runs_of
from leadsync.sync.run_summary import RunSummary

__all__ = [
    "BACKFILL",
    "RUNNER_ROLE",
    "SWEEP",
    "Backfill",
    "BackfillBusyError",
    "BackfillQueue",
    "BackfillRunner",
    "BackfillSpec",
    "BackfillSpecError",
    "CrmProgress",
    "Progress",
    "Status",
    "spec_for",
]

log = logging.getLogger("leadsync.backfill")

BACKFILL = "backfill"
SWEEP = "sweep"
# The role a runner holds the sync lease in and records its run as (`Runtime.leases`).
RUNNER_ROLE = "backfill"
# A failed backfill the service tries again, this long after it failed.
RETRY_FAILED_AFTER = timedelta(minutes=10)
# How often a running backfill looks for a person's request to stop it.
STOP_POLL_SECONDS = 1.0


class Status:
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"  # the quota reserve was reached: resumable
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # resumable too: a rerun goes on from the checkpoints
    # A person asked a running backfill to stop: its runner stops after the batch in hand.
    STOPPING = "stopping"
    # Stopped by a person: the service leaves it alone until it is resumed (or rerun).
    STOPPED = "stopped"
    # Not stored: how a running (or stopping) backfill reads once its heartbeat is older than
    # the lease's time to live. Its runner died (a SIGKILL, a lost host); the next run or
    # the service's next poll goes on with it from its checkpoints.
    ABANDONED = "abandoned"
    UNFINISHED = ("queued", "running", "paused", "failed", "stopping", "stopped", "abandoned")


@dataclass(frozen=True, slots=True)
class BackfillSpec:
    crms: tuple[str, ...]
    since: datetime | None = None
    until: datetime | None = None
    dry_run: bool = False
    kind: str = BACKFILL

    def keeps(self, record: CrmRecord) -> bool:
        """Whether `record` was modified within [since, until)."""
        moment = record.modified_at
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment < self.until
        )


@dataclass(frozen=True, slots=True)
class CrmProgress:
    pulled: int = 0  # records listed
    kept: int = 0  # within the window
    # The plan's writes that landed, as a run counts them (`CrmCounts.written`; a handoff's
    # writes beside the plan are not), saved with each batch's record in the audit log.
    written: int = 0
    failed: int = 0
    total: int | None = None  # what the CRM said it holds, when asked
    done: bool = False
    # Where the pull stands once the records counted in `pulled` are saved: a resumed pull
    # goes on from here. None before the first chunk, and in rows revisions before 0020 wrote.
    # Not shown: stored in a column of its own (`_checkpoints_json`).
    checkpoint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pulled": self.pulled,
            "kept": self.kept,
            "written": self.written,
            "failed": self.failed,
            "total": self.total,
            "done": self.done,
        }


@dataclass(frozen=True, slots=True)
class Backfill:
    backfill_id: str
    spec: BackfillSpec
    status: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    holder: str | None = None
    heartbeat_at: datetime | None = None
    progress: Mapping[str, CrmProgress] = field(default_factory=dict)
    message: str = ""

    def of(self, crm: str) -> CrmProgress:
        return self.progress.get(crm, CrmProgress())

    @property
    def stream(self) -> str:
        """The cursor stream of this backfill's checkpoints."""
        return f"{self.spec.kind}:{self.backfill_id}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.backfill_id,
            "kind": self.spec.kind,
            "crms": list(self.spec.crms),
            "since": None if self.spec.since is None else self.spec.since.isoformat(),
            "until": None if self.spec.until is None else self.spec.until.isoformat(),
            "dry_run": self.spec.dry_run,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "started_at": None if self.started_at is None else self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "holder": self.holder,
            "progress": {crm: self.of(crm).as_dict() for crm in self.spec.crms},
            "message": self.message,
        }


class BackfillBusyError(RunError):
    """The backfill is running elsewhere, its heartbeat fresh."""


# ------------------------------------------------------------------------------ the queue


class BackfillQueue:
    """The backfills table: what was asked, who runs it, how far it got."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] | None = None,
        stale_after: timedelta | None = None,
    ) -> None:
        """With `stale_after` (the lease's time to live), `get` and `list` show a running
        backfill whose heartbeat is older as abandoned. Times are the store's one clock
        (`shared_now`: a host whose clock runs ahead never takes a live backfill for a dead
        one), unless `clock` is given (tests)."""
        self._engine = engine
        self._clock = clock
        self._stale_after = stale_after

    @property
    def database_url(self) -> sa.URL:
        """The store's URL, to name it in a failure's message (its password masked there)."""
        return self._engine.url

    def _now(self, connection: Connection) -> datetime:
        return utc(self._clock()) if self._clock is not None else shared_now(connection)

    def _as_seen(self, backfill: Backfill, now: datetime) -> Backfill:
        if self._stale_after is None or backfill.status not in (Status.RUNNING, Status.STOPPING):
            return backfill
        beat = backfill.heartbeat_at
        if beat is not None and beat >= now - self._stale_after:
            return backfill
        when = "" if beat is None else f" at {beat.isoformat(timespec='seconds')}"
        return replace(
            backfill,
            status=Status.ABANDONED,
            message=f"its runner ({backfill.holder or '?'}) stopped beating{when}: "
            f"`leadsync backfill --resume {backfill.backfill_id}`, or the service, goes on "
            "from its checkpoints",
        )

    @retry_transient
    def create(self, spec: BackfillSpec, *, status: str = Status.QUEUED) -> Backfill:
        with writing(self._engine) as connection:
            backfill = Backfill(uuid.uuid4().hex[:12], spec, status, self._now(connection))
            connection.execute(t.backfills.insert(), _row(backfill))
        return backfill

    @retry_transient
    def get(self, backfill_id: str) -> Backfill | None:
        query = sa.select(t.backfills).where(t.backfills.c.backfill_id == backfill_id)
        with self._engine.connect() as connection:
            row = connection.execute(query).mappings().one_or_none()
            return None if row is None else self._as_seen(_backfill(row), self._now(connection))

    @retry_transient
    def list(self, *, limit: int = 50) -> list[Backfill]:
        """The latest backfills, newest first."""
        query = (
            sa.select(t.backfills)
            .order_by(t.backfills.c.created_at.desc(), t.backfills.c.backfill_id)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            now = self._now(connection)
            rows = connection.execute(query).mappings()
            return [self._as_seen(_backfill(row), now) for row in rows]

    def unfinished_like(self, spec: BackfillSpec) -> Backfill | None:
        """The newest unfinished backfill asked with the same arguments: a rerun resumes it."""
        return next(
            (
                backfill
                for backfill in self.list(limit=200)
                if backfill.spec == spec and backfill.status in Status.UNFINISHED
            ),
            None,
        )

    @retry_transient
    def claim(
        self, backfill_id: str | None, holder: str, *, stale_after: timedelta
    ) -> Backfill | None:
        """Take a backfill to run: the one named, or else the oldest waiting (queued, paused,
        failed, or running with a heartbeat older than `stale_after`: its runner died)."""
        column = t.backfills.c
        # A stopped backfill is taken up only when named: the service's polls leave it.
        waiting = [Status.QUEUED, Status.PAUSED, Status.FAILED]
        if backfill_id is not None:
            waiting.append(Status.STOPPED)
        with writing(self._engine) as connection:
            now = self._now(connection)
            claimable = sa.or_(
                column.status.in_(waiting),
                sa.and_(column.status == Status.RUNNING, column.heartbeat_at < now - stale_after),
                sa.and_(column.status == Status.RUNNING, column.holder == holder),
            )
            query = sa.select(column.backfill_id).where(claimable)
            if backfill_id is not None:
                query = query.where(column.backfill_id == backfill_id)
            else:
                # Queued and paused work first, oldest first; a failed backfill is tried
                # again once RETRY_FAILED_AFTER has passed (a CRM or the database away).
                query = query.where(
                    sa.or_(
                        column.status != Status.FAILED,
                        column.heartbeat_at < now - RETRY_FAILED_AFTER,
                    )
                ).order_by(column.status == Status.FAILED, column.created_at)
            chosen = connection.execute(query.limit(1)).scalar()
            if chosen is None:
                return None
            before = connection.execute(
                sa.select(column.status, column.holder).where(column.backfill_id == chosen)
            ).one()
            connection.execute(
                t.backfills.update()
                .where(column.backfill_id == chosen, claimable)
                .values(
                    status=Status.RUNNING,
                    holder=holder,
                    heartbeat_at=now,
                    started_at=sa.func.coalesce(column.started_at, now),
                    message="",
                )
            )
            row = (
                connection.execute(sa.select(t.backfills).where(column.backfill_id == chosen))
                .mappings()
                .one()
            )
            dead = before.holder if before.status == Status.RUNNING else None
            if row["holder"] == holder and dead not in (None, holder):
                # Its runner died (SIGKILL, a lost host): the run it left "running" never ends
                # by itself. What it committed stays; this runner goes on from there.
                replica = dead.split("/", 1)[0]
                abandon_runs_of(connection, f"{replica}/{RUNNER_ROLE}", finished_at=now)
        claimed = _backfill(row)
        return claimed if claimed.holder == holder else None

    @retry_transient
    def heartbeat(self, backfill: Backfill, *, progress: bool = True) -> bool:
        """Say it is alive and, with `progress`, save its progress; False when another runner
        took it over."""
        with writing(self._engine) as connection:
            values: dict[str, Any] = {"heartbeat_at": self._now(connection)}
            if progress:
                values.update(_progress_values(backfill))
            return _update_held(connection, backfill, values)

    @retry_transient
    def finish(self, backfill: Backfill, *, status: str, message: str = "") -> Backfill:
        with writing(self._engine) as connection:
            now = self._now(connection)
            asked = connection.execute(
                sa.select(t.backfills.c.status).where(
                    t.backfills.c.backfill_id == backfill.backfill_id
                )
            ).scalar()
            if asked == Status.STOPPING and status != Status.SUCCEEDED:
                # However it ended (interrupted, paused, failed), a person said stop.
                status, message = Status.STOPPED, "stopped on request: resume to go on"
            finished = replace(
                backfill,
                status=status,
                message=message,
                finished_at=now if status == Status.SUCCEEDED else None,
            )
            connection.execute(
                t.backfills.update()
                .where(
                    t.backfills.c.backfill_id == backfill.backfill_id,
                    t.backfills.c.holder == backfill.holder,
                )
                .values(
                    status=status,
                    message=message,
                    finished_at=finished.finished_at,
                    heartbeat_at=now,
                    progress=_progress_json(backfill),
                    checkpoints=_checkpoints_json(backfill),
                )
            )
        return finished

    @retry_transient
    def request_stop(self, backfill_id: str, *, stale_after: timedelta) -> Backfill | None:
        """Stop a backfill: one that waits (queued, paused, failed) or whose runner died (no
        heartbeat within `stale_after`) is stopped at once; a running one is asked to, and
        its runner stops after the batch in hand. A finished one stays as it is. None when
        there is no such backfill."""
        column = t.backfills.c
        this = column.backfill_id == backfill_id
        with writing(self._engine) as connection:
            now = self._now(connection)
            stale = sa.or_(column.heartbeat_at.is_(None), column.heartbeat_at < now - stale_after)
            connection.execute(
                t.backfills.update()
                .where(
                    this,
                    sa.or_(
                        column.status.in_((Status.QUEUED, Status.PAUSED, Status.FAILED)),
                        sa.and_(column.status.in_((Status.RUNNING, Status.STOPPING)), stale),
                    ),
                )
                .values(status=Status.STOPPED, message="stopped on request: resume to go on")
            )
            connection.execute(
                t.backfills.update()
                .where(this, column.status == Status.RUNNING)
                .values(status=Status.STOPPING, message="asked to stop after the batch in hand")
            )
        return self.get(backfill_id)

    @retry_transient
    def resume(self, backfill_id: str) -> Backfill | None:
        """Hand a stopped, paused or failed backfill back to the service, queued again: it
        goes on from its checkpoints. Any other stays as it is. None when there is none."""
        column = t.backfills.c
        with writing(self._engine) as connection:
            connection.execute(
                t.backfills.update()
                .where(
                    column.backfill_id == backfill_id,
                    column.status.in_((Status.STOPPED, Status.PAUSED, Status.FAILED)),
                )
                .values(status=Status.QUEUED, message="resumed: the service takes it up")
            )
        return self.get(backfill_id)

    @retry_transient
    def stop_requested(self, backfill_id: str) -> bool:
        """Whether a person asked this backfill to stop."""
        query = sa.select(t.backfills.c.status).where(t.backfills.c.backfill_id == backfill_id)
        with self._engine.connect() as connection:
            return connection.execute(query).scalar() == Status.STOPPING


def _row(backfill: Backfill) -> dict[str, Any]:
    spec = backfill.spec
    return {
        "backfill_id": backfill.backfill_id,
        "kind": spec.kind,
        "crms": list(spec.crms),
        "since": spec.since,
        "until": spec.until,
        "dry_run": spec.dry_run,
        "status": backfill.status,
        "created_at": backfill.created_at,
        "started_at": backfill.started_at,
        "finished_at": backfill.finished_at,
        "holder": backfill.holder,
        "heartbeat_at": backfill.heartbeat_at,
        "progress": _progress_json(backfill),
        "message": backfill.message,
        "checkpoints": _checkpoints_json(backfill),
    }


def _update_held(connection: Connection, backfill: Backfill, values: Mapping[str, Any]) -> bool:
    """Set `values` on the backfill's row while its runner holds it; False once another
    runner took it over."""
    done = connection.execute(
        t.backfills.update()
        .where(
            t.backfills.c.backfill_id == backfill.backfill_id,
            t.backfills.c.holder == backfill.holder,
        )
        .values(**values)
    )
    return bool(done.rowcount)


def _progress_values(backfill: Backfill) -> dict[str, Any]:
    return {"progress": _progress_json(backfill), "checkpoints": _checkpoints_json(backfill)}


def _progress_json(backfill: Backfill) -> dict[str, Any]:
    return {crm: progress.as_dict() for crm, progress in backfill.progress.items()}


def _checkpoints_json(backfill: Backfill) -> dict[str, str]:
    """Where each CRM's counts reach: in a column of its own, not in `progress`, whose figures
    the release before 0020 reads as arguments (an unknown one fails it)."""
    return {
        crm: progress.checkpoint
        for crm, progress in backfill.progress.items()
        if progress.checkpoint is not None
    }


def _backfill(row: RowMapping) -> Backfill:
    checkpoints = row["checkpoints"] or {}
    spec = BackfillSpec(tuple(row["crms"]), row["since"], row["until"], row["dry_run"], row["kind"])
    return Backfill(
        backfill_id=row["backfill_id"],
        spec=spec,
        status=row["status"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        holder=row["holder"],
        heartbeat_at=row["heartbeat_at"],
        progress={
            crm: CrmProgress(**figures, checkpoint=checkpoints.get(crm))
            for crm, figures in row["progress"].items()
        },
        message=row["message"],
    )


# ------------------------------------------------------------------------------ progress


class Progress(Protocol):
    """Where a runner reports how far it got: a bar on a terminal, log lines otherwise."""

    def start(self, crm: str, *, total: int | None, done: int) -> None: ...

    def advance(self, crm: str, records: int) -> None: ...

    def finish(self, crm: str) -> None: ...


class _NoProgress:
    def start(self, crm: str, *, total: int | None, done: int) -> None:
        pass

    def advance(self, crm: str, records: int) -> None:
        pass

    def finish(self, crm: str) -> None:
        pass


# ------------------------------------------------------------------------------ the runner


@dataclass
class _Chunk:
    pulled: int = 0
    kept: int = 0
    exhausted: bool = False
    checkpoint: str | None = None  # its last page's


class BackfillRunner:
    """Runs one backfill at a time: claims it, keeps its heartbeat and its progress, and
    holds the sync lease a chunk at a time; the pulling, saving and settling are the engine's
    (`SyncEngine.pull_full`, `settle_full_pull`), as a sync's are."""

    def __init__(
        self,
        engine: SyncEngine,
        *,
        queue: BackfillQueue,
        leases: Leases | None = None,
        lease_ttl: timedelta = timedelta(seconds=60),
        lease_wait: timedelta = timedelta(minutes=10),
        stalled_after: timedelta | None = None,
        chunk_records: int = 2_000,
        yield_seconds: float = 1.0,
        progress: Progress | None = None,
        should_stop: StopCheck = lambda: False,
        on_summary: Callable[[RunSummary], None] | None = None,
        on_take_over: Callable[[str], None] | None = None,
    ) -> None:
        """`on_summary` receives the run's summary when it ends (the service's metrics);
        `on_take_over` the holder whose expired sync lease a chunk took (a killed sync,
        whose run is then marked abandoned: `Runtime.take_over`)."""
        self._on_summary = on_summary
        self._on_take_over = on_take_over
        self._engine = engine
        self._queue = queue
        self._leases = leases
        self._lease_ttl = lease_ttl
        self._lease_wait = lease_wait
        self._stalled_after = stalled_after
        self._chunk_records = chunk_records
        self._yield_seconds = yield_seconds
        self._progress: Progress = progress or _NoProgress()
        self._should_stop = should_stop

    def run(self, backfill: Backfill) -> Backfill:
        """Run (or go on with) a claimed backfill until it is done, paused or stopped."""
        spec = backfill.spec
        missing = [crm for crm in spec.crms if crm not in self._engine.crms]
        if missing:
            return self._queue.finish(
                backfill,
                status=Status.FAILED,
                message=f"not connected to {', '.join(missing)} (enabled in the config?)",
            )
        state = _State(backfill)
        outer = self._should_stop
        self._should_stop = _StopAsked(outer, self._queue, backfill.backfill_id)
        try:
            with (
                self._heartbeat(state),
                self._engine.recording(spec.kind, write=not spec.dry_run) as summary,
            ):
                for crm in spec.crms:
                    if not state.backfill.of(crm).done:
                        self._pull_crm(crm, state, summary)
                self._complete(state, summary)
            if self._on_summary is not None:
                self._on_summary(summary)
            if summary.interrupted:
                # Any replica may go on with it: paused work is claimed like queued work.
                return self._queue.finish(
                    state.backfill, status=Status.PAUSED, message="stopped; resumes from here"
                )
        except QuotaReserveReachedError as reserve:
            log.warning("backfill %s paused: %s", backfill.backfill_id, reserve)
            return self._queue.finish(
                state.backfill, status=Status.PAUSED, message=f"{reserve.crm}: {reserve}"
            )
        except _LeaseUnavailableError as busy:
            return self._queue.finish(state.backfill, status=Status.PAUSED, message=str(busy))
        except (RunError, sa.exc.SQLAlchemyError) as problem:
            # Failed at run time (a CRM, the database): one line, as on the command line.
            if isinstance(problem, sa.exc.SQLAlchemyError):
                problem = store_error(problem, self._queue.database_url)
            log.error("backfill %s failed: %s", backfill.backfill_id, problem)
            return self._queue.finish(state.backfill, status=Status.FAILED, message=str(problem))
        except Exception as problem:  # a bug: its traceback helps whoever fixes it
            log.exception("backfill %s failed", backfill.backfill_id)
            return self._queue.finish(
                state.backfill, status=Status.FAILED, message=f"{type(problem).__name__}: {problem}"
            )
        finally:
            self._should_stop = outer
        return self._queue.finish(state.backfill, status=Status.SUCCEEDED)

    def _pull_crm(self, crm: str, state: _State, summary: RunSummary) -> None:
        progress = state.backfill.of(crm)
        if progress.total is None:
            total = self._engine.count_all(crm)
            if total is not None:
                progress = replace(progress, total=total)
                state.update(crm, progress)
                self._beat(state)
        self._progress.start(crm, total=progress.total, done=progress.pulled)
        stream = state.backfill.stream
        resume_from = progress.checkpoint
        if resume_from is None and progress.pulled:
            # Counted before revision 0020, which kept no checkpoint with the counts.
            resume_from = self._engine.full_pull_checkpoint(crm, stream)
        full = FullPull(crm, stream, resume_from, state.backfill.spec.keeps)
        pages = self._engine.pull_full(full, summary)
        while True:
            with self._writer_lease():
                chunk = self._chunk(crm, pages)
                state.add(
                    crm,
                    pulled=chunk.pulled,
                    kept=chunk.kept,
                    done=chunk.exhausted,
                    checkpoint=chunk.checkpoint,
                )
                self._beat(state)
            if chunk.exhausted:
                self._progress.finish(crm)
                return
            if self._should_stop():
                raise RunInterruptedError
            # Room for a scheduled sync to take the lease before the next chunk.
            time.sleep(self._yield_seconds)

    def _chunk(self, crm: str, pages: Iterator[PulledPage]) -> _Chunk:
        """The next `chunk_records` (or so) of a full pull's pages, each saved as taken."""
        chunk = _Chunk()
        while chunk.pulled < self._chunk_records:
            page = next(pages, None)
            if page is None:
                chunk.exhausted = True
                break
            chunk.pulled += page.listed
            chunk.kept += page.kept
            chunk.checkpoint = page.checkpoint
            self._progress.advance(crm, page.listed)
            if page.checkpoint is None:  # HubSpot's last page has no next one
                chunk.exhausted = True
                break
            if self._should_stop():
                break
        return chunk

    def _complete(self, state: _State, summary: RunSummary) -> None:
        """After every CRM's pull: the sweep's repairs, then one settle of all it pulled."""
        backfill = state.backfill
        unlisted_since = None
        if backfill.spec.kind == SWEEP:
            listed_since = backfill.started_at or backfill.created_at
            unlisted_since = dict.fromkeys(backfill.spec.crms, listed_since)
        with self._writer_lease():
            before = _written(summary)
            try:
                self._engine.settle_full_pull(
                    summary,
                    stream=backfill.stream,
                    unlisted_since=unlisted_since,
                    should_stop=self._should_stop,
                    on_written=_counted_with_each_batch(state, summary, before),
                )
            finally:
                state.backfill = state.with_written(_written_since(summary, before))
                self._beat(state)

    @contextmanager
    def _heartbeat(self, state: _State) -> Iterator[None]:
        """Say the backfill is alive every third of the lease's time, also through a long
        chunk or settle, so nobody takes it over while it runs."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self._lease_ttl.total_seconds() / 3):
                try:
                    # Alive, no more: the progress is the runner's to save (`_beat`). A beat
                    # of this thread holds the backfill as it was when the beat began; written
                    # after the runner's next save (its retries while the database is locked),
                    # it put the older counts and checkpoints back: a CRM's finished pull read
                    # as unfinished, and a runner killed then left its successor to pull again.
                    self._queue.heartbeat(state.backfill, progress=False)
                except sa.exc.SQLAlchemyError:
                    log.warning("backfill %s: heartbeat failed", state.backfill.backfill_id)

        beating = threading.Thread(target=beat, name="backfill-heartbeat", daemon=True)
        beating.start()
        try:
            yield
        finally:
            done.set()
            beating.join(timeout=self._lease_ttl.total_seconds())

    @contextmanager
    def _writer_lease(self) -> Iterator[None]:
        if self._leases is None:
            yield
            return
        with self._leases.hold(
            SYNC_LEASE,
            ttl=self._lease_ttl,
            wait=self._lease_wait,
            stop=self._should_stop,
            stalled_after=self._stalled_after,
        ) as lease:
            if lease is None:
                if self._should_stop():
                    raise RunInterruptedError
                raise _LeaseUnavailableError(
                    f"the sync lease stayed taken for {self._lease_wait}: will go on later"
                )
            if lease.took_over_from is not None and self._on_take_over is not None:
                self._on_take_over(lease.took_over_from)
            # While it is held, every stop check is progress, and a lost lease says stop.
            outer = self._should_stop
            self._should_stop = lease.stop_check(outer)
            try:
                yield
            finally:
                self._should_stop = outer

    def _beat(self, state: _State) -> None:
        if not self._queue.heartbeat(state.backfill):
            raise RuntimeError("another runner took this backfill over")


class _LeaseUnavailableError(RunPausedError):
    pass


class _StopAsked:
    """The runner's stop check: its caller's, or a person's request (`request_stop`), read
    from the store at most every STOP_POLL_SECONDS (the check runs at every page)."""

    def __init__(self, outer: StopCheck, queue: BackfillQueue, backfill_id: str) -> None:
        self._outer = outer
        self._queue = queue
        self._backfill_id = backfill_id
        self._asked = False
        self._read_at = -STOP_POLL_SECONDS

    def __call__(self) -> bool:
        if self._outer():
            return True
        if not self._asked and time.monotonic() - self._read_at >= STOP_POLL_SECONDS:
            self._read_at = time.monotonic()
            try:
                self._asked = self._queue.stop_requested(self._backfill_id)
            except sa.exc.SQLAlchemyError:
                log.warning("backfill %s: could not read a stop request", self._backfill_id)
        return self._asked


class _State:
    """The backfill as it progresses: counts per CRM, kept in step with its row."""

    def __init__(self, backfill: Backfill) -> None:
        self.backfill = backfill

    def update(self, crm: str, progress: CrmProgress) -> None:
        self.backfill = replace(self.backfill, progress={**self.backfill.progress, crm: progress})

    def add(
        self,
        crm: str,
        *,
        pulled: int = 0,
        kept: int = 0,
        done: bool = False,
        checkpoint: str | None = None,
    ) -> None:
        """Count more records; `checkpoint`: where the pull stands once they are saved."""
        now = self.backfill.of(crm)
        self.update(
            crm,
            replace(
                now,
                pulled=now.pulled + pulled,
                kept=now.kept + kept,
                done=now.done or done,
                checkpoint=now.checkpoint if checkpoint is None else checkpoint,
            ),
        )

    def with_written(self, written: Mapping[str, int]) -> Backfill:
        """The backfill with `written` more records written, by CRM; the state left as is."""
        progress = dict(self.backfill.progress)
        for crm, records in written.items():
            now = progress.get(crm, CrmProgress())
            progress[crm] = replace(now, written=now.written + records)
        return replace(self.backfill, progress=progress)


def _counted_with_each_batch(
    state: _State, summary: RunSummary, before: Mapping[str, int]
) -> WrittenHook:
    """The settle's written counts saved with each write batch's record (`WrittenHook`), not
    only once the settle ends: a runner killed amid it leaves the batches it recorded counted,
    and its successor, which writes only what the CRMs do not hold yet, counts the rest. The
    runner's own counts stay as they are until the settle ends (`_complete`), so a batch whose
    transaction is tried again is counted once: the saved counts are the settle's so far,
    `summary`'s since `before`, and the batch's. A runner that lost the backfill to another
    saves none, as its beats do not."""

    def save(connection: Connection, crm: str, records: int) -> None:
        written = _written_since(summary, before)
        written[crm] += records
        _update_held(connection, state.backfill, _progress_values(state.with_written(written)))

    return save


def _written_since(summary: RunSummary, before: Mapping[str, int]) -> Counter[str]:
    """The records written per CRM since `summary` counted `before`."""
    written = Counter(_written(summary))
    written.subtract(before)
    return written


def _written(summary: RunSummary) -> dict[str, int]:
    return {crm: counts.written for crm, counts in summary.crms.items()}


def crms_of(choice: str, enabled: Sequence[str]) -> tuple[str, ...]:
    """`--crm hubspot|salesforce|all` as the CRMs to pull, in a fixed order."""
    return tuple(enabled) if choice == "all" else (choice,)


class BackfillSpecError(UsageError):
    """Arguments that ask for no backfill leadsync can run (the message says why)."""


def spec_for(
    choice: str,
    enabled: Sequence[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    dry_run: bool = False,
    sweep: bool = False,
    option: Callable[[str], str] = lambda name: name,
) -> BackfillSpec:
    """The backfill that `leadsync backfill` (and the console's form) asks for: `choice` is
    hubspot, salesforce or all. `option` names an argument in the asker's words (`--until`).
    Raises BackfillSpecError."""
    if choice != "all" and choice not in enabled:
        raise BackfillSpecError(f"{choice} is not enabled in the config")
    if sweep and (since or until or choice != "all"):
        raise BackfillSpecError(f"{option('sweep')} covers every CRM and every record: no window")
    if since and until and until <= since:
        raise BackfillSpecError(f"{option('until')} must be after {option('since')}")
    spec = BackfillSpec(crms_of(choice, enabled), since, until, dry_run)
    return replace(spec, kind=SWEEP) if sweep else spec


def format_backfills(backfills: Sequence[Backfill]) -> str:
    """Backfills as a table for a terminal: status, window, per CRM pulled of total, written."""
    if not backfills:
        return "no backfills yet"
    lines = [f"{'id':<13}{'kind':<15}{'status':<12}{'window':<25}progress"]
    for backfill in backfills:
        spec = backfill.spec
        window = _window(spec)
        parts = []
        for crm in spec.crms:
            figures = backfill.of(crm)
            total = "?" if figures.total is None else f"{figures.total:,}"
            mark = " done" if figures.done else ""
            parts.append(f"{crm} {figures.pulled:,}/{total}, {figures.written:,} written{mark}")
        kind = spec.kind + (" (dry)" if spec.dry_run else "")
        head = f"{backfill.backfill_id:<13}{kind:<15}{backfill.status:<12}{window:<25}"
        lines.append(head + "; ".join(parts))
        if backfill.message:
            lines.append(f"{'':<13}{backfill.message}")
    return "\n".join(lines)


def _window(spec: BackfillSpec) -> str:
    """The records a backfill keeps, by when they were modified, as a person reads it."""
    since = spec.since.date().isoformat() if spec.since else None
    until = spec.until.date().isoformat() if spec.until else None
    if since and until:
        return f"{since} → {until}"
    if since:
        return f"since {since}"
    if until:
        return f"before {until}"
    return "all records"
