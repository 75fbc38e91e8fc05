"""`leadsync demo`: the whole product on a laptop, no CRM account needed.

Starts the sandbox in-process with seeded HubSpot contacts and Salesforce leads, writes a config
pointed at it (in a temporary folder), creates HubSpot's write-back properties, runs one sync
cycle, then a second to show that an unchanged world costs no writes, and prints the funnel.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from leadsync.config import Config, load_config
from leadsync.connectors.hubspot import HubSpotConnector
from leadsync.runtime import open_runtime
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sandbox_config import write_sandbox_config
from leadsync.sync.engine import RunSummary

DEFAULT_REPORT = Path("leadsync-demo-report.html")
FUNNEL = ("lead", "mql", "sal", "sql", "opportunity", "customer", "recycled", "disqualified")


def run_demo(*, seed: int, leads: int, report: Path = DEFAULT_REPORT) -> int:
    from leadsync.cli import format_summary

    # The demo shows leadsync, not HubSpot's pacing: the sandbox's limits are opened up.
    settings = SandboxSettings(
        port=0,
        seed=seed,
        leads=leads,
        hubspot=HubSpotSettings(ten_second_limit=10_000, searches_per_second=100),
    )
    print(f"Starting the sandbox with {leads} seeded leads per CRM (seed {seed})...")
    with Sandbox(settings) as sandbox, tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "leadsync.toml"
        write_sandbox_config(path, sandbox.url, sandbox.credentials())
        config = load_config(path)
        hubspot = HubSpotConnector(config.hubspot_connection())
        created = hubspot.ensure_properties()
        hubspot.close()
        print(f"Sandbox at {sandbox.url}; created HubSpot properties: {', '.join(created)}")
        first = _cycle(config)
        print("\nFirst sync: both CRMs pulled, people matched, leads scored and staged:")
        print(format_summary(first))
        calls = sandbox.stats.as_dict()["endpoints"]
        print(
            "  write calls: "
            f"{calls.get('hubspot.contacts.batch_update', 0)} HubSpot batch updates, "
            f"{calls.get('salesforce.collection_update', 0)} Salesforce collection updates, "
            f"{calls.get('salesforce.collection_upsert', 0)} Salesforce upserts (the handoff)"
        )
        sandbox.stats.clear()
        second = _cycle(config)
        written = sum(c.written for c in second.crms.values())
        handed = second.handoff.handed_off if second.handoff else 0
        print(
            f"\nSecond sync, nothing changed in either CRM: {written} records written, "
            f"{handed} handed off."
        )
        print("\nFunnel (leads by lifecycle stage):")
        total = sum(first.stages.values()) or 1
        for stage in FUNNEL:
            count = first.stages.get(stage, 0)
            print(f"  {stage:<13}{count:>6}  {'#' * round(40 * count / total)}")
        _write_report(config, report)
        print(
            f"\nReport: {report.resolve()} (funnel, SLA, score calibration, sync health; "
            "open it in a browser, it needs no network)"
        )
        print(
            "\nNext: `leadsync init revops` writes the three files to edit; `leadsync sandbox "
            "--config-out revops/config.toml` keeps a sandbox running for them; then `leadsync "
            "check`, `leadsync plan` and `leadsync sync --once`, each with `--config "
            "revops/config.toml`."
        )
    return 0


def _cycle(config: Config) -> RunSummary:
    with open_runtime(config) as runtime:
        return runtime.engine().run(write=True)


def _write_report(config: Config, path: Path) -> None:
    from leadsync.reports.build import report_for
    from leadsync.reports.html import render_html

    with open_runtime(config, connect=False) as runtime:
        report = report_for(runtime, now=datetime.now(UTC))
    path.write_text(render_html(report), encoding="utf-8")
