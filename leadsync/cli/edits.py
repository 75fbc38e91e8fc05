"""`leadsync apply` and `leadsync status`: staged edits of the mapping and lead definition.

    edit the files -> `leadsync check` -> `leadsync plan --what-if` -> `leadsync apply`

The service runs the version `apply` accepted last; saving a file changes nothing in it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import TYPE_CHECKING

from leadsync.cli.common import add_config_option, confirm, load
from leadsync.errors import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from leadsync.edits import EditStatus


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    apply = commands.add_parser(
        "apply",
        help="accept the edited mapping and lead definition: the service runs them next",
        description="Check the files on disk, show what they would change over every stored "
        "lead (`plan --what-if`), and, confirmed on a terminal (or with --yes), make them "
        "the version the service runs, from its next job. Exit 2 if the files have mistakes.",
    )
    add_config_option(apply)
    apply.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    apply.add_argument("--json", action="store_true", help="print the what-if and version as JSON")
    apply.set_defaults(handler=run_apply)

    status = commands.add_parser(
        "status",
        help="the version of the mapping and lead definition running, and the files on disk",
        description="Which version of the mapping and lead definition the service runs "
        "(applied when, by whom), and whether the files on disk differ or have mistakes.",
    )
    add_config_option(status)
    status.add_argument("--json", action="store_true", help="print it as JSON")
    status.set_defaults(handler=run_status)


def run_status(args: argparse.Namespace) -> int:
    from leadsync.edits import edit_status
    from leadsync.sync.database import store_errors
    from leadsync.sync.store import Store

    config = load(args)
    with store_errors(config.database_url), Store(config.database_url) as store:
        status = edit_status(config, store.engine)
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
    else:
        print(format_status(status))
    return EXIT_OK


def format_status(status: EditStatus) -> str:
    from leadsync.edits import SHORT

    # Two hashes, each labelled: the files version is a digest of the mapping and the lead
    # definition together; the scoring model version is the definition's model_version.
    running = status.running
    disk = (status.disk_digest or "")[:SHORT]
    if running is None:
        lines = [
            "running: nothing applied yet; the service's first start (or `leadsync apply`) "
            "accepts the files on disk"
        ]
    else:
        lines = [
            f"running: files version {running.short}, scoring model version "
            f"{running.model_version}, applied {running.accepted_at:%Y-%m-%d %H:%M %Z} by "
            f"{running.accepted_by}"
        ]
    if status.problems:
        after = "nothing runs until they are fixed" if running is None else "the version above runs"
        lines.append(f"files on disk: {len(status.problems)} problem(s); {after}")
        lines.extend(f"  {problem}" for problem in status.problems)
    elif running is None:
        lines.append(
            f"files on disk: files version {disk} (a digest of the two files), not applied yet: "
            "`leadsync apply` shows what they change and runs them"
        )
    elif status.differs:
        lines.append(
            f"files on disk: changed since (files version {disk}): `leadsync plan --what-if` "
            "shows what they change, `leadsync apply` runs them"
        )
    else:
        lines.append("files on disk: the version running")
    return "\n".join(lines)


def run_apply(args: argparse.Namespace) -> int:
    from leadsync.cli.sync import format_what_if
    from leadsync.edits import apply_edit, edit_status
    from leadsync.runtime import open_runtime
    from leadsync.sync.whatif import what_if

    config = load(args)
    # Opening the runtime reads the files on disk: a mistake ends here, exit 2, file and line.
    with open_runtime(config, connect=False) as runtime:
        engine = runtime.store.engine
        status = edit_status(config, engine)
        if not status.differs:
            assert status.running is not None  # differs is True without one
            print(f"the files on disk are the version running ({status.running.short})")
            return EXIT_OK
        # The command line is single-threaded: the what-if may fork, a copy per core.
        found = what_if(
            runtime.engine(), runtime.store, runtime.field_map, processes=os.cpu_count() or 1
        )
        if not args.json:
            print(format_what_if(found))
        if sys.stdin.isatty() and not args.yes and not confirm("apply these files?"):
            print("leadsync: not applied: the service runs the version it ran", file=sys.stderr)
            return EXIT_FAILED
        version = apply_edit(
            config,
            engine,
            by=f"cli:{_who()}",
            expect_disk=status.disk_digest,
            expect_running=status.running.digest if status.running else "",
        )
    if args.json:
        print(json.dumps({"what_if": found.as_dict(), "applied": version.as_dict()}, indent=2))
    else:
        print(
            f"applied version {version.short} (model {version.model_version}): the service "
            "runs it from its next job"
        )
    return EXIT_OK


def _who() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment (a container, say)
        return "unknown"
