"""`leadsync runs`, `runs show ID` and `revert`: the runs leadsync made, and undoing one."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from leadsync.cli.common import add_config_option, confirm, count, load, stop_on_signals
from leadsync.errors import EXIT_FAILED, EXIT_OK, UsageError
from leadsync.sync.run_kinds import RUN_KINDS

if TYPE_CHECKING:
    from leadsync.sync.audit_log import LoggedWrite
    from leadsync.sync.revert import RevertReport
    from leadsync.sync.runs import RunDetail, RunView


WRITE_COLUMNS = ("at", "crm", "record_id", "field", "old", "new", "status", "category", "message")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runs = commands.add_parser(
        "runs",
        help="the runs leadsync made: kind, outcome, counts, short ids; `runs show ID`",
        description="The latest runs, newest first. Any command that takes a run id takes "
        "its short id (the first 8 characters) or any unambiguous start of it.",
    )
    add_config_option(runs)
    runs.add_argument("--kind", choices=sorted(RUN_KINDS), help="only runs of this kind")
    runs.add_argument("--limit", type=count, default=20, help="how many (default %(default)s)")
    runs.add_argument("--json", action="store_true", help="print the runs as JSON")
    runs.set_defaults(handler=run_runs)
    actions = runs.add_subparsers(dest="runs_command", metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="one run: its counts and every write it made",
        description="One run and every write it made, in the order made.",
    )
    show.add_argument("run_id", metavar="RUN-ID", help="a run's id or short id")
    add_config_option(show, nested=True)
    show.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="default table"
    )
    show.add_argument("--json", action="store_true", help="the same as --format json")
    show.set_defaults(handler=run_show)

    revert = commands.add_parser(
        "revert",
        help="put back the values a run overwrote, where the CRMs still hold what it wrote",
        description="Read what each CRM holds now, put back what the run overwrote where it "
        "still holds what the run wrote, and keep what people changed since. On a terminal, "
        "shows what it would do and asks first.",
    )
    revert.add_argument("run_id", metavar="RUN-ID", help="the run to revert (see `leadsync runs`)")
    add_config_option(revert)
    revert.add_argument(
        "--dry-run", action="store_true", help="say what it would put back, write nothing"
    )
    revert.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    revert.add_argument(
        "--json", action="store_true", help="print what it did (or would do) as JSON"
    )
    revert.set_defaults(handler=run_revert)


def run_runs(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.runs import list_runs

    config = load(args)
    with open_runtime(config, connect=False) as runtime:
        found = list_runs(runtime.store, limit=args.limit, kind=args.kind)
    if args.json:
        print(json.dumps([view.as_dict() for view in found], indent=2))
    else:
        print(format_runs(found))
    return EXIT_OK


def format_runs(views: Sequence[RunView]) -> str:
    if not views:
        return "no runs yet"
    lines = [
        f"{'run':<10}{'kind':<16}{'outcome':<12}{'started (UTC)':<22}{'seconds':>9}"
        f"{'pulled':>8}{'written':>9}{'failed':>8}{'quarant.':>10}{'review':>8}"
    ]
    for view in views:
        run = view.run
        seconds = "" if view.seconds is None else f"{view.seconds:.1f}"
        kind = run.kind + (" (dry)" if view.dry_run else "")
        lines.append(
            f"{view.short_id:<10}{kind:<16}{run.status:<12}"
            f"{run.started_at.strftime('%Y-%m-%d %H:%M:%S'):<22}{seconds:>9}"
            f"{view.pulled:>8}{view.written:>9}{view.failed:>8}{view.quarantined:>10}"
            f"{view.to_review:>8}"
        )
    return "\n".join(lines)


def run_show(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.runs import run_detail

    config = load(args)
    with open_runtime(config, connect=False) as runtime:
        detail = run_detail(runtime.store, args.run_id)
    shape = "json" if args.json else args.format
    if shape == "json":
        body = {**detail.view.as_dict(), "writes": [w.as_dict() for w in detail.writes]}
        print(json.dumps(body, indent=2, default=str))
    elif shape == "csv":
        sys.stdout.write(writes_csv(detail.writes))
    else:
        print(format_detail(detail))
    return EXIT_OK


def writes_csv(writes: Sequence[LoggedWrite]) -> str:
    out = io.StringIO()
    table = csv.DictWriter(out, fieldnames=WRITE_COLUMNS, lineterminator="\n")
    table.writeheader()
    for write in writes:
        row = write.as_dict()
        table.writerow({key: "" if row[key] is None else row[key] for key in WRITE_COLUMNS})
    return out.getvalue()


def format_detail(detail: RunDetail) -> str:
    view = detail.view
    run = view.run
    finished = (
        "" if run.finished_at is None else f", finished {run.finished_at:%Y-%m-%d %H:%M:%S %Z}"
    )
    lines = [
        f"run {run.run_id} ({view.short_id}): {run.kind}"
        f"{' (dry run)' if view.dry_run else ''}, {run.status}",
        f"  started {run.started_at:%Y-%m-%d %H:%M:%S %Z}{finished}",
        f"  pulled {view.pulled}, written {view.written}, failed {view.failed}, "
        f"quarantined {view.quarantined}, to review {view.to_review}",
    ]
    if view.dry_run:
        lines.append("  a dry run: nothing written")
        return "\n".join(lines)
    if not detail.writes:
        lines.append("  no writes")
        return "\n".join(lines)
    lines.append(f"  {len(detail.writes)} write(s):")
    for write in detail.writes:
        outcome = str(write.status) + (f" ({write.category})" if write.category else "")
        lines.append(
            f"    {write.crm} {write.record_id} {write.field}: {write.old!r} -> {write.new!r}"
            f"  {outcome}"
        )
    return "\n".join(lines)


def run_revert(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.revert import revert_run

    asks = sys.stdin.isatty() and not args.yes and not args.dry_run
    if args.json and asks:
        # The question would land in the JSON: a script says --yes, a person --dry-run first.
        raise UsageError("revert --json on a terminal needs --yes or --dry-run")
    config = load(args)
    with open_runtime(config) as runtime:
        if args.dry_run or asks:
            preview = revert_run(runtime.store, runtime.connectors, args.run_id, dry_run=True)
            if args.dry_run:
                _print_revert(preview, args)
                return EXIT_OK
            print(preview.text(args.run_id, asking=True))
            if not preview.reverted:
                return EXIT_OK
            if not confirm(f"put back {len(preview.reverted)} field(s) in the CRMs?"):
                print("leadsync: revert not confirmed: nothing written", file=sys.stderr)
                return EXIT_FAILED
        # Signals taken after the question (Ctrl-C there still ends the command): one stops
        # the wait for the lease; once the revert runs, it ends it (a second one at once).
        with runtime.sync_lease("revert", stop=stop_on_signals().is_set, asks_stop_check=False):
            report = revert_run(
                runtime.store, runtime.connectors, args.run_id, holder=runtime.holder_as("revert")
            )
    _print_revert(report, args)
    return EXIT_OK if not report.failed else EXIT_FAILED


def _print_revert(report: RevertReport, args: argparse.Namespace) -> None:
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.text(args.run_id))
