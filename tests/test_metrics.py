"""/metrics and /healthz: counters of what this replica did, gauges read from the store at each
scrape, health from the age of the last good sync; over real HTTP for the server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from leadsync.connectors.quota import Quota
from leadsync.metrics import ServiceMetrics
from leadsync.serving import HttpServer, service_app
from leadsync.sync import tables as t
from leadsync.sync.quarantine_ledger import Quarantined
from leadsync.sync.run_summary import CrmCounts, RunSummary
from leadsync.sync.sla.clocks import Clock, ClockChanges
from leadsync.sync.store import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WITHIN = timedelta(minutes=15)

Figures = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class HeldClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class FakeConnector:
    """What the metrics ask of a connector: the quota it last saw."""

    crm: str
    remaining: int | None

    def quota(self) -> Quota:
        return Quota(self.crm, daily_limit=250_000, daily_remaining=self.remaining)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'leadsync.db'}") as opened:
        yield opened


@pytest.fixture
def clock() -> HeldClock:
    return HeldClock()


@pytest.fixture
def metrics(store: Store, clock: HeldClock) -> ServiceMetrics:
    return ServiceMetrics(store, {}, healthy_within=WITHIN, started_at=T0, clock=clock)


def finished_run(
    store: Store, finished_at: datetime, *, status: str = "succeeded", kind: str = "sync"
) -> None:
    run_id = store.run_log.start(kind, started_at=finished_at - timedelta(minutes=1))
    store.run_log.finish(run_id, status=status, summary={}, finished_at=finished_at)


def figures(metrics: ServiceMetrics) -> Figures:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    found: Figures = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Figures, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


# ------------------------------------------------------------------------------------ health


def test_health_is_starting_and_healthy_before_any_sync_while_young(
    metrics: ServiceMetrics, clock: HeldClock
) -> None:
    clock.now = T0 + WITHIN - timedelta(seconds=1)
    health = metrics.health()
    assert (health.healthy, health.status) == (True, "starting")
    assert (health.last_good_sync, health.age_seconds) == (None, None)


def test_health_is_stale_when_no_sync_succeeded_within_healthy_within(
    metrics: ServiceMetrics, store: Store, clock: HeldClock
) -> None:
    finished_run(store, T0 + timedelta(minutes=1), status="failed")
    clock.now = T0 + WITHIN + timedelta(seconds=1)
    health = metrics.health()
    assert (health.healthy, health.status, health.last_good_sync) == (False, "stale", None)


def test_health_is_ok_after_a_succeeded_sync_finished_recently(
    metrics: ServiceMetrics, store: Store, clock: HeldClock
) -> None:
    finished = T0 + timedelta(hours=2)
    finished_run(store, finished)
    clock.now = finished + timedelta(minutes=4)
    health = metrics.health()
    assert (health.healthy, health.status) == (True, "ok")
    assert health.last_good_sync == finished
    assert health.age_seconds == pytest.approx(240)


def test_health_is_stale_when_the_last_succeeded_sync_is_old(
    metrics: ServiceMetrics, store: Store, clock: HeldClock
) -> None:
    finished_run(store, T0 + timedelta(minutes=1))
    clock.now = T0 + timedelta(minutes=1) + WITHIN + timedelta(seconds=1)
    health = metrics.health()
    assert (health.healthy, health.status) == (False, "stale")
    assert health.age_seconds == pytest.approx(WITHIN.total_seconds() + 1)


def test_a_young_replica_on_its_first_sync_is_starting_even_after_an_old_sync(
    metrics: ServiceMetrics, store: Store, clock: HeldClock
) -> None:
    finished_run(store, T0 - timedelta(hours=2))  # before this replica started, at T0
    clock.now = T0 + timedelta(minutes=1)
    health = metrics.health()
    assert (health.healthy, health.status) == (True, "starting")


def test_only_a_succeeded_sync_counts_as_a_good_sync(
    metrics: ServiceMetrics, store: Store, clock: HeldClock
) -> None:
    finished_run(store, T0 + timedelta(minutes=1))
    clock.now = T0 + timedelta(hours=1)
    # Recent, but not a succeeded sync: a failed sync, a plan, an interrupted sync.
    finished_run(store, clock.now - timedelta(minutes=1), status="failed")
    finished_run(store, clock.now - timedelta(minutes=1), kind="plan")
    finished_run(store, clock.now - timedelta(minutes=1), status="interrupted")
    health = metrics.health()
    assert (health.healthy, health.status) == (False, "stale")
    assert health.last_good_sync == T0 + timedelta(minutes=1)


# ---------------------------------------------------------------------------------- counters


def test_observe_run_counts_pulled_written_and_errors_by_crm_and_category(
    metrics: ServiceMetrics,
) -> None:
    metrics.observe_run(
        RunSummary(
            "r1",
            True,
            T0,
            kind="sync",
            crms={
                "hubspot": CrmCounts(pulled=10, written=4, failed=1, deferred=2, quarantined=3),
                "salesforce": CrmCounts(pulled=7, written=5, failed=2),
            },
        )
    )
    metrics.observe_run(
        RunSummary("r2", True, T0, kind="sync", crms={"hubspot": CrmCounts(pulled=1, written=1)})
    )
    found = figures(metrics)
    assert value(found, "leadsync_records_pulled_total", crm="hubspot") == 11
    assert value(found, "leadsync_records_pulled_total", crm="salesforce") == 7
    assert value(found, "leadsync_records_written_total", crm="hubspot") == 5
    assert value(found, "leadsync_records_written_total", crm="salesforce") == 5
    assert value(found, "leadsync_errors_total", category="write_failed") == 3
    assert value(found, "leadsync_errors_total", category="write_deferred") == 2
    assert value(found, "leadsync_errors_total", category="quarantined") == 3


# ------------------------------------------------------------------------------------ gauges


def test_gauges_read_from_the_store_and_connectors_at_scrape(
    store: Store, clock: HeldClock
) -> None:
    connectors = {
        "hubspot": FakeConnector("hubspot", 1234),
        "salesforce": FakeConnector("salesforce", None),  # has not said yet
    }
    metrics = ServiceMetrics(store, connectors, healthy_within=WITHIN, started_at=T0, clock=clock)
    clock.now = T0 + timedelta(hours=3)
    found = figures(metrics)
    assert value(found, "leadsync_up") == 1
    assert value(found, "leadsync_quarantine_records") == 0
    assert value(found, "leadsync_sla_open_breaches") == 0
    assert not [key for key in found if key[0] == "leadsync_last_good_sync_age_seconds"]

    run = "r1"
    store.save_page(
        "hubspot",
        [],
        quarantined=[
            Quarantined("hubspot", record, "bad email", {"email": "x"}, run, T0)
            for record in ("101", "102")
        ],
        position=None,
        run_id=run,
    )
    store.save_decisions(
        clocks=[
            ClockChanges(
                opened=tuple(
                    Clock(f"c-{lead}", "mql_acceptance", lead, T0, due, "America/New_York")
                    for lead, due in (
                        ("L1", clock.now - timedelta(hours=1)),
                        ("L2", clock.now - timedelta(minutes=1)),
                        ("L3", clock.now + timedelta(hours=1)),  # not due yet
                    )
                )
            )
        ],
        run_id=run,
    )
    finished_run(store, clock.now - timedelta(seconds=90))
    connectors["hubspot"].remaining = 999

    found = figures(metrics)
    assert value(found, "leadsync_quarantine_records") == 2
    assert value(found, "leadsync_sla_open_breaches") == 2
    assert value(found, "leadsync_last_good_sync_age_seconds") == pytest.approx(90)
    assert value(found, "leadsync_api_quota_remaining", crm="hubspot") == 999
    assert [key for key in found if key[0] == "leadsync_api_quota_remaining"] == [
        ("leadsync_api_quota_remaining", (("crm", "hubspot"),))
    ]


def test_a_scrape_says_up_0_when_the_store_does_not_answer(
    metrics: ServiceMetrics, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    metrics.observe_run(
        RunSummary("r1", True, T0, kind="sync", crms={"hubspot": CrmCounts(pulled=3)})
    )
    t.metadata.drop_all(store.engine)
    found = figures(metrics)
    assert value(found, "leadsync_up") == 0
    # Said in one line naming the cause, as every store failure is: no traceback, which
    # every scrape (each 15 s, say) would repeat in the service's log.
    (said,) = [r for r in caplog.records if "the store did not answer" in r.getMessage()]
    assert said.exc_info is None
    assert "database sqlite:///" in said.getMessage()
    assert "no such table" in said.getMessage()
    assert not [key for key in found if key[0] == "leadsync_quarantine_records"]
    # What this replica counted is still reported.
    assert value(found, "leadsync_records_pulled_total", crm="hubspot") == 3


# ------------------------------------------------------------------------------- over HTTP


@dataclass
class Served:
    store: Store
    clock: HeldClock
    server: HttpServer

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"


def serve(store: Store, clock: HeldClock) -> HttpServer:
    metrics = ServiceMetrics(store, {}, healthy_within=WITHIN, started_at=T0, clock=clock)
    running = HttpServer(service_app(metrics), host="127.0.0.1", port=0)
    running.start()
    return running


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the module."""
    clock = HeldClock()
    with Store(f"sqlite:///{tmp_path_factory.mktemp('served') / 'leadsync.db'}") as store:
        running = serve(store, clock)
        try:
            yield Served(store, clock, running)
        finally:
            running.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # no proxy between the test and loopback
        yield session


def test_metrics_are_served_as_prometheus_text(served: Served, http: requests.Session) -> None:
    answer = http.get(served.url("/metrics"), timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert {"leadsync_up", "leadsync_quarantine_records", "leadsync_sla_open_breaches"} <= names


def test_an_unknown_path_is_404_and_says_what_is_served(
    served: Served, http: requests.Session
) -> None:
    answer = http.get(served.url("/nope"), timeout=5)
    assert answer.status_code == 404
    assert answer.text == "not found: try /metrics or /healthz\n"
    # Without a [console], nothing is served under /console/.
    assert http.get(served.url("/console/"), timeout=5).status_code == 404


def test_healthz_answers_200_starting_then_503_stale_then_200_after_a_good_sync(
    served: Served, http: requests.Session
) -> None:
    served.clock.now = T0 + timedelta(minutes=1)
    starting = http.get(served.url("/healthz"), timeout=5)
    assert starting.status_code == 200
    assert starting.headers["Content-Type"] == "application/json"
    assert starting.json() == {"status": "starting", "last_good_sync": None, "age_seconds": None}

    served.clock.now = T0 + timedelta(hours=1)
    stale = http.get(served.url("/healthz"), timeout=5)
    assert stale.status_code == 503
    assert stale.json() == {"status": "stale", "last_good_sync": None, "age_seconds": None}

    finished = served.clock.now - timedelta(minutes=2)
    finished_run(served.store, finished)
    ok = http.get(served.url("/healthz?verbose=1"), timeout=5)  # a query string is ignored
    assert ok.status_code == 200
    assert ok.json() == {
        "status": "ok",
        "last_good_sync": finished.isoformat(),
        "age_seconds": 120.0,
    }


def test_healthz_answers_503_when_the_store_does_not_answer(
    store: Store, clock: HeldClock, http: requests.Session
) -> None:
    running = serve(store, clock)
    try:
        t.metadata.drop_all(store.engine)
        answer = http.get(f"http://127.0.0.1:{running.port}/healthz", timeout=5)
    finally:
        running.stop()
    assert answer.status_code == 503
    assert answer.headers["Content-Type"] == "application/json"
