"""`leadsync sync --once` and `leadsync plan`: one cycle, written or not."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from leadsync.cli.common import add_config_option, load, stop_on_signals
from leadsync.errors import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from leadsync.sync.run_summary import RunSummary
    from leadsync.sync.whatif import WhatIf


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sync = commands.add_parser(
        "sync",
        help="run one full sync cycle and print what it did",
        description="One cycle, as the service runs it: pull what changed in each CRM, match, "
        "reconcile, score and stage the leads, write back, hand off, check the SLA clocks; "
        "then print what it did. Exit 1 if every write to a CRM failed or was deferred "
        "(a write held back, the record having changed since the pull, is neither).",
    )
    add_config_option(sync)
    sync.add_argument(
        "--once", action="store_true", required=True, help="one cycle, then exit (required)"
    )
    sync.add_argument("--json", action="store_true", help="print the summary as JSON")
    sync.set_defaults(handler=run_sync)

    plan = commands.add_parser(
        "plan",
        help="the same cycle without writing: the changes each CRM would get, and the API calls",
        description="Pull what changed and show what a sync would write to each CRM, field by "
        "field, with the API calls it would take; nothing is written to either CRM (what it "
        "pulls is stored, and what it cannot use quarantined, for the sync after it, which "
        "counts those records as its own). With --what-if, no CRM "
        "is called: every stored lead is re-evaluated under the files on disk.",
    )
    add_config_option(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument(
        "--what-if",
        action="store_true",
        help="no pull, no CRM call: every stored lead re-evaluated under the files on disk, "
        "compared with the lead as stored (stages, grades, score bands, writes, examples)",
    )
    plan.set_defaults(handler=run_plan)


def run_sync(args: argparse.Namespace) -> int:
    return run_cycle(args, write=True)


def run_plan(args: argparse.Namespace) -> int:
    if args.what_if:
        return run_what_if(args)
    return run_cycle(args, write=False)


def run_what_if(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.whatif import what_if

    config = load(args)
    with open_runtime(config, connect=False) as runtime:
        # The command line is single-threaded: the what-if may fork, a copy per core.
        found = what_if(
            runtime.engine(), runtime.store, runtime.field_map, processes=os.cpu_count() or 1
        )
    if args.json:
        print(json.dumps(found.as_dict(), indent=2, default=str))
    else:
        print(format_what_if(found))
    return EXIT_OK


# Score reasons shown per example; `explain` shows them all.
EXAMPLE_REASONS = 4


def format_what_if(found: WhatIf) -> str:
    lines = [f"what-if over {found.leads:,} stored leads (the files on disk; no CRM called)"]
    if not found.changed:
        lines.append("  no change: every lead stays as it is, nothing to write")
        return "\n".join(lines)
    lines.append(f"  {'stage':<16}{'before':>8}{'after':>8}")
    for stage in sorted(set(found.stages_before) | set(found.stages_after)):
        before, after = found.stages_before[stage], found.stages_after[stage]
        mark = "" if before == after else f"  ({after - before:+d})"
        lines.append(f"  {stage:<16}{before:>8}{after:>8}{mark}")
    for title, moves in (
        ("stage moves", found.stage_moves),
        ("grade moves", found.grade_moves),
        ("score-band moves", found.band_moves),
    ):
        if moves:
            lines.append(f"  {title}:")
            lines.extend(
                f"    {before} -> {after}: {n}" for (before, after), n in moves.most_common()
            )
    if found.plan is not None and found.plan.change_count:
        lines.append("  writes by field, and the write calls they take:")
        lines.extend(f"  {line}" for line in found.plan.lines())
    if found.examples:
        lines.append("  examples:")
        for change, examples in sorted(found.examples.items()):
            lines.append(f"    {change}:")
            for e in examples:
                lines.append(f"      {e.email or e.lead_id} ({e.before} -> {e.after})")
                lines.extend(f"        {reason}" for reason in e.reasons[:EXAMPLE_REASONS])
                if len(e.reasons) > EXAMPLE_REASONS:
                    # Else the reasons shown would not add up to the score.
                    lines.append(f"        … and {len(e.reasons) - EXAMPLE_REASONS} more")
    for (crm, name), n in sorted(found.needs_backfill.items()):
        lines.append(
            f"  {crm} {name} is pulled now but no stored record holds it: {n} lead(s) need "
            f"`leadsync backfill --crm {crm}` to fill it"
        )
    return "\n".join(lines)


def run_cycle(args: argparse.Namespace, *, write: bool) -> int:
    from leadsync.runtime import open_runtime

    config = load(args)
    # SIGTERM (a cron's timeout, a supervisor) or Ctrl-C: stop at the next batch boundary,
    # the run recorded "interrupted" and the lease given back, not held till it runs out.
    stopping = stop_on_signals()
    role = "sync" if write else "plan"
    with open_runtime(config) as runtime, runtime.sync_lease(role, stop=stopping.is_set) as stop:
        summary = runtime.engine(role=role, full_sla_check=True).run(write=write, should_stop=stop)
    if summary.interrupted:
        print(
            f"leadsync: run {summary.run_id} interrupted: what it did is committed; the next "
            "run goes on from there",
            file=sys.stderr,
        )
    failed = summary.every_write_failed()
    if args.json:
        body = summary.as_dict()
        if summary.plan is not None and not write:
            body["changes"] = [
                {
                    "crm": c.crm,
                    "record_id": c.record_id,
                    "field": c.field,
                    "old": c.old,
                    "new": c.new,
                }
                for c in summary.plan.changes
            ]
        print(json.dumps(body, indent=2, default=str))
    else:
        print(format_summary(summary))
    for problem in failed.values():
        print(f"leadsync: {problem}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def format_summary(summary: RunSummary) -> str:
    # The kind the run is recorded under, as `leadsync runs` lists it (a quarantine retry is
    # a "retry", not a "sync").
    mode = summary.kind or ("sync" if summary.wrote else "plan")
    if not summary.wrote:
        mode += " (nothing written)"
    lines = [f"run {summary.run_id}: {mode}"]
    # new + matched + review: the records pulled and not quarantined; earlier: records an
    # earlier run left pending, settled by this one (README, "the summary of a run").
    header = f"  {'':<11}{'pulled':>8}{'quarant.':>10}{'new':>7}{'matched':>9}{'review':>8}"
    header += f"{'earlier':>9}"
    header += f"{'to write':>10}{'written':>9}{'failed':>8}{'deferred':>10}{'held back':>11}"
    lines.append(header)
    for crm, c in sorted(summary.crms.items()):
        lines.append(
            f"  {crm:<11}{c.pulled:>8}{c.quarantined:>10}{c.new_leads:>7}{c.matched:>9}"
            f"{c.to_review:>8}{c.earlier:>9}{c.records_to_update:>10}{c.written:>9}{c.failed:>8}{c.deferred:>10}"
            f"{c.held_back:>11}"
        )
    causes = [
        (crm, category, cause)
        for crm, c in sorted(summary.crms.items())
        for category, cause in c.causes()
    ]
    if causes:
        lines.append("  not written, by cause (count, one of them):")
        lines.extend(
            f"    {crm} {category}: {cause.count}, e.g. {cause.example}"
            for crm, category, cause in causes
        )
    lines.append(
        f"  leads changed: {summary.leads_changed}, stage transitions: {summary.transitions}"
    )
    if summary.clocks_started or summary.clocks_stopped or summary.sla is not None:
        breaches = 0 if summary.sla is None else summary.sla.breached
        lines.append(
            f"  SLA clocks started: {summary.clocks_started}, stopped: "
            f"{summary.clocks_stopped}, newly breached: {breaches}"
        )
    if summary.handoff is not None:
        lines.extend(f"  {line}" for line in summary.handoff.lines())
    if summary.handoff_plan is not None:
        lines.extend(f"  {line}" for line in summary.handoff_plan.lines())
    if summary.plan is not None and summary.plan.change_count:
        lines.append("  changes by field, and the write calls they take:")
        lines.extend(f"  {line}" for line in summary.plan.lines())
    return "\n".join(lines)
