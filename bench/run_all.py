"""Every benchmark, one after the other, each writing its section of docs/BENCHMARKS.md,
then issue 20's targets section assembled from their results files.

    .venv/bin/python bench/run_all.py [--quick] [--only NAME[,NAME]] [--output FILE]
        [--targets] [--list]

The full set takes a couple of hours on two cores (the million-lead store and the 100,000-lead
full reconciles are most of it); `--quick` runs each at a small scale and only prints, unless
`--output` names a file to write (the results files go beside it, in `bench-results/`). Each
benchmark is a process of its own, so one's memory never weighs on the next.

The targets section (`bench/targets.py`) is written from the latest results file of each
benchmark after any run, the benchmarks that failed included (their last results stand, with
their date); `--targets` writes it alone, running nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from _common import BENCHMARKS_MD, RESULTS_FOLDER, write_section
from targets import SECTION as TARGETS_SECTION
from targets import read_results
from targets import section as targets_section

HERE = Path(__file__).resolve().parent

# name: (script, its arguments for the full run)
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "sandbox-speed": ("sandbox_speed.py", []),
    "connector-costs": ("connector_costs.py", []),
    "full-reconcile": (
        "full_reconcile.py",
        ["--leads", "10000,100000", "--repeat", "3", "--naive-leads", "10000"],
    ),
    # An incremental run costs what changed, not what is stored: the same 100 changes at two
    # store sizes...
    "incremental-cost": ("incremental_cost.py", ["--stored", "10000,1000000", "--changed", "100"]),
    # ...and a day's worth, 1 % of the leads changed, at 100,000 and a million stored.
    "incremental-1pct-100k": (
        "incremental_cost.py",
        [
            "--stored", "100000", "--changed", "1000", "--sandbox-leads", "6000",
            "--section", "incremental-1pct-100k",
        ],
    ),
    "incremental-1pct-1m": (
        "incremental_cost.py",
        [
            "--stored", "1000000", "--changed", "10000", "--repeat", "2",
            "--sandbox-leads", "45000", "--section", "incremental-1pct-1m",
        ],
    ),
    # The day after: what the nightly sweep rewrites when nothing changed (the target: < 1 %).
    "churn": ("churn.py", ["--leads", "10000", "--days", "3"]),
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small and printed only")
    parser.add_argument("--only", help="comma-separated names (see --list)")
    parser.add_argument("--list", action="store_true", help="the benchmarks, then exit")
    parser.add_argument(
        "--output", type=Path, help=f"the Markdown file to write (default {BENCHMARKS_MD})"
    )
    parser.add_argument(
        "--targets", action="store_true", help="only the targets section, from the results"
    )
    args = parser.parse_args(argv)
    if args.list:
        for name, (script, arguments) in BENCHMARKS.items():
            print(f"{name:<24} bench/{script} {' '.join(arguments)}")
        return 0
    if args.targets:
        write_targets(args.output or BENCHMARKS_MD)
        return 0
    chosen = list(BENCHMARKS) if not args.only else args.only.split(",")
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; see --list")
    failed = []
    scripts_run: set[str] = set()
    for name in chosen:
        script, arguments = BENCHMARKS[name]
        if args.quick and script in scripts_run:
            continue  # a quick run of a script says all its quick run can say
        scripts_run.add(script)
        command = [sys.executable, str(HERE / script), *(["--quick"] if args.quick else arguments)]
        if args.output is not None:
            command += ["--output", str(args.output)]
        print(f"== {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
        started = time.monotonic()
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(name)
        print(f"== {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    if args.quick and args.output is None:
        # A quick run wrote nothing: the targets as the last saved results judge them.
        print(targets_section(read_results(BENCHMARKS_MD.parent / RESULTS_FOLDER)))
    else:
        write_targets(args.output or BENCHMARKS_MD)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def write_targets(markdown: Path) -> None:
    """Issue 20's targets section of `markdown`, from the results files beside it."""
    folder = markdown.parent / RESULTS_FOLDER
    body = targets_section(read_results(folder), folder_name=_shown(folder))
    print(body)
    write_section(TARGETS_SECTION, body, intro="# Benchmarks\n", path=markdown)
    print(f"== targets: written to {markdown}", file=sys.stderr, flush=True)


def _shown(folder: Path) -> str:
    try:
        return str(folder.resolve().relative_to(HERE.parent))
    except ValueError:
        return str(folder)


if __name__ == "__main__":
    sys.exit(main())
