"""`leadsync check` and `leadsync setup`: the files, and the CRMs' side of them."""

from __future__ import annotations

import argparse
import json
import sys

from leadsync.cli.common import add_config_option, config_path, load
from leadsync.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "check",
        help="validate the config, the field mapping and the lead definition",
        description="Validate config, mapping and lead definition; list every problem at once. "
        "Exit 0 if none, 2 if any.",
    )
    add_config_option(check)
    check.add_argument(
        "--online",
        action="store_true",
        help="also compare the mapping with each CRM's live describe",
    )
    check.add_argument(
        "--json", action="store_true", help="print what was checked and every problem as JSON"
    )
    check.set_defaults(handler=run_check)

    setup = commands.add_parser(
        "setup",
        help="create the HubSpot properties leadsync writes; report missing Salesforce fields",
        description="Create in HubSpot the contact properties the mapping writes to, and list "
        "the Salesforce Lead and Contact fields an admin must create. Exit 0 when nothing is "
        "missing, 1 when an admin has work to do.",
    )
    add_config_option(setup)
    setup.add_argument("--json", action="store_true", help="print the outcome as JSON")
    setup.set_defaults(handler=run_setup)


def run_check(args: argparse.Namespace) -> int:
    from leadsync.checks import check

    report = check(config_path(args), online=args.online)
    if args.json:
        body = {
            "ok": report.ok,
            "checked": report.checked,
            "problems": [
                {"file": p.file, "line": p.line, "key": p.key, "message": p.message}
                for p in report.problems
            ],
        }
        print(json.dumps(body, indent=2))
        return EXIT_OK if report.ok else EXIT_USAGE
    for problem in report.problems:
        print(problem, file=sys.stderr)
    if report.problems:
        found = len(report.problems)
        print(f"{found} problem{'s' if found != 1 else ''} found", file=sys.stderr)
        return EXIT_USAGE
    for item in report.checked:
        print(f"ok  {item}")
    return EXIT_OK


def run_setup(args: argparse.Namespace) -> int:
    from leadsync.crm_setup import set_up_crms
    from leadsync.mapping.fields import load_mapping

    config = load(args)
    mapping = load_mapping(config.mapping_path) if config.mapping_path.is_file() else None
    report = set_up_crms(config, mapping)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.text())
    return EXIT_OK if report.complete else EXIT_FAILED
