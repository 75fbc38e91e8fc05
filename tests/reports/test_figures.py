"""The report's numbers on a small hand-made history whose answers are worked out below."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadsync.cli import main
from leadsync.connectors.base import WriteStatus
from leadsync.mapping.definition import LeadDefinition, load_definition
from leadsync.mapping.fields import FieldMap, load_mapping
from leadsync.mapping.lifecycle import Stage, Transition
from leadsync.reports.build import build_report
from leadsync.reports.html import render_html
from leadsync.reports.text import format_table
from leadsync.sync.audit_log import WriteRow
from leadsync.sync.model import Lead
from leadsync.sync.quarantine_ledger import Quarantined
from leadsync.sync.sla.clocks import Clock, ClockChanges, ClockStop, Outcome
from leadsync.sync.sla.monitor import monitor_for
from leadsync.sync.store import Store

EXAMPLES = Path(__file__).resolve().parents[2] / "leadsync" / "examples"
SINCE = datetime(2026, 5, 1, tzinfo=UTC)
UNTIL = datetime(2026, 7, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)  # Monday 08:00 in New York
D0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)
DAY = timedelta(days=1)
S = Stage

# lead id: (stage now, score, grade, lead source, [(to stage, at)])
LEADS: dict[str, tuple[str, int, str, str | None, list[tuple[Stage, datetime]]]] = {
    "L1": (
        "sql",
        85,
        "A",
        "organic_search",
        [(S.LEAD, D0), (S.MQL, D0 + 2 * H), (S.SAL, D0 + 5 * H), (S.SQL, D0 + 29 * H)],
    ),
    "L2": (
        "recycled",
        65,
        "B",
        "paid_search",
        [(S.LEAD, D0 + DAY), (S.MQL, D0 + DAY + 4 * H), (S.RECYCLED, D0 + 3 * DAY)],
    ),
    "L3": ("lead", 15, "D", "organic_search", [(S.LEAD, D0)]),
    "L4": (
        "customer",
        72,
        "B",
        None,
        [
            (S.LEAD, datetime(2026, 6, 1, 10, tzinfo=UTC)),
            (S.MQL, datetime(2026, 6, 1, 10, tzinfo=UTC)),  # passed through lead in one run
            (S.SAL, datetime(2026, 6, 2, 10, tzinfo=UTC)),
            (S.SQL, datetime(2026, 6, 2, 10, tzinfo=UTC)),  # and through sal
            (S.OPPORTUNITY, datetime(2026, 6, 3, 10, tzinfo=UTC)),
            (S.CUSTOMER, datetime(2026, 6, 5, 10, tzinfo=UTC)),
        ],
    ),
    "L5": (
        "disqualified",
        45,
        "C",
        "paid_search",
        [
            (S.LEAD, datetime(2026, 6, 10, 10, tzinfo=UTC)),
            (S.DISQUALIFIED, datetime(2026, 6, 11, 10, tzinfo=UTC)),
        ],
    ),
    # Entered before the window: in no figure of it.
    "L6": (
        "customer",
        99,
        "A",
        "organic_search",
        [
            (S.LEAD, datetime(2026, 4, 1, tzinfo=UTC)),
            (S.CUSTOMER, datetime(2026, 4, 2, tzinfo=UTC)),
        ],
    ),
}


def _clock(name: str, owner: str, started: datetime, due: datetime) -> Clock:
    return Clock(name, "mql_acceptance", "L1", started, due, "America/New_York", owner=owner)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    # Bookkeeping times (when writes were logged) fall inside the window too.
    with Store(f"sqlite:///{tmp_path / 'report.db'}", clock=lambda: D0 + 2 * DAY) as opened:
        _fill(opened)
        yield opened


def _fill(store: Store) -> None:
    store.save_leads(
        [
            Lead(
                lead_id,
                {"email": f"{lead_id.lower()}@x.com", "lead_source": source},
                score=score,
                grade=grade,
                stage=stage,
            )
            for lead_id, (stage, score, grade, source, _) in LEADS.items()
        ]
    )
    moves = []
    for lead_id, (*_, history) in LEADS.items():
        before = None
        for stage, at in history:
            moves.append((lead_id, Transition(before, stage, at, "because", "advance")))
            before = stage
    store.transitions.add(moves, run_id="r0")
    fri = datetime(2026, 6, 12, 17, 0, tzinfo=UTC)  # 13:00 in New York
    store.save_decisions(
        clocks=[
            ClockChanges(
                opened=(
                    _clock("C1", "owner-a", D0, D0 + 8 * H),
                    _clock("C2", "owner-a", D0, D0 + 8 * H),
                    _clock("C3", "owner-b", D0 + DAY, fri),  # still running, past due
                    _clock("C4", "owner-b", datetime(2026, 6, 14, tzinfo=UTC), NOW + DAY),
                    _clock("C5", "owner-b", datetime(2026, 6, 2, tzinfo=UTC), NOW),
                ),
                stopped=(
                    ClockStop("C1", D0 + 2 * H, Outcome.MET, "reached sal"),
                    ClockStop("C2", D0 + 20 * H, Outcome.MET, "reached sal"),
                    ClockStop(
                        "C5", datetime(2026, 6, 2, 1, tzinfo=UTC), Outcome.REJECTED, "recycled"
                    ),
                ),
            )
        ],
        run_id="r0",
    )
    quota = {"hubspot": {"daily_limit": 1000, "daily_used": 120, "daily_remaining": 880}}
    for status, at, pulled in (
        ("succeeded", D0, 40),
        ("failed", D0 + DAY, 5),
        ("succeeded", D0 + 2 * DAY, 7),
    ):
        run = store.run_log.start("sync", started_at=at)
        summary = {
            "crms": {
                "hubspot": {"pulled": pulled, "written": pulled // 2},
                "salesforce": {"pulled": 3, "written": 1},
            }
        }
        if at == D0 + 2 * DAY:
            summary["api_quota"] = quota
        store.run_log.finish(run, status=status, summary=summary, finished_at=at + H)
    refused = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    store.audit_log.record(
        "r1",
        "salesforce",
        [
            WriteRow(record, field, None, "x", WriteStatus.FAILED, refused)
            for record in ("00Q1", "00Q2")
            for field in ("Status", "Rating")
        ],
    )
    store.audit_log.record(
        "r1", "hubspot", [WriteRow("7", "phone", None, "1", WriteStatus.DEFERRED, "RATE_LIMITED")]
    )
    store.save_page(
        "hubspot",
        [],
        quarantined=[
            Quarantined("hubspot", str(n), reason, {}, "r1", D0)
            for n, reason in enumerate(
                [
                    "no email: email is blank or missing",
                    "no email: email is blank or missing",
                    "invalid email 'a@' in hubspot email: expected name@domain.tld",
                    "cannot read annual_revenue (annualrevenue): 'about 12k' is not a number",
                ]
            )
        ],
        position=None,
        run_id="r1",
    )


@pytest.fixture(scope="module")
def files() -> tuple[FieldMap, LeadDefinition]:
    field_map = load_mapping(EXAMPLES / "mapping.toml")
    return field_map, load_definition(
        EXAMPLES / "lead_definition.toml", fields=field_map.canonical_types()
    )


def report_of(store: Store, files: tuple[FieldMap, LeadDefinition]) -> dict[str, Any]:
    field_map, definition = files
    return build_report(
        store,
        field_map,
        definition,
        monitor=monitor_for(store, definition),
        now=NOW,
        since=SINCE,
        until=UNTIL,
    )


def test_the_funnel_counts_reach_conversion_and_time_in_stage(
    store: Store, files: tuple[FieldMap, LeadDefinition]
) -> None:
    funnel = report_of(store, files)["funnel"]
    assert funnel["leads"] == 5
    assert funnel["reached"] == {
        "lead": 5,
        "mql": 3,
        "sal": 2,
        "sql": 2,
        "opportunity": 1,
        "customer": 1,
    }
    assert funnel["current"] == {
        "lead": 1,
        "mql": 0,
        "sal": 0,
        "sql": 1,
        "opportunity": 0,
        "customer": 1,
        "recycled": 1,
        "disqualified": 1,
    }
    assert [(s["to"], s["rate"], s["cumulative"]) for s in funnel["conversion"]] == [
        ("mql", 0.6, 0.6),
        ("sal", 0.6667, 0.4),
        ("sql", 1.0, 0.4),
        ("opportunity", 0.5, 0.2),
        ("customer", 1.0, 0.2),
    ]
    times = funnel["time_in_stage"]
    assert times["lead"] == {
        "stays": 3,
        "passed_through": 1,
        "median_hours": 4.0,
        "p90_hours": 20.0,
    }
    assert times["mql"] == {
        "stays": 3,
        "passed_through": 0,
        "median_hours": 24.0,
        "p90_hours": 40.0,
    }
    assert times["sal"] == {
        "stays": 1,
        "passed_through": 1,
        "median_hours": 24.0,
        "p90_hours": 24.0,
    }
    assert times["opportunity"]["median_hours"] == 48.0
    assert times["recycled"] == {
        "stays": 0,
        "passed_through": 0,
        "median_hours": None,
        "p90_hours": None,
    }


def test_the_funnel_by_period_and_by_lead_source(
    store: Store, files: tuple[FieldMap, LeadDefinition]
) -> None:
    report = report_of(store, files)
    funnel = report["funnel"]
    assert report["segment_field"] == "lead_source"
    assert [
        (g["period"], g["leads"], g["reached"]["mql"], g["reached"]["customer"])
        for g in funnel["by_period"]
    ] == [
        ("2026-05", 3, 2, 0),
        ("2026-06", 2, 1, 1),
    ]
    assert [(g["segment"], g["leads"], g["to_mql"], g["to_sql"]) for g in funnel["by_segment"]] == [
        ("organic_search", 2, 0.5, 0.5),
        ("paid_search", 2, 0.5, 0.0),
        ("(none)", 1, 1.0, 1.0),
    ]


def test_sla_compliance_per_rule_owner_and_period_and_open_breaches(
    store: Store, files: tuple[FieldMap, LeadDefinition]
) -> None:
    sla = report_of(store, files)["sla"]
    rules = {rule["rule"]: rule for rule in sla["rules"]}
    assert rules["mql_acceptance"] == {
        "rule": "mql_acceptance",
        "within_hours": 8,
        "started": 5,
        "met": 2,
        "rejected": 1,
        "resolved_late": 1,
        "breached_open": 1,
        "running": 1,
        "decided": 4,
        "compliance": 0.5,
    }
    assert rules["sal_response"]["started"] == 0
    assert rules["sal_response"]["compliance"] is None
    assert [(o["owner"], o["decided"], o["met"], o["compliance"]) for o in sla["by_owner"]] == [
        ("owner-a", 2, 1, 0.5),
        ("owner-b", 2, 1, 0.5),
    ]
    assert [(p["period"], p["decided"], p["met"], p["compliance"]) for p in sla["over_time"]] == [
        ("2026-05", 3, 1, 0.3333),
        ("2026-06", 1, 1, 1.0),
    ]
    (breach,) = sla["open_breaches"]
    # Due Friday 13:00 New York; now Monday 08:00: Friday's four working hours are gone.
    assert (breach["owner"], breach["working_hours_late"]) == ("owner-b", 4.0)
    assert breach["email"] == "l1@x.com"


def test_volume_against_plan_counts_each_weeks_mqls(
    store: Store, files: tuple[FieldMap, LeadDefinition]
) -> None:
    volume = {p["start"][:10]: p for p in report_of(store, files)["sla"]["volume"]}
    # Weeks start Monday 00:00 New York (04:00 UTC). The first run (D0) came 6 hours into the
    # week of 2026-05-04: counted, never judged; a week before it is not listed at all.
    assert (volume["2026-05-04"]["delivered"], volume["2026-05-04"]["status"]) == (2, "partial")
    assert min(volume) == "2026-05-04"
    assert (volume["2026-06-01"]["delivered"], volume["2026-06-01"]["status"]) == (1, "missed")
    assert (volume["2026-06-15"]["delivered"], volume["2026-06-15"]["status"]) == (0, "on_plan")
    assert all(p["target"] == 25 for p in volume.values())


def test_score_calibration_by_band_grade_and_threshold(
    store: Store, files: tuple[FieldMap, LeadDefinition]
) -> None:
    calibration = report_of(store, files)["calibration"]
    assert calibration["mql_threshold"] == 60
    assert [
        (b["band"], b["leads"], b["reached_sql"], b["reached_opportunity"])
        for b in calibration["bands"]
    ] == [
        ("0-19", 1, 0, 0),
        ("20-39", 0, 0, 0),
        ("40-59", 1, 0, 0),
        ("60-79", 2, 1, 1),
        ("80-100", 1, 1, 0),
    ]
    assert calibration["bands"][1]["sql_rate"] is None
    assert [(g["grade"], g["leads"], g["sql_rate"]) for g in calibration["grades"]] == [
        ("A", 1, 1.0),
        ("B", 2, 0.5),
        ("C", 1, 0.0),
        ("D", 1, 0.0),
    ]
    split = calibration["threshold"]
    assert (split["at_or_above"]["leads"], split["at_or_above"]["sql_rate"]) == (3, 0.6667)
    assert (split["below"]["leads"], split["below"]["sql_rate"]) == (2, 0.0)


def test_sync_health_runs_records_errors_quarantine_and_quota(
    store: Store, files: tuple[FieldMap, LeadDefinition]
) -> None:
    health = report_of(store, files)["health"]
    assert health["runs"] == {"sync": {"failed": 1, "succeeded": 2}}
    assert health["records_pulled"] == {"hubspot": 52, "salesforce": 9}
    assert health["records_written"] == {"hubspot": 25, "salesforce": 3}
    assert health["errors"] == [
        {"category": "salesforce: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "count": 2},
        {"category": "hubspot: RATE_LIMITED (deferred)", "count": 1},
        {"category": "runs failed", "count": 1},
    ]
    assert health["quarantine"] == {
        "open": 6,  # the four refused as pulled, and the two whose writes Salesforce refused
        "by_reason": [
            {"reason": "no email", "count": 2},
            {
                "reason": "write refused by salesforce: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                "count": 2,
            },
            {"reason": "cannot read annual_revenue", "count": 1},
            {"reason": "invalid email", "count": 1},
        ],
    }
    assert health["api_quota"]["hubspot"]["daily_used"] == 120
    assert health["last_good_sync"] == (D0 + 2 * DAY + H).isoformat()


def test_leadsync_report_writes_table_json_and_html(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "report.db"}"\n\n[files]\n'
        f'mapping = "{EXAMPLES / "mapping.toml"}"\n'
        f'definition = "{EXAMPLES / "lead_definition.toml"}"\n'
    )
    window = ["--since", "2026-05-01", "--until", "2026-07-01"]
    assert main(["report", "--config", str(config), *window]) == 0
    table = capsys.readouterr().out
    assert "FUNNEL: 5 leads entered in the window" in table
    assert "mql_acceptance" in table
    assert (
        main(
            [
                "report",
                "--config",
                str(config),
                *window,
                "--format",
                "json",
                "--out",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    assert "wrote the json report" in capsys.readouterr().out
    body = json.loads((tmp_path / "r.json").read_text())
    assert body["schema"] == 1
    assert body["funnel"]["leads"] == 5
    assert (
        main(
            [
                "report",
                "--config",
                str(config),
                "--format",
                "html",
                "--out",
                str(tmp_path / "r.html"),
            ]
        )
        == 0
    )
    assert (tmp_path / "r.html").read_text().lstrip().lower().startswith("<!doctype html>")
    assert (
        main(["report", "--config", str(config), "--since", "2026-07-01", "--until", "2026-05-01"])
        == 2
    )
    assert "--until must be after --since" in capsys.readouterr().err
    # Without --until the window ends now: a --since after today leaves nothing to report.
    assert main(["report", "--config", str(config), "--since", "2999-01-01"]) == 2
    assert "--since must be before --until" in capsys.readouterr().err


def test_owner_rows_and_open_breaches_name_the_owners_the_store_knows(
    store: Store, files: tuple[FieldMap, LeadDefinition]
) -> None:
    store.handoffs.save_names("salesforce", {"owner-b": "Bea Owner"}, at=NOW)
    report = report_of(store, files)
    sla = report["sla"]
    assert [(row["owner"], row["name"]) for row in sla["by_owner"]] == [
        ("owner-a", None),
        ("owner-b", "Bea Owner"),
    ]
    (breach,) = sla["open_breaches"]
    assert (breach["owner"], breach["owner_name"]) == ("owner-b", "Bea Owner")
    text = format_table(report)
    assert "mql_acceptance / Bea Owner" in text
    assert "owner Bea Owner" in text
    assert "mql_acceptance / owner-a" in text  # no name known: the id
    assert "owner-b" not in text
    page = render_html(report)
    assert "<td>Bea Owner</td>" in page
    assert "owner-b" not in page
