"""How long `leadsync plan --what-if` takes over a large store: the target is a 100,000-lead
store in under a minute on this machine.

    .venv/bin/python bench/what_if.py [--seed-leads 2000] [--leads 100000] [--repeat 3]
                                      [--quick] [--output FILE]

A first sync of `leadsync sandbox --leads SEED` (a process of its own, every limit raised) fills
a store; its leads, with their links, records and what leadsync wrote to them, are then copied
under new ids until the store holds `--leads` leads (a full sync of 100,000 leads per CRM takes
over ten minutes here, and the what-if reads only the store). The lead definition is edited (the
MQL threshold lowered from 60 to 30) and the what-if run over the whole store, in-process,
`--repeat` times: wall and CPU time, leads per second, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _common import (
    BENCHMARKS_MD,
    MB,
    UNPACED,
    SandboxServer,
    http_session,
    machine,
    markdown_table,
    write_section,
)

from leadsync.config import Config, load_config
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.runtime import open_runtime
from leadsync.sandbox_config import EXAMPLES, write_sandbox_config
from leadsync.sync import tables as t
from leadsync.sync.whatif import what_if

SECTION = "what-if"
TARGET_SECONDS = 60.0
TARGET_LEADS = 100_000
MQL = '{ field = "score", gte = 60 }'
INSERT_AT_ONCE = 5_000
PROCESSES = os.cpu_count() or 1

INTRO = """\
# Benchmarks

Speed is measured, not assumed: throughput, API calls and memory are measured by the scripts in
`bench/`, never by timed unit tests. Each script writes its own section below, between markers,
and leaves the rest of this file alone.
"""

SECTION_INTRO = """\
## What-if: an edit's effect over the whole store

```sh
.venv/bin/python bench/what_if.py [--seed-leads 2000] [--leads 100000] [--repeat 3] [--quick]
```

A first sync of `leadsync sandbox --leads SEED` fills a store, whose leads (with their links,
records and what leadsync wrote to them) are copied under new ids until it holds `--leads`
leads; the lead definition's MQL threshold is lowered from 60 to 30 and `plan --what-if`'s
function run over every lead, in-process. The target: 100,000 leads in under a minute.
In one process (before commit 9bc9506 forked a copy per core) it took 66 s wall and 64 CPU s
on this machine (2026-12-04 00:40 UTC).
"""


def _progress(message: str) -> None:
    print(f"[what-if] {message}", file=sys.stderr, flush=True)


def _config(folder: Path, server: SandboxServer) -> Config:
    path = folder / "leadsync.toml"
    info = http_session().get(f"{server.url}/_sandbox/", timeout=30).json()
    write_sandbox_config(path, server.url, info["credentials"])
    path.write_text(path.read_text().replace("[hubspot]\n", f"[hubspot]\n{UNPACED}"))
    config = load_config(path)
    connector = HubSpotConnector(config.hubspot_connection())
    try:
        connector.ensure_properties()
    finally:
        connector.close()
    return config


def _edited(config: Config, folder: Path) -> Config:
    assert config.path is not None
    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    assert MQL in shipped
    definition = folder / "lead_definition.toml"
    definition.write_text(shipped.replace(MQL, MQL.replace("60", "30")))
    path = folder / "edited.toml"
    text = config.path.read_text()
    path.write_text(text.replace(str(EXAMPLES / "lead_definition.toml"), str(definition)))
    return load_config(path)


def _copy_until(engine: sa.Engine, wanted: int) -> int:
    """Copy the stored leads under new ids until there are `wanted`; how many there are."""
    with engine.connect() as connection:
        leads = [dict(row) for row in connection.execute(sa.select(t.leads)).mappings()]
        links = [dict(row) for row in connection.execute(sa.select(t.links)).mappings()]
        snapshots = [dict(row) for row in connection.execute(sa.select(t.snapshots)).mappings()]
        expected = [dict(row) for row in connection.execute(sa.select(t.expected)).mappings()]
    total, copy = len(leads), 0
    while total < wanted:
        copy += 1
        take = leads[: wanted - total]
        chosen = {lead["lead_id"] for lead in take}
        records = {(link["crm"], link["record_id"]) for link in links if link["lead_id"] in chosen}

        tables_rows = (
            (t.leads, _renamed(copy, take, "lead_id")),
            (
                t.links,
                _renamed(
                    copy, [x for x in links if x["lead_id"] in chosen], "lead_id", "record_id"
                ),
            ),
            (
                t.snapshots,
                _renamed(
                    copy,
                    [x for x in snapshots if (x["crm"], x["record_id"]) in records],
                    "record_id",
                ),
            ),
            (
                t.expected,
                _renamed(
                    copy,
                    [x for x in expected if (x["crm"], x["record_id"]) in records],
                    "record_id",
                ),
            ),
        )
        with engine.begin() as connection:
            for table, rows in tables_rows:
                for start in range(0, len(rows), INSERT_AT_ONCE):
                    connection.execute(table.insert(), rows[start : start + INSERT_AT_ONCE])
        total += len(take)
        _progress(f"{total:,} leads stored")
    return total


def _renamed(copy: int, rows: Sequence[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return [{**row, **{key: f"{row[key]}~{copy}" for key in keys}} for row in rows]


def measure(seed_leads: int, leads: int, repeat: int, folder: Path) -> dict[str, Any]:
    with SandboxServer(seed_leads) as server:
        config = _config(folder, server)
        _progress(f"first sync of {seed_leads:,} leads per CRM")
        with open_runtime(config) as runtime:
            runtime.engine().run()
            stored = _copy_until(runtime.store.engine, leads)
    edited = _edited(config, folder)
    walls, cpus, moved = [], [], 0
    for attempt in range(repeat):
        with open_runtime(edited, connect=False) as runtime:
            started, cpu = time.perf_counter(), _cpu_seconds()
            # As `leadsync plan --what-if` runs it: a process per core.
            found = what_if(runtime.engine(), runtime.store, runtime.field_map, processes=PROCESSES)
            walls.append(time.perf_counter() - started)
            cpus.append(_cpu_seconds() - cpu)
        moved = sum(found.stage_moves.values())
        _progress(f"run {attempt + 1}: {found.leads:,} leads in {walls[-1]:.1f} s")
    # The parent's; each forked copy holds about as much (its page and the definition).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {
        "stored": stored,
        "leads": found.leads,
        "moved": moved,
        "walls": walls,
        "cpus": cpus,
        "peak": peak,
    }


def _cpu_seconds() -> float:
    """CPU time of this process and of the what-if's forked copies that have ended."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def report(result: dict[str, Any], seed_leads: int, repeat: int) -> str:
    wall = statistics.median(result["walls"])
    rows = [
        [
            f"{result['leads']:,}",
            f"{wall:.1f} ({min(result['walls']):.1f}–{max(result['walls']):.1f})",
            f"{statistics.median(result['cpus']):.1f}",
            f"{result['leads'] / wall:,.0f}",
            f"{result['peak'] / MB:,.0f}",
            f"{result['moved']:,}",
        ]
    ]
    table = markdown_table(
        ["leads", "wall, s", "CPU, s", "leads/s", "peak RSS, MB", "stage moves shown"],
        rows,
    )
    at_target = wall * TARGET_LEADS / result["leads"]
    verdict = "met" if at_target < TARGET_SECONDS else "**not met**"
    return "\n\n".join(
        [
            SECTION_INTRO.strip(),
            f"Measured on {machine()}, in {PROCESSES} process(es) as the command runs it "
            f"(CPU: all of them); seeded from `--leads {seed_leads:,}` per CRM; median "
            f"(min–max) of {repeat} run(s).",
            table,
            f"At {TARGET_LEADS:,} leads that is {at_target:.0f} s against a target of "
            f"{TARGET_SECONDS:.0f} s: {verdict}.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed-leads", type=int, default=2_000, help="per CRM, synced")
    parser.add_argument("--leads", type=int, default=TARGET_LEADS, help="in the store, copied")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 seeded, 5,000 leads, printed")
    parser.add_argument("--output", type=Path, help=f"default {BENCHMARKS_MD} (not with --quick)")
    args = parser.parse_args(argv)
    seed, leads, repeat = (
        (500, 5_000, 1) if args.quick else (args.seed_leads, args.leads, args.repeat)
    )
    folder = Path(tempfile.mkdtemp(prefix="leadsync-what-if-"))
    try:
        result = measure(seed, leads, repeat, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    body = report(result, seed, repeat)
    print(body)
    output = args.output or (None if args.quick else BENCHMARKS_MD)
    if output is not None:
        write_section(SECTION, body, intro=INTRO, path=output)
    wall = statistics.median(result["walls"])
    return 0 if wall * TARGET_LEADS / result["leads"] < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
