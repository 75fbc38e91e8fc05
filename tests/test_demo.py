"""`leadsync demo`, the README's first command: weeks of use replayed against the embedded
sandbox, then today's sync, and a report with something in every section."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadsync.sandbox import Sandbox
from tests.support import follow_next_hint

# One worker runs the module, so the demo (the fixture, ~14 s) runs once, not once per worker.
pytestmark = pytest.mark.xdist_group("demo")


@dataclass(frozen=True)
class Demo:
    out: str
    err: str
    report: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """One run of the demo, shared: it is the slowest thing a test here does."""
    report = tmp_path_factory.mktemp("demo") / "demo-report.html"
    result = subprocess.run(
        [sys.executable, "-m", "leadsync.cli", "demo", "--leads", "120", "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return Demo(result.stdout, result.stderr, report)


def test_demo_syncs_both_crms_then_writes_nothing_the_second_time(demo: Demo) -> None:
    out = demo.out
    assert "First sync" in out
    written = re.search(r"hubspot\s+120\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+(\d+)", out)
    assert written is not None, out
    assert int(written.group(1)) > 0
    assert "Once more, nothing changed in either CRM: 0 records written, 0 handed off." in out
    handed = re.search(r"handoff: (\d+) handed off", out)
    assert handed is not None, out
    assert int(handed.group(1)) > 0
    funnel = dict(re.findall(r"^  (lead|mql|sal|sql|opportunity)\s+(\d+)", out, re.MULTILINE))
    assert set(funnel) == {"lead", "mql", "sal", "sql", "opportunity"}
    assert sum(int(count) for count in funnel.values()) > 0
    assert "Traceback" not in demo.err
    # It ends by pointing at the report it wrote.
    assert out.rstrip().splitlines()[-3].startswith(f"Report: {demo.report.resolve()}")
    assert demo.report.read_text().lstrip().lower().startswith("<!doctype html>")


def test_demo_replays_weeks_of_use_before_today(demo: Demo) -> None:
    replayed = re.findall(r"^  \w{3} (\d{4}-\d{2}-\d{2}) \d{2}:\d{2} UTC  ", demo.out, re.MULTILINE)
    assert len(replayed) >= 5
    assert len({datetime.fromisoformat(day).isocalendar().week for day in replayed}) == 3
    assert re.search(r"^  today\s+\d+ MQLs accepted late", demo.out, re.MULTILINE)


def _tables(page: str) -> dict[str, list[list[str]]]:
    """Each table of the report under its heading: its rows of cell texts, header first."""
    found = {}
    for title, body in re.findall(r"<h3[^>]*>(.*?)</h3>(.*?)(?=<h[23][^>]*>|$)", page, re.S):
        table = re.search(r"<table>(.*?)</table>", body, re.S)
        if table is None:
            continue
        rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
        found[html.unescape(title)] = [
            [html.unescape(cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in rows
        ]
    return found


def _funnel(page: str) -> list[list[str]]:
    # The funnel's own table comes before its first sub-heading.
    body = page[page.index(">Funnel<") : page.index(">By month of entry<")]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S) for row in rows]


def _column(rows: list[list[str]], name: str) -> list[str]:
    index = rows[0].index(name)
    return [row[index] for row in rows[1:]]


def _records(rows: list[list[str]]) -> list[dict[str, str]]:
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_the_demo_report_has_content_in_every_section(demo: Demo) -> None:
    page = demo.report.read_text()
    tables = _tables(page)
    # Time in stage: leads stayed in stages for hours and days, not "–" everywhere.
    stays = [
        stay for stay in _column(_funnel(page), "median stay") if re.match(r"[\d.]+ [hd]", stay)
    ]
    assert len(stays) >= 4, _funnel(page)
    # SLA per rule: MQLs accepted in time and late, accepted leads worked in time.
    per_rule = {row["rule"]: row for row in _records(tables["Per rule"])}
    acceptance, response = per_rule["mql_acceptance"], per_rule["sal_response"]
    assert int(acceptance["met"]) > 0
    assert int(acceptance["late"]) + int(acceptance["breached"]) > 0
    assert int(response["met"]) > 0
    # The handoff: sales' delay measured, and who responded in time.
    assert "–" not in tables["Speed to lead, split"][2][1:]
    assert any(int(row[2]) > 0 for row in tables["Per owner"][1:] if row[2].isdigit())
    # Won and lost deals, and leads followed from MQL to a won deal.
    assert any(int(row[2]) > 0 for row in tables["Won and lost, by grade"][1:])
    won = next(row for row in tables["From MQL to"][1:] if row[0] == "won")
    assert int(won[1]) > 0
    for title in ("Volume against plan", "Human delay per owner (working hours)", "By score band"):
        assert len(tables[title]) > 1, title


def test_the_demo_report_judges_no_volume_period_before_the_first_run(demo: Demo) -> None:
    first = re.search(r"First sync, \w+ (\d{4}-\d{2}-\d{2})", demo.out)
    assert first is not None, demo.out
    # The replay's first sync is on that Monday, 15:00 UTC.
    first_run = datetime.fromisoformat(first.group(1)).replace(hour=15, tzinfo=UTC)
    periods = _tables(demo.report.read_text())["Volume against plan"]
    rows = _records(periods)
    assert rows
    for row in rows:
        start = datetime.strptime(row["from"], "%Y-%m-%d %H:%M UTC").replace(tzinfo=UTC)
        end = datetime.strptime(row["to"], "%Y-%m-%d %H:%M UTC").replace(tzinfo=UTC)
        assert end > first_run, f"a period before the first run is listed: {row}"
        if start < first_run:  # leadsync began during it: counted, never judged
            assert row["status"] == "partial", row
    assert any(row["status"] == "partial" for row in rows)
    assert any(row["status"] in ("met", "missed") for row in rows)


def test_the_demos_next_commands_run_in_their_order_against_a_new_sandbox(
    demo: Demo, sandbox: Sandbox, tmp_path: Path
) -> None:
    # A new sandbox, like the one `leadsync sandbox --config-out` starts: none of the HubSpot
    # properties leadsync writes, so `plan` refuses to run until `setup` has been.
    outcomes = follow_next_hint(demo.out, tmp_path, sandbox)
    assert [command for command, _ in outcomes][:3] == [
        "leadsync init revops",
        "leadsync sandbox --config-out revops/config.toml",
        "leadsync setup",
    ]
    assert all(code == 0 for _, code in outcomes), outcomes
