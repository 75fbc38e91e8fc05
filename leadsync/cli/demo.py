"""`leadsync demo`: the whole product against the embedded sandbox."""

from __future__ import annotations

import argparse
from pathlib import Path

from leadsync.cli.common import count


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="a full sync cycle against the embedded sandbox, then the funnel (no CRM needed)",
        description="Start the sandbox in-process with seeded leads and weeks of history, "
        "sync twice (the second writes nothing), print the funnel and write the HTML report.",
    )
    demo.add_argument("--seed", type=int, default=42, help="seed of the data (default %(default)s)")
    demo.add_argument(
        "--leads", type=count, default=500, help="leads per CRM (default %(default)s)"
    )
    demo.add_argument(
        "--report",
        type=Path,
        default=Path("leadsync-demo-report.html"),
        metavar="FILE",
        help="where the HTML report goes (default %(default)s)",
    )
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from leadsync.demo import run_demo as demo

    return demo(seed=args.seed, leads=args.leads, report=args.report)
