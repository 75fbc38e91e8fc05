"""The `leadsync` command.

Exit codes, for every subcommand: 0 done; 1 failed at run time; 2 bad usage, config or mapping,
with a message that names what is wrong and no traceback. `main` maps the branches of the one
exception tree (`leadsync.errors`) to them, in one place; `--debug` adds the traceback.

One module per command group: each has `register(commands)`, which adds its subcommands and
sets each one's `handler`, a function of the parsed arguments that returns the exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from leadsync import __version__
from leadsync.cli import (
    backfill,
    check,
    demo,
    edits,
    exceptions,
    init,
    leads,
    report,
    runs,
    sandbox,
    service,
    sla,
    sync,
)
from leadsync.cli.sync import format_summary
from leadsync.errors import EXIT_FAILED, LeadsyncError

__all__ = ["build_parser", "format_summary", "main"]

# Set (or `--debug`) to see the traceback behind a failure's one-line message.
DEBUG_VAR = "LEADSYNC_DEBUG"

# In the order `leadsync --help` lists them.
GROUPS = (
    init,
    sandbox,
    check,
    service,
    edits,
    sync,
    leads,
    exceptions,
    runs,
    sla,
    report,
    backfill,
    demo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadsync",
        description="One lead definition for HubSpot and Salesforce.",
    )
    parser.add_argument("--version", action="version", version=f"leadsync {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        default=os.environ.get(DEBUG_VAR) == "1",
        help=f"on a failure, print the traceback too (or set {DEBUG_VAR}=1)",
    )
    parser.add_argument(
        "--config",
        dest="config_before_command",
        type=Path,
        metavar="FILE",
        help="config file, for any command that reads one (also accepted after the command)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if getattr(args, "config", None) is None and args.config_before_command is not None:
        args.config = args.config_before_command
    try:
        code: int = args.handler(args)
        return code
    except KeyboardInterrupt:
        # Ctrl-C where nothing asks for it at a batch boundary, or a second SIGINT/SIGTERM
        # after a first asked to stop there (`stop_on_signals`): stopped where it was.
        if args.debug:
            traceback.print_exc()
        print(
            "leadsync: stopped at once: what was committed stays, the rest is undone; the "
            "next run goes on from there",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader of the output went away (`leadsync runs | head -1`): nothing is wrong
        # with leadsync, and nobody is left to tell. Python would report the pipe again as it
        # flushes stdout on exit: stdout goes nowhere from here.
        _silence_stdout()
        return EXIT_FAILED
    except Exception as failure:  # noqa: BLE001 - the command's last word: one line, always
        if args.debug:
            traceback.print_exc()
        if isinstance(failure, LeadsyncError):
            # The branch decides the exit code (see leadsync.errors): 2 for the user's input,
            # 1 for what failed at run time. One line (a ConfigError: one per problem).
            print(f"leadsync: {failure}", file=sys.stderr)
            return failure.exit_code
        print(
            f"leadsync: internal error: {type(failure).__name__} (a bug in leadsync: please "
            "report it with the output of --debug)",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
