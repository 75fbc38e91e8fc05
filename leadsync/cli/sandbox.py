"""`leadsync sandbox`: the local HubSpot + Salesforce, until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from leadsync.cli.common import count, share
from leadsync.errors import EXIT_FAILED, EXIT_OK
from leadsync.sandbox import (
    FaultSpec,
    FaultSpecError,
    HubSpotSettings,
    SalesforceSettings,
    Sandbox,
    SandboxSettings,
)
from leadsync.sandbox.salesforce import DEFAULT_SESSION_TIMEOUT_SECONDS


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        help="serve a local HubSpot + Salesforce with seeded data until interrupted",
        description="Serve both CRM APIs and the /_sandbox/ inspection API on one port.",
    )
    _add_sandbox_options(sandbox)
    sandbox.add_argument(
        "--hubspot-rate-limit",
        type=count,
        default=HubSpotSettings().ten_second_limit,
        metavar="N",
        help="HubSpot requests allowed per rolling 10 seconds (default %(default)s)",
    )
    sandbox.add_argument(
        "--search-lag-ms",
        type=count,
        default=HubSpotSettings().search_lag_ms,
        metavar="MS",
        help="the longest a HubSpot edit takes to become searchable, as in real HubSpot; 0 "
        "makes search see every write at once (default %(default)s)",
    )
    sandbox.add_argument(
        "--session-timeout",
        type=count,
        default=DEFAULT_SESSION_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="how long a Salesforce session lasts, as an org's Session Settings say; 0 makes "
        "every session expire at once (default %(default)s)",
    )
    sandbox.add_argument(
        "--config-out",
        type=Path,
        metavar="FILE",
        help="write a leadsync config pointed at this sandbox, its secrets file, and copies of "
        "the example mapping and lead definition beside it (files there already are kept); "
        "a config there already keeps all but the sandbox's URLs, user and secrets file",
    )
    sandbox.set_defaults(handler=run_sandbox)


def _faults(text: str) -> FaultSpec:
    try:
        return FaultSpec.parse(text)
    except FaultSpecError as problem:
        raise argparse.ArgumentTypeError(str(problem)) from None


def _add_sandbox_options(parser: argparse.ArgumentParser) -> None:
    defaults = SandboxSettings()
    parser.add_argument("--host", default=defaults.host, help="address (default %(default)s)")
    parser.add_argument(
        "--port", type=count, default=defaults.port, help="port, 0 for any (default %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of the data (default %(default)s)"
    )
    parser.add_argument(
        "--leads", type=count, default=defaults.leads, help="leads per CRM (default %(default)s)"
    )
    parser.add_argument(
        "--overlap",
        type=share,
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
        salesforce=SalesforceSettings(session_timeout_seconds=args.session_timeout),
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
        from leadsync.sandbox_config import write_sandbox_config  # the config stack: lazily

        try:
            written = write_sandbox_config(
                args.config_out, sandbox.url, sandbox.credentials(), copies=True
            )
        except BaseException:
            sandbox.stop()  # refused (a config of the user's it would not damage): no sandbox
            raise
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
