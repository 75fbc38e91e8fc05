"""`leadsync run` as real processes against the sandbox: schedules, replicas, signals, edits,
queued backfills and what /metrics says. Schedules are seconds apart to keep this quick."""

from __future__ import annotations

import itertools
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from leadsync.config import Config, load_config
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.sandbox import FaultSpec, HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sandbox_config import EXAMPLES, write_sandbox_config
from leadsync.sync.backfill import BackfillQueue, Status
from leadsync.sync.leases import LeaseInfo, all_leases, replica_lease
from leadsync.sync.run_log import RunRow
from leadsync.sync.store import Store
from tests.support import REAL_PROCESSES, mapped_state, set_up_sandbox_config

pytestmark = REAL_PROCESSES

OPEN_LIMITS = HubSpotSettings(ten_second_limit=100_000, searches_per_second=1_000)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_config(
    sandbox: Sandbox,
    folder: Path,
    *,
    database: str | None = None,
    port: int = 0,
    setup: bool = True,
) -> Config:
    """A config pointed at `sandbox`, its mapping and definition copied beside it (so a test
    can edit them), with schedules a second or so apart; with HubSpot's leadsync_* properties
    created unless not `setup`."""
    folder.mkdir(parents=True, exist_ok=True)
    if setup:
        config: Config = set_up_sandbox_config(sandbox, folder)
    else:
        write_sandbox_config(folder / "leadsync.toml", sandbox.url, sandbox.credentials())
        config = load_config(folder / "leadsync.toml")
    assert config.path is not None
    text = config.path.read_text()
    for name in ("mapping.toml", "lead_definition.toml"):
        (folder / name).write_text((EXAMPLES / name).read_text())
        text = text.replace(str(EXAMPLES / name), str(folder / name))
    if database is not None:
        text = re.sub(r'url = "sqlite:///[^"]*"', f'url = "{database}"', text)
    text += f"""
[schedules]
sync_every_minutes = 0.02
sla_every_minutes = 0.05
backfill_poll_seconds = 0.5

[service]
metrics_port = {port}
lease_seconds = 2
lease_wait_seconds = 0.3
shutdown_seconds = 15

[backfill]
chunk_records = 100
yield_seconds = 0.3
progress_log_seconds = 1
"""
    config.path.write_text(text)
    return load_config(config.path)


class Replica:
    """One `leadsync run` process, its output in files."""

    def __init__(self, config: Config, folder: Path, name: str = "replica") -> None:
        self.out = folder / f"{name}.out"
        self.err = folder / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "leadsync.cli", "run", "--config", str(config.path)],
                stdout=out,
                stderr=err,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.err.read_text()

    def terminate(self, timeout: float = 30) -> tuple[int, float]:
        """SIGTERM; the exit code and how long it took to exit."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.close()


def runs(config: Config, kind: str = "sync") -> list[RunRow]:
    with Store(config.database_url) as store:
        return sorted(
            (run for run in store.run_log.latest(limit=1_000) if run.kind == kind),
            key=lambda run: run.started_at,
        )


def heartbeats(config: Config, replica: Replica) -> list[LeaseInfo]:
    """The service heartbeats of `replica`'s process in the store."""
    with Store(config.database_url) as store:
        return [
            lease
            for lease in all_leases(store.engine)
            if lease.name == replica_lease(lease.holder) and f":{replica.pid}:" in lease.holder
        ]


def wait_for(what: Callable[[], Any], *, timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def succeeded(config: Config, *, at_least: int, after: datetime | None = None) -> bool:
    done = [
        run
        for run in runs(config)
        if run.status == "succeeded" and (after is None or run.started_at > after)
    ]
    return len(done) >= at_least


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# ------------------------------------------------------------------------------ one replica


def test_jobs_fire_on_schedule_metrics_report_them_and_sigterm_exits_cleanly(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    port = free_port()
    with Sandbox(SandboxSettings(port=0, seed=3, leads=150, hubspot=OPEN_LIMITS)) as sandbox:
        config = service_config(sandbox, tmp_path, port=port)
        replicas.append(replica := Replica(config, tmp_path))
        wait_for(lambda: succeeded(config, at_least=4), timeout=60, message="four syncs")
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200
        assert json.loads(body)["status"] == "ok"
        # Between its jobs too, the replica says it runs (the console's Status lists it).
        (present,) = heartbeats(config, replica)
        assert present.expires_at > datetime.now(UTC)
        code, seconds = replica.terminate()
        assert heartbeats(config, replica) == []  # stopped cleanly: withdrawn
        assert code == 0
        assert seconds < 15
        assert "stopped cleanly" in replica.log()
        assert "Traceback" not in replica.log()
        done = runs(config)
        # Every 1.2 s, never two at once: each run starts after the one before it finished,
        # and soon after (idle waits measured from the finish, not from the start, so a run
        # slowed by a loaded machine does not count as the scheduler's delay).
        idle = [
            (later.started_at - earlier.finished_at).total_seconds()
            for earlier, later in itertools.pairwise(done)
            if earlier.finished_at is not None
        ]
        assert len(idle) >= 3, idle
        assert all(-0.001 <= wait < 6 for wait in idle), idle
        assert all(run.status in ("succeeded", "interrupted") for run in done)
        assert len(runs(config, "sweep")) == 0


def test_metrics_count_what_the_runs_did(tmp_path: Path, replicas: list[Replica]) -> None:
    port = free_port()
    with Sandbox(SandboxSettings(port=0, seed=3, leads=150, hubspot=OPEN_LIMITS)) as sandbox:
        config = service_config(sandbox, tmp_path, port=port)
        replicas.append(replica := Replica(config, tmp_path))
        wait_for(lambda: succeeded(config, at_least=3), timeout=60, message="three syncs")

        # Between two syncs: every finished run is counted, and no run is under way.
        def counters(text: str) -> dict[Any, float]:
            return {key: value for key, value in samples(text).items() if "_total" in key[0]}

        deadline = time.monotonic() + 30
        while True:
            _, before = get(f"http://127.0.0.1:{port}/metrics")
            finished = runs(config)
            _, after = get(f"http://127.0.0.1:{port}/metrics")
            if counters(before) == counters(after) and all(r.finished_at for r in finished):
                break
            assert time.monotonic() < deadline
        figures = samples(after)
        for crm in ("hubspot", "salesforce"):
            pulled = sum(run.summary["crms"][crm]["pulled"] for run in finished)
            written = sum(run.summary["crms"][crm]["written"] for run in finished)
            assert figures[("leadsync_records_pulled_total", (("crm", crm),))] == pulled
            assert figures[("leadsync_records_written_total", (("crm", crm),))] == written
            assert figures[("leadsync_api_quota_remaining", (("crm", crm),))] > 0
        assert written > 0
        jobs = figures[("leadsync_jobs_total", (("job", "sync"), ("outcome", "done")))]
        assert jobs == len([run for run in finished if run.status == "succeeded"])
        with Store(config.database_url) as store:
            assert figures[("leadsync_quarantine_records", ())] == store.quarantine.size() > 0
        assert figures[("leadsync_up", ())] == 1
        assert 0 <= figures[("leadsync_last_good_sync_age_seconds", ())] < 10
        replica.terminate()


def test_sigterm_mid_sync_finishes_the_batch_in_hand_and_exits_0(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    slow = SandboxSettings(
        port=0, seed=4, leads=400, hubspot=OPEN_LIMITS, faults=FaultSpec.parse("latency=40ms")
    )
    with Sandbox(slow) as sandbox:
        config = service_config(sandbox, tmp_path)
        replicas.append(replica := Replica(config, tmp_path))
        wait_for(lambda: runs(config), timeout=30, message="the first sync to start")
        time.sleep(1.0)
        code, seconds = replica.terminate()
        assert code == 0
        assert seconds < 15
        (first, *_) = runs(config)
        assert first.status == "interrupted"
        assert first.finished_at is not None


def test_a_saved_edit_changes_nothing_in_the_service_until_it_is_applied(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    with Sandbox(SandboxSettings(port=0, seed=3, leads=120, hubspot=OPEN_LIMITS)) as sandbox:
        config = service_config(sandbox, tmp_path)
        replicas.append(replica := Replica(config, tmp_path))
        wait_for(lambda: succeeded(config, at_least=1), timeout=60, message="a first sync")
        mapping = config.mapping_path
        good = mapping.read_text()
        mapping.write_text(good.replace('rule = "most_recent"', 'rule = "latest_wins"', 1))
        edited = runs(config)[-1].started_at
        wait_for(
            lambda: succeeded(config, at_least=2, after=edited),
            timeout=60,
            message="syncs after the broken edit",
        )
        assert "latest_wins" not in replica.log()  # the service never read the saved file

        def apply() -> subprocess.CompletedProcess[str]:
            command = ["apply", "--yes", "--config", str(config.path)]
            return subprocess.run(
                [sys.executable, "-m", "leadsync.cli", *command],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

        refused = apply()
        assert refused.returncode == 2
        assert f"{mapping}:" in refused.stderr
        assert "latest_wins" in refused.stderr
        mapping.write_text(good)
        definition = config.definition_path
        text = definition.read_text()
        assert '{ field = "score", gte = 60 }' in text
        definition.write_text(
            text.replace('{ field = "score", gte = 60 }', '{ field = "score", gte = 70 }')
        )
        applied = apply()
        assert applied.returncode == 0, applied.stderr
        assert "applied version" in applied.stdout
        wait_for(
            lambda: "running the mapping and lead definition applied at" in replica.log(),
            timeout=60,
            message="the applied version",
        )
        code, _ = replica.terminate()
        assert code == 0


def test_a_service_on_an_org_without_setup_writes_nothing_and_picks_up_the_fix(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    with Sandbox(SandboxSettings(port=0, seed=3, leads=120, hubspot=OPEN_LIMITS)) as sandbox:
        config = service_config(sandbox, tmp_path, setup=False)
        replicas.append(replica := Replica(config, tmp_path))

        def stopped() -> int:
            return sum(1 for run in runs(config) if run.status == "failed")

        wait_for(lambda: stopped() >= 3, timeout=60, message="syncs stopped by the preflight")
        endpoints = sandbox.stats.as_dict()["endpoints"]
        assert not {"hubspot.contacts.batch_update", "salesforce.collection_update"} & set(
            endpoints
        )
        log = replica.log()
        fix = "writeback.hubspot.score: no field 'leadsync_score' in hubspot contacts; run "
        assert log.count(fix + "`leadsync setup` to create it") == 1  # said once, not each turn
        assert "still stopped before writing" in log
        assert "Traceback" not in log
        # `leadsync setup` while the service runs: the next turn writes, no restart needed.
        connector = HubSpotConnector(config.hubspot_connection())
        connector.ensure_properties()
        connector.close()
        wait_for(lambda: succeeded(config, at_least=1), timeout=60, message="a sync after setup")
        written = sandbox.stats.as_dict()["endpoints"]
        assert written.get("hubspot.contacts.batch_update", 0) > 0
        code, _ = replica.terminate()
        assert code == 0


def test_the_service_refuses_to_start_on_a_broken_definition_with_exit_2(
    tmp_path: Path,
) -> None:
    with Sandbox(SandboxSettings(port=0, seed=3, leads=20, hubspot=OPEN_LIMITS)) as sandbox:
        config = service_config(sandbox, tmp_path)
        config.definition_path.write_text("[scoring\n")
        run = subprocess.run(
            [sys.executable, "-m", "leadsync.cli", "run", "--config", str(config.path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert run.returncode == 2
    assert f"{config.definition_path}:1" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_queued_backfill_is_taken_up_and_the_incremental_sync_runs_meanwhile(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    with Sandbox(SandboxSettings(port=0, seed=6, leads=900, hubspot=OPEN_LIMITS)) as sandbox:
        config = service_config(sandbox, tmp_path)
        replicas.append(replica := Replica(config, tmp_path))
        # The first sync of an org pulls every record and holds the sync lease while it does:
        # on a loaded machine longer than a backfill waits for it. Queued after it, the
        # backfill shares the lease with incremental syncs of a few records each.
        wait_for(lambda: succeeded(config, at_least=1), timeout=300, message="the first sync")
        queued = subprocess.run(
            [
                sys.executable,
                "-m",
                "leadsync.cli",
                "backfill",
                "--queue",
                "--config",
                str(config.path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        backfill_id = re.search(r"queued backfill (\w+)", queued.stdout).group(1)  # type: ignore[union-attr]

        def finished() -> Any:
            with Store(config.database_url) as store:
                found = BackfillQueue(store.engine).get(backfill_id)
            return found if found is not None and found.status == Status.SUCCEEDED else None

        done = wait_for(finished, timeout=300, message="the queued backfill")
        assert done.of("hubspot").pulled == done.of("hubspot").total == 900
        # One run, or several: on a loaded machine a renewal of the two-second lease can come
        # late, or syncs hold the lease longer than a chunk waits for it; the backfill then
        # pauses and the next poll goes on with it from its checkpoint, in a run of its own.
        backfill_runs = runs(config, "backfill")
        assert all(run.status in ("succeeded", "interrupted", "paused") for run in backfill_runs)
        assert backfill_runs[-1].status == "succeeded"
        began, ended = backfill_runs[0].started_at, backfill_runs[-1].finished_at
        assert ended is not None
        during = [run for run in runs(config) if began < run.started_at < ended]
        assert during, "no incremental sync ran while the backfill did"
        assert "backfill hubspot" in replica.log()  # progress lines off a terminal
        replica.terminate()


# ------------------------------------------------------------------------ replicas on PostgreSQL


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_replicas_never_run_one_job_at_once(
    tmp_path: Path, replicas: list[Replica], database_url: str
) -> None:
    with Sandbox(SandboxSettings(port=0, seed=3, leads=150, hubspot=OPEN_LIMITS)) as sandbox:
        config = service_config(sandbox, tmp_path, database=database_url)
        Store(config.database_url).close()  # migrated once, before both start
        replicas.append(Replica(config, tmp_path, "a"))
        replicas.append(Replica(config, tmp_path, "b"))
        wait_for(lambda: succeeded(config, at_least=8), timeout=90, message="eight syncs")
        for replica in replicas:
            assert replica.terminate()[0] == 0
        done = [run for run in runs(config) if run.finished_at is not None]
        for earlier, later in itertools.pairwise(done):
            assert earlier.finished_at is not None
            assert later.started_at >= earlier.finished_at, (earlier, later)
        # Both took turns: each replica logged in to Salesforce for a sync of its own.
        assert all("logged in to Salesforce" in replica.log() for replica in replicas)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_replica_killed_mid_sync_is_taken_over_and_the_run_completes(
    tmp_path: Path, replicas: list[Replica], database_url: str
) -> None:
    settings = SandboxSettings(
        port=0,
        seed=9,
        leads=1500,
        seed_until=datetime(2026, 6, 1, tzinfo=UTC),  # both sandboxes seeded alike
        hubspot=OPEN_LIMITS,
        faults=FaultSpec.parse("latency=40ms"),
    )
    # The fault-free reference sync runs beside the replicas (only the state it leaves is
    # compared, at the end): its ~5 s were the test's first, waited for alone.
    with (
        Sandbox(replace(settings, faults=FaultSpec())) as clean,
        Sandbox(settings) as sandbox,
    ):
        reference = service_config(clean, tmp_path / "clean")
        with (tmp_path / "reference.err").open("w") as reference_err:
            reference_sync = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "leadsync.cli",
                    "sync",
                    "--once",
                    "--config",
                    str(reference.path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=reference_err,
            )
        try:
            config = service_config(sandbox, tmp_path / "replicas", database=database_url)
            Store(config.database_url).close()
            first = Replica(config, tmp_path, "first")
            replicas.append(first)
            wait_for(lambda: runs(config), timeout=30, message="the first sync to start")
            replicas.append(second := Replica(config, tmp_path, "second"))
            time.sleep(1.5)  # mid-pull or mid-write of the first, much slowed, sync
            first.kill()
            killed_at = datetime.now().astimezone()
            wait_for(
                lambda: succeeded(config, at_least=2, after=killed_at),
                timeout=120,
                message="the second replica's syncs",
            )
            assert reference_sync.wait(timeout=120) == 0, (tmp_path / "reference.err").read_text()
        finally:
            if reference_sync.poll() is None:
                reference_sync.kill()
                reference_sync.wait(timeout=30)
        expected = mapped_state(clean)
        (cut, *_) = runs(config)
        # The dead replica never finished it; the one that took the job over says so.
        assert cut.status == "abandoned"
        assert cut.summary["holder"] != runs(config)[-1].summary["holder"]
        assert "took the job over from" in second.log()
        assert second.terminate()[0] == 0
        assert mapped_state(sandbox) == expected
