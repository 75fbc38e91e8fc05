"""On PostgreSQL, replicas on several hosts share the store, whose clock judges the leases: a
replica's heartbeat is set and judged by that clock too, not by its host's, so a host whose
clock is off by more than a lease's time neither seems gone nor judges live replicas gone."""

from __future__ import annotations

import logging
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

import leadsync.jobs
from leadsync.config import load_config
from leadsync.jobs import Service
from leadsync.sandbox import Sandbox, SandboxSettings
from leadsync.sync.leases import SYNC_LEASE, Leases, replica_lease
from leadsync.sync.store import Store
from tests.support import set_up_sandbox_config

OFF = timedelta(seconds=90)  # more than a lease's 60 s


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(port=0, seed=5, leads=40)


@contextmanager
def _replica_on_a_host(
    sandbox: Sandbox, folder: Path, url: str, off: timedelta, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Service, Store]]:
    """A replica on PostgreSQL whose host's clock is `off` from the server's."""

    class HostClock(datetime):
        @classmethod
        def now(cls, tz: object = None) -> HostClock:  # type: ignore[override]
            return super().now(UTC) + off  # type: ignore[return-value]

    config = set_up_sandbox_config(sandbox, folder)
    assert config.path is not None
    text = re.sub(r'url = "sqlite:///[^"]*"', f'url = "{url}"', config.path.read_text())
    config.path.write_text(text + "\n[service]\nmetrics_port = 0\nlease_wait_seconds = 0\n")
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    monkeypatch.setattr(leadsync.jobs, "datetime", HostClock)
    replica = Service(load_config(config.path))
    try:
        with Store(url) as store:
            yield replica, store
    finally:
        replica.close()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


@pytest.mark.postgres
def test_a_replica_on_a_host_running_behind_beats_a_heartbeat_live_by_the_servers_clock(
    sandbox: Sandbox,
    tmp_path: Path,
    postgresql_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with _replica_on_a_host(sandbox, tmp_path, postgresql_database_url, -OFF, monkeypatch) as (
        replica,
        store,
    ):
        replica._beat()
        with store.engine.connect() as connection:
            live = connection.execute(
                sa.text("SELECT expires_at > clock_timestamp() FROM leases WHERE name = :name"),
                {"name": replica_lease(replica.holder)},
            ).scalar_one()
    assert live


@pytest.mark.postgres
def test_a_replica_on_a_host_running_ahead_does_not_log_a_live_replica_as_gone(
    sandbox: Sandbox,
    tmp_path: Path,
    postgresql_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = "replica-b:7:fedcba"
    with _replica_on_a_host(sandbox, tmp_path, postgresql_database_url, OFF, monkeypatch) as (
        replica,
        store,
    ):
        # Replica B, live: its heartbeat and its sync lease, set by the server's clock.
        assert Leases(store.engine, other).acquire(replica_lease(other), timedelta(minutes=1))
        assert Leases(store.engine, f"{other}/sync").acquire(SYNC_LEASE, timedelta(minutes=1))
        caplog.set_level(logging.INFO, logger="leadsync")
        replica.sync()
    said = [r.getMessage() for r in caplog.records if r.name == "leadsync.service"]
    assert not [line for line in said if "not a running replica" in line], said
