"""How fast is the sandbox itself? Start-up, memory and request throughput at 100,000 leads.

    .venv/bin/python bench/sandbox_speed.py [--leads 100000] [--repeat 3] [--quick]

Later benchmarks time leadsync against the sandbox; these figures say how much of their time is
the sandbox's, and show that the sandbox is never what limits them. Every figure is the median of
`--repeat` runs with the minimum and maximum. The tables go to docs/BENCHMARKS.md (between the
`sandbox-speed` markers) and to stdout. `--quick` is a smoke run (10,000 leads, one run, few
pages) that only prints, so it never overwrites the real figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    BENCHMARKS_MD,
    MB,
    SandboxServer,
    Spread,
    expect,
    figure_text,
    http_session,
    hubspot_headers,
    machine,
    markdown_table,
    memory_bytes,
    salesforce_headers,
    write_section,
)

SECTION = "sandbox-speed"
TARGET_LEADS = 100_000
TARGET_START_SECONDS = 10.0
TARGET_MEMORY_BYTES = 1_000 * MB

# What a sync reads from HubSpot: about fifteen properties, not the default six.
HUBSPOT_PROPERTIES = (
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
CONTACTS = "/crm/v3/objects/contacts"
SALESFORCE_DATA = "/services/data/v59.0"
SOQL = (
    "SELECT Id, Email, FirstName, LastName, Company, Title, Status, SystemModstamp "
    "FROM Lead ORDER BY SystemModstamp, Id"
)
# Salesforce refuses to update a converted lead; the update benchmark leaves those out.
CONVERTED = "Closed - Converted"
SEARCH_WINDOW_DAYS = 90  # an incremental search: contacts modified in the last 90 days

INTRO = """\
# Benchmarks

Speed is measured, not assumed: throughput, API calls and memory are measured by the scripts in
`bench/`, never by timed unit tests. Each script writes its own section below, between markers,
and leaves the rest of this file alone. Every figure is the median of several runs, with the
minimum and maximum; each section starts with the command, the machine, the Python and the
date that produced it.

## Sandbox speed

```sh
.venv/bin/python bench/sandbox_speed.py [--leads 100000] [--repeat 3] [--quick]
```

measures the sandbox itself, so that later benchmarks can tell leadsync's time from the
sandbox's:

- **Start-up and memory**: in a fresh interpreter, `Sandbox(SandboxSettings(port=0,
  leads=N))` constructed and started (seeding N leads per CRM), its wall time and the process's
  peak RSS, with the RSS after the imports (the baseline) so the data's own share shows; and the
  `leadsync sandbox` command as a user runs it, from spawning the process to its banner, and its
  peak RSS at the banner and after all the requests below. Targets at 100,000 leads per CRM:
  under 10 s and under 1 GB (1,000 MB), judged on the worst run.
- **Throughput**, against `leadsync sandbox` as a separate process with every rate limit raised,
  over one keep-alive connection: HubSpot list pages (100 contacts, 15 properties), batch
  updates (100 contacts each), searches (`lastmodifieddate` GT 90 days ago, ascending, 200 a
  page); a full Salesforce SOQL read of every lead (batch size 2,000; the first page is timed
  apart because the sandbox runs the whole query then) and collection updates (200 leads
  each). Besides the rates, the sandbox process's CPU time per request (from /proc) and its
  share of the wall time ("busy"), and the same share for the benchmark client. A sandbox near
  100 % busy is what limits a client; both low means the time goes to neither process, but to
  waiting (a TCP delayed acknowledgement, say).
"""


# ------------------------------------------------------------------------------------ start-up


@dataclass(frozen=True, slots=True)
class StartupSample:
    """One fresh interpreter constructing and starting a `Sandbox`."""

    import_seconds: float
    start_seconds: float  # construction (seeding both CRMs) and start of the HTTP server
    baseline_rss: int  # peak RSS after the imports, before any data
    peak_rss: int
    started_rss: int  # RSS once started, after the seeding's temporary objects are freed


def startup_child(leads: int) -> None:
    """One start-up in this (fresh) interpreter, printed as JSON; run by `measure_startup`.

    The import is timed apart: the target is about seeding the data, not about Python."""
    began = time.perf_counter()
    from leadsync.sandbox import Sandbox, SandboxSettings

    imported = time.perf_counter()
    baseline = _peak_rss()
    sandbox = Sandbox(SandboxSettings(port=0, leads=leads)).start()
    started = time.perf_counter()
    sample = StartupSample(
        import_seconds=imported - began,
        start_seconds=started - imported,
        baseline_rss=baseline,
        peak_rss=_peak_rss(),
        started_rss=memory_bytes(os.getpid(), "VmRSS"),
    )
    sandbox.stop()
    print(json.dumps(dataclasses.asdict(sample)))


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux counts KiB


def measure_startup(leads: int) -> StartupSample:
    # A fresh interpreter each time: the peak RSS of a process that already held a sandbox
    # would say nothing about this one.
    answer = subprocess.run(
        [sys.executable, __file__, "--startup-child", str(leads)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return StartupSample(**json.loads(answer.stdout.strip().splitlines()[-1]))


@dataclass(frozen=True, slots=True)
class ServerSample:
    """`leadsync sandbox` as a user starts it, from one throughput run."""

    banner_seconds: float  # spawn to "Stop with": interpreter, imports, seeding, listening
    banner_peak_rss: int
    final_peak_rss: int  # after every throughput measurement: query snapshots included


# ------------------------------------------------------------------------------------ throughput


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many requests each throughput measurement makes."""

    list_pages: int
    batch_calls: int
    search_pages: int
    collection_calls: int


FULL = Sizes(list_pages=300, batch_calls=100, search_pages=50, collection_calls=50)
QUICK = Sizes(list_pages=30, batch_calls=10, search_pages=10, collection_calls=10)


class Workload:
    """The requests of the throughput measurements, against one server over one session.

    Each measurement is a generator that makes one request per step and yields how many records
    it carried, so `timed` can time the first request apart from the rest. The read
    measurements keep the ids they see for the update measurements that follow them."""

    def __init__(self, server: SandboxServer, sizes: Sizes) -> None:
        self.url = server.url
        self.sizes = sizes
        self.session = http_session()
        self.hubspot = hubspot_headers()
        self.salesforce = salesforce_headers(self.session, self.url)
        self.contact_ids: list[str] = []
        self.lead_ids: list[str] = []
        self.facts: dict[str, int] = {}

    def hubspot_list(self) -> Iterator[int]:
        after: str | None = None
        for _ in range(self.sizes.list_pages):
            params = [("limit", "100"), *(("properties", name) for name in HUBSPOT_PROPERTIES)]
            if after is not None:
                params.append(("after", after))
            answer = self.session.get(
                f"{self.url}{CONTACTS}", params=params, headers=self.hubspot, timeout=60
            )
            page = expect(answer, 200)
            self.contact_ids += [contact["id"] for contact in page["results"]]
            yield len(page["results"])
            after = page.get("paging", {}).get("next", {}).get("after")
            if after is None:
                return

    def hubspot_batch_update(self) -> Iterator[int]:
        for call, batch in _batches(self.contact_ids, 100, self.sizes.batch_calls):
            inputs = [
                {"id": contact_id, "properties": {"jobtitle": f"Benchmark title {call}"}}
                for contact_id in batch
            ]
            answer = self.session.post(
                f"{self.url}{CONTACTS}/batch/update",
                json={"inputs": inputs},
                headers=self.hubspot,
                timeout=60,
            )
            yield len(expect(answer, 200)["results"])

    def hubspot_search(self) -> Iterator[int]:
        since = int((time.time() - SEARCH_WINDOW_DAYS * 86_400) * 1000)
        body: dict[str, Any] = {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "lastmodifieddate", "operator": "GT", "value": str(since)}
                    ]
                }
            ],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": list(HUBSPOT_PROPERTIES),
            "limit": 200,
            "after": "0",
        }
        for _ in range(self.sizes.search_pages):
            answer = self.session.post(
                f"{self.url}{CONTACTS}/search", json=body, headers=self.hubspot, timeout=120
            )
            page = expect(answer, 200)
            self.facts["search_total"] = page["total"]
            yield len(page["results"])
            following = page.get("paging", {}).get("next", {}).get("after")
            if following is None:
                return
            body["after"] = following

    def salesforce_query(self) -> Iterator[int]:
        headers = {**self.salesforce, "Sforce-Query-Options": "batchSize=2000"}
        answer = self.session.get(
            f"{self.url}{SALESFORCE_DATA}/query", params={"q": SOQL}, headers=headers, timeout=300
        )
        while True:
            page = expect(answer, 200)
            records = page["records"]
            self.facts["query_total"] = page["totalSize"]
            self.lead_ids += [lead["Id"] for lead in records if lead["Status"] != CONVERTED]
            yield len(records)
            if page["done"]:
                return
            answer = self.session.get(
                f"{self.url}{page['nextRecordsUrl']}", headers=headers, timeout=300
            )

    def salesforce_collection_update(self) -> Iterator[int]:
        for call, batch in _batches(self.lead_ids, 200, self.sizes.collection_calls):
            records = [
                {"attributes": {"type": "Lead"}, "id": lead_id, "Title": f"Benchmark {call}"}
                for lead_id in batch
            ]
            answer = self.session.patch(
                f"{self.url}{SALESFORCE_DATA}/composite/sobjects",
                json={"allOrNone": False, "records": records},
                headers=self.salesforce,
                timeout=60,
            )
            results = expect(answer, 200)
            failed = [result for result in results if not result["success"]]
            if failed:
                raise RuntimeError(f"{len(failed)} leads failed to update: {failed[:3]}")
            yield len(results)


def _batches(ids: Sequence[str], size: int, count: int) -> Iterator[tuple[int, list[str]]]:
    """`count` numbered batches of `size` ids, cycling through `ids` if there are too few."""
    if len(ids) < size:
        raise RuntimeError(f"need at least {size} ids to update, the reads found {len(ids)}")
    chunks = [list(ids[start : start + size]) for start in range(0, len(ids) - size + 1, size)]
    return enumerate(itertools.islice(itertools.cycle(chunks), count))


@dataclass(frozen=True, slots=True)
class Segment:
    """Some consecutive requests of one measurement and what they cost."""

    requests: int
    records: int
    seconds: float
    sandbox_cpu: float  # CPU seconds of the sandbox process
    client_cpu: float  # CPU seconds of this benchmark process

    def __add__(self, other: Segment) -> Segment:
        return Segment(
            self.requests + other.requests,
            self.records + other.records,
            self.seconds + other.seconds,
            self.sandbox_cpu + other.sandbox_cpu,
            self.client_cpu + other.client_cpu,
        )


@dataclass(frozen=True, slots=True)
class Run:
    """One run of a measurement: its first request apart (a search or SOQL query does all its
    work there), and the rest."""

    first: Segment
    rest: Segment

    def part(self, name: str) -> Segment:
        return {"first": self.first, "rest": self.rest, "all": self.first + self.rest}[name]


def timed(server: SandboxServer, steps: Iterator[int]) -> Run:
    def mark() -> tuple[float, float, float]:
        return time.perf_counter(), server.cpu_seconds(), time.process_time()

    def segment(
        start: tuple[float, ...], end: tuple[float, ...], requests: int, records: int
    ) -> Segment:
        wall, sandbox, client = (after - before for before, after in zip(start, end, strict=True))
        return Segment(requests, records, wall, sandbox, client)

    began = mark()
    first_records = next(steps)
    after_first = mark()
    requests = records = 0
    for count in steps:
        requests += 1
        records += count
    ended = mark()
    return Run(
        segment(began, after_first, 1, first_records),
        segment(after_first, ended, requests, records),
    )


@dataclass(frozen=True, slots=True)
class Figure:
    """One row of the throughput table: a rate or latency of one part of a run."""

    label: str
    part: str  # "first", "rest" or "all" requests of a run
    value: Callable[[Segment], float]


def _requests_per_second(segment: Segment) -> float:
    return segment.requests / segment.seconds if segment.requests else float("nan")


def _records_per_second(segment: Segment) -> float:
    return segment.records / segment.seconds if segment.requests else float("nan")


def _seconds(segment: Segment) -> float:
    return segment.seconds


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    steps: Callable[[Workload], Iterator[int]]
    figures: tuple[Figure, ...]


# In this order: each update measurement updates the ids the read before it found.
MEASUREMENTS = (
    Measurement(
        "HubSpot list, 100/page",
        Workload.hubspot_list,
        (
            Figure("pages/s", "all", _requests_per_second),
            Figure("contacts/s", "all", _records_per_second),
        ),
    ),
    Measurement(
        "HubSpot batch update, 100/call",
        Workload.hubspot_batch_update,
        (
            Figure("calls/s", "all", _requests_per_second),
            Figure("contacts/s", "all", _records_per_second),
        ),
    ),
    Measurement(
        "HubSpot search, 200/page",
        Workload.hubspot_search,
        (
            Figure("first page, s", "first", _seconds),
            Figure("later pages/s", "rest", _requests_per_second),
            Figure("contacts/s, all pages", "all", _records_per_second),
        ),
    ),
    Measurement(
        "Salesforce query, 2,000/page",
        Workload.salesforce_query,
        (
            Figure("first page, s", "first", _seconds),
            Figure("queryMore pages/s", "rest", _requests_per_second),
            Figure("leads/s, whole read", "all", _records_per_second),
        ),
    ),
    Measurement(
        "Salesforce collection update, 200/call",
        Workload.salesforce_collection_update,
        (
            Figure("calls/s", "all", _requests_per_second),
            Figure("leads/s", "all", _records_per_second),
        ),
    ),
)


def measure_throughput(
    leads: int, repeat: int, sizes: Sizes
) -> tuple[dict[str, list[Run]], list[ServerSample], dict[str, int]]:
    runs: dict[str, list[Run]] = {measurement.name: [] for measurement in MEASUREMENTS}
    servers: list[ServerSample] = []
    facts: dict[str, int] = {}
    for run in range(1, repeat + 1):
        # A fresh server per run: every run meets the same data, not the previous run's edits,
        # and each start is one more sample of the command's start-up.
        with SandboxServer(leads) as server:
            banner_peak = server.peak_rss()
            workload = Workload(server, sizes)
            for measurement in MEASUREMENTS:
                _progress(f"throughput run {run}/{repeat}: {measurement.name}")
                runs[measurement.name].append(timed(server, measurement.steps(workload)))
            servers.append(ServerSample(server.banner_seconds, banner_peak, server.peak_rss()))
            facts = workload.facts
    return runs, servers, facts


# ------------------------------------------------------------------------------------ report


@dataclass(frozen=True, slots=True)
class Target:
    limit: float
    text: str


START_TARGET = Target(TARGET_START_SECONDS, "< 10 s")
MEMORY_TARGET = Target(TARGET_MEMORY_BYTES / MB, "< 1 GB")


@dataclass(frozen=True, slots=True)
class StartupRow:
    label: str
    values: list[float]
    target: Target | None = None


def startup_rows(startups: list[StartupSample], servers: list[ServerSample]) -> list[StartupRow]:
    return [
        StartupRow(
            "`Sandbox()` construct + start, s", [s.start_seconds for s in startups], START_TARGET
        ),
        StartupRow(
            "import of `leadsync.sandbox` before it, s", [s.import_seconds for s in startups]
        ),
        StartupRow("peak RSS, MB", [s.peak_rss / MB for s in startups], MEMORY_TARGET),
        StartupRow("RSS after the imports (baseline), MB", [s.baseline_rss / MB for s in startups]),
        StartupRow(
            "peak RSS minus baseline (the data), MB",
            [(s.peak_rss - s.baseline_rss) / MB for s in startups],
        ),
        StartupRow("RSS once started, MB", [s.started_rss / MB for s in startups]),
        StartupRow(
            "`leadsync sandbox`: spawn to banner, s",
            [s.banner_seconds for s in servers],
            START_TARGET,
        ),
        StartupRow(
            "`leadsync sandbox`: peak RSS at the banner, MB",
            [s.banner_peak_rss / MB for s in servers],
            MEMORY_TARGET,
        ),
        StartupRow(
            "`leadsync sandbox`: peak RSS after the throughput run, MB",
            [s.final_peak_rss / MB for s in servers],
            MEMORY_TARGET,
        ),
    ]


def verdict(row: StartupRow, leads: int) -> str:
    if row.target is None:
        return ""
    if leads < TARGET_LEADS:
        return f"n/a at {leads:,} leads"
    # Judged on the worst run: a target met only on a good day is not met.
    return "met" if max(row.values) < row.target.limit else "**NOT MET**"


def startup_table(rows: list[StartupRow], leads: int) -> str:
    lines = []
    for row in rows:
        spread = Spread.of(row.values)
        lines.append(
            [
                row.label,
                figure_text(spread.median),
                figure_text(spread.low),
                figure_text(spread.high),
                row.target.text if row.target else "",
                verdict(row, leads),
            ]
        )
    return markdown_table(["start-up", "median", "min", "max", "target", "verdict"], lines)


def throughput_table(runs: dict[str, list[Run]]) -> str:
    lines = []
    for measurement in MEASUREMENTS:
        for figure in measurement.figures:
            parts = [run.part(figure.part) for run in runs[measurement.name]]
            spread = _spread([figure.value(part) for part in parts])
            sandbox_ms = _spread([p.sandbox_cpu / p.requests * 1000 for p in parts if p.requests])
            sandbox_busy = _spread([p.sandbox_cpu / p.seconds * 100 for p in parts if p.requests])
            client_busy = _spread([p.client_cpu / p.seconds * 100 for p in parts if p.requests])
            lines.append(
                [
                    measurement.name,
                    figure.label,
                    *_spread_cells(spread),
                    _median_cell(sandbox_ms),
                    _median_cell(sandbox_busy, "%"),
                    _median_cell(client_busy, "%"),
                ]
            )
    headers = [
        "throughput",
        "figure",
        "median",
        "min",
        "max",
        "sandbox CPU ms/request",
        "sandbox busy",
        "client busy",
    ]
    return markdown_table(headers, lines)


def _spread(values: Iterable[float]) -> Spread | None:
    kept = [value for value in values if value == value]  # NaN: no request to rate
    return Spread.of(kept) if kept else None


def _spread_cells(spread: Spread | None) -> list[str]:
    if spread is None:
        return ["—"] * 3
    return [figure_text(spread.median), figure_text(spread.low), figure_text(spread.high)]


def _median_cell(spread: Spread | None, unit: str = "") -> str:
    return "—" if spread is None else f"{figure_text(spread.median)}{unit}"


def targets_summary(rows: list[StartupRow], leads: int) -> str:
    judged = [row for row in rows if row.target is not None]
    if leads < TARGET_LEADS:
        return (
            f"Targets (start-up < 10 s, < 1 GB at {TARGET_LEADS:,} leads per CRM) not judged: "
            f"this run seeded {leads:,}."
        )
    missed = [row.label for row in judged if verdict(row, leads) != "met"]
    if not missed:
        return (
            f"Targets at {TARGET_LEADS:,} leads per CRM, judged on the worst run: start-up "
            "< 10 s **met**, memory < 1 GB **met**."
        )
    return "Targets **not met**: " + "; ".join(missed) + "."


def report(
    leads: int,
    repeat: int,
    sizes: Sizes,
    startups: list[StartupSample],
    servers: list[ServerSample],
    runs: dict[str, list[Run]],
    facts: dict[str, int],
) -> str:
    rows = startup_rows(startups, servers)
    command = f"bench/sandbox_speed.py --leads {leads} --repeat {repeat}"
    return "\n".join(
        [
            f"`{command}` on {machine()}.",
            f"{leads:,} leads per CRM; median, min and max of {repeat} runs.",
            "",
            startup_table(rows, leads),
            "",
            targets_summary(rows, leads),
            "",
            throughput_table(runs),
            "",
            f"Each run: {sizes.list_pages} list pages (15 properties), {sizes.batch_calls} batch "
            f"updates, {sizes.search_pages} search pages of the "
            f"{facts.get('search_total', 0):,} contacts modified in the last "
            f"{SEARCH_WINDOW_DAYS} days, every page of the {facts.get('query_total', 0):,} "
            f'leads, {sizes.collection_calls} collection updates. "Sandbox CPU" is the '
            'sandbox process\'s user + system time (10 ms ticks); "busy" is a CPU time as a '
            "share of the wall time (100 % = one core).",
        ]
    )


# ------------------------------------------------------------------------------------ main


def _progress(message: str) -> None:
    print(f"[sandbox_speed] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--leads", type=int, help="leads per CRM (default 100,000; --quick 10,000)")
    parser.add_argument(
        "--repeat", type=int, help="runs of each measurement (default 3; --quick 1)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a fast smoke run that only prints its table"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="the Markdown file to update (default docs/BENCHMARKS.md; none with --quick)",
    )
    parser.add_argument("--startup-child", type=int, metavar="N", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.startup_child is not None:
        startup_child(args.startup_child)
        return 0
    leads = args.leads or (10_000 if args.quick else TARGET_LEADS)
    repeat = args.repeat or (1 if args.quick else 3)
    sizes = QUICK if args.quick else FULL
    output = args.output or (None if args.quick else BENCHMARKS_MD)

    startups = []
    for run in range(1, repeat + 1):
        _progress(f"start-up run {run}/{repeat} with {leads:,} leads per CRM")
        startups.append(measure_startup(leads))
    runs, servers, facts = measure_throughput(leads, repeat, sizes)

    text = report(leads, repeat, sizes, startups, servers, runs, facts)
    print(text)
    if output is not None:
        write_section(SECTION, text, intro=INTRO, path=output)
        _progress(f"wrote the {SECTION} section of {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
