"""Does an incremental run cost what changed, or what is stored? One sync run at two store sizes.

    .venv/bin/python bench/incremental_cost.py [--stored 10000,1000000] [--changed 100]
        [--repeat 3] [--sandbox-leads 2000] [--quick] [--output docs/BENCHMARKS.md]
        [--profile] [--keep DIR]

For each store size N the benchmark builds a store holding N leads, changes `--changed` records
in the sandbox (half HubSpot contacts, half Salesforce leads) and times one incremental
`SyncEngine.run(write=True)`: wall time, this process's CPU time, the sandbox's CPU time, the
time spent inside the store's methods, the API calls by endpoint (the sandbox's
`/_sandbox/stats`, before and after), the records pulled and written, and the peak of
tracemalloc's traced memory (in a run of its own: tracing slows Python down). Every figure is
the median of `--repeat` runs with the minimum and maximum, each run on new changes.

A full sync of a million leads through the sandbox would take hours, so only the first
`--sandbox-leads` per CRM go through a real first sync (schema, links, snapshots and echo
fingerprints all real); the rest of the N leads are clones of those real rows, bulk-inserted
into `leads`, `snapshots` and `links` under ids and emails the sandbox does not have. No
incremental run may touch them, and the benchmark checks that none did.

The store is a SQLite file (leadsync's default backend). `--quick` (10,000 and 100,000
leads, one run) only prints unless `--output` is given; `--profile` adds one cProfile'd run per
size and prints where its time went; `--keep DIR` keeps the databases for a closer look.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import inspect
import io
import json
import os
import pstats
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _common import (
    BENCHMARKS_MD,
    MB,
    UNPACED,
    SandboxServer,
    Spread,
    expect,
    figure,
    figure_text,
    http_session,
    machine,
    markdown_table,
    save_results,
    write_section,
)

from leadsync.config import load_config
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.runtime import Runtime, open_runtime
from leadsync.sandbox_config import write_sandbox_config
from leadsync.sync import packed
from leadsync.sync import tables as t
from leadsync.sync.audit_log import AuditLog
from leadsync.sync.cursors import Cursors
from leadsync.sync.database import make_engine
from leadsync.sync.engine import SyncEngine
from leadsync.sync.ids import ID_DIGITS
from leadsync.sync.quarantine_ledger import QuarantineLedger
from leadsync.sync.review_ledger import ReviewLedger
from leadsync.sync.run_log import RunLog
from leadsync.sync.run_summary import RunSummary
from leadsync.sync.store import Store
from leadsync.sync.transition_log import TransitionLog

SECTION = "incremental-cost"
DEFAULT_STORED = (10_000, 1_000_000)
QUICK_STORED = (10_000, 100_000)
DEFAULT_CHANGED = 100
DEFAULT_SANDBOX_LEADS = 2_000
# A run at the largest size costing at most this many times the smallest counts as "does not
# grow with the store": a cost that did would grow 100-fold from 10,000 to 1,000,000 leads.
CLOSE_ENOUGH = 1.5

# Synthetic leads per insert transaction: big enough for executemany to pay, small enough that
# the write-ahead log is checkpointed as it goes instead of growing to the database's size.
SEED_BATCH = 20_000
# The synthetic rows carry this run id and these times, so the check afterwards can find them.
SEED_RUN_ID = "bench-synthetic-seed"
SEEDED_AT = datetime(2000, 1, 1, tzinfo=UTC)
SYNTHETIC_DOMAIN = "synthetic.leadsync.test"
# Ids no sandbox record has: HubSpot's are numbers, Salesforce's 18 characters.
SYNTHETIC_HUBSPOT_FIRST_ID = 9_000_000_000
SYNTHETIC_SALESFORCE_PREFIX = "00QSYN"
# Raw fields naming another record: blanked on a clone, so no clone points at a real record.
CROSS_REFERENCES = ("salesforceleadid", "salesforcecontactid", "ConvertedContactId")
EMAIL_FIELDS = {"hubspot": "email", "salesforce": "Email"}

# What the benchmark changes: an engagement property HubSpot itself keeps (it moves the score)
# and a field a Salesforce rep edits (it is merged and written to HubSpot's jobtitle).
HUBSPOT_ENGAGEMENT = "hs_analytics_num_page_views"
SALESFORCE_FIELD = "Title"
CONVERTED = "Closed - Converted"  # Salesforce refuses to update a converted lead

INTRO = """\
# Benchmarks

Speed is measured, not assumed: throughput, API calls and memory are measured by the scripts in
`bench/`, never by timed unit tests. Each script writes its own section below, between markers,
and leaves the rest of this file alone.
"""

SECTION_INTRO = """\
## Incremental run cost against store size

```sh
.venv/bin/python bench/incremental_cost.py [--stored 10000,1000000] [--changed 100] [--repeat 3] \\
    [--sandbox-leads 2000] [--quick] [--output FILE] [--profile] [--keep DIR]
```

checks that an incremental sync run costs what changed, not what is stored. For each store size
it runs a real first sync against `leadsync sandbox --leads 2000` (a separate process, every
limit raised), so the schema, links, snapshots and echo fingerprints are real, then bulk-inserts
clones of those leads (rows of `leads`, `snapshots` and `links`, under ids and emails the
sandbox does not have) until the store holds N leads. Each measured run follows `--changed`
edits in the sandbox, half HubSpot contacts (`PATCH /_sandbox/hubspot/contacts/{id}`, page
views) and half Salesforce leads (`PATCH /_sandbox/salesforce/leads/{id}`, Title), and is one
`SyncEngine(...).run(write=True)` in the benchmark process: its wall time, the benchmark
process's CPU time, the sandbox's CPU time, the time inside the store's methods, the API calls
the sandbox counted, the records pulled and written, and (in a run of its own, since tracing
slows Python down) tracemalloc's peak. The connectors' pacing is raised and their look-back is
0: with the default 5 minutes every run would also read again everything the benchmark changed
or wrote in the minutes before, which in production is the last few runs' changes, not the
store. The SQL of every run is checked with `EXPLAIN QUERY PLAN` for full scans.
"""


def _progress(message: str) -> None:
    print(f"[incremental_cost] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ the store


def write_config(folder: Path, server: SandboxServer) -> Path:
    """A leadsync config for the running sandbox, its SQLite database in `folder`.

    Pacing is raised (HubSpot's own limits are not leadsync's cost) and the look-back is 0, so a
    run reads what changed since the last one and nothing the benchmark did minutes before.
    """
    info = expect(http_session().get(f"{server.url}/_sandbox/", timeout=30), 200)
    path = folder / "leadsync.toml"
    write_sandbox_config(path, server.url, info["credentials"])
    text = path.read_text(encoding="utf-8")
    # The most pacing the config takes (UNPACED): the sandbox's own limits are raised apart.
    hubspot = f"[hubspot]\n{UNPACED}lookback_minutes = 0\n"
    text = text.replace("[hubspot]\n", hubspot).replace(
        "[salesforce]\n", "[salesforce]\nlookback_minutes = 0\n"
    )
    path.write_text(text, encoding="utf-8")
    return path


def sync_once(runtime: Runtime) -> RunSummary:
    engine = SyncEngine(runtime.store, runtime.connectors, runtime.field_map, runtime.definition)
    return engine.run(write=True)


def first_sync(config_path: Path) -> None:
    """Create HubSpot's leadsync properties, sync everything, then sync once more to take in
    the echoes of the first run's writes: the store is then as a running service leaves it."""
    with open_runtime(load_config(config_path)) as runtime:
        hubspot = runtime.connectors["hubspot"]
        assert isinstance(hubspot, HubSpotConnector)
        hubspot.ensure_properties()
        for label in ("first sync", "the echoes of its writes"):
            started = time.perf_counter()
            summary = sync_once(runtime)
            pulled = sum(counts.pulled for counts in summary.crms.values())
            _progress(f"{label}: {pulled:,} records in {time.perf_counter() - started:.1f} s")


# ------------------------------------------------------------------------------------ seeding


@dataclass(frozen=True, slots=True)
class Template:
    """A real lead as the first sync stored it: its row, and its records' snapshots and links."""

    lead: dict[str, Any]
    records: tuple[tuple[dict[str, Any], dict[str, Any]], ...]  # (snapshot row, link row)


def read_templates(engine: sa.Engine) -> list[Template]:
    """Every stored lead with at least one linked record, in lead id order. Their snapshots'
    blobs are packed again without a dictionary (`sync.packed`): the clones go to stores that
    hold none of this one's."""
    with engine.connect() as connection:
        dictionaries = dict(
            connection.execute(sa.select(t.dictionaries.c.id, t.dictionaries.c.data)).tuples()
        )
        codebook = packed.Codebook(dictionaries.get)
        leads = {
            row["lead_id"]: {**row, "packed": _plain(row["packed"], codebook)}
            for row in connection.execute(sa.select(t.leads)).mappings()
        }
        joined = t.snapshots.join(
            t.links,
            sa.and_(
                t.links.c.crm == t.snapshots.c.crm, t.links.c.record_id == t.snapshots.c.record_id
            ),
        )
        query = sa.select(t.snapshots, *[c.label(f"link_{c.name}") for c in t.links.c])
        records: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
        for row in connection.execute(query.select_from(joined)).mappings():
            snapshot = {c.name: row[c.name] for c in t.snapshots.c}
            snapshot["packed"] = _plain(snapshot["packed"], codebook)
            link = {c.name: row[f"link_{c.name}"] for c in t.links.c}
            records[link["lead_id"]].append((snapshot, link))
    return [
        Template(leads[lead_id], tuple(records[lead_id]))
        for lead_id in sorted(leads)
        if records.get(lead_id)
    ]


def _plain(blob: bytes, codebook: packed.Codebook) -> bytes:
    """`blob` packed again without a dictionary."""
    return packed.pack_text(packed.unpack_text(blob, codebook).encode())


class Cloner:
    """Makes synthetic leads from templates: new lead ids, record ids and emails, cross
    references blanked, marked with SEED_RUN_ID and SEEDED_AT."""

    def __init__(self, templates: Sequence[Template], seed: int = 7) -> None:
        self.templates = templates
        self.random = random.Random(seed)
        self.numbers: Counter[str] = Counter()

    def record_id(self, crm: str) -> str:
        self.numbers[crm] += 1
        number = self.numbers[crm]
        if crm == "hubspot":
            return str(SYNTHETIC_HUBSPOT_FIRST_ID + number)
        return f"{SYNTHETIC_SALESFORCE_PREFIX}{number:012d}"

    def clone(
        self, number: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        """The lead row, snapshot rows and link rows of synthetic lead `number`."""
        template = self.templates[number % len(self.templates)]
        # Random and spelt like the ids the engine gives leads (`ids.new_id`), so the index
        # pages fill alike and each id takes its bytes.
        lead_id = f"{self.random.getrandbits(ID_DIGITS * 4):0{ID_DIGITS}x}"
        email = f"lead{number:08d}@{SYNTHETIC_DOMAIN}"
        lead = _with_email(template.lead, email)
        lead.update(lead_id=lead_id, email=email, updated_at=SEEDED_AT)
        snapshots, links = [], []
        for snapshot, link in template.records:
            record_id = self.record_id(snapshot["crm"])
            snapshots.append(_snapshot_clone(snapshot, record_id, email))
            links.append(
                {**link, "record_id": record_id, "lead_id": lead_id, "linked_at": SEEDED_AT}
            )
        return lead, snapshots, links


def _with_email(lead: dict[str, Any], email: str) -> dict[str, Any]:
    """A lead row (its values packed without a dictionary) with `email` for its email."""
    held_values, choices, reasons = json.loads(packed.unpack_text(lead["packed"]))
    values = {**held_values, "email": email}
    if isinstance(choices, dict):  # {field: {"value", "crm", "rule", "reason"}}, as first stored
        choices = dict(choices)
        if "email" in choices:
            choices["email"] = {**choices["email"], "value": email}
    elif len(choices) == 3:  # [crms, rules, {field: [crm, rule, reason, value if not the lead's]}]
        crms, rules, fields = choices
        fields = dict(fields)
        if "email" in fields:
            fields["email"] = [*fields["email"][:3], email]
        choices = [crms, rules, fields]
    else:  # [crms, rules, kinds, picks, {field: value if not the lead's}, fields?]
        choices = list(choices)
        choices[4] = {name: value for name, value in choices[4].items() if name != "email"}
    text = json.dumps([values, choices, reasons], separators=(",", ":"))
    return {**lead, "packed": packed.pack_text(text.encode())}


def _snapshot_clone(snapshot: dict[str, Any], record_id: str, email: str) -> dict[str, Any]:
    held_raw, canonical = packed.unpack(snapshot["packed"])
    raw = dict(held_raw)
    raw[EMAIL_FIELDS[snapshot["crm"]]] = email
    for name in CROSS_REFERENCES:
        if name in raw:
            raw[name] = None
    if snapshot["crm"] == "salesforce":
        raw["Id"] = record_id
    if snapshot["crm"] == "hubspot" and "hs_object_id" in raw:
        raw["hs_object_id"] = record_id
    return {
        **snapshot,
        "record_id": record_id,
        "packed": packed.pack(t.encode_value(raw), t.encode_value({**canonical, "email": email})),
        # Any value will do: a digest is only compared with the next pull of the same record.
        "content_digest": f"synthetic-{record_id}",
        "pending": False,
        "run_id": SEED_RUN_ID,
        "saved_at": SEEDED_AT,
    }


@dataclass(frozen=True, slots=True)
class Seeded:
    real_leads: int
    synthetic_leads: int
    synthetic_records: int
    seconds: float
    database_bytes: int


def seed(path: Path, target_leads: int) -> Seeded:
    """Bulk-insert synthetic leads until the store at `path` holds `target_leads`.

    A separate engine: its connections' pragmas (no fsync, a large cache) must not reach the
    connections the measured runs use.
    """
    engine = make_engine(f"sqlite:///{path}")
    sa.event.listen(engine, "connect", _bulk_load_pragmas)
    started = time.perf_counter()
    try:
        templates = read_templates(engine)
        with engine.connect() as connection:
            real = connection.execute(sa.select(sa.func.count()).select_from(t.leads)).scalar_one()
        wanted = target_leads - real
        if wanted < 0:
            raise SystemExit(
                f"the first sync stored {real:,} leads, more than the {target_leads:,} asked"
            )
        cloner = Cloner(templates)
        records = 0
        for start in range(0, wanted, SEED_BATCH):
            records += _insert_batch(engine, cloner, range(start, min(start + SEED_BATCH, wanted)))
            _progress(f"seeded {min(start + SEED_BATCH, wanted):,} of {wanted:,} synthetic leads")
        checkpoint(engine)
    finally:
        engine.dispose()
    flush_to_disk(path)
    return Seeded(real, wanted, records, time.perf_counter() - started, database_bytes(path))


def _bulk_load_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")  # a crash mid-seed only loses a benchmark store
    cursor.execute("PRAGMA cache_size=-1000000")  # 1 GB: the indexes' pages stay in memory
    cursor.close()


def _insert_batch(engine: sa.Engine, cloner: Cloner, numbers: range) -> int:
    leads, snapshots, links = [], [], []
    for number in numbers:
        lead, lead_snapshots, lead_links = cloner.clone(number)
        leads.append(lead)
        snapshots += lead_snapshots
        links += lead_links
    # One transaction, three executemany inserts through the store's own column types.
    with engine.begin() as connection:
        connection.execute(t.leads.insert(), leads)
        connection.execute(t.snapshots.insert(), snapshots)
        connection.execute(t.links.insert(), links)
    return len(snapshots)


def checkpoint(engine: sa.Engine) -> None:
    """Move the write-ahead log into the database file, so the file's size is the store's."""
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def flush_to_disk(path: Path) -> None:
    """fsync the seeded database. Seeding skipped fsync for speed, leaving gigabytes of dirty
    pages in the OS cache; the first measured commit whose checkpoint fsyncs the file would
    otherwise pay for writing them all out, a cost of the seeding, not of the run."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def database_bytes(path: Path) -> int:
    """The database file with its write-ahead log and shared-memory index, if any."""
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return sum(file.stat().st_size for file in files if file.exists())


@dataclass(frozen=True, slots=True)
class Untouched:
    leads: int
    snapshots: int
    links: int


def synthetic_untouched(path: Path) -> Untouched:
    """How many synthetic rows are still exactly as seeded (no run may have saved them)."""
    with sqlite3.connect(path) as connection:
        # UtcDateTime keeps SQLite times as naive UTC text; SEEDED_AT as SQLAlchemy wrote it.
        seeded = SEEDED_AT.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        leads = connection.execute(
            "SELECT count(*) FROM leads WHERE updated_at = ?", (seeded,)
        ).fetchone()[0]
        snapshots = connection.execute(
            "SELECT count(*) FROM snapshots WHERE run_id = ? AND saved_at = ? AND NOT pending",
            (SEED_RUN_ID, seeded),
        ).fetchone()[0]
        links = connection.execute(
            "SELECT count(*) FROM links WHERE linked_at = ?", (seeded,)
        ).fetchone()[0]
    return Untouched(leads, snapshots, links)


# ------------------------------------------------------------------------------------ changes


class Changes:
    """Edits in the sandbox, each to a record no earlier edit touched: real records the first
    sync linked to a lead, live, and (in Salesforce) not converted, which refuses updates."""

    def __init__(self, server: SandboxServer, path: Path, seed: int = 11) -> None:
        self.url = server.url
        self.session = http_session()
        linked = _linked_records(path)
        contacts = expect(
            self.session.get(f"{self.url}/_sandbox/hubspot/contacts", timeout=60), 200
        )
        leads = expect(self.session.get(f"{self.url}/_sandbox/salesforce/leads", timeout=60), 200)
        live_contacts = {str(contact["id"]) for contact in contacts["results"]}
        open_leads = {lead["Id"] for lead in leads["records"] if lead["Status"] != CONVERTED}
        shuffle = random.Random(seed).shuffle
        self.hubspot = sorted(linked["hubspot"] & live_contacts)
        self.salesforce = sorted(linked["salesforce"] & open_leads)
        shuffle(self.hubspot)
        shuffle(self.salesforce)
        self.made = 0

    def make(self, count: int) -> None:
        """Edit `count` records: half HubSpot contacts (page views, as HubSpot records a visit)
        and half Salesforce leads (Title, as a rep or an automation edits it)."""
        hubspot = count // 2
        for record_id in self._take(self.hubspot, hubspot, "HubSpot contacts"):
            self.made += 1
            body = {"properties": {HUBSPOT_ENGAGEMENT: str(1_000 + self.made)}}
            url = f"{self.url}/_sandbox/hubspot/contacts/{record_id}"
            expect(self.session.patch(url, json=body, timeout=30), 200)
        for record_id in self._take(self.salesforce, count - hubspot, "Salesforce leads"):
            self.made += 1
            body = {"fields": {SALESFORCE_FIELD: f"Benchmark change {self.made}"}}
            url = f"{self.url}/_sandbox/salesforce/leads/{record_id}"
            expect(self.session.patch(url, json=body, timeout=30), 200)

    @staticmethod
    def _take(pool: list[str], count: int, what: str) -> list[str]:
        if len(pool) < count:
            raise SystemExit(
                f"too few untouched {what} left to change; raise --sandbox-leads or lower "
                "--changed or --repeat"
            )
        taken = pool[-count:] if count else []
        del pool[len(pool) - count :]
        return taken


def _linked_records(path: Path) -> dict[str, set[str]]:
    """The record ids of each CRM the store has linked to a lead (read before any seeding)."""
    found: dict[str, set[str]] = defaultdict(set)
    with sqlite3.connect(path) as connection:
        for crm, record_id in connection.execute("SELECT crm, record_id FROM links"):
            found[crm].add(record_id)
    return found


# ------------------------------------------------------------------------------------ one run

# The store's public methods, and its repositories' that were the store's own before issue 20
# split them out, each timed while a run is measured: the figures stay comparable across it.
TIMED_CLASSES: tuple[type, ...] = (
    Store,
    AuditLog,
    Cursors,
    RunLog,
    QuarantineLedger,
    ReviewLedger,
    TransitionLog,
)
STORE_METHODS = tuple(
    (cls, name)
    for cls in TIMED_CLASSES
    for name, _ in inspect.getmembers(cls, inspect.isfunction)
    if not name.startswith("_")
)


def method_label(cls: type, name: str) -> str:
    return f"{cls.__name__}.{name}"


@contextmanager
def timed_store(store: Store) -> Iterator[defaultdict[str, float]]:
    """Seconds spent in each public method of the store and its repositories (SQL, row
    decoding and all) while the block runs, by `method_label`. The repositories are made
    afresh at each use, so their methods are wrapped on the class, and put back afterwards;
    the store's on `store` alone."""
    spent: defaultdict[str, float] = defaultdict(float)

    def timed(label: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - started

        return wrapper

    for cls, name in STORE_METHODS:
        owner: Any = store if cls is Store else cls
        setattr(owner, name, timed(method_label(cls, name), getattr(owner, name)))
    try:
        yield spent
    finally:
        for cls, name in STORE_METHODS:
            if cls is Store:
                delattr(store, name)
            else:
                setattr(cls, name, getattr(cls, name).__wrapped__)


@contextmanager
def captured_sql(engine: sa.Engine) -> Iterator[dict[str, Any]]:
    """Every distinct SQL statement the engine runs in the block, with its first parameters."""
    statements: dict[str, Any] = {}

    def seen(
        _connection: Any,
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        first = parameters[0] if executemany and parameters else parameters
        statements.setdefault(statement, first)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


@dataclass(frozen=True, slots=True)
class Scan:
    """A SQL statement and SQLite's plan for it, one line a step."""

    statement: str
    plan: tuple[str, ...]


def query_plans(path: Path, statements: dict[str, Any]) -> list[Scan]:
    """SQLite's query plan of each data statement (BEGIN, PRAGMA and the like left out)."""
    plans = []
    with sqlite3.connect(path) as connection:
        for statement, parameters in statements.items():
            if not statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
                continue
            plan = connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters or ())
            details = tuple(str(row[3]) for row in plan)
            plans.append(Scan(" ".join(statement.split()), details))
    return plans


def full_scans(plans: Sequence[Scan]) -> list[Scan]:
    """The statements that read a whole table or index ("SCAN"): the steps whose cost would
    grow with the store, whatever changed."""
    return [plan for plan in plans if any(detail.startswith("SCAN") for detail in plan.plan)]


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured run."""

    wall: float
    cpu: float  # this process: the engine, the connectors, SQLite
    sandbox_cpu: float
    store: dict[str, float]  # seconds in each store method
    calls: Counter[str]  # API calls by sandbox endpoint
    pulled: int
    written: int
    failed: int
    peak: int | None  # tracemalloc's peak during the run, in a traced run only

    @property
    def store_seconds(self) -> float:
        return sum(self.store.values())

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def sandbox_stats(server: SandboxServer) -> dict[str, Any]:
    stats: dict[str, Any] = expect(
        http_session().get(f"{server.url}/_sandbox/stats", timeout=60), 200
    )
    return stats


def calls_between(before: dict[str, Any], after: dict[str, Any]) -> Counter[str]:
    """The CRM calls made between two stats readings, by endpoint. A throttled or faulted call
    stops the benchmark: the figures would then measure the sandbox's limits."""
    for kind in ("throttled", "faulted"):
        grown = Counter(after[kind]) - Counter(before[kind])
        if grown:
            raise RuntimeError(f"the sandbox {kind} calls during a measured run: {dict(grown)}")
    calls = Counter(after["endpoints"]) - Counter(before["endpoints"])
    return Counter(
        {name: n for name, n in calls.items() if name.startswith(("hubspot.", "salesforce."))}
    )


def measured_run(runtime: Runtime, server: SandboxServer, *, traced: bool) -> Sample:
    gc.collect()  # the previous run's garbage is not this run's cost
    before = sandbox_stats(server)
    with timed_store(runtime.store) as spent:
        if traced:
            tracemalloc.start()
        began = time.perf_counter(), time.process_time(), server.cpu_seconds()
        try:
            summary = sync_once(runtime)
            ended = time.perf_counter(), time.process_time(), server.cpu_seconds()
            peak = tracemalloc.get_traced_memory()[1] if traced else None
        finally:
            tracemalloc.stop()
    after = sandbox_stats(server)
    wall, cpu, sandbox_cpu = (end - start for start, end in zip(began, ended, strict=True))
    counts = summary.crms.values()
    return Sample(
        wall=wall,
        cpu=cpu,
        sandbox_cpu=sandbox_cpu,
        store=spent,
        calls=calls_between(before, after),
        pulled=sum(c.pulled for c in counts),
        written=sum(c.written for c in counts),
        failed=sum(c.failed for c in counts),
        peak=peak,
    )


def profiled_run(runtime: Runtime, stored: int) -> None:
    """One run under cProfile; where its time went goes to stderr."""
    profile = cProfile.Profile()
    profile.runcall(sync_once, runtime)
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profile, stream=text).strip_dirs().sort_stats(order).print_stats(25)
        _progress(f"cProfile of one run at {stored:,} stored leads, by {order}:\n{text.getvalue()}")


# ------------------------------------------------------------------------------------ one size


@dataclass(slots=True)
class SizeResult:
    stored: int
    seeded: Seeded
    timed: list[Sample] = field(default_factory=list)
    traced: list[Sample] = field(default_factory=list)
    untouched: Untouched | None = None
    statements: int = 0
    scans: list[Scan] = field(default_factory=list)

    @property
    def samples(self) -> list[Sample]:
        return self.timed + self.traced


def measure_size(stored: int, args: argparse.Namespace, folder: Path) -> SizeResult:
    folder.mkdir(parents=True, exist_ok=True)
    # A fresh sandbox per size: both sizes start from the same CRM data.
    with SandboxServer(args.sandbox_leads) as server:
        config_path = write_config(folder, server)
        _progress(f"{stored:,} stored leads: real first sync of {args.sandbox_leads:,} per CRM")
        first_sync(config_path)
        path = folder / "leadsync.db"
        changes = Changes(server, path)  # chosen among the real records, before seeding
        result = SizeResult(stored, seed(path, stored))
        _progress(
            f"seeded {result.seeded.synthetic_leads:,} synthetic leads in "
            f"{result.seeded.seconds:.0f} s; database {result.seeded.database_bytes / MB:,.0f} MB"
        )
        with open_runtime(load_config(config_path)) as runtime:
            statements = measure_runs(runtime, server, changes, args, result)
        result.untouched = synthetic_untouched(path)
        plans = query_plans(path, statements)
        result.statements = len(plans)
        result.scans = full_scans(plans)
        if args.profile:
            listing = "\n".join(f"{p.statement[:300]}\n    {' / '.join(p.plan)}" for p in plans)
            _progress(f"query plans at {stored:,} stored leads:\n{listing}")
    return result


def measure_runs(
    runtime: Runtime,
    server: SandboxServer,
    changes: Changes,
    args: argparse.Namespace,
    result: SizeResult,
) -> dict[str, Any]:
    """A warm-up run, then `--repeat` timed and as many traced runs, each after new changes;
    the SQL statements the measured runs issued."""
    # Not measured: logs in to Salesforce, and leaves echoes like every later run's.
    changes.make(args.changed)
    sync_once(runtime)
    with captured_sql(runtime.store.engine) as statements:
        for run in range(1, args.repeat + 1):
            _progress(f"{result.stored:,} stored leads: run {run}/{args.repeat}")
            changes.make(args.changed)
            result.timed.append(measured_run(runtime, server, traced=False))
            changes.make(args.changed)
            result.traced.append(measured_run(runtime, server, traced=True))
    if args.profile:
        changes.make(args.changed)
        profiled_run(runtime, result.stored)
    return statements


# ------------------------------------------------------------------------------------ report


def spread_cell(values: Sequence[float], scale: float = 1.0) -> str:
    """A figure as its median [min–max], or the one figure when every run agrees."""
    spread = Spread.of(value / scale for value in values)
    median, low, high = (figure_text(v) for v in (spread.median, spread.low, spread.high))
    # Compared as printed: CPU times read in clock ticks differ in their last float bits.
    return median if low == high else f"{median} [{low}–{high}]"


def count_cell(values: Sequence[int]) -> str:
    """A count as "median [min–max]" in whole numbers (a median of two may end in .5)."""
    spread = Spread.of(values)
    median = f"{spread.median:,.1f}".removesuffix(".0")
    if spread.low == spread.high:
        return median
    return f"{median} [{spread.low:,.0f}–{spread.high:,.0f}]"


def size_text(size: int) -> str:
    return f"{size / 1_000_000_000:.2f} GB" if size >= 1_000_000_000 else f"{size / MB:,.0f} MB"


def cost_table(results: Sequence[SizeResult], changed: int) -> str:
    headers = [
        "stored leads",
        "SQLite database file",
        "changed",
        "pulled",
        "written",
        "API calls",
        "wall s",
        "CPU s",
        "sandbox CPU s",
        "in the store s",
        "peak traced MB",
    ]
    rows = []
    for result in results:
        every, timed = result.samples, result.timed
        rows.append(
            [
                f"{result.stored:,}",
                size_text(result.seeded.database_bytes),
                f"{changed:,}",
                count_cell([s.pulled for s in every]),
                count_cell([s.written for s in every]),
                count_cell([s.total_calls for s in every]),
                spread_cell([s.wall for s in timed]),
                spread_cell([s.cpu for s in timed]),
                spread_cell([s.sandbox_cpu for s in timed]),
                spread_cell([s.store_seconds for s in timed]),
                spread_cell([s.peak or 0 for s in result.traced], MB),
            ]
        )
    return markdown_table(headers, rows)


@dataclass(frozen=True, slots=True)
class Ratio:
    label: str
    small: float
    large: float

    @property
    def value(self) -> float:
        return self.large / self.small if self.small else float("inf")


def ratios(small: SizeResult, large: SizeResult) -> list[Ratio]:
    def median(result: SizeResult, figure: Callable[[Sample], float]) -> float:
        return Spread.of(figure(sample) for sample in result.timed).median

    figures: list[tuple[str, Callable[[Sample], float]]] = [
        ("wall time", lambda s: s.wall),
        ("CPU time", lambda s: s.cpu),
        ("time in the store", lambda s: s.store_seconds),
        ("API calls", lambda s: s.total_calls),
    ]
    return [Ratio(label, median(small, f), median(large, f)) for label, f in figures]


def verdict(small: SizeResult, large: SizeResult) -> str:
    found = ratios(small, large)
    parts = ", ".join(f"{r.label} ×{r.value:.2f}" for r in found)
    growth = large.stored / small.stored
    grown = [r.label for r in found if r.value > CLOSE_ENOUGH]
    opening = (
        f"From {small.stored:,} to {large.stored:,} stored leads (×{growth:,.0f}), the medians "
        f"change by {parts}"
    )
    if not grown:
        conclusion = (
            f": all within ×{CLOSE_ENOUGH}, so **the cost of an incremental run follows the "
            "changed records, not the store's size** (it holds)."
        )
    else:
        conclusion = (
            f": {', '.join(grown)} grew beyond ×{CLOSE_ENOUGH}, so **an incremental run's cost "
            "grows with the store** (it does not hold)."
        )
    return opening + conclusion + " " + steepest_store_method(small, large)


def steepest_store_method(small: SizeResult, large: SizeResult) -> str:
    """The store method whose median time grew the most: where a scaling step would show."""

    def median_ms(result: SizeResult, name: str) -> float:
        return Spread.of(s.store.get(name, 0.0) * 1000 for s in result.timed).median

    methods = {name for s in small.timed + large.timed for name, spent in s.store.items() if spent}
    if not methods:
        return ""
    changes = {
        name: (median_ms(small, name), median_ms(large, name))
        for name in methods
        if median_ms(small, name) > 0
    }
    name, (before, after) = max(changes.items(), key=lambda item: item[1][1] / item[1][0])
    return (
        f"The store method that grew the most is `{name}`, ×{after / before:.2f} "
        f"({figure_text(before)} → {figure_text(after)} ms a run)."
    )


def calls_table(results: Sequence[SizeResult]) -> str:
    endpoints = sorted({name for result in results for s in result.samples for name in s.calls})
    rows = [
        [f"`{name}`", *[count_cell([s.calls[name] for s in r.samples]) for r in results]]
        for name in endpoints
    ]
    headers = ["API calls per run, by endpoint", *[f"{r.stored:,} stored" for r in results]]
    return markdown_table(headers, rows)


def store_table(results: Sequence[SizeResult]) -> str:
    methods = {name for r in results for s in r.timed for name, spent in s.store.items() if spent}
    largest = results[-1]

    def spent_at_largest(name: str) -> float:
        return Spread.of(s.store.get(name, 0.0) for s in largest.timed).median

    rows = [
        [
            f"`{name}`",
            *[spread_cell([s.store.get(name, 0.0) * 1000 for s in r.timed]) for r in results],
        ]
        for name in sorted(methods, key=spent_at_largest, reverse=True)
    ]
    headers = ["time in the store per run, ms", *[f"{r.stored:,} stored" for r in results]]
    return markdown_table(headers, rows)


def facts(results: Sequence[SizeResult], sandbox_leads: int) -> list[str]:
    lines = []
    for r in results:
        untouched = r.untouched
        intact = untouched is not None and (
            untouched.leads == r.seeded.synthetic_leads
            and untouched.snapshots == r.seeded.synthetic_records
            and untouched.links == r.seeded.synthetic_records
        )
        scans = (
            "none read a whole table or index"
            if not r.scans
            else f"{len(r.scans)} read a whole table or index: "
            + "; ".join(f"`{scan.statement[:200]}` ({' / '.join(scan.plan)})" for scan in r.scans)
        )
        lines.append(
            f"- {r.stored:,} stored: {r.seeded.real_leads:,} leads from the real first sync of "
            f"{sandbox_leads:,} records per CRM, {r.seeded.synthetic_leads:,} synthetic leads "
            f"with {r.seeded.synthetic_records:,} records inserted in {r.seeded.seconds:,.0f} s; "
            f"synthetic rows untouched by the runs: {'all' if intact else '**NOT ALL**'}; "
            f"of the {r.statements} distinct SQL statements the runs issued, {scans}."
        )
    return lines


def report(results: Sequence[SizeResult], args: argparse.Namespace, command: str) -> str:
    small, large = results[0], results[-1]
    runs = args.repeat
    return "\n".join(
        [
            f"`{command}` on {machine()}.",
            f"SQLite file database (the default backend); {args.changed:,} records changed "
            f"before each run, half in each CRM; median [min–max] of {runs} run(s) (the "
            "traced memory: of as many runs of its own); a single figure where all runs agree.",
            "",
            cost_table(results, args.changed),
            "",
            verdict(small, large) if len(results) > 1 else "",
            "",
            calls_table(results),
            "",
            store_table(results),
            "",
            *facts(results, args.sandbox_leads),
            "",
            '"Pulled" counts the records each CRM returned that the store did not hold at the '
            "same stamp: the changes, and the echoes of the previous run's writes (each run writes "
            "the merged values and scores back, and the next pull reads those records again and "
            'recognises its own writes). "API calls" are all CRM calls the sandbox counted, the '
            'checks just before each write batch included. "In the store" is the time inside the '
            'store\'s public methods (SQL, encoding and decoding rows); "CPU" is the benchmark '
            "process's, the engine's, the connectors' and SQLite's together. The database file "
            "size is after seeding, write-ahead log checkpointed; the runs read it warm from the "
            "page cache.",
        ]
    )


def figures(results: Sequence[SizeResult]) -> list[dict[str, Any]]:
    """The figures issue 20's targets judge (`bench/targets.py`), for the results file: per
    store size the medians of a run's wall and CPU time and of its traced peak; from the
    smallest size to the largest, the most any median grew (`ratios`)."""
    found = []
    for result in results:
        found += [
            figure("wall_s", Spread.of(s.wall for s in result.timed).median, unit="s",
                   stored=result.stored),
            figure("cpu_s", Spread.of(s.cpu for s in result.timed).median, unit="s",
                   stored=result.stored),
            figure("peak_traced_mb", Spread.of((s.peak or 0) / MB for s in result.traced).median,
                   unit="MB", stored=result.stored),
        ]  # fmt: skip
    if len(results) > 1:
        small, large = results[0], results[-1]
        steepest = max(ratios(small, large), key=lambda ratio: ratio.value)
        found.append(
            figure("incremental_growth", steepest.value, unit="×", note=steepest.label,
                   from_stored=small.stored, to_stored=large.stored)
        )  # fmt: skip
    return found


# ------------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--stored",
        type=lambda text: [int(part) for part in text.split(",")],
        help="store sizes in leads, comma-separated (default 10000,1000000; --quick 10000,100000)",
    )
    parser.add_argument(
        "--changed", type=int, default=DEFAULT_CHANGED, help="records changed per run"
    )
    parser.add_argument("--repeat", type=int, help="measured runs per size (default 3; --quick 1)")
    parser.add_argument(
        "--sandbox-leads",
        type=int,
        default=DEFAULT_SANDBOX_LEADS,
        help="leads per CRM in the sandbox, synced for real (default 2000)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run that only prints")
    parser.add_argument(
        "--output",
        type=Path,
        help="the Markdown file to update (default docs/BENCHMARKS.md; none with --quick)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of one run per size"
    )
    parser.add_argument("--keep", type=Path, help="keep each size's database in this folder")
    parser.add_argument(
        "--section",
        default=SECTION,
        help=f"the marked section of the Markdown file to write (default {SECTION})",
    )
    args = parser.parse_args(argv)
    args.stored = sorted(args.stored or (QUICK_STORED if args.quick else DEFAULT_STORED))
    args.repeat = args.repeat or (1 if args.quick else 3)
    if args.changed < 2 or args.repeat < 1:
        parser.error("--changed must be at least 2 (one per CRM) and --repeat at least 1")
    return args


def command_line(args: argparse.Namespace) -> str:
    stored = ",".join(str(size) for size in args.stored)
    section = "" if args.section == SECTION else f" --section {args.section}"
    return (
        f"bench/incremental_cost.py --stored {stored} --changed {args.changed} "
        f"--repeat {args.repeat} --sandbox-leads {args.sandbox_leads}{section}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    output = args.output or (None if args.quick else BENCHMARKS_MD)
    results = []
    with tempfile.TemporaryDirectory(prefix="incremental_cost-") as scratch:
        for stored in args.stored:
            folder = (args.keep or Path(scratch)) / f"stored-{stored}"
            try:
                results.append(measure_size(stored, args, folder))
            finally:
                if args.keep is None:
                    # A million leads take gigabytes: one size's database at a time.
                    shutil.rmtree(folder, ignore_errors=True)

    text = report(results, args, command_line(args))
    print(text)
    if output is not None:
        sizes = " and ".join(f"{stored:,}" for stored in args.stored)
        intro = (
            SECTION_INTRO
            if args.section == SECTION
            else f"### {args.changed:,} records changed, {sizes} stored leads\n"
        )
        write_section(args.section, intro + "\n" + text, intro=INTRO, path=output)
        save_results(args.section, figures(results), command=command_line(args), markdown=output)
        _progress(f"wrote the {args.section} section of {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
