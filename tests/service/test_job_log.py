"""The one summary line the service logs per job run: counts, duration, outcome."""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadsync.config import Config, load_config
from leadsync.jobs import SLA_LEASE, Service
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sync.leases import SYNC_LEASE, Leases, replica_lease
from leadsync.sync.store import Store
from tests.support import set_up_sandbox_config


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    open_limits = HubSpotSettings(ten_second_limit=100_000, searches_per_second=1_000)
    return SandboxSettings(port=0, seed=5, leads=20, hubspot=open_limits)


@pytest.fixture
def service(sandbox: Sandbox, tmp_path: Path) -> Iterator[Service]:
    """A replica in this process, its jobs called by the test (no scheduler, no port)."""
    config: Config = set_up_sandbox_config(sandbox, tmp_path)
    assert config.path is not None
    config.path.write_text(config.path.read_text() + "\n[service]\nmetrics_port = 0\n")
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    replica = Service(load_config(config.path))
    try:
        yield replica
    finally:
        replica.close()
        for signum, handler in handlers.items():  # the Service took them for its own stop
            signal.signal(signum, handler)


def _job_lines(caplog: pytest.LogCaptureFixture, job: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "leadsync.service" and getattr(record, "job", None) == job
    ]


def test_each_sync_job_logs_one_line_with_its_counts_duration_and_outcome(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="leadsync")
    service.sync()
    (first,) = _job_lines(caplog, "sync")
    assert first.levelno == logging.INFO
    assert re.fullmatch(
        r"job sync done in \d+\.\ds: runs 1, pulled \d+, written \d+, failed 0, "
        r"leads changed \d+",
        first.getMessage(),
    ), first.getMessage()
    assert first.__dict__["outcome"] == "done"
    assert first.__dict__["duration_seconds"] > 0
    assert first.__dict__["pulled"] >= 40  # 20 leads in each CRM
    assert first.__dict__["written"] > 0
    service.sync()  # nothing changed: a second line, with nothing written
    second = _job_lines(caplog, "sync")[1]
    assert second.__dict__["written"] == 0


def test_the_sla_job_logs_its_line_too(service: Service, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="leadsync")
    service.check_slas()
    (line,) = _job_lines(caplog, "sla")
    assert line.getMessage().startswith("job sla done in ")
    assert "clocks breached 0" in line.getMessage()


@contextmanager
def _impatient_replica(
    sandbox: Sandbox, folder: Path, *, wait: float = 0
) -> Iterator[tuple[Service, Store]]:
    """A replica whose jobs wait `wait` seconds for a lease (none by default), and its store."""
    config: Config = set_up_sandbox_config(sandbox, folder)
    assert config.path is not None
    config.path.write_text(
        config.path.read_text() + f"\n[service]\nmetrics_port = 0\nlease_wait_seconds = {wait}\n"
    )
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    replica = Service(load_config(config.path))
    try:
        with Store(config.database_url) as store:
            yield replica, store
    finally:
        replica.close()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def test_a_sync_turn_skipped_for_a_command_holding_the_lease_says_so_and_abandons_nothing(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A `sync --once` on a terminal holds the lease: no replica's log says the turn went.
    command = "ops-laptop:4242:abcdef"
    with _impatient_replica(sandbox, tmp_path) as (replica, store):
        its_run = store.run_log.start("sync", started_at=datetime.now(UTC), holder=command)
        assert Leases(store.engine, f"{command}/sync").acquire(SYNC_LEASE, timedelta(minutes=5))
        caplog.set_level(logging.INFO, logger="leadsync")
        replica.sync()
        runs = [(run.run_id, run.status) for run in store.run_log.latest()]

    said = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert (
        f"job sync skipped: {command}/sync, not a running replica of the service, holds the sync "
        in said
    )
    assert runs == [(its_run, "running")]


def test_a_turn_that_stops_waiting_because_the_service_stops_is_not_logged_as_skipped(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    command = "ops-laptop:4242:abcdef"
    with _impatient_replica(sandbox, tmp_path, wait=30) as (replica, store):
        assert Leases(store.engine, f"{command}/sync").acquire(SYNC_LEASE, timedelta(minutes=5))
        caplog.set_level(logging.INFO, logger="leadsync")
        turn = threading.Thread(target=replica.sync)
        turn.start()
        turn.join(timeout=1.0)
        assert turn.is_alive()  # waiting for the command's lease
        replica.stop()
        turn.join(timeout=10)
        assert not turn.is_alive()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [line for line in said if "skipped" in line], said


def test_a_turn_skipped_for_another_replica_adds_no_line_its_log_has_the_run(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = "replica-b:7:fedcba"
    with _impatient_replica(sandbox, tmp_path) as (replica, store):
        assert Leases(store.engine, other).acquire(replica_lease(other), timedelta(minutes=5))
        assert Leases(store.engine, f"{other}/sla").acquire(SLA_LEASE, timedelta(minutes=5))
        caplog.set_level(logging.INFO, logger="leadsync")
        replica.check_slas()
    assert [r.getMessage() for r in caplog.records if r.name == "leadsync.service"] == []
