"""The report as tables for a terminal (`leadsync report --format table`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from leadsync.sync.sla.response import format_no_response
from leadsync.sync.sla.speed import format_speed, owner_shown

__all__ = ["format_table"]


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _hours(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 24:.1f} d" if value >= 48 else f"{value:.1f} h"


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, indent: str = "  "
) -> list[str]:
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [
        max([len(header), *(len(row[index]) for row in cells)])
        for index, header in enumerate(headers)
    ]

    def line(values: Sequence[str]) -> str:
        first, *rest = values
        return indent + "  ".join(
            [
                first.ljust(widths[0]),
                *(value.rjust(width) for value, width in zip(rest, widths[1:], strict=True)),
            ]
        )

    return [line(headers), line(["-" * width for width in widths]), *(line(row) for row in cells)]


def format_table(report: Mapping[str, Any]) -> str:
    out = [
        f"leadsync report, {report['since'] or 'from the start'} to {report['until']}"
        f" (model {report['model_version']})",
        "",
    ]
    out += _funnel(report["funnel"], report.get("segment_field"))
    out += _sla(report["sla"])
    if report.get("speed_to_lead"):
        out += ["SPEED TO LEAD (the handoff)", "", *format_speed(report["speed_to_lead"]), ""]
    if report.get("no_response"):
        out += [
            f"NO RESPONSE AFTER HANDOFF (per owner, per {report['period']} of the handoff)",
            "",
            *format_no_response(report["no_response"]),
            "",
        ]
    out += _calibration(report["calibration"])
    out += _revenue(report["revenue"])
    out += _health(report["health"])
    return "\n".join(out).rstrip() + "\n"


# The funnel and the revenue section count opportunities two ways; each says which.
STAGE_NOTE = (
    "reached opportunity counts the lifecycle stage either CRM gave the lead, with or without "
    "an opportunity record; the revenue section counts the leads with an opportunity record"
)


def _funnel(funnel: Mapping[str, Any], segment_field: str | None) -> list[str]:
    out = [
        f"FUNNEL: {funnel['leads']} leads entered in the window (dated by the CRMs' creation "
        "of each lead's earliest record)",
        "",
    ]
    conversion = {step["to"]: step for step in funnel["conversion"]}
    times = funnel["time_in_stage"]
    rows = []
    for stage, reached in funnel["reached"].items():
        step = conversion.get(stage)
        stay = times.get(stage, {})
        rows.append(
            [
                stage,
                reached,
                funnel["current"].get(stage, 0),
                _share(step["rate"]) if step else "",
                _share(step["cumulative"]) if step else "",
                _hours(stay.get("median_hours")),
                _hours(stay.get("p90_hours")),
            ]
        )
    out += _table(
        ["stage", "reached", "now", "from previous", "cumulative", "median stay", "p90 stay"],
        rows,
    )
    exits = [f"{stage} {funnel['current'].get(stage, 0)}" for stage in ("recycled", "disqualified")]
    out += ["", f"  now out of the funnel: {', '.join(exits)}", f"  {STAGE_NOTE}", ""]
    for key, title in (("by_period", "period"), ("by_segment", segment_field or "segment")):
        groups = funnel[key]
        if not groups:
            continue
        name = "period" if key == "by_period" else "segment"
        out += _table(
            [title, "leads", "mql", "sql", "customer", "to mql", "to sql", "to customer"],
            [
                [
                    group[name],
                    group["leads"],
                    group["reached"]["mql"],
                    group["reached"]["sql"],
                    group["reached"]["customer"],
                    _share(group["to_mql"]),
                    _share(group["to_sql"]),
                    _share(group["to_customer"]),
                ]
                for group in groups
            ],
        )
        out.append("")
    return out


def _sla(sla: Mapping[str, Any]) -> list[str]:
    out = ["SLA", ""]
    if sla["rules"]:
        out += _table(
            ["rule", "within", "started", "met", "late", "breached", "running", "compliance"],
            [
                [
                    rule["rule"],
                    f"{rule['within_hours']:g} h",
                    rule["started"],
                    rule["met"],
                    rule["resolved_late"],
                    rule["breached_open"],
                    rule["running"],
                    _share(rule["compliance"]),
                ]
                for rule in sla["rules"]
            ],
        )
        out.append("")
    if sla["by_owner"]:
        out += _table(
            ["rule / owner", "decided", "met", "compliance"],
            [
                [
                    f"{row['rule']} / {owner_shown(row)}",
                    row["decided"],
                    row["met"],
                    _share(row["compliance"]),
                ]
                for row in sla["by_owner"]
            ],
        )
        out.append("")
    if sla["over_time"]:
        out += _table(
            ["period / rule", "decided", "met", "compliance"],
            [
                [
                    f"{row['period']} / {row['rule']}",
                    row["decided"],
                    row["met"],
                    _share(row["compliance"]),
                ]
                for row in sla["over_time"]
            ],
        )
        out.append("")
    breaches = sla["open_breaches"]
    out.append(f"  open breaches: {len(breaches)}")
    for breach in breaches[:20]:
        late = breach["working_hours_late"]
        out.append(
            f"    {breach['rule']}: {breach['email'] or breach['lead_id']}, owner "
            f"{breach['owner_name'] or breach['owner'] or '-'}, due {breach['due_at'][:16]}"
            + (f", {late:g} working h late" if late is not None else "")
        )
    if len(breaches) > 20:
        out.append(f"    ... and {len(breaches) - 20} more (--format json lists them all)")
    if sla["volume"]:
        out += ["", "  volume against plan:"]
        for period in sla["volume"]:
            segment = period["segment"] or "overall"
            out.append(
                f"    {period['rule']} {segment} from {period['start'][:10]}: "
                f"{period['delivered']} of {period['target']} (pace {period['expected_by_now']}), "
                f"{period['status']}"
            )
    out.append("")
    return out


def _calibration(calibration: Mapping[str, Any]) -> list[str]:
    threshold = calibration["mql_threshold"]
    out = [
        "SCORE CALIBRATION: do higher scores go further?"
        + (f" (MQL threshold: score {threshold:g})" if threshold is not None else ""),
        "",
    ]
    for key, name in (("bands", "band"), ("grades", "grade")):
        out += _table(
            [name, "leads", "reached sql", "reached opportunity", "to sql", "to opportunity"],
            [
                [
                    row[name],
                    row["leads"],
                    row["reached_sql"],
                    row["reached_opportunity"],
                    _share(row["sql_rate"]),
                    _share(row["opportunity_rate"]),
                ]
                for row in calibration[key]
            ],
        )
        out.append("")
    split = calibration.get("threshold")
    if split:
        above, below = split["at_or_above"], split["below"]
        out += [
            f"  at or above the threshold: {above['leads']} leads, "
            f"{_share(above['sql_rate'])} to SQL; below: {below['leads']} leads, "
            f"{_share(below['sql_rate'])} to SQL",
            "",
        ]
    return out


def _health(health: Mapping[str, Any]) -> list[str]:
    out = ["SYNC HEALTH", ""]
    for kind, statuses in health["runs"].items():
        out.append(
            f"  {kind} runs: " + ", ".join(f"{n} {status}" for status, n in statuses.items())
        )
    for crm in sorted(set(health["records_pulled"]) | set(health["records_written"])):
        out.append(
            f"  {crm}: {health['records_pulled'].get(crm, 0):,} records pulled, "
            f"{health['records_written'].get(crm, 0):,} written"
        )
    out.append(f"  last good sync: {health['last_good_sync'] or 'none'}")
    if health["errors"]:
        out.append("  errors:")
        out += [f"    {row['count']:>6}  {row['category']}" for row in health["errors"]]
    quarantine = health["quarantine"]
    out.append(f"  quarantine: {quarantine['open']} records")
    out += [f"    {row['count']:>6}  {row['reason']}" for row in quarantine["by_reason"]]
    for crm, quota in sorted(health["api_quota"].items()):
        used, limit = quota.get("daily_used"), quota.get("daily_limit")
        if limit:
            out.append(f"  {crm} API quota: {used:,} of {limit:,} used today")
    return out


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} d"


def _revenue(revenue: Mapping[str, Any]) -> list[str]:
    out = [
        f"REVENUE: {revenue['opportunities']} of the leads entered have an opportunity record "
        "(the funnel's reached opportunity counts the lifecycle stage)",
        "",
    ]
    for title, key in (("By period of entry", "by_period"), ("By source", "by_source")):
        rows = [
            [row["key"], row["leads"], row["opportunities"], _share(row["rate"])]
            for row in revenue["conversion"][key]
        ]
        out += [f"  Lead to opportunity, {title.lower()}"]
        out += [*_table(["", "leads", "opportunities", "rate"], rows, indent="    "), ""]
    outcomes = revenue["outcomes"]
    for title, key, label in (("score band", "by_band", "band"), ("grade", "by_grade", "grade")):
        rows = [
            [
                row[label],
                row["closed"],
                row["won"],
                _share(row["win_rate"]),
                _money(row["average_won_amount"]),
            ]
            for row in outcomes[key]
        ]
        out += [f"  Won and lost by {title}"]
        out += _table(["", "closed", "won", "win rate", "avg won"], rows, indent="    ")
        out += [""]
    rows = [
        [
            row["period"],
            row["opportunities"],
            _share(row["win_rate"]),
            _money(row["average_won_amount"]),
            _days(row["cycle_days"]),
            _money(row["velocity_per_day"]),
        ]
        for row in revenue["velocity"]
    ]
    out += ["  Pipeline velocity (opportunities x win rate x avg won / cycle), a day"]
    out += _table(
        ["created", "opps", "win rate", "avg won", "cycle", "velocity"], rows, indent="    "
    )
    times = revenue["time_to"]
    out += [
        "",
        "  MQL to opportunity: median "
        f"{_days(times['opportunity']['median_days'])} ({times['opportunity']['leads']} leads);"
        f" MQL to won: median {_days(times['won']['median_days'])} ({times['won']['leads']} leads)",
    ]
    cac = revenue["cac"]
    if not cac["spend_known"]:
        out += [f"  CAC: {cac['note']}", ""]
        return out
    rows = [
        [row["period"], _money(row["spend"]), row["new_customers"], _money(row["cac"])]
        for row in cac["periods"]
    ]
    out += ["  Customer acquisition cost"]
    out += [*_table(["period", "spend", "new customers", "CAC"], rows, indent="    "), ""]
    return out
