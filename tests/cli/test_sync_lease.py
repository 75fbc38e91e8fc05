"""Commands that write to the CRMs or pull into the store (`sync --once`, `plan`, `quarantine
retry`, `revert`) hold the `sync` lease the service's jobs hold: two of them started at once
(a cron overlap, a manual sync beside `leadsync run`) never match the same people twice."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from leadsync.cli import main
from leadsync.config import Config, load_config
from leadsync.runtime import open_runtime
from leadsync.sandbox import FaultSpec, Sandbox
from leadsync.sync import tables
from leadsync.sync.leases import SYNC_LEASE, LeaseLostError, Leases
from leadsync.sync.store import Store
from tests.support import REAL_PROCESSES, write_calls

ELSEWHERE = "elsewhere:4242:abcdef/sync"


def _with(config: Config, *, service: str = "", database_url: str = "") -> Config:
    """The config with a `[service]` table of its own, or another database."""
    assert config.path is not None
    text = config.path.read_text()
    if database_url:
        text, replaced = re.subn(
            r'(?m)^url = "sqlite:///[^"]*"$', f"url = {json.dumps(database_url)}", text
        )
        assert replaced == 1
    if service:
        assert "[service]" not in text
        text += f"\n[service]\n{service}\n"
    config.path.write_text(text)
    return load_config(config.path)


def _hold_the_lease(config: Config, holder: str, *, since: datetime, ttl: timedelta) -> None:
    with Store(config.database_url) as store:
        taken = Leases(store.engine, holder, clock=lambda: since).acquire(SYNC_LEASE, ttl)
        assert taken


def _leads_and_runs(config: Config) -> tuple[int, list[tuple[str, str]]]:
    with Store(config.database_url) as store:
        runs = [(run.kind, run.status) for run in store.run_log.latest(limit=100)]
        with store.engine.connect() as connection:
            leads = connection.execute(sa.select(sa.func.count()).select_from(tables.leads))
            return int(leads.scalar_one()), runs


def _a_sync_killed_an_hour_ago(config: Config) -> str:
    """The run a `sync --once` killed an hour ago left running, its lease run out since."""
    dead = "deadhost:99:fedcba"
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    with Store(config.database_url) as store:
        left_running = store.run_log.start("sync", started_at=an_hour_ago, holder=dead)
    _hold_the_lease(config, f"{dead}/sync", since=an_hour_ago, ttl=timedelta(minutes=1))
    return left_running


@pytest.mark.parametrize("command", [["sync", "--once"], ["plan"]])
def test_a_command_that_pulls_waits_for_a_held_sync_lease_then_exits_1_having_done_nothing(
    config: Config,
    sandbox: Sandbox,
    command: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _with(config, service="lease_wait_seconds = 0.3")
    _hold_the_lease(config, ELSEWHERE, since=datetime.now(UTC), ttl=timedelta(minutes=10))
    written = write_calls(sandbox)  # the set-up's: HubSpot's write-back properties
    assert main([*command, "--config", str(config.path)]) == 1
    printed = capsys.readouterr()
    assert printed.out == ""
    # The line it said before waiting, then its last word.
    waited, last = printed.err.splitlines()
    assert f"waiting up to 0.3 s for the sync lease, which {ELSEWHERE} holds" in waited
    assert last.startswith("leadsync: another leadsync process is syncing")
    assert f"({ELSEWHERE} holds the sync lease until " in printed.err
    assert "nothing was done" in printed.err
    assert "Traceback" not in printed.err
    assert _leads_and_runs(config) == (0, [])
    assert write_calls(sandbox) == written


def test_revert_and_quarantine_retry_wait_for_a_held_sync_lease_and_write_nothing(
    config: Config, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _with(config, service="lease_wait_seconds = 0.3")
    contact = next(c for c in sandbox.hubspot.snapshot() if c["properties"].get("email"))
    sandbox.hubspot.set_activity(int(contact["id"]), {"annualrevenue": "about 12k"})
    assert main(["sync", "--once", "--json", "--config", str(config.path)]) == 0
    synced = json.loads(capsys.readouterr().out)
    assert synced["crms"]["hubspot"]["written"] > 0  # a run with writes to put back
    leads, runs = _leads_and_runs(config)
    written = write_calls(sandbox)
    _hold_the_lease(config, ELSEWHERE, since=datetime.now(UTC), ttl=timedelta(minutes=10))

    for command in (["quarantine", "retry", "--all"], ["revert", synced["run_id"], "--yes"]):
        assert main([*command, "--config", str(config.path)]) == 1, command
        printed = capsys.readouterr()
        assert f"({ELSEWHERE} holds the sync lease until " in printed.err, command
        assert "Traceback" not in printed.err

    assert write_calls(sandbox) == written
    assert _leads_and_runs(config) == (leads, runs)


def test_each_command_records_its_run_as_the_role_whose_lease_it_holds(
    config: Config, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    # A take-over of a role's lease abandons that role's runs: each run names its role.
    contact = next(c for c in sandbox.hubspot.snapshot() if c["properties"].get("email"))
    sandbox.hubspot.set_activity(int(contact["id"]), {"annualrevenue": "about 12k"})
    assert main(["sync", "--once", "--json", "--config", str(config.path)]) == 0
    synced = json.loads(capsys.readouterr().out)
    for command in (
        ["plan"],
        ["quarantine", "retry", "--all"],
        ["revert", synced["run_id"], "--yes"],
    ):
        main([*command, "--config", str(config.path)])
    with Store(config.database_url) as store:
        holders = {run.kind: run.summary.get("holder", "") for run in store.run_log.latest()}
    assert {kind: holder.rpartition("/")[2] for kind, holder in holders.items()} == {
        "sync": "sync",
        "plan": "plan",
        "retry": "retry",
        "revert": "revert",
    }
    assert all(re.fullmatch(r"[^/:]+:\d+:\w+/\w+", holder) for holder in holders.values())


def test_a_sync_takes_the_expired_lease_of_a_dead_process_and_marks_its_run_abandoned(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    # A `sync --once` killed an hour ago: its run still says running, its lease ran out.
    left_running = _a_sync_killed_an_hour_ago(config)

    assert main(["sync", "--once", "--json", "--config", str(config.path)]) == 0
    this_run = json.loads(capsys.readouterr().out)["run_id"]

    with Store(config.database_url) as store:
        statuses = {run.run_id: run.status for run in store.run_log.latest()}
        assert Leases(store.engine, "anyone").info(SYNC_LEASE) is None  # released when done
    assert statuses == {left_running: "abandoned", this_run: "succeeded"}


@pytest.mark.postgres
def test_two_syncs_started_at_once_on_a_fresh_postgresql_store_make_each_lead_once(
    config: Config, postgresql_database_url: str
) -> None:
    config = _with(config, database_url=postgresql_database_url)
    command = [sys.executable, "-m", "leadsync.cli", "sync", "--once", "--json"]
    command += ["--config", str(config.path)]
    both = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=240) for process in both]
    assert [process.returncode for process in both] == [0, 0], [err for _, err in outputs]

    new_leads = sorted(
        sum(crm["new_leads"] for crm in json.loads(out)["crms"].values()) for out, _ in outputs
    )
    leads, _ = _leads_and_runs(config)
    # One made every lead; the other ran after it, on what it had stored, and made none.
    assert new_leads == [0, leads]
    assert leads > 0


def _leadsync(config: Config, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "leadsync.cli", *args, "--config", str(config.path)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _running_run(config: Config, process: subprocess.Popen[str]) -> str:
    """The id of the run `process` started, once the store has it (polled)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        with Store(config.database_url) as store:
            running = [run.run_id for run in store.run_log.latest() if run.status == "running"]
        if running:
            return running[0]
        time.sleep(0.05)
    raise AssertionError(f"no run started (exit code {process.poll()})")


def _first_line(process: subprocess.Popen[str]) -> str:
    """The first line `process` writes to its stderr, or "" when it writes none in a minute
    (the process is then killed)."""
    stream = process.stderr
    assert stream is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=60)
    except queue.Empty:
        process.kill()
        return ""


@REAL_PROCESSES
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_sync_stopped_mid_run_ends_its_run_interrupted_and_gives_the_lease_back(
    config: Config, sandbox: Sandbox, stop: signal.Signals
) -> None:
    # Slow CRMs: the stop comes while the run pulls, well before its writes.
    sandbox.faults.configure(FaultSpec.parse("latency=150ms"))
    written = write_calls(sandbox)
    syncing = _leadsync(config, "sync", "--once")
    run_id = _running_run(config, syncing)
    syncing.send_signal(stop)
    _, err = syncing.communicate(timeout=60)

    assert syncing.returncode == 0, err
    assert "Traceback" not in err
    assert f"run {run_id} interrupted" in err
    with Store(config.database_url) as store:
        assert {run.run_id: run.status for run in store.run_log.latest()} == {run_id: "interrupted"}
        assert Leases(store.engine, "anyone").info(SYNC_LEASE) is None  # the next need not wait
    assert write_calls(sandbox) == written


@pytest.mark.parametrize("asks_stop_check", [True, False], ids=["sync", "revert-or-retry"])
def test_only_a_command_that_asks_the_stop_check_gives_its_lease_up_as_stalled(
    config: Config, asks_stop_check: bool
) -> None:
    # A revert's or retry's writes never ask the stop check, which is what shows progress:
    # however long they take, their lease must hold, or a sync could run beside them.
    config = _with(config, service="lease_seconds = 1.5\nstalled_after_seconds = 1.5")
    with open_runtime(config, connect=False) as runtime:
        lost = pytest.raises(LeaseLostError) if asks_stop_check else contextlib.nullcontext()
        with lost, runtime.sync_lease("revert", asks_stop_check=asks_stop_check):
            # A thief tries for it after ten renewal periods with no progress shown: the
            # silent sync's lease ran out 2 s before, the revert's was renewed 0.5 s before.
            time.sleep(5.0)
            thief = Leases(runtime.store.engine, "thief:7:abcdef/sync")
            assert thief.acquire(SYNC_LEASE, timedelta(minutes=1)) == asks_stop_check


@REAL_PROCESSES
def test_a_sync_whose_lease_another_process_took_stops_and_exits_1_naming_it(
    config: Config, sandbox: Sandbox
) -> None:
    # Renewed every 0.5 s: the run hears of the loss within a page or two of the slow CRMs.
    config = _with(config, service="lease_seconds = 1.5\nstalled_after_seconds = 60")
    sandbox.faults.configure(FaultSpec.parse("latency=150ms"))
    syncing = _leadsync(config, "sync", "--once")
    run_id = _running_run(config, syncing)
    thief = "thief:7:abcdef/sync"
    with Store(config.database_url) as store, store.engine.begin() as connection:
        taken = connection.execute(
            tables.leases.update()
            .where(tables.leases.c.name == SYNC_LEASE)
            .values(holder=thief, expires_at=datetime.now(UTC) + timedelta(minutes=10))
        )
        assert taken.rowcount == 1
    _, err = syncing.communicate(timeout=60)

    assert syncing.returncode == 1, err
    assert "Traceback" not in err
    assert err.rstrip().splitlines()[-1] == (
        f"leadsync: the sync lease was taken over by {thief} while this sync ran: it stopped "
        "at a batch boundary, what it did is committed; the next run goes on from there"
    )
    with Store(config.database_url) as store:
        assert {run.run_id: run.status for run in store.run_log.latest()} == {run_id: "interrupted"}
        held = Leases(store.engine, "anyone").info(SYNC_LEASE)
        assert held is not None
        assert held.holder == thief  # the taker's, left alone


@REAL_PROCESSES
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_sync_stopped_while_it_waits_for_the_lease_says_so_at_once_having_done_nothing(
    config: Config, sandbox: Sandbox, stop: signal.Signals
) -> None:
    config = _with(config, service="lease_wait_seconds = 600")
    _hold_the_lease(config, ELSEWHERE, since=datetime.now(UTC), ttl=timedelta(minutes=10))
    written = write_calls(sandbox)
    waiting = _leadsync(config, "sync", "--once")
    said = _first_line(waiting)  # it says whom it waits for before it waits
    assert f"waiting up to 600 s for the sync lease, which {ELSEWHERE} holds" in said
    waiting.send_signal(stop)
    _, err = waiting.communicate(timeout=60)  # not the 600 s it would wait

    assert waiting.returncode == 0, err
    assert "stopped while waiting for the sync lease: nothing was done" in err
    assert "Traceback" not in err
    assert _leads_and_runs(config) == (0, [])
    assert write_calls(sandbox) == written
    with Store(config.database_url) as store:
        held = Leases(store.engine, "anyone").info(SYNC_LEASE)
    assert held is not None
    assert held.holder == ELSEWHERE  # untouched


@REAL_PROCESSES
def test_a_backfill_takes_the_expired_lease_of_a_killed_sync_and_marks_its_run_abandoned(
    config: Config,
) -> None:
    # A `sync --once` killed an hour ago; the next to take the lease is a backfill's chunk.
    left_running = _a_sync_killed_an_hour_ago(config)

    backfilled = _leadsync(config, "backfill")
    _, err = backfilled.communicate(timeout=120)
    assert backfilled.returncode == 0, err

    with Store(config.database_url) as store:
        statuses = {run.run_id: run.status for run in store.run_log.latest()}
    assert statuses.pop(left_running) == "abandoned"  # not "running" for ever
    assert set(statuses.values()) == {"succeeded"}


@REAL_PROCESSES
@pytest.mark.parametrize("command", ["retry", "revert"])
def test_revert_and_retry_stopped_while_they_wait_for_the_lease_say_so_having_done_nothing(
    config: Config, sandbox: Sandbox, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    contact = next(c for c in sandbox.hubspot.snapshot() if c["properties"].get("email"))
    sandbox.hubspot.set_activity(int(contact["id"]), {"annualrevenue": "about 12k"})
    assert main(["sync", "--once", "--json", "--config", str(config.path)]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    config = _with(config, service="lease_wait_seconds = 600")
    _hold_the_lease(config, ELSEWHERE, since=datetime.now(UTC), ttl=timedelta(minutes=10))
    leads, runs = _leads_and_runs(config)
    written = write_calls(sandbox)
    args = ["quarantine", "retry", "--all"] if command == "retry" else ["revert", run_id, "--yes"]

    waiting = _leadsync(config, *args)
    assert "waiting up to 600 s for the sync lease" in _first_line(waiting)
    waiting.send_signal(signal.SIGINT)
    _, err = waiting.communicate(timeout=60)

    assert waiting.returncode == 0, err
    assert "stopped while waiting for the sync lease: nothing was done" in err
    assert "Traceback" not in err
    assert write_calls(sandbox) == written
    assert _leads_and_runs(config) == (leads, runs)
