"""Who a handed-off lead goes to: the routing rules of the lead definition's [handoff].

Routes are tried in order; the first whose `when` conditions all hold for the lead takes it,
and gives it to the member of its team with the fewest handoffs so far (round-robin that
survives restarts: the counts come from the store), skipping members who hold `capacity`
leads not yet accepted. A route whose team is full passes the lead on to the next route; the
`fallback_owner` takes what no route does. With `assignment = "salesforce"` the CRM's own
assignment rules pick the owner instead. Each pick says which rule made it (`explain`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from leadsync.mapping.definition import HandoffModel, RouteModel
from leadsync.sync.handoff_ledger import OwnerLoad

CRM_ASSIGNS = "the CRM's own assignment rules"
FALLBACK = "fallback owner"


@dataclass(frozen=True, slots=True)
class Routed:
    """An owner (None: the CRM assigns, or nobody was found: then `problem` says why) and the
    rule that picked it."""

    owner: str | None
    rule: str
    problem: str = ""
    route: str = ""  # the route's name, "fallback owner", or the CRM's rules


class OwnerRouter:
    """Routes one run's handoffs; the owners' loads grow as it routes."""

    def __init__(
        self,
        handoff: HandoffModel,
        loads: Callable[[Sequence[str]], Mapping[str, OwnerLoad]],
    ) -> None:
        self._handoff = handoff
        owners = {owner for route in handoff.routes for owner in route.team}
        if handoff.fallback_owner:
            owners.add(handoff.fallback_owner)
        self._owners = frozenset(owners)
        self._loads: dict[str, OwnerLoad] = dict(loads(sorted(owners))) if owners else {}

    def route(self, values: Mapping[str, Any]) -> Routed:
        handoff = self._handoff
        if handoff.crm_assigns:
            return Routed(None, CRM_ASSIGNS, route=CRM_ASSIGNS)
        full: list[str] = []
        for route in handoff.routes:
            if not route.holds(values):
                continue
            owner = self._next_in(route)
            if owner is not None:
                return Routed(owner, self._why(route, values), route=route.name)
            full.append(f"route {route.name!r}: every owner holds {route.capacity} open leads")
        if handoff.fallback_owner:
            self._take(handoff.fallback_owner)
            passed = f" ({'; '.join(full)})" if full else ""
            return Routed(handoff.fallback_owner, f"fallback owner{passed}", route=FALLBACK)
        problem = "; ".join(full) if full else "no route matches the lead"
        return Routed(None, "", f"routing found no owner: {problem}")

    def could_give(self, owner: str) -> bool:
        """Whether these rules could give a lead to `owner`: a member of a route's team, or the
        fallback owner (never, when the CRM assigns)."""
        return not self._handoff.crm_assigns and owner in self._owners

    def _next_in(self, route: RouteModel) -> str | None:
        free = [
            member
            for member in route.team
            if route.capacity is None or self._load(member).open < route.capacity
        ]
        if not free:
            return None
        # Fewest handoffs first; among equals, the team's order.
        owner = min(free, key=lambda member: (self._load(member).total, route.team.index(member)))
        self._take(owner)
        return owner

    def _load(self, owner: str) -> OwnerLoad:
        return self._loads.get(owner, OwnerLoad())

    def _take(self, owner: str) -> None:
        load = self._load(owner)
        self._loads[owner] = OwnerLoad(load.total + 1, load.open + 1)

    @staticmethod
    def _why(route: RouteModel, values: Mapping[str, Any]) -> str:
        because = " and ".join(condition.explain(values) for condition in route.when)
        team = f"round-robin in a team of {len(route.team)}"
        return f"route {route.name!r}" + (f" ({because})" if because else "") + f", {team}"
