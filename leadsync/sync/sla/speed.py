"""Speed to lead, split: how long the system took to hand a lead to sales, and how long sales
took to accept it once they could see it.

    system delay  from the lead reaching the handoff stage to its handoff (created in the CRM
                  sales work in, with an owner): leadsync's part, in hours
    human delay   from the handoff to acceptance: the acceptance clock (a rule that starts at
                  the handoff stage), which starts at the handoff, in working hours

Leads that could not be handed off are counted by their problem, never timed as breaches.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from leadsync.sync.handoff_ledger import BLOCKED, FAILED, MATCHED, Handoff
from leadsync.sync.sla.clocks import Clock

# Working hours between two moments of a clock, by its calendar (None: no calendar known).
WorkingHours = Callable[[Clock, datetime, datetime], float | None]


def speed_to_lead(
    handoffs: Sequence[Handoff],
    clocks: Sequence[Clock],
    *,
    acceptance_rules: Sequence[str],
    working_hours: WorkingHours,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The split figures over `handoffs`, with `clocks` of the `acceptance_rules`; per owner
    by id and by name, where `names` (owner id -> name) knows it."""
    names = names or {}
    handed = [h for h in handoffs if h.handed_off and h.handed_off_at is not None]
    system = [
        (h.handed_off_at - h.eligible_at).total_seconds() / 3600
        for h in handed
        if h.handed_off_at is not None
    ]
    accepting = {c.lead_id: c for c in clocks if c.rule in acceptance_rules}
    human: list[float] = []
    owners: dict[str, list[float | None]] = defaultdict(list)
    for handoff in handed:
        clock = accepting.get(handoff.lead_id)
        hours = None
        if clock is not None and clock.stopped_at is not None:
            hours = working_hours(clock, clock.started_at, clock.stopped_at)
            if hours is not None:
                human.append(hours)
        owners[handoff.owner or "-"].append(hours)
    problems = Counter(h.problem for h in handoffs if h.status in (BLOCKED, FAILED))
    return {
        "handed_off": len(handed),
        "matched": sum(1 for h in handed if h.status == MATCHED),
        "waiting_for_sales": len(handed) - len(human),
        "system_delay_hours": _spread(system),
        "human_delay_working_hours": _spread(human),
        "cannot_hand_off": [
            {"problem": problem, "leads": count}
            for problem, count in sorted(problems.items(), key=lambda i: (-i[1], i[0]))
        ],
        "by_owner": [
            {
                "owner": owner,
                "name": names.get(owner),
                "handed_off": len(hours),
                "accepted": sum(1 for h in hours if h is not None),
                "human_delay_working_hours": _spread([h for h in hours if h is not None]),
            }
            for owner, hours in sorted(owners.items(), key=lambda i: (names.get(i[0], i[0]), i[0]))
        ],
    }


def _spread(values: Sequence[float]) -> dict[str, float | None]:
    return {"median": percentile(values, 0.5), "p90": percentile(values, 0.9)}


def percentile(values: Sequence[float], share: float) -> float | None:
    """The `share` percentile by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low, high = math.floor(position), math.ceil(position)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value, 2)


def format_speed(speed: dict[str, Any]) -> list[str]:
    """The figures as text lines (`leadsync sla`, `leadsync report`)."""
    system, human = speed["system_delay_hours"], speed["human_delay_working_hours"]
    out = [
        f"  handed off {speed['handed_off']} (matched {speed['matched']}), "
        f"waiting for sales {speed['waiting_for_sales']}",
        f"  system delay (stage reached -> handed off): median {_h(system['median'])}, "
        f"p90 {_h(system['p90'])}",
        f"  human delay (handed off -> accepted): median {_h(human['median'], 'working h')}, "
        f"p90 {_h(human['p90'], 'working h')}",
    ]
    for row in speed["by_owner"]:
        spread = row["human_delay_working_hours"]
        out.append(
            f"    {owner_shown(row)[:30]:<31}handed off {row['handed_off']:>4}, accepted "
            f"{row['accepted']:>4}, median {_h(spread['median'], 'working h')}"
        )
    for row in speed["cannot_hand_off"]:
        out.append(f"  cannot hand off: {row['problem']}: {row['leads']}")
    return out


def owner_shown(row: Mapping[str, Any]) -> str:
    """An owner as the reports show one: by name where the store knows it, else by id."""
    return str(row.get("name") or row.get("owner") or "-")


def _h(value: float | None, unit: str = "h") -> str:
    return "-" if value is None else f"{value:g} {unit}"
