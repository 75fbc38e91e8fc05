"""`leadsync quarantine` and `leadsync review`: the records leadsync could not use or write,
shown and retried, and the ambiguous matches, shown side by side and resolved.

A record's values are printed here, to the person who asked, and never logged.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from leadsync.cli.common import add_config_option, load, stop_on_signals
from leadsync.cli.sync import format_summary
from leadsync.errors import EXIT_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from leadsync.mapping.fields import FieldMap
    from leadsync.sync.quarantine import QuarantineItem
    from leadsync.sync.review import ReviewView


CRM_CHOICES = ("hubspot", "salesforce")
COLUMN = 26  # the width of one side in `review`


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    quarantine = commands.add_parser(
        "quarantine",
        help="the records leadsync could not read or write, by cause; show one, retry",
        description="The records in quarantine, counted by CRM and cause, then listed. "
        "`show ID` gives a record's fields, values and the CRM's or leadsync's message; "
        "`retry ID` (or `retry --all`) reads them again now and writes what they need.",
    )
    add_config_option(quarantine)
    _add_filters(quarantine)
    quarantine.add_argument("--json", action="store_true", help="print them as JSON")
    quarantine.set_defaults(handler=run_quarantine)
    actions = quarantine.add_subparsers(dest="quarantine_command", metavar="ACTION")

    show = actions.add_parser(
        "show",
        help="one record: fields, values, messages",
        description="One record in quarantine: its id, each field at fault with its value, "
        "and the CRM's or leadsync's message.",
    )
    show.add_argument("record_id", metavar="RECORD-ID", help="its CRM id (15 or 18 for Salesforce)")
    add_config_option(show, nested=True)
    show.add_argument(
        "--crm", choices=CRM_CHOICES, default=argparse.SUPPRESS, help="when both CRMs have it"
    )
    show.add_argument("--json", action="store_true", help="print it as JSON")
    show.set_defaults(handler=run_show)

    retry = actions.add_parser(
        "retry",
        help="read records again now and write what they need (a run of kind retry)",
        description="Fetch the records from their CRM now, read them through the mapping, "
        "and settle and write them like a sync. Those still unusable stay, with today's reason.",
    )
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("record_id", nargs="?", metavar="RECORD-ID", help="one record")
    which.add_argument("--all", action="store_true", help="every record the filters select")
    add_config_option(retry, nested=True)
    _add_filters(retry, nested=True)
    retry.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    retry.set_defaults(handler=run_retry)

    review = commands.add_parser(
        "review",
        help="the ambiguous matches, side by side with why; resolve one",
        description="The records waiting for a person: each beside the leads it could "
        "belong to, with why it is ambiguous. `resolve ID link [--lead L]` links it to a lead, "
        "`apart` makes it a lead of its own, `ignore` leaves it unlinked; the next sync "
        "applies it. An item whose cause went away (a duplicate deleted) closes itself.",
    )
    add_config_option(review)
    review.add_argument("--json", action="store_true", help="print them as JSON")
    review.set_defaults(handler=run_review)
    review_actions = review.add_subparsers(dest="review_command", metavar="ACTION")
    resolve = review_actions.add_parser(
        "resolve",
        help="link, keep apart or ignore one record",
        description="Decide one record in review: `link` it to a lead (one of its "
        "candidates, --lead when several), keep it `apart` as a lead of its own, or `ignore` "
        "it. The next sync applies the decision.",
    )
    resolve.add_argument("record_id", metavar="RECORD-ID", help="the record in review")
    resolve.add_argument("action", choices=("link", "apart", "ignore"), help="the decision")
    resolve.add_argument(
        "--lead", metavar="LEAD-ID", help="with link: which lead (a candidate's id, or its start)"
    )
    resolve.add_argument(
        "--crm", choices=CRM_CHOICES, default=None, help="when both CRMs have the id"
    )
    add_config_option(resolve, nested=True)
    resolve.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the decision as JSON"
    )
    resolve.set_defaults(handler=run_resolve)


def _add_filters(parser: argparse.ArgumentParser, *, nested: bool = False) -> None:
    default = argparse.SUPPRESS if nested else None
    parser.add_argument("--crm", choices=CRM_CHOICES, default=default, help="only this CRM")
    parser.add_argument("--cause", default=default, help="only this cause (as listed)")


def run_quarantine(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.quarantine import quarantine_causes, quarantine_items

    config = load(args)
    with open_runtime(config, connect=False) as runtime:
        items = quarantine_items(runtime.store, runtime.field_map, crm=args.crm, cause=args.cause)
    if args.json:
        print(json.dumps([item.as_dict(values=False) for item in items], indent=2))
        return EXIT_OK
    if not items:
        print("quarantine is empty" if args.crm is None and args.cause is None else "none")
        return EXIT_OK
    lines = [f"{len(items)} record(s) in quarantine, by cause:"]
    lines.extend(f"  {n:>6}  {crm:<11}{cause}" for crm, cause, n in quarantine_causes(items))
    lines.append("")
    lines.append(f"{'crm':<11}{'record':<20}{'since (UTC)':<18}cause")
    lines.extend(
        f"{item.crm:<11}{item.record_id:<20}{item.entry.at:%Y-%m-%d %H:%M}  {item.cause}"
        for item in items
    )
    lines.append("")
    lines.append("`leadsync quarantine show RECORD-ID` for one; `retry RECORD-ID` to read it again")
    print("\n".join(lines))
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.quarantine import quarantine_item

    config = load(args)
    with open_runtime(config, connect=False) as runtime:
        item = quarantine_item(runtime.store, runtime.field_map, args.record_id, crm=args.crm)
    if args.json:
        print(json.dumps(item.as_dict(), indent=2, default=str))
    else:
        print(format_item(item))
    return EXIT_OK


def format_item(item: QuarantineItem) -> str:
    who = "the CRM refused leadsync's write" if item.kind == "refused" else "leadsync's mapping"
    lines = [
        f"{item.crm} record {item.record_id}: in quarantine since "
        f"{item.entry.at:%Y-%m-%d %H:%M %Z} (run {item.entry.run_id[:8]})",
        f"  cause: {item.cause} ({who})",
    ]
    if not item.problems:
        lines.append("  the mapping reads it now: `leadsync quarantine retry` takes it in")
    for problem in item.problems:
        lines.append(f"  {problem.field} = {problem.value!r}")
        lines.append(f"      {problem.message}")
    return "\n".join(lines)


def run_retry(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.quarantine import quarantine_item, quarantine_items, retry_quarantined

    config = load(args)
    crm = getattr(args, "crm", None)
    cause = getattr(args, "cause", None)
    with open_runtime(config) as runtime:
        store, field_map = runtime.store, runtime.field_map
        if args.all:
            items = quarantine_items(store, field_map, crm=crm, cause=cause)
        else:
            items = [quarantine_item(store, field_map, args.record_id, crm=crm)]
        if not items:
            raise UsageError("no record in quarantine matches (see `leadsync quarantine`)")
        # A signal stops the wait for the lease; once the retry runs, it ends it (a second
        # one at once).
        with runtime.sync_lease("retry", stop=stop_on_signals().is_set, asks_stop_check=False):
            summary = retry_quarantined(runtime.engine(role="retry"), items)
        still = _still_quarantined(items, quarantine_items(store, field_map))
    if args.json:
        body = summary.as_dict()
        body["still_quarantined"] = [item.as_dict(values=False) for item in still]
        print(json.dumps(body, indent=2, default=str))
    else:
        print(format_summary(summary))
        print(f"retried {len(items)} record(s): {len(items) - len(still)} out of quarantine")
        for item in still:
            print(f"  still in quarantine: {item.crm} {item.record_id}: {item.cause}")
    failed = summary.every_write_failed()
    for problem in failed.values():
        print(f"leadsync: {problem}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _still_quarantined(
    tried: Sequence[QuarantineItem], now: Sequence[QuarantineItem]
) -> list[QuarantineItem]:
    keys = {(item.crm, item.record_id) for item in tried}
    return [item for item in now if (item.crm, item.record_id) in keys]


def run_review(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.review import review_items

    config = load(args)
    with open_runtime(config, connect=False) as runtime:
        views = review_items(runtime.store)
        field_map = runtime.field_map
    if args.json:
        print(json.dumps([view.as_dict(field_map) for view in views], indent=2, default=str))
        return EXIT_OK
    if not views:
        print("nothing waits in review")
        return EXIT_OK
    print("\n\n".join(format_review(view, field_map) for view in views))
    print(
        "\nresolve one with `leadsync review resolve RECORD-ID link [--lead LEAD-ID]|apart|ignore`"
    )
    return EXIT_OK


def format_review(view: ReviewView, field_map: FieldMap) -> str:
    lines = [
        f"{view.crm} record {view.record_id}, in review since "
        f"{view.item.at:%Y-%m-%d %H:%M %Z}: {view.item.reason}"
    ]
    heads = ["this record", *(f"lead {c.lead.lead_id[:8]}" for c in view.candidates)]
    lines.append("  " + f"{'':<20}" + "".join(f"{head:<{COLUMN}}" for head in heads))
    for name, values in view.rows(field_map):
        lines.append("  " + f"{name:<20}" + "".join(_cell(value) for value in values))
    held = [", ".join(f"{r.crm} {r.record_id}" for r in c.records) for c in view.candidates]
    lines.append(
        "  "
        + f"{'records':<20}"
        + _cell(f"{view.crm} {view.record_id}")
        + "".join(_cell(text) for text in held)
    )
    lines.append("  candidates: " + ", ".join(c.lead.lead_id for c in view.candidates))
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    if len(text) > COLUMN - 2:
        text = text[: COLUMN - 3] + "…"
    return f"{text:<{COLUMN}}"


def run_resolve(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.review import resolve_review, review_item

    config = load(args)
    if args.lead and args.action != "link":
        raise UsageError("--lead goes with link only")
    with open_runtime(config, connect=False) as runtime:
        view = review_item(runtime.store, args.record_id, crm=args.crm)
        decided = resolve_review(runtime.store, view, args.action, lead_id=args.lead)
    if args.json:
        body = {"crm": view.crm, "record_id": view.record_id, "decision": decided}
        print(json.dumps(body, indent=2))
    else:
        print(f"{view.crm} record {view.record_id}: {decided}; the next sync applies it")
    return EXIT_OK
