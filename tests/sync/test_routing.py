"""Routing a handed-off lead to its owner: routes in order, round-robin by the fewest handoffs,
capacity, the fallback, the CRM's own rules; and the rule each pick names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from leadsync.mapping.definition import HandoffModel, parse_definition
from leadsync.problems import ConfigError
from leadsync.sync.handoff_ledger import OwnerLoad
from leadsync.sync.routing import CRM_ASSIGNS, OwnerRouter

A, B, C, Q = "0055g0000000001AAA", "0055g0000000002AAA", "0055g0000000003AAA", "00G5g0000000001EAA"


def router(loads: Mapping[str, OwnerLoad] | None = None, **handoff: Any) -> OwnerRouter:
    model = HandoffModel.model_validate(handoff)
    held = loads or {}
    return OwnerRouter(model, lambda wanted: {o: held[o] for o in wanted if o in held})


def owners(r: OwnerRouter, leads: Sequence[Mapping[str, Any]]) -> list[str | None]:
    return [r.route(values).owner for values in leads]


US = {"country": "United States", "employees": 50}
DE = {"country": "Germany", "employees": 50}
BIG = {"country": "United States", "employees": 5000}

ROUTES = [
    {"name": "enterprise", "when": [{"field": "employees", "gte": 1000}], "team": [C]},
    {"name": "na", "when": [{"field": "country", "in": ["United States"]}], "team": [A, B]},
]


def test_the_first_route_that_holds_takes_the_lead() -> None:
    assert owners(router(routes=ROUTES, fallback_owner=Q), [BIG, US, DE]) == [C, A, Q]


def test_round_robin_gives_each_to_the_member_with_the_fewest_handoffs() -> None:
    r = router({A: OwnerLoad(total=3), B: OwnerLoad(total=1)}, routes=ROUTES)
    assert owners(r, [US, US, US, US]) == [B, B, A, B]


def test_a_member_at_capacity_is_skipped_and_a_full_team_passes_the_lead_on() -> None:
    routes = [{**ROUTES[1], "capacity": 2}]
    r = router({A: OwnerLoad(total=2, open=2)}, routes=routes, fallback_owner=Q)
    picked = [r.route(US) for _ in range(3)]
    assert [p.owner for p in picked] == [B, B, Q]
    assert "every owner holds 2 open leads" in picked[2].rule


def test_no_route_and_no_fallback_is_a_problem_not_an_owner() -> None:
    picked = router(routes=ROUTES).route(DE)
    assert picked.owner is None
    assert picked.problem == "routing found no owner: no route matches the lead"


def test_the_crm_assigns_when_told_to() -> None:
    picked = router(assignment="salesforce").route(US)
    assert (picked.owner, picked.rule) == (None, CRM_ASSIGNS)


def test_each_pick_names_its_rule_with_the_leads_value() -> None:
    rule = router(routes=ROUTES).route(US).rule
    assert rule == "route 'na' (country is United States), round-robin in a team of 2"


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("[handoff]\nstage = 'mql'\n", "handoff.routes", "fallback_owner"),
        ("[handoff]\nfallback_owner = 'bob'\n", "handoff.fallback_owner", "pattern"),
        (
            "[handoff]\nfallback_owner = '00G5g0000000001EAA'\n"
            "[[handoff.routes]]\nname = 'x'\nteam = ['0055g0000000001AAA']\n"
            "when = [{ field = 'no_such', present = true }]\n",
            "handoff.routes[0].when[0].field",
            "no_such",
        ),
        (
            "[handoff]\nstage = 'customer'\nfallback_owner = '00G5g0000000001EAA'\n",
            "handoff.stage",
            "",
        ),
    ],
)
def test_handoff_mistakes_are_named_by_key_and_line(text: str, key: str, message: str) -> None:
    from leadsync.mapping.fields import load_mapping
    from leadsync.sandbox_config import EXAMPLES

    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    base = shipped[: shipped.index("[handoff]")]
    fields = load_mapping(EXAMPLES / "mapping.toml").canonical_types()
    with pytest.raises(ConfigError) as refused:
        parse_definition(base + text, file="lead_definition.toml", fields=fields)
    found = [p for p in refused.value.problems if p.key == key]
    assert found, [str(p) for p in refused.value.problems]
    assert message in found[0].message
    assert found[0].line is not None
