"""`leadsync calibrate`: what past outcomes say the MQL threshold and the fit/engagement
balance should be. It proposes; it writes nothing.

Outcomes are the opportunities converted leads became: won against lost. With fewer than
MIN_CLOSED closed ones, reaching SQL (or later) against not stands in. Each scored lead is
one example: its fit and engagement as leadsync last scored them. A quarter of them, picked
by a hash of the lead id (the same quarter every time), is held back: the proposal is learnt
on the rest and shown on both, so a proposal that only fits its own data shows it.

    balance    the caps of fit and engagement ([scoring.fit] cap, [scoring.engagement] cap):
               the score is min(fit, cap) + min(engagement, cap), so a lower cap weighs that
               part less. Only caps at or below today's can be judged (the store keeps each
               part after its cap), in steps of 5; the pair that ranks won above lost most
               often (AUC) wins, today's on a tie.
    threshold  the MQL score threshold that best separates won from lost under that balance
               (most won above it less most lost above it: Youden's J), nearest today's on a tie.

The evidence: AUC, the share of won and of lost at or above the threshold, and the lift of each
score band (its won share over the overall won share), today's against the proposal's, on the
learning part and on the held-back part; then the proposal as a diff of the lead definition.

A proposal that does worse on the held-back part than today's definition (a lower AUC, or the
same AUC and a worse threshold split) is not proposed: the learning part alone said it, the
outcomes it did not see say otherwise, so the current definition is kept and the figures say
why.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from leadsync.mapping.definition import LeadDefinition
from leadsync.mapping.lifecycle import FORWARD, Stage
from leadsync.reports.build import mql_threshold
from leadsync.reports.data import opportunities
from leadsync.reports.figures import BANDS
from leadsync.sync import tables as t
from leadsync.sync.store import Store

__all__ = ["MIN_CLOSED", "Calibration", "calibrate", "format_calibration"]

MIN_CLOSED = 20  # closed opportunities below which SQL reached stands in for won
MIN_EACH = 5  # examples of each outcome, in the learning part, to propose anything
CAP_STEP = 5
_SQL_OR_LATER = frozenset(FORWARD[FORWARD.index(Stage.SQL) :])


@dataclass(frozen=True, slots=True)
class Example:
    lead_id: str
    fit: int
    engagement: int
    good: bool  # won (or reached SQL)


@dataclass(frozen=True, slots=True)
class Setting:
    fit_cap: int
    engagement_cap: int
    threshold: float

    def score(self, example: Example, max_score: int) -> int:
        total = min(example.fit, self.fit_cap) + min(example.engagement, self.engagement_cap)
        return max(0, min(max_score, total))


@dataclass(frozen=True)
class Calibration:
    outcome: str  # "won" or "sql reached"
    counts: dict[str, int]
    current: Setting | None
    proposed: Setting | None
    evidence: dict[str, Any]
    diff: str
    message: str = ""
    # What the learning part proposed when the held-back part said it was worse than today.
    rejected: Setting | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "counts": self.counts,
            "current": None if self.current is None else _setting(self.current),
            "proposed": None if self.proposed is None else _setting(self.proposed),
            "evidence": self.evidence,
            "diff": self.diff,
            "message": self.message,
            "rejected": None if self.rejected is None else _setting(self.rejected),
        }


def calibrate(store: Store, definition: LeadDefinition, definition_path: Path) -> Calibration:
    """The proposal for `definition` (read from `definition_path`) from `store`'s outcomes."""
    examples, outcome = _examples(store)
    learn = [e for e in examples if not _held_back(e.lead_id)]
    held = [e for e in examples if _held_back(e.lead_id)]
    counts = {
        "examples": len(examples),
        "good": sum(e.good for e in examples),
        "bad": sum(not e.good for e in examples),
        "learning": len(learn),
        "held_back": len(held),
    }
    scoring = definition.scoring
    threshold = mql_threshold(definition)
    fit_cap = scoring.fit.cap if scoring.fit.cap is not None else scoring.max_score
    engagement_cap = (
        scoring.engagement.cap if scoring.engagement.cap is not None else scoring.max_score
    )
    current = Setting(fit_cap, engagement_cap, threshold if threshold is not None else 0.0)
    good, bad = sum(e.good for e in learn), sum(not e.good for e in learn)
    if min(good, bad) < MIN_EACH:
        message = (
            f"not enough outcomes to learn from: {good} {outcome} and {bad} not, in the "
            f"learning part; at least {MIN_EACH} of each are needed"
        )
        return Calibration(outcome, counts, current, None, {}, "", message)
    max_score = scoring.max_score
    proposed = _best_setting(learn, current, max_score)
    evidence = {
        name: {
            "current": _evidence(part, current, max_score),
            "proposed": _evidence(part, proposed, max_score),
        }
        for name, part in (("learning", learn), ("held_back", held))
    }
    worse = _worse_held_back(evidence["held_back"])
    if worse:
        message = f"the current definition is kept: {worse}"
        return Calibration(outcome, counts, current, None, evidence, "", message, proposed)
    diff = _diff(definition_path, current, proposed)
    return Calibration(outcome, counts, current, proposed, evidence, diff)


def _worse_held_back(held: dict[str, dict[str, Any]]) -> str:
    """Why the proposal does worse than today on the held-back part, or "" if it does not."""
    now, new = held["current"], held["proposed"]
    if now["auc"] is None or new["auc"] is None:
        return ""  # the held-back part lacks one outcome: it can tell nothing either way
    if new["auc"] < now["auc"]:
        return (
            f"the proposal ranks the held-back outcomes worse (AUC {new['auc']:g} against "
            f"today's {now['auc']:g})"
        )
    split_now = now["good_above_threshold"] - now["bad_above_threshold"]
    split_new = new["good_above_threshold"] - new["bad_above_threshold"]
    if new["auc"] == now["auc"] and round(split_new, 3) < round(split_now, 3):
        return (
            f"the proposed threshold separates the held-back outcomes worse (share of good "
            f"less share of others above it {split_new:.0%} against today's {split_now:.0%})"
        )
    return ""


# ---------------------------------------------------------------------------------- outcomes


def _examples(store: Store) -> tuple[list[Example], str]:
    columns = (t.leads.c.lead_id, t.leads.c.fit, t.leads.c.engagement, t.leads.c.stage)
    query = sa.select(*columns).where(t.leads.c.fit.is_not(None))
    with store.engine.connect() as connection:
        rows = list(connection.execute(query).mappings())
    closed = {
        lead_id: opportunity.won
        for lead_id, opportunity in opportunities(store).items()
        if opportunity.closed
    }
    if len(closed) >= MIN_CLOSED:
        examples = [
            Example(row["lead_id"], row["fit"], row["engagement"] or 0, closed[row["lead_id"]])
            for row in rows
            if row["lead_id"] in closed
        ]
        return examples, "won"
    reached = _reached_sql(store)
    examples = [
        Example(row["lead_id"], row["fit"], row["engagement"] or 0, row["lead_id"] in reached)
        for row in rows
    ]
    return examples, "sql reached"


def _reached_sql(store: Store) -> set[str]:
    stages = [stage.value for stage in _SQL_OR_LATER]
    query = sa.select(t.transitions.c.lead_id).where(t.transitions.c.to_stage.in_(stages))
    with store.engine.connect() as connection:
        return {row[0] for row in connection.execute(query)}


def _held_back(lead_id: str) -> bool:
    return hashlib.sha256(lead_id.encode()).digest()[0] % 4 == 0


# ---------------------------------------------------------------------------------- learning


def _best_setting(examples: Sequence[Example], current: Setting, max_score: int) -> Setting:
    best: tuple[float, int, Setting] | None = None
    for fit_cap in _caps(current.fit_cap):
        for engagement_cap in _caps(current.engagement_cap):
            setting = Setting(fit_cap, engagement_cap, current.threshold)
            auc = _auc(examples, setting, max_score)
            change = (current.fit_cap - fit_cap) + (current.engagement_cap - engagement_cap)
            # A better AUC by more than rounding wins; else the smaller change.
            key = (round(auc, 3), -change, setting)
            if best is None or key[:2] > best[:2]:
                best = key
    assert best is not None
    chosen = best[2]
    return Setting(
        chosen.fit_cap,
        chosen.engagement_cap,
        _best_threshold(examples, chosen, max_score, current.threshold),
    )


def _caps(current: int) -> list[int]:
    return list(range(current, CAP_STEP - 1, -CAP_STEP)) or [current]


def _auc(examples: Sequence[Example], setting: Setting, max_score: int) -> float:
    """The chance that a good example outscores a bad one (ties count half)."""
    scored = sorted((setting.score(e, max_score), e.good) for e in examples)
    good = sum(g for _, g in scored)
    bad = len(scored) - good
    if not good or not bad:
        return 0.5
    # Mann-Whitney: the good examples' ranks (ties share their average rank).
    rank_sum, start = 0.0, 0
    while start < len(scored):
        end = start
        while end < len(scored) and scored[end][0] == scored[start][0]:
            end += 1
        average_rank = (start + 1 + end) / 2
        rank_sum += average_rank * sum(g for _, g in scored[start:end])
        start = end
    return (rank_sum - good * (good + 1) / 2) / (good * bad)


def _best_threshold(
    examples: Sequence[Example], setting: Setting, max_score: int, current: float
) -> float:
    scored = [(setting.score(e, max_score), e.good) for e in examples]
    good = sum(g for _, g in scored) or 1
    bad = sum(not g for _, g in scored) or 1
    best: tuple[float, float, int] | None = None
    for threshold in range(max_score + 1):
        above_good = sum(g for s, g in scored if s >= threshold) / good
        above_bad = sum(not g for s, g in scored if s >= threshold) / bad
        key = (round(above_good - above_bad, 4), -abs(threshold - current), threshold)
        if best is None or key[:2] > best[:2]:
            best = key
    assert best is not None
    return float(best[2])


# ---------------------------------------------------------------------------------- evidence


def _evidence(examples: Sequence[Example], setting: Setting, max_score: int) -> dict[str, Any]:
    scored = [(setting.score(e, max_score), e.good) for e in examples]
    good = [s for s, g in scored if g]
    bad = [s for s, g in scored if not g]
    overall = len(good) / len(scored) if scored else None
    bands = []
    for low, high in BANDS:
        inside = [g for s, g in scored if low <= s <= high]
        share = sum(inside) / len(inside) if inside else None
        lift = None if share is None or not overall else round(share / overall, 2)
        bands.append({"band": f"{low}-{high}", "examples": len(inside), "lift": lift})
    return {
        "examples": len(scored),
        "auc": round(_auc(examples, setting, max_score), 3) if good and bad else None,
        "good_above_threshold": _share(sum(s >= setting.threshold for s in good), len(good)),
        "bad_above_threshold": _share(sum(s >= setting.threshold for s in bad), len(bad)),
        "bands": bands,
    }


def _share(part: int, whole: int) -> float | None:
    return None if not whole else round(part / whole, 3)


def _setting(setting: Setting) -> dict[str, Any]:
    return {
        "fit_cap": setting.fit_cap,
        "engagement_cap": setting.engagement_cap,
        "mql_threshold": setting.threshold,
    }


# ---------------------------------------------------------------------------------- the diff


def _diff(path: Path, current: Setting, proposed: Setting) -> str:
    """The lead definition with the proposal applied, as a unified diff of the file."""
    text = path.read_text(encoding="utf-8")
    edited = _set_cap(text, "scoring.fit", proposed.fit_cap)
    edited = _set_cap(edited, "scoring.engagement", proposed.engagement_cap)
    if proposed.threshold != current.threshold:
        edited = re.sub(
            r'(\{\s*field\s*=\s*"score"\s*,\s*(?:gte|gt)\s*=\s*)[\d.]+',
            lambda m: f"{m.group(1)}{proposed.threshold:g}",
            edited,
            count=1,
        )
    return "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            edited.splitlines(keepends=True),
            fromfile=str(path),
            tofile=f"{path} (proposed)",
        )
    )


def _set_cap(text: str, table: str, cap: int) -> str:
    """`cap = N` of `[table]` (the first line of it before the next table) set to `cap`."""
    header = re.search(rf"^\[{re.escape(table)}\]\s*$", text, flags=re.MULTILINE)
    if header is None:
        return text
    rest = text[header.end() :]
    following = re.search(r"^\[", rest, flags=re.MULTILINE)
    body = rest[: following.start()] if following else rest
    changed = re.sub(r"^(cap\s*=\s*)\d+", rf"\g<1>{cap}", body, count=1, flags=re.MULTILINE)
    return text[: header.end()] + changed + rest[len(body) :]


# ---------------------------------------------------------------------------------- as text


def format_calibration(result: Calibration) -> str:
    lines = [
        f"calibrate: {result.counts['examples']} scored leads with an outcome "
        f"({result.counts['good']} {result.outcome}, {result.counts['bad']} not); learning on "
        f"{result.counts['learning']}, {result.counts['held_back']} held back",
    ]
    if result.current is None or (result.proposed is None and result.rejected is None):
        return (
            "\n".join([*lines, result.message, "nothing is proposed; nothing was written"]) + "\n"
        )
    now = result.current
    new = result.proposed if result.proposed is not None else result.rejected
    assert new is not None
    if result.proposed is None:
        lines += ["", f"!! {result.message}", ""]
    lines += [
        f"  today:    fit cap {now.fit_cap}, engagement cap {now.engagement_cap}, "
        f"MQL at score {now.threshold:g}",
        f"  {'proposed' if result.proposed is not None else 'rejected'}: "
        f"fit cap {new.fit_cap}, engagement cap {new.engagement_cap}, "
        f"MQL at score {new.threshold:g}",
        "",
        f"  {'':<22}{'AUC':>8}{f'{result.outcome} above':>16}{'others above':>14}",
    ]
    for part, figures in result.evidence.items():
        for which in ("current", "proposed"):
            row = figures[which]
            name = "today" if which == "current" else "proposed"
            label = f"{part.replace('_', ' ')}, {name}"
            lines.append(
                f"  {label:<22}{_num(row['auc']):>8}{_pct(row['good_above_threshold']):>16}"
                f"{_pct(row['bad_above_threshold']):>14}"
            )
    lines += ["", "  lift per score band (held back): today -> proposed"]
    held = result.evidence["held_back"]
    for before, after in zip(held["current"]["bands"], held["proposed"]["bands"], strict=True):
        lines.append(f"    {before['band']:>7}  {_num(before['lift'])} -> {_num(after['lift'])}")
    if result.proposed is None:
        lines += ["", f"{result.message}; nothing is proposed; nothing was written"]
        return "\n".join(lines) + "\n"
    lines += ["", result.diff or "(the lead definition would not change)", ""]
    lines.append("nothing was written: apply the diff to the lead definition to accept it")
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
