"""The lifecycle state machine: every transition it makes and every one it refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadsync.mapping.definition import LeadDefinition, load_definition, parse_definition
from leadsync.mapping.lifecycle import (
    LifecycleState,
    Stage,
    Transition,
    TransitionKind,
    TransitionRefusedError,
    next_transitions,
    refusal,
)
from leadsync.mapping.scoring import Score, score_lead
from leadsync.problems import ConfigError
from tests.support import shipped_canonical_fields

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "leadsync" / "examples" / "lead_definition.toml"

LEAD, MQL, SAL, SQL = Stage.LEAD, Stage.MQL, Stage.SAL, Stage.SQL
OPPORTUNITY, CUSTOMER = Stage.OPPORTUNITY, Stage.CUSTOMER
RECYCLED, DISQUALIFIED = Stage.RECYCLED, Stage.DISQUALIFIED

SCORING = """
[[scoring.grades]]
grade = "A"
min_score = 0
"""
STAGES = """
[lifecycle.stages.mql]
all = [{ field = "score", gte = 60 }]

[lifecycle.stages.sal]
all = [
  { field = "owner_id", present = true },
  { field = "sf_status", equals = "Working - Contacted" },
]

[lifecycle.stages.sql]
any = [
  { field = "rating", equals = "Hot" },
  { field = "lead_status", equals = "OPEN_DEAL" },
]

[lifecycle.stages.opportunity]
all = [{ field = "is_converted", equals = true }]

[lifecycle.stages.customer]
all = [{ field = "opportunity_stage", equals = "Closed Won" }]
"""
RULES = """
[[lifecycle.recycle]]
reason = "Closed - Not Converted: back to nurture"
all = [{ field = "sf_status", equals = "Closed - Not Converted" }]

[[lifecycle.recycle]]
reason = "opportunity lost"
all = [{ field = "opportunity_stage", equals = "Closed Lost" }]

[[lifecycle.disqualify]]
reason = "unqualified"
all = [{ field = "lead_status", equals = "UNQUALIFIED" }]

[[lifecycle.requalify]]
reason = "reopened"
all = [{ field = "lead_status", equals = "OPEN" }]
"""


def definition(stages: str = STAGES, rules: str = RULES) -> LeadDefinition:
    return parse_definition(SCORING + stages + rules, file="test.toml")


DEFINITION = definition()
HOT = {"rating": "Hot"}
WORKING = {"owner_id": "005A", "sf_status": "Working - Contacted"}
CONVERTED = {"is_converted": True}
WON = {"is_converted": True, "opportunity_stage": "Closed Won"}
NOT_CONVERTED = {"sf_status": "Closed - Not Converted"}
UNQUALIFIED = {"lead_status": "UNQUALIFIED"}


def score(total: int) -> Score:
    return Score(total, fit=total, engagement=0, grade="A", reasons=(), model_version="test")


def moves(
    current: Stage | None,
    lead: dict[str, Any],
    total: int = 0,
    lead_definition: LeadDefinition = DEFINITION,
) -> list[tuple[Stage | None, Stage, TransitionKind, str]]:
    transitions = next_transitions(current, lead, score(total), lead_definition, now=NOW)
    assert all(transition.at == NOW for transition in transitions)
    return [(t.from_stage, t.to_stage, t.kind, t.reason) for t in transitions]


# --------------------------------------------------------------------------------------------
# What the machine does
# --------------------------------------------------------------------------------------------

ALLOWED = [
    # enter
    ("enter", None, {}, 0, [(None, LEAD, "enter", "new lead")]),
    (
        "enter-then-advance",
        None,
        {},
        70,
        [(None, LEAD, "enter", "new lead"), (LEAD, MQL, "advance", "score 70 ≥ 60")],
    ),
    # each forward step
    ("lead-to-mql", LEAD, {}, 60, [(LEAD, MQL, "advance", "score 60 ≥ 60")]),
    (
        "mql-to-sal",
        MQL,
        WORKING,
        0,
        [(MQL, SAL, "advance", "owner_id present and sf_status is Working - Contacted")],
    ),
    ("sal-to-sql", SAL, HOT, 0, [(SAL, SQL, "advance", "rating is Hot")]),
    (
        "sql-by-any",
        SAL,
        {"lead_status": "OPEN_DEAL"},
        0,
        [(SAL, SQL, "advance", "lead_status is OPEN_DEAL")],
    ),
    (
        "sql-to-opportunity",
        SQL,
        CONVERTED,
        0,
        [(SQL, OPPORTUNITY, "advance", "is_converted is true")],
    ),
    (
        "opportunity-to-customer",
        OPPORTUNITY,
        WON,
        0,
        [(OPPORTUNITY, CUSTOMER, "advance", "opportunity_stage is Closed Won")],
    ),
    # skips: a stage whose criteria do not hold is passed over
    ("lead-to-sql", LEAD, HOT, 0, [(LEAD, SQL, "advance", "rating is Hot")]),
    ("mql-to-sql", MQL, HOT, 0, [(MQL, SQL, "advance", "rating is Hot")]),
    (
        "lead-to-opportunity",
        LEAD,
        CONVERTED,
        0,
        [(LEAD, OPPORTUNITY, "advance", "is_converted is true")],
    ),
    (
        "lead-to-customer",
        LEAD,
        {"opportunity_stage": "Closed Won"},
        0,
        [(LEAD, CUSTOMER, "advance", "opportunity_stage is Closed Won")],
    ),
    # every stage whose criteria hold, one after the other
    (
        "lead-through-sql",
        LEAD,
        {**WORKING, **HOT},
        75,
        [
            (LEAD, MQL, "advance", "score 75 ≥ 60"),
            (MQL, SAL, "advance", "owner_id present and sf_status is Working - Contacted"),
            (SAL, SQL, "advance", "rating is Hot"),
        ],
    ),
    (
        "lead-through-customer",
        LEAD,
        WON,
        0,
        [
            (LEAD, OPPORTUNITY, "advance", "is_converted is true"),
            (OPPORTUNITY, CUSTOMER, "advance", "opportunity_stage is Closed Won"),
        ],
    ),
    # recycle, from each stage that allows it
    *[
        (
            f"recycle-from-{stage}",
            stage,
            NOT_CONVERTED,
            0,
            [(stage, RECYCLED, "recycle", "Closed - Not Converted: back to nurture")],
        )
        for stage in (MQL, SAL, SQL, OPPORTUNITY)
    ],
    (
        "advance-then-recycle",
        LEAD,
        {"is_converted": True, "opportunity_stage": "Closed Lost"},
        0,
        [
            (LEAD, OPPORTUNITY, "advance", "is_converted is true"),
            (OPPORTUNITY, RECYCLED, "recycle", "opportunity lost"),
        ],
    ),
    # requalify
    ("recycled-to-mql", RECYCLED, {}, 65, [(RECYCLED, MQL, "requalify", "score 65 ≥ 60")]),
    (
        "recycled-to-mql-to-sal",
        RECYCLED,
        WORKING,
        65,
        [
            (RECYCLED, MQL, "requalify", "score 65 ≥ 60"),
            (MQL, SAL, "advance", "owner_id present and sf_status is Working - Contacted"),
        ],
    ),
    ("recycled-to-sql", RECYCLED, HOT, 0, [(RECYCLED, SQL, "requalify", "rating is Hot")]),
    (
        "disqualified-requalified",
        DISQUALIFIED,
        {"lead_status": "OPEN"},
        0,
        [(DISQUALIFIED, LEAD, "requalify", "reopened")],
    ),
    (
        "disqualified-requalified-to-mql",
        DISQUALIFIED,
        {"lead_status": "OPEN"},
        80,
        [
            (DISQUALIFIED, LEAD, "requalify", "reopened"),
            (LEAD, MQL, "advance", "score 80 ≥ 60"),
        ],
    ),
    # disqualify, from each stage that allows it, before any advance
    *[
        (
            f"disqualify-from-{stage}",
            stage,
            {**UNQUALIFIED, **HOT},
            90,
            [(stage, DISQUALIFIED, "disqualify", "unqualified")],
        )
        for stage in (LEAD, MQL, SAL, SQL, OPPORTUNITY, RECYCLED)
    ],
    (
        "disqualify-new-lead",
        None,
        UNQUALIFIED,
        0,
        [(None, LEAD, "enter", "new lead"), (LEAD, DISQUALIFIED, "disqualify", "unqualified")],
    ),
]


@pytest.mark.parametrize(
    ("current", "lead", "total", "expected"),
    [case[1:] for case in ALLOWED],
    ids=[case[0] for case in ALLOWED],
)
def test_the_machine_makes_each_allowed_transition_with_its_reason(
    current: Stage | None,
    lead: dict[str, Any],
    total: int,
    expected: list[tuple[Stage | None, Stage, str, str]],
) -> None:
    assert moves(current, lead, total) == expected


REFUSED = [
    ("score-drop-keeps-mql", MQL, {}, 10),
    ("score-drop-keeps-sql", SQL, {}, 10),
    ("no-move-back-from-opportunity", OPPORTUNITY, HOT, 90),
    ("lead-stays-lead", LEAD, {}, 59),
    ("sal-needs-mql-first", LEAD, WORKING, 10),
    ("no-recycle-from-lead", LEAD, NOT_CONVERTED, 0),
    ("no-recycle-from-customer", CUSTOMER, NOT_CONVERTED, 0),
    ("customer-is-final", CUSTOMER, {**UNQUALIFIED, "opportunity_stage": "Closed Lost"}, 0),
    ("disqualified-without-requalify", DISQUALIFIED, {**WON, **HOT}, 95),
    ("disqualified-while-still-unqualified", DISQUALIFIED, UNQUALIFIED, 95),
    ("recycled-while-recycle-holds", RECYCLED, NOT_CONVERTED, 95),
    ("recycled-without-criteria", RECYCLED, {}, 30),
]


@pytest.mark.parametrize(
    ("current", "lead", "total"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED]
)
def test_the_machine_refuses_to_move_without_cause(
    current: Stage, lead: dict[str, Any], total: int
) -> None:
    assert moves(current, lead, total) == []


def test_a_requalify_rule_needs_no_disqualify_rule_holding() -> None:
    # Requalify on a high score: still refused while the lead is marked unqualified.
    rules = RULES.replace(
        'all = [{ field = "lead_status", equals = "OPEN" }]',
        'all = [{ field = "score", gte = 90 }]',
    )
    lenient = definition(rules=rules)
    assert moves(DISQUALIFIED, UNQUALIFIED, 95, lenient) == []
    assert moves(DISQUALIFIED, {}, 95, lenient) == [
        (DISQUALIFIED, LEAD, "requalify", "reopened"),
        (LEAD, MQL, "advance", "score 95 ≥ 60"),
    ]


def test_disqualified_is_terminal_without_requalify_rules() -> None:
    strict = definition(rules=RULES.split("[[lifecycle.requalify]]")[0])
    assert moves(DISQUALIFIED, {"lead_status": "OPEN"}, 95, strict) == []


@pytest.mark.parametrize(
    ("requires_previous", "expected"),
    [
        ("", []),  # the default for SAL: only an MQL can be accepted
        ("requires_previous = true", []),
        (
            "requires_previous = false",
            [(LEAD, SAL, "advance", "owner_id present and sf_status is Working - Contacted")],
        ),
    ],
)
def test_sal_requires_mql_unless_told_otherwise(
    requires_previous: str, expected: list[tuple[Stage, Stage, str, str]]
) -> None:
    stages = STAGES.replace(
        "[lifecycle.stages.sal]", f"[lifecycle.stages.sal]\n{requires_previous}"
    )
    assert moves(LEAD, WORKING, 10, definition(stages)) == expected


@pytest.mark.parametrize(
    ("current", "lead", "total", "expected"),
    [
        (LEAD, HOT, 0, []),  # no skipping to SQL any more
        (SAL, HOT, 0, [(SAL, SQL, "advance", "rating is Hot")]),
        (
            MQL,
            {**WORKING, **HOT},
            0,
            [
                (MQL, SAL, "advance", "owner_id present and sf_status is Working - Contacted"),
                (SAL, SQL, "advance", "rating is Hot"),
            ],
        ),
    ],
)
def test_any_stage_can_require_the_previous_one(
    current: Stage, lead: dict[str, Any], total: int, expected: list[Any]
) -> None:
    stages = STAGES.replace(
        "[lifecycle.stages.sql]", "[lifecycle.stages.sql]\nrequires_previous = true"
    )
    assert moves(current, lead, total, definition(stages)) == expected


def test_criteria_explain_the_first_of_any_that_holds() -> None:
    both = {"rating": "Hot", "lead_status": "OPEN_DEAL"}
    assert moves(SAL, both) == [(SAL, SQL, "advance", "rating is Hot")]


def test_criteria_can_test_fit_and_engagement() -> None:
    stages = STAGES.replace(
        'all = [{ field = "score", gte = 60 }]',
        'all = [{ field = "fit", gte = 20 }, { field = "engagement", between = [10, 50] }]',
    )
    split = Score(40, fit=25, engagement=15, grade="C", reasons=(), model_version="test")
    transitions = next_transitions(LEAD, {}, split, definition(stages), now=NOW)
    assert [(t.to_stage, t.reason) for t in transitions] == [
        (MQL, "fit 25 ≥ 20 and engagement 15 within 10–50")
    ]


def test_evaluation_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_transitions(LEAD, {}, score(0), DEFINITION, now=datetime(2024, 6, 1))


# --------------------------------------------------------------------------------------------
# Evidence: what the CRMs already hold
# --------------------------------------------------------------------------------------------

EVIDENCE = (
    STAGES.replace(
        "[lifecycle.stages.sal]",
        '[lifecycle.stages.sal]\nevidence = [{ field = "sf_status", equals = "Accepted" }]',
    )
    .replace(
        "[lifecycle.stages.sql]",
        "[lifecycle.stages.sql]\n"
        'evidence = [{ field = "hubspot_lifecycle", equals = "salesqualifiedlead" }]',
    )
    .replace(
        "[lifecycle.stages.opportunity]",
        "[lifecycle.stages.opportunity]\nevidence = [\n"
        '  { field = "hubspot_lifecycle", equals = "opportunity" },\n'
        '  { field = "converted_opportunity_id", present = true },\n]',
    )
    .replace(
        "[lifecycle.stages.customer]",
        "[lifecycle.stages.customer]\n"
        'evidence = [{ field = "hubspot_lifecycle", in = ["customer", "evangelist"] }]',
    )
)
WITH_EVIDENCE = definition(EVIDENCE)
FROM = {"hubspot_lifecycle": "HubSpot", "converted_opportunity_id": "Salesforce"}


def adopted(
    current: Stage | None,
    lead: dict[str, Any],
    before: dict[str, Any] | None = None,
    total: int = 0,
) -> list[tuple[Stage | None, Stage, TransitionKind, str]]:
    transitions = next_transitions(
        current, lead, score(total), WITH_EVIDENCE, now=NOW, before=before, sources=FROM
    )
    return [(t.from_stage, t.to_stage, t.kind, t.reason) for t in transitions]


def test_a_lead_first_seen_starts_at_the_latest_stage_the_crms_give_it() -> None:
    assert adopted(None, {"hubspot_lifecycle": "customer"}) == [
        (None, CUSTOMER, "adopt", "adopted from HubSpot: customer")
    ]
    assert adopted(None, {"hubspot_lifecycle": "salesqualifiedlead", **CONVERTED}) == [
        (None, SQL, "adopt", "adopted from HubSpot: salesqualifiedlead"),
        (SQL, OPPORTUNITY, "advance", "is_converted is true"),
    ]
    # The latest stage with evidence wins, whichever CRM gives it.
    both = {"hubspot_lifecycle": "salesqualifiedlead", "converted_opportunity_id": "006A"}
    assert adopted(None, both) == [
        (None, OPPORTUNITY, "adopt", "adopted from Salesforce: converted_opportunity_id present")
    ]


def test_a_lead_first_seen_without_evidence_enters_as_before() -> None:
    assert adopted(None, {"hubspot_lifecycle": "lead"}) == [(None, LEAD, "enter", "new lead")]


def test_evidence_skips_requires_previous_the_crm_already_decided() -> None:
    # SAL requires an MQL before it by criteria; a person who says the lead is accepted is
    # believed.
    assert adopted(None, {"sf_status": "Accepted"}) == [
        (None, SAL, "adopt", "adopted from sf_status: Accepted")
    ]


def test_a_persons_forward_move_is_adopted() -> None:
    before = {"hubspot_lifecycle": "marketingqualifiedlead"}
    now = {"hubspot_lifecycle": "salesqualifiedlead"}
    assert adopted(MQL, now, before) == [
        (MQL, SQL, "adopt", "adopted from HubSpot: salesqualifiedlead")
    ]


def test_evidence_the_previous_evaluation_saw_is_not_adopted_again() -> None:
    # The lead went back by a rule after the CRM said opportunity: the old value, unchanged,
    # does not pull it forward again on every run.
    same = {"hubspot_lifecycle": "opportunity"}
    assert adopted(RECYCLED, same, before=same) == []
    assert adopted(MQL, same, before=same) == []


def test_evidence_behind_the_lead_moves_nothing_back() -> None:
    assert adopted(OPPORTUNITY, {"hubspot_lifecycle": "salesqualifiedlead"}, before={}) == []


def test_a_recycled_lead_is_adopted_forward_by_a_persons_move() -> None:
    assert adopted(RECYCLED, {"hubspot_lifecycle": "salesqualifiedlead"}, before={}) == [
        (RECYCLED, SQL, "adopt", "adopted from HubSpot: salesqualifiedlead")
    ]


def test_a_recycle_rule_still_holding_takes_an_adopted_lead_back_with_its_reason() -> None:
    lead = {"hubspot_lifecycle": "salesqualifiedlead", **NOT_CONVERTED}
    assert adopted(RECYCLED, lead, before={}) == [
        (RECYCLED, SQL, "adopt", "adopted from HubSpot: salesqualifiedlead"),
        (SQL, RECYCLED, "recycle", "Closed - Not Converted: back to nurture"),
    ]


def test_a_disqualified_lead_is_not_adopted_out_of_it() -> None:
    lead = {"hubspot_lifecycle": "customer"}
    assert adopted(DISQUALIFIED, lead, before={}) == []
    # ... but once a requalify rule lets it out, a person's move is adopted.
    reopened = {**lead, "lead_status": "OPEN"}
    assert adopted(DISQUALIFIED, reopened, before={}) == [
        (DISQUALIFIED, LEAD, "requalify", "reopened"),
        (LEAD, CUSTOMER, "adopt", "adopted from HubSpot: customer"),
    ]


def test_a_disqualify_rule_beats_evidence_of_a_lead_first_seen() -> None:
    assert adopted(None, {"hubspot_lifecycle": "salesqualifiedlead", **UNQUALIFIED}) == [
        (None, SQL, "adopt", "adopted from HubSpot: salesqualifiedlead"),
        (SQL, DISQUALIFIED, "disqualify", "unqualified"),
    ]


def test_evidence_cannot_test_the_score() -> None:
    text = STAGES.replace(
        "[lifecycle.stages.sql]",
        '[lifecycle.stages.sql]\nevidence = [{ field = "score", gte = 1 }]',
    )
    with pytest.raises(ConfigError) as refused:
        parse_definition(SCORING + text + RULES, file="test.toml")
    (problem,) = refused.value.problems
    assert problem.key == "lifecycle.stages.sql.evidence[0].field"
    assert "lifecycle criteria only" in problem.message


def test_evidence_names_canonical_fields_of_the_mapping() -> None:
    text = SCORING + EVIDENCE.replace('"hubspot_lifecycle", equals', '"hubspot_stage", equals', 1)
    with pytest.raises(ConfigError) as refused:
        parse_definition(text + RULES, file="test.toml", fields=shipped_canonical_fields())
    (problem,) = refused.value.problems
    assert problem.key == "lifecycle.stages.sql.evidence[0].field"
    assert "unknown field 'hubspot_stage'" in problem.message
    assert problem.line == 1 + next(
        number for number, line in enumerate(text.splitlines()) if "hubspot_stage" in line
    )


# --------------------------------------------------------------------------------------------
# What the machine allows at all: any transition, however it was made
# --------------------------------------------------------------------------------------------

STRUCTURALLY_ALLOWED: list[tuple[Stage | None, Stage, TransitionKind]] = [
    (None, LEAD, "enter"),
    *[
        (earlier, later, "advance")
        for index, earlier in enumerate((LEAD, MQL, SAL, SQL, OPPORTUNITY))
        for later in (LEAD, MQL, SAL, SQL, OPPORTUNITY, CUSTOMER)[index + 1 :]
    ],
    *[(stage, RECYCLED, "recycle") for stage in (MQL, SAL, SQL, OPPORTUNITY)],
    *[
        (stage, DISQUALIFIED, "disqualify")
        for stage in (LEAD, MQL, SAL, SQL, OPPORTUNITY, RECYCLED)
    ],
    *[(RECYCLED, stage, "requalify") for stage in (MQL, SAL, SQL, OPPORTUNITY, CUSTOMER)],
    (DISQUALIFIED, LEAD, "requalify"),
    *[(None, stage, "adopt") for stage in (LEAD, MQL, SAL, SQL, OPPORTUNITY, CUSTOMER)],
    (MQL, SQL, "adopt"),
    (LEAD, CUSTOMER, "adopt"),
    *[(RECYCLED, stage, "adopt") for stage in (MQL, SAL, SQL, OPPORTUNITY, CUSTOMER)],
]
STRUCTURALLY_REFUSED: list[tuple[Stage | None, Stage, TransitionKind, str]] = [
    (MQL, LEAD, "advance", "advance from mql to lead is not allowed"),
    (SQL, MQL, "advance", "advance from sql to mql is not allowed"),
    (MQL, MQL, "advance", "advance from mql to mql is not allowed"),
    (LEAD, RECYCLED, "recycle", "recycle from lead to recycled is not allowed"),
    (CUSTOMER, RECYCLED, "recycle", "customer is final"),
    (CUSTOMER, DISQUALIFIED, "disqualify", "customer is final"),
    (CUSTOMER, LEAD, "requalify", "customer is final"),
    (DISQUALIFIED, LEAD, "advance", "advance from disqualified to lead is not allowed"),
    (DISQUALIFIED, MQL, "advance", "advance from disqualified to mql is not allowed"),
    (DISQUALIFIED, MQL, "requalify", "requalify from disqualified to mql is not allowed"),
    (RECYCLED, MQL, "advance", "advance from recycled to mql is not allowed"),
    (RECYCLED, LEAD, "requalify", "requalify from recycled to lead is not allowed"),
    (LEAD, MQL, "requalify", "requalify from lead to mql is not allowed"),
    (RECYCLED, RECYCLED, "recycle", "recycle from recycled to recycled is not allowed"),
    (
        DISQUALIFIED,
        DISQUALIFIED,
        "disqualify",
        "disqualify from disqualified to disqualified is not allowed",
    ),
    (None, MQL, "enter", "enter from nothing to mql is not allowed"),
    (LEAD, LEAD, "enter", "enter from lead to lead is not allowed"),
    (None, MQL, "advance", "advance from nothing to mql is not allowed"),
    (MQL, RECYCLED, "disqualify", "disqualify from mql to recycled is not allowed"),
    (SQL, MQL, "adopt", "adopt from sql to mql is not allowed"),
    (MQL, MQL, "adopt", "adopt from mql to mql is not allowed"),
    (DISQUALIFIED, SQL, "adopt", "adopt from disqualified to sql is not allowed"),
    (RECYCLED, LEAD, "adopt", "adopt from recycled to lead is not allowed"),
    (MQL, RECYCLED, "adopt", "adopt from mql to recycled is not allowed"),
    (CUSTOMER, CUSTOMER, "adopt", "customer is final"),
]


@pytest.mark.parametrize(("from_stage", "to_stage", "kind"), STRUCTURALLY_ALLOWED)
def test_the_state_allows_each_legal_transition(
    from_stage: Stage | None, to_stage: Stage, kind: TransitionKind
) -> None:
    assert refusal(from_stage, to_stage, kind) is None
    state = LifecycleState(from_stage)
    after = state.apply([Transition(from_stage, to_stage, NOW, "why", kind)])
    assert after.stage is to_stage
    assert after.history[-1] == Transition(from_stage, to_stage, NOW, "why", kind)


@pytest.mark.parametrize(("from_stage", "to_stage", "kind", "message"), STRUCTURALLY_REFUSED)
def test_the_state_refuses_each_illegal_transition(
    from_stage: Stage | None, to_stage: Stage, kind: TransitionKind, message: str
) -> None:
    assert refusal(from_stage, to_stage, kind) == message
    with pytest.raises(TransitionRefusedError) as refused:
        LifecycleState(from_stage).apply([Transition(from_stage, to_stage, NOW, "why", kind)])
    assert str(refused.value) == message


def test_the_state_refuses_a_transition_from_another_stage() -> None:
    with pytest.raises(TransitionRefusedError, match="the lead is at lead, not mql"):
        LifecycleState(LEAD).apply([Transition(MQL, SAL, NOW, "why", "advance")])


def test_the_state_refuses_naive_and_backdated_times() -> None:
    state = LifecycleState().apply([Transition(None, LEAD, NOW, "new lead", "enter")])
    with pytest.raises(TransitionRefusedError, match="timezone-aware"):
        state.apply([Transition(LEAD, MQL, datetime(2024, 6, 2), "why", "advance")])
    with pytest.raises(TransitionRefusedError, match="before the previous one"):
        state.apply([Transition(LEAD, MQL, NOW - timedelta(seconds=1), "why", "advance")])


def test_the_history_keeps_every_transition_in_order_and_replays() -> None:
    state = LifecycleState()
    days = iter(range(10))
    for lead, total in [({}, 0), ({}, 70), (WORKING, 70), (NOT_CONVERTED, 20), ({}, 65)]:
        now = NOW + timedelta(days=next(days))
        state = state.apply(next_transitions(state.stage, lead, score(total), DEFINITION, now=now))
    assert [(t.from_stage, t.to_stage, t.kind, t.at.day) for t in state.history] == [
        (None, LEAD, "enter", 1),
        (LEAD, MQL, "advance", 2),
        (MQL, SAL, "advance", 3),
        (SAL, RECYCLED, "recycle", 4),
        (RECYCLED, MQL, "requalify", 5),
    ]
    assert state.stage is MQL
    assert LifecycleState.replay(state.history) == state


# --------------------------------------------------------------------------------------------
# The shipped definition, end to end
# --------------------------------------------------------------------------------------------


def test_the_shipped_definition_walks_a_lead_through_the_funnel() -> None:
    shipped = load_definition(EXAMPLE)
    lead: dict[str, Any] = {
        "title": "VP Marketing",
        "employees": 450,
        "industry": "Computer Software",
        "country": "United States",
        "page_views": 30,
        "pricing_page_views": 3,
        "form_submissions": 2,
        "last_activity_at": NOW - timedelta(days=2),
    }
    steps: list[tuple[dict[str, Any], list[Stage]]] = [
        ({}, [MQL]),
        ({"owner_id": "005A", "sf_status": "Working - Contacted"}, [SAL]),
        ({"rating": "Hot"}, [SQL]),
        ({"is_converted": True, "converted_opportunity_id": "006A"}, [OPPORTUNITY]),
        ({"opportunity_stage": "Closed Won"}, [CUSTOMER]),
    ]
    state = LifecycleState().apply([Transition(None, LEAD, NOW, "new lead", "enter")])
    for change, stages in steps:
        lead.update(change)
        scored = score_lead(lead, shipped, now=NOW)
        made = next_transitions(state.stage, lead, scored, shipped, now=NOW)
        assert [transition.to_stage for transition in made] == stages
        state = state.apply(made)
    assert state.history[1].reason.startswith("score ")
    assert state.stage is CUSTOMER
