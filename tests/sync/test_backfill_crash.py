"""A backfill cut off at any point, then resumed, ends in the CRM state of an uninterrupted
backfill, writing at most one batch per CRM twice.

What tests/sync/test_engine_crash.py proves of a sync run, for a backfill of both CRMs: the
cut is a `Cut` raised just after a call of the runner's that writes (to the store, its ledgers,
the backfill queue, the sync lease, a CRM), or before its first call; from then on the process
is dead: no call of it goes through. The backfill is then resumed as `leadsync backfill` with
the same arguments resumes it, once the dead runner's heartbeat and sync lease are stale.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import pytest
import sqlalchemy as sa

import leadsync.sync.backfill as backfill_module
from leadsync.config import Config, load_config
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.runtime import Runtime, open_runtime
from leadsync.sandbox import Sandbox, SandboxSettings
from leadsync.sync import tables as t
from leadsync.sync.backfill import (
    Backfill,
    BackfillSpec,
    CrmProgress,
    Status,
    _counted_with_each_batch,
)
from leadsync.sync.database import upgrade_database
from leadsync.sync.leases import Leases
from tests.support import Cut, crm_state
from tests.sync.test_backfill import BOTH, NOW, SETTINGS
from tests.sync.test_engine_crash import (
    CONNECTOR_WRITES,
    LEDGERS,
    READS,
    _config,
    _database_file,
    _Held,
    migrated_store,  # noqa: F401 (a fixture)
)

SPEC = BackfillSpec(BOTH)
# tests/sync/test_backfill.py's org and chunks (260 leads, 100 records a chunk, HubSpot's
# list pages of 100, the connectors' write batches), and a quarter of it: the same calls, in
# the same order (`test_the_scaled_backfill_makes_the_calls_of_a_full_sized_one`), at a
# fraction of the cost of each of the cases.
FULL_SIZED = {"leads": SETTINGS.leads, "chunk": 100, "page": 100, "hubspot": 100, "salesforce": 200}
SCALED_SIZES = {"leads": 65, "chunk": 25, "page": 25, "hubspot": 25, "salesforce": 50}
SCALED = replace(SETTINGS, leads=SCALED_SIZES["leads"])
# Long enough that neither the backfill's heartbeat nor its sync lease's renewal (each a third
# of it, in threads of their own) comes within a case: the calls a run makes, and so its cut
# points, are the same in every run, and no thread of the dead runner writes after the cut.
# What they write is no cut point of its own: a renewal moves the lease's expiry alone, and a
# beat writes the progress as the runner holds it (the counts of chunks already saved, a CRM's
# total once asked), which its next `queue.heartbeat` writes too.
LEASE_SECONDS = 300

# The backfill's calls that only read, besides a sync's (READS): held to it as READS are
# (`test_nothing_is_written_between_one_backfill_call_and_the_next`).
BACKFILL_READS = READS | {
    "cursors.checkpoint",
    "leases.info",
    "queue.get",
    "queue.list",
    "queue.stop_requested",
    "queue.unfinished_like",
}
# The sync lease's calls that write. `Leases.hold` makes them on its own instance, as its
# block opens and closes: they are wired on the instance (`_wired_leases`), not around it.
LEASE_WRITES = ("_take", "renew", "release")


class _Wire(Protocol):
    """What a call passes through on its way, told the call's name."""

    def wrap(self, call: Callable[..., Any], name: str) -> Callable[..., Any]: ...


class _Wired:
    """A store, queue or connector whose methods `names` (all, if None: the store's ledgers'
    too) pass the wire, named after `prefix`."""

    def __init__(
        self, inner: Any, wire: _Wire, names: frozenset[str] | None, prefix: str = ""
    ) -> None:
        self._inner = inner
        self._wire = wire
        self._names = names
        self._prefix = prefix
        self.crm = getattr(inner, "crm", None)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if self._names is None and name in LEDGERS:
            return _Wired(value, self._wire, None, f"{self._prefix}{name}.")
        if callable(value) and (self._names is None or name in self._names):
            return self._wire.wrap(value, self._prefix + name)
        return value


def _wired_leases(leases: Leases, wire: _Wire) -> Leases:
    for name in (*LEASE_WRITES, "info"):
        setattr(leases, name, wire.wrap(getattr(leases, name), f"leases.{name.lstrip('_')}"))
    return leases


class _Log:
    """A wire that logs the names of the calls."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def wrap(self, call: Callable[..., Any], name: str) -> Callable[..., Any]:
        def logged(*args: Any, **kwargs: Any) -> Any:
            self.names.append(name)
            return call(*args, **kwargs)

        return logged


class _Watch(_Log):
    """A wire that takes what is held just before and just after each call: `marks` gets
    (name, before, after) per call."""

    def __init__(self, held: _Held) -> None:
        super().__init__()
        self._held = held
        self.marks: list[tuple[str, Any, Any]] = []

    def wrap(self, call: Callable[..., Any], name: str) -> Callable[..., Any]:
        def watched(*args: Any, **kwargs: Any) -> Any:
            before = self._held()
            result = call(*args, **kwargs)
            self.marks.append((name, before, self._held()))
            return result

        return watched


class _Kill:
    """A wire that raises Cut just after the `at`-th call that is not a read (at 0: before
    the first call), taking what is held then; from then on every call raises Cut: the
    process is dead, its `finally` blocks make no call (a lease released, a run marked failed)
    that a kill would not make. Only the calls that write are counted: how often the runner
    reads a stop request (`queue.stop_requested`) goes by the wall clock."""

    def __init__(self, at: int, held: _Held) -> None:
        self.at = at
        self.writes = 0
        self._held = held
        self.held_at_cut: Any = None

    def _die(self) -> None:
        if self.held_at_cut is None:
            self.held_at_cut = self._held()
        raise Cut

    def wrap(self, call: Callable[..., Any], name: str) -> Callable[..., Any]:
        def cut(*args: Any, **kwargs: Any) -> Any:
            if self.held_at_cut is not None or self.at == 0:
                self._die()
            result = call(*args, **kwargs)
            if name not in BACKFILL_READS:
                self.writes += 1
                if self.writes == self.at:
                    self._die()
            return result

        return cut


def _backfill_config(sandbox: Sandbox, folder: Path, chunk: int, store: Path | None) -> Config:
    config = _config(sandbox, folder, store)
    assert config.path is not None
    with config.path.open("a") as toml:
        toml.write(
            f"\n[service]\nlease_seconds = {LEASE_SECONDS}\n\n"
            f"[backfill]\nchunk_records = {chunk}\nyield_seconds = 0\n"
        )
    return load_config(config.path)


def _connectors(config: Config, sizes: dict[str, int]) -> dict[str, Any]:
    """The connectors, their pages and write batches of `sizes`."""
    hubspot = replace(
        config.hubspot_connection(), list_page_size=sizes["page"], batch_size=sizes["hubspot"]
    )
    salesforce = replace(config.salesforce_connection(), collection_size=sizes["salesforce"])
    return {"hubspot": HubSpotConnector(hubspot), "salesforce": SalesforceConnector(salesforce)}


def _backfill(
    config: Config, wire: _Wire | None = None, *, sizes: dict[str, int] = SCALED_SIZES
) -> Backfill:
    """The backfill of both CRMs as tests/sync/test_backfill.py's `run` runs it: the unfinished
    one asked the same way, or a new one. The wire takes the store's calls (its ledgers' too),
    the queue's, the sync lease's and the connectors' writes."""
    with open_runtime(config, connect=False) as runtime:
        store = runtime.store
        connectors = _connectors(config, sizes)
        if wire is not None:
            wired: Any = _Wired(store, wire, None)
            runtime.store = wired
            connectors = {
                crm: _Wired(connector, wire, CONNECTOR_WRITES)
                for crm, connector in connectors.items()
            }
            own_queue, own_leases = runtime.backfill_queue, runtime.leases
            _rewire(
                runtime,
                lambda: _Wired(own_queue(), wire, None, "queue."),
                lambda role: _wired_leases(own_leases(role), wire),
            )
        runtime.connectors = connectors
        try:
            asked = runtime.backfill_queue()
            chosen = asked.unfinished_like(SPEC) or asked.create(SPEC)
            return runtime.run_backfill(
                chosen.backfill_id, should_stop=lambda: False, clock=lambda: NOW
            )
        finally:
            runtime.store = store


def _rewire(runtime: Runtime, queue: Callable[[], Any], leases: Callable[[str], Leases]) -> None:
    """The runtime's backfill queue and leases made by `queue` and `leases`."""
    runtime.backfill_queue = queue  # type: ignore[method-assign]
    runtime.leases = leases  # type: ignore[method-assign,assignment]


WRITE_VERBS = ("update", "upsert", "create")


def _writes(sandbox: Sandbox) -> dict[str, int]:
    """Each CRM's calls that write (update, upsert, create)."""
    endpoints = sandbox.stats.as_dict()["endpoints"]
    return {
        crm: sum(
            count
            for name, count in endpoints.items()
            if name.startswith(f"{crm}.") and any(verb in name for verb in WRITE_VERBS)
        )
        for crm in BOTH
    }


class Reference(NamedTuple):
    """An uninterrupted backfill: the CRM state it ends in, each CRM's write calls, the names
    of its calls that the cuts fall after, in order, and its progress as it ends."""

    state: dict[str, Any]
    writes: dict[str, int]
    cuts: list[str]
    progress: dict[str, CrmProgress]


def _uninterrupted(settings: SandboxSettings, folder: Path, sizes: dict[str, int]) -> Reference:
    with Sandbox(settings) as sandbox:
        config = _backfill_config(sandbox, folder, sizes["chunk"], None)
        log = _Log()
        sandbox.stats.clear()
        done = _backfill(config, log, sizes=sizes)
        assert done.status == Status.SUCCEEDED, done.message
        cuts = [name for name in log.names if name not in BACKFILL_READS]
        return Reference(crm_state(sandbox), _writes(sandbox), cuts, dict(done.progress))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return _uninterrupted(SCALED, tmp_path_factory.mktemp("reference"), SCALED_SIZES)


def test_the_scaled_backfill_makes_the_calls_of_a_full_sized_one(
    reference: Reference, tmp_path: Path
) -> None:
    full = _uninterrupted(SETTINGS, tmp_path, FULL_SIZED)
    assert reference.cuts == full.cuts
    # Several chunks of each CRM's pull, and several write batches.
    assert reference.cuts.count("save_page") >= 4
    assert reference.cuts.count("write") >= 4
    assert all(writes >= 2 for writes in reference.writes.values())


# More than the backfill's calls that write (asserted below): the cases past its last skip.
MOST_CUTS = 64


def test_the_cuts_cover_every_call_that_writes(reference: Reference) -> None:
    assert 10 < len(reference.cuts) < MOST_CUTS
    # The runner's own writes are cut, the store's and the CRMs'.
    assert {
        "queue.create",
        "queue.claim",
        "queue.heartbeat",
        "queue.finish",
        "leases.take",
        "leases.release",
        "run_log.start",
        "save_page",
        "release_held",
        "write",
        "upsert",
        "handoffs.save",
        "run_log.finish",
    } <= set(reference.cuts)
    assert reference.cuts[-1] == "queue.finish"


def test_nothing_is_written_between_one_backfill_call_and_the_next(tmp_path: Path) -> None:
    # What lets the cuts fall only just after a call that writes (and before the first): a
    # cut just before a call leaves what the cut just after the call before it leaves, and a
    # cut just after a read what the cut just before it leaves.
    with Sandbox(SCALED) as sandbox:
        config = _backfill_config(sandbox, tmp_path, SCALED_SIZES["chunk"], None)
        upgrade_database(config.database_url)  # the store's file exists for the watch
        held = _Held(sandbox, _database_file(config))
        watch = _Watch(held)
        try:
            assert _backfill(config, watch).status == Status.SUCCEEDED
        finally:
            held.close()
    marks = watch.marks
    assert len(marks) > 10
    for (name, _, after), (following, before, _) in itertools.pairwise(marks):
        assert after == before, f"something was written between {name} and {following}"
    changed = {name for name, before, after in marks if before != after}
    assert {"write", "save_page", "queue.heartbeat", "leases.take"} <= changed  # it sees writes
    assert not changed & BACKFILL_READS, "a call named a read wrote"


@pytest.mark.slow
@pytest.mark.parametrize("at", range(MOST_CUTS))
def test_a_backfill_cut_at_any_point_then_resumed_ends_like_an_uninterrupted_one(
    reference: Reference,
    migrated_store: Path,  # noqa: F811
    tmp_path: Path,
    at: int,
) -> None:
    if at > len(reference.cuts):
        pytest.skip(f"the backfill makes {len(reference.cuts)} calls that write")
    with Sandbox(SCALED) as sandbox:
        resumed = _cut_then_resume(sandbox, tmp_path, at, store=migrated_store)
        assert resumed.status == Status.SUCCEEDED, resumed.message
        assert crm_state(sandbox) == reference.state
        batch_redone = 1  # per CRM
        writes = _writes(sandbox)
        for crm, uninterrupted in reference.writes.items():
            assert writes[crm] <= uninterrupted + batch_redone, crm
    if at < len(reference.cuts):  # not a new backfill, after the cut one finished
        # Each record counted once, as pulled and as written.
        assert _pulled(resumed) == _pulled(reference)
        if at and reference.cuts[at - 1] == "write":
            # Cut after a CRM took a batch, before leadsync heard its answer: the batch is in
            # neither the audit log nor the counts, unless the resumed backfill writes it
            # again; where it checks the records first, it finds them changed since their
            # pull (by that write), reads them again and has nothing left to write to them.
            # Never counted twice.
            assert all(_written(resumed)[crm] <= n for crm, n in _written(reference).items())
        else:
            assert _written(resumed) == _written(reference)


def _pulled(backfill: Backfill | Reference) -> dict[str, tuple[Any, ...]]:
    progress = dict(backfill.progress)
    return {crm: (p.pulled, p.kept, p.total, p.done) for crm, p in progress.items()}


def _written(backfill: Backfill | Reference) -> dict[str, int]:
    return {crm: progress.written for crm, progress in dict(backfill.progress).items()}


def _cut_then_resume(sandbox: Sandbox, folder: Path, at: int, *, store: Path) -> Backfill:
    """The backfill over `sandbox` cut at `at` (see `_Kill`), then resumed: as it ends."""
    config = _backfill_config(sandbox, folder, SCALED_SIZES["chunk"], store)
    sandbox.stats.clear()
    held = _Held(sandbox, _database_file(config))
    kill = _Kill(at, held)
    try:
        with pytest.raises(Cut):
            _backfill(config, kill)
        # The dead process wrote nothing after its cut.
        assert held() == kill.held_at_cut
    finally:
        held.close()
    _as_if_a_lease_later(config)
    return _backfill(config)


def _as_if_a_lease_later(config: Config) -> None:
    """The dead runner's heartbeat and leases made older by the lease's time to live (and a
    second), as they are when its rerun comes that much later: then the rerun takes the
    backfill and the sync lease over at once, where tests/test_cli_backfill.py's rerun waits for
    them to go stale. Only these times are judged against the clock when the rerun takes over
    (`BackfillQueue.claim`, `Leases.acquire`); the other times the store keeps are left as
    they are, so the rerun sees them in the order it would (a sweep's `listed_since`, from
    the claim, before the snapshots its pull saves; a clock set ahead for the rerun instead
    would put it after them). The engine's clock is held at NOW."""
    older = timedelta(seconds=LEASE_SECONDS + 1)
    engine = sa.create_engine(config.database_url)
    try:
        with engine.begin() as connection:
            beats = connection.execute(
                sa.select(t.backfills.c.backfill_id, t.backfills.c.heartbeat_at)
            ).all()
            for backfill_id, beat in beats:
                if beat is not None:
                    connection.execute(
                        t.backfills.update()
                        .where(t.backfills.c.backfill_id == backfill_id)
                        .values(heartbeat_at=beat - older)
                    )
            leases = connection.execute(
                sa.select(t.leases.c.name, t.leases.c.acquired_at, t.leases.c.expires_at)
            ).all()
            for name, acquired_at, expires_at in leases:
                connection.execute(
                    t.leases.update()
                    .where(t.leases.c.name == name)
                    .values(acquired_at=acquired_at - older, expires_at=expires_at - older)
                )
    finally:
        engine.dispose()


def test_a_backfill_cut_mid_settle_then_resumed_counts_what_it_wrote(
    reference: Reference,
    migrated_store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Cut once the settle's last write batch is recorded: every write is made and logged,
    # no record is marked reconciled yet, and the settle never ends. Its counts were saved
    # as it ended: the dead runner's writes were lost from them (the resumed backfill read
    # 0 written); they are committed with each batch's record now.
    last_recorded = max(n for n, name in enumerate(reference.cuts, 1) if name == "audit_log.record")
    assert reference.cuts[last_recorded - 2] == "write"  # the record of a write batch
    assert "mark_reconciled" in reference.cuts[last_recorded:]
    with Sandbox(SCALED) as sandbox:
        resumed = _cut_then_resume(sandbox, tmp_path, last_recorded, store=migrated_store)
    assert resumed.status == Status.SUCCEEDED, resumed.message
    assert _written(resumed) == _written(reference)
    assert all(n > 0 for n in _written(reference).values())


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_backfill_cut_after_its_first_recorded_write_batch_counts_each_write_once(
    reference: Reference, tmp_path: Path, database_url: str
) -> None:
    # The counts are saved in the transaction that records the batch, on either store: the
    # dead runner's batch counted once, its successor's writes (the rest) once each.
    first_recorded = next(
        n
        for n, name in enumerate(reference.cuts, 1)
        if name == "audit_log.record" and n > 1 and reference.cuts[n - 2] == "write"
    )
    with Sandbox(SCALED) as sandbox:
        config = _on(database_url, _backfill_config(sandbox, tmp_path, SCALED_SIZES["chunk"], None))
        with pytest.raises(Cut):
            _backfill(config, _Kill(first_recorded, held=lambda: "dead"))
        cut = _queued(config)
        assert 0 < sum(_written(cut).values()) < sum(_written(reference).values())
        _as_if_a_lease_later(config)
        resumed = _backfill(config)
    assert resumed.status == Status.SUCCEEDED, resumed.message
    assert _written(resumed) == _written(reference)


def _on(database_url: str, config: Config) -> Config:
    """`config` with its store at `database_url`."""
    assert config.path is not None
    text = config.path.read_text()
    config.path.write_text(re.sub(r'url = "sqlite:///[^"]*"', f'url = "{database_url}"', text))
    return load_config(config.path)


def _queued(config: Config) -> Backfill:
    """The one backfill, as its row holds it."""
    with open_runtime(config, connect=False) as runtime:
        (backfill,) = runtime.backfill_queue().list()
        return backfill


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_write_batch_whose_record_is_retried_after_a_lock_counts_its_writes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """The transaction recording a backfill's write batch (and its counts) fails on a
    transient database error after the counts were saved in it, and is run again: the
    backfill counts each write once, as one that met no error."""
    with Sandbox(SCALED) as sandbox:
        folder = tmp_path / "plain"
        folder.mkdir()
        plain = _backfill(_backfill_config(sandbox, folder, SCALED_SIZES["chunk"], None))
    counted = _counted_with_each_batch
    failed: list[str] = []

    def once_locked(*args: Any) -> Any:
        save = counted(*args)

        def locked_after_saving(connection: Any, crm: str, records: int) -> None:
            save(connection, crm, records)
            if not failed:
                failed.append(crm)
                locked = sqlite3.OperationalError("database is locked")
                raise sa.exc.OperationalError("UPDATE backfills", {}, locked)

        return locked_after_saving

    monkeypatch.setattr(backfill_module, "_counted_with_each_batch", once_locked)
    with Sandbox(SCALED) as sandbox:
        folder = tmp_path / "retried"
        folder.mkdir()
        config = _on(database_url, _backfill_config(sandbox, folder, SCALED_SIZES["chunk"], None))
        retried = _backfill(config)
    assert failed
    assert retried.status == plain.status == Status.SUCCEEDED
    assert _written(retried) == _written(plain)
    assert all(n > 0 for n in _written(plain).values())
