"""`leadsync report` (the funnel, SLA, calibration, revenue and sync health) and
`leadsync calibrate`, from the store."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from leadsync.cli.common import add_config_option, day, load
from leadsync.errors import EXIT_OK, UsageError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report",
        help="the funnel, SLA compliance, score calibration, revenue and sync health",
        description="Marketing's and sales' shared numbers, from the store (no CRM is called).",
    )
    add_config_option(report)
    report.add_argument("--since", type=day, metavar="DATE", help="from DATE (UTC)")
    report.add_argument("--until", type=day, metavar="DATE", help="to DATE, not included")
    report.add_argument(
        "--period", choices=("week", "month"), default="month", help="default month"
    )
    report.add_argument(
        "--format", choices=("table", "json", "html"), default="table", help="default table"
    )
    report.add_argument("--json", action="store_true", help="the same as --format json")
    report.add_argument(
        "--out", type=Path, metavar="FILE", help="write it there (default: standard output)"
    )
    report.add_argument(
        "--spend",
        type=Path,
        metavar="CSV",
        help="marketing spend per period (columns period,spend), for CAC",
    )
    report.set_defaults(handler=run_report)

    calibrate = commands.add_parser(
        "calibrate",
        help="propose an MQL threshold and fit/engagement caps from won and lost deals",
        description="Learn from the outcomes in the store (won and lost opportunities; SQL "
        "reached when too few closed) a new MQL threshold and fit/engagement caps, shown with "
        "the evidence and as a diff of the lead definition. Writes nothing.",
    )
    add_config_option(calibrate)
    calibrate.add_argument("--json", action="store_true", help="print the proposal as JSON")
    calibrate.set_defaults(handler=run_calibrate)


def run_report(args: argparse.Namespace) -> int:
    from leadsync.reports.build import report_for
    from leadsync.reports.html import render_html
    from leadsync.reports.revenue import read_spend
    from leadsync.reports.text import format_table
    from leadsync.runtime import open_runtime

    if args.since and args.until and args.until <= args.since:
        raise UsageError("--until must be after --since")
    now = datetime.now(UTC)
    if args.since and not args.until and args.since >= now:
        raise UsageError("--since must be before --until (without it, before now)")
    config = load(args)
    spend = read_spend(args.spend, period=args.period) if args.spend is not None else None
    with open_runtime(config, connect=False) as runtime:
        report = report_for(
            runtime, now=now, since=args.since, until=args.until, period=args.period, spend=spend
        )
    renderers = {
        "table": format_table,
        "json": lambda body: json.dumps(body, indent=2) + "\n",
        "html": render_html,
    }
    shape = "json" if args.json else args.format
    text = renderers[shape](report)
    if args.out is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    except OSError as problem:
        raise UsageError(f"cannot write {args.out}: {problem.strerror}") from None
    print(f"wrote the {shape} report to {args.out}")
    return EXIT_OK


def run_calibrate(args: argparse.Namespace) -> int:
    from leadsync.calibrate import calibrate, format_calibration
    from leadsync.runtime import open_runtime

    config = load(args)
    with open_runtime(config, connect=False) as runtime:
        result = calibrate(runtime.store, runtime.definition, config.definition_path)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        sys.stdout.write(format_calibration(result))
    return EXIT_OK
