"""A run cut off at any point, then run again, ends in the CRM state of an uninterrupted run,
writing at most one batch twice.

The cut is an exception raised at the n-th call the engine makes to the store or to a
connector's write, before the first or after each that is no read: the in-process stand-in for
a kill, at every point that a kill could leave another store or CRMs at (the wire stays cut,
so the `finally` blocks it unwinds through, which a kill never runs, write nothing). Then real
SIGKILLs of a `leadsync sync --once` process, at delays that land (on this machine) after the
pull and amid the writes.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import pytest
import sqlalchemy as sa

from leadsync.config import Config, load_config
from leadsync.connectors.base import NewRecord, RecordUpdate
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.runtime import open_runtime
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sync.database import upgrade_database
from leadsync.sync.engine import SETTLE_SLICE, SyncEngine
from leadsync.sync.handoff_ledger import CREATED, PENDING
from tests.support import (
    REAL_PROCESSES,
    Cut,
    FakeClock,
    Tripwire,
    crm_state,
    mapped_state,
    set_up_sandbox_config,
)

SEEDED_UNTIL = datetime(2026, 6, 1, tzinfo=UTC)
# leadsync's clock is frozen, so scores (their decay) are the same in every run compared.
NOW = datetime(2026, 6, 2, tzinfo=UTC)
SETTINGS = SandboxSettings(
    port=0,
    seed=8,
    leads=230,
    seed_until=SEEDED_UNTIL,
    hubspot=HubSpotSettings(ten_second_limit=100_000, searches_per_second=1_000),
)
# The in-process cuts run an org a quarter the size, its pages and write batches a quarter the
# size too: the run makes the same calls, in the same order, as one over SETTINGS at the real
# sizes (two HubSpot search pages, three HubSpot and two Salesforce write batches), at a
# fraction of the cost of each of the hundred-odd cases. Its sandbox's clock is held
# (`_scaled_sandbox`) and its HubSpot search lags a minute behind: a rerun's search shows none
# of the cut run's writes, as after a restart within seconds of a kill, so what landed is
# known from the store alone (the rerun once search caught up is a case of its own). On the
# real clock with search's 4 s lag, what a rerun's search showed hung on the machine's speed.
SCALED = replace(SETTINGS, leads=60, hubspot=replace(SETTINGS.hubspot, search_lag_ms=60_000))
SEARCH_PAGE = 40
SCALED_HUBSPOT_BATCH, SCALED_SALESFORCE_COLLECTION = 20, 40
WRITE_ENDPOINTS = ("hubspot.contacts.batch_update", "salesforce.collection_update")


class _Wire(Protocol):
    """What a call passes through on its way: a Tripwire, or a `_Watch`."""

    def wrap(self, call: Callable[..., Any]) -> Callable[..., Any]: ...


# The store's ledgers: objects of their own, their calls cut as the store's are.
LEDGERS = frozenset(
    {
        "audit_log",
        "cursors",
        "handoffs",
        "quarantine",
        "related",
        "reviews",
        "run_log",
        "sla",
        "transitions",
    }
)
# The connectors' calls that write: the engine's updates and the handoff's creates.
CONNECTOR_WRITES = frozenset({"write", "upsert"})


class _Wrapped:
    """A store or a connector whose methods `names` (all, if None: the store's, its ledgers'
    too) pass the wire, but those named in `unwired` (as logged), their names logged in `log`,
    if given, after `prefix`."""

    def __init__(
        self,
        inner: Any,
        wire: _Wire,
        names: frozenset[str] | None,
        log: list[str] | None = None,
        prefix: str = "",
        unwired: frozenset[str] = frozenset(),
    ) -> None:
        self._inner = inner
        self._wire = wire
        self._names = names
        self._log = log
        self._prefix = prefix
        self._unwired = unwired
        self.crm = getattr(inner, "crm", None)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if self._names is None and name in LEDGERS:
            return _Wrapped(value, self._wire, None, self._log, f"{name}.", self._unwired)
        if callable(value) and (self._names is None or name in self._names):
            logged_as = self._prefix + name
            wrapped = value if logged_as in self._unwired else self._wire.wrap(value)
            if self._log is None:
                return wrapped
            log = self._log

            def logged(*args: Any, **kwargs: Any) -> Any:
                log.append(logged_as)
                return wrapped(*args, **kwargs)

            return logged
        return value


def _scaled_sandbox() -> Sandbox:
    """A sandbox over SCALED on a held clock: its search never catches up with a write."""
    return Sandbox(SCALED, clock=FakeClock())


def _config(sandbox: Sandbox, folder: Path, store: Path | None = None) -> Config:
    """A config for `sandbox` in `folder`; with `store`, its database starts as a copy of that
    migrated store (see `migrated_store`) instead of being migrated by the run."""
    config: Config = set_up_sandbox_config(sandbox, folder)
    if store is not None:
        database = _database_file(config)
        assert not database.exists()
        # copyfile, not copy: the copy is writable, where the template is not.
        shutil.copyfile(store, database)
    return config


def _database_file(config: Config) -> Path:
    return Path(sa.make_url(config.database_url).database or "")


@pytest.fixture(scope="module")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite store at the newest schema, which each cut case's store starts as a copy
    of: the first call of a run opens a store at head, as it would after the migrations (which
    are no cut point: `Store()` runs them before any call), and the migrations run once per
    worker instead of once in each of the ~140 cases (~0.08 s each, ~15 % of a case). No case
    opens it: each opens its own copy (`test_each_case_runs_on_its_own_copy_of_the_migrated_store`).
    """
    path = tmp_path_factory.mktemp("migrated") / "leadsync.db"
    upgrade_database(f"sqlite:///{path}")
    return path


def _schema_and_rows(database: Path) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """The tables and indexes of an SQLite file, and each table's row count (read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        schema = sorted(db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
        tables = [
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        counts = {
            name: db.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]  # noqa: S608
            for name in tables  # (the names are sqlite_master's)
        }
        return schema, counts


def test_each_case_runs_on_its_own_copy_of_the_migrated_store(
    migrated_store: Path, tmp_path: Path
) -> None:
    template = migrated_store.read_bytes()
    # The template is what the migrations make of a new store: the same schema, no rows but
    # the schema's version.
    fresh = tmp_path / "fresh.db"
    upgrade_database(f"sqlite:///{fresh}")
    assert _schema_and_rows(migrated_store) == _schema_and_rows(fresh)
    # A run writes to its own copy, and never to the template.
    with _scaled_sandbox() as sandbox:
        (tmp_path / "case").mkdir()
        config = _config(sandbox, tmp_path / "case", migrated_store)
        _run(config)
    _, rows = _schema_and_rows(_database_file(config))
    assert rows["snapshots"] > 0
    assert migrated_store.read_bytes() == template


def _run(
    config: Config,
    wire: _Wire | None = None,
    *,
    scaled: bool = True,
    log: list[str] | None = None,
    slice_size: int = SETTLE_SLICE,
    bulk: bool = False,
    cut_store_calls: frozenset[str] | None = None,
    unwired: frozenset[str] = frozenset(),
    sends: _Sends | None = None,
) -> None:
    """One run; `scaled`, at the page and batch sizes of a SCALED sandbox; its pending
    records settled `slice_size` at a time; with `bulk`, Salesforce read by Bulk query jobs,
    each result page handed on in BULK_CHUNKs. The wire cuts the store's `cut_store_calls`
    (all, if None; never those named in `unwired`) and the connectors' writes; `sends` keeps
    what each of those writes sent."""
    with open_runtime(config, connect=False) as runtime:
        # The engine writes in batches of its connectors' sizes (their traits).
        hubspot_connection = config.hubspot_connection()
        salesforce_connection = config.salesforce_connection()
        if scaled:
            hubspot_connection = replace(
                hubspot_connection, search_page_size=SEARCH_PAGE, batch_size=SCALED_HUBSPOT_BATCH
            )
            salesforce_connection = replace(
                salesforce_connection, collection_size=SCALED_SALESFORCE_COLLECTION
            )
        if bulk:
            # Polls of the sandbox's jobs need no second's pause (the connector's default).
            salesforce_connection = replace(
                salesforce_connection,
                bulk_query_threshold=0,
                query_batch_size=BULK_CHUNK,
                bulk_poll_seconds=0.01,
            )
        hubspot = HubSpotConnector(hubspot_connection)
        salesforce = SalesforceConnector(salesforce_connection)
        store: Any = runtime.store
        connectors: dict[str, Any] = {"hubspot": hubspot, "salesforce": salesforce}
        if sends is not None:
            connectors = {
                crm: _Wrapped(c, sends.to(crm), CONNECTOR_WRITES) for crm, c in connectors.items()
            }
        if wire is not None:
            store = _Wrapped(store, wire, cut_store_calls, log, unwired=unwired)
            connectors = {
                crm: _Wrapped(c, wire, CONNECTOR_WRITES, log) for crm, c in connectors.items()
            }
        try:
            SyncEngine(
                store,
                connectors,
                runtime.field_map,
                runtime.definition,
                clock=lambda: NOW,
                slice_size=slice_size,
            ).run(write=True)
        finally:
            hubspot.close()
            salesforce.close()


# One value sent to one record: (CRM, object, record id or a created record's key, field,
# the value's repr).
Sent = tuple[str, str, str, str, str]


class _Sends:
    """What a run's connector write calls sent, each kept once the call returned (the CRM
    took it): `calls` holds a set of `Sent` per call, in order."""

    def __init__(self) -> None:
        self.calls: list[frozenset[Sent]] = []

    def to(self, crm: str) -> _Wire:
        """The wire (see `_Wrapped`) that keeps what `crm`'s connector is sent."""
        return _Keeping(self.calls, crm)

    def values(self) -> set[Sent]:
        return set().union(*self.calls)


class _Keeping:
    def __init__(self, calls: list[frozenset[Sent]], crm: str) -> None:
        self._calls = calls
        self._crm = crm

    def wrap(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def kept(items: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
            result = call(items, *args, **kwargs)
            self._calls.append(frozenset(sent for item in items for sent in _sent(self._crm, item)))
            return result

        return kept


def _sent(crm: str, item: RecordUpdate | NewRecord) -> Iterator[Sent]:
    """The values a write (`RecordUpdate`) or a create (`NewRecord`) sends to its record."""
    if isinstance(item, NewRecord):
        where, record = "created", item.key
    else:
        where, record = item.object_name or "", item.record_id
    for name, value in item.values.items():
        yield crm, where, record, name, repr(value)


class _Kill(Tripwire):
    """A Tripwire that stays cut, as a killed process stays dead: once it has cut, every call
    through it raises Cut too, so the `finally` blocks the Cut unwinds through (which a kill
    never runs) write nothing to the store or a CRM (the run's record, the handoff's links)."""

    def __init__(self, at: int, after: bool) -> None:
        super().__init__(at, after)
        self.dead = False

    def wrap(self, call: Callable[..., Any], *, arms: bool = False) -> Callable[..., Any]:
        tripped = super().wrap(call, arms=arms)

        def once_cut(*args: Any, **kwargs: Any) -> Any:
            if self.dead:
                raise Cut
            try:
                return tripped(*args, **kwargs)
            except Cut:
                self.dead = True
                raise

        return once_cut


def _write_calls(sandbox: Sandbox) -> int:
    endpoints = sandbox.stats.as_dict()["endpoints"]
    return sum(endpoints.get(name, 0) for name in WRITE_ENDPOINTS)


class Reference(NamedTuple):
    """An uninterrupted run: the CRM state it ends in, its write calls, and the names of the
    calls it makes that the cuts fall at (the store's and its ledgers', the connectors' writes),
    in order."""

    state: dict[str, Any]
    writes: int
    calls: list[str]


def _reference(folder: Path, *, slice_size: int = SETTLE_SLICE) -> Reference:
    with _scaled_sandbox() as sandbox:
        config = _config(sandbox, folder)
        calls: list[str] = []
        sandbox.stats.clear()
        _run(config, Tripwire(None, after=False), slice_size=slice_size, log=calls)
        return Reference(crm_state(sandbox), _write_calls(sandbox), calls)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return _reference(tmp_path_factory.mktemp("reference"))


def _cut_calls_made(settings: SandboxSettings, folder: Path, *, scaled: bool) -> list[str]:
    """The calls a run makes that the cuts fall after (not the reads: see READS)."""
    with Sandbox(settings) as sandbox:
        log: list[str] = []
        _run(_config(sandbox, folder), Tripwire(None, after=False), scaled=scaled, log=log)
        return [name for name in log if name not in READS]


def test_the_scaled_run_makes_the_calls_of_a_full_sized_one(tmp_path: Path) -> None:
    # What lets the cuts run over SCALED: each is a cut of the full-sized run too. (Where a
    # read of Contacts' stored stamps falls among the writes varies from process to process.)
    full = _cut_calls_made(SETTINGS, tmp_path / "full", scaled=False)
    assert _cut_calls_made(SCALED, tmp_path / "scaled", scaled=True) == full
    # Pages of more than one search (HubSpot's), and several write batches.
    assert full.count("save_page") >= 5
    assert full.count("write") >= 4


# The calls that only read (`test_nothing_is_written_between_one_call_and_the_next` holds
# them to it): a run cut just after one leaves what the cut just before it leaves, so no cut
# falls after one. A call not named here is cut: a new read costs a case, never a gap.
READS = frozenset(
    {
        "audit_log.expected",
        "audit_log.unseen",
        "cursors.position",
        "handoffs.known",
        "handoffs.loads",
        "handoffs.of",
        "handoffs.unfinished",
        "identity_snapshots",
        "known_stamps",
        "lead_ids_for",
        "leads",
        "leads_by_email",
        "leads_naming",
        "linked_to",
        "links_for",
        "pending_from_plans",
        "pending_ids",
        "quarantine.due_refusals",
        "quarantine.open_for",
        "records_of",
        "related.children",
        "related.get",
        "related.known_stamps",
        "related.people",
        "reviews.items",
        "run_log.first_started_at",
        "sla.overdue_leads",
        "sla.owners",
        "sla.running",
        "snapshots",
    }
)

MOST_CALLS = 40


def _cut_calls(calls: list[str]) -> list[str]:
    """The calls of `calls` that the cuts fall at: all but the reads. The cuts count these
    alone (the reads pass the wire unwired), so where a read falls among them, which varies
    from run to run of the sliced settle, moves no cut."""
    return [name for name in calls if name not in READS]


def _points_up_to(most: int) -> list[tuple[int, bool]]:
    # Every call but a read cut after it, and the first before it: a cut just before a later
    # call leaves the store and the CRMs as the cut just after the call before it does, since
    # nothing between two calls writes to either (as
    # `test_nothing_is_written_between_one_call_and_the_next` checks) and the wire, once cut,
    # lets no unwinding `finally` write through it (`_Kill`). The run makes fewer than `most`
    # cut calls (asserted below); the points past its last skip.
    return [(1, False)] + [(n, True) for n in range(1, most)]


class _Held:
    """What the CRMs and the store hold, as `held()` takes it: every record of both CRMs, and
    the store's data_version (it moves each time another connection commits to it)."""

    def __init__(self, sandbox: Sandbox, database: Path) -> None:
        self.sandbox = sandbox
        self._store = sqlite3.connect(f"file:{database}?mode=ro", uri=True)

    def close(self) -> None:
        self._store.close()

    def __call__(self) -> tuple[Any, int]:
        salesforce = self.sandbox.salesforce
        crms = (
            self.sandbox.hubspot.snapshot(include_archived=True),
            [
                salesforce.snapshot(name, include_deleted=True)
                for name in sorted(salesforce.objects)
            ],
        )
        return crms, self._store.execute("PRAGMA data_version").fetchone()[0]


class _Watch:
    """A wire (see `_Wrapped`) that takes what is held just before and just after each call's
    work: `marks` gets (before, after) per call."""

    def __init__(self, held: _Held) -> None:
        self.held = held
        self.marks: list[tuple[Any, Any]] = []

    def wrap(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def watched(*args: Any, **kwargs: Any) -> Any:
            before = self.held()
            result = call(*args, **kwargs)
            self.marks.append((before, self.held()))
            return result

        return watched


def _watched_run(
    tmp_path: Path, slice_size: int, *, bulk: bool = False
) -> list[tuple[str, Any, Any]]:
    """The (name, held before, held after) of each call a run over SCALED makes."""
    with _scaled_sandbox() as sandbox:
        config = _config(sandbox, tmp_path)
        upgrade_database(config.database_url)  # the store's file exists for the watch
        held, names = _Held(sandbox, _database_file(config)), list[str]()
        watch = _Watch(held)
        try:
            _run(config, watch, slice_size=slice_size, bulk=bulk, log=names)
        finally:
            held.close()
        return [(name, *held) for name, held in zip(names, watch.marks, strict=True)]


@pytest.mark.parametrize(
    ("slice_size", "bulk"), [(SETTLE_SLICE, False), (15, False), (SETTLE_SLICE, True)]
)
def test_nothing_is_written_between_one_call_and_the_next(
    tmp_path: Path, slice_size: int, bulk: bool
) -> None:
    # What lets the cuts skip the point just before each call but the first, and the sliced
    # run's cuts skip its reads; the Bulk run's cuts, after each page save alone, too.
    marks = _watched_run(tmp_path, slice_size, bulk=bulk)
    assert len(marks) > 10
    for (name, _, after), (following, before, _) in itertools.pairwise(marks):
        assert after == before, f"something was written between {name} and {following}"
    changed = {name for name, before, after in marks if before != after}
    assert {"write", "save_page", "mark_reconciled"} <= changed  # the watch sees writes
    assert not changed & READS, "a call named a read wrote"


@pytest.mark.slow
@pytest.mark.parametrize(("at", "after"), _points_up_to(MOST_CALLS))
def test_a_run_cut_at_any_point_then_rerun_ends_like_an_uninterrupted_run(
    reference: Reference,
    migrated_store: Path,
    tmp_path: Path,
    at: int,
    after: bool,
) -> None:
    _cut_then_rerun(reference, tmp_path, at, after, store=migrated_store, slice_size=SETTLE_SLICE)


@pytest.mark.slow
@pytest.mark.parametrize(("at", "after"), _points_up_to(MOST_CALLS))
def test_a_run_cut_at_any_point_then_rerun_once_search_caught_up_ends_like_an_uninterrupted_run(
    reference: Reference,
    migrated_store: Path,
    tmp_path: Path,
    at: int,
    after: bool,
) -> None:
    # The rerun's search shows every write of the cut run (a restart long after the kill):
    # leadsync's own writes come back with the pull, and are known for echoes. Before the
    # run's first write to a CRM, nothing of it is for search to show: those cuts are the
    # test above's.
    first_write = _cut_calls(reference.calls).index("write") + 1
    if at < first_write:
        pytest.skip("a cut before the run's first CRM write: search has nothing to catch up")
    _cut_then_rerun(
        reference,
        tmp_path,
        at,
        after,
        store=migrated_store,
        slice_size=SETTLE_SLICE,
        caught_up=True,
    )


def _cut_then_rerun(
    reference: Reference,
    tmp_path: Path,
    at: int,
    after: bool,
    *,
    store: Path,
    slice_size: int,
    bulk: bool = False,
    cut_store_calls: frozenset[str] | None = None,
    caught_up: bool = False,
) -> None:
    """A run cut at the `at`-th of its calls that are no read (before it, or `after`), then
    run again (once HubSpot's search `caught_up` with the cut run's writes, or before it
    shows any), ends in the state of the uninterrupted `reference` run, with at most one
    batch written twice: the one in flight at the cut (a write that returned, not yet
    recorded), and not one value of the batches before it. The store starts as a copy of the
    migrated `store`. (A cut after a read leaves what the cut before it leaves.)"""
    expected_state, expected_writes, calls = reference
    cuts = _cut_calls(calls)
    if at > len(cuts):
        pytest.skip(f"the run makes {len(cuts)} calls that are no read")
    with _scaled_sandbox() as sandbox:
        config = _config(sandbox, tmp_path, store)
        sandbox.stats.clear()
        wire, cut_sent, rerun_sent = _Kill(at, after), _Sends(), _Sends()
        with pytest.raises(Cut):
            _run(
                config,
                wire,
                slice_size=slice_size,
                bulk=bulk,
                cut_store_calls=cut_store_calls,
                unwired=READS,
                sends=cut_sent,
            )
        if caught_up:
            sandbox.hubspot.settle_search()
        _run(config, slice_size=slice_size, bulk=bulk, sends=rerun_sent)
        assert crm_state(sandbox) == expected_state
        batch_redone = 1
        assert _write_calls(sandbox) <= expected_writes + batch_redone
        in_flight = (
            cut_sent.calls[-1] if after and cuts[at - 1] in CONNECTOR_WRITES else frozenset()
        )
        redone = (cut_sent.values() - in_flight) & rerun_sent.values()
        assert sorted(redone) == []


def test_the_reference_run_has_cut_points_to_test(reference: Reference) -> None:
    _, writes, calls = reference
    assert writes >= 4  # several batches: "at most one batch twice" means something
    assert 10 < len(_cut_calls(calls)) < MOST_CALLS  # every cut call is covered by _points_up_to
    # The handoff's calls are cut too.
    assert {"upsert", "handoffs.save"} <= set(calls)


# The HubSpot field the handoff writes the new Salesforce lead's id to (the sandbox mapping's
# `handoff_link`).
LINK_FIELD = "salesforceleadid"


def test_a_run_cut_after_its_links_are_recorded_sends_none_of_them_again(
    reference: Reference, migrated_store: Path, tmp_path: Path
) -> None:
    # The handoff's link writes go to HubSpot with the plan's values, and the handoffs are
    # marked linked once all of HubSpot's batches are written. Cut just before that mark,
    # every batch written and recorded: the rerun's search shows none of those writes, the
    # store knows them all, and nothing is left to write to HubSpot.
    cuts = _cut_calls(reference.calls)
    mark_linked = cuts.index("handoffs.save", cuts.index("write"))
    with _scaled_sandbox() as sandbox:
        config = _config(sandbox, tmp_path, migrated_store)
        cut_sent, rerun_sent = _Sends(), _Sends()
        with pytest.raises(Cut):
            _run(config, _Kill(mark_linked + 1, after=False), unwired=READS, sends=cut_sent)
        assert any(sent[3] == LINK_FIELD for sent in cut_sent.values())
        _run(config, sends=rerun_sent)
        assert crm_state(sandbox) == reference.state
        assert not [sent for sent in rerun_sent.values() if sent[0] == "hubspot"]


# ------------------------------------------------------------------- Bulk result pages

# The scaled org's Salesforce leads come in one Bulk result page, handed on in chunks of this
# many (the REST page size in production): each saved, with the cursor past it, on its own.
BULK_CHUNK = 20
PAGE_SAVES = frozenset({"save_page"})
MOST_PAGE_SAVES = 16


@pytest.fixture(scope="module")
def bulk_reference(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Reference, dict[str, int]]:
    """`reference` with Salesforce read through Bulk query jobs, its calls the page saves,
    and the sandbox's counts by endpoint."""
    with _scaled_sandbox() as sandbox:
        config = _config(sandbox, tmp_path_factory.mktemp("bulk-reference"))
        saves: list[str] = []
        sandbox.stats.clear()
        _run(config, Tripwire(None, after=False), bulk=True, cut_store_calls=PAGE_SAVES, log=saves)
        endpoints = dict(sandbox.stats.as_dict()["endpoints"])
        return Reference(crm_state(sandbox), _write_calls(sandbox), saves), endpoints


def test_the_bulk_reference_run_saves_a_result_page_in_several_chunks(
    reference: Reference, bulk_reference: tuple[Reference, dict[str, int]]
) -> None:
    (state, writes, saves), endpoints = bulk_reference
    assert (state, writes) == reference[:2]
    # Every Salesforce read was a Bulk job of one result page...
    jobs = endpoints["salesforce.bulk.query_create"]
    assert endpoints["salesforce.bulk.query_results"] == jobs
    assert "salesforce.query_more" not in endpoints
    # ...and the leads' page took more saves than its one REST page (each stream's records
    # come in one), so the cuts below fall inside it.
    assert len(saves) >= reference.calls.count("save_page") + 2
    assert len(saves) < MOST_PAGE_SAVES  # every save is covered by the cuts


@pytest.mark.slow
@pytest.mark.parametrize("at", range(1, MOST_PAGE_SAVES))
def test_a_run_cut_amid_a_bulk_result_page_then_rerun_ends_like_an_uninterrupted_run(
    bulk_reference: tuple[Reference, dict[str, int]],
    migrated_store: Path,
    tmp_path: Path,
    at: int,
) -> None:
    # Cut once each save is committed: a cut before a save leaves the store as the cut after
    # the save before it does (see `_points_up_to`).
    _cut_then_rerun(
        bulk_reference[0],
        tmp_path,
        at,
        True,
        store=migrated_store,
        slice_size=SETTLE_SLICE,
        bulk=True,
        cut_store_calls=PAGE_SAVES,
    )


# ------------------------------------------------------------------- a run in slices

# The scaled org (about 120 records) settled in slices of this many records: the first slices'
# updates fill no whole batch, so they wait for later slices' (`leadsync.sync.carry`), their
# records pending meanwhile; the cuts fall while they wait too. A rerun packs its slices again
# (the earlier slices' records settled, the cut-off leads merged again with theirs): at this
# size its bounds fall elsewhere than the cut run's, which gave two leads each other's owners
# when the slices came in the order records were met (no cut at 15 happened to show it).
SLICED = 30
MOST_SLICED_CALLS = 100


@pytest.fixture(scope="module")
def sliced_reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """`reference`, settled in slices of SLICED records."""
    return _reference(tmp_path_factory.mktemp("sliced-reference"), slice_size=SLICED)


def test_a_run_in_slices_makes_the_write_calls_of_a_run_in_one(
    reference: Reference, sliced_reference: Reference
) -> None:
    assert sliced_reference.writes == reference.writes
    assert 10 < len(_cut_calls(sliced_reference.calls)) < MOST_SLICED_CALLS  # all cut
    # The calls that change what waits are all cut: the writes, the saves, the marks.
    cut = {name for name in sliced_reference.calls if name not in READS}
    assert {"write", "save_page", "save_decisions", "mark_reconciled", "audit_log.record"} <= cut
    assert "mark_pending" in cut


@pytest.mark.slow
@pytest.mark.parametrize(("at", "after"), _points_up_to(MOST_SLICED_CALLS))
def test_a_run_in_slices_cut_at_each_call_then_rerun_ends_like_an_uninterrupted_run(
    sliced_reference: Reference, migrated_store: Path, tmp_path: Path, at: int, after: bool
) -> None:
    _cut_then_rerun(sliced_reference, tmp_path, at, after, store=migrated_store, slice_size=SLICED)


def test_a_run_in_slices_hands_each_lead_to_the_owner_a_run_in_one_gives(
    reference: Reference, sliced_reference: Reference
) -> None:
    # Round-robin goes by email, and the slices come in email order: the leads are routed in
    # one order however the records are sliced.
    assert sliced_reference.state == reference.state


def test_a_run_in_slices_cut_once_a_slices_handoffs_are_recorded_then_rerun_keeps_the_owners(
    sliced_reference: Reference, migrated_store: Path, tmp_path: Path
) -> None:
    # Cut once the first slice's pending handoffs are saved with their owners: the rerun
    # merges those leads again with their records, its first slice fills sooner, and every
    # later slice starts elsewhere than in the run cut. Each lead left is still routed in the
    # uninterrupted run's order, to the owner it gave.
    cuts = _cut_calls(sliced_reference.calls)
    first = cuts.index("handoffs.save") + 1
    assert "upsert" in cuts[first:]
    _cut_then_rerun(
        sliced_reference, tmp_path, first, True, store=migrated_store, slice_size=SLICED
    )


def _owners_by_status(config: Config) -> dict[str, dict[str, str | None]]:
    """Status -> lead id -> owner, of the store's handoffs."""
    found: dict[str, dict[str, str | None]] = {}
    with open_runtime(config, connect=False) as runtime:
        for handoff in runtime.store.handoffs.all():
            found.setdefault(handoff.status, {})[handoff.lead_id] = handoff.owner
    return found


def test_a_handoff_cut_off_before_its_create_keeps_the_owner_it_was_given(
    sliced_reference: Reference, migrated_store: Path, tmp_path: Path
) -> None:
    # Cut once the last slice's handoffs are saved pending with their owners, before their
    # create: earlier slices' handoffs are made, so the owners' loads are uneven.
    calls = sliced_reference.calls
    last_create = max(n for n, name in enumerate(calls, 1) if name == "upsert")
    at = max(n for n, name in enumerate(calls[:last_create], 1) if name == "handoffs.save")
    with _scaled_sandbox() as sandbox:
        config = _config(sandbox, tmp_path, migrated_store)
        with pytest.raises(Cut):
            _run(config, Tripwire(at, after=True), slice_size=SLICED)
        given = _owners_by_status(config)
        assert given[PENDING]
        assert given[CREATED]
        _run(config, slice_size=SLICED)
        made = _owners_by_status(config)
        assert PENDING not in made
        assert {lead: made[CREATED][lead] for lead in given[PENDING]} == given[PENDING]
        owners = {
            lead["Leadsync_Id__c"]: lead["OwnerId"] for lead in sandbox.salesforce.snapshot("Lead")
        }
        assert {lead: owners[lead] for lead in given[PENDING]} == given[PENDING]


def _with_short_leases(config: Config) -> Config:
    """The config, its sync lease living 2 s (a killed holder's runs out soon) and a command
    waiting up to 20 s for it."""
    assert config.path is not None
    with config.path.open("a") as toml:
        toml.write(
            "\n[service]\nlease_seconds = 2\nstalled_after_seconds = 60\nlease_wait_seconds = 20\n"
        )
    return load_config(config.path)


def _sync_process(config: Config) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "leadsync.cli", "sync", "--once", "--config", str(config.path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The mapped state after one `sync --once` process that ran through, over SETTINGS: the
    same for every kill below (the seed fixes the org, `mapped_state` leaves out the clock)."""
    with Sandbox(SETTINGS) as clean:
        run = _sync_process(_config(clean, tmp_path_factory.mktemp("clean")))
        assert run.wait(timeout=120) == 0
        return mapped_state(clean)


@pytest.mark.slow
@REAL_PROCESSES
@pytest.mark.parametrize("delay", [1.0, 1.2, 1.35])
def test_a_sync_killed_with_sigkill_then_rerun_ends_like_an_uninterrupted_one(
    uninterrupted: dict[str, Any], tmp_path: Path, delay: float
) -> None:
    with Sandbox(SETTINGS) as sandbox:
        config = _with_short_leases(_config(sandbox, tmp_path / "killed"))
        victim = _sync_process(config)
        time.sleep(delay)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        # The killed run's sync lease is still held: the rerun waits for it to expire, then
        # takes it over.
        rerun = _sync_process(config)
        assert rerun.wait(timeout=120) == 0
        assert mapped_state(sandbox) == uninterrupted
