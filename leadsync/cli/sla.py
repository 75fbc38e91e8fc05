"""`leadsync sla`: the SLA ledger as of now."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import UTC, datetime

from leadsync.cli.common import add_config_option, day, load
from leadsync.errors import EXIT_OK, ConfigError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sla = commands.add_parser(
        "sla",
        help="the SLA ledger: clocks, breaches, compliance per rule, volume against plan",
        description="The SLA ledger as of now. A running clock past due shows as breached.",
    )
    add_config_option(sla)
    which = sla.add_mutually_exclusive_group()
    which.add_argument("--open", action="store_true", help="only clocks still running")
    which.add_argument("--breached", action="store_true", help="only breaches, resolved or not")
    sla.add_argument(
        "--since",
        type=day,
        metavar="DATE",
        help="clocks started on or after DATE (YYYY-MM-DD, UTC), volume periods from it",
    )
    sla.add_argument("--json", action="store_true", help="print the ledger as JSON")
    sla.set_defaults(handler=run_sla)


def run_sla(args: argparse.Namespace) -> int:
    from leadsync.problems import ConfigProblem
    from leadsync.runtime import open_runtime
    from leadsync.sync.sla.report import Only, format_sla, sla_view

    config = load(args)
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
            owner_names=runtime.store.handoffs.names(),
        )
    print(json.dumps(view.as_dict(), indent=2) if args.json else format_sla(view))
    return EXIT_OK
