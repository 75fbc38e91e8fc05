"""Leases on every backend: one holder at a time, taken over only once expired, kept alive in
the background while held, and `lost` set when another replica took it meanwhile."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadsync.sync import database as database_module
from leadsync.sync.backfill import BackfillQueue, BackfillSpec, Status
from leadsync.sync.leases import (
    LeaseInfo,
    Leases,
    all_leases,
    forget_gone_replicas,
    replica_lease,
)
from leadsync.sync.store import Store
from tests.support import REAL_PROCESSES, NinetySecondsAhead

pytestmark = REAL_PROCESSES

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=60)
# Short enough to watch several renewals in real time, long enough for a loaded CI machine.
SHORT_TTL = timedelta(seconds=0.5)


class HeldClock:
    """A replica's wall clock, moved by the test."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


@pytest.fixture
def clock_a() -> HeldClock:
    return HeldClock()


@pytest.fixture
def clock_b() -> HeldClock:
    return HeldClock()


@pytest.fixture
def a(store: Store, clock_a: HeldClock) -> Leases:
    return Leases(store.engine, "host-a:1", clock=clock_a)


@pytest.fixture
def b(store: Store, clock_b: HeldClock) -> Leases:
    return Leases(store.engine, "host-b:2", clock=clock_b)


# ------------------------------------------------------------------ acquire, renew, release


def test_a_free_lease_is_taken_and_info_says_by_whom_until_when(a: Leases) -> None:
    assert a.info("sync") is None
    assert a.acquire("sync", TTL) is True
    assert a.info("sync") == LeaseInfo("sync", "host-a:1", T0, T0 + TTL)


def test_a_second_holder_is_refused_while_the_lease_is_unexpired(
    a: Leases, b: Leases, clock_b: HeldClock
) -> None:
    assert a.acquire("sync", TTL)
    for moment in (T0, T0 + TTL / 2, T0 + TTL - timedelta(milliseconds=1)):
        clock_b.now = moment
        assert b.acquire("sync", TTL) is False, moment
    assert b.info("sync") == LeaseInfo("sync", "host-a:1", T0, T0 + TTL)


def test_an_expired_lease_is_taken_over_by_another_holder(
    a: Leases, b: Leases, clock_a: HeldClock, clock_b: HeldClock
) -> None:
    assert a.acquire("sync", TTL)
    later = T0 + TTL + timedelta(seconds=1)
    clock_b.now = later
    assert b.acquire("sync", TTL) is True
    # The new holder's own acquisition time, not the old holder's.
    assert b.info("sync") == LeaseInfo("sync", "host-b:2", later, later + TTL)
    clock_a.now = later
    assert a.acquire("sync", TTL) is False
    assert a.renew("sync", TTL) is False


def test_acquiring_our_own_lease_again_extends_it_and_keeps_when_we_first_took_it(
    a: Leases, clock_a: HeldClock
) -> None:
    assert a.acquire("sync", TTL)
    clock_a.advance(timedelta(seconds=30))
    assert a.acquire("sync", TTL)
    assert a.info("sync") == LeaseInfo("sync", "host-a:1", T0, clock_a.now + TTL)


def test_leases_of_different_names_are_independent(a: Leases, b: Leases) -> None:
    assert a.acquire("sync", TTL)
    assert b.acquire("sla", TTL)
    assert (a.info("sync"), a.info("sla")) == (
        LeaseInfo("sync", "host-a:1", T0, T0 + TTL),
        LeaseInfo("sla", "host-b:2", T0, T0 + TTL),
    )


def test_renew_extends_only_our_own_lease(
    a: Leases, b: Leases, clock_a: HeldClock, clock_b: HeldClock
) -> None:
    assert a.acquire("sync", TTL)
    clock_a.advance(timedelta(seconds=30))
    assert a.renew("sync", TTL) is True
    renewed = LeaseInfo("sync", "host-a:1", T0, T0 + timedelta(seconds=30) + TTL)
    assert a.info("sync") == renewed

    clock_b.now = T0 + timedelta(seconds=40)
    assert b.renew("sync", TTL) is False
    assert a.info("sync") == renewed


def test_renewing_a_lease_nobody_holds_does_not_take_it(a: Leases) -> None:
    assert a.renew("sync", TTL) is False
    assert a.info("sync") is None


def test_release_frees_only_our_own_lease(a: Leases, b: Leases) -> None:
    assert a.acquire("sync", TTL)
    b.release("sync")
    assert a.info("sync") == LeaseInfo("sync", "host-a:1", T0, T0 + TTL)

    a.release("sync")
    assert a.info("sync") is None
    assert b.acquire("sync", TTL) is True  # free at once, long before it would have expired


def test_releasing_a_lease_we_do_not_hold_is_harmless(a: Leases) -> None:
    a.release("sync")
    assert a.info("sync") is None


# ------------------------------------------------------------------------------------- hold


def real(store: Store, holder: str) -> Leases:
    return Leases(store.engine, holder)


@contextmanager
def later(seconds: float, action: Callable[[], object]) -> Iterator[None]:
    """Run `action` in a thread after `seconds`, unless the block is over first."""
    timer = threading.Timer(seconds, action)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()


def test_hold_yields_the_lease_while_the_block_runs_and_releases_it_after(store: Store) -> None:
    a = real(store, "host-a:1")
    with a.hold("sync", ttl=TTL) as lease:
        assert lease is not None
        assert (lease.name, lease.holder) == ("sync", "host-a:1")
        held = a.info("sync")
        assert held is not None
        assert held.holder == "host-a:1"
        assert not lease.lost.is_set()
    assert a.info("sync") is None


def test_hold_releases_the_lease_when_the_block_raises(store: Store) -> None:
    a = real(store, "host-a:1")

    def job() -> None:
        with a.hold("sync", ttl=TTL) as lease:
            assert lease is not None
            raise RuntimeError("job bug")

    with pytest.raises(RuntimeError, match="job bug"):
        job()
    assert a.info("sync") is None


def test_hold_yields_none_when_the_lease_stays_busy_past_wait(store: Store) -> None:
    a, b = real(store, "host-a:1"), real(store, "host-b:2")
    assert a.acquire("sync", TTL)
    wait = timedelta(seconds=0.2)
    started = time.monotonic()
    with b.hold("sync", ttl=TTL, wait=wait, poll_seconds=0.05) as lease:
        waited = time.monotonic() - started
        assert lease is None
    assert wait.total_seconds() <= waited < 5
    held = b.info("sync")
    assert held is not None
    assert held.holder == "host-a:1"  # not released by the one that never had it


def test_hold_without_wait_gives_up_at_once(store: Store) -> None:
    a, b = real(store, "host-a:1"), real(store, "host-b:2")
    assert a.acquire("sync", TTL)
    started = time.monotonic()
    with b.hold("sync", ttl=TTL, poll_seconds=5) as lease:
        assert lease is None
    assert time.monotonic() - started < 2


def test_hold_stops_waiting_when_told_to_stop(store: Store) -> None:
    a, b = real(store, "host-a:1"), real(store, "host-b:2")
    assert a.acquire("sync", TTL)
    stop = threading.Event()
    started = time.monotonic()
    with (
        later(0.1, stop.set),
        b.hold("sync", ttl=TTL, wait=timedelta(seconds=30), stop=stop, poll_seconds=0.05) as lease,
    ):
        assert lease is None
    assert time.monotonic() - started < 5


def test_hold_takes_the_lease_once_it_is_released_within_wait(store: Store) -> None:
    a, b = real(store, "host-a:1"), real(store, "host-b:2")
    assert a.acquire("sync", TTL)
    with (
        later(0.1, lambda: a.release("sync")),
        b.hold("sync", ttl=TTL, wait=timedelta(seconds=10), poll_seconds=0.05) as lease,
    ):
        assert lease is not None
        held = b.info("sync")
        assert held is not None
        assert held.holder == "host-b:2"
    assert b.info("sync") is None


def test_background_renewal_keeps_a_short_lease_across_several_ttls(store: Store) -> None:
    a, b = real(store, "host-a:1"), real(store, "host-b:2")
    periods = 3
    with a.hold("sync", ttl=SHORT_TTL) as lease:
        assert lease is not None
        first = a.info("sync")
        assert first is not None
        deadline = time.monotonic() + periods * SHORT_TTL.total_seconds()
        attempts = 0
        while time.monotonic() < deadline:
            assert b.acquire("sync", SHORT_TTL) is False, f"taken after {attempts} attempts"
            attempts += 1
            time.sleep(0.1)
        assert not lease.lost.is_set()
        last = a.info("sync")
        assert last is not None
        assert last.holder == "host-a:1"
        assert last.acquired_at == first.acquired_at
        assert last.expires_at > first.expires_at + SHORT_TTL  # renewed, more than once
    assert a.info("sync") is None


def test_a_holder_that_makes_no_progress_loses_its_lease_to_another(store: Store) -> None:
    a, b = real(store, "host-a:1"), real(store, "host-b:2")
    stalled_after = 2 * SHORT_TTL
    with a.hold("sync", ttl=SHORT_TTL, stalled_after=stalled_after) as lease:
        assert lease is not None
        should_stop = lease.stop_check()
        # Stuck: no batch boundary reached, no stop check asked. The renewal stops ...
        assert lease.lost.wait(timeout=10 * stalled_after.total_seconds())
        # ... so once the lease expires another replica takes the job over,
        deadline = time.monotonic() + 10 * SHORT_TTL.total_seconds()
        while not b.acquire("sync", SHORT_TTL):
            assert time.monotonic() < deadline, "the stalled holder's lease never expired"
            time.sleep(0.05)
        # and the stuck holder, waking up at its next boundary, is told to stop.
        assert should_stop() is True
    held = b.info("sync")  # the stuck one left the new holder's lease alone on its way out
    assert held is not None
    assert held.holder == "host-b:2"


def test_a_holder_that_makes_progress_keeps_its_lease_past_the_stall_limit(store: Store) -> None:
    a, b = real(store, "host-a:1"), real(store, "host-b:2")
    stalled_after = 2 * SHORT_TTL
    with a.hold("sync", ttl=SHORT_TTL, stalled_after=stalled_after) as lease:
        assert lease is not None
        should_stop = lease.stop_check()
        deadline = time.monotonic() + 3 * stalled_after.total_seconds()
        while time.monotonic() < deadline:
            assert should_stop() is False  # a batch boundary: progress
            assert b.acquire("sync", SHORT_TTL) is False
            time.sleep(0.05)
        assert not lease.lost.is_set()


def test_lost_is_set_when_another_holder_takes_the_lease_over(store: Store) -> None:
    a = real(store, "host-a:1")
    # A replica whose clock says the lease expired long ago: it takes it over at once.
    future = HeldClock(datetime.now(UTC) + timedelta(hours=1))
    b = Leases(store.engine, "host-b:2", clock=future)
    with a.hold("sync", ttl=SHORT_TTL) as lease:
        assert lease is not None
        assert b.acquire("sync", SHORT_TTL) is True
        assert lease.lost.wait(timeout=5 * SHORT_TTL.total_seconds())
    # The one that lost it leaves the new holder's lease alone on the way out.
    assert a.info("sync") == LeaseInfo("sync", "host-b:2", future.now, future.now + SHORT_TTL)


# ----------------------------------------------------------------------- replicas racing (PG)

RACERS = 8
ROUNDS = 4


@pytest.fixture
def racers(database_url: str, store: Store) -> Iterator[list[Leases]]:
    """Leases of separate replicas: each its own Store, so its own engine and connections."""
    stores = [Store(database_url, migrate=False) for _ in range(RACERS)]
    try:
        yield [Leases(each.engine, f"replica-{n}") for n, each in enumerate(stores)]
    finally:
        for each in stores:
            each.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_replicas_racing_for_a_free_lease_exactly_one_wins(
    store: Store, racers: list[Leases]
) -> None:
    start = threading.Barrier(RACERS)
    won: dict[tuple[int, str], bool] = {}
    problems: list[BaseException] = []

    def race(leases: Leases) -> None:
        try:
            for round_ in range(ROUNDS):
                start.wait(timeout=10)
                won[(round_, leases.holder)] = leases.acquire(f"race-{round_}", TTL)
        except BaseException as problem:  # noqa: BLE001 - reported by the test thread below
            problems.append(problem)
            start.abort()

    threads = [threading.Thread(target=race, args=(each,)) for each in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not problems
    observer = Leases(store.engine, "observer")
    for round_ in range(ROUNDS):
        winners = [holder for (r, holder), taken in won.items() if r == round_ and taken]
        assert len([key for key in won if key[0] == round_]) == RACERS
        assert len(winners) == 1, (round_, winners)
        held = observer.info(f"race-{round_}")
        assert held is not None
        assert held.holder == winners[0]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_a_host_whose_clock_runs_ahead_never_takes_a_live_lease(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Replicas on several hosts share one PostgreSQL: its clock, not theirs, judges expiry.
    on_time = Leases(store.engine, "host-a:1")
    assert on_time.acquire("sync", TTL)
    monkeypatch.setattr("leadsync.sync.leases.datetime", NinetySecondsAhead)
    ahead = Leases(store.engine, "host-b:2")
    assert ahead.acquire("sync", TTL) is False
    with ahead.hold("sync", ttl=TTL) as lease:
        assert lease is None
    held = ahead.info("sync")
    assert held is not None
    assert held.holder == "host-a:1"
    assert on_time.renew("sync", TTL)  # and the holder's renewals are judged the same way


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_a_host_whose_clock_runs_ahead_never_claims_a_running_backfill(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A backfill's heartbeat is judged by the same one clock as the leases.
    queue = BackfillQueue(store.engine, stale_after=TTL)
    asked = queue.create(BackfillSpec(("hubspot",)))
    assert queue.claim(asked.backfill_id, "host-a:1/backfill", stale_after=TTL) is not None
    monkeypatch.setattr("leadsync.sync.backfill.datetime", NinetySecondsAhead)
    ahead = BackfillQueue(store.engine, stale_after=TTL)
    assert ahead.claim(asked.backfill_id, "host-b:2/backfill", stale_after=TTL) is None
    assert ahead.claim(None, "host-b:2/backfill", stale_after=TTL) is None
    seen = ahead.get(asked.backfill_id)
    assert seen is not None
    assert (seen.status, seen.holder) == (Status.RUNNING, "host-a:1/backfill")
    stopped = ahead.request_stop(asked.backfill_id, stale_after=TTL)
    assert stopped is not None
    assert stopped.status == Status.STOPPING  # asked to stop, not stopped as if it had died


def test_a_lease_taken_over_after_expiry_names_the_holder_it_replaced(
    database_url: str,
) -> None:
    moment = [datetime(2026, 6, 1, tzinfo=UTC)]
    with Store(database_url) as store:
        first = Leases(store.engine, "dead-replica", clock=lambda: moment[0])
        second = Leases(store.engine, "live-replica", clock=lambda: moment[0])
        assert first.acquire("sync", timedelta(seconds=10))
        moment[0] += timedelta(seconds=11)
        with second.hold("sync", ttl=timedelta(seconds=10)) as lease:
            assert lease is not None
            assert lease.took_over_from == "dead-replica"
        with second.hold("sync", ttl=timedelta(seconds=10)) as again:  # released: free
            assert again is not None
            assert again.took_over_from is None


def test_two_roles_of_one_process_never_hold_one_lease_together(database_url: str) -> None:
    # The service's sync job and a backfill it runs share the process, not the lease.
    with Store(database_url) as store:
        sync_job = Leases(store.engine, "host:42:abc/sync")
        backfill = Leases(store.engine, "host:42:abc/backfill")
        with sync_job.hold("sync", ttl=timedelta(seconds=30)) as held:
            assert held is not None
            with backfill.hold("sync", ttl=timedelta(seconds=30)) as second:
                assert second is None
            info = sync_job.info("sync")
            assert info is not None
            assert info.holder == "host:42:abc/sync"  # the refused one released nothing


# ------------------------------------------------------------------ replicas' heartbeats


def test_only_heartbeats_gone_before_the_cutoff_are_forgotten(
    store: Store, a: Leases, b: Leases, clock_a: HeldClock
) -> None:
    assert a.acquire(replica_lease(a.holder), TTL)  # gone at T0 + 60 s
    assert a.acquire("sync", TTL)  # a job's lease, expired alike: not a heartbeat
    assert b.acquire(replica_lease(b.holder), TTL * 10)  # gone at T0 + 600 s
    assert forget_gone_replicas(store.engine, before=T0 + TTL * 2) == 1
    assert [lease.name for lease in all_leases(store.engine)] == [
        replica_lease(b.holder),
        "sync",
    ]


def test_a_backfill_claimed_from_a_dead_runner_abandons_its_run_not_its_replicas_other_roles(
    store: Store,
) -> None:
    queue = BackfillQueue(store.engine, stale_after=TTL)
    asked = queue.create(BackfillSpec(("hubspot",)))
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    assert queue.claim(asked.backfill_id, "host-a:1", stale_after=TTL) is not None
    backfilled = store.run_log.start("backfill", started_at=an_hour_ago, holder="host-a:1/backfill")
    synced = store.run_log.start("sync", started_at=an_hour_ago, holder="host-a:1/sync")
    older = store.run_log.start("sync", started_at=an_hour_ago, holder="host-a:1")  # no role
    # Its heartbeat went stale: another runner takes it up.
    assert queue.claim(asked.backfill_id, "host-b:2", stale_after=timedelta(0)) is not None
    statuses = {run.run_id: run.status for run in store.run_log.latest()}
    # The sync run goes on, or is abandoned when its own lease is taken over.
    assert statuses == {backfilled: "abandoned", synced: "running", older: "abandoned"}


@contextmanager
def sqlite_locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's write transaction on the SQLite file at `path`, open for the block
    (closed early by closing the connection yielded)."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        other.close()


LOCK_WAIT = 0.3  # SQLite's busy wait in these tests: each attempt blocks this long


def test_a_lease_wait_on_a_sqlite_file_another_writer_keeps_locked_ends_at_its_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: each take blocked a busy wait, was retried as a transient error five times and
    # then raised it, however long the caller meant to wait: the wait ran past
    # `lease_wait_seconds` by the retries, and ended in an error, not "held by another".
    monkeypatch.setattr(database_module, "SQLITE_LOCK_WAIT_SECONDS", LOCK_WAIT)
    path = tmp_path / "leadsync.db"
    with Store(f"sqlite:///{path}") as store, sqlite_locked(path):
        wait = timedelta(seconds=1)
        started = time.monotonic()
        with real(store, "host-b:2").hold("sync", ttl=TTL, wait=wait, poll_seconds=0.05) as lease:
            waited = time.monotonic() - started
            assert lease is None
    assert waited >= wait.total_seconds()
    # Each take tried once: no take retried past the wait (five busy waits each, before).
    assert "transient database error" not in caplog.text
    assert waited < 30  # a bound for a stuck wait only: the machine's speed is not tested


def test_a_lease_waited_for_on_a_locked_sqlite_file_is_taken_once_the_lock_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database_module, "SQLITE_LOCK_WAIT_SECONDS", LOCK_WAIT)
    path = tmp_path / "leadsync.db"
    with Store(f"sqlite:///{path}") as store, sqlite_locked(path) as other:
        b = real(store, "host-b:2")
        # The lock outlasts the retries a single take would make (about 2.3 s of them).
        with (
            later(3.0, other.close),
            b.hold("sync", ttl=TTL, wait=timedelta(seconds=30), poll_seconds=0.05) as lease,
        ):
            assert lease is not None
            held = b.info("sync")
            assert held is not None
            assert held.holder == "host-b:2"
