"""Everything a run needs, built from the config: the store, the connectors, the mapping and
the lead definition. Commands and the service open one, use it, and close it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from leadsync.config import Config
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.mapping.definition import LeadDefinition, load_definition
from leadsync.mapping.fields import FieldMap, load_mapping
from leadsync.progress import LogProgress, progress_for
from leadsync.sync.backfill import (
    RUNNER_ROLE,
    Backfill,
    BackfillBusyError,
    BackfillQueue,
    BackfillRunner,
    Status,
)
from leadsync.sync.database import store_errors
from leadsync.sync.engine import RunInterruptedError, StopCheck, SyncEngine
from leadsync.sync.explain import Explanation, explain
from leadsync.sync.leases import (
    SYNC_LEASE,
    LeaseHeldError,
    LeaseLostError,
    Leases,
    replica_name,
)
from leadsync.sync.preflight import PreflightError
from leadsync.sync.run_summary import RunSummary
from leadsync.sync.sla.monitor import SlaMonitor, monitor_for
from leadsync.sync.sla.webhook import WebhookSender
from leadsync.sync.store import Store

log = logging.getLogger("leadsync.service")

# Each CRM's connector class, for what it knows without a connection (`Runtime.moves_back`).
CONNECTOR_TYPES: dict[str, type[HubSpotConnector] | type[SalesforceConnector]] = {
    "hubspot": HubSpotConnector,
    "salesforce": SalesforceConnector,
}


@dataclass
class Runtime:
    config: Config
    store: Store
    field_map: FieldMap
    definition: LeadDefinition
    connectors: dict[str, HubSpotConnector | SalesforceConnector] = field(default_factory=dict)
    # The SLA webhook, when the config names one (built once: it keeps its connections).
    webhook: WebhookSender | None = None
    # Who this process is, as a lease holder and backfill runner.
    holder: str = field(default_factory=replica_name)

    def sla_monitor(self) -> SlaMonitor | None:
        """The SLA check of this definition, posting to the webhook the config names."""
        return monitor_for(
            self.store,
            self.definition,
            webhook=self.webhook,
            max_attempts=self.config.model.sla.webhook_max_attempts,
        )

    def engine(
        self,
        *,
        role: str | None = None,
        clock: Callable[[], datetime] | None = None,
        full_sla_check: bool = False,
    ) -> SyncEngine:
        """A sync engine over this runtime's store, connectors, mapping and definition;
        `full_sla_check` for a run with no service around it (see SyncEngine). Its runs are
        recorded as `role`'s, the role whose lease they run under (`leases`): a take-over of
        that lease abandons them, not this process's other runs. Without one (a what-if, the
        demo: no lease) a run names this process alone, as an older release's did."""
        return SyncEngine(
            self.store,
            self.connectors,
            self.field_map,
            self.definition,
            sla_monitor=self.sla_monitor(),
            holder=self.holder if role is None else self.holder_as(role),
            full_sla_check=full_sla_check,
            clock=clock,
            moves_back=self.moves_back,
        )

    def moves_back(self, crm: str, name: str, held: Any, wanted: Any) -> bool:
        """Whether writing `wanted` over `held` in `crm`'s field `name` moves a stage back: as
        the CRM's connector says, by the vendor's default order when none is connected."""
        connector = self.connectors.get(crm)
        if connector is not None:
            return connector.moves_back(name, held, wanted)
        kind = CONNECTOR_TYPES.get(crm)
        return kind is not None and kind.default_moves_back(name, held, wanted)

    def explain(self, key: str, *, now: datetime | None = None) -> list[Explanation]:
        """What `leadsync explain KEY` shows of the leads an email or CRM id names."""
        monitor = self.sla_monitor()
        rules = monitor.rules if monitor is not None else None
        return explain(
            self.store,
            self.field_map,
            key,
            rules=rules,
            now=now,
            moves_back=self.moves_back,
        )

    def enabled_crms(self) -> list[str]:
        """The CRMs the config enables, in a fixed order."""
        model = self.config.model
        return [crm for crm in ("hubspot", "salesforce") if getattr(model, crm).enabled]

    def backfill_queue(self) -> BackfillQueue:
        """The backfills, a running one whose heartbeat is older than the lease's time to
        live shown as abandoned."""
        ttl = timedelta(seconds=self.config.model.service.lease_seconds)
        return BackfillQueue(self.store.engine, stale_after=ttl)

    def stop_backfill(self, backfill_id: str) -> Backfill | None:
        """Stop a backfill (a running one after the batch in hand: `request_stop`); None when
        there is no such backfill."""
        ttl = timedelta(seconds=self.config.model.service.lease_seconds)
        return self.backfill_queue().request_stop(backfill_id, stale_after=ttl)

    def holder_as(self, role: str) -> str:
        """This process in one of its roles (a job, a backfill, a command): "<replica>/<role>",
        the holder of the role's leases and of the runs it records."""
        return f"{self.holder}/{role}"

    def leases(self, role: str) -> Leases:
        """Leases held in this process's name for one of its roles (a job, a backfill): two
        roles of one process never hold one lease together."""
        return Leases(self.store.engine, self.holder_as(role))

    @contextmanager
    def sync_lease(
        self, role: str, *, stop: StopCheck | None = None, asks_stop_check: bool = True
    ) -> Iterator[StopCheck]:
        """Hold the `sync` lease while the block runs: a command that writes to the CRMs or
        pulls into the store (`sync --once`, `plan`, `quarantine retry`, `revert`) never runs
        beside a sync or backfill of another process, which would match the same people
        twice. Waits `service.lease_wait_seconds` for it (saying so, and whom for), then
        LeaseHeldError naming the holder; RunInterruptedError when `stop` says stop while it
        waits. Yields the stop check to pass on: it says stop once `stop` does or the lease
        is lost; a lost lease is then LeaseLostError, naming who took it. A command whose
        work never asks that check (`asks_stop_check=False`: revert, retry) shows no
        progress, so its lease is renewed for as long as it runs, never given up as stalled."""
        service = self.config.model.service
        leases = self.leases(role)

        def say_whom_it_waits_for() -> None:
            held = leases.info(SYNC_LEASE)
            log.warning(
                "waiting up to %g s for the sync lease, which %s holds: another leadsync "
                "process is syncing",
                service.lease_wait_seconds,
                held.holder if held is not None else "another process",
            )

        with leases.hold(
            SYNC_LEASE,
            ttl=timedelta(seconds=service.lease_seconds),
            wait=timedelta(seconds=service.lease_wait_seconds),
            stop=stop,
            stalled_after=(
                timedelta(seconds=service.stalled_after_seconds) if asks_stop_check else None
            ),
            on_wait=say_whom_it_waits_for,
        ) as lease:
            if lease is None:
                if stop is not None and stop():
                    raise RunInterruptedError(
                        "stopped while waiting for the sync lease: nothing was done"
                    )
                held = leases.info(SYNC_LEASE)
                holder = held.holder if held is not None else "another process"
                until = f" until {held.expires_at:%Y-%m-%d %H:%M:%S} UTC" if held else ""
                raise LeaseHeldError(
                    f"another leadsync process is syncing ({holder} holds the sync lease"
                    f"{until}; waited {service.lease_wait_seconds:g} s): nothing was done; "
                    "run this again once it is done"
                )
            if lease.took_over_from is not None:
                self.take_over(role, lease.took_over_from)
            yield lease.stop_check(stop or (lambda: False))
            if lease.lost.is_set():
                # Another process took the lease (this one stalled, or could not renew it
                # in time): the work stopped early and may have run beside it. Not a success.
                held = leases.info(SYNC_LEASE)
                taker = held.holder if held is not None else "another process"
                raise LeaseLostError(
                    f"the sync lease was taken over by {taker} while this {role} ran: it "
                    "stopped at a batch boundary, what it did is committed; the next run goes "
                    "on from there"
                )

    def take_over(self, name: str, holder: str, *, now: datetime | None = None) -> None:
        """The job `name` took the lease of `holder`, whose lease expired: the runs it left
        running are marked abandoned (what they committed stays; this run goes on from it).
        A lease holder is "<replica>/<role>", and so is a run's: the replica's runs under its
        other roles (a backfill while its sync job stalled) go on."""
        if holder.split("/", 1)[0] == self.holder:
            return  # our own other role, alive: nothing of ours is abandoned
        abandoned = self.store.run_log.abandon(holder, finished_at=now or datetime.now(UTC))
        log.warning(
            "%s: took the job over from %s, whose lease expired (%d run(s) it left running "
            "marked abandoned); going on from its last commit",
            name,
            holder,
            abandoned,
        )

    def run_backfill(
        self,
        backfill_id: str,
        *,
        should_stop: StopCheck,
        progress_stream: TextIO | None = None,
        clock: Callable[[], datetime] | None = None,
        on_summary: Callable[[RunSummary], None] | None = None,
    ) -> Backfill:
        """Claim backfill `backfill_id` and run it to its end (or until `should_stop`);
        BackfillBusyError when it is done already or another process is running it."""
        settings = self.config.model
        queue = self.backfill_queue()
        ttl = timedelta(seconds=settings.service.lease_seconds)
        claimed = queue.claim(backfill_id, self.holder, stale_after=ttl)
        if claimed is None:
            current = queue.get(backfill_id)
            if current is not None and current.status == Status.SUCCEEDED:
                raise BackfillBusyError(f"backfill {backfill_id} has succeeded already")
            holder = current.holder if current is not None else "?"
            raise BackfillBusyError(
                f"backfill {backfill_id} is being run by {holder} (its heartbeat is fresh)"
            )
        engine = self.engine(role=RUNNER_ROLE, clock=clock)
        try:
            # Before the first write: a mapping that does not fit stops the backfill (exit 2),
            # and the service tries the failed backfill again later (the fix may be made).
            engine.preflight()
        except PreflightError as misfit:
            queue.finish(claimed, status=Status.FAILED, message=str(misfit))
            raise
        every = settings.backfill.progress_log_seconds
        progress = (
            progress_for(progress_stream, every_seconds=every)
            if progress_stream is not None
            else LogProgress(every_seconds=every)
        )
        runner = BackfillRunner(
            engine,
            queue=queue,
            leases=self.leases(RUNNER_ROLE),
            lease_ttl=ttl,
            lease_wait=timedelta(seconds=max(settings.service.lease_wait_seconds, 1.0) * 20),
            stalled_after=timedelta(seconds=settings.service.stalled_after_seconds),
            chunk_records=settings.backfill.chunk_records,
            yield_seconds=settings.backfill.yield_seconds,
            progress=progress,
            should_stop=should_stop,
            on_summary=on_summary,
            on_take_over=lambda holder: self.take_over(RUNNER_ROLE, holder),
        )
        return runner.run(claimed)

    def close(self) -> None:
        if self.webhook is not None:
            self.webhook.close()
        for connector in self.connectors.values():
            connector.close()
        self.store.close()


@contextmanager
def open_runtime(
    config: Config,
    *,
    connect: bool = True,
    files: Callable[[Store], tuple[FieldMap, LeadDefinition]] | None = None,
) -> Iterator[Runtime]:
    """Load the mapping and definition (ConfigError on mistakes), open the store, and connect
    to each enabled CRM unless `connect` is False (for commands that only read the store).
    The files on disk, unless `files` says which to run from the store (the service runs the
    version `leadsync apply` accepted: leadsync.edits)."""
    if files is None:
        field_map = load_mapping(config.mapping_path)
        definition = load_definition(config.definition_path, fields=field_map.canonical_types())
    # A database that fails, at the start or mid-run, ends the command as one StoreError line.
    with store_errors(config.database_url):
        store = Store(config.database_url)
        if files is not None:
            try:
                field_map, definition = files(store)
            except BaseException:
                store.close()
                raise
        runtime = Runtime(config, store, field_map, definition)
        runtime.webhook = _webhook(config)
        try:
            if connect:
                if config.model.hubspot.enabled:
                    runtime.connectors["hubspot"] = HubSpotConnector(config.hubspot_connection())
                if config.model.salesforce.enabled:
                    runtime.connectors["salesforce"] = SalesforceConnector(
                        config.salesforce_connection()
                    )
            yield runtime
        finally:
            runtime.close()


def _webhook(config: Config) -> WebhookSender | None:
    webhook = config.sla_webhook()
    if webhook is None:
        return None
    url, secret = webhook
    return WebhookSender(url, secret, timeout_seconds=config.model.sla.webhook_timeout_seconds)
