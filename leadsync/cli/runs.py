"""`leadsync revert`: the runs leadsync made, and undoing one."""

from __future__ import annotations

import argparse

from leadsync.cli.common import add_config_option, load
from leadsync.errors import EXIT_FAILED, EXIT_OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    revert = commands.add_parser(
        "revert",
        help="put back the values a run overwrote, where the CRMs still hold what it wrote",
    )
    revert.add_argument("run_id", metavar="RUN-ID", help="the run to revert (see its summary)")
    add_config_option(revert)
    revert.set_defaults(handler=run_revert)


def run_revert(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.revert import revert_run

    config = load(args)
    with open_runtime(config) as runtime:
        report = revert_run(runtime.store, runtime.connectors, args.run_id)
    print(report.text(args.run_id))
    return EXIT_OK if not report.failed else EXIT_FAILED
