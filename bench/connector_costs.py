"""What do the connectors cost? API calls against the lower bound, time and memory per CRM.

    .venv/bin/python bench/connector_costs.py [--leads 100000] [--repeat 3] [--quick]
                                              [--output docs/BENCHMARKS.md]

API calls are the scarce resource, so each operation's calls are set against the fewest the
CRM's API allows for that many records: HubSpot lists 100 contacts a page, searches 200 and
batch-updates 100 a call; Salesforce reads 2,000 leads a query page and updates 200 a
collection, or runs a Bulk API 2.0 job in a few calls. The calls are counted by the sandbox
(`/_sandbox/stats`, before and after), not by the connectors, so nothing they forget to count
escapes.

Every operation runs through the public connector interface (`pull`, `pull_all`, `write`)
against `leadsync sandbox` as a separate process with every limit raised, and with the
connectors' own pacing raised too: the figures are leadsync's cost, not HubSpot's pacing. Each
run is done twice, once timed and once under tracemalloc (which slows Python down, so it never
shares a run with the clock). Every figure is the median of `--repeat` runs with the minimum and
maximum. The tables go to docs/BENCHMARKS.md (between the `connector-costs` markers) and to
stdout; `--quick` (10,000 leads, one run) only prints unless `--output` is given.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import (
    BENCHMARKS_MD,
    MB,
    UNLIMITED,
    SandboxServer,
    Spread,
    expect,
    figure_text,
    http_session,
    machine,
    markdown_table,
    write_section,
)

from leadsync.connectors.base import Page, RecordUpdate, WriteResult
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.connectors.salesforce import SalesforceConnector
from leadsync.connectors.settings import HubSpotConnection, SalesforceConnection

SECTION = "connector-costs"
DEFAULT_LEADS = 100_000
QUICK_LEADS = 10_000
PER_RECORDS = 100_000  # CPU time is given per this many records

# The most records one call of each API carries: the lower bounds are built from these, not
# from the connectors' settings, so a connector asking for smaller pages would show here.
HUBSPOT_LIST_PAGE = 100
HUBSPOT_SEARCH_PAGE = 200
HUBSPOT_BATCH = 100
SALESFORCE_QUERY_PAGE = 2_000
SALESFORCE_COLLECTION = 200
# Bulk API 2.0 result pages are as large as the client asks; this is the connector's default.
SALESFORCE_BULK_PAGE = SalesforceConnection.for_sandbox("").bulk_page_size

# What a sync reads: about fifteen fields, the same in both CRMs.
HUBSPOT_FIELDS = (
    "email",
    "firstname",
    "lastname",
    "company",
    "jobtitle",
    "phone",
    "website",
    "country",
    "industry",
    "numemployees",
    "lifecyclestage",
    "hs_lead_status",
    "hubspot_owner_id",
    "hs_analytics_source",
    "salesforceleadid",
)
SALESFORCE_FIELDS = (
    "Email",
    "FirstName",
    "LastName",
    "Company",
    "Title",
    "Phone",
    "Website",
    "Country",
    "Industry",
    "NumberOfEmployees",
    "AnnualRevenue",
    "LeadSource",
    "Status",
    "Rating",
    "OwnerId",
)

INTRO = """\
# Benchmarks

Speed is measured, not assumed: throughput, API calls and memory are measured by the scripts in
`bench/`, never by timed unit tests. Each script writes its own section below, between markers,
and leaves the rest of this file alone.
"""

SECTION_INTRO = """\
## Connector costs

```sh
.venv/bin/python bench/connector_costs.py [--leads 100000] [--repeat 3] [--quick] [--output FILE]
```

runs each connector operation through the public interface (`pull_all`, `pull` from no
position, `write`) against `leadsync sandbox` as a separate process, every sandbox limit and
the connectors' own pacing raised, and sets the API calls the sandbox counted (its
`/_sandbox/stats`, before and after) against the fewest the CRM's API allows: HubSpot ⌈n/100⌉
list pages, ⌈n/200⌉ search pages and ⌈n/100⌉ batch updates; Salesforce ⌈n/2000⌉ query pages
and ⌈n/200⌉ collection updates, or a Bulk API 2.0 job's few calls. Writes update one field of
every record, and the sandbox is reseeded after each. Beside the wall time: the connector
process's CPU time (per 100,000 records) and the sandbox process's, so leadsync's share shows,
and the connector process's peak traced memory (tracemalloc, in a separate run: it slows
Python down) once n/10 and n/2 of the records have passed and at the end: a peak level from n/2
to n means a pull holds pages, not the whole result. The Bulk full pull runs a second time with
10,000-row result pages, to show that a Bulk read's memory follows the page size, not n.
"""


# ------------------------------------------------------------------------------------ the sandbox


class Bench:
    """One sandbox server and the connectors that talk to it."""

    def __init__(self, server: SandboxServer, leads: int) -> None:
        self.server = server
        self.leads = leads
        self.session = http_session()

    def hubspot(self) -> HubSpotConnector:
        # The connector's client-side pacing raised as well: HubSpot's own pacing is not a cost
        # of leadsync's.
        return HubSpotConnector(
            HubSpotConnection.for_sandbox(
                self.server.url, requests_per_ten_seconds=UNLIMITED, searches_per_second=UNLIMITED
            )
        )

    def salesforce(
        self, *, bulk: bool, bulk_page: int = SALESFORCE_BULK_PAGE
    ) -> SalesforceConnector:
        # A threshold of 0 sends every read and write through Bulk; one above any count, none.
        threshold = 0 if bulk else UNLIMITED
        return SalesforceConnector(
            SalesforceConnection.for_sandbox(
                self.server.url,
                bulk_query_threshold=threshold,
                bulk_write_threshold=threshold,
                bulk_page_size=bulk_page,
            )
        )

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = expect(
            self.session.get(f"{self.server.url}/_sandbox/stats", timeout=60), 200
        )
        return stats

    def reset(self) -> None:
        """Reseed both CRMs as they started (the limits stay raised; the stats are cleared)."""
        answer = self.session.post(f"{self.server.url}/_sandbox/reset", json={}, timeout=600)
        expect(answer, 200)

    def hubspot_ids(self) -> list[str]:
        answer = self.session.get(f"{self.server.url}/_sandbox/hubspot/contacts", timeout=600)
        return [str(contact["id"]) for contact in expect(answer, 200)["results"]]

    def salesforce_ids(self) -> list[str]:
        answer = self.session.get(f"{self.server.url}/_sandbox/salesforce/leads", timeout=600)
        return [str(lead["Id"]) for lead in expect(answer, 200)["records"]]


# ------------------------------------------------------------------------------------ operations


# Where a traced pull notes its memory peak so far, as shares of the records: peaks that stay
# level from n/2 to n mean memory does not grow with n.
MILESTONES = (0.1, 0.5)


class Milestones:
    """The traced memory peak so far once each milestone share of `expected` records has
    passed; nothing when `expected` is None (an untraced run)."""

    def __init__(self, expected: int | None) -> None:
        self.thresholds = (
            [max(1, int(expected * share)) for share in MILESTONES] if expected else []
        )
        self.peaks: list[int] = []

    def passed(self, records: int) -> None:
        while (
            len(self.peaks) < len(self.thresholds) and records >= self.thresholds[len(self.peaks)]
        ):
            self.peaks.append(tracemalloc.get_traced_memory()[1])


@dataclass(slots=True)
class Outcome:
    records: int
    facts: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Job:
    """A prepared operation: `run` is what is measured; connectors and inputs are built before,
    and `close` runs after."""

    run: Callable[[Milestones], Outcome]
    close: Callable[[], None]


def consume(pages: Iterable[Page], marks: Milestones) -> Outcome:
    """Count the records of each page and keep none, as the engine does once a page is
    committed: the loop holds the current page while the connector fetches the next, and any
    other memory held across pages is the connector's."""
    records = 0
    for page in pages:
        records += len(page.records)
        marks.passed(records)
    return Outcome(records)


def write_outcome(results: Sequence[WriteResult]) -> Outcome:
    return Outcome(len(results), Counter(f"updates {result.status}" for result in results))


def count_searches(connector: HubSpotConnector, facts: Counter[str]) -> None:
    """Count the searches the connector issues and the records they return.

    Every page after the first is a search issued again from the last stamp seen, so records
    at that stamp come back; the connector keeps no such count, so its private page method
    is wrapped; what it does is left unchanged."""
    search_page = connector._search_page

    def counted(filters: Any, sort: Any, fields: Sequence[str]) -> Any:
        records, more = search_page(filters, sort, fields)
        facts["records returned"] += len(records)
        facts["searches issued"] += 1
        return records, more

    connector._search_page = counted  # type: ignore[method-assign]


def hubspot_full_pull(bench: Bench) -> Job:
    connector = bench.hubspot()
    return Job(
        lambda marks: consume(connector.pull_all(fields=HUBSPOT_FIELDS), marks), connector.close
    )


def hubspot_incremental_pull(bench: Bench) -> Job:
    connector = bench.hubspot()
    facts: Counter[str] = Counter()
    count_searches(connector, facts)

    def run(marks: Milestones) -> Outcome:
        pages = connector.pull(None, fields=HUBSPOT_FIELDS, started_at=datetime.now(UTC))
        outcome = consume(pages, marks)
        outcome.facts.update(facts)
        return outcome

    return Job(run, connector.close)


def hubspot_write(bench: Bench) -> Job:
    updates = [RecordUpdate(i, {"jobtitle": "Benchmark title"}) for i in bench.hubspot_ids()]
    connector = bench.hubspot()
    return Job(lambda _: write_outcome(connector.write(updates)), connector.close)


def salesforce_incremental_pull(*, bulk: bool) -> Callable[[Bench], Job]:
    def prepare(bench: Bench) -> Job:
        connector = bench.salesforce(bulk=bulk)

        def run(marks: Milestones) -> Outcome:
            pages = connector.pull(None, fields=SALESFORCE_FIELDS, started_at=datetime.now(UTC))
            return consume(pages, marks)

        return Job(run, connector.close)

    return prepare


def salesforce_full_pull(
    *, bulk: bool, bulk_page: int = SALESFORCE_BULK_PAGE
) -> Callable[[Bench], Job]:
    def prepare(bench: Bench) -> Job:
        connector = bench.salesforce(bulk=bulk, bulk_page=bulk_page)
        return Job(
            lambda marks: consume(connector.pull_all(fields=SALESFORCE_FIELDS), marks),
            connector.close,
        )

    return prepare


def salesforce_write(*, bulk: bool) -> Callable[[Bench], Job]:
    def prepare(bench: Bench) -> Job:
        # Every live lead, converted ones included: Salesforce refuses those, and a refusal must
        # cost no call of its own.
        updates = [RecordUpdate(i, {"Title": "Benchmark title"}) for i in bench.salesforce_ids()]
        connector = bench.salesforce(bulk=bulk)
        return Job(lambda _: write_outcome(connector.write(updates)), connector.close)

    return prepare


def pages(records: int, size: int) -> int:
    return math.ceil(records / size)


@dataclass(frozen=True, slots=True)
class Operation:
    crm: str  # as the sandbox's stats name it
    name: str
    path: str
    prepare: Callable[[Bench], Job]
    bound: Callable[[int], int]  # the fewest calls the API allows for this many records
    bound_text: str
    writes: bool = False  # reseed after each run, so later runs meet the seeded data
    counts_first: bool = False  # a Salesforce read starts with a COUNT() to choose REST or Bulk


# Bulk API 2.0: a query job is created, polled (at least once) and read page by page; an update
# job is created, its CSV uploaded, closed, polled, and its successful and failed results read.
BULK_QUERY_BOUND = f"create + poll + ⌈n/{SALESFORCE_BULK_PAGE:,}⌉ pages"
# A smaller result page than the connector's default: memory against page size (see above).
SMALL_BULK_PAGE = 10_000
SMALL_BULK_PAGE_PATH = f"Bulk, {SMALL_BULK_PAGE:,}-row pages"
BULK_UPDATE_CALLS = 6

OPERATIONS = (
    Operation(
        "hubspot",
        "full pull",
        "list",
        hubspot_full_pull,
        lambda n: pages(n, HUBSPOT_LIST_PAGE),
        "⌈n/100⌉",
    ),
    Operation(
        "hubspot",
        "incremental pull",
        "search",
        hubspot_incremental_pull,
        lambda n: pages(n, HUBSPOT_SEARCH_PAGE),
        "⌈n/200⌉",
    ),
    Operation(
        "hubspot",
        "write",
        "batch",
        hubspot_write,
        lambda n: pages(n, HUBSPOT_BATCH),
        "⌈n/100⌉",
        writes=True,
    ),
    Operation(
        "salesforce",
        "incremental pull",
        "REST",
        salesforce_incremental_pull(bulk=False),
        lambda n: pages(n, SALESFORCE_QUERY_PAGE),
        "⌈n/2000⌉",
        counts_first=True,
    ),
    Operation(
        "salesforce",
        "incremental pull",
        "Bulk",
        salesforce_incremental_pull(bulk=True),
        lambda n: 2 + pages(n, SALESFORCE_BULK_PAGE),
        BULK_QUERY_BOUND,
        counts_first=True,
    ),
    Operation(
        "salesforce",
        "full pull",
        "REST",
        salesforce_full_pull(bulk=False),
        lambda n: pages(n, SALESFORCE_QUERY_PAGE),
        "⌈n/2000⌉",
        counts_first=True,
    ),
    Operation(
        "salesforce",
        "full pull",
        "Bulk",
        salesforce_full_pull(bulk=True),
        lambda n: 2 + pages(n, SALESFORCE_BULK_PAGE),
        BULK_QUERY_BOUND,
        counts_first=True,
    ),
    Operation(
        "salesforce",
        "full pull",
        SMALL_BULK_PAGE_PATH,
        salesforce_full_pull(bulk=True, bulk_page=SMALL_BULK_PAGE),
        lambda n: 2 + pages(n, SMALL_BULK_PAGE),
        f"create + poll + ⌈n/{SMALL_BULK_PAGE:,}⌉ pages",
        counts_first=True,
    ),
    Operation(
        "salesforce",
        "write",
        "REST",
        salesforce_write(bulk=False),
        lambda n: pages(n, SALESFORCE_COLLECTION),
        "⌈n/200⌉",
        writes=True,
    ),
    Operation(
        "salesforce",
        "write",
        "Bulk",
        salesforce_write(bulk=True),
        lambda n: BULK_UPDATE_CALLS,
        "6 job calls",
        writes=True,
    ),
)


# ------------------------------------------------------------------------------------ measuring


@dataclass(frozen=True, slots=True)
class Sample:
    """One run of one operation."""

    records: int
    calls: Counter[str]  # by sandbox endpoint, this CRM's only
    facts: Counter[str]
    wall: float
    cpu: float  # CPU seconds of this (the connector's) process
    sandbox_cpu: float
    milestone_peaks: tuple[int, ...] = ()  # traced pulls: peak bytes so far at n/10, n/2
    peak: int | None = None  # traced runs: peak bytes over the whole operation

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def endpoint_calls(before: dict[str, Any], after: dict[str, Any], crm: str) -> Counter[str]:
    """The calls made between two stats readings, by endpoint; a throttled or faulted call
    stops the benchmark, since the figures would then measure the sandbox's limits."""
    for kind in ("throttled", "faulted"):
        grown = Counter(after[kind]) - Counter(before[kind])
        if grown:
            raise RuntimeError(f"the sandbox {kind} calls during a measurement: {dict(grown)}")
    calls = Counter(after["endpoints"]) - Counter(before["endpoints"])
    return Counter({name: n for name, n in calls.items() if name.startswith(f"{crm}.")})


def measure(bench: Bench, operation: Operation, *, traced: bool) -> Sample:
    job = operation.prepare(bench)
    try:
        before = bench.stats()
        gc.collect()  # garbage of the preparation is not the operation's
        marks = Milestones(bench.leads if traced else None)
        if traced:
            tracemalloc.start()
        began = time.perf_counter(), time.process_time(), bench.server.cpu_seconds()
        outcome = job.run(marks)
        ended = time.perf_counter(), time.process_time(), bench.server.cpu_seconds()
        peak = tracemalloc.get_traced_memory()[1] if traced else None
    finally:
        tracemalloc.stop()  # before anything else allocates: only the operation is traced
        job.close()
    after = bench.stats()
    wall, cpu, sandbox_cpu = (end - start for start, end in zip(began, ended, strict=True))
    return Sample(
        records=outcome.records,
        calls=endpoint_calls(before, after, operation.crm),
        facts=outcome.facts,
        wall=wall,
        cpu=cpu,
        sandbox_cpu=sandbox_cpu,
        milestone_peaks=tuple(marks.peaks),
        peak=peak,
    )


@dataclass(slots=True)
class Result:
    operation: Operation
    timed: list[Sample] = field(default_factory=list)
    traced: list[Sample] = field(default_factory=list)

    @property
    def samples(self) -> list[Sample]:
        return self.timed + self.traced


def measure_all(bench: Bench, repeat: int) -> list[Result]:
    results = [Result(operation) for operation in OPERATIONS]
    for run in range(1, repeat + 1):
        for result in results:
            operation = result.operation
            for traced, samples in ((False, result.timed), (True, result.traced)):
                kind = "traced" if traced else "timed"
                _progress(f"run {run}/{repeat}: {_label(operation)} ({kind})")
                samples.append(measure(bench, operation, traced=traced))
                if operation.writes:
                    bench.reset()
    return results


# ------------------------------------------------------------------------------------ report

CRM_NAMES = {"hubspot": "HubSpot", "salesforce": "Salesforce"}
# Calls that carry no records, by endpoint: each is made once per connector (per run here).
OVERHEAD = {
    "salesforce.auth.soap": "login",
    "salesforce.auth.oauth": "login",
    "salesforce.limits": "`/limits`",
    "salesforce.describe": "describe (types for the Bulk CSV)",
}


def _label(operation: Operation) -> str:
    return f"{CRM_NAMES[operation.crm]} {operation.name} ({operation.path})"


def _range_text(values: Sequence[float], digits: Callable[[float], str] = figure_text) -> str:
    spread = Spread.of(values)
    if spread.low == spread.high:
        return digits(spread.median)
    return f"{digits(spread.median)} [{digits(spread.low)}–{digits(spread.high)}]"


def _count_text(values: Sequence[float]) -> str:
    return _range_text(values, lambda value: f"{value:,.0f}")


@dataclass(frozen=True, slots=True)
class Accounting:
    """Where one run's calls went: the bound, the fixed overhead, and anything beyond both."""

    bound: int
    overhead: Counter[str]  # what -> calls
    beyond: int  # calls neither in the bound nor fixed overhead

    @classmethod
    def of(cls, operation: Operation, sample: Sample) -> Accounting:
        bound = operation.bound(sample.records)
        overhead: Counter[str] = Counter()
        for endpoint, count in sample.calls.items():
            if endpoint in OVERHEAD:
                overhead[OVERHEAD[endpoint]] += count
        if operation.counts_first:
            overhead["COUNT()"] += 1
        beyond = sample.total_calls - bound - sum(overhead.values())
        return cls(bound, overhead, beyond)


def costs_table(results: Sequence[Result]) -> str:
    rows = []
    for result in results:
        operation, timed = result.operation, result.timed
        accounts = [Accounting.of(operation, sample) for sample in result.samples]
        rows.append(
            [
                CRM_NAMES[operation.crm],
                operation.name,
                operation.path,
                _count_text([s.records for s in timed]),
                _count_text([s.total_calls for s in result.samples]),
                f"{_count_text([a.bound for a in accounts])} ({operation.bound_text})",
                _range_text(
                    [s.total_calls / a.bound for s, a in zip(result.samples, accounts, strict=True)]
                ),
                _range_text([s.wall for s in timed]),
                _count_text([s.records / s.wall for s in timed]),
                _range_text([s.cpu / s.records * PER_RECORDS for s in timed]),
                _range_text([s.sandbox_cpu for s in timed]),
                _memory_text(result),
            ]
        )
    headers = [
        "CRM",
        "operation",
        "path",
        "records",
        "API calls",
        "lower bound",
        "calls / bound",
        "wall s, median [min–max]",
        "records/s",
        "connector CPU s per 100k",
        "sandbox CPU s",
        "peak MB at n/10 → n/2 → n",
    ]
    return markdown_table(headers, rows)


def _memory_text(result: Result) -> str:
    """The peaks at n/10 → n/2 → n of a pull, or a write's single peak, in MB."""
    return " → ".join(_range_text(column) for column in _peak_columns(result))


def _peak_columns(result: Result) -> list[list[float]]:
    """The traced runs' peaks in MB: one list per milestone, then the whole operation."""
    return [
        [peak / MB for peak in column] for column in zip(*map(_peaks, result.traced), strict=True)
    ]


def _peaks(sample: Sample) -> tuple[int, ...]:
    assert sample.peak is not None, "a traced sample has a peak"
    return (*sample.milestone_peaks, sample.peak)


def calls_table(results: Sequence[Result]) -> str:
    rows = []
    for result in results:
        operation = result.operation
        sample = _median_sample(result.timed)
        account = Accounting.of(operation, sample)
        endpoints = ", ".join(
            f"{name.split('.', 1)[1]} {count:,}" for name, count in sorted(sample.calls.items())
        )
        overhead = ", ".join(f"{count} {what}" for what, count in sorted(account.overhead.items()))
        rows.append(
            [
                _label(operation),
                endpoints,
                overhead or "none",
                f"{account.beyond:+,}" if account.beyond else "0",
                _facts_text(operation, sample),
            ]
        )
    headers = ["operation", "calls by sandbox endpoint", "fixed overhead", "beyond both", "notes"]
    return markdown_table(headers, rows)


def _median_sample(samples: Sequence[Sample]) -> Sample:
    """The run with the median wall time: its call breakdown stands for all (they agree)."""
    return sorted(samples, key=lambda sample: sample.wall)[len(samples) // 2]


def _facts_text(operation: Operation, sample: Sample) -> str:
    facts = sample.facts
    notes = []
    if "searches issued" in facts:
        reissues = facts["searches issued"] - 1
        reread = facts["records returned"] - sample.records
        notes.append(
            f"{reissues} search(es) issued again from the last stamp seen; {reread:,} "
            "record(s) returned again at a re-issue's first stamp and dropped"
        )
    written = facts.get("updates written", 0)
    if operation.writes:
        refused = sample.records - written
        notes.append(
            f"{written:,} written, {refused:,} refused (converted leads)"
            if refused
            else f"{written:,} written"
        )
    return "; ".join(notes)


def summary(results: Sequence[Result]) -> str:
    return "\n\n".join([calls_summary(results), OVERHEAD_TEXT, memory_summary(results)])


OVERHEAD_TEXT = (
    "The fixed overhead is per connector, so per sync run, not per page: a Salesforce connector "
    "logs in once and reads `/limits` once (to know the day's quota before it starts), and each "
    "Salesforce read starts with a `COUNT()` to choose REST or Bulk; a Bulk read also asks "
    "`describe` once for the field types of the CSV. A HubSpot search's offset skips contacts "
    "edited meanwhile and stops at 10,000 results, so the incremental pull issues each next "
    "page as a new search from the last stamp seen; that costs a call only where the records "
    "it returns again at that stamp spill into one more page."
)


def calls_summary(results: Sequence[Result]) -> str:
    at_bound: list[Result] = []
    above: list[tuple[Result, set[int]]] = []
    for result in results:
        beyond = {Accounting.of(result.operation, s).beyond for s in result.samples}
        if beyond == {0}:
            at_bound.append(result)
        else:
            above.append((result, beyond))
    if not above:
        return (
            "**Calls**: every operation makes exactly the calls its lower bound allows, plus a "
            "fixed overhead that does not grow with n."
        )
    names = ", ".join(_label(result.operation) for result in at_bound) or "none"
    parts = [f"**Calls**: at the lower bound plus a fixed overhead: {names}."]
    for result, beyond in above:
        counts = ", ".join(f"{b:+,}" for b in sorted(beyond))
        parts.append(
            f"{_label(result.operation)} makes {counts} call(s) beyond both{_why(result)}."
        )
    return " ".join(parts)


def _why(result: Result) -> str:
    sample = _median_sample(result.timed)
    if "searches issued" not in sample.facts:
        return " (see the calls by endpoint below)"
    reissues = sample.facts["searches issued"] - 1
    reread = sample.facts["records returned"] - sample.records
    extra = Accounting.of(result.operation, sample).beyond
    return (
        f": its {reissues} re-issued searches returned {reread:,} record(s) a second time (at "
        f"the stamp each re-issue starts from), which spilled into {extra:,} more page(s)"
    )


def _bulk_growth(results: Sequence[Result]) -> str:
    reason = (
        ": a Bulk read keeps one result page (its CSV text and parsed rows) alive while it "
        "fetches and parses the next, so its peak is two pages"
    )
    if all(_median_sample(result.timed).records <= 2 * SALESFORCE_BULK_PAGE for result in results):
        reason += f", and two pages of {SALESFORCE_BULK_PAGE:,} rows are all of these records"
    return reason


def memory_summary(results: Sequence[Result]) -> str:
    level: list[Result] = []
    growing: list[Result] = []
    for result in results:
        if not result.operation.writes:
            half, whole = (Spread.of(column).median for column in _peak_columns(result)[-2:])
            # 10 %: tracemalloc's peak moves a little with the size of the last page.
            (level if whole <= 1.1 * half else growing).append(result)
    parts = [
        "**Memory**: level from n/2 to n, so holding pages and not the result: "
        + (", ".join(_label(result.operation) for result in level) or "none")
        + "."
    ]
    bulk = [result for result in growing if result.operation.path == "Bulk"]
    others = [result for result in growing if result.operation.path != "Bulk"]
    if bulk:
        names = ", ".join(_label(result.operation) for result in bulk)
        parts.append(f"Growing from n/2 to n: {names}{_bulk_growth(bulk)}.")
        if any(result.operation.path == SMALL_BULK_PAGE_PATH for result in level):
            parts.append(
                f"With {SMALL_BULK_PAGE:,}-row pages the same read levels off: a Bulk read's "
                "memory follows the page size (`bulk_page_size`), not n."
            )
    if others:
        names = ", ".join(_label(result.operation) for result in others)
        parts.append(f"Growing from n/2 to n, unexplained: {names}.")
    parts.append(
        "A write's peak grows with n by design: it returns one result per update, and a Bulk "
        "update also holds the job's CSV and its result files."
    )
    return " ".join(parts)


def report(leads: int, repeat: int, results: Sequence[Result]) -> str:
    command = f"bench/connector_costs.py --leads {leads} --repeat {repeat}"
    return "\n".join(
        [
            SECTION_INTRO,
            f"`{command}` on {machine()}.",
            f"{leads:,} leads per CRM; median [min–max] of {repeat} run(s); a single figure "
            "where all runs agree.",
            "",
            costs_table(results),
            "",
            summary(results),
            "",
            calls_table(results),
            "",
            '"Records" are what the pull yielded (Salesforce\'s incremental pull reads through '
            "`queryAll`, deleted leads included; its full pull only live ones) or the updates "
            'sent. "Calls / bound" counts every call, fixed overhead included. Memory is '
            "tracemalloc's peak in the connector process during the operation, a write's input "
            "list excluded; a pull's figures at n/10 and n/2 are its peak so far once that share "
            "of the records had passed.",
        ]
    )


# ------------------------------------------------------------------------------------ main


def _progress(message: str) -> None:
    print(f"[connector_costs] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--leads", type=int, help="leads per CRM (default 100,000; --quick 10,000)")
    parser.add_argument("--repeat", type=int, help="runs of each operation (default 3; --quick 1)")
    parser.add_argument(
        "--quick", action="store_true", help="a fast smoke run that only prints its tables"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="the Markdown file to update (default docs/BENCHMARKS.md; none with --quick)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    leads = args.leads or (QUICK_LEADS if args.quick else DEFAULT_LEADS)
    repeat = args.repeat or (1 if args.quick else 3)
    output = args.output or (None if args.quick else BENCHMARKS_MD)

    _progress(f"starting the sandbox with {leads:,} leads per CRM")
    with SandboxServer(leads) as server:  # stopped on any exit, Ctrl-C included
        results = measure_all(Bench(server, leads), repeat)

    text = report(leads, repeat, results)
    print(text)
    if output is not None:
        write_section(SECTION, text, intro=INTRO, path=output)
        _progress(f"wrote the {SECTION} section of {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
