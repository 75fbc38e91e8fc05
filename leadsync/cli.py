"""The `leadsync` command.

Exit codes, for every subcommand: 0 done; 1 failed at run time; 2 bad usage, config or mapping,
with a message that names what is wrong and no traceback. `main` maps the branches of the one
exception tree (`leadsync.errors`) to them, in one place; `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType

from sqlalchemy.engine import make_url

from leadsync import __version__
from leadsync.config import Config, load_config
from leadsync.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ConfigError,
    LeadsyncError,
    UsageError,
)
from leadsync.logs import configure_logging
from leadsync.sandbox import FaultSpec, FaultSpecError, HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sandbox_config import write_sandbox_config
from leadsync.sync.engine import RunSummary

# Set (or `--debug`) to see the traceback behind a failure's one-line message.
DEBUG_VAR = "LEADSYNC_DEBUG"


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _day(text: str) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _faults(text: str) -> FaultSpec:
    try:
        return FaultSpec.parse(text)
    except FaultSpecError as problem:
        raise argparse.ArgumentTypeError(str(problem)) from None


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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sandbox = commands.add_parser(
        "sandbox",
        help="serve a local HubSpot + Salesforce with seeded data until interrupted",
        description="Serve both CRM APIs and the /_sandbox/ inspection API on one port.",
    )
    _add_sandbox_options(sandbox)
    sandbox.add_argument(
        "--hubspot-rate-limit",
        type=_count,
        default=HubSpotSettings().ten_second_limit,
        metavar="N",
        help="HubSpot requests allowed per rolling 10 seconds (default %(default)s)",
    )
    sandbox.add_argument(
        "--search-lag-ms",
        type=_count,
        default=HubSpotSettings().search_lag_ms,
        metavar="MS",
        help="the longest a HubSpot edit takes to become searchable, as in real HubSpot; 0 "
        "makes search see every write at once (default %(default)s)",
    )

    sandbox.add_argument(
        "--config-out",
        type=Path,
        metavar="FILE",
        help="write a leadsync config pointed at this sandbox (and its secrets file beside it)",
    )

    check = commands.add_parser(
        "check",
        help="validate the config, the field mapping and the lead definition",
        description="Validate config, mapping and lead definition; list every problem at once. "
        "Exit 0 if none, 2 if any.",
    )
    _add_config_option(check)
    check.add_argument(
        "--online",
        action="store_true",
        help="also compare the mapping with each CRM's live describe",
    )

    run = commands.add_parser(
        "run",
        help="the service: scheduled syncs, SLA checks, the nightly sweep, queued backfills",
        description="Run the scheduled jobs until SIGTERM or SIGINT. Several replicas may run "
        "against one PostgreSQL: each job runs on one of them at a time.",
    )
    _add_config_option(run)

    sync = commands.add_parser("sync", help="run one full sync cycle and print what it did")
    _add_config_option(sync)
    sync.add_argument(
        "--once", action="store_true", required=True, help="one cycle, then exit (required)"
    )
    sync.add_argument("--json", action="store_true", help="print the summary as JSON")

    plan = commands.add_parser(
        "plan",
        help="the same cycle without writing: the changes each CRM would get, and the API calls",
    )
    _add_config_option(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")

    explain = commands.add_parser(
        "explain",
        help="one lead: both CRM records, merged values and their rules, score, stages, writes",
    )
    explain.add_argument("key", metavar="EMAIL|CRM-ID", help="an email or a CRM record id")
    _add_config_option(explain)

    revert = commands.add_parser(
        "revert",
        help="put back the values a run overwrote, where the CRMs still hold what it wrote",
    )
    revert.add_argument("run_id", metavar="RUN-ID", help="the run to revert (see its summary)")
    _add_config_option(revert)

    sla = commands.add_parser(
        "sla",
        help="the SLA ledger: clocks, breaches, compliance per rule, volume against plan",
        description="The SLA ledger as of now. A running clock past due shows as breached.",
    )
    _add_config_option(sla)
    which = sla.add_mutually_exclusive_group()
    which.add_argument("--open", action="store_true", help="only clocks still running")
    which.add_argument("--breached", action="store_true", help="only breaches, resolved or not")
    sla.add_argument(
        "--since",
        type=_day,
        metavar="DATE",
        help="clocks started on or after DATE (YYYY-MM-DD, UTC), volume periods from it",
    )
    sla.add_argument("--json", action="store_true", help="print the ledger as JSON")

    report = commands.add_parser(
        "report",
        help="the funnel, SLA compliance, score calibration and sync health",
        description="Marketing's and sales' shared numbers, from the store (no CRM is called).",
    )
    _add_config_option(report)
    report.add_argument("--since", type=_day, metavar="DATE", help="from DATE (UTC)")
    report.add_argument("--until", type=_day, metavar="DATE", help="to DATE, not included")
    report.add_argument(
        "--period", choices=("week", "month"), default="month", help="default month"
    )
    report.add_argument(
        "--format", choices=("table", "json", "html"), default="table", help="default table"
    )
    report.add_argument(
        "--out", type=Path, metavar="FILE", help="write it there (default: standard output)"
    )

    backfill = commands.add_parser(
        "backfill",
        help="a full pull of one or both CRMs, reconciled and written like a sync; resumable",
        description="Pull every record (list and Bulk APIs), keep those modified within "
        "[--since, --until), and reconcile and write them like a sync, chunk by chunk. "
        "Checkpointed: --resume ID, or the same command again, goes on after a kill.",
    )
    _add_config_option(backfill)
    backfill.add_argument(
        "--crm", choices=("hubspot", "salesforce", "all"), default="all", help="default all"
    )
    backfill.add_argument("--since", type=_day, metavar="DATE", help="modified on or after")
    backfill.add_argument("--until", type=_day, metavar="DATE", help="modified before")
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
    backfill.add_argument("--json", action="store_true", help="with --status: as JSON")

    commands.add_parser(
        "hash-password",
        help="a console user's password hash, for LEADSYNC_CONSOLE_PASSWORD_HASH_<USER>",
        description="Ask for a password (twice on a terminal; one line from standard input "
        "otherwise) and print its scrypt hash, to set as LEADSYNC_CONSOLE_PASSWORD_HASH_<USER>.",
    )

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="create or migrate the database")
    _add_config_option(upgrade)

    setup = commands.add_parser(
        "setup",
        help="create the HubSpot properties leadsync writes; report missing Salesforce fields",
    )
    _add_config_option(setup)

    demo = commands.add_parser(
        "demo",
        help="a full sync cycle against the embedded sandbox, then the funnel (no CRM needed)",
    )
    demo.add_argument("--seed", type=int, default=42, help="seed of the data (default %(default)s)")
    demo.add_argument(
        "--leads", type=_count, default=500, help="leads per CRM (default %(default)s)"
    )
    demo.add_argument(
        "--report",
        type=Path,
        default=Path("leadsync-demo-report.html"),
        metavar="FILE",
        help="where the HTML report goes (default %(default)s)",
    )
    return parser


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="config file (default: $LEADSYNC_CONFIG, else ./config.toml if present)",
    )


def _load(args: argparse.Namespace) -> Config:
    """The config the command names, with logging set up as it says."""
    config = load_config(_config_path(args))
    settings = config.model.logging
    configure_logging(level=settings.level, format=settings.format)
    return config


def _config_path(args: argparse.Namespace) -> Path | None:
    if args.config is not None:
        return Path(args.config)
    if os.environ.get("LEADSYNC_CONFIG"):
        return Path(os.environ["LEADSYNC_CONFIG"])
    default = Path("config.toml")
    return default if default.exists() else None


def _add_sandbox_options(parser: argparse.ArgumentParser) -> None:
    defaults = SandboxSettings()
    parser.add_argument("--host", default=defaults.host, help="address (default %(default)s)")
    parser.add_argument(
        "--port", type=_count, default=defaults.port, help="port, 0 for any (default %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of the data (default %(default)s)"
    )
    parser.add_argument(
        "--leads", type=_count, default=defaults.leads, help="leads per CRM (default %(default)s)"
    )
    parser.add_argument(
        "--overlap",
        type=_share,
        default=defaults.overlap,
        help="share of people in both CRMs, 0..1 (default %(default)s)",
    )
    parser.add_argument(
        "--faults",
        type=_faults,
        default=FaultSpec(),
        metavar="SPEC",
        help="inject faults, e.g. 5xx=0.1,429=0.05,drop=0.02,lock=0.01,latency=20ms",
    )


def run_sandbox(args: argparse.Namespace) -> int:
    settings = SandboxSettings(
        host=args.host,
        port=args.port,
        seed=args.seed,
        leads=args.leads,
        overlap=args.overlap,
        faults=args.faults,
        hubspot=HubSpotSettings(
            ten_second_limit=args.hubspot_rate_limit, search_lag_ms=args.search_lag_ms
        ),
    )
    sandbox = Sandbox(settings)
    try:
        sandbox.start()
    except OSError as problem:
        print(
            f"leadsync sandbox: cannot listen on {args.host}:{args.port}: {problem.strerror}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if args.config_out is not None:
        written = write_sandbox_config(args.config_out, sandbox.url, sandbox.credentials())
        print(f"wrote {', '.join(str(path) for path in written)}", flush=True)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    _print_sandbox_banner(sandbox)
    while not stopping.wait(0.5):
        pass
    sandbox.stop()
    print("sandbox stopped", flush=True)
    return EXIT_OK


def _print_sandbox_banner(sandbox: Sandbox) -> None:
    creds = sandbox.credentials()
    hubspot, salesforce = creds["hubspot"], creds["salesforce"]
    settings = sandbox.settings
    lines = [
        f"leadsync sandbox serving HubSpot and Salesforce at {sandbox.url}",
        f"  seed {settings.seed}, {settings.leads} leads per CRM, overlap {settings.overlap}",
        f"  faults: {settings.faults.as_dict() if settings.faults.active else 'none'}",
        "HubSpot (CRM v3)",
        f"  host           {hubspot['base_url']}",
        f"  access token   {hubspot['access_token']}",
        "Salesforce (REST v59.0)",
        f"  instance URL   {salesforce['instance_url']}",
        f"  username       {salesforce['username']}",
        f"  password       {salesforce['password']}",
        f"  security token {salesforce['security_token']}",
        f"  consumer key   {salesforce['consumer_key']}",
        f"Inspect: {sandbox.url}/_sandbox/  (stats, records, faults, reset)",
        "Stop with Ctrl-C.",
    ]
    print("\n".join(lines), flush=True)


def run_check(args: argparse.Namespace) -> int:
    from leadsync.checks import check

    report = check(_config_path(args), online=args.online)
    for problem in report.problems:
        print(problem, file=sys.stderr)
    if report.problems:
        count = len(report.problems)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return EXIT_USAGE
    for item in report.checked:
        print(f"ok  {item}")
    return EXIT_OK


def run_cycle(args: argparse.Namespace, *, write: bool) -> int:
    from leadsync.runtime import open_runtime

    config = _load(args)
    with open_runtime(config) as runtime:
        summary = runtime.engine(full_sla_check=True).run(write=write)
    failed = summary.every_write_failed()
    if args.json:
        body = summary.as_dict()
        if summary.plan is not None and not write:
            body["changes"] = [
                {
                    "crm": c.crm,
                    "record_id": c.record_id,
                    "field": c.field,
                    "old": c.old,
                    "new": c.new,
                }
                for c in summary.plan.changes
            ]
        print(json.dumps(body, indent=2, default=str))
    else:
        print(format_summary(summary))
    for problem in failed.values():
        print(f"leadsync: {problem}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def format_summary(summary: RunSummary) -> str:
    mode = "sync" if summary.wrote else "plan (nothing written)"
    lines = [f"run {summary.run_id}: {mode}"]
    header = f"  {'':<11}{'pulled':>8}{'quarant.':>10}{'new':>7}{'matched':>9}{'review':>8}"
    header += f"{'to write':>10}{'written':>9}{'failed':>8}{'deferred':>10}{'held back':>11}"
    lines.append(header)
    for crm, c in sorted(summary.crms.items()):
        lines.append(
            f"  {crm:<11}{c.pulled:>8}{c.quarantined:>10}{c.new_leads:>7}{c.matched:>9}"
            f"{c.to_review:>8}{c.records_to_update:>10}{c.written:>9}{c.failed:>8}{c.deferred:>10}"
            f"{c.held_back:>11}"
        )
    causes = [
        (crm, category, cause)
        for crm, c in sorted(summary.crms.items())
        for category, cause in c.causes()
    ]
    if causes:
        lines.append("  not written, by cause (count, one of them):")
        lines.extend(
            f"    {crm} {category}: {cause.count}, e.g. {cause.example}"
            for crm, category, cause in causes
        )
    lines.append(
        f"  leads changed: {summary.leads_changed}, stage transitions: {summary.transitions}"
    )
    if summary.clocks_started or summary.clocks_stopped or summary.sla is not None:
        breaches = 0 if summary.sla is None else summary.sla.breached
        lines.append(
            f"  SLA clocks started: {summary.clocks_started}, stopped: "
            f"{summary.clocks_stopped}, newly breached: {breaches}"
        )
    if summary.handoff is not None:
        lines.extend(f"  {line}" for line in summary.handoff.lines())
    if summary.plan is not None and summary.plan.change_count:
        lines.append("  changes by field, and the write calls they take:")
        lines.extend(f"  {line}" for line in summary.plan.lines())
    return "\n".join(lines)


def run_explain(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.explain import format_explanation

    config = _load(args)
    with open_runtime(config, connect=False) as runtime:
        found = runtime.explain(args.key)
    if not found:
        print(f"leadsync: no lead with the email or CRM id {args.key!r}", file=sys.stderr)
        return EXIT_FAILED
    print("\n\n".join(format_explanation(explanation) for explanation in found))
    return EXIT_OK


def run_revert(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.revert import revert_run

    config = _load(args)
    with open_runtime(config) as runtime:
        report = revert_run(runtime.store, runtime.connectors, args.run_id)
    print(report.text(args.run_id))
    return EXIT_OK if not report.failed else EXIT_FAILED


def run_sla(args: argparse.Namespace) -> int:
    from leadsync.problems import ConfigProblem
    from leadsync.runtime import open_runtime
    from leadsync.sync.sla.report import Only, format_sla, sla_view

    config = _load(args)
    with open_runtime(config, connect=False) as runtime:
        monitor = runtime.sla_monitor()
        if monitor is None:
            problem = ConfigProblem(
                str(config.definition_path), "sla", "no service levels: add an [sla] section"
            )
            raise ConfigError([problem])
        only: Only | None = "open" if args.open else "breached" if args.breached else None
        identity = runtime.field_map.identity_field

        def emails(lead_ids: Sequence[str]) -> dict[str, str | None]:
            leads = runtime.store.leads(lead_ids)
            return {lead_id: lead.values.get(identity) for lead_id, lead in leads.items()}

        handoff = runtime.definition.handoff
        view = sla_view(
            runtime.store.sla,
            monitor,
            emails,
            now=datetime.now(UTC),
            since=args.since,
            only=only,
            handoffs=runtime.store.handoffs.all() if handoff is not None else None,
            handoff_stage=handoff.stage if handoff is not None else None,
        )
    print(json.dumps(view.as_dict(), indent=2) if args.json else format_sla(view))
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    from leadsync.reports.build import report_for
    from leadsync.reports.html import render_html
    from leadsync.reports.text import format_table
    from leadsync.runtime import open_runtime

    if args.since and args.until and args.until <= args.since:
        raise UsageError("--until must be after --since")
    now = datetime.now(UTC)
    if args.since and not args.until and args.since >= now:
        raise UsageError("--since must be before --until (without it, before now)")
    config = _load(args)
    with open_runtime(config, connect=False) as runtime:
        report = report_for(
            runtime, now=now, since=args.since, until=args.until, period=args.period
        )
    renderers = {
        "table": format_table,
        "json": lambda body: json.dumps(body, indent=2) + "\n",
        "html": render_html,
    }
    text = renderers[args.format](report)
    if args.out is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    except OSError as problem:
        raise UsageError(f"cannot write {args.out}: {problem.strerror}") from None
    print(f"wrote the {args.format} report to {args.out}")
    return EXIT_OK


def run_backfill(args: argparse.Namespace) -> int:
    from leadsync.runtime import open_runtime
    from leadsync.sync.backfill import (
        Status,
        format_backfills,
        spec_for,
    )

    config = _load(args)
    with open_runtime(config, connect=not (args.status or args.queue or args.stop)) as runtime:
        queue = runtime.backfill_queue()
        if args.status:
            found = queue.list()
            body = json.dumps([b.as_dict() for b in found], indent=2)
            print(body if args.json else format_backfills(found))
            return EXIT_OK
        if args.stop is not None:
            stopped = runtime.stop_backfill(args.stop)
            if stopped is None:
                raise UsageError(f"no backfill {args.stop!r} (see --status)")
            print(format_backfills([stopped]))
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
                print(f"queued backfill {queued.backfill_id}: `leadsync run` takes it up")
                return EXIT_OK
            chosen = queue.unfinished_like(spec) or queue.create(spec)
            if chosen.progress:
                print(f"going on with backfill {chosen.backfill_id}", file=sys.stderr)
        stopping = _stop_on_signals()
        summaries: list[RunSummary] = []
        done = runtime.run_backfill(
            chosen.backfill_id,
            should_stop=stopping.is_set,
            progress_stream=sys.stderr,
            on_summary=summaries.append,
        )
    print(format_backfills([done]))
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


def _stop_on_signals() -> threading.Event:
    """An event set by the first SIGINT or SIGTERM: work stops at the next batch boundary."""
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            raise KeyboardInterrupt
        print("stopping after the batch in hand (again to stop at once)", file=sys.stderr)
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return stopping


def run_hash_password() -> int:
    from getpass import getpass

    from leadsync.console.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass("password: ")
        if getpass("again: ") != password:
            raise UsageError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        raise UsageError("a console password needs at least 12 characters")
    print(hash_password(password))
    return EXIT_OK


def run_db_upgrade(args: argparse.Namespace) -> int:
    from leadsync.sync.database import upgrade_database

    config = _load(args)
    upgrade_database(config.database_url)
    print(f"database at {_shown_url(config.database_url)} is up to date")
    return EXIT_OK


def _shown_url(url: str) -> str:
    # A database URL may carry a password: show the rest.
    return make_url(url).render_as_string(hide_password=True)


def run_setup(args: argparse.Namespace) -> int:
    from leadsync.crm_setup import set_up_crms
    from leadsync.mapping.fields import load_mapping

    config = _load(args)
    mapping = load_mapping(config.mapping_path) if config.mapping_path.is_file() else None
    report = set_up_crms(config, mapping)
    print(report.text())
    return EXIT_OK if report.complete else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(parser, args)
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


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "sandbox":
        return run_sandbox(args)
    if args.command == "check":
        return run_check(args)
    if args.command == "run":
        from leadsync.jobs import Service

        return Service(_load(args)).run()
    if args.command == "sync":
        return run_cycle(args, write=True)
    if args.command == "plan":
        return run_cycle(args, write=False)
    if args.command == "explain":
        return run_explain(args)
    if args.command == "revert":
        return run_revert(args)
    if args.command == "sla":
        return run_sla(args)
    if args.command == "report":
        return run_report(args)
    if args.command == "backfill":
        return run_backfill(args)
    if args.command == "db":
        return run_db_upgrade(args)
    if args.command == "hash-password":
        return run_hash_password()
    if args.command == "setup":
        return run_setup(args)
    if args.command == "demo":
        from leadsync.demo import run_demo

        return run_demo(seed=args.seed, leads=args.leads, report=args.report)
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE  # pragma: no cover - parser.error exits


if __name__ == "__main__":
    sys.exit(main())
