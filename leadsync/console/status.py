"""The Status page's figures: replicas and their leases, the last runs with their outcome and
counts, each CRM's API quota against its reserve, health, and the files running.

A replica is known by its heartbeat (`replica_lease`), renewed between jobs too, and by the
job leases it holds; a process holding a lease without a heartbeat is a command run by hand.

Read from the store (every replica shows the same), and from this replica's connectors for
the quota when they have talked to the CRMs since it started (else the last run's figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadsync.runtime import Runtime
from leadsync.sync.leases import REPLICA_PREFIX, LeaseInfo, all_leases
from leadsync.sync.run_log import RunRow
from leadsync.sync.runs import RunView, list_runs

__all__ = ["LeaseView", "QuotaView", "ReplicaView", "RunView", "StatusView", "service_status"]

RUNS_SHOWN = 15


@dataclass(frozen=True, slots=True)
class LeaseView:
    job: str
    replica: str
    role: str
    acquired_at: datetime
    expires_at: datetime
    live: bool


@dataclass(frozen=True, slots=True)
class ReplicaView:
    name: str
    # From its heartbeat: when it started, and until when it said it runs (None: a command
    # holding a job's lease, with no heartbeat).
    since: datetime | None
    seen_until: datetime | None
    running: bool
    jobs: list[str]

    @property
    def state(self) -> str:
        if self.seen_until is None:
            return "a command, not a service"
        return "running" if self.running else "gone: no heartbeat since"


@dataclass(frozen=True, slots=True)
class QuotaView:
    crm: str
    limit: int | None
    remaining: int | None
    reserve: int
    source: str  # "live" (this replica's connector) or "last run"

    @property
    def used_share(self) -> float | None:
        if self.limit is None or self.remaining is None or not self.limit:
            return None
        return (self.limit - self.remaining) / self.limit

    @property
    def state(self) -> str:
        if self.remaining is None:
            return "not reported yet"
        if self.remaining <= self.reserve:
            return "at the reserve: no new work starts"
        return "ok"


@dataclass(frozen=True, slots=True)
class StatusView:
    now: datetime
    replicas: list[ReplicaView]
    leases: list[LeaseView]
    runs: list[RunView]
    quotas: list[QuotaView]
    quarantine: int

    @property
    def running(self) -> list[str]:
        """The replicas running now."""
        return [replica.name for replica in self.replicas if replica.running]


def service_status(
    runtime: Runtime, *, now: datetime, leases_now: datetime | None = None, runs: int = RUNS_SHOWN
) -> StatusView:
    """The Status page as of `now`; leases and heartbeats live as of `leases_now` (the clock
    they are judged by, `ConsoleContext.leases_now`), `now` when not given."""
    store = runtime.store
    recent = list_runs(store, limit=runs)
    found = all_leases(store.engine)
    judged = leases_now or now
    heartbeats = [info for info in found if info.name.startswith(REPLICA_PREFIX)]
    leases = [_lease(info, judged) for info in found if info not in heartbeats]
    return StatusView(
        now,
        _replicas(heartbeats, leases, judged),
        leases,
        recent,
        _quotas(runtime, [view.run for view in recent]),
        store.quarantine.size(),
    )


def _replicas(
    heartbeats: list[LeaseInfo], leases: list[LeaseView], now: datetime
) -> list[ReplicaView]:
    jobs: dict[str, list[str]] = {}
    for lease in leases:
        if lease.live:
            jobs.setdefault(lease.replica, []).append(lease.job)
    views = [
        ReplicaView(
            info.holder,
            info.acquired_at,
            info.expires_at,
            now < info.expires_at,
            jobs.pop(info.holder, []),
        )
        for info in heartbeats
    ]
    views += [ReplicaView(name, None, None, True, held) for name, held in jobs.items()]
    # Running first, by name; then the gone, the latest gone first.
    return sorted(
        views,
        key=lambda view: (
            not view.running,
            view.name if view.running else "",
            -(view.seen_until.timestamp() if view.seen_until and not view.running else 0),
        ),
    )


def _lease(info: LeaseInfo, now: datetime) -> LeaseView:
    # A holder is "<replica>/<role>": the role is the job (or a backfill) holding it.
    replica, _, role = info.holder.partition("/")
    return LeaseView(
        info.name, replica, role, info.acquired_at, info.expires_at, now < info.expires_at
    )


def _quotas(runtime: Runtime, recent: Sequence[RunRow]) -> list[QuotaView]:
    reported: Mapping[str, Mapping[str, Any]] = next(
        (run.summary["api_quota"] for run in recent if run.summary.get("api_quota")), {}
    )
    views = []
    for crm in runtime.enabled_crms():
        reserve = int(getattr(runtime.config.model, crm).daily_reserve)
        connector = runtime.connectors.get(crm)
        live = connector.quota() if connector is not None else None
        if live is not None and live.daily_remaining is not None:
            views.append(QuotaView(crm, live.daily_limit, live.daily_remaining, reserve, "live"))
            continue
        figures = reported.get(crm, {})
        views.append(
            QuotaView(
                crm, figures.get("daily_limit"), figures.get("daily_remaining"), reserve, "last run"
            )
        )
    return views
