"""`leadsync backfill` as an admin runs it: in the foreground, killed and run again, queued,
listed, and refused when asked wrongly."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from leadsync.cli import main
from leadsync.config import Config, load_config
from leadsync.sandbox import FaultSpec, HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sync.backfill import Backfill, BackfillQueue, Status
from leadsync.sync.store import Store
from tests.support import (
    REAL_PROCESSES,
    mapped_state,
    set_up_sandbox_config,
    wait_until_backfills_claimable,
)

pytestmark = REAL_PROCESSES

SETTINGS = SandboxSettings(
    port=0,
    seed=12,
    leads=1200,
    seed_until=datetime(2026, 6, 1, tzinfo=UTC),
    hubspot=HubSpotSettings(ten_second_limit=100_000, searches_per_second=1_000),
    faults=FaultSpec.parse("latency=25ms"),
)


def backfill_config(sandbox: Sandbox, folder: Path) -> Config:
    folder.mkdir(parents=True, exist_ok=True)
    config: Config = set_up_sandbox_config(sandbox, folder)
    assert config.path is not None
    config.path.write_text(
        config.path.read_text()
        + "\n[service]\nlease_seconds = 1\n\n[backfill]\nchunk_records = 100\n"
        "yield_seconds = 0\nprogress_log_seconds = 0.5\n"
    )
    return load_config(config.path)


def backfill(config: Config, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "leadsync.cli", "backfill", "--config", str(config.path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def progress(config: Config) -> Backfill | None:
    with Store(config.database_url) as store:
        found = BackfillQueue(store.engine).list()
    return found[0] if found else None


def mid_pull(backfill: Backfill | None) -> bool:
    return backfill is not None and 0 < backfill.of("hubspot").pulled < 1200


def mid_settle(backfill: Backfill | None) -> bool:
    return backfill is not None and backfill.of("salesforce").done


@pytest.fixture(scope="module")
def ran_through(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict[str, Any]]:
    """A backfill over SETTINGS that ran through: its exit code, its stderr, and the mapped
    state it left, the same for every kill below (a fixed seed, the clock left out)."""
    with Sandbox(SETTINGS) as clean:
        whole = backfill(backfill_config(clean, tmp_path_factory.mktemp("clean")))
        _, err = whole.communicate(timeout=300)
        return whole.returncode, err, mapped_state(clean)


@pytest.mark.slow
@pytest.mark.parametrize("when", [mid_pull, mid_settle])
def test_a_backfill_killed_then_run_again_ends_like_one_that_ran_through(
    ran_through: tuple[int, str, dict[str, Any]],
    tmp_path: Path,
    when: Callable[[Backfill | None], bool],
) -> None:
    code, err, expected = ran_through
    assert code == 0, err
    # Off a terminal the progress comes as log lines, with counts and what is left.
    assert re.search(r"backfill hubspot: [\d,]+ of 1,200 \(\d+%\), [\d,]+/s", err), err
    assert "backfill salesforce done: salesforce: 1,200 of 1,200 (100%)" in err
    with Sandbox(SETTINGS) as sandbox:
        config = backfill_config(sandbox, tmp_path / "killed")
        victim = backfill(config)
        deadline = time.monotonic() + 60
        while not when(progress(config)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.2)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        cut = progress(config)
        assert cut is not None
        assert cut.status == Status.RUNNING  # killed before it could finish
        wait_until_backfills_claimable(
            config.database_url, lease_seconds=1
        )  # its heartbeat goes stale
        again = backfill(config)
        out, err = again.communicate(timeout=300)
        assert again.returncode == 0, err
        assert f"going on with backfill {cut.backfill_id}" in err
        assert "succeeded" in out
        assert mapped_state(sandbox) == expected
        # The killed runner's run does not stay "running" in the reports for ever.
        with Store(config.database_url) as store:
            statuses = sorted(run.status for run in store.run_log.latest(limit=10))
        assert statuses == ["abandoned", "succeeded"]


def test_a_killed_backfill_reads_as_abandoned_until_it_is_taken_up_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = backfill_config(sandbox, tmp_path)
        victim = backfill(config)
        deadline = time.monotonic() + 120
        while not mid_pull(progress(config)):
            assert time.monotonic() < deadline, "the backfill never got going"
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        killed = progress(config)
        assert killed is not None

        def listed() -> dict[str, Any]:
            assert main(["backfill", "--status", "--json", "--config", str(config.path)]) == 0
            (found,) = json.loads(capsys.readouterr().out)
            return dict(found)

        # Nobody beats for it any more: once its heartbeat is older than the lease (1 s), the
        # listing says so, with how to go on, where it said "running" for ever.
        deadline = time.monotonic() + 30
        while (shown := listed())["status"] != "abandoned":
            assert shown["status"] == "running"
            assert time.monotonic() < deadline, shown
            time.sleep(0.2)
        assert f"--resume {killed.backfill_id}" in shown["message"]
        assert main(["backfill", "--status", "--config", str(config.path)]) == 0
        assert re.search(rf"{killed.backfill_id}\s+backfill\s+abandoned", capsys.readouterr().out)
        # The same command goes on with it, and it ends.
        again = backfill(config)
        _, err = again.communicate(timeout=300)
        assert again.returncode == 0, err
        assert f"going on with backfill {killed.backfill_id}" in err
        assert listed()["status"] == "succeeded"


def test_status_lists_backfills_as_text_and_json_and_queue_hands_one_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Sandbox(SandboxSettings(port=0, seed=2, leads=30)) as sandbox:
        config = backfill_config(sandbox, tmp_path)
        path = str(config.path)
        assert main(["backfill", "--config", path, "--status"]) == 0
        assert "no backfills yet" in capsys.readouterr().out
        assert (
            main(
                [
                    "backfill",
                    "--config",
                    path,
                    "--queue",
                    "--crm",
                    "hubspot",
                    "--since",
                    "2026-01-01",
                ]
            )
            == 0
        )
        queued = capsys.readouterr().out
        assert "queued backfill" in queued
        assert main(["backfill", "--config", path, "--status", "--json"]) == 0
        (listed,) = json.loads(capsys.readouterr().out)
        assert listed["status"] == "queued"
        assert listed["crms"] == ["hubspot"]
        assert listed["since"] == "2026-01-01T00:00:00+00:00"
        assert listed["id"] in queued
        assert main(["backfill", "--config", path, "--resume", listed["id"]]) == 0
        assert "succeeded" in capsys.readouterr().out
        assert main(["backfill", "--config", path, "--resume", listed["id"]]) == 1
        assert f"backfill {listed['id']} has succeeded already" in capsys.readouterr().err
        assert main(["backfill", "--config", path, "--status"]) == 0
        table = capsys.readouterr().out
        assert listed["id"] in table
        assert "succeeded" in table
        assert "since 2026-01-01" in table


def test_stop_stops_a_queued_backfill_and_resume_runs_it_from_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Sandbox(SandboxSettings(port=0, seed=2, leads=30)) as sandbox:
        config = backfill_config(sandbox, tmp_path)
        path = str(config.path)
        assert main(["backfill", "--config", path, "--queue", "--crm", "hubspot"]) == 0
        capsys.readouterr()
        queued = progress(config)
        assert queued is not None
        assert main(["backfill", "--config", path, "--stop", queued.backfill_id]) == 0
        shown = capsys.readouterr().out
        assert queued.backfill_id in shown
        assert "stopped" in shown
        assert "stopped on request: resume to go on" in shown
        assert main(["backfill", "--config", path, "--resume", queued.backfill_id]) == 0
        assert "succeeded" in capsys.readouterr().out
        assert main(["backfill", "--config", path, "--stop", "nope"]) == 2
        assert "no backfill 'nope' (see --status)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--resume", "nope"], 2, "no backfill 'nope'"),
        (["--since", "2026-05-01", "--until", "2026-04-01"], 2, "--until must be after --since"),
        (["--sweep", "--crm", "hubspot"], 2, "--sweep covers every CRM"),
    ],
)
def test_bad_requests_are_refused_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    with Sandbox(SandboxSettings(port=0, seed=2, leads=10)) as sandbox:
        config = backfill_config(sandbox, tmp_path)
        assert main(["backfill", "--config", str(config.path), *args]) == code
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args", [["--since", "yesterday"], ["--crm", "pipedrive"], ["--queue", "--status"]]
)
def test_malformed_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["backfill", *args])
    assert usage.value.code == 2
    assert "usage:" in capsys.readouterr().err
