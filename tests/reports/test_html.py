"""The HTML report: one self-contained page, every CRM value escaped, its four charts drawn.

The reports come from the real `build_report` over a small SQLite store filled here: fifteen
leads over two months, three per score band, SLA clocks met, late and breached, two runs, and
the handoffs of the ten that became MQLs (half of them worked in time) and one blocked.
"""

from __future__ import annotations

import copy
import html
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import leadsync
from leadsync.mapping.definition import LeadDefinition, load_definition
from leadsync.mapping.fields import FieldMap, load_mapping
from leadsync.mapping.lifecycle import FORWARD, Stage, Transition, TransitionKind
from leadsync.reports.build import build_report
from leadsync.reports.html import (
    FUNNEL_COLOUR,
    NO_RESPONSE_COLOUR,
    OPPORTUNITY_COLOUR,
    SLA_COLOURS,
    SQL_COLOUR,
    THRESHOLD_COLOUR,
    render_html,
)
from leadsync.reports.text import format_table
from leadsync.sync.handoff_ledger import BLOCKED, CREATED, Handoff
from leadsync.sync.model import Lead
from leadsync.sync.quarantine_ledger import Quarantined
from leadsync.sync.sla.clocks import Clock, ClockChanges, ClockStop, Outcome
from leadsync.sync.sla.monitor import monitor_for
from leadsync.sync.store import Store
from tests.support import chromium, pixels_near

EXAMPLES = Path(leadsync.__file__).parent / "examples"
START = datetime(2026, 4, 6, 14, tzinfo=UTC)  # a Monday, in working hours in New York
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
SCRIPT_SEGMENT = "<script>alert(1)</script>"
BOLD_EMAIL = "<b>bold</b>@example.com"
ODD_OWNER = "<i>owner</i> & co"
ODD_REASON = "<u>odd</u>"
ODD_NAME = "Bea <em>Example</em>"
BANDS = 5
STAGES = len(FORWARD)


# ------------------------------------------------------------------------------ the store


@pytest.fixture(scope="module")
def shipped() -> tuple[FieldMap, LeadDefinition]:
    field_map = load_mapping(EXAMPLES / "mapping.toml")
    definition = load_definition(
        EXAMPLES / "lead_definition.toml", fields=field_map.canonical_types()
    )
    return field_map, definition


def _report(store: Store, shipped: tuple[FieldMap, LeadDefinition], *, sla: bool) -> Any:
    field_map, definition = shipped
    monitor = monitor_for(store, definition) if sla else None
    return build_report(store, field_map, definition, monitor=monitor, now=NOW)


def _leads() -> list[tuple[Lead, list[Transition]]]:
    """Per score band: a customer, an SQL and a plain lead, entering three days apart."""
    made = []
    for index in range(BANDS * 3):
        band, place = divmod(index, 3)
        furthest = (Stage.CUSTOMER, Stage.SQL, Stage.LEAD)[place]
        segment = ("paid_search", SCRIPT_SEGMENT, "organic_search")[place]
        email = BOLD_EMAIL if index == 0 else f"lead{index}@example.com"
        lead = Lead(
            f"L{index:02}",
            {"email": email, "lead_source": segment},
            score=20 * band + 5,
            grade="DDCBA"[band],
            stage=furthest.value,
        )
        entered, previous, moves = START + timedelta(days=3 * index), None, []
        for step, stage in enumerate(FORWARD[: FORWARD.index(furthest) + 1]):
            kind: TransitionKind = "enter" if previous is None else "advance"
            moves.append(Transition(previous, stage, entered + step * HOUR, "test", kind))
            previous = stage
        made.append((lead, moves))
    return made


def _clocks(leads: list[tuple[Lead, list[Transition]]]) -> tuple[list[Clock], list[ClockStop]]:
    """mql_acceptance met (late for every other lead); sal_response met, but still open and
    long overdue for the first lead."""
    clocks, stops = [], []
    for number, (lead, moves) in enumerate(leads):
        at = {move.to_stage: move.at for move in moves}
        for rule, start, stop, within in (
            ("mql_acceptance", Stage.MQL, Stage.SAL, 8),
            ("sal_response", Stage.SAL, Stage.SQL, 16),
        ):
            if start not in at:
                continue
            owner = ODD_OWNER if number % 2 else "005A"
            clock = Clock(
                f"{rule}-{lead.lead_id}",
                rule,
                lead.lead_id,
                at[start],
                at[start] + within * HOUR,
                "America/New_York",
                owner=owner,
            )
            clocks.append(clock)
            if rule == "sal_response" and number == 0:
                continue
            late = rule == "mql_acceptance" and number % 6 == 3
            stopped = clock.due_at + HOUR if late else at[stop]
            stops.append(ClockStop(clock.clock_id, stopped, Outcome.MET, "test"))
    return clocks, stops


def _handoffs(leads: list[tuple[Lead, list[Transition]]]) -> list[Handoff]:
    """Each MQL handed off an hour after it became one, to 005A or 005B in turn; every third
    worked an hour after its handoff, the others never. One lead blocked."""
    handoffs = []
    for number, (lead, moves) in enumerate(leads):
        mql = next((move.at for move in moves if move.to_stage is Stage.MQL), None)
        if mql is None:
            continue
        handoffs.append(
            Handoff(
                lead.lead_id,
                "salesforce",
                CREATED,
                mql,
                "r",
                record_id=f"00Q{number:03}",
                owner="005B" if number % 2 else "005A",
                handed_off_at=mql + HOUR,
                responded_at=mql + 2 * HOUR if number % 3 == 0 else None,
            )
        )
    handoffs.append(Handoff("L02", "salesforce", BLOCKED, START, "r", problem="requires company"))
    return handoffs


def _runs(store: Store) -> None:
    good = store.run_log.start("sync", started_at=NOW - 48 * HOUR)
    summary = {
        "crms": {
            "hubspot": {"pulled": 40, "written": 30},
            "salesforce": {"pulled": 12, "written": 9},
        },
        "api_quota": {"hubspot": {"daily_limit": 1000, "daily_used": 250, "daily_remaining": 750}},
    }
    store.run_log.finish(good, status="succeeded", summary=summary, finished_at=NOW - 47 * HOUR)
    failed = store.run_log.start("sync", started_at=NOW - 24 * HOUR)
    store.run_log.finish(failed, status="failed", summary={}, finished_at=NOW - 23 * HOUR)
    odd = Quarantined("hubspot", "q1", f"{ODD_REASON}: unreadable", {}, good, NOW - 48 * HOUR)
    store.save_page("hubspot", [], quarantined=[odd], position=None, run_id=good)


@pytest.fixture(scope="module")
def report(
    tmp_path_factory: pytest.TempPathFactory, shipped: tuple[FieldMap, LeadDefinition]
) -> Any:
    path = tmp_path_factory.mktemp("store") / "report.db"
    with Store(f"sqlite:///{path}") as store:
        leads = _leads()
        clocks, stops = _clocks(leads)
        store.save_leads([lead for lead, _ in leads])
        store.transitions.add(
            [(lead.lead_id, move) for lead, moves in leads for move in moves], run_id="r"
        )
        store.save_decisions(clocks=[ClockChanges(opened=tuple(clocks))], run_id="r")
        store.save_decisions(clocks=[ClockChanges(stopped=tuple(stops))], run_id="r")
        _runs(store)
        store.handoffs.save(_handoffs(leads))
        store.handoffs.save_names("salesforce", {"005B": ODD_NAME}, at=NOW)
        return _report(store, shipped, sla=True)


@pytest.fixture
def empty_store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'empty.db'}") as store:
        yield store


def _chart(page: str, chart_id: str) -> str:
    found = re.search(rf'<svg id="{chart_id}".*?</svg>', page, re.DOTALL)
    assert found, f"no chart {chart_id}"
    return found.group(0)


def _bars(svg: str, colour: str) -> int:
    return len(re.findall(rf'<rect class="bar"[^>]*fill="{colour}"', svg))


# ------------------------------------------------------------------------------ the page


def test_the_page_is_self_contained(report: Any) -> None:
    page = render_html(report).lower()
    assert page.startswith("<!doctype html>")
    for outside in ("http://", "https://", "src=", "href=", "<script", "<link", "url(", "@import"):
        assert outside not in page, outside
    assert "<style>" in page
    assert page.count("<svg") == 4


def test_values_from_the_crms_are_escaped(report: Any) -> None:
    page = render_html(report)
    assert report["sla"]["open_breaches"][0]["email"] == BOLD_EMAIL
    for value in (SCRIPT_SEGMENT, BOLD_EMAIL, ODD_OWNER, ODD_REASON, ODD_NAME):
        assert value not in page
        assert html.escape(value) in page
    assert "<b>" not in page
    assert "<script" not in page


def test_the_three_charts_have_a_bar_per_stage_band_and_rule(report: Any) -> None:
    page = render_html(report)
    funnel = _chart(page, "funnel-chart")
    assert "<title" in funnel
    assert funnel.count('class="stage"') == STAGES
    assert _bars(funnel, FUNNEL_COLOUR) == STAGES
    reached, first = report["funnel"]["reached"], report["funnel"]["conversion"][0]
    assert f"{reached['mql']} · {first['rate']:.1%} from lead" in funnel

    calibration = _chart(page, "calibration-chart")
    assert calibration.count('class="group"') == BANDS
    assert _bars(calibration, SQL_COLOUR) == BANDS
    assert _bars(calibration, OPPORTUNITY_COLOUR) == BANDS
    assert report["calibration"]["mql_threshold"] == 60
    assert f'stroke="{THRESHOLD_COLOUR}"' in calibration

    sla = _chart(page, "sla-chart")
    periods = {row["period"] for row in report["sla"]["over_time"]}
    assert periods == {"2026-04", "2026-05"}
    assert sla.count('class="group"') == len(periods)
    assert _bars(sla, SLA_COLOURS[0]) == _bars(sla, SLA_COLOURS[1]) == len(periods)
    for period in periods:
        assert f">{period}</text>" in sla


def test_the_handoff_shows_the_split_delays_and_no_response_per_owner_and_period(
    report: Any,
) -> None:
    page = render_html(report)
    section = re.search(r'<section id="handoff">.*?</section>', page, re.DOTALL)
    assert section, "no handoff section"
    handoff = section.group(0)
    speed, silent = report["speed_to_lead"], report["no_response"]
    assert speed["handed_off"] == silent["handed_off"] == 10
    assert speed["system_delay_hours"] == {"median": 1.0, "p90": 1.0}
    assert "<td>system delay (stage reached → handed off)</td>" in handoff
    assert '<td class="num">1.0 h</td>' in handoff
    human = speed["human_delay_working_hours"]["median"]
    assert human is not None
    assert f'<td class="num">{human:.1f} h working</td>' in handoff
    assert "<td>requires company</td>" in handoff

    # Leads 0, 3, 6, 9 and 12 were worked an hour after their handoff, in time; as of NOW
    # the other five are long past due.
    assert (silent["responded"], silent["no_response"], silent["waiting"]) == (5, 5, 0)
    assert f"{silent['share']:.1%} of 10 due" in handoff
    names = [row["name"] or row["owner"] for row in silent["by_owner"]]
    assert names == ["005A", ODD_NAME]
    assert f"<td>{html.escape(ODD_NAME)}</td>" in handoff
    chart = _chart(page, "no-response-chart")
    periods = [row for row in silent["by_period"] if row["share"] is not None]
    assert [row["period"] for row in periods] == ["2026-04", "2026-05"]
    assert chart.count('class="group"') == _bars(chart, NO_RESPONSE_COLOUR) == len(periods)
    for row in periods:
        assert f"{row['period']}: {row['share']:.1%} of" in chart


def test_the_tables_show_shares_and_blanks_like_the_text_report(report: Any) -> None:
    page = render_html(report)
    rule = report["sla"]["rules"][0]
    assert f"{rule['compliance']:.1%}" in page
    assert "<th>lead_source</th>" in page  # the segment field names its table
    assert "Last good sync: 2026-05-30 13:00 UTC." in page
    assert "25.0%" in page  # the HubSpot quota used
    assert f"<h3>Open breaches ({len(report['sla']['open_breaches'])})</h3>" in page


def test_open_breaches_past_the_first_hundred_are_counted_not_listed(report: Any) -> None:
    many = copy.deepcopy(report)
    (breach,) = many["sla"]["open_breaches"]
    many["sla"]["open_breaches"] = [breach] * 130
    page = render_html(many)
    assert page.count(html.escape(BOLD_EMAIL)) == 100
    assert "… and 30 more" in page


@pytest.mark.parametrize("sla", [True, False], ids=["sla rules", "no sla"])
def test_an_empty_report_renders(
    empty_store: Store, shipped: tuple[FieldMap, LeadDefinition], sla: bool
) -> None:
    report = _report(empty_store, shipped, sla=sla)
    page = render_html(report)
    assert "No SLA clocks in this window." in page
    assert 'id="sla-chart"' not in page
    funnel = _chart(page, "funnel-chart")
    assert funnel.count('class="stage"') == STAGES
    assert "0 · – from lead" in funnel
    assert _chart(page, "calibration-chart").count('class="group"') == BANDS
    for none in ("No leads entered in the window.", "No runs in this window.", "No errors."):
        assert none in page
    assert "Last good sync: –." in page
    assert 'id="no-response-chart"' not in page
    if sla:
        assert "No leads handed off in this window." in page
    else:
        assert 'id="handoff"' not in page


def test_without_an_mql_threshold_there_is_no_marker(report: Any) -> None:
    unset = copy.deepcopy(report)
    unset["calibration"].update(mql_threshold=None, threshold=None)
    page = render_html(unset)
    assert 'id="mql-threshold"' not in page
    assert THRESHOLD_COLOUR not in page
    assert "no MQL score threshold" in page


# ------------------------------------------------------------------------------ the screenshot


def _screenshot(page: Path, png: Path, profile: Path) -> Image.Image:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        "--window-size=1280,4000",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert png.exists(), f"Chromium wrote no screenshot ({done.returncode}): {done.stderr[-2000:]}"
    return Image.open(png).convert("RGB")


@pytest.mark.slow
def test_chromium_draws_every_chart_in_its_colours(report: Any, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    image = _screenshot(page, tmp_path / "report.png", tmp_path / "profile")
    assert image.size == (1280, 4000)
    colours = image.getcolors(maxcolors=1 << 24)
    assert colours is not None
    white = pixels_near(colours, "#ffffff")
    assert white < 0.97 * 1280 * 4000, "the page is blank"
    # A legend swatch alone is 144 pixels: the bars and the marker line are far more.
    least = {
        FUNNEL_COLOUR: 5000,
        SLA_COLOURS[0]: 2000,
        SLA_COLOURS[1]: 2000,
        SQL_COLOUR: 2000,
        OPPORTUNITY_COLOUR: 1000,
        THRESHOLD_COLOUR: 400,
        NO_RESPONSE_COLOUR: 1000,
    }
    counted = {colour: pixels_near(colours, colour) for colour in least}
    missing = {colour: n for colour, n in counted.items() if n < least[colour]}
    assert not missing, f"chart colours drawn too little: {missing} of {counted}"


def test_speed_to_lead_per_owner_rows_name_the_owner_the_store_knows(report: Any) -> None:
    rows = {row["owner"]: row for row in report["speed_to_lead"]["by_owner"]}
    assert (rows["005B"]["name"], rows["005A"]["name"]) == (ODD_NAME, None)
    page = render_html(report)
    table = re.search(r"Human delay per owner.*?</table>", page, re.DOTALL)
    assert table, "no per-owner table"
    assert f"<td>{html.escape(ODD_NAME)}</td>" in table.group(0)
    assert "005B" not in table.group(0)
    text = format_table(report)
    speed = text[text.index("SPEED TO LEAD") : text.index("NO RESPONSE AFTER HANDOFF")]
    assert ODD_NAME in speed
    assert "005B" not in speed
