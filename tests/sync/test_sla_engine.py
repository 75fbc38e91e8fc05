"""The SLA ledger through whole sync runs against the sandbox, with leadsync's clock held.

The first run (Tuesday 2 June 2026, 15:00 New York) makes MQLs of the seeded leads, which
starts their acceptance clocks: 8 working hours, due Wednesday 15:00. Later runs are placed
before and after that, and a rep accepts one lead late.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from leadsync.cli import main
from leadsync.config import Config
from leadsync.runtime import open_runtime
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sync.explain import explain, format_explanation
from leadsync.sync.run_summary import RunSummary
from leadsync.sync.sla.clocks import Clock, ClockStatus
from tests.support import search_caught_up, set_up_sandbox_config

NEW_YORK = ZoneInfo("America/New_York")
FIRST_RUN = datetime(2026, 6, 2, 15, 0, tzinfo=NEW_YORK)
DUE = datetime(2026, 6, 3, 15, 0, tzinfo=NEW_YORK)
FLAG = {"hubspot": "leadsync_sla_breaches", "salesforce": "Leadsync_Sla_Breaches__c"}


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(
        port=0,
        seed=5,
        leads=120,
        seed_until=datetime(2026, 6, 1, tzinfo=UTC),
        hubspot=HubSpotSettings(ten_second_limit=100_000, searches_per_second=1_000),
    )


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path) -> Config:
    loaded: Config = set_up_sandbox_config(sandbox, tmp_path)
    return loaded


def watching_since(config: Config, moment: datetime) -> None:
    """Leadsync has been watching since `moment`: records changed since then are news, and a
    lead first seen that way starts its clocks. (What changed before it is history, which
    starts none: the first sync of an org would otherwise breach every MQL it finds.)"""
    with open_runtime(config, connect=False) as runtime:
        runtime.store.run_log.start("sync", started_at=moment)


def cycle(config: Config, at: datetime) -> RunSummary:
    """A scheduled run at `at`: minutes after the last one, when search has caught up."""
    search_caught_up(config)
    with open_runtime(config) as runtime:
        return runtime.engine(clock=lambda: at.astimezone(UTC)).run()


def acceptance_clocks(config: Config) -> list[Clock]:
    with open_runtime(config, connect=False) as runtime:
        return [c for c in runtime.store.sla.clocks() if c.rule == "mql_acceptance"]


def flags(sandbox: Sandbox, config: Config, lead_id: str) -> dict[str, str | None]:
    """The breach flag each CRM holds on the lead's live records."""
    with open_runtime(config, connect=False) as runtime:
        records = runtime.store.records_of([lead_id])[lead_id]
    held: dict[str, str | None] = {}
    for record in records:
        if record.deleted:
            continue
        if record.crm == "hubspot":
            contact = sandbox.hubspot.contact(int(record.record_id))
            assert contact is not None
            held["hubspot"] = contact.properties.get(FLAG["hubspot"])
        else:
            lead = sandbox.salesforce.record("Lead", record.record_id)
            assert lead is not None
            held["salesforce"] = lead.get(FLAG["salesforce"])
    return held


def an_mql_in_both_crms(config: Config) -> Clock:
    """A running acceptance clock of a lead with an open Salesforce lead and a HubSpot contact."""
    with open_runtime(config, connect=False) as runtime:
        for clock in acceptance_clocks(config):
            if clock.status is not ClockStatus.OPEN:
                continue
            records = runtime.store.records_of([clock.lead_id])[clock.lead_id]
            live = {r.crm: r for r in records if not r.deleted}
            if set(live) == {"hubspot", "salesforce"} and not live["salesforce"].raw.get(
                "IsConverted"
            ):
                return clock
    raise AssertionError("no MQL with records in both CRMs in the seeded data")


def breach_lines(caplog: pytest.LogCaptureFixture, lead_id: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("SLA breach: rule mql_acceptance,")
        and lead_id in r.getMessage()
    ]


def test_an_mql_not_accepted_in_time_is_breached_logged_once_flagged_then_resolved_late(
    sandbox: Sandbox, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    watching_since(config, datetime(2026, 5, 1, tzinfo=UTC))
    first = cycle(config, FIRST_RUN)
    assert first.clocks_started > 0
    clock = an_mql_in_both_crms(config)
    assert clock.started_at == FIRST_RUN
    assert clock.due_at == DUE
    caplog.set_level(logging.INFO, logger="leadsync.sla")

    cycle(config, DUE - timedelta(minutes=1))
    assert breach_lines(caplog, clock.lead_id) == []
    assert set(flags(sandbox, config, clock.lead_id).values()) <= {None, ""}

    for minutes in range(10):  # ten runs after it fell due: one breach, logged once
        cycle(config, DUE + timedelta(minutes=minutes))
    assert len(breach_lines(caplog, clock.lead_id)) == 1
    # The line names the lead by its id; its email stays out of the log, extras included.
    with open_runtime(config, connect=False) as runtime:
        email = runtime.store.leads([clock.lead_id])[clock.lead_id].values["email"]
    assert email
    breach_records = [r for r in caplog.records if r.getMessage().startswith("SLA breach")]
    assert breach_records
    assert all(email not in f"{r.getMessage()} {r.__dict__}" for r in breach_records)
    (breached,) = [c for c in acceptance_clocks(config) if c.clock_id == clock.clock_id]
    assert breached.status is ClockStatus.BREACHED
    assert flags(sandbox, config, clock.lead_id) == {
        "hubspot": "mql_acceptance",
        "salesforce": "mql_acceptance",
    }

    with open_runtime(config, connect=False) as runtime:
        records = runtime.store.records_of([clock.lead_id])[clock.lead_id]
        salesforce_id = next(
            r.record_id for r in records if r.crm == "salesforce" and not r.deleted
        )
        monitor = runtime.sla_monitor()
        assert monitor is not None
        (explained,) = explain(
            runtime.store,
            runtime.field_map,
            salesforce_id,
            rules=monitor.rules,
            now=DUE + timedelta(minutes=10),
        )
    text = format_explanation(explained)
    due = "mql_acceptance: started 2026-06-02 19:00 UTC, due 2026-06-03 19:00 UTC, breached"
    assert due in text
    # The flag is written: a sync now would write nothing more for it.
    assert all(FLAG[crm] not in values for crm, values in explained.pending.items())

    # The rep accepts it the next morning: the lead becomes an SAL, the breach is resolved.
    sandbox.salesforce.update_record("Lead", salesforce_id, {"Status": "Working - Contacted"})
    accepted_run = datetime(2026, 6, 4, 10, 0, tzinfo=NEW_YORK)
    cycle(config, accepted_run)
    cycle(config, accepted_run + timedelta(minutes=5))
    (resolved,) = [c for c in acceptance_clocks(config) if c.clock_id == clock.clock_id]
    assert resolved.status is ClockStatus.RESOLVED_LATE
    assert resolved.stopped_at == accepted_run
    assert "reached sal" in resolved.stop_reason
    assert len(breach_lines(caplog, clock.lead_id)) == 1
    resolutions = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("SLA breach resolved late: rule mql_acceptance,")
        and clock.lead_id in r.getMessage()
    ]
    assert len(resolutions) == 1
    # The response clock now runs; the breach flag is cleared in both CRMs.
    assert set(flags(sandbox, config, clock.lead_id).values()) <= {None, ""}


def test_leadsync_sla_shows_the_ledger_as_text_and_json_and_filters_it(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    watching_since(config, datetime(2026, 5, 1, tzinfo=UTC))
    cycle(config, FIRST_RUN)
    path = str(config.path)
    assert main(["sla", "--config", path, "--json"]) == 0
    everything = json.loads(capsys.readouterr().out)
    assert {rule["rule"] for rule in everything["rules"]} == {"mql_acceptance", "sal_response"}
    acceptance = next(r for r in everything["rules"] if r["rule"] == "mql_acceptance")
    assert acceptance["started"] == len(acceptance_clocks(config)) > 0
    # As of the real now (months after the held clock), every running clock is past due.
    assert all(c["status"] in ("breached", "met", "resolved_late") for c in everything["clocks"])
    assert main(["sla", "--config", path, "--open", "--json"]) == 0
    running = json.loads(capsys.readouterr().out)["clocks"]
    assert running
    assert all(c["stopped_at"] is None for c in running)
    assert main(["sla", "--config", path, "--breached"]) == 0
    text = capsys.readouterr().out
    assert "Clocks per rule" in text
    assert "mql_acceptance" in text
    assert "working h late" in text
    assert main(["sla", "--config", path, "--since", "2026-06-03", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["clocks"] == []


def test_leadsync_sla_refuses_a_bad_date_and_a_definition_without_service_levels(
    config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(config.path)
    with pytest.raises(SystemExit) as usage:
        main(["sla", "--config", path, "--since", "last week"])
    assert usage.value.code == 2
    assert "not a date" in capsys.readouterr().err
    text = config.definition_path.read_text(encoding="utf-8")
    bare = tmp_path / "definition.toml"
    bare.write_text(text[: text.index("\n[sla]")], encoding="utf-8")
    edited = tmp_path / "edited.toml"
    edited.write_text(
        config.path.read_text(encoding="utf-8").replace(  # type: ignore[union-attr]
            str(config.definition_path), str(bare)
        ),
        encoding="utf-8",
    )
    assert main(["sla", "--config", str(edited)]) == 2
    err = capsys.readouterr().err
    assert f"{bare}: sla: no service levels" in err
    assert "Traceback" not in err


def test_the_first_sync_of_an_org_starts_no_clock_for_what_happened_before_it(
    config: Config,
) -> None:
    # Nobody was watching when these leads became MQLs: judging them by the first sync's
    # time would breach every one of them a working day later.
    first = cycle(config, FIRST_RUN)
    assert first.stages["mql"] + first.stages["sal"] > 0
    assert first.clocks_started == 0
    # Only the leads the run handed off to sales are timed, from the handoff: sales could not
    # see them before it, and the run itself made them visible.
    with open_runtime(config, connect=False) as runtime:
        handed = {h.lead_id: h for h in runtime.store.handoffs.all() if h.handed_off}
    clocks = acceptance_clocks(config)
    assert handed
    assert sorted(c.lead_id for c in clocks) == sorted(handed)
    assert all(c.started_at == handed[c.lead_id].handed_off_at for c in clocks)
    assert all(c.owner == handed[c.lead_id].owner for c in clocks)
