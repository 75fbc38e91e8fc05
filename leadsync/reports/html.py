"""The report as one self-contained HTML5 page (`leadsync report --format html`).

Inline CSS and inline SVG charts drawn here: the file opens offline, with nothing to fetch.
Every value from the report is escaped: emails, owners, segments and reasons come from CRMs.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadsync.reports.text import STAGE_NOTE

__all__ = [
    "FUNNEL_COLOUR",
    "NO_RESPONSE_COLOUR",
    "OPPORTUNITY_COLOUR",
    "REPORT_CSS",
    "SLA_COLOURS",
    "SQL_COLOUR",
    "THRESHOLD_COLOUR",
    "render_body",
    "render_html",
]

# Solid, saturated chart colours, none of them a grey of the text, tables or background: a
# screenshot test finds each chart by counting its pixels.
FUNNEL_COLOUR = "#2563eb"
SLA_COLOURS: tuple[str, ...] = ("#0d9488", "#ea580c", "#db2777", "#ca8a04", "#65a30d", "#7c2d12")
SQL_COLOUR = "#16a34a"
OPPORTUNITY_COLOUR = "#9333ea"
THRESHOLD_COLOUR = "#dc2626"
NO_RESPONSE_COLOUR = "#b45309"
GRID_COLOUR = "#e5e7eb"
AXIS_COLOUR = "#6b7280"

NONE = "–"
EXIT_STAGES = ("recycled", "disqualified")
_NUM = ' class="num"'
BREACHES_SHOWN = 100
CHART_WIDTH = 760
MAX_BAR_WIDTH = 56

REPORT_CSS = """
body { margin: 0; background: #ffffff; color: #1f2937;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 32px 48px; }
header { border-bottom: 2px solid #d1d5db; padding-bottom: 12px; }
h1 { font-size: 24px; margin: 0 0 8px; }
h2 { font-size: 19px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #e5e7eb; }
h3 { font-size: 15px; margin: 22px 0 6px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.meta dt { color: #6b7280; }
dl.meta dd { margin: 0; }
p.lede { margin: 4px 0 8px; }
p.none { color: #6b7280; font-style: italic; }
table { border-collapse: collapse; margin: 4px 0 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e5e7eb; text-align: left; }
td { white-space: nowrap; }
th { background: #f3f4f6; font-weight: 600; vertical-align: bottom; }
div.table { overflow-x: auto; }
div.blocks { display: flex; flex-wrap: wrap; gap: 0 48px; }
th.num, td.num { text-align: right; }
tbody tr:nth-child(even) { background: #f9fafb; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 8px 0 16px; }
svg.chart text { font-size: 12px; fill: #374151; }
svg.chart text.tick { font-size: 11px; fill: #6b7280; }
svg.chart text.value { font-size: 11px; }
"""


# ------------------------------------------------------------------------------ formatting


def _e(value: Any) -> str:
    return html.escape(str(value))


def _pct(value: float | None) -> str:
    return NONE if value is None else f"{value:.1%}"


def _count(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,g}"
    return str(value)


def _hours(value: float | None) -> str:
    if value is None:
        return NONE
    return f"{value / 24:.1f} d" if value >= 48 else f"{value:.1f} h"


def _when(value: str | None) -> str:
    """`2026-12-01 11:02 UTC` from an ISO timestamp (as given when it is not one)."""
    if not value:
        return NONE
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.isoformat(sep=" ", timespec="minutes").replace("+00:00", " UTC")


# ------------------------------------------------------------------------------ HTML pieces


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, labels: int = 1, none: str = ""
) -> str:
    """The first `labels` columns are text, the others numbers (right-aligned); with no rows,
    the `none` sentence instead."""
    if not rows and none:
        return _none(none)

    def cells(tag: str, values: Sequence[Any]) -> str:
        return "".join(
            f"<{tag}{_NUM if index >= labels else ''}>{_e(value)}</{tag}>"
            for index, value in enumerate(values)
        )

    head = f"<thead><tr>{cells('th', headers)}</tr></thead>"
    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f'<div class="table"><table>{head}<tbody>{body}</tbody></table></div>'


def _none(text: str) -> str:
    return f'<p class="none">{_e(text)}</p>'


def _h3(text: str) -> str:
    return f"<h3>{_e(text)}</h3>"


def _h3_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], none: str, labels: int = 1
) -> str:
    return f"<div>{_h3(title)}{_table(headers, rows, labels=labels, none=none)}</div>"


def _section(section_id: str, title: str, parts: Iterable[str]) -> str:
    return f'<section id="{section_id}"><h2>{_e(title)}</h2>{"".join(parts)}</section>'


# ------------------------------------------------------------------------------ SVG pieces


@dataclass(frozen=True, slots=True)
class _Plot:
    """The plotting area of a chart, in SVG pixels; shares (0..1) run up the y axis."""

    left: float
    top: float
    width: float
    height: float

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @property
    def right(self) -> float:
        return self.left + self.width

    def y(self, share: float) -> float:
        return self.bottom - self.height * min(max(share, 0.0), 1.0)


@dataclass(frozen=True, slots=True)
class _Bar:
    share: float | None
    colour: str
    tip: str


def _svg(chart_id: str, title: str, height: float, body: Iterable[str]) -> str:
    return (
        f'<svg id="{chart_id}" class="chart" role="img" aria-labelledby="{chart_id}-title"'
        f' width="{CHART_WIDTH}" height="{height:.0f}" viewBox="0 0 {CHART_WIDTH} {height:.0f}">'
        f'<title id="{chart_id}-title">{_e(title)}</title>{"".join(body)}</svg>'
    )


def _rect(
    x: float, y: float, width: float, height: float, fill: str, tip: str = "", css: str = "bar"
) -> str:
    tooltip = f"<title>{_e(tip)}</title>" if tip else ""
    return (
        f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{max(width, 0):.1f}"'
        f' height="{max(height, 0):.1f}" fill="{fill}">{tooltip}</rect>'
    )


def _text(x: float, y: float, content: Any, *, anchor: str = "start", css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{klass}>{_e(content)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, width: float = 1) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"'
        f' stroke="{colour}" stroke-width="{width:g}"/>'
    )


def _legend(left: float, items: Sequence[tuple[str, str]]) -> tuple[list[str], float]:
    """Swatches and names in rows from the top; returns them and where the rows end."""
    out, x, y = [], left, 18.0
    for name, colour in items:
        width = 17 + 7 * len(name) + 24  # about 7 px a character
        if x > left and x + width > CHART_WIDTH:
            x, y = left, y + 18
        out += [_rect(x, y - 10, 12, 12, colour, css="swatch"), _text(x + 17, y, name)]
        x += width
    return out, y


def _percent_axis(plot: _Plot, label: str) -> list[str]:
    out = []
    for tick in (0, 25, 50, 75, 100):
        y = plot.y(tick / 100)
        out.append(_line(plot.left, y, plot.right, y, GRID_COLOUR))
        out.append(_text(plot.left - 6, y + 4, f"{tick}%", anchor="end", css="tick"))
    middle = plot.top + plot.height / 2
    out.append(
        f'<text x="14" y="{middle:.1f}" text-anchor="middle" class="tick"'
        f' transform="rotate(-90 14 {middle:.1f})">{_e(label)}</text>'
    )
    return out


def _columns(plot: _Plot, groups: Sequence[Sequence[_Bar]]) -> list[str]:
    """Groups of vertical bars side by side, one group per category, each in a `<g>`."""
    slot = plot.width / max(len(groups), 1)
    out = []
    for index, bars in enumerate(groups):
        width = min(slot * 0.8 / max(len(bars), 1), MAX_BAR_WIDTH)
        start = plot.left + (index + 0.5) * slot - width * len(bars) / 2
        parts = []
        for position, bar in enumerate(bars):
            if bar.share is None:
                continue
            x = start + position * width
            top = plot.y(bar.share)
            parts.append(_rect(x + 1, top, width - 2, plot.bottom - top, bar.colour, bar.tip))
            if width >= 40:  # room for the value above the bar
                parts.append(_text(x + width / 2, top - 4, _pct(bar.share), anchor="middle"))
        out.append(f'<g class="group">{"".join(parts)}</g>')
    out.append(_line(plot.left, plot.bottom, plot.right, plot.bottom, AXIS_COLOUR))
    return out


def _category_labels(plot: _Plot, labels: Sequence[str], *, row: int = 0) -> list[str]:
    slot = plot.width / max(len(labels), 1)
    step = max(1, math.ceil(len(labels) * 70 / plot.width))  # a label needs about 70 px
    y, css = plot.bottom + 16 + 14 * row, "tick" if row else ""
    return [
        _text(plot.left + (index + 0.5) * slot, y, label, anchor="middle", css=css)
        for index, label in enumerate(labels)
        if index % step == 0
    ]


# ------------------------------------------------------------------------------ funnel


def _funnel_chart(funnel: Mapping[str, Any]) -> str:
    reached: Mapping[str, int] = funnel["reached"]
    rates = {step["to"]: step["rate"] for step in funnel["conversion"]}
    most = max(reached.values(), default=0)
    label_width, bar_room, row = 110.0, 420.0, 34
    body = [_line(label_width, 4, label_width, 8 + row * len(reached), AXIS_COLOUR)]
    previous: str | None = None
    for index, (stage, count) in enumerate(reached.items()):
        y = 8 + index * row
        width = 0 if most == 0 else bar_room * count / most
        note = _count(count)
        if previous is not None:
            note += f" · {_pct(rates.get(stage))} from {previous}"
        tip = f"{stage}: {note}"
        body.append(
            '<g class="stage">'
            + _text(label_width - 10, y + 17, stage, anchor="end")
            + _rect(label_width, y + 2, width, 22, FUNNEL_COLOUR, tip)
            + _text(label_width + width + 8, y + 17, note, css="value")
            + "</g>"
        )
        previous = stage
    title = "Funnel: leads that reached each stage, with the stage-to-stage conversion"
    return _svg("funnel-chart", title, 16 + row * len(reached), body)


def _funnel(funnel: Mapping[str, Any], segment_field: str | None, period: str) -> list[str]:
    conversion = {step["to"]: step for step in funnel["conversion"]}
    times = funnel["time_in_stage"]
    rows = []
    for stage, reached in funnel["reached"].items():
        step, stay = conversion.get(stage), times.get(stage, {})
        rows.append(
            [
                stage,
                _count(reached),
                _count(funnel["current"].get(stage, 0)),
                _pct(step["rate"]) if step else "",
                _pct(step["cumulative"]) if step else "",
                _hours(stay.get("median_hours")),
                _hours(stay.get("p90_hours")),
            ]
        )
    exits = ", ".join(f"{stage} {funnel['current'].get(stage, 0)}" for stage in EXIT_STAGES)
    headers = ["stage", "reached", "now", "from previous", "cumulative", "median stay", "p90 stay"]
    return [
        f'<p class="lede">{_count(funnel["leads"])} leads entered in the window (dated by the'
        " CRMs' creation of each lead's earliest record).</p>",
        _funnel_chart(funnel),
        _table(headers, rows),
        f"<p>Now out of the funnel: {_e(exits)}.</p>",
        f"<p>{_e(STAGE_NOTE[0].upper() + STAGE_NOTE[1:])}.</p>",
        _h3(f"By {period} of entry"),
        _groups(funnel["by_period"], "period", "period"),
        _h3(f"By {segment_field or 'segment'}"),
        _groups(funnel["by_segment"], "segment", segment_field or "segment"),
    ]


def _groups(groups: Sequence[Mapping[str, Any]], key: str, title: str) -> str:
    rows = [
        [
            group[key],
            _count(group["leads"]),
            *(_count(group["reached"][stage]) for stage in ("mql", "sql", "customer")),
            *(_pct(group[rate]) for rate in ("to_mql", "to_sql", "to_customer")),
        ]
        for group in groups
    ]
    headers = [title, "leads", "mql", "sql", "customer", "to mql", "to sql", "to customer"]
    return _table(headers, rows, none="No leads entered in the window.")


# ------------------------------------------------------------------------------ SLA


def _sla_chart(over_time: Sequence[Mapping[str, Any]], rules: Sequence[str], period: str) -> str:
    if not over_time:
        return _none("No SLA clocks in this window.")
    names = list(dict.fromkeys([*rules, *(row["rule"] for row in over_time)]))
    colours = {name: SLA_COLOURS[index % len(SLA_COLOURS)] for index, name in enumerate(names)}
    periods = sorted({row["period"] for row in over_time})
    found = {(row["period"], row["rule"]): row for row in over_time}
    groups = []
    for key in periods:
        bars = []
        for name in names:
            row = found.get((key, name))
            share = None if row is None else row["compliance"]
            decided = 0 if row is None else row["decided"]
            tip = f"{key}, {name}: {_pct(share)} of {decided} decided"
            bars.append(_Bar(share, colours[name], tip))
        groups.append(bars)
    legend, below = _legend(56, list(colours.items()))
    plot = _Plot(left=56, top=below + 26, width=CHART_WIDTH - 72, height=200)
    body = [
        *legend,
        *_percent_axis(plot, "compliance"),
        *_columns(plot, groups),
        *_category_labels(plot, periods),
        *_category_labels(plot, [f"clocks started per {period}"], row=1),
    ]
    title = f"SLA compliance per {period}, one bar per rule"
    return _svg("sla-chart", title, plot.bottom + 44, body)


def _compliance_row(labels: Sequence[Any], row: Mapping[str, Any]) -> list[Any]:
    counts = ("decided", "met", "resolved_late", "breached_open", "running")
    return [*labels, *(_count(row[key]) for key in counts), _pct(row["compliance"])]


def _sla(sla: Mapping[str, Any], period: str) -> list[str]:
    compliance = ["decided", "met", "late", "breached", "running", "compliance"]
    rules = [
        _compliance_row(
            [rule["rule"], f"{rule['within_hours']:g} h", _count(rule["started"])], rule
        )
        for rule in sla["rules"]
    ]
    owners = [_compliance_row([row["rule"], _owner(row)], row) for row in sla["by_owner"]]
    return [
        _sla_chart(sla["over_time"], [rule["rule"] for rule in sla["rules"]], period),
        _h3("Per rule"),
        _table(["rule", "within", "started", *compliance], rules, none="No SLA rules defined."),
        _h3("Per owner"),
        _table(
            ["rule", "owner", *compliance], owners, labels=2, none="No SLA clocks in this window."
        ),
        _h3(f"Open breaches ({len(sla['open_breaches']):,})"),
        _breaches(sla["open_breaches"]),
        _h3("Volume against plan"),
        _volume(sla["volume"]),
    ]


def _owner(row: Mapping[str, Any]) -> str:
    """An owner by name where the report knows it, else by id."""
    return str(row.get("name") or row.get("owner") or NONE)


def _breaches(breaches: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            breach["rule"],
            breach["email"] or breach["lead_id"],
            breach["owner_name"] or breach["owner"] or NONE,
            _when(breach["started_at"]),
            _when(breach["due_at"]),
            _count(breach["working_hours_late"]),
        ]
        for breach in breaches[:BREACHES_SHOWN]
    ]
    headers = ["rule", "lead", "owner", "started", "due", "working hours late"]
    more = len(breaches) - BREACHES_SHOWN
    tail = f"<p>… and {more:,} more (the JSON report lists them all).</p>" if more > 0 else ""
    return _table(headers, rows, labels=5, none="No open breaches.") + tail


def _volume(periods: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            period["rule"],
            period["segment"] or "overall",
            _when(period["start"]),
            _when(period["end"]),
            period["status"],
            _count(period["delivered"]),
            _count(period["target"]),
            _count(period["expected_by_now"]),
        ]
        for period in periods
    ]
    headers = ["rule", "segment", "from", "to", "status", "delivered", "target", "pace by now"]
    return _table(headers, rows, labels=5, none="No volume rules.")


# ------------------------------------------------------------------------------ the handoff


def _spread_row(label: str, spread: Mapping[str, Any], unit: str) -> list[Any]:
    return [label, _hours(spread["median"]) + unit, _hours(spread["p90"]) + unit]


def _speed(speed: Mapping[str, Any]) -> list[str]:
    """Speed to lead, split: the system's part (stage reached -> handed off) and sales' part
    (handed off -> accepted, in working hours), overall and per owner, and the leads that
    cannot be handed off."""
    split = [
        _spread_row("system delay (stage reached → handed off)", speed["system_delay_hours"], ""),
        _spread_row(
            "human delay (handed off → accepted)", speed["human_delay_working_hours"], " working"
        ),
    ]
    owners = [
        [
            _owner(row),
            _count(row["handed_off"]),
            _count(row["accepted"]),
            _hours(row["human_delay_working_hours"]["median"]),
            _hours(row["human_delay_working_hours"]["p90"]),
        ]
        for row in speed["by_owner"]
    ]
    blocked = [[row["problem"], _count(row["leads"])] for row in speed["cannot_hand_off"]]
    return [
        f'<p class="lede">{_count(speed["handed_off"])} leads handed off to sales'
        f" ({_count(speed['matched'])} matched to a person sales held already),"
        f" {_count(speed['waiting_for_sales'])} still waiting for sales to accept them.</p>",
        _table(["delay", "median", "90th percentile"], split),
        _h3("Human delay per owner (working hours)"),
        _table(
            ["owner", "handed off", "accepted", "median", "90th percentile"],
            owners,
            none="No leads handed off in this window.",
        ),
        _h3("Cannot be handed off"),
        _table(["problem", "leads"], blocked, none="Every lead that qualified was handed off."),
    ]


def _no_response_chart(by_period: Sequence[Mapping[str, Any]], period: str) -> str:
    decided = [row for row in by_period if row["share"] is not None]
    if not decided:
        return _none("No handed-off lead is past its working hours yet.")
    groups = [
        [
            _Bar(
                row["share"],
                NO_RESPONSE_COLOUR,
                f"{row['period']}: {_pct(row['share'])} of "
                f"{row['no_response'] + row['responded']} due",
            )
        ]
        for row in decided
    ]
    legend, below = _legend(56, [("no response in time", NO_RESPONSE_COLOUR)])
    plot = _Plot(left=56, top=below + 26, width=CHART_WIDTH - 72, height=160)
    body = [
        *legend,
        *_percent_axis(plot, "share of due leads"),
        *_columns(plot, groups),
        *_category_labels(plot, [row["period"] for row in decided]),
        *_category_labels(plot, [f"handed off per {period}"], row=1),
    ]
    title = f"No response after handoff per {period}: share of the leads due a first response"
    return _svg("no-response-chart", title, plot.bottom + 44, body)


def _silence_row(label: str, row: Mapping[str, Any]) -> list[Any]:
    counts = (_count(row[key]) for key in ("handed_off", "responded", "no_response", "waiting"))
    return [label, *counts, _pct(row["share"])]


def _no_response(figures: Mapping[str, Any], period: str) -> list[str]:
    headers = ["handed off", "worked in time", "no response", "waiting", "share"]
    owners = [_silence_row(_owner(row), row) for row in figures["by_owner"]]
    periods = [_silence_row(row["period"], row) for row in figures["by_period"]]
    return [
        f'<p class="lede">Leads nobody worked ({_e(", ".join(figures["fields"]))} changed)'
        f" within {figures['within_working_hours']:g} working hours of the handoff"
        f" ({_e(figures['calendar'])} calendar): {_pct(figures['share'])} of"
        f" {_count(figures['no_response'] + figures['responded'])} due;"
        f" {_count(figures['waiting'])} still within their hours"
        f"{_deleted_by_sales(figures)}.</p>",
        _no_response_chart(figures["by_period"], period),
        _h3("Per owner"),
        _table(["owner", *headers], owners, none="No leads handed off in this window."),
        _h3(f"Per {period} of the handoff"),
        _table([period, *headers], periods, none="No leads handed off in this window."),
    ]


def _deleted_by_sales(figures: Mapping[str, Any]) -> str:
    deleted = figures.get("deleted_by_sales") or 0
    return f"; {_count(deleted)} deleted by sales after the handoff, not counted" if deleted else ""


def _handoff(report: Mapping[str, Any]) -> list[str]:
    parts = []
    if report.get("speed_to_lead"):
        parts += [_h3("Speed to lead, split"), *_speed(report["speed_to_lead"])]
    if report.get("no_response"):
        parts += [
            _h3("No response after handoff"),
            *_no_response(report["no_response"], report["period"]),
        ]
    return parts


# ------------------------------------------------------------------------------ calibration


def _threshold_x(plot: _Plot, bands: Sequence[Mapping[str, Any]], threshold: float) -> float:
    """Where the threshold falls on the band axis: within its band, by its place in the band."""
    slot = plot.width / len(bands)
    for index, band in enumerate(bands):
        low, high = float(band["low"]), float(band["high"]) + 1  # bands are whole scores
        if threshold < high or index == len(bands) - 1:
            share = min(max((threshold - low) / (high - low), 0.0), 1.0)
            return plot.left + (index + share) * slot
    return plot.right  # not reached: the loop returns at the last band


def _calibration_chart(bands: Sequence[Mapping[str, Any]], threshold: float | None) -> str:
    if not bands:
        return _none("No score bands.")
    outcomes = (
        ("sql_rate", SQL_COLOUR, "SQL"),
        ("opportunity_rate", OPPORTUNITY_COLOUR, "opportunity"),
    )
    groups = [
        [
            _Bar(band[key], colour, f"score {band['band']}: {_pct(band[key])} to {name}")
            for key, colour, name in outcomes
        ]
        for band in bands
    ]
    legend = [("reached SQL", SQL_COLOUR), ("reached opportunity", OPPORTUNITY_COLOUR)]
    if threshold is not None:
        legend.append((f"MQL threshold (score {threshold:g})", THRESHOLD_COLOUR))
    swatches, below = _legend(56, legend)
    plot = _Plot(left=56, top=below + 30, width=CHART_WIDTH - 72, height=200)
    body = [
        *swatches,
        *_percent_axis(plot, "share of the band's leads"),
        *_columns(plot, groups),
        *_category_labels(plot, [f"score {band['band']}" for band in bands]),
        *_category_labels(plot, [f"{band['leads']:,} leads" for band in bands], row=1),
    ]
    if threshold is not None:
        x = _threshold_x(plot, bands, threshold)
        body.append(
            f'<g id="mql-threshold">{_line(x, plot.top - 8, x, plot.bottom, THRESHOLD_COLOUR, 3)}'
            f"{_text(x, plot.top - 12, f'MQL ≥ {threshold:g}', anchor='middle')}</g>"
        )
    title = "Score calibration: share of each score band's leads that reached SQL and opportunity"
    return _svg("calibration-chart", title, plot.bottom + 40, body)


def _outcome_row(label: str, row: Mapping[str, Any]) -> list[Any]:
    counts = (_count(row[key]) for key in ("leads", "reached_sql", "reached_opportunity"))
    return [label, *counts, _pct(row["sql_rate"]), _pct(row["opportunity_rate"])]


def _calibration(calibration: Mapping[str, Any]) -> list[str]:
    threshold = calibration["mql_threshold"]
    outcomes = ["leads", "reached sql", "reached opportunity", "to sql", "to opportunity"]
    split = calibration.get("threshold")
    bands = [_outcome_row(row["band"], row) for row in calibration["bands"]]
    grades = [_outcome_row(row["grade"], row) for row in calibration["grades"]]
    rule = "no MQL score threshold" if threshold is None else f"MQL threshold: score {threshold:g}"
    parts = [
        f'<p class="lede">{_count(calibration["scored_leads"])} scored leads entered in the'
        f" window; {_e(rule)}.</p>",
        _calibration_chart(calibration["bands"], threshold),
        _h3("By score band"),
        _table(["band", *outcomes], bands, none="No score bands."),
        _h3("By grade"),
        _table(["grade", *outcomes], grades, none="No grades defined."),
    ]
    if split:
        rows = [
            _outcome_row("at or above the threshold", split["at_or_above"]),
            _outcome_row("below the threshold", split["below"]),
        ]
        parts += [_h3("Against the MQL threshold"), _table(["scores", *outcomes], rows)]
    return parts


# ------------------------------------------------------------------------------ revenue


def _money(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _days(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} d"


def _revenue(revenue: Mapping[str, Any]) -> list[str]:
    conversion, outcomes = revenue["conversion"], revenue["outcomes"]

    def converted(key: str) -> list[list[Any]]:
        return [
            [row["key"], _count(row["leads"]), _count(row["opportunities"]), _pct(row["rate"])]
            for row in conversion[key]
        ]

    def won(key: str, label: str) -> list[list[Any]]:
        return [
            [
                row[label],
                _count(row["closed"]),
                _count(row["won"]),
                _pct(row["win_rate"]),
                _money(row["average_won_amount"]),
            ]
            for row in outcomes[key]
        ]

    velocity = [
        [
            row["period"],
            _count(row["opportunities"]),
            _pct(row["win_rate"]),
            _money(row["average_won_amount"]),
            _days(row["cycle_days"]),
            _money(row["velocity_per_day"]),
        ]
        for row in revenue["velocity"]
    ]
    times = revenue["time_to"]
    delays = [
        [
            stage,
            _count(times[stage]["leads"]),
            _days(times[stage]["median_days"]),
            _days(times[stage]["p90_days"]),
        ]
        for stage in ("opportunity", "won")
    ]
    outcome_headers = ["closed", "won", "win rate", "average won"]
    parts = [
        f'<p class="lede">{_count(revenue["opportunities"])} of the leads that entered in the'
        " window have an opportunity record (the funnel's reached opportunity counts the"
        " lifecycle stage).</p>",
        _h3("Lead to opportunity, by period of entry"),
        _table(["period", "leads", "opportunities", "rate"], converted("by_period")),
        _h3("Lead to opportunity, by source"),
        _table(["source", "leads", "opportunities", "rate"], converted("by_source")),
        _h3("Won and lost, by score band"),
        _table(["band", *outcome_headers], won("by_band", "band")),
        _h3("Won and lost, by grade"),
        _table(["grade", *outcome_headers], won("by_grade", "grade")),
        _h3("Pipeline velocity (opportunities × win rate × average won ÷ cycle), a day"),
        _table(
            ["created", "opportunities", "win rate", "average won", "cycle", "velocity"],
            velocity,
            none="No opportunities yet.",
        ),
        _h3("From MQL to"),
        _table(["", "leads", "median", "90th percentile"], delays),
    ]
    cac = revenue["cac"]
    if not cac["spend_known"]:
        return [*parts, _h3("Customer acquisition cost"), _none(cac["note"])]
    rows = [
        [row["period"], _money(row["spend"]), _count(row["new_customers"]), _money(row["cac"])]
        for row in cac["periods"]
    ]
    return [
        *parts,
        _h3("Customer acquisition cost"),
        _table(["period", "spend", "new customers", "CAC"], rows),
    ]


# ------------------------------------------------------------------------------ sync health


def _quota_row(crm: str, quota: Mapping[str, Any]) -> list[Any]:
    used, limit = quota.get("daily_used"), quota.get("daily_limit")
    share = used / limit if isinstance(used, int | float) and limit else None
    return [crm, _count(used), _count(limit), _count(quota.get("daily_remaining")), _pct(share)]


def _health(health: Mapping[str, Any]) -> list[str]:
    runs = [
        [kind, status, _count(count)]
        for kind, statuses in health["runs"].items()
        for status, count in statuses.items()
    ]
    pulled, written = health["records_pulled"], health["records_written"]
    records = [
        [crm, _count(pulled.get(crm, 0)), _count(written.get(crm, 0))]
        for crm in sorted(set(pulled) | set(written))
    ]
    errors = [[row["category"], _count(row["count"])] for row in health["errors"]]
    quarantine = health["quarantine"]
    reasons = [[row["reason"], _count(row["count"])] for row in quarantine["by_reason"]]
    quota = [_quota_row(crm, values) for crm, values in sorted(health["api_quota"].items())]
    blocks = [
        _h3_table("Runs", ["kind", "status", "runs"], runs, "No runs in this window.", labels=2),
        _h3_table("Records per CRM", ["crm", "pulled", "written"], records, "No records pulled."),
        _h3_table("Errors", ["category", "count"], errors, "No errors."),
        _h3_table(
            f"Quarantine ({_count(quarantine['open'])} records)",
            ["reason", "records"],
            reasons,
            "Nothing in quarantine.",
        ),
        _h3_table("API quota", ["crm", "used today", "limit", "left", "used"], quota, "None."),
    ]
    return [
        f'<p class="lede">Last good sync: {_e(_when(health["last_good_sync"]))}.</p>',
        f'<div class="blocks">{"".join(blocks)}</div>',
    ]


# ------------------------------------------------------------------------------ the page


def _header(report: Mapping[str, Any]) -> str:
    window = f"{_when(report['since']) if report['since'] else 'from the start'} to "
    facts = [
        ("Window", window + _when(report["until"])),
        ("Model version", report["model_version"] or NONE),
        ("Generated at", _when(report["generated_at"])),
        ("Generator", report["generator"]),
    ]
    meta = "".join(f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>" for name, value in facts)
    return f'<header><h1>leadsync report</h1><dl class="meta">{meta}</dl></header>'


def render_html(report: Mapping[str, Any]) -> str:
    """The report of `build_report` as one HTML5 page that needs nothing else to display."""
    title = f"leadsync report to {_when(report['until'])}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{REPORT_CSS}</style></head>"
        f"<body><main>{render_body(report)}</main></body></html>\n"
    )


def render_body(report: Mapping[str, Any]) -> str:
    """The report's content (header, sections and charts), for a page styled by REPORT_CSS:
    the HTML report's, and the console's Reports page."""
    sections = [
        _section(
            "funnel",
            "Funnel",
            _funnel(report["funnel"], report.get("segment_field"), report["period"]),
        ),
        _section("sla", "SLA", _sla(report["sla"], report["period"])),
        *(
            [_section("handoff", "The handoff to sales", handoff)]
            if (handoff := _handoff(report))
            else []
        ),
        _section("calibration", "Score calibration", _calibration(report["calibration"])),
        _section("revenue", "Revenue", _revenue(report["revenue"])),
        _section("health", "Sync health", _health(report["health"])),
    ]
    return _header(report) + "".join(sections)
