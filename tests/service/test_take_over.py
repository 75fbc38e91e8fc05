"""A job or command that takes over an expired lease marks abandoned the runs its holder left
running: the runs of that one role of a replica ("<replica>/<role>"), not the replica's runs
under its other roles, which go on (a replica whose sync job stalled is still backfilling).
A run an older release recorded names its replica alone: any of its leases taken over
abandons it, as then."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadsync.config import Config, load_config
from leadsync.jobs import SLA_LEASE, Service
from leadsync.runtime import Runtime, open_runtime
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sync.backfill import BackfillQueue, BackfillSpec, Status
from leadsync.sync.leases import SYNC_LEASE, Leases
from tests.support import set_up_sandbox_config

TTL = timedelta(minutes=1)


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    # Over one page of HubSpot contacts (100): a backfill of a page a chunk has two chunks.
    open_limits = HubSpotSettings(ten_second_limit=100_000, searches_per_second=1_000)
    return SandboxSettings(port=0, seed=23, leads=260, hubspot=open_limits)


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path) -> Config:
    config: Config = set_up_sandbox_config(sandbox, tmp_path)
    assert config.path is not None
    config.path.write_text(
        config.path.read_text()
        + "\n[service]\nmetrics_port = 0\n\n[backfill]\nchunk_records = 1\nyield_seconds = 0\n"
    )
    return load_config(config.path)


def _expired(runtime: Runtime, holder: str, lease: str) -> None:
    """`holder` took `lease` an hour ago and has not renewed it since: it ran out."""
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    assert Leases(runtime.store.engine, holder, clock=lambda: an_hour_ago).acquire(lease, TTL)


def _once_the_sync_lease_is_free(runtime: Runtime, then: Callable[[], None]) -> Callable[[], bool]:
    """A backfill's stop check that calls `then` once, when the sync lease is free (between
    two chunks), and never says stop."""
    done: list[bool] = []

    def check() -> bool:
        if not done and Leases(runtime.store.engine, "anyone").info(SYNC_LEASE) is None:
            done.append(True)
            then()
        return False

    return check


@pytest.mark.parametrize("taken", ["sync", "sla"])
def test_a_take_over_of_one_roles_lease_abandons_that_roles_run_not_the_backfill_running(
    config: Config, taken: str
) -> None:
    with open_runtime(config) as replica, open_runtime(config, connect=False) as other:
        queue = BackfillQueue(replica.store.engine)
        asked = queue.create(BackfillSpec(("hubspot",)))
        # The replica's sync job stalled mid-run: its run says running.
        stalled = replica.store.run_log.start(
            "sync", started_at=datetime.now(UTC), holder=f"{replica.holder}/sync"
        )
        seen: dict[str, dict[str, str]] = {}

        def take_over() -> None:
            # Between two chunks of the replica's backfill, the leases of its stalled sync
            # job and of its SLA job have run out; another replica's job takes one of them
            # over, as `Service._job` and `sync_lease` do.
            _expired(replica, f"{replica.holder}/sync", SYNC_LEASE)
            _expired(replica, f"{replica.holder}/sla", SLA_LEASE)
            if taken == "sync":
                with other.sync_lease("sync"):
                    pass
            else:
                with other.leases("sla").hold(SLA_LEASE, ttl=TTL, wait=TTL) as lease:
                    assert lease is not None
                    assert lease.took_over_from == f"{replica.holder}/sla"
                    other.take_over("sla", lease.took_over_from)
            seen["statuses"] = {run.kind: run.status for run in replica.store.run_log.latest()}

        done = replica.run_backfill(
            asked.backfill_id, should_stop=_once_the_sync_lease_is_free(replica, take_over)
        )
        finished = {run.run_id: run.status for run in replica.store.run_log.latest()}

    # The backfill went on, its run running all along, and ended as it would have anyway.
    assert seen["statuses"] == {
        "sync": "abandoned" if taken == "sync" else "running",
        "backfill": "running",
    }
    assert done.status == Status.SUCCEEDED
    assert finished.pop(stalled) == ("abandoned" if taken == "sync" else "running")
    assert list(finished.values()) == ["succeeded"]


def test_a_take_over_abandons_the_run_an_older_release_recorded_by_its_replica_alone(
    config: Config,
) -> None:
    older = "oldhost:99:fedcba"  # an older release's runs name no role
    with open_runtime(config, connect=False) as runtime:
        left_running = runtime.store.run_log.start(
            "sync", started_at=datetime.now(UTC), holder=older
        )
        _expired(runtime, f"{older}/sla", SLA_LEASE)
        with runtime.leases("sla").hold(SLA_LEASE, ttl=TTL, wait=TTL) as lease:
            assert lease is not None
            assert lease.took_over_from == f"{older}/sla"
            runtime.take_over("sla", lease.took_over_from)
        run = runtime.store.run_log.get(left_running)
    assert run is not None
    assert run.status == "abandoned"


@pytest.fixture
def service(config: Config) -> Iterator[Service]:
    """A replica in this process, its jobs called by the test (no scheduler, no port)."""
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    replica = Service(config)
    try:
        yield replica
    finally:
        replica.close()
        for signum, handler in handlers.items():  # the Service took them for its own stop
            signal.signal(signum, handler)


def test_the_service_records_each_run_as_the_role_whose_lease_it_runs_under(
    config: Config, service: Service
) -> None:
    service.sync()
    service.queue_sweep()
    service.run_backfills()
    with open_runtime(config, connect=False) as runtime:
        holders = {run.kind: run.summary["holder"] for run in runtime.store.run_log.latest()}
    assert holders == {"sync": f"{service.holder}/sync", "sweep": f"{service.holder}/backfill"}
