"""Scoring: each fit condition, caps, engagement signals, decay, rounding, clamping and grades."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadsync.mapping import definition as definition_file
from leadsync.mapping.definition import LeadDefinition, load_definition, parse_definition
from leadsync.mapping.scoring import Score, score_lead
from tests.support import shipped_canonical_fields

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "leadsync" / "examples" / "lead_definition.toml"

FIELDS = shipped_canonical_fields()

# The lifecycle part every scoring definition below needs to be a whole file.
LIFECYCLE = """
[lifecycle.stages.mql]
all = [{ field = "score", gte = 60 }]
[lifecycle.stages.sal]
all = [{ field = "owner_id", present = true }]
[lifecycle.stages.sql]
all = [{ field = "rating", equals = "Hot" }]
[lifecycle.stages.opportunity]
all = [{ field = "is_converted", equals = true }]
[lifecycle.stages.customer]
all = [{ field = "opportunity_stage", equals = "Closed Won" }]
"""
GRADES = """
[[scoring.grades]]
grade = "A"
min_score = 80
[[scoring.grades]]
grade = "B"
min_score = 60
[[scoring.grades]]
grade = "C"
min_score = 40
[[scoring.grades]]
grade = "D"
min_score = 0
"""


def definition(scoring: str) -> LeadDefinition:
    """A definition from the given scoring tables, with grades A/B/C/D unless they are given."""
    grades = "" if "scoring.grades" in scoring else GRADES
    return parse_definition(scoring + grades + LIFECYCLE, file="test.toml", fields=FIELDS)


def fit_rule(rule: str, points: int = 10) -> LeadDefinition:
    return definition(f"[[scoring.fit.rules]]\n{rule}\npoints = {points}\n")


def added_up(score: Score) -> int:
    """The sum of the signed points that open the reasons (notes have none)."""
    return sum(int(reason.split(" ", 1)[0]) for reason in score.reasons if reason[0] in "+-")


# --------------------------------------------------------------------------------------------
# Fit conditions
# --------------------------------------------------------------------------------------------

FIT_CONDITIONS = [
    # equals: text ignores case unless asked, numbers and booleans compare by value and kind
    ('field = "industry"\nequals = "Technology"', {"industry": "technology"}, True),
    ('field = "industry"\nequals = "Technology"', {"industry": "Tech"}, False),
    (
        'field = "industry"\nequals = "Technology"\ncase_sensitive = true',
        {"industry": "technology"},
        False,
    ),
    ('field = "industry"\nequals = "Technology"', {}, False),
    ('field = "employees"\nequals = 200', {"employees": 200}, True),
    ('field = "employees"\nequals = 200', {"employees": 201}, False),
    ('field = "is_converted"\nequals = true', {"is_converted": True}, True),
    ('field = "is_converted"\nequals = true', {"is_converted": False}, False),
    # in: any one of the values, text ignoring case
    ('field = "country"\nin = ["US", "Canada"]', {"country": "canada"}, True),
    ('field = "country"\nin = ["US", "Canada"]', {"country": "Mexico"}, False),
    ('field = "country"\nin = ["US", "Canada"]\ncase_sensitive = true', {"country": "us"}, False),
    ('field = "employees"\nin = [50, 100]', {"employees": 100}, True),
    ('field = "employees"\nin = [50, 100]', {"employees": 75}, False),
    # matches: a regular expression searched anywhere, ignoring case unless asked
    ("field = \"title\"\nmatches = '\\bvp\\b'", {"title": "VP Sales"}, True),
    ("field = \"title\"\nmatches = '\\bvp\\b'", {"title": "Vice President"}, False),
    (
        "field = \"title\"\nmatches = '\\bvp\\b'\ncase_sensitive = true",
        {"title": "VP Sales"},
        False,
    ),
    ("field = \"title\"\nmatches = '\\bvp\\b'", {"title": None}, False),
    # comparisons, each at its boundary
    ('field = "employees"\ngte = 200', {"employees": 200}, True),
    ('field = "employees"\ngte = 200', {"employees": 199}, False),
    ('field = "employees"\ngt = 200', {"employees": 201}, True),
    ('field = "employees"\ngt = 200', {"employees": 200}, False),
    ('field = "employees"\nlte = 10', {"employees": 10}, True),
    ('field = "employees"\nlte = 10', {"employees": 11}, False),
    ('field = "employees"\nlt = 10', {"employees": 9}, True),
    ('field = "employees"\nlt = 10', {"employees": 10}, False),
    ('field = "annual_revenue"\ngte = 1e6', {"annual_revenue": 2_500_000.0}, True),
    ('field = "employees"\ngte = 200', {"employees": None}, False),
    ('field = "employees"\ngte = 200', {"employees": "500"}, False),
    ('field = "employees"\ngte = 1', {"employees": True}, False),
    # between: inclusive at both ends
    ('field = "employees"\nbetween = [50, 199]', {"employees": 50}, True),
    ('field = "employees"\nbetween = [50, 199]', {"employees": 199}, True),
    ('field = "employees"\nbetween = [50, 199]', {"employees": 49}, False),
    ('field = "employees"\nbetween = [50, 199]', {"employees": 200}, False),
    # present: blank text counts as missing
    ('field = "phone"\npresent = true', {"phone": "+1 555 0100"}, True),
    ('field = "phone"\npresent = true', {"phone": "  "}, False),
    ('field = "phone"\npresent = true', {}, False),
    ('field = "phone"\npresent = false', {}, True),
    ('field = "phone"\npresent = false', {"phone": ""}, True),
    ('field = "phone"\npresent = false', {"phone": "+1 555 0100"}, False),
]


@pytest.mark.parametrize(("rule", "lead", "hit"), FIT_CONDITIONS)
def test_each_fit_condition_scores_its_points_only_when_it_holds(
    rule: str, lead: dict[str, Any], hit: bool
) -> None:
    score = score_lead(lead, fit_rule(rule), now=NOW)
    assert score.fit == (10 if hit else 0)
    assert len(score.reasons) == (1 if hit else 0)


def test_a_rule_asked_again_answers_as_a_new_one_would_for_each_value_and_its_kind() -> None:
    # A condition remembers its answer per value (a what-if asks it of every stored lead):
    # True == 1 for a dict, not for a condition, and a list is never remembered.
    rule = 'field = "employees"\nequals = 1'
    asked = fit_rule(rule)
    for value in [True, 1, 1.0, "1", False, 0, [1], None, 1, True, 1.0, [1]]:
        fresh = score_lead({"employees": value}, fit_rule(rule), now=NOW).fit
        assert score_lead({"employees": value}, asked, now=NOW).fit == fresh


def test_a_rule_past_the_values_it_remembers_still_answers_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(definition_file, "HELD_VALUES", 2)
    # An equals condition: a comparison is worked out at once, never remembered.
    asked = fit_rule('field = "industry"\nequals = "Software"')
    for industry in ["Retail", "Software", "Banking", "software", "Retail", "Mining", "SOFTWARE"]:
        assert score_lead({"industry": industry}, asked, now=NOW).fit == (
            10 if industry.lower() == "software" else 0
        )


def test_a_definition_read_again_scores_under_its_own_rules() -> None:
    # The service reads its files again for each job: what scoring compiled from the first
    # reading must not score a lead under the second.
    lead = {"employees": 300}
    before = fit_rule('field = "employees"\ngte = 200', points=20)
    assert score_lead(lead, before, now=NOW).fit == 20
    after = fit_rule('field = "employees"\ngte = 200', points=5)
    assert score_lead(lead, after, now=NOW).fit == 5
    assert score_lead(lead, before, now=NOW).fit == 20


def test_a_pattern_that_backtracks_forever_elsewhere_matches_in_linear_time() -> None:
    # A backtracking engine (Python's re) takes 2^n steps on this title: a sync pinned at
    # 100 % CPU for good. RE2 answers at once (the suite's timeout fails a hang).
    catastrophic = fit_rule("field = \"title\"\nmatches = '^(\\w+\\s?)*manager$'")
    assert score_lead({"title": "a " * 40 + "!"}, catastrophic, now=NOW).fit == 0
    assert score_lead({"title": "Senior sales manager"}, catastrophic, now=NOW).fit == 10


@pytest.mark.parametrize(
    ("rule", "lead", "reason"),
    [
        ('field = "employees"\ngte = 200', {"employees": 250}, "+10 employees ≥ 200"),
        ('field = "employees"\ngt = 200', {"employees": 250}, "+10 employees > 200"),
        ('field = "employees"\nlte = 200', {"employees": 150}, "+10 employees ≤ 200"),
        ('field = "employees"\nlt = 200', {"employees": 150}, "+10 employees < 200"),
        ('field = "employees"\nbetween = [50, 199]', {"employees": 60}, "+10 employees 50–199"),
        (
            'field = "industry"\nequals = "Banking"',
            {"industry": "banking"},
            "+10 industry is Banking",
        ),
        ('field = "country"\nin = ["US", "CA"]', {"country": "US"}, "+10 country in US, CA"),
        (
            "field = \"title\"\nmatches = 'chief'",
            {"title": "Chief of Staff"},
            "+10 title matches chief",
        ),
        ('field = "phone"\npresent = true', {"phone": "1"}, "+10 phone present"),
        ('field = "phone"\npresent = false', {}, "+10 phone missing"),
        ('field = "phone"\npresent = true\nlabel = "reachable"', {"phone": "1"}, "+10 reachable"),
    ],
)
def test_a_fit_reason_is_its_label_or_the_condition_in_words(
    rule: str, lead: dict[str, Any], reason: str
) -> None:
    assert score_lead(lead, fit_rule(rule), now=NOW).reasons == (reason,)


def test_negative_points_count_against_fit() -> None:
    rule = 'field = "title"\nmatches = \'student\'\nlabel = "student"'
    score = score_lead({"title": "Student"}, fit_rule(rule, points=-20), now=NOW)
    assert score.fit == -20
    assert score.reasons == ("-20 student", "+20 raised score to 0")
    assert score.total == 0


TITLE_GROUP = """
[scoring.fit.groups.title]
cap = 20
[[scoring.fit.rules]]
group = "title"
field = "title"
matches = "vp"
points = 15
label = "vp"
[[scoring.fit.rules]]
group = "title"
field = "title"
matches = "sales"
points = 10
label = "sales"
[[scoring.fit.rules]]
group = "title"
field = "title"
matches = "intern"
points = -20
label = "intern"
"""


@pytest.mark.parametrize(
    ("title", "fit", "reasons"),
    [
        ("VP Marketing", 15, ("+15 vp",)),
        ("Sales Manager", 10, ("+10 sales",)),
        ("VP Sales", 20, ("+15 vp", "+10 sales", "-5 capped title at 20")),
        # Only the positive points are capped; the negative rule still takes its 20 off.
        ("VP Sales intern", 0, ("+15 vp", "+10 sales", "-20 intern", "-5 capped title at 20")),
    ],
)
def test_a_group_cap_stops_the_groups_positive_points(
    title: str, fit: int, reasons: tuple[str, ...]
) -> None:
    score = score_lead({"title": title}, definition(TITLE_GROUP), now=NOW)
    assert score.fit == fit
    assert score.reasons == reasons


def test_the_fit_cap_limits_fit_after_group_caps() -> None:
    rules = "".join(
        f'[[scoring.fit.rules]]\nfield = "{field}"\npresent = true\npoints = 20\n'
        for field in ("phone", "email", "title")
    )
    scoring = definition(f"[scoring.fit]\ncap = 50\n{rules}")
    score = score_lead({"phone": "1", "email": "a@b.c", "title": "CEO"}, scoring, now=NOW)
    assert score.fit == 50
    assert score.reasons[-1] == "-10 capped fit at 50"


def test_a_cap_that_is_not_reached_adds_no_reason() -> None:
    scoring = definition("[scoring.fit]\ncap = 50\n" + TITLE_GROUP)
    score = score_lead({"title": "VP"}, scoring, now=NOW)
    assert score.reasons == ("+15 vp",)


# --------------------------------------------------------------------------------------------
# Engagement
# --------------------------------------------------------------------------------------------

SIGNALS = """
[scoring.engagement]
signals = [
  { field = "page_views",         points = 1,  cap = 15 },
  { field = "pricing_page_views", points = 5,  cap = 20 },
  { field = "form_submissions",   points = 10, cap = 30 },
  { field = "webinars_attended",  points = 15, cap = 30 },
  { field = "email_clicks",       points = 2,  cap = 10, label = "email clicks" },
]
"""


@pytest.mark.parametrize(
    ("field", "count", "points", "reason"),
    [
        ("page_views", 7, 7, "+7 page views: 7 × 1"),
        ("page_views", 15, 15, "+15 page views: 15 × 1"),
        ("page_views", 40, 15, "+15 page views: 40 × 1, capped at 15"),
        ("pricing_page_views", 3, 15, "+15 pricing page views: 3 × 5"),
        ("pricing_page_views", 5, 20, "+20 pricing page views: 5 × 5, capped at 20"),
        ("form_submissions", 2, 20, "+20 form submissions: 2 × 10"),
        ("form_submissions", 4, 30, "+30 form submissions: 4 × 10, capped at 30"),
        ("webinars_attended", 1, 15, "+15 webinars attended: 1 × 15"),
        ("webinars_attended", 3, 30, "+30 webinars attended: 3 × 15, capped at 30"),
        ("email_clicks", 4, 8, "+8 email clicks: 4 × 2"),
        ("email_clicks", 9, 10, "+10 email clicks: 9 × 2, capped at 10"),
    ],
)
def test_each_signal_scores_points_per_unit_up_to_its_cap(
    field: str, count: int, points: int, reason: str
) -> None:
    score = score_lead({field: count}, definition(SIGNALS), now=NOW)
    assert score.engagement == points
    assert score.reasons == (reason,)


@pytest.mark.parametrize("count", [0, -3, None, "12", True, float("nan")])
def test_a_signal_without_a_positive_count_scores_nothing(count: Any) -> None:
    score = score_lead({"page_views": count}, definition(SIGNALS), now=NOW)
    assert (score.engagement, score.reasons) == (0, ())


def test_the_engagement_cap_limits_the_sum_of_signals() -> None:
    capped = SIGNALS.replace("[scoring.engagement]", "[scoring.engagement]\ncap = 50")
    lead = {
        "page_views": 100,
        "pricing_page_views": 100,
        "form_submissions": 100,
        "webinars_attended": 100,
        "email_clicks": 100,
    }
    score = score_lead(lead, definition(capped), now=NOW)
    assert score.engagement == 50
    assert score.reasons[-1] == "-55 capped engagement at 50"


DECAYING = """
[scoring.engagement]
signals = [
  { field = "page_views", points = 1 },
]
[scoring.engagement.decay]
half_life_days = 30
"""


@pytest.mark.parametrize(
    ("lead", "engagement", "last_reason"),
    [
        ({"last_activity_at": NOW}, 40, "+40 page views: 40 × 1"),
        (
            {"last_activity_at": NOW - timedelta(days=30)},
            20,
            "-20 decay since last activity on 2024-05-02",
        ),
        (
            {"last_activity_at": NOW - timedelta(days=60)},
            10,
            "-30 decay since last activity on 2024-04-02",
        ),
        (
            {"last_activity_at": NOW - timedelta(days=15)},
            28,
            "-12 decay since last activity on 2024-05-17",
        ),
        (
            {"last_activity_at": NOW - timedelta(days=1)},
            39,
            "-1 decay since last activity on 2024-05-31",
        ),
        (
            {"last_activity_at": None, "last_conversion_at": NOW - timedelta(days=30)},
            20,
            "-20 decay since last conversion on 2024-05-02",
        ),
        ({}, 40, "no decay: no last activity or last conversion date"),
        (
            {"last_activity_at": NOW + timedelta(days=2)},
            40,
            "no decay: last activity is in the future (2024-06-03T12:00:00+00:00)",
        ),
    ],
    ids=[
        "today",
        "one-half-life",
        "two-half-lives",
        "half-a-half-life",
        "one-day",
        "fallback",
        "no-date",
        "future-date",
    ],
)
def test_engagement_decays_by_half_every_half_life(
    lead: dict[str, Any], engagement: int, last_reason: str
) -> None:
    score = score_lead({"page_views": 40, **lead}, definition(DECAYING), now=NOW)
    assert score.engagement == engagement
    assert score.reasons[-1] == last_reason
    assert added_up(score) == score.total


def test_an_activity_dated_after_the_records_last_change_decays_from_that_change() -> None:
    # A far-future date (a typo, a bad import) used to switch decay off until that date.
    lead = {"page_views": 40, "last_activity_at": NOW + timedelta(days=3650)}
    changed = NOW - timedelta(days=30)
    score = score_lead(lead, definition(DECAYING), now=NOW, recorded_by=changed)
    assert score.engagement == 20
    # The reason names the day decay runs from, the record's last change, not the typo.
    assert score.reasons[-1] == f"-20 decay since last activity on {changed.date().isoformat()}"
    assert "is after the record's last change" in score.reasons[-2]
    later = score_lead(
        lead, definition(DECAYING), now=NOW + timedelta(days=30), recorded_by=changed
    )
    assert later.engagement == 10


def test_decay_counts_from_a_plain_date_at_midnight_utc() -> None:
    lead = {"page_views": 40, "last_activity_at": (NOW - timedelta(days=30, hours=12)).date()}
    score = score_lead(lead, definition(DECAYING), now=NOW)
    assert score.engagement == 20


def test_no_engagement_means_no_decay_reason() -> None:
    score = score_lead({}, definition(DECAYING), now=NOW)
    assert score.reasons == ()


@pytest.mark.parametrize(
    ("page_views", "engagement", "decay_reason"),
    [
        (15, 8, "-7 decay since last activity on 2024-05-02"),  # 7.5 rounds up, not to even
        (25, 13, "-12 decay since last activity on 2024-05-02"),  # 12.5
        (13, 7, "-6 decay since last activity on 2024-05-02"),  # 6.5, where round() would give 6
        (3, 2, "-1 decay since last activity on 2024-05-02"),  # 1.5
        (1, 1, None),  # 0.5 rounds up to 1: no point lost, no reason
    ],
)
def test_decayed_engagement_rounds_half_up_once(
    page_views: int, engagement: int, decay_reason: str | None
) -> None:
    lead = {"page_views": page_views, "last_activity_at": NOW - timedelta(days=30)}
    score = score_lead(lead, definition(DECAYING), now=NOW)
    assert score.engagement == engagement
    assert (score.reasons[-1] if decay_reason else None) == decay_reason
    assert len(score.reasons) == (2 if decay_reason else 1)
    assert added_up(score) == score.total


def test_decay_reasons_name_the_date_so_they_read_the_same_tomorrow() -> None:
    lead = {"page_views": 40, "last_activity_at": NOW - timedelta(days=20)}
    today = score_lead(lead, definition(DECAYING), now=NOW)
    (reason,) = [r for r in today.reasons if "decay" in r]
    assert reason.endswith("decay since last activity on 2024-05-12")
    assert "ago" not in reason


STEPPED = DECAYING + "step = 5\n"


def _engagement_by_day(scoring: LeadDefinition, page_views: int, days: int) -> list[int]:
    start = NOW - timedelta(days=1)
    return [
        score_lead(
            {"page_views": page_views, "last_activity_at": start},
            scoring,
            now=start + timedelta(days=day),
        ).engagement
        for day in range(days)
    ]


def test_with_a_step_decay_moves_the_score_only_in_whole_steps() -> None:
    exact = _engagement_by_day(definition(DECAYING), 30, 200)
    stepped = _engagement_by_day(definition(STEPPED), 30, 200)
    # Exact decay changes the score on most days; in steps of 5 it changes 6 times in all.
    assert sum(a != b for a, b in itertools.pairwise(exact)) > 25
    changes = [(a, b) for a, b in itertools.pairwise(stepped) if a != b]
    assert [a - b for a, b in changes] == [5] * 6
    assert stepped[-1] == 0
    # Never more than a step above the exact figure, never below it (no threshold here).
    assert all(0 <= s - e < 5 for s, e in zip(stepped, exact, strict=True))


def test_a_stepped_reason_says_so_and_the_points_add_up() -> None:
    lead = {"page_views": 30, "last_activity_at": NOW - timedelta(days=30)}
    score = score_lead(lead, definition(STEPPED), now=NOW)
    assert score.engagement == 15
    assert score.reasons[-1] == "-15 decay since last activity on 2024-05-02, in steps of 5"
    assert added_up(score) == score.total


def test_a_step_that_would_hide_a_grade_change_is_taken_in_full() -> None:
    # 40 points sit exactly on grade C's 40: any exact loss makes the lead a D, so the first
    # point lost already takes a whole step off, and the grade changes on the day it changes.
    scoring = definition(STEPPED)
    for days in (1, 2, 4):
        lead = {"page_views": 40, "last_activity_at": NOW - timedelta(days=days)}
        exact = score_lead(lead, definition(DECAYING), now=NOW)
        stepped = score_lead(lead, scoring, now=NOW)
        assert exact.grade == stepped.grade == "D"
        assert stepped.total == 35


def test_a_step_that_would_hide_a_lifecycle_threshold_is_taken_in_full() -> None:
    lifecycle = LIFECYCLE.replace(
        '[lifecycle.stages.mql]\nall = [{ field = "score", gte = 60 }]',
        '[lifecycle.stages.mql]\nall = [{ field = "engagement", gte = 33 }]',
    )
    scoring = parse_definition(STEPPED + GRADES + lifecycle, file="t.toml", fields=FIELDS)
    by_day = _engagement_by_day(scoring, 36, 12)
    exact = _engagement_by_day(
        parse_definition(DECAYING + GRADES + lifecycle, file="t.toml", fields=FIELDS), 36, 12
    )
    # Above the threshold the step waits; the day the exact figure falls below 33, so does
    # the score, by a whole step.
    crossing = next(day for day, value in enumerate(exact) if value < 33)
    assert by_day[:crossing] == [36] * crossing
    assert by_day[crossing] == 31


# --------------------------------------------------------------------------------------------
# The total: clamping, reasons that add up, grades
# --------------------------------------------------------------------------------------------


def test_the_total_is_clamped_to_max_score_with_a_reason() -> None:
    scoring = definition(
        '[[scoring.fit.rules]]\nfield = "phone"\npresent = true\npoints = 70\n' + SIGNALS
    )
    score = score_lead({"phone": "1", "form_submissions": 4}, scoring, now=NOW)
    assert (score.fit, score.engagement, score.total) == (70, 30, 100)
    scoring = definition(
        "[scoring]\nmax_score = 90\n"
        '[[scoring.fit.rules]]\nfield = "phone"\npresent = true\npoints = 70\n' + SIGNALS
    )
    score = score_lead({"phone": "1", "form_submissions": 4}, scoring, now=NOW)
    assert score.total == 90
    assert score.reasons[-1] == "-10 capped score at 90"
    assert added_up(score) == 90


def test_a_negative_total_is_raised_to_zero_and_fit_keeps_its_sign() -> None:
    scoring = definition(
        '[[scoring.fit.rules]]\nfield = "phone"\npresent = false\npoints = -30\n' + SIGNALS
    )
    score = score_lead({"page_views": 5}, scoring, now=NOW)
    assert (score.fit, score.engagement, score.total) == (-30, 5, 0)
    assert score.reasons[-1] == "+25 raised score to 0"
    assert added_up(score) == 0


@pytest.mark.parametrize(
    ("total", "grade"),
    [(100, "A"), (80, "A"), (79, "B"), (60, "B"), (59, "C"), (40, "C"), (39, "D"), (0, "D")],
)
def test_grades_start_at_their_threshold(total: int, grade: str) -> None:
    scoring = definition(
        f'[[scoring.fit.rules]]\nfield = "phone"\npresent = true\npoints = {total}\n'
    )
    score = score_lead({"phone": "1"}, scoring, now=NOW)
    assert (score.total, score.grade) == (total, grade)


def test_the_score_carries_the_model_version() -> None:
    scoring = definition(SIGNALS)
    assert score_lead({}, scoring, now=NOW).model_version == scoring.model_version


def test_scoring_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        score_lead({}, definition(SIGNALS), now=datetime(2024, 6, 1))


SHIPPED = load_definition(EXAMPLE, fields=FIELDS)

leads = st.fixed_dictionaries(
    {},
    optional={
        "employees": st.integers(0, 100_000),
        "industry": st.sampled_from(["Technology", "Computer Software", "Banking", "Government"]),
        "title": st.sampled_from(["CEO", "VP Sales", "Director of IT", "Intern", "Engineer"]),
        "country": st.sampled_from(["United States", "DE", "Japan", ""]),
        "phone": st.sampled_from(["+1 555 0100", ""]),
        "email": st.sampled_from(["a@acme.com", "a@gmail.com"]),
        "page_views": st.integers(0, 300),
        "pricing_page_views": st.integers(0, 10),
        "form_submissions": st.integers(0, 10),
        "webinars_attended": st.integers(0, 3),
        "email_clicks": st.integers(0, 30),
        "last_activity_at": st.integers(-5, 400).map(lambda days: NOW - timedelta(hours=days * 7)),
        "last_conversion_at": st.integers(0, 400).map(lambda days: NOW - timedelta(days=days)),
    },
)


@settings(max_examples=300, deadline=None)
@given(lead=leads)
def test_the_reasons_of_the_shipped_definition_add_up_to_the_total(lead: dict[str, Any]) -> None:
    score = score_lead(lead, SHIPPED, now=NOW)
    assert added_up(score) == score.total
    assert 0 <= score.total <= 100
    assert score.grade in {"A", "B", "C", "D"}
