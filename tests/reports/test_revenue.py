"""The revenue KPIs of the report, pinned on a small store whose expectations are worked out
by hand below: conversion to opportunity, win rate and average won amount by band and grade,
pipeline velocity, time from MQL, and CAC from a spend table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from leadsync.cli import main
from leadsync.mapping.definition import LeadDefinition, load_definition
from leadsync.mapping.fields import FieldMap, load_mapping
from leadsync.mapping.lifecycle import Stage, Transition
from leadsync.reports.build import build_report
from leadsync.reports.html import render_html
from leadsync.reports.revenue import NO_SPEND
from leadsync.reports.text import format_table
from leadsync.sync.model import Lead, Snapshot
from leadsync.sync.related import Related
from leadsync.sync.store import Store

EXAMPLES = Path(__file__).resolve().parents[2] / "leadsync" / "examples"
NOW = datetime(2026, 4, 1, tzinfo=UTC)


def day(month: int, dom: int) -> datetime:
    return datetime(2026, month, dom, tzinfo=UTC)


L, M, P, C = Stage.LEAD, Stage.MQL, Stage.OPPORTUNITY, Stage.CUSTOMER
# lead: (score, grade, source, history, opportunity (created, close, amount, won) or None)
PEOPLE: dict[str, tuple[int, str, str | None, list[tuple[Stage, datetime]], Any]] = {
    "L1": (85, "A", "Web", [(L, day(1, 10)), (M, day(1, 12)), (P, day(1, 22)), (C, day(2, 11))],
           (day(1, 22), "2026-02-11", 30_000.0, True)),
    "L2": (65, "B", "Web", [(L, day(1, 15)), (M, day(1, 16)), (P, day(1, 26))],
           (day(1, 26), "2026-03-01", 10_000.0, False)),
    "L3": (90, "A", "Partner Referral",
           [(L, day(2, 3)), (M, day(2, 5)), (P, day(2, 15)), (C, day(3, 17))],
           (day(2, 15), "2026-03-17", 50_000.0, True)),
    "L4": (30, "C", "Web", [(L, day(2, 20))], None),
    "L5": (10, "D", None, [(L, day(1, 5))], None),
}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'revenue.db'}", clock=lambda: NOW) as opened:
        _fill(opened)
        yield opened


def _fill(store: Store) -> None:
    leads, links, moves, related = [], [], [], []
    for lead_id, (score, grade, source, history, opportunity) in PEOPLE.items():
        leads.append(Lead(lead_id, {"lead_source": source}, score=score, grade=grade))
        links.append(("salesforce", f"00Q{lead_id}", lead_id, "new"))
        before = None
        for stage, at in history:
            moves.append((lead_id, Transition(before, stage, at, "because", "advance")))
            before = stage
        if opportunity is not None:
            created, close, amount, won = opportunity
            fields = {
                "CreatedDate": created.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
                "CloseDate": close,
                "Amount": amount,
                "IsClosed": True,
                "IsWon": won,
                "StageName": "Closed Won" if won else "Closed Lost",
            }
            related.append(
                Related(
                    "salesforce",
                    "Opportunity",
                    f"006{lead_id}",
                    NOW,
                    fields,
                    False,
                    f"00Q{lead_id}",
                )
            )
    # An opportunity no lead names (created in Salesforce directly): not any lead's.
    related.append(Related("salesforce", "Opportunity", "006X", NOW, {"IsWon": True}, False, None))
    store.save_decisions(leads=leads, links=links, transitions=moves, run_id="r0")
    store.save_page("salesforce", [], position=None, related=related, run_id="r0")


@pytest.fixture(scope="module")
def files() -> tuple[FieldMap, LeadDefinition]:
    field_map = load_mapping(EXAMPLES / "mapping.toml")
    return field_map, load_definition(
        EXAMPLES / "lead_definition.toml", fields=field_map.canonical_types()
    )


def report_of(
    store: Store, files: tuple[FieldMap, LeadDefinition], spend: dict[str, float] | None = None
) -> dict[str, Any]:
    field_map, definition = files
    return build_report(store, field_map, definition, monitor=None, now=NOW, spend=spend)


def test_lead_to_opportunity_conversion_by_period_of_entry_and_by_source(
    store: Store, files: tuple[FieldMap, LeadDefinition]
) -> None:
    revenue = report_of(store, files)["revenue"]
    assert revenue["opportunities"] == 3
    # January: L1, L2, L5 entered, L1 and L2 became opportunities; February: L3 of L3, L4.
    assert revenue["conversion"]["by_period"] == [
        {"key": "2026-01", "leads": 3, "opportunities": 2, "rate": 0.6667},
        {"key": "2026-02", "leads": 2, "opportunities": 1, "rate": 0.5},
    ]
    assert revenue["conversion"]["by_source"] == [
        {"key": "(none)", "leads": 1, "opportunities": 0, "rate": 0.0},
        {"key": "Partner Referral", "leads": 1, "opportunities": 1, "rate": 1.0},
        {"key": "Web", "leads": 3, "opportunities": 2, "rate": 0.6667},
    ]


def test_win_rate_and_average_won_amount_by_score_band_and_grade(
    store: Store, files: tuple[FieldMap, LeadDefinition]
) -> None:
    outcomes = report_of(store, files)["revenue"]["outcomes"]
    bands = {row["band"]: row for row in outcomes["by_band"]}
    # 80-100: L1 (won 30,000) and L3 (won 50,000); 60-79: L2, lost; the rest never closed.
    assert bands["80-100"] == {
        "band": "80-100", "closed": 2, "won": 2, "win_rate": 1.0, "average_won_amount": 40_000.0
    }  # fmt: skip
    assert bands["60-79"] == {
        "band": "60-79", "closed": 1, "won": 0, "win_rate": 0.0, "average_won_amount": None
    }  # fmt: skip
    assert bands["20-39"]["closed"] == 0
    assert bands["20-39"]["win_rate"] is None
    grades = {row["grade"]: row for row in outcomes["by_grade"]}
    assert (grades["A"]["won"], grades["A"]["average_won_amount"]) == (2, 40_000.0)
    assert (grades["B"]["closed"], grades["B"]["win_rate"]) == (1, 0.0)


def test_pipeline_velocity_per_period_of_opportunity_creation(
    store: Store, files: tuple[FieldMap, LeadDefinition]
) -> None:
    velocity = report_of(store, files)["revenue"]["velocity"]
    # January: 2 opportunities, 1 won (30,000 after 20 days): 2 x 0.5 x 30,000 / 20 = 1,500.
    # February: 1, won (50,000 after 30 days): 1 x 1 x 50,000 / 30 = 1,666.67.
    assert velocity == [
        {"period": "2026-01", "opportunities": 2, "win_rate": 0.5,
         "average_won_amount": 30_000.0, "cycle_days": 20.0, "velocity_per_day": 1500.0},
        {"period": "2026-02", "opportunities": 1, "win_rate": 1.0,
         "average_won_amount": 50_000.0, "cycle_days": 30.0, "velocity_per_day": 1666.67},
    ]  # fmt: skip


def test_time_from_mql_to_opportunity_and_to_won(
    store: Store, files: tuple[FieldMap, LeadDefinition]
) -> None:
    times = report_of(store, files)["revenue"]["time_to"]
    # L1, L2, L3 each took 10 days to an opportunity; L1 30 and L3 40 days to won.
    assert times["opportunity"] == {"leads": 3, "median_days": 10.0, "p90_days": 10.0}
    assert times["won"] == {"leads": 2, "median_days": 35.0, "p90_days": 39.0}


def test_cac_needs_spend_data_leadsync_does_not_have(
    store: Store, files: tuple[FieldMap, LeadDefinition]
) -> None:
    without = report_of(store, files)
    assert without["revenue"]["cac"] == {"spend_known": False, "note": NO_SPEND, "periods": []}
    assert "no marketing spend data" in format_table(without)
    assert "no marketing spend data" in render_html(without)
    spend = {"2026-01": 5_000.0, "2026-02": 12_000.0, "2026-03": 9_000.0}
    cac = report_of(store, files, spend)["revenue"]["cac"]
    # New customers by close date: L1 in February, L3 in March.
    assert cac["periods"] == [
        {"period": "2026-01", "spend": 5_000.0, "new_customers": 0, "cac": None},
        {"period": "2026-02", "spend": 12_000.0, "new_customers": 1, "cac": 12_000.0},
        {"period": "2026-03", "spend": 9_000.0, "new_customers": 1, "cac": 9_000.0},
    ]


def test_report_reads_a_spend_csv_and_refuses_a_bad_one_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "leadsync.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "r.db"}"\n\n[files]\n'
        f'mapping = "{EXAMPLES / "mapping.toml"}"\n'
        f'definition = "{EXAMPLES / "lead_definition.toml"}"\n'
    )
    spend = tmp_path / "spend.csv"
    spend.write_text("period,spend\n2026-01,5000\n2026-02,lots\n")
    assert main(["report", "--config", str(config), "--spend", str(spend)]) == 2
    err = capsys.readouterr().err
    assert f"{spend}:3: spend: not a number" in err
    assert "Traceback" not in err
    spend.write_text("period,spend\n2026-01,5000\n")
    assert main(["report", "--config", str(config), "--spend", str(spend), "--format", "json"]) == 0
    assert '"spend": 5000.0' in capsys.readouterr().out


def test_a_lead_enters_when_its_earliest_crm_record_was_created_not_when_leadsync_saw_it(
    store: Store, files: tuple[FieldMap, LeadDefinition]
) -> None:
    # L4 was first seen (its first stage) on 20 February, by the first sync after install; the
    # CRMs created its records long before: Salesforce on 3 January, HubSpot on 15 December.
    salesforce = {"Email": "l4@example.com", "CreatedDate": "2026-01-03T10:00:00.000+0000"}
    hubspot = {"email": "l4@example.com", "createdate": "2025-12-15T09:30:00.000Z"}
    store.save_page(
        "salesforce",
        [Snapshot("salesforce", "00QL4", day(2, 20), salesforce, {})],
        position=None,
        run_id="r0",
    )
    store.save_page(
        "hubspot", [Snapshot("hubspot", "104", day(2, 20), hubspot, {})], position=None, run_id="r0"
    )
    store.save_decisions(leads=[], links=[("hubspot", "104", "L4", "new")], run_id="r0")
    report = report_of(store, files)
    periods = {row["period"]: row["leads"] for row in report["funnel"]["by_period"]}
    assert periods == {"2025-12": 1, "2026-01": 3, "2026-02": 1}
    by_entry = {row["key"]: row["leads"] for row in report["revenue"]["conversion"]["by_period"]}
    assert by_entry == {"2025-12": 1, "2026-01": 3, "2026-02": 1}
    # A window from 1 January leaves L4 out: it entered before.
    since = report_of_window(store, files, since=day(1, 1))
    assert since["funnel"]["leads"] == 4


def report_of_window(
    store: Store, files: tuple[FieldMap, LeadDefinition], *, since: datetime
) -> dict[str, Any]:
    field_map, definition = files
    return build_report(store, field_map, definition, monitor=None, now=NOW, since=since)


def test_the_funnels_opportunity_stage_and_the_revenue_opportunities_say_what_each_counts(
    store: Store, files: tuple[FieldMap, LeadDefinition]
) -> None:
    # L5 is moved to the opportunity stage (a CRM's lifecycle stage says so) with no
    # opportunity record: the funnel counts it, the revenue section does not.
    move = Transition(Stage.LEAD, Stage.OPPORTUNITY, day(1, 20), "because", "advance")
    store.save_decisions(leads=[], links=[], transitions=[("L5", move)], run_id="r1")
    report = report_of(store, files)
    assert report["funnel"]["reached"]["opportunity"] == 4
    assert report["revenue"]["opportunities"] == 3
    text = format_table(report)
    assert "reached opportunity counts the lifecycle stage" in text
    assert "3 of the leads entered have an opportunity record" in text
    html = render_html(report)
    assert "counts the lifecycle stage" in html
    assert "have an opportunity record" in html


def test_report_refuses_spend_periods_of_another_length_than_period_naming_file_and_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "leadsync.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "r.db"}"\n\n[files]\n'
        f'mapping = "{EXAMPLES / "mapping.toml"}"\n'
        f'definition = "{EXAMPLES / "lead_definition.toml"}"\n'
    )
    spend = tmp_path / "spend.csv"
    spend.write_text("period,spend\n2026-01,5000\n2026-02,6000\n")
    argv = ["report", "--config", str(config), "--spend", str(spend)]
    # Monthly spend under weekly periods would match no week: 0 new customers in each.
    assert main([*argv, "--period", "week"]) == 2
    err = capsys.readouterr().err
    assert f"{spend}:2: period: '2026-01' is a month" in err
    assert "--period week" in err
    assert "Traceback" not in err
    spend.write_text("period,spend\n2026-W05,900\n")
    assert main([*argv, "--period", "month"]) == 2
    assert f"{spend}:2: period: '2026-W05' is a week" in capsys.readouterr().err
    assert main([*argv, "--period", "week", "--format", "json"]) == 0
    assert '"period": "2026-W05"' in capsys.readouterr().out
