"""Issue 20's targets, judged from the benchmarks' latest results files.

Each benchmark that measures a target's figure saves it in `docs/bench-results/<section>.json`
(`_common.save_results`) beside the Markdown section it writes. `bench/run_all.py` reads the
latest file of each and writes the targets section of docs/BENCHMARKS.md from them: the figure
today, when and at what scale it was measured, the target, and the verdict with the gap. No
figure in that section is written by hand; one no results file holds yet reads "not measured".

A target is set at a scale (100,000 leads per CRM, a million stored): a figure measured at
another scale (a `--quick` run's 2,000 leads) is shown, but not judged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import figure_text

SECTION = "targets"
TITLE = "## Issue 20's targets"


@dataclass(frozen=True, slots=True)
class Target:
    """One figure of issue 20's table, and where its value comes from."""

    label: str  # as issue 20's table names it, with the scale it is set at
    section: str  # the results file (a benchmark's section name)
    name: str  # the figure's name in that file
    limit: float
    unit: str  # "s", "MB", "KB", "%" or "×"
    filed: str  # the figure when issue 20 was filed, as the issue states it
    at_most: bool = True  # met at or under the limit; False: at or over it
    strict: bool = False  # met only strictly under (or over) the limit
    scale: Mapping[str, int] = field(default_factory=dict)  # {}: the largest scale measured

    def met_by(self, value: float) -> bool:
        if self.at_most:
            return value < self.limit if self.strict else value <= self.limit
        return value > self.limit if self.strict else value >= self.limit

    @property
    def wanted(self) -> str:
        sign = ("<" if self.strict else "≤") if self.at_most else (">" if self.strict else "≥")
        return f"{sign} {quantity(self.limit, self.unit)}"


FULL = "full-reconcile"
TARGETS: tuple[Target, ...] = (
    Target(
        "leadsync CPU, first sync, per 100,000 leads per CRM",
        FULL, "cpu_s_per_100k_leads", 60, "s", "~600 s", scale={"leads": 100_000},
    ),
    Target(
        "peak RSS, first sync of 100,000 leads per CRM",
        FULL, "peak_rss_mb", 300, "MB", "1,121 MB", scale={"leads": 100_000},
    ),
    Target(
        "peak memory (tracemalloc), incremental run of 10,000 changes at 1,000,000 stored",
        "incremental-1pct-1m", "peak_traced_mb", 300, "MB", "1.1 GB traced",
        scale={"stored": 1_000_000},
    ),
    Target(
        "store size per lead, after a first sync of 100,000 leads per CRM and the next sync "
        "(SQLite file ÷ leads)",
        FULL, "store_kb_per_lead", 3, "KB", "11–15 KB", scale={"leads": 100_000},
    ),
    Target(
        "all API calls of a first sync of 100,000 leads per CRM ÷ floor (checks and handoff "
        "included)",
        FULL, "all_calls_over_floor", 1.15, "×", "1.69", scale={"leads": 100_000},
    ),
    Target(
        "HubSpot-only run of 10,000 contacts held to 190 per 10 s, paced at 180: achieved ÷ limit",
        FULL, "hubspot_limited_achieved_share", 90, "%", "36 %", at_most=False,
        scale={"leads": 10_000},
    ),
    Target(
        "HubSpot-only run of 10,000 contacts held to 190 per 10 s, paced at 180: share answered "
        "429",
        FULL, "hubspot_limited_429_share", 1, "%", "0", strict=True, scale={"leads": 10_000},
    ),
    Target(
        "incremental run's cost from 10,000 to 1,000,000 stored (the most grown of wall, CPU, "
        "store time, calls)",
        "incremental-cost", "incremental_growth", 1.5, "×", "×1.18",
        scale={"from_stored": 10_000, "to_stored": 1_000_000},
    ),
)  # fmt: skip


# ------------------------------------------------------------------------------ results files


@dataclass(frozen=True, slots=True)
class Results:
    """One benchmark's latest results file."""

    section: str
    command: str
    measured_at: datetime
    figures: tuple[Mapping[str, Any], ...]

    @classmethod
    def read(cls, path: Path) -> Results:
        document = json.loads(path.read_text())
        return cls(
            section=str(document["section"]),
            command=str(document["command"]),
            measured_at=datetime.fromisoformat(document["measured_at"]),
            figures=tuple(document["figures"]),
        )

    def named(self, name: str) -> list[Mapping[str, Any]]:
        return [entry for entry in self.figures if entry["name"] == name]


def read_results(folder: Path) -> dict[str, Results]:
    """Section -> its latest results, of every results file in `folder` (none: empty)."""
    if not folder.is_dir():
        return {}
    found = (Results.read(path) for path in sorted(folder.glob("*.json")))
    return {results.section: results for results in found}


# ------------------------------------------------------------------------------ judging


@dataclass(frozen=True, slots=True)
class Row:
    target: Target
    today: str
    measured: str
    verdict: str
    met: bool | None  # None: not judged (no figure at the target's scale)


def judge(target: Target, results: Results | None) -> Row:
    """The target's row: its figure in `results` at the target's scale, and the verdict."""
    if results is None:
        return Row(target, "not measured", "-", f"not measured since results files began: "
                   f"no `{target.section}` results yet", None)  # fmt: skip
    when = results.measured_at.strftime("%Y-%m-%d %H:%M UTC")
    entries = results.named(target.name)
    if not entries:
        verdict = f"not measured: the last `{target.section}` run ({when}) has no such figure"
        return Row(target, "not measured", "-", verdict, None)
    chosen = _at_scale(target, entries)
    if chosen is None:
        largest = max(entries, key=_scale_order)
        value = quantity(float(largest["value"]), target.unit)
        return Row(
            target,
            f"{value} at {scale_text(largest['scale'])}",
            when,
            f"not judged: measured at {scale_text(largest['scale'])}, not "
            f"{scale_text(target.scale)} (the last run measured nothing at that scale)",
            None,
        )
    value = float(chosen["value"])
    measured = when if not chosen["scale"] else f"{when}, {scale_text(chosen['scale'])}"
    if target.met_by(value):
        return Row(target, quantity(value, target.unit), measured, "**met**", True)
    return Row(target, quantity(value, target.unit), measured, f"**not met**: {gap(target, value)}",
               False)  # fmt: skip


def _at_scale(target: Target, entries: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    if not target.scale:
        return max(entries, key=_scale_order)
    wanted = dict(target.scale)
    return next((entry for entry in entries if dict(entry["scale"]) == wanted), None)


def _scale_order(entry: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(int(value) for _, value in sorted(entry["scale"].items()))


def gap(target: Target, value: float) -> str:
    """How far `value` is from the target: by how much over or short, and the factor."""
    distance = quantity(abs(value - target.limit), target.unit)
    if target.at_most:
        factor = f", {value / target.limit:.1f}× the target" if target.limit > 0 else ""
        if target.unit == "×":
            return f"{value - target.limit:.2f} over"
        return f"{distance} over{factor}"
    if target.unit == "%":
        return f"{target.limit - value:.1f} points short"
    return f"{distance} short"


def quantity(value: float, unit: str) -> str:
    """A figure as the tables show it: about three digits, with its unit."""
    if unit == "×":
        return f"×{value:.2f}"
    return f"{figure_text(value)} {unit}"


SCALE_WORDS = {
    "leads": "leads per CRM",
    "stored": "stored",
    "from_stored": "stored, from",
    "to_stored": "to",
}


def scale_text(scale: Mapping[str, int]) -> str:
    if not scale:
        return "any scale"
    if set(scale) == {"from_stored", "to_stored"}:
        return f"{scale['from_stored']:,} → {scale['to_stored']:,} stored"
    return ", ".join(f"{value:,} {SCALE_WORDS.get(key, key)}" for key, value in scale.items())


# ------------------------------------------------------------------------------ the section


def section(results: Mapping[str, Results], folder_name: str = "docs/bench-results") -> str:
    """The targets section's Markdown, from each benchmark's latest results."""
    rows = [judge(target, results.get(target.section)) for target in TARGETS]
    met = sum(1 for row in rows if row.met is True)
    unmet = sum(1 for row in rows if row.met is False)
    unjudged = sum(1 for row in rows if row.met is None)
    lines = [
        TITLE,
        "",
        "```sh",
        ".venv/bin/python bench/run_all.py --targets   # this section alone, from the results",
        "```",
        "",
        f"Issue 20's table, assembled by `bench/run_all.py` from the latest results file of each "
        f"benchmark (`{folder_name}/<section>.json`, written with its section below): never "
        "edited by hand. *When filed* is the figure the issue states; *today* is the latest "
        "measured, with when and at what scale. A target set at one scale judges only a "
        "figure measured at it; a figure no results file holds yet is *not measured* (since "
        "results files began, 2026-12-04: the figures in the sections below that predate them "
        "are not read by hand) until a full `bench/run_all.py` run.",
        "",
        "| figure | when filed | today | measured | target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {row.target.label} | {row.target.filed} | {row.today} | {row.measured} | "
        f"{row.target.wanted} | {row.verdict} |"
        for row in rows
    ]
    lines += ["", f"{met} met, {unmet} not met, {unjudged} not judged or not measured."]
    return "\n".join(lines)
