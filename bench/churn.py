"""The day after: how many leads does the nightly sweep rewrite when nothing changed?

    .venv/bin/python bench/churn.py [--leads 10000] [--days 3] [--quick] [--output FILE]

A first sync of `leadsync sandbox --leads N` (a process of its own, every limit raised), with
leadsync's clock held at the moment it starts; then, with no change in either CRM, the nightly
sweep (a backfill of every record, settling every lead again) once a day for `--days` days,
leadsync's clock held one more day later each time. What it writes is churn: nothing a person
would care about changed, only time passed, and time alone moves only the engagement's decay.
Counted per day: the leads written to (in either CRM) against the leads stored, the records
written per CRM, and which fields. The same again with the shipped lead definition's decay made
exact (`step = 1`), which is what the steps save. The target: fewer than 1 % of the leads.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from _common import (
    BENCHMARKS_MD,
    UNPACED,
    SandboxServer,
    http_session,
    machine,
    markdown_table,
    write_section,
)

from leadsync.config import Config, load_config
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.runtime import Runtime, open_runtime
from leadsync.sandbox_config import EXAMPLES, write_sandbox_config
from leadsync.sync import tables as t
from leadsync.sync import write_log
from leadsync.sync.backfill import SWEEP, BackfillSpec
from leadsync.sync.run_summary import RunSummary

SECTION = "churn"
TARGET = 0.01

INTRO = """\
# Benchmarks

Speed is measured, not assumed: throughput, API calls and memory are measured by the scripts in
`bench/`, never by timed unit tests. Each script writes its own section below, between markers,
and leaves the rest of this file alone.
"""

SECTION_INTRO = """\
## Churn: what the day after writes when nothing changed

```sh
.venv/bin/python bench/churn.py [--leads 10000] [--days 3] [--quick] [--output FILE]
```

A first sync of `leadsync sandbox --leads N` with leadsync's clock held; then, with no change in
either CRM, the nightly sweep (every record pulled, every lead settled again) once a day,
leadsync's clock one day later each time. Every write is churn but one: nothing a person would
care about changed, only time passed. Time alone moves only the engagement's decay: the shipped
definition takes it off in whole steps of 10 points (and at once where a grade or the MQL
threshold would otherwise be crossed late), and its reasons name dates, never "N days ago".
"Exact decay" is the same definition with `step = 1`: what a score that follows decay to the
point costs. The target is fewer than 1 % of the leads written on a day.

The one exception is counted apart: the first sync hands the MQLs off to sales, and in the
sandbox nobody accepts them, so the day after, each is in breach of the acceptance clock and
flagged in both CRMs (the `sla_breaches` write-back), once. That is news a person cares about,
not churn: "SLA breaches flagged" counts those leads, and a lead whose only write is its
breach flag is not counted as written.
"""


def _progress(message: str) -> None:
    print(f"[churn] {message}", file=sys.stderr, flush=True)


@dataclass
class Day:
    day: int
    leads: int
    leads_written: int
    breaches_flagged: int
    records: dict[str, int]
    fields: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def share(self) -> float:
        return self.leads_written / self.leads if self.leads else 0.0


@dataclass
class Measured:
    label: str
    first_sync_written: dict[str, int]
    days: list[Day] = field(default_factory=list)


def _config(folder: Path, server: SandboxServer, *, step: int | None) -> Config:
    path = folder / "leadsync.toml"
    info = http_session().get(f"{server.url}/_sandbox/", timeout=30).json()
    write_sandbox_config(path, server.url, info["credentials"])
    text = path.read_text().replace("[hubspot]\n", f"[hubspot]\n{UNPACED}")
    if step is not None:
        shipped = (EXAMPLES / "lead_definition.toml").read_text()
        definition = folder / "lead_definition.toml"
        definition.write_text(re.sub(r"(?m)^step = \d+$", f"step = {step}", shipped))
        text = text.replace(str(EXAMPLES / "lead_definition.toml"), str(definition))
    path.write_text(text)
    config = load_config(path)
    connector = HubSpotConnector(config.hubspot_connection())
    try:
        connector.ensure_properties()
    finally:
        connector.close()
    return config


def _breach_fields(runtime: Runtime) -> set[tuple[str, str]]:
    """(crm, field) of each `sla_breaches` write-back target: the Lead's and the Contact's."""
    found = set()
    for crm, targets in runtime.field_map.writeback.items():
        for each in (targets, targets.contact_targets() if targets.contact else None):
            name = each.targets().get("sla_breaches") if each is not None else None
            if name is not None:
                found.add((crm, name))
    return found


def _writes(runtime: Runtime, summary: RunSummary) -> tuple[int, int, Counter[tuple[str, str]]]:
    """The leads with a write of the run landed in either CRM, not counting those whose only
    writes are SLA breach flags; the leads with a breach flag written; the fields written."""
    query = (
        sa.select(t.links.c.lead_id, t.writes.c.crm, t.writes.c.fields)
        .join(
            t.writes,
            sa.and_(t.writes.c.crm == t.links.c.crm, t.writes.c.record_id == t.links.c.record_id),
        )
        .where(t.writes.c.run_id == summary.run_id, t.writes.c.status == "written")
    )
    breach = _breach_fields(runtime)
    written: set[str] = set()
    flagged: set[str] = set()
    fields: Counter[tuple[str, str]] = Counter()
    with runtime.store.engine.connect() as connection:
        # One log row per record and batch: its fields are the keys of `fields`.
        for lead_id, crm, logged in connection.execute(query):
            for name, _, _ in write_log.logged_fields(logged, runtime.store.codebook):
                fields[(crm, name)] += 1
                (flagged if (crm, name) in breach else written).add(lead_id)
    return len(written), len(flagged), fields


def _lead_count(runtime: Runtime) -> int:
    with runtime.store.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(t.leads)).scalar())


def measure(
    label: str, server: SandboxServer, folder: Path, days: int, step: int | None
) -> Measured:
    config = _config(folder, server, step=step)
    start = datetime.now(UTC)
    with open_runtime(config) as runtime:
        _progress(f"{label}: first sync")
        first = runtime.engine(clock=lambda: start).run()
        measured = Measured(label, {crm: c.written for crm, c in first.crms.items()})
        queue = runtime.backfill_queue()
        for day in range(1, days + 1):
            moment = start + timedelta(days=day)
            _progress(f"{label}: sweep on day {day}")
            backfill = queue.create(BackfillSpec(tuple(runtime.enabled_crms()), kind=SWEEP))
            summaries: list[RunSummary] = []
            runtime.run_backfill(
                backfill.backfill_id,
                should_stop=lambda: False,
                clock=lambda moment=moment: moment,
                on_summary=summaries.append,
            )
            (summary,) = summaries
            written, flagged, fields = _writes(runtime, summary)
            measured.days.append(
                Day(
                    day,
                    _lead_count(runtime),
                    written,
                    flagged,
                    {crm: c.written for crm, c in summary.crms.items()},
                    fields,
                )
            )
            _progress(
                f"{label}: day {day}: {written} of {measured.days[-1].leads} leads written, "
                f"{flagged} flagged as SLA breaches"
            )
    return measured


def table(results: Sequence[Measured]) -> str:
    rows = []
    for result in results:
        for day in result.days:
            fields = ", ".join(
                f"{crm} {name} {count}" for (crm, name), count in day.fields.most_common(4)
            )
            rows.append(
                [
                    result.label,
                    str(day.day),
                    f"{day.leads:,}",
                    f"{day.leads_written:,}",
                    f"{day.share:.2%}",
                    f"{day.breaches_flagged:,}",
                    ", ".join(f"{crm} {count:,}" for crm, count in sorted(day.records.items())),
                    fields or "none",
                ]
            )
    return markdown_table(
        [
            "definition",
            "day",
            "leads",
            "leads written",
            "share",
            "SLA breaches flagged",
            "records written",
            "most written fields",
        ],
        rows,
    )


def verdict(results: Sequence[Measured]) -> str:
    shipped = results[0]
    shares = [day.share for day in shipped.days]
    worst = max(shares)
    met = "meets" if worst < TARGET else "misses"
    lines = [
        f"With the shipped definition the sweep writes {statistics.median(shares):.2%} of the "
        f"leads a day (median of {len(shares)} days; at most {worst:.2%}): it {met} the target "
        f"of fewer than {TARGET:.0%}."
    ]
    if len(results) > 1:
        exact = statistics.median(day.share for day in results[1].days)
        lines.append(f"With exact decay it would write {exact:.2%} a day.")
    return " ".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=10_000, help="per CRM")
    parser.add_argument("--days", type=int, default=3, help="sweeps, a day apart")
    parser.add_argument("--quick", action="store_true", help="2,000 leads, one day, printed")
    parser.add_argument("--output", type=Path, help=f"default {BENCHMARKS_MD} (not with --quick)")
    args = parser.parse_args(argv)
    leads, days = (2_000, 1) if args.quick else (args.leads, args.days)
    folder = Path(tempfile.mkdtemp(prefix="leadsync-churn-"))
    results: list[Measured] = []
    try:
        for label, step in (
            ("shipped (decay in steps of 10)", None),
            ("exact decay (step = 1)", 1),
        ):
            with SandboxServer(leads) as server:
                run_folder = folder / str(len(results))
                run_folder.mkdir()
                results.append(measure(label, server, run_folder, days, step))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    body = "\n\n".join(
        [
            SECTION_INTRO.strip(),
            f"Measured on {machine()}; `--leads {leads:,}` per CRM (half the people in both), "
            f"the sweep once a day for {days} day(s).",
            table(results),
            verdict(results),
        ]
    )
    print(body)
    output = args.output or (None if args.quick else BENCHMARKS_MD)
    if output is not None:
        write_section(SECTION, body, intro=INTRO, path=output)
    shipped = results[0]
    return 0 if max(day.share for day in shipped.days) < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
