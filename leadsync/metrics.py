"""What `leadsync run` tells its operators: /metrics (Prometheus text) and /healthz (JSON).

Counters count what this replica did (records pulled and written, errors by category, jobs
run); gauges are read from the store and the connectors when scraped, so every replica
reports the same quarantine, open breaches and age of the last good run:

    leadsync_records_pulled_total{crm}          leadsync_records_written_total{crm}
    leadsync_errors_total{category}             leadsync_jobs_total{job,outcome}
    leadsync_job_seconds{job} (histogram)       leadsync_quarantine_records
    leadsync_sla_open_breaches                  leadsync_api_quota_remaining{crm}
    leadsync_last_good_sync_age_seconds         leadsync_up
    leadsync_handoff_no_response_leads{owner}   leadsync_handoff_response_due_leads{owner}
    leadsync_handoff_no_response_ratio

The handoff figures count the leads handed off in the last week (response.METRIC_WINDOW):
those whose N working hours to a first response have passed (due), and those of them nobody
worked in time; owners by id (a name is personal data, and a label outlives the person).

/healthz answers 200 while a sync has succeeded within `healthy_within` (or the replica, started
less than that ago, is still on its first), else 503 (also when the store does not answer),
with the figures in a JSON body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leadsync.connectors.quota import Quota
from leadsync.errors import StoreError
from leadsync.sync.database import store_error
from leadsync.sync.run_summary import RunSummary
from leadsync.sync.store import Store

__all__ = ["Health", "ServiceMetrics", "metrics_routes"]

log = logging.getLogger("leadsync.service")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _HasQuota(Protocol):
    def quota(self) -> Quota: ...


@dataclass(frozen=True, slots=True)
class Health:
    healthy: bool
    status: str  # ok | starting | stale
    last_good_sync: datetime | None
    age_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "last_good_sync": None
            if self.last_good_sync is None
            else self.last_good_sync.isoformat(),
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 1),
        }


class ServiceMetrics:
    """The service's figures, in a registry of their own."""

    def __init__(
        self,
        store: Store,
        connectors: Mapping[str, _HasQuota],
        *,
        healthy_within: timedelta,
        started_at: datetime | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        no_response: Callable[[datetime], Mapping[str, Any] | None] | None = None,
    ) -> None:
        """`no_response(now)` gives the handoff's no-response figures (see
        `leadsync.sync.sla.response`) of the leads handed off in the last week."""
        self.registry = CollectorRegistry()
        self._no_response = no_response
        self._store = store
        self._connectors = connectors
        self._healthy_within = healthy_within
        self._clock = clock
        self._started_at = started_at or clock()
        self.pulled = Counter(
            "leadsync_records_pulled", "CRM records pulled", ["crm"], registry=self.registry
        )
        self.written = Counter(
            "leadsync_records_written", "CRM records written", ["crm"], registry=self.registry
        )
        self.errors = Counter(
            "leadsync_errors",
            "Errors by category: write_failed, write_deferred, quarantined, and each kind of "
            "job failure (the connector error's category, database, config, internal)",
            ["category"],
            registry=self.registry,
        )
        self.jobs = Counter(
            "leadsync_jobs",
            "Jobs run by this replica, by outcome (done, skipped, interrupted, failed)",
            ["job", "outcome"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "leadsync_job_seconds",
            "How long jobs took",
            ["job"],
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.registry.register(_StoreFigures(self))

    def observe_run(self, summary: RunSummary) -> None:
        """Count what a sync or backfill run did."""
        for crm, counts in summary.crms.items():
            self.pulled.labels(crm).inc(counts.pulled)
            self.written.labels(crm).inc(counts.written)
            self.errors.labels("write_failed").inc(counts.failed)
            self.errors.labels("write_deferred").inc(counts.deferred)
            self.errors.labels("quarantined").inc(counts.quarantined)

    def health(self) -> Health:
        now = self._clock()
        last = self._store.run_log.last_finished("sync")
        finished = last.finished_at if last is not None else None
        age = None if finished is None else (now - finished).total_seconds()
        if age is not None and age <= self._healthy_within.total_seconds():
            return Health(True, "ok", finished, age)
        # A replica just started is on its first sync (after a long outage, a long one).
        young = now - self._started_at < self._healthy_within
        return Health(young, "starting" if young else "stale", finished, age)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreFigures(Collector):
    """Gauges read at each scrape: the same on every replica."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        metrics = self._metrics
        store = metrics._store
        now = metrics._clock()
        up = GaugeMetricFamily("leadsync_up", "1 while the store answers")
        try:
            quarantine = store.quarantine.size()
            breaches = store.sla.open_breaches(now)
            health = metrics.health()
            silent = metrics._no_response(now) if metrics._no_response else None
        except (SQLAlchemyError, StoreError) as problem:
            # One line, as every store failure: each scrape would repeat a traceback.
            failure = store_error(problem, store.engine.url)
            log.warning("metrics: the store did not answer: %s", failure)
            up.add_metric([], 0)
            yield up
            return
        except Exception:  # a scrape must answer even when the database does not
            log.warning("metrics: the store did not answer", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "leadsync_quarantine_records", "Records in quarantine", value=quarantine
        )
        yield GaugeMetricFamily(
            "leadsync_sla_open_breaches", "SLA clocks running past due", value=breaches
        )
        if health.age_seconds is not None:
            yield GaugeMetricFamily(
                "leadsync_last_good_sync_age_seconds",
                "Seconds since a sync last succeeded",
                value=health.age_seconds,
            )
        quota = GaugeMetricFamily(
            "leadsync_api_quota_remaining",
            "API calls left today, as each CRM last said",
            labels=["crm"],
        )
        for crm, connector in sorted(metrics._connectors.items()):
            remaining = connector.quota().daily_remaining
            if remaining is not None:
                quota.add_metric([crm], remaining)
        yield quota
        if silent is not None:
            yield from _no_response_families(silent)


def _no_response_families(figures: Mapping[str, Any]) -> Iterator[GaugeMetricFamily]:
    """The handoff's no-response figures as gauges: counts per owner, and the overall share."""
    silent = GaugeMetricFamily(
        "leadsync_handoff_no_response_leads",
        "Leads handed off in the last week that nobody worked within their working hours",
        labels=["owner"],
    )
    due = GaugeMetricFamily(
        "leadsync_handoff_response_due_leads",
        "Leads handed off in the last week whose working hours to a first response are over",
        labels=["owner"],
    )
    for row in figures["by_owner"]:
        silent.add_metric([row["owner"]], row["no_response"])
        due.add_metric([row["owner"]], row["no_response"] + row["responded"])
    yield silent
    yield due
    if figures["share"] is not None:
        yield GaugeMetricFamily(
            "leadsync_handoff_no_response_ratio",
            "Share of the due handed-off leads of the last week nobody worked in time",
            value=figures["share"],
        )


def metrics_routes(metrics: ServiceMetrics) -> list[Route]:
    """/metrics and /healthz, for the service's HTTP listener (`leadsync.serving`)."""

    def scrape(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    def healthz(request: Request) -> Response:
        try:
            health = metrics.health()
        except SQLAlchemyError as problem:  # the store is away: unhealthy
            log.warning("healthz: the store did not answer: %s", type(problem).__name__)
            return JSONResponse({"status": "store unavailable"}, status_code=503)
        return JSONResponse(health.as_dict(), status_code=200 if health.healthy else 503)

    # Plain functions: Starlette runs them in its thread pool, off the event loop, since they
    # read the store.
    return [Route("/metrics", scrape), Route("/healthz", healthz)]
