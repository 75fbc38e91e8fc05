"""Backfills and the reconciliation sweep against the sandbox, with leadsync's clock held."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from leadsync import runtime as runtime_module
from leadsync.config import Config, load_config
from leadsync.connectors.base import Page
from leadsync.errors import ServerError
from leadsync.runtime import Runtime, open_runtime
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sync import backfill as backfill_module
from leadsync.sync.backfill import SWEEP, Backfill, BackfillSpec, Status
from leadsync.sync.leases import Leases
from tests.support import crm_state, set_up_sandbox_config

SEEDED_UNTIL = datetime(2026, 6, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 2, tzinfo=UTC)
SETTINGS = SandboxSettings(
    port=0,
    seed=11,
    leads=260,
    seed_until=SEEDED_UNTIL,
    hubspot=HubSpotSettings(ten_second_limit=100_000, searches_per_second=1_000),
)
BOTH = ("hubspot", "salesforce")
WRITE_ENDPOINTS = ("hubspot.contacts.batch_update", "salesforce.collection_update")
SERVICE = """
[service]
lease_seconds = 1

[backfill]
chunk_records = 100
yield_seconds = 0
"""


class Cut(BaseException):
    """Stands for the process dying: nothing may catch it."""


def config_for(sandbox: Sandbox, folder: Path, hubspot: str = "") -> Config:
    """A sandbox config with SERVICE's settings, and `hubspot` lines added to [hubspot]."""
    config: Config = set_up_sandbox_config(sandbox, folder)
    assert config.path is not None
    text = config.path.read_text().replace("[hubspot]\n", f"[hubspot]\n{hubspot}")
    config.path.write_text(text + SERVICE)
    return load_config(config.path)


def run(config: Config, spec: BackfillSpec, *, wrap: Any = None) -> Backfill:
    """The backfill of `spec` (the unfinished one asked the same way, or a new one)."""
    with open_runtime(config) as runtime:
        if wrap is not None:
            for crm in list(runtime.connectors):
                runtime.connectors[crm] = wrap(crm, runtime.connectors[crm])
        queue = runtime.backfill_queue()
        chosen = queue.unfinished_like(spec) or queue.create(spec)
        return runtime.run_backfill(
            chosen.backfill_id, should_stop=lambda: False, clock=lambda: NOW
        )


def write_calls(sandbox: Sandbox) -> int:
    endpoints = sandbox.stats.as_dict()["endpoints"]
    return sum(endpoints.get(name, 0) for name in WRITE_ENDPOINTS)


class CutAfterPages:
    """A connector whose full pull dies after `pages` pages (the process killed)."""

    def __init__(self, inner: Any, pages: int) -> None:
        self._inner = inner
        self._pages = pages
        self.crm = inner.crm

    def pull_all(self, checkpoint: str | None = None, *, fields: Any) -> Iterator[Page]:
        for served, page in enumerate(self._inner.pull_all(checkpoint, fields=fields)):
            if served == self._pages:
                raise Cut
            yield page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], int]:
    """The CRM state after one uninterrupted backfill of both CRMs, and its write calls."""
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path_factory.mktemp("reference"))
        sandbox.stats.clear()
        done = run(config, BackfillSpec(BOTH))
        assert done.status == Status.SUCCEEDED, done.message
        return crm_state(sandbox), write_calls(sandbox)


def test_a_backfill_pulls_everything_and_writes_what_a_sync_would(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    backfilled, _ = reference
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        with open_runtime(config) as runtime:
            summary = runtime.engine(clock=lambda: NOW).run()
        assert sum(c.written for c in summary.crms.values()) > 0
        assert crm_state(sandbox) == backfilled


def test_a_backfills_progress_counts_every_record_of_each_crm(tmp_path: Path) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        # As they were when it started: its handoffs create Salesforce leads it did not pull.
        before = {
            "hubspot": sandbox.hubspot.snapshot(),
            "salesforce": sandbox.salesforce.snapshot("Lead"),
        }
        done = run(config, BackfillSpec(BOTH))
        for crm, records in before.items():
            figures = done.of(crm)
            assert figures.pulled == figures.kept == figures.total == len(records)
            assert figures.done
            assert figures.written > 0
        assert done.finished_at is not None


@pytest.mark.parametrize(("crm", "pages"), [("hubspot", 1), ("hubspot", 2), ("salesforce", 0)])
def test_a_backfill_killed_mid_pull_then_resumed_ends_like_one_that_ran_through(
    reference: tuple[dict[str, Any], int], tmp_path: Path, crm: str, pages: int
) -> None:
    expected, expected_writes = reference
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        sandbox.stats.clear()

        def dying(name: str, connector: Any) -> Any:
            return CutAfterPages(connector, pages) if name == crm else connector

        with pytest.raises(Cut):
            run(config, BackfillSpec(BOTH), wrap=dying)
        time.sleep(1.1)  # the dead runner's heartbeat goes stale (lease_seconds = 1)
        resumed = run(config, BackfillSpec(BOTH))
        assert resumed.status == Status.SUCCEEDED, resumed.message
        assert crm_state(sandbox) == expected
        # At most the cut-off chunk's write batches again (100 records: one per CRM).
        assert write_calls(sandbox) <= expected_writes + 2


def test_a_heartbeat_written_late_does_not_put_older_progress_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heartbeat thread's beat holds the backfill as it was when the beat began; written
    after the runner saved newer progress (its retries while the database is locked, as the
    fault suite met), it must not put the older counts back: killed then, the runner would
    leave HubSpot's finished pull to be pulled again."""
    queue_class = backfill_module.BackfillQueue
    beat = queue_class.heartbeat
    first: list[Backfill] = []
    hubspot_done, late_beat_written = threading.Event(), threading.Event()

    def heartbeat(self: Any, backfill: Backfill, **options: Any) -> bool:
        first.append(backfill)
        if threading.current_thread().name != "backfill-heartbeat":
            alive = beat(self, backfill, **options)
            if backfill.of("hubspot").done:
                hubspot_done.set()
            return alive
        if late_beat_written.is_set() or not hubspot_done.wait(timeout=10):
            return beat(self, backfill, **options)
        try:
            return beat(self, first[0], **options)  # begun before the pull, written after
        finally:
            late_beat_written.set()

    class DiesAtSalesforce:
        def __init__(self, inner: Any) -> None:
            self._inner = inner
            self.crm = inner.crm

        def count_all(self) -> int | None:
            assert late_beat_written.wait(timeout=10), "the heartbeat thread never beat"
            raise Cut

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    monkeypatch.setattr(queue_class, "heartbeat", heartbeat)
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        with pytest.raises(Cut):
            run(
                config,
                BackfillSpec(BOTH),
                wrap=lambda crm, c: c if crm == "hubspot" else DiesAtSalesforce(c),
            )
        with open_runtime(config, connect=False) as runtime:
            (left,) = runtime.backfill_queue().list()
    assert left.of("hubspot").done
    assert left.of("hubspot").pulled == len(sandbox.hubspot.snapshot())


def test_a_running_backfill_is_not_taken_over_while_its_runner_is_alive(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        with open_runtime(config, connect=False) as runtime:
            queue = runtime.backfill_queue()
            job = queue.create(BackfillSpec(("hubspot",)))
            first = queue.claim(job.backfill_id, "replica-a", stale_after=timedelta(seconds=30))
            assert first is not None
            assert (
                queue.claim(job.backfill_id, "replica-b", stale_after=timedelta(seconds=30)) is None
            )
            assert queue.claim(job.backfill_id, "replica-b", stale_after=timedelta(0)) is not None


def test_only_records_modified_within_the_window_are_taken(tmp_path: Path) -> None:
    since, until = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        done = run(config, BackfillSpec(("salesforce",), since=since, until=until))
        with open_runtime(config, connect=False) as runtime:
            stored = runtime.store.known_stamps(
                "salesforce", [lead["Id"] for lead in sandbox.salesforce.snapshot("Lead")]
            )
    assert stored
    assert all(since <= stamp < until for stamp in stored.values())
    figures = done.of("salesforce")
    assert 0 < figures.kept < figures.pulled


def test_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        sandbox.stats.clear()
        done = run(config, BackfillSpec(BOTH, dry_run=True))
        assert done.status == Status.SUCCEEDED
        assert write_calls(sandbox) == 0
        with open_runtime(config, connect=False) as runtime:
            (recorded,) = runtime.store.run_log.latest(limit=1)
        assert recorded.kind == BACKFILL_KIND
        assert sum(crm["records_to_update"] for crm in recorded.summary["crms"].values()) > 0


BACKFILL_KIND = "backfill"


def set_hubspot_daily_limit(sandbox: Sandbox, limit: int) -> None:
    """HubSpot's daily request limit in the sandbox, its usage today started again: with
    `daily_reserve = 1000` configured, a limit of 1,000 and a few leaves room for that few
    calls before a backfill pauses at the reserve."""
    control = requests.Session()
    control.trust_env = False
    control.post(
        f"{sandbox.url}/_sandbox/limits", json={"hubspot_daily_limit": limit}, timeout=30
    ).raise_for_status()


def test_reaching_the_quota_reserve_pauses_the_backfill_and_a_rerun_finishes_it(
    reference: tuple[dict[str, Any], int], tmp_path: Path
) -> None:
    expected, _ = reference
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path, "daily_reserve = 1000\n")
        # Room for the first chunks only, then the reserve is reached.
        set_hubspot_daily_limit(sandbox, 1010)
        paused = run(config, BackfillSpec(BOTH))
        assert paused.status == Status.PAUSED
        assert "hubspot" in paused.message
        assert "reserve" in paused.message
        with open_runtime(config, connect=False) as runtime:
            (recorded,) = runtime.store.run_log.latest(limit=1)
        # Stopped on purpose at the operator's reserve: not a failure in the sync health.
        assert (recorded.kind, recorded.status) == (BACKFILL_KIND, "paused")
        assert crm_state(sandbox) != expected
        set_hubspot_daily_limit(sandbox, 1_000_000)
        done = run(config, BackfillSpec(BOTH))
        assert (done.backfill_id, done.status) == (paused.backfill_id, Status.SUCCEEDED)
        assert crm_state(sandbox) == expected


def test_between_chunks_a_backfill_lets_another_writer_take_the_sync_lease(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        # The backfill leaves three gaps between its chunks, of which the writer must get into
        # two: a second each, so that a loaded machine's scheduling still lets it in (at
        # 0.3 s it once missed one under a full suite's load).
        config.path.write_text(  # type: ignore[union-attr]
            config.path.read_text().replace("yield_seconds = 0", "yield_seconds = 1")  # type: ignore[union-attr]
        )
        config = load_config(config.path)
        taken: list[datetime] = []
        done = threading.Event()

        def held_by_the_backfill(leases: Leases) -> bool:
            held = leases.info("sync")
            return held is not None and held.holder != leases.holder

        def another_writer(runtime: Runtime) -> None:
            # Takes the lease whenever it is free, then waits for the backfill to hold it
            # again: each take is in another of its gaps, however fast its chunks go.
            leases = Leases(runtime.store.engine, "the-sync-job")
            while not done.is_set():
                if leases.acquire("sync", timedelta(seconds=5)):
                    taken.append(datetime.now(UTC))
                    leases.release("sync")
                    while not done.is_set() and not held_by_the_backfill(leases):
                        time.sleep(0.01)
                time.sleep(0.02)

        with open_runtime(config, connect=False) as watcher:
            thread = threading.Thread(target=another_writer, args=(watcher,))
            thread.start()
            try:
                backfill = run(config, BackfillSpec(BOTH))
            finally:
                done.set()
                thread.join()
        assert backfill.status == Status.SUCCEEDED
        started, finished = backfill.started_at, backfill.finished_at
        assert started is not None
        assert finished is not None
        during = [moment for moment in taken if started < moment < finished]
        assert len(during) >= 2  # it got in between chunks, more than once


def test_a_backfill_the_sync_lease_stays_closed_to_pauses_and_its_run_says_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The runtime waits at least 20 s for the lease; two are as long past this one's 0.1 s
    # tries, and what is tested is what the backfill does once the wait is out.
    runner = runtime_module.BackfillRunner

    def waiting_two_seconds(*args: Any, **kwargs: Any) -> Any:
        return runner(*args, **{**kwargs, "lease_wait": timedelta(seconds=2)})

    monkeypatch.setattr(runtime_module, "BackfillRunner", waiting_two_seconds)
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        assert config.path is not None
        text = config.path.read_text()
        config.path.write_text(
            text.replace("lease_seconds = 1\n", "lease_seconds = 1\nlease_wait_seconds = 0.1\n")
        )
        config = load_config(config.path)
        with open_runtime(config, connect=False) as watcher:
            # Another replica's long sync holds the lease past the backfill's wait.
            assert Leases(watcher.store.engine, "a-long-sync").acquire("sync", timedelta(hours=1))
            backfill = run(config, BackfillSpec(BOTH))
            (recorded,) = watcher.store.run_log.latest(limit=1)
        assert backfill.status == Status.PAUSED
        assert "the sync lease stayed taken" in backfill.message
        # Waiting its turn is no failure: the next poll goes on with it.
        assert (recorded.kind, recorded.status) == (BACKFILL_KIND, "paused")


# --------------------------------------------------------------------------- the sweep


def test_the_sweep_repairs_what_incremental_pulls_miss(tmp_path: Path) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        with open_runtime(config) as runtime:
            runtime.engine(clock=lambda: NOW).run()
        # A contact archived in HubSpot: incremental search never lists archived contacts.
        contact = next(c for c in sandbox.hubspot.snapshot() if c["properties"].get("email"))
        session = requests.Session()
        session.trust_env = False
        answer = session.delete(
            f"{sandbox.url}/crm/v3/objects/contacts/{contact['id']}",
            headers={"Authorization": "Bearer sandbox-token"},
        )
        assert answer.status_code == 204
        # (An opportunity won later is no longer one of these: Opportunities are pulled
        # incrementally, see tests/sync/test_related_objects.py.)
        with open_runtime(config) as runtime:
            runtime.engine(clock=lambda: NOW).run()
            (kept,) = runtime.store.snapshots("hubspot", [contact["id"]]).values()
            assert not kept.deleted
        done = run(config, BackfillSpec(BOTH, kind=SWEEP))
        assert done.status == Status.SUCCEEDED, done.message
        with open_runtime(config, connect=False) as runtime:
            (gone,) = runtime.store.snapshots("hubspot", [contact["id"]]).values()
            assert gone.deleted


def test_the_sweep_rescores_every_lead_after_a_definition_change(tmp_path: Path) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        with open_runtime(config) as runtime:
            # The second run takes in the first one's echoes: then nothing is pending. (Runs
            # are minutes apart: HubSpot's search has caught up with the first one's writes.)
            runtime.engine(clock=lambda: NOW).run()
            sandbox.hubspot.settle_search()
            runtime.engine(clock=lambda: NOW).run()
            before = runtime.definition.model_version
        edited = tmp_path / "lead_definition.toml"
        edited.write_text(
            config.definition_path.read_text().replace(
                'points = 15\nlabel = "industry is tech"', 'points = 14\nlabel = "industry is tech"'
            ),
        )
        assert edited.read_text() != config.definition_path.read_text()
        assert config.path is not None
        config.path.write_text(
            config.path.read_text().replace(str(config.definition_path), str(edited))
        )
        config = load_config(config.path)
        with open_runtime(config) as runtime:
            after = runtime.definition.model_version
            assert after != before
            runtime.engine(clock=lambda: NOW).run()  # nothing changed in the CRMs: no rescore
        versions = {
            c["properties"].get("leadsync_model_version") for c in sandbox.hubspot.snapshot()
        }
        assert after not in versions
        done = run(config, BackfillSpec(BOTH, kind=SWEEP))
        assert done.status == Status.SUCCEEDED
        scored = [
            c["properties"].get("leadsync_model_version")
            for c in sandbox.hubspot.snapshot()
            if c["properties"].get("leadsync_model_version")
        ]
        assert scored
        assert set(scored) == {after}


# ------------------------------------------------------------------------ stop and resume


def test_a_waiting_backfill_stops_at_once_and_the_service_leaves_it_until_resumed(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        with open_runtime(config, connect=False) as runtime:
            queue = runtime.backfill_queue()
            job = queue.create(BackfillSpec(("hubspot",)))
            stopped = runtime.stop_backfill(job.backfill_id)
            assert stopped is not None
            assert stopped.status == Status.STOPPED
            # The service's poll (no id) passes it by; named, it can be run again.
            assert queue.claim(None, "replica-a", stale_after=timedelta(seconds=30)) is None
            resumed = queue.resume(job.backfill_id)
            assert resumed is not None
            assert resumed.status == Status.QUEUED
            claimed = queue.claim(None, "replica-a", stale_after=timedelta(seconds=30))
            assert claimed is not None
            assert claimed.backfill_id == job.backfill_id
            assert runtime.stop_backfill("nope") is None
            assert queue.resume("nope") is None


def test_stopping_a_finished_backfill_or_resuming_a_queued_one_changes_nothing(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        done = run(config, BackfillSpec(("hubspot",), since=SEEDED_UNTIL))
        assert done.status == Status.SUCCEEDED
        with open_runtime(config, connect=False) as runtime:
            queue = runtime.backfill_queue()
            after = runtime.stop_backfill(done.backfill_id)
            assert after is not None
            assert after.status == Status.SUCCEEDED
            waiting = queue.create(BackfillSpec(("hubspot",)))
            again = queue.resume(waiting.backfill_id)
            assert again is not None
            assert (again.status, again.message) == (Status.QUEUED, "")


def test_a_running_backfill_asked_to_stop_stops_after_its_batch_and_resumes_to_the_end(
    reference: tuple[dict[str, Any], int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected, _ = reference
    # The runner reads a stop request at every check, not once a second: the stop lands at
    # the first check after the request, mid-pull.
    monkeypatch.setattr(backfill_module, "STOP_POLL_SECONDS", 0.0)
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        asked = threading.Event()

        class StopAfterFirstPage:
            """Asks for the stop, as a person in the console would, once a page is in."""

            def __init__(self, inner: Any) -> None:
                self._inner = inner
                self.crm = inner.crm

            def pull_all(self, checkpoint: str | None = None, *, fields: Any) -> Iterator[Page]:
                for page in self._inner.pull_all(checkpoint, fields=fields):
                    yield page
                    if not asked.is_set():
                        asked.set()
                        with open_runtime(config, connect=False) as other:
                            (running,) = other.backfill_queue().list()
                            assert other.stop_backfill(running.backfill_id) is not None

            def __getattr__(self, name: str) -> Any:
                return getattr(self._inner, name)

        stopped = run(config, BackfillSpec(BOTH), wrap=lambda _, c: StopAfterFirstPage(c))
        assert asked.is_set()
        assert stopped.status == Status.STOPPED, stopped.message
        assert stopped.message == "stopped on request: resume to go on"
        # Asked while the second page was fetched: it stopped once that page was in.
        assert stopped.of("hubspot").pulled == 200
        assert not stopped.of("hubspot").done
        with open_runtime(config, connect=False) as runtime:
            assert runtime.backfill_queue().resume(stopped.backfill_id) is not None
        resumed = run(config, BackfillSpec(BOTH))
        assert resumed.backfill_id == stopped.backfill_id
        assert resumed.status == Status.SUCCEEDED, resumed.message
        assert crm_state(sandbox) == expected


class FailsAtFirstPage:
    """A connector whose full pull fails for good: a CRM down after every retry, or the
    database gone under the runner."""

    def __init__(self, inner: Any, error: Exception) -> None:
        self._inner = inner
        self._error = error
        self.crm = inner.crm

    def pull_all(self, checkpoint: str | None = None, *, fields: Any) -> Iterator[Page]:
        raise self._error
        yield  # a generator, like the connector's

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ServerError("try later", crm="hubspot", status=503), "hubspot 503: try later"),
        (
            sa.exc.OperationalError("SELECT 1", {"email": "x@example.com"}, Exception("gone")),
            "database sqlite:///",
        ),
    ],
    ids=["crm", "store"],
)
def test_a_failed_backfill_says_why_in_one_line_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, error: Exception, message: str
) -> None:
    # Issue 16, hole 6: a backfill that failed at run time logged a traceback, and kept the
    # exception's whole text (for the store: SQLAlchemy's, with the statement) as its message.
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)

        def failing(name: str, connector: Any) -> Any:
            return FailsAtFirstPage(connector, error) if name == "hubspot" else connector

        done = run(config, BackfillSpec(BOTH), wrap=failing)
    assert done.status == Status.FAILED
    assert message in done.message
    assert "\n" not in done.message
    assert "SELECT" not in done.message
    (said,) = [r for r in caplog.records if f"backfill {done.backfill_id} failed" in r.getMessage()]
    assert said.exc_info is None
    assert message in said.getMessage()


class CountsNothing:
    """A connector that cannot say how many records a full pull lists (`count_all` None)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.crm = inner.crm

    def count_all(self) -> int | None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_crm_that_cannot_count_its_records_is_backfilled_with_no_total(
    tmp_path: Path,
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = config_for(sandbox, tmp_path)
        done = run(config, BackfillSpec(BOTH), wrap=lambda _, c: CountsNothing(c))
    assert done.status == Status.SUCCEEDED, done.message
    assert {crm: progress.total for crm, progress in done.progress.items()} == dict.fromkeys(BOTH)
    assert all(progress.pulled > 0 for progress in done.progress.values())
