"""`leadsync demo`: the whole product on a laptop, no CRM account needed.

Starts the sandbox in-process with seeded HubSpot contacts and Salesforce leads as they stood
a few weeks ago, writes a config pointed at it (in a temporary folder), creates HubSpot's
write-back properties and syncs through those weeks while the sandbox replays what marketing
and sales did in them (`leadsync.sandbox.history`): new MQLs each Monday, sales accepting
them (most in time, some late), leads worked, deals won and lost. Then it syncs today, once
more to show that an unchanged world costs no writes, prints the funnel and writes the report,
which has the figures of a team after weeks of use.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from leadsync.config import Config, load_config
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.runtime import open_runtime
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sandbox.history import History, ReplayClock, week_starts
from leadsync.sandbox_config import write_sandbox_config
from leadsync.sync.run_summary import RunSummary

DEFAULT_REPORT = Path("leadsync-demo-report.html")
FUNNEL = ("lead", "mql", "sal", "sql", "opportunity", "customer", "recycled", "disqualified")
# Weeks of use replayed before today; each costs two syncs, most of them small.
WEEKS = 3
# Contacts marketing's campaign reaches each week after the first.
CAMPAIGN = 30


def run_demo(*, seed: int, leads: int, report: Path = DEFAULT_REPORT) -> int:
    from leadsync.cli import format_summary

    # The replayed weeks breach SLAs by the dozen, as a team's weeks do: the report shows them,
    # one warning line each would bury the demo's own output.
    logging.getLogger("leadsync.sla").setLevel(logging.ERROR)
    mondays = week_starts(datetime.now(UTC), WEEKS)
    clock = ReplayClock(mondays[0])
    # The demo shows leadsync, not HubSpot's pacing: the sandbox's limits are opened up.
    settings = SandboxSettings(
        port=0,
        seed=seed,
        leads=leads,
        hubspot=HubSpotSettings(ten_second_limit=10_000, searches_per_second=100),
    )
    print(
        f"Starting the sandbox with {leads} seeded leads per CRM (seed {seed}), as they stood "
        f"{WEEKS} weeks ago..."
    )
    with (
        Sandbox(settings, clock=clock.time) as sandbox,
        tempfile.TemporaryDirectory() as folder,
    ):
        path = Path(folder) / "leadsync.toml"
        write_sandbox_config(path, sandbox.url, sandbox.credentials())
        config = load_config(path)
        hubspot = HubSpotConnector(config.hubspot_connection())
        created = hubspot.ensure_properties()
        hubspot.close()
        print(f"Sandbox at {sandbox.url}; created HubSpot properties: {', '.join(created)}")
        first = _cycle(config, clock)
        print(f"\nFirst sync, {mondays[0]:%A %Y-%m-%d}: both CRMs pulled, people matched, leads")
        print("scored and staged:")
        print(format_summary(first))
        calls = sandbox.stats.as_dict()["endpoints"]
        print(
            "  write calls: "
            f"{calls.get('hubspot.contacts.batch_update', 0)} HubSpot batch updates, "
            f"{calls.get('salesforce.collection_update', 0)} Salesforce collection updates, "
            f"{calls.get('salesforce.collection_upsert', 0)} Salesforce upserts (the handoff)"
        )
        print(f"\n{WEEKS} weeks of use, replayed: what the CRMs' users did, then leadsync's sync")
        _replay(config, clock, History(sandbox, seed=seed), mondays)
        sandbox.stats.clear()
        second = _cycle(config, clock)
        written = sum(c.written for c in second.crms.values())
        handed = second.handoff.handed_off if second.handoff else 0
        print(
            f"\nOnce more, nothing changed in either CRM: {written} records written, "
            f"{handed} handed off."
        )
        body = _report(config)
        print("\nFunnel (leads by lifecycle stage now):")
        current = body["funnel"]["current"]
        total = sum(current.values()) or 1
        for stage in FUNNEL:
            count = current.get(stage, 0)
            print(f"  {stage:<13}{count:>6}  {'#' * round(40 * count / total)}")
        from leadsync.reports.html import render_html

        report.write_text(render_html(body), encoding="utf-8")
        print(
            f"\nReport: {report.resolve()} (funnel and time in stage, SLA, the handoff, score "
            "calibration, revenue, sync health; open it in a browser, it needs no network)"
        )
        print(
            "\nNext: `leadsync init revops` writes the three files to edit; `leadsync sandbox "
            "--config-out revops/config.toml` keeps a sandbox running for them; then `leadsync "
            "setup` once (it creates the HubSpot properties leadsync writes: `plan` and `sync` "
            "refuse to run without them), `leadsync check`, `leadsync plan` and `leadsync sync "
            "--once`, each with `--config revops/config.toml`."
        )
    return 0


def _replay(config: Config, clock: ReplayClock, history: History, mondays: list[datetime]) -> None:
    """Each week: on Monday morning, marketing's new MQLs (from the second week on) are synced
    and handed off, with what sales did since the last sync (late acceptances, leads and deals
    worked); on Tuesday morning, within the 8 working hours, sales accepted most new MQLs; on
    Wednesday they call most of those (seen at the next sync, stamped Wednesday)."""
    for week, monday in enumerate(mondays):
        if week:
            clock.jump_to(monday)
            _act(config, clock, _week_of_work(history))
        clock.jump_to(monday + timedelta(hours=23))
        _act(config, clock, f"sales accepted {history.accept(0.6)} new MQLs in time")
        # Wednesday: sales call most of the leads they accepted; the next sync sees it.
        clock.jump_to(monday + timedelta(days=2))
        history.call(0.7, at_most=40)
    clock.jump_to(datetime.now(UTC))
    _act(config, clock, _week_of_work(history), today=True)


def _week_of_work(history: History) -> str:
    late = history.accept(0.5)
    worked = history.work()
    reached = history.campaign(CAMPAIGN)
    return (
        f"{late} MQLs accepted late, {worked} leads and deals worked, marketing's campaign "
        f"reached {reached}"
    )


def _act(config: Config, clock: ReplayClock, what: str, *, today: bool = False) -> None:
    at = clock.now()
    summary = _cycle(config, clock)
    print(f"  {'today' if today else f'{at:%a %Y-%m-%d %H:%M} UTC':<26}{what}")
    print(f"  {'':<26}sync: {_line(summary)}")


def _line(summary: RunSummary) -> str:
    pulled = sum(c.pulled for c in summary.crms.values())
    written = sum(c.written for c in summary.crms.values())
    handed = summary.handoff.handed_off if summary.handoff else 0
    return (
        f"pulled {pulled}, written {written}, stage moves {summary.transitions}, "
        f"handed off {handed}"
    )


def _cycle(config: Config, clock: ReplayClock) -> RunSummary:
    # As the service runs it: the SLA check (breaches, volume) with each sync.
    with open_runtime(config) as runtime:
        return runtime.engine(clock=clock.now, full_sla_check=True).run(write=True)


def _report(config: Config) -> dict[str, Any]:
    from leadsync.reports.build import report_for

    with open_runtime(config, connect=False) as runtime:
        return report_for(runtime, now=datetime.now(UTC))
