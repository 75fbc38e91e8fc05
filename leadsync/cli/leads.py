"""`leadsync explain`: one lead, everything leadsync knows of it."""

from __future__ import annotations

import argparse
import json

from leadsync.cli.common import add_config_option, load
from leadsync.errors import EXIT_OK, UsageError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = commands.add_parser(
        "explain",
        help="one lead: both CRM records, merged values and their rules, score, stages, writes",
        description="Everything leadsync knows of the leads an email or CRM id names; a "
        "record in quarantine or waiting in review is named as such.",
    )
    explain.add_argument("key", metavar="EMAIL|CRM-ID", help="an email or a CRM record id")
    add_config_option(explain)
    explain.add_argument(
        "--json",
        action="store_true",
        help="print the leads, and the records in quarantine or review, as JSON",
    )
    explain.set_defaults(handler=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.explain import format_explanation
    from leadsync.sync.quarantine import quarantined_for
    from leadsync.sync.review import in_review_for

    config = load(args)
    with open_runtime(config, connect=False) as runtime:
        found = runtime.explain(args.key)
        held = quarantined_for(runtime.store, runtime.field_map, args.key)
        waiting = in_review_for(runtime.store, runtime.field_map, args.key)
    if not (found or held or waiting):
        # What was typed names nothing, like an unknown run or record id: exit 2.
        raise UsageError(f"no lead with the email or CRM id {args.key!r}")
    if args.json:
        body = {
            "leads": [explanation.as_dict() for explanation in found],
            "quarantined": [item.as_dict() for item in held],
            "in_review": [view.as_dict(runtime.field_map) for view in waiting],
        }
        print(json.dumps(body, indent=2, default=str))
        return EXIT_OK
    notes = [
        f"{item.crm} record {item.record_id} is in quarantine since "
        f"{item.entry.at:%Y-%m-%d %H:%M %Z}: {item.cause} "
        f"(`leadsync quarantine show {item.record_id}`)"
        for item in held
    ]
    notes += [
        f"{view.crm} record {view.record_id} waits in review since "
        f"{view.item.at:%Y-%m-%d %H:%M %Z}: {view.item.reason}; candidates "
        f"{', '.join(c.lead.lead_id for c in view.candidates)} "
        f"(`leadsync review`, then `leadsync review resolve {view.record_id} ...`)"
        for view in waiting
    ]
    print("\n\n".join([*notes, *(format_explanation(explanation) for explanation in found)]))
    return EXIT_OK
