"""`leadsync backfill`: full pulls, queued, resumed, stopped, and the nightly sweep."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from leadsync.cli.common import add_config_option, day, load, stop_on_signals
from leadsync.errors import EXIT_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from leadsync.sync.backfill import Backfill
    from leadsync.sync.run_summary import RunSummary


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backfill = commands.add_parser(
        "backfill",
        help="a full pull of one or both CRMs, reconciled and written like a sync; resumable",
        description="Pull every record (list and Bulk APIs), keep those modified within "
        "[--since, --until), and reconcile and write them like a sync, chunk by chunk. "
        "Checkpointed: --resume ID, or the same command again, goes on after a kill.",
    )
    add_config_option(backfill)
    backfill.add_argument(
        "--crm", choices=("hubspot", "salesforce", "all"), default="all", help="default all"
    )
    backfill.add_argument("--since", type=day, metavar="DATE", help="modified on or after")
    backfill.add_argument("--until", type=day, metavar="DATE", help="modified before")
    backfill.add_argument(
        "--dry-run", action="store_true", help="pull and plan, write nothing (like `plan`)"
    )
    what = backfill.add_mutually_exclusive_group()
    what.add_argument(
        "--queue", action="store_true", help="hand it to the running service (`leadsync run`)"
    )
    what.add_argument("--resume", metavar="ID", help="go on with backfill ID")
    what.add_argument(
        "--sweep",
        action="store_true",
        help="the nightly reconciliation sweep, now: every CRM, every record, drift repaired",
    )
    what.add_argument(
        "--status", action="store_true", help="list queued, running and finished backfills"
    )
    what.add_argument(
        "--stop",
        metavar="ID",
        help="stop backfill ID (a running one after the batch in hand); --resume ID goes on",
    )
    backfill.add_argument(
        "--json", action="store_true", help="print the backfill(s) (--status: every one) as JSON"
    )
    backfill.set_defaults(handler=run_backfill)


def run_backfill(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.backfill import Status, spec_for

    config = load(args)
    with open_runtime(config, connect=not (args.status or args.queue or args.stop)) as runtime:
        queue = runtime.backfill_queue()
        if args.status:
            _print_backfills(queue.list(), args)
            return EXIT_OK
        if args.stop is not None:
            stopped = runtime.stop_backfill(args.stop)
            if stopped is None:
                raise UsageError(f"no backfill {args.stop!r} (see --status)")
            _print_backfills([stopped], args)
            return EXIT_OK
        if args.resume is not None:
            chosen = queue.get(args.resume)
            if chosen is None:
                raise UsageError(f"no backfill {args.resume!r} (see --status)")
        else:
            spec = spec_for(
                args.crm,
                runtime.enabled_crms(),
                since=args.since,
                until=args.until,
                dry_run=args.dry_run,
                sweep=args.sweep,
                option=lambda name: f"--{name}",
            )
            if args.queue:
                queued = queue.create(spec)
                if args.json:
                    _print_backfills([queued], args)
                else:
                    print(f"queued backfill {queued.backfill_id}: `leadsync run` takes it up")
                return EXIT_OK
            chosen = queue.unfinished_like(spec) or queue.create(spec)
            if chosen.progress:
                print(f"going on with backfill {chosen.backfill_id}", file=sys.stderr)
        stopping = stop_on_signals()
        summaries: list[RunSummary] = []
        done = runtime.run_backfill(
            chosen.backfill_id,
            should_stop=stopping.is_set,
            progress_stream=sys.stderr,
            on_summary=summaries.append,
        )
    if done.spec.dry_run and not args.json:
        # `plan` over the full pull: what it would write, per field, and the calls.
        from leadsync.cli.sync import format_summary

        for summary in summaries:
            print(format_summary(summary))
    _print_backfills([done], args)
    failed = [problem for s in summaries for problem in s.every_write_failed().values()]
    for problem in failed:
        print(f"leadsync: {problem}", file=sys.stderr)
    if done.status == Status.SUCCEEDED:
        return EXIT_FAILED if failed else EXIT_OK
    print(
        f"leadsync: backfill {done.backfill_id} {done.status}: {done.message}; "
        f"go on with `leadsync backfill --resume {done.backfill_id}`",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _print_backfills(found: Sequence[Backfill], args: argparse.Namespace) -> None:
    from leadsync.sync.backfill import format_backfills

    if args.json:
        print(json.dumps([b.as_dict() for b in found], indent=2))
    else:
        print(format_backfills(found))
