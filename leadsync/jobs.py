"""`leadsync run`: the scheduled jobs and the service loop (APScheduler 3.11).

    sync        every [schedules] sync_every_minutes: one incremental sync cycle
    sla         every sla_every_minutes: the SLA check (breaches, events, webhook)
    sweep       daily at reconcile_at: queues the reconciliation sweep (a full backfill that
                also repairs drift), which the backfills job then runs
    backfills   every backfill_poll_seconds: runs queued (or paused, or abandoned) backfills

Each job runs on one replica at a time: it takes its lease first (sync and backfill chunks
share the `sync` lease, so their writes never interleave), renews it while it works, and
skips its turn when another replica holds it past `lease_wait_seconds`. Within a replica a job
never overlaps itself, and missed turns coalesce into one. A replica that dies mid-job stops
renewing; once its lease expires another takes the job over and the run goes on from its last
commit.

Each job runs the mapping and lead definition `leadsync apply` accepted last (leadsync.edits),
read again from the store when another version is applied; saving a file changes nothing.
Each sync and backfill describes the CRMs first (the preflight): while the mapping does not
fit a CRM (a leadsync_* property not created yet, a Salesforce field no admin has created),
the job logs every problem with its fix and writes nothing; the service keeps running and
checks again at the next turn, so `leadsync setup` or an admin's fix is picked up without a
restart. A run in which every write to a CRM failed is logged as an error with its causes.
SIGTERM or SIGINT: no new job starts, running ones finish the batch in hand and commit, and the
service exits 0, after `shutdown_seconds` at the latest.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

import sqlalchemy as sa
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from starlette.types import ASGIApp

from leadsync.config import Config
from leadsync.connectors.base import utc
from leadsync.connectors.errors import ConnectorError
from leadsync.console.accounts import Accounts
from leadsync.console.web import ConsoleContext
from leadsync.edits import Version, accept_first, edit_status, load_version, running_number
from leadsync.errors import LeadsyncError, RunError, StoreError
from leadsync.logs import new_run_id, run_context
from leadsync.mapping.definition import LeadDefinition
from leadsync.mapping.fields import FieldMap
from leadsync.mapping.sla_rules import time_zone
from leadsync.metrics import ServiceMetrics
from leadsync.problems import ConfigError
from leadsync.runtime import Runtime, open_runtime
from leadsync.serving import HttpServer, service_app
from leadsync.sync.backfill import SWEEP, BackfillSpec, Status
from leadsync.sync.database import store_error
from leadsync.sync.engine import StopCheck
from leadsync.sync.leases import SYNC_LEASE, Leases, forget_gone_replicas, replica_lease
from leadsync.sync.preflight import PreflightError
from leadsync.sync.run_summary import RunSummary
from leadsync.sync.sla.clocks import SlaRules
from leadsync.sync.sla.response import METRIC_WINDOW, handed_off_within
from leadsync.sync.store import Store

__all__ = ["DefinitionFiles", "FilesState", "Service", "ServiceStartError"]

log = logging.getLogger("leadsync.service")

# What a job's work counts for the one summary line each job run logs (records pulled and
# written, clocks breached, ...), filled in as the work goes.
JobCounts = Counter[str]
Work = Callable[[Runtime, StopCheck, JobCounts], bool]

SLA_LEASE = "sla"
BACKFILL_LEASE = "backfills"
SWEEP_LEASE = "sweep"
# How long the Status page still shows a replica that died without withdrawing its heartbeat.
GONE_KEPT = timedelta(days=1)
# How often the main thread wakes to run a signal handler another thread received.
SIGNAL_CHECK_SECONDS = 0.5


@dataclass(frozen=True)
class _Loaded:
    field_map: FieldMap
    definition: LeadDefinition
    version: Version


class DefinitionFiles:
    """The mapping and lead definition the service runs: the version `leadsync apply` last
    accepted (leadsync.edits), read from the store when another is applied, on any replica.
    Saving a file changes nothing here. On a store with no version yet, the files on disk are
    accepted as they are at the first read (ConfigError when they do not load)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._engine: sa.Engine | None = None
        self._good: _Loaded | None = None
        self._refused: int | None = None
        self._lock = threading.Lock()

    def bind(self, store: Store) -> tuple[FieldMap, LeadDefinition]:
        """Read the versions from `store` from now on; the version running."""
        self._engine = store.engine
        return self.current()

    def current(self) -> tuple[FieldMap, LeadDefinition]:
        """The last version accepted; ConfigError when none could ever be loaded."""
        engine = self._bound()
        with self._lock:
            number = running_number(engine)
            good = self._good
            if good is not None and number in (good.version.number, self._refused):
                return good.field_map, good.definition
            version = accept_first(self._config, engine)
            try:
                field_map, definition = load_version(version, self._config)
            except ConfigError as mistakes:
                # An accepted version this leadsync cannot load (a newer one applied it).
                if good is None:
                    raise
                self._refused = version.number
                for problem in mistakes.problems:
                    log.error("applied version %s refused: %s", version.short, problem)
                return good.field_map, good.definition
            if good is not None:
                log.info(
                    "running the mapping and lead definition applied at %s by %s "
                    "(version %s, model %s)",
                    version.accepted_at.isoformat(),
                    version.accepted_by,
                    version.short,
                    definition.model_version,
                )
            self._good = _Loaded(field_map, definition, version)
            return field_map, definition

    def state(self) -> FilesState:
        """The version running, and how the files on disk compare with it."""
        status = edit_status(self._config, self._bound())
        with self._lock:
            good = self._good
        if good is None:
            return FilesState(None, changed=True, refused=bool(status.problems))
        return FilesState(
            good.definition.model_version,
            changed=status.disk_digest != good.version.digest,
            refused=bool(status.problems),
            version=good.version.short,
        )

    def _bound(self) -> sa.Engine:
        if self._engine is None:
            raise RuntimeError("DefinitionFiles.bind(store) first")
        return self._engine


@dataclass(frozen=True)
class FilesState:
    """The mapping and lead definition: the model version running, whether the files on disk
    differ from it (`changed`: `leadsync apply` would accept them), and whether they have
    mistakes (`refused`: `leadsync check` lists them)."""

    model_version: str | None
    changed: bool
    refused: bool
    version: str | None = None  # the short digest of the version running


class Service:
    """One replica of the service. `run()` blocks until a signal (or `stop()`)."""

    def __init__(self, config: Config, *, clock: Callable[[], datetime] | None = None) -> None:
        self._config = config
        self._clock = clock or (lambda: datetime.now(UTC))
        # The leases' own clock (PostgreSQL's there) unless one was given: a heartbeat is set
        # and judged by the clock that judges the jobs' leases, whatever this host's says.
        self._lease_clock = clock
        self._stopping = threading.Event()
        if threading.current_thread() is threading.main_thread():
            # A stop asked for while starting (connecting takes seconds) is honoured too.
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)
        self._files = DefinitionFiles(config)
        # The problems the preflight last stopped a job on: said in full once, not every turn.
        self._misfit: str | None = None
        # Nor one with a [console] nobody can sign in to (exit 2, naming the user).
        accounts = Accounts.from_config(config) if config.model.console is not None else None
        settings = config.model.service
        self._ttl = timedelta(seconds=settings.lease_seconds)
        self._wait = timedelta(seconds=settings.lease_wait_seconds)
        self._stalled_after = timedelta(seconds=settings.stalled_after_seconds)
        # It runs the version accepted last; on a new store, the files on disk, which must load.
        self._opened = open_runtime(config, files=self._files.bind)
        self._runtime: Runtime = self._opened.__enter__()
        self.metrics = ServiceMetrics(
            self._runtime.store,
            self._runtime.connectors,
            healthy_within=timedelta(minutes=settings.healthy_within_minutes),
            clock=self._clock,
            no_response=self._no_response,
        )
        self._server: HttpServer | None = None
        if settings.metrics_port:
            try:
                self._server = HttpServer(
                    service_app(self.metrics, console=self._console(accounts)),
                    host=settings.metrics_host,
                    port=settings.metrics_port,
                )
            except OSError as problem:
                self._opened.__exit__(None, None, None)
                where = f"{settings.metrics_host}:{settings.metrics_port}"
                raise ServiceStartError(
                    f"cannot serve /metrics on {where}: {problem.strerror} "
                    "(another replica on this host? give each its own [service] metrics_port)"
                ) from None
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    @property
    def holder(self) -> str:
        return self._runtime.holder

    def _console(self, accounts: Accounts | None) -> ASGIApp | None:
        """The web console, on this service's runtime, health and files; None without one."""
        settings = self._config.model.console
        if settings is None or accounts is None:
            return None
        from leadsync.console.app import console_app

        return console_app(
            ConsoleContext(
                settings,
                accounts,
                runtime=self._current,
                replica=self.holder,
                health=self.metrics.health,
                files=self._files.state,
                clock=self._clock,
                lease_clock=self._lease_clock,
            )
        )

    def _no_response(self, now: datetime) -> dict[str, Any] | None:
        """The metrics' no-response figures, under the lead definition running now."""
        _, definition = self._files.current()
        handoff = definition.handoff
        return handed_off_within(
            self._runtime.store.handoffs,
            SlaRules.of(definition),
            handoff.stage if handoff is not None else None,
            now=now,
            since=now - METRIC_WINDOW,
        )

    def _current(self) -> Runtime:
        """This replica's runtime with the mapping and lead definition running now."""
        field_map, definition = self._files.current()
        return replace(self._runtime, field_map=field_map, definition=definition)

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        schedules = self._config.model.schedules
        now = datetime.now(UTC)
        self._add("sync", self.sync, IntervalTrigger(minutes=schedules.sync_every_minutes), now)
        self._add("sla", self.check_slas, IntervalTrigger(minutes=schedules.sla_every_minutes), now)
        self._add(
            "backfills",
            self.run_backfills,
            IntervalTrigger(seconds=schedules.backfill_poll_seconds),
            now,
        )
        hour, minute = (int(part) for part in schedules.reconcile_at.split(":"))
        zone = time_zone(schedules.time_zone) if schedules.time_zone else None
        self._add("sweep", self.queue_sweep, CronTrigger(hour=hour, minute=minute, timezone=zone))
        if self._server is not None:
            self._server.start()
        log.info(
            "leadsync service %s running: sync every %g min, SLA every %g min, sweep at %s%s",
            self.holder,
            schedules.sync_every_minutes,
            schedules.sla_every_minutes,
            schedules.reconcile_at,
            f", metrics{' and the console' if self._config.model.console else ''} on "
            f":{self._server.port}"
            if self._server
            else "",
        )
        self._beat()
        beating = threading.Thread(target=self._keep_beating, name="heartbeat", daemon=True)
        beating.start()
        self._scheduler.start()
        # Timed, not one untimed wait: the kernel may hand SIGTERM to any thread, and Python
        # runs the handler in the main thread only once that thread runs again.
        while not self._stopping.wait(SIGNAL_CHECK_SECONDS):
            pass
        beating.join()  # no beat after the withdrawal
        return self._shut_down()

    def _beat(self) -> None:
        """Say this replica runs, for `ttl` more (the console's Status lists it between its
        jobs too); forget the replicas gone for a day."""
        try:
            heartbeat = Leases(self._runtime.store.engine, self.holder, clock=self._lease_clock)
            heartbeat.acquire(replica_lease(self.holder), self._ttl)
            forget_gone_replicas(self._runtime.store.engine, before=self._clock() - GONE_KEPT)
        except sa.exc.SQLAlchemyError as problem:
            # The database is away: the jobs say so; the next beat tries again.
            log.warning("heartbeat failed: %s", problem.__class__.__name__)

    def _keep_beating(self) -> None:
        while not self._stopping.wait(self._ttl.total_seconds() / 3):
            try:
                self._beat()
            except Exception:  # the heartbeat outlives any one beat's bug, as the jobs do
                log.exception("heartbeat failed")

    def _add(
        self,
        name: str,
        work: Callable[[], None],
        trigger: IntervalTrigger | CronTrigger,
        first: datetime | None = None,
    ) -> None:
        self._scheduler.add_job(work, trigger, id=name, name=name, next_run_time=first)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("%s: finishing the batch in hand, then stopping", signal.Signals(signum).name)
        self._stopping.set()

    def _shut_down(self) -> int:
        bound = self._config.model.service.shutdown_seconds
        # No new jobs; the running ones see `_stopping` at their next batch boundary.
        self._scheduler.pause()
        waiting = threading.Thread(
            target=self._scheduler.shutdown, kwargs={"wait": True}, daemon=True
        )
        waiting.start()
        waiting.join(bound)
        if self._server is not None:
            self._server.stop()
        self._withdraw()
        if waiting.is_alive():
            log.warning("jobs still running after %gs: exiting; the next run redoes them", bound)
            logging.shutdown()
            # The jobs' threads would keep the interpreter alive: the bound is the promise.
            # What they did not commit, the next run does again.
            os._exit(0)
        log.info("stopped cleanly")
        self.close()
        return 0

    def _withdraw(self) -> None:
        """This replica no longer runs: its heartbeat goes."""
        try:
            Leases(self._runtime.store.engine, self.holder).release(replica_lease(self.holder))
        except sa.exc.SQLAlchemyError as problem:
            log.warning("heartbeat not withdrawn: %s", problem.__class__.__name__)

    def close(self) -> None:
        """Let go of the store and the CRM connections (the end of `run()`)."""
        self._opened.__exit__(None, None, None)

    # ------------------------------------------------------------------ the jobs

    def sync(self) -> None:
        def work(runtime: Runtime, should_stop: StopCheck, counts: JobCounts) -> bool:
            summary = runtime.engine(role="sync", clock=self._clock).run(should_stop=should_stop)
            self._observe(summary, counts)
            return not summary.interrupted

        self._job("sync", SYNC_LEASE, work)

    def check_slas(self) -> None:
        def work(runtime: Runtime, should_stop: StopCheck, counts: JobCounts) -> bool:
            monitor = runtime.sla_monitor()
            if monitor is not None:
                with run_context(new_run_id(), job="sla"):
                    result = monitor.check(self._clock(), should_stop=should_stop)
                counts.update(
                    clocks_breached=result.breached,
                    events=len(result.announced),
                    webhook_delivered=result.delivered,
                    webhook_failed=result.failed,
                )
            return True

        self._job("sla", SLA_LEASE, work)

    def run_backfills(self) -> None:
        def work(runtime: Runtime, should_stop: StopCheck, counts: JobCounts) -> bool:
            queue = runtime.backfill_queue()
            while not should_stop():
                claimed = queue.claim(None, runtime.holder, stale_after=self._ttl)
                if claimed is None:
                    return True
                log.info("taking up %s %s", claimed.spec.kind, claimed.backfill_id)
                done = runtime.run_backfill(
                    claimed.backfill_id,
                    should_stop=should_stop,
                    clock=self._clock,
                    on_summary=lambda summary: self._observe(summary, counts),
                )
                counts["backfills"] += 1
                log.info("%s %s: %s", done.spec.kind, done.backfill_id, done.status)
                if done.status != Status.SUCCEEDED:
                    return not should_stop()  # paused or failed: the next poll tries again
            return False

        self._job("backfills", BACKFILL_LEASE, work)

    def queue_sweep(self) -> None:
        def work(runtime: Runtime, should_stop: StopCheck, counts: JobCounts) -> bool:
            queue = runtime.backfill_queue()
            spec = BackfillSpec(tuple(runtime.enabled_crms()), kind=SWEEP)
            counts["queued"] = 0
            if queue.unfinished_like(spec) is None:
                queued = queue.create(spec)
                counts["queued"] = 1
                log.info("queued the reconciliation sweep %s", queued.backfill_id)
            return True

        self._job("sweep", SWEEP_LEASE, work)

    def _report_misfit(self, name: str, misfit: PreflightError) -> None:
        """The mapping does not fit a CRM: every problem with its fix the first time, a line
        a turn after that; the next turn checks again, so a fix needs no restart."""
        count = len(misfit.problems)
        if str(misfit) == self._misfit:
            log.warning(
                "%s: still stopped before writing: the mapping does not fit the CRMs (%d "
                "problem(s), logged before)",
                name,
                count,
            )
            return
        self._misfit = str(misfit)
        for problem in misfit.problems:
            log.error("%s stopped before writing: %s", name, problem)
        log.error(
            "%s: %d problem(s) between the mapping and the CRMs; nothing is written until they "
            "are fixed, and every turn checks again",
            name,
            count,
        )

    def _observe(self, summary: RunSummary, counts: JobCounts) -> None:
        self.metrics.observe_run(summary)
        counts.update(
            runs=1,
            pulled=sum(crm.pulled for crm in summary.crms.values()),
            written=sum(crm.written for crm in summary.crms.values()),
            failed=sum(crm.failed for crm in summary.crms.values()),
            leads_changed=summary.leads_changed,
        )
        failed = summary.every_write_failed()
        for problem in failed.values():
            log.error("run %s: %s", summary.run_id, problem)
        if failed:  # the store records the run as failed: the job is one too
            counts["runs_failed"] += 1

    def _log_skip(self, name: str, lease_name: str) -> None:
        """Another replica ran the job: its log has the line. A command (`sync --once`, a
        backfill from the command line) logs on a terminal: this log says the turn went."""
        if self._stopping.is_set():
            return  # the service is stopping: it stopped waiting, nobody skipped its turn
        leases = self._runtime.leases(name)
        held = leases.info(lease_name)
        if held is not None:
            beat = leases.info(replica_lease(held.holder.split("/", 1)[0]))
            judge = Leases(self._runtime.store.engine, self.holder, clock=self._lease_clock)
            if beat is None or utc(beat.expires_at) <= judge.now():
                log.info(
                    "job %s skipped: %s, not a running replica of the service, holds the %s lease "
                    "until %s UTC; the next turn tries again",
                    name,
                    held.holder,
                    lease_name,
                    f"{utc(held.expires_at):%Y-%m-%d %H:%M:%S}",
                )
                return
        log.debug("%s: the lease is held by another replica; skipping", name)

    def _job(self, name: str, lease_name: str, work: Work) -> None:
        """Run `work` under the job's lease with the current files, timed and its outcome
        counted (`work` says False when it stopped early), then log one summary line; errors
        are logged, never raised into the scheduler."""
        if self._stopping.is_set():
            return
        started = time.monotonic()
        outcome = "done"
        counts: JobCounts = Counter()
        try:
            with self._runtime.leases(name).hold(
                lease_name,
                ttl=self._ttl,
                wait=self._wait,
                stop=self._stopping,
                stalled_after=self._stalled_after,
            ) as lease:
                if lease is None:
                    outcome = "skipped"
                    self._log_skip(name, lease_name)
                    return
                if lease.took_over_from is not None:
                    self._runtime.take_over(name, lease.took_over_from, now=self._clock())
                if not work(self._current(), lease.stop_check(self._stopping.is_set), counts):
                    outcome = "interrupted"
                elif counts.get("runs_failed"):
                    outcome = "failed"  # every write to a CRM failed: logged by `_observe`
                if name == "sync":
                    self._misfit = None
        except PreflightError as misfit:
            outcome = "failed"
            self.metrics.errors.labels("config").inc()
            self._report_misfit(name, misfit)
        except (LeadsyncError, sa.exc.SQLAlchemyError) as problem:
            outcome = "failed"
            self.metrics.errors.labels(_category(problem)).inc()
            if isinstance(problem, sa.exc.SQLAlchemyError):
                problem = store_error(problem, self._config.database_url)
            log.error("%s failed: %s", name, problem)
        except Exception as problem:  # the service outlives any one job's bug
            outcome = "failed"
            self.metrics.errors.labels("internal").inc()
            log.exception("%s failed: %s", name, problem)
        finally:
            seconds = time.monotonic() - started
            self.metrics.jobs.labels(name, outcome).inc()
            self.metrics.job_seconds.labels(name).observe(seconds)
            if outcome != "skipped":  # another replica ran it: its log has the line
                _log_job(name, outcome, seconds, counts)


def _log_job(name: str, outcome: str, seconds: float, counts: JobCounts) -> None:
    """The one line each job run logs: what it did, how long it took, how it ended. Counts
    only, never a record's contents; in JSON logs each figure is a field of its own."""
    figures = ", ".join(f"{key.replace('_', ' ')} {n}" for key, n in counts.items())
    log.log(
        logging.WARNING if outcome == "failed" else logging.INFO,
        "job %s %s in %.1fs%s",
        name,
        outcome,
        seconds,
        f": {figures}" if figures else "",
        extra={"job": name, "outcome": outcome, "duration_seconds": round(seconds, 3), **counts},
    )


class ServiceStartError(RunError):
    """The service cannot start (its metrics port is taken, say): exit 1, with the reason."""


def _category(problem: Exception) -> str:
    if isinstance(problem, ConnectorError):
        return f"{problem.crm}_{problem.category}"
    if isinstance(problem, ConfigError):
        return "config"
    if isinstance(problem, StoreError | sa.exc.SQLAlchemyError):
        return "database"
    return "run"
