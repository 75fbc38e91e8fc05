"""The lead definition file: the shipped example, every kind of mistake, and the model version."""

from __future__ import annotations

import math
import pickle
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadsync.mapping.definition import (
    Criterion,
    LeadDefinition,
    TomlLines,
    load_definition,
    parse_definition,
)
from leadsync.problems import ConfigError, ConfigProblem
from tests.support import shipped_canonical_fields

EXAMPLE = Path(__file__).resolve().parents[2] / "leadsync" / "examples" / "lead_definition.toml"

FIELDS = shipped_canonical_fields()

VALID = """\
[scoring]
max_score = 100

[scoring.fit]
cap = 50

[scoring.fit.groups]
size = { cap = 20 }

[scoring.fit.groups.geo]
cap = 10

[[scoring.fit.rules]]
group = "size"
field = "employees"
gte = 200
points = 20

[[scoring.fit.rules]]
field = "title"
matches = 'vp|director'
points = 15

[[scoring.fit.rules]]
field = "country"
in = ["US", "Canada"]
points = 10

[scoring.engagement]
cap = 50
signals = [
  { field = "page_views", points = 1, cap = 15 },
  { field = "form_submissions", points = 10, cap = 30 },
]

[scoring.engagement.decay]
half_life_days = 30
age_from = ["last_activity_at", "last_conversion_at"]

[[scoring.grades]]
grade = "A"
min_score = 80

[[scoring.grades]]
grade = "B"
min_score = 60

[[scoring.grades]]
grade = "D"
min_score = 0

[lifecycle.stages.mql]
all = [
  { field = "score", gte = 60 },
  { field = "fit", gte = 20 },
]

[lifecycle.stages.sal]
all = [{ field = "owner_id", present = true }]

[lifecycle.stages.sql]
any = [{ field = "rating", equals = "Hot" }]

[lifecycle.stages.opportunity]
all = [{ field = "is_converted", equals = true }]

[lifecycle.stages.customer]
all = [{ field = "opportunity_stage", equals = "Closed Won" }]

[[lifecycle.recycle]]
reason = "back to nurture"
any = [{ field = "sf_status", equals = "Closed - Not Converted" }]

[[lifecycle.disqualify]]
reason = "unqualified"
any = [{ field = "lead_status", equals = "UNQUALIFIED" }]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lead_definition.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, fields: dict[str, str] | None = FIELDS) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as raised:
        load_definition(path, fields=fields)
    return raised.value.problems


def problems_or_none(text: str) -> list[ConfigProblem] | None:
    """The problems of a text, None when it loads; any other exception fails the test."""
    try:
        parse_definition(text, file="example.toml", fields=FIELDS)
    except ConfigError as error:
        return error.problems
    return None


def line_of(text: str, marker: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if marker in line)


def test_the_valid_base_file_loads(tmp_path: Path) -> None:
    # Guards the table below: each mistake there is the only thing wrong with its file.
    definition = load_definition(write(tmp_path, VALID), fields=FIELDS)
    assert definition.lifecycle.stages.sal.requires_previous is True
    assert definition.scoring.fit.rules[1].matches == "vp|director"


def test_the_shipped_example_loads_with_the_canonical_fields() -> None:
    definition = load_definition(EXAMPLE, fields=FIELDS)
    assert re.fullmatch(r"[0-9a-f]{12}", definition.model_version)
    assert [grade.grade for grade in definition.scoring.grades] == ["A", "B", "C", "D"]
    assert definition.lifecycle.stages.mql.all[0].field == "score"


# (case id, text replaced, replacement, expected key, line marker or None, message fragment)
MISTAKES = [
    ("bad-toml", "gte = 200", "gte = = 200", "", "gte = = 200", "not valid TOML"),
    (
        "unknown-table",
        "[scoring]",
        "[routing]\nhours = 4\n\n[scoring]",
        "routing",
        "[routing]",
        "unknown key",
    ),
    (
        "unknown-key",
        "gte = 200",
        "gte = 200\npointz = 3",
        "scoring.fit.rules[0].pointz",
        "pointz",
        "unknown key",
    ),
    (
        # A reason is written to both CRMs and kept in the store: no NUL (TOML's \\u0000).
        "nul-in-label",
        "gte = 200",
        'gte = 200\nlabel = "big\\u0000company"',
        "scoring.fit.rules[0].label",
        "big",
        "NUL character (U+0000)",
    ),
    (
        "unknown-key-inline",
        '{ field = "page_views", points = 1, cap = 15 }',
        '{ field = "page_views", points = 1, limit = 15 }',
        "scoring.engagement.signals[0].limit",
        "limit = 15",
        "unknown key",
    ),
    (
        "wrong-type-text",
        "points = 20",
        'points = "20"',
        "scoring.fit.rules[0].points",
        'points = "20"',
        "valid integer, not '20'",
    ),
    (
        "wrong-type-float",
        "size = { cap = 20 }",
        "size = { cap = 20.5 }",
        "scoring.fit.groups.size.cap",
        "size = {",
        "valid integer",
    ),
    (
        "wrong-type-bool",
        "gte = 200",
        'gte = 200\ncase_sensitive = "yes"',
        "scoring.fit.rules[0].case_sensitive",
        "case_sensitive",
        "valid boolean",
    ),
    (
        "wrong-type-table",
        "[scoring.fit]\ncap = 50",
        "[scoring.fit]\ncap = [50]",
        "scoring.fit.cap",
        "cap = [50]",
        "valid integer",
    ),
    (
        "unknown-field-fit",
        'field = "employees"',
        'field = "employes"',
        "scoring.fit.rules[0].field",
        "employes",
        "unknown field 'employes'",
    ),
    (
        "unknown-field-hint",
        'field = "employees"',
        'field = "employes"',
        "scoring.fit.rules[0].field",
        "employes",
        "did you mean 'employees'?",
    ),
    (
        "unknown-field-criterion",
        '{ field = "owner_id", present = true }',
        '{ field = "ownerid", present = true }',
        "lifecycle.stages.sal.all[0].field",
        "ownerid",
        "unknown field 'ownerid'",
    ),
    (
        "unknown-field-signal",
        '{ field = "page_views"',
        '{ field = "pageviews"',
        "scoring.engagement.signals[0].field",
        "pageviews",
        "unknown field 'pageviews'",
    ),
    (
        "unknown-field-decay",
        'age_from = ["last_activity_at", "last_conversion_at"]',
        'age_from = ["last_activity_at", "last_conversion"]',
        "scoring.engagement.decay.age_from[1]",
        "age_from",
        "unknown field 'last_conversion'",
    ),
    (
        "decay-from-non-date",
        'age_from = ["last_activity_at", "last_conversion_at"]',
        'age_from = ["page_views"]',
        "scoring.engagement.decay.age_from[0]",
        "age_from",
        "age needs a date field; page_views is integer",
    ),
    (
        "signal-on-text",
        '{ field = "page_views"',
        '{ field = "title"',
        "scoring.engagement.signals[0].field",
        '{ field = "title"',
        "a signal counts something: title is string",
    ),
    (
        "bad-regex",
        "matches = 'vp|director'",
        "matches = 'vp|(director'",
        "scoring.fit.rules[1].matches",
        "(director",
        "not a regular expression leadsync can match",
    ),
    (
        # Back-references need a backtracking engine, which a pattern can make spin forever.
        "backtracking-regex",
        "matches = 'vp|director'",
        "matches = '(vp)\\1'",
        "scoring.fit.rules[1].matches",
        "(vp)",
        "invalid escape sequence",
    ),
    (
        # A comparison with nan is never true: a rule that silently never fires.
        "nan-comparison",
        "gte = 200",
        "gte = nan",
        "scoring.fit.rules[0].gte",
        "gte = nan",
        "finite number",
    ),
    (
        "infinite-half-life",
        "half_life_days = 30",
        "half_life_days = inf",
        "scoring.engagement.decay.half_life_days",
        "half_life_days = inf",
        "finite number",
    ),
    (
        "numeric-on-text",
        "matches = 'vp|director'",
        "gte = 3",
        "scoring.fit.rules[1].gte",
        "gte = 3",
        "gte needs a number field; title is string",
    ),
    (
        "between-on-text",
        "matches = 'vp|director'",
        "between = [1, 3]",
        "scoring.fit.rules[1].between",
        "between = [1, 3]",
        "between needs a number field; title is string",
    ),
    (
        "regex-on-number",
        "gte = 200",
        "matches = '2..'",
        "scoring.fit.rules[0].matches",
        "matches = '2..'",
        "matches needs a text field; employees is integer",
    ),
    (
        "equals-wrong-kind",
        '{ field = "is_converted", equals = true }',
        '{ field = "is_converted", equals = "yes" }',
        "lifecycle.stages.opportunity.all[0].equals",
        '"yes"',
        "'yes' can never equal is_converted (boolean)",
    ),
    (
        "equals-not-one-value",
        '{ field = "rating", equals = "Hot" }',
        '{ field = "rating", equals = ["Hot"] }',
        "lifecycle.stages.sql.any[0].equals",
        '["Hot"]',
        "give one text, number, boolean or date",
    ),
    (
        "equals-local-datetime",
        '{ field = "rating", equals = "Hot" }',
        '{ field = "created_at", equals = 2024-05-01T00:00:00 }',
        "lifecycle.stages.sql.any[0].equals",
        "2024-05-01T00:00:00",
        "with its offset",
    ),
    (
        "in-wrong-kind",
        'in = ["US", "Canada"]',
        'in = ["US", 3]',
        "scoring.fit.rules[2].in[1]",
        'in = ["US", 3]',
        "'3' can never equal country (string)",
    ),
    (
        "score-on-text-compare",
        '{ field = "score", gte = 60 }',
        '{ field = "score", equals = "high" }',
        "lifecycle.stages.mql.all[0].equals",
        '"high"',
        "'high' can never equal score (integer)",
    ),
    (
        "score-field-in-fit",
        'field = "country"',
        'field = "score"',
        "scoring.fit.rules[2].field",
        'field = "score"',
        "lifecycle criteria only",
    ),
    (
        "no-condition",
        "gte = 200\n",
        "",
        "scoring.fit.rules[0]",
        "[[scoring.fit.rules]]",
        "give exactly one condition",
    ),
    (
        "two-conditions",
        "gte = 200",
        "gte = 200\nlte = 500",
        "scoring.fit.rules[0]",
        "[[scoring.fit.rules]]",
        "(given: gte, lte)",
    ),
    (
        "between-reversed",
        "gte = 200",
        "between = [200, 50]",
        "scoring.fit.rules[0].between",
        "between = [200, 50]",
        "the low end comes first",
    ),
    (
        "between-one-number",
        "gte = 200",
        "between = [200]",
        "scoring.fit.rules[0].between",
        "between = [200]",
        "at least 2 items",
    ),
    (
        "empty-in",
        'in = ["US", "Canada"]',
        "in = []",
        "scoring.fit.rules[2].in",
        "in = []",
        "at least 1 item",
    ),
    (
        "undeclared-group",
        'group = "size"',
        'group = "sizes"',
        "scoring.fit.rules[0].group",
        'group = "sizes"',
        "no group 'sizes'",
    ),
    (
        "negative-half-life",
        "half_life_days = 30",
        "half_life_days = -5",
        "scoring.engagement.decay.half_life_days",
        "half_life_days",
        "greater than 0",
    ),
    (
        "negative-cap",
        "[scoring.engagement]\ncap = 50",
        "[scoring.engagement]\ncap = -1",
        "scoring.engagement.cap",
        "cap = -1",
        "greater than or equal to 0",
    ),
    (
        "zero-signal-points",
        "points = 10, cap = 30",
        "points = 0, cap = 30",
        "scoring.engagement.signals[1].points",
        "points = 0",
        "greater than or equal to 1",
    ),
    (
        "grades-unsorted",
        'grade = "B"\nmin_score = 60',
        'grade = "B"\nmin_score = 85',
        "scoring.grades[1].min_score",
        "min_score = 85",
        "85 follows 80",
    ),
    (
        "grades-equal",
        'grade = "B"\nmin_score = 60',
        'grade = "B"\nmin_score = 80  # as A',
        "scoring.grades[1].min_score",
        "# as A",
        "each lower than the one before",
    ),
    (
        "grade-twice",
        'grade = "B"',
        'grade = "A"  # again',
        "scoring.grades[1].grade",
        "# again",
        "grade 'A' is listed twice",
    ),
    (
        "lowest-grade-not-zero",
        'grade = "D"\nmin_score = 0',
        'grade = "D"\nmin_score = 10',
        "scoring.grades[2].min_score",
        "min_score = 10",
        "the lowest grade must start at 0",
    ),
    (
        "grade-above-max",
        "max_score = 100",
        "max_score = 70",
        "scoring.grades[0].min_score",
        "min_score = 80",
        "above max_score 70",
    ),
    (
        "missing-stage",
        '[lifecycle.stages.customer]\nall = [{ field = "opportunity_stage", equals = "Closed Won" }]',  # noqa: E501
        "",
        "lifecycle.stages.customer",
        "[lifecycle.stages.mql]",
        "missing: this key is required",
    ),
    (
        "unknown-stage",
        "[lifecycle.stages.customer]",
        '[lifecycle.stages.won]\nall = [{ field = "rating", equals = "Hot" }]\n\n'
        "[lifecycle.stages.customer]",
        "lifecycle.stages.won",
        "[lifecycle.stages.won]",
        "unknown key",
    ),
    (
        "stage-without-conditions",
        'any = [{ field = "rating", equals = "Hot" }]',
        "requires_previous = true",
        "lifecycle.stages.sql",
        "[lifecycle.stages.sql]",
        "give the conditions as all = [...] and/or any = [...]",
    ),
    (
        "rule-without-reason",
        'reason = "unqualified"\n',
        "",
        "lifecycle.disqualify[0].reason",
        "[[lifecycle.disqualify]]",
        "missing",
    ),
    (
        "rules-not-a-list",
        "[[lifecycle.disqualify]]",
        "[lifecycle.disqualify]",
        "lifecycle.disqualify",
        "[lifecycle.disqualify]",
        "valid list",
    ),
    (
        "scoring-missing-grades",
        '[[scoring.grades]]\ngrade = "A"\nmin_score = 80\n\n[[scoring.grades]]\ngrade = "B"\n'
        'min_score = 60\n\n[[scoring.grades]]\ngrade = "D"\nmin_score = 0\n',
        "",
        "scoring.grades",
        "[scoring]",
        "missing",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "key", "marker", "message"),
    [case[1:] for case in MISTAKES],
    ids=[case[0] for case in MISTAKES],
)
def test_each_mistake_is_a_problem_naming_file_key_and_line(
    tmp_path: Path, old: str, new: str, key: str, marker: str, message: str
) -> None:
    assert old in VALID
    text = VALID.replace(old, new, 1)
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert len(problems) == 1, problems
    problem = problems[0]
    assert (problem.file, problem.key) == (str(path), key)
    assert problem.line == line_of(text, marker)
    assert message in problem.message
    assert str(problem).startswith(f"{path}:{problem.line}: ")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        VALID.replace('field = "employees"', 'field = "employes"')
        .replace("matches = 'vp|director'", "matches = '(vp'")
        .replace("half_life_days = 30", "half_life_days = 0")
        .replace('{ field = "owner_id", present = true }', '{ field = "owner", present = 1 }')
        .replace("[scoring]", "[routing]\nhours = 4\n\n[scoring]")
    )
    problems = problems_of(write(tmp_path, text))
    assert [problem.key for problem in problems] == [
        "routing",
        "scoring.fit.rules[0].field",
        "scoring.fit.rules[1].matches",
        "scoring.engagement.decay.half_life_days",
        "lifecycle.stages.sal.all[0].field",
        "lifecycle.stages.sal.all[0].present",
    ]
    assert all(problem.line is not None for problem in problems)


def test_without_a_field_list_any_field_name_is_accepted(tmp_path: Path) -> None:
    text = VALID.replace('field = "employees"', 'field = "headcount"')
    assert load_definition(write(tmp_path, text)).scoring.fit.rules[0].field == "headcount"
    assert [problem.key for problem in problems_of(write(tmp_path, text))] == [
        "scoring.fit.rules[0].field"
    ]


def test_the_default_decay_fields_must_exist_too(tmp_path: Path) -> None:
    text = VALID.replace('age_from = ["last_activity_at", "last_conversion_at"]\n', "")
    fields = {name: kind for name, kind in FIELDS.items() if name != "last_conversion_at"}
    [problem] = problems_of(write(tmp_path, text), fields=fields)
    assert problem.key == "scoring.engagement.decay.age_from[1]"
    assert problem.line == line_of(text, "[scoring.engagement.decay]")
    assert "unknown field 'last_conversion_at'" in problem.message


def test_the_score_is_never_a_field_of_the_mapping_in_scoring(tmp_path: Path) -> None:
    text = VALID.replace('field = "country"', 'field = "fit"')
    assert [p.key for p in problems_of(write(tmp_path, text), fields=None)] == [
        "scoring.fit.rules[2].field"
    ]


def test_a_missing_file_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    assert problems_of(path) == [ConfigProblem(str(path), "", "no such file")]


def test_an_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"# caf\xe9\n")
    [problem] = problems_of(path)
    assert (problem.file, problem.key) == (str(path), "")
    assert problem.message.startswith("cannot read")


EXAMPLE_LINES = EXAMPLE.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("dropped", range(len(EXAMPLE_LINES)))
def test_the_example_without_any_one_line_loads_or_fails_as_config_error(dropped: int) -> None:
    text = "\n".join(EXAMPLE_LINES[:dropped] + EXAMPLE_LINES[dropped + 1 :])
    problems = problems_or_none(text)
    assert problems is None or problems
    assert all(problem.file == "example.toml" for problem in problems or ())


WRONG_VALUES = ['"text"', "3", "-1", "true", "[]", "{}", "1979-05-27", "[1, 2]", "0.5"]


@pytest.mark.parametrize("wrong", WRONG_VALUES)
def test_any_value_of_the_example_replaced_fails_only_as_config_error(wrong: str) -> None:
    # Every `key = value` line of the example, its value swapped for a value of another kind.
    for number, line in enumerate(EXAMPLE_LINES):
        assignment = re.match(r"(\s*[A-Za-z_]+\s*=\s*)[^\[{]", line)
        if assignment is None:
            continue
        mutated = [*EXAMPLE_LINES]
        mutated[number] = assignment.group(1) + wrong
        problems = problems_or_none("\n".join(mutated))
        assert problems is None or problems


# --------------------------------------------------------------------------------------------
# The model version
# --------------------------------------------------------------------------------------------

REFORMATTED = [
    ("comments", lambda text: text.replace("\n[", "\n# a comment\n[") + "# the end\n"),
    ("blank-lines", lambda text: text.replace("\n", "\n\n")),
    ("spacing", lambda text: text.replace(" = ", "   =   ")),
    (
        "key-order",
        lambda text: text.replace(
            'group = "size"\nfield = "employees"\ngte = 200\npoints = 20',
            'points = 20\ngte = 200\nfield = "employees"\ngroup = "size"',
        ).replace(
            '{ field = "page_views", points = 1, cap = 15 }',
            '{ cap = 15, points = 1, field = "page_views" }',
        ),
    ),
    (
        "table-order",
        lambda text: text.replace("[scoring.fit.groups]\nsize = { cap = 20 }\n", "").replace(
            "[scoring.engagement]",
            "[scoring.fit.groups]\nsize = { cap = 20 }\n\n[scoring.engagement]",
        ),
    ),
    (
        "inline-versus-table",
        lambda text: text.replace(
            "[scoring.fit.groups]\nsize = { cap = 20 }", "[scoring.fit.groups.size]\ncap = 20"
        ),
    ),
    ("literal-versus-basic-string", lambda text: text.replace("'vp|director'", '"vp|director"')),
    ("float-spelling", lambda text: text.replace("gte = 200", "gte = 200.0")),
    ("default-left-out", lambda text: text.replace("max_score = 100\n", "")),
    (
        "dictionary-order",
        lambda text: text.replace(
            "[scoring.fit.groups]\nsize = { cap = 20 }\n\n[scoring.fit.groups.geo]\ncap = 10\n",
            "[scoring.fit.groups.geo]\ncap = 10\n\n[scoring.fit.groups]\nsize = { cap = 20 }\n",
        ),
    ),
    (
        "sal-default-made-explicit",
        lambda text: text.replace(
            "[lifecycle.stages.sal]", "[lifecycle.stages.sal]\nrequires_previous = true"
        ),
    ),
]


@pytest.mark.parametrize(
    "reformat", [case[1] for case in REFORMATTED], ids=[case[0] for case in REFORMATTED]
)
def test_the_model_version_ignores_how_the_file_is_written(reformat: object) -> None:
    assert callable(reformat)
    original = parse_definition(VALID, file="a.toml", fields=FIELDS)
    text = reformat(VALID)
    assert text != VALID
    assert (
        parse_definition(text, file="b.toml", fields=FIELDS).model_version == original.model_version
    )


# The service levels come last; they are not part of the scoring model.
SLA_START = EXAMPLE_LINES.index("[sla]")
HANDOFF_START = next(n for n, line in enumerate(EXAMPLE_LINES) if line == "[handoff]")


def _numbers(lines: list[str], offset: int = 0) -> list[tuple[int, int, int]]:
    """Every number in `lines`, outside comments and strings: (line index, start, end)."""
    return [
        (offset + index, found.start(), found.end())
        for index, line in enumerate(lines)
        if not line.lstrip().startswith("#")
        for found in re.finditer(r"(?<![\w\".'-])\d+(?![\w\".'-])", line.split("#")[0])
    ]


NUMBERS = _numbers(EXAMPLE_LINES[:SLA_START])
SLA_NUMBERS = [
    (index, start, end)
    for index, start, end in _numbers(EXAMPLE_LINES[SLA_START:HANDOFF_START], SLA_START)
    # Dates and times of day: a +1 may not make a valid one.
    if not re.search(r"\d[-:]\d|\d[-:]|[-:]\d", EXAMPLE_LINES[index][max(0, start - 1) : end + 1])
]


@pytest.mark.parametrize(("index", "start", "end"), NUMBERS)
def test_the_model_version_changes_with_any_number(index: int, start: int, end: int) -> None:
    original = load_definition(EXAMPLE, fields=FIELDS)
    lines = [*EXAMPLE_LINES]
    line = lines[index]
    lines[index] = f"{line[:start]}{int(line[start:end]) + 1}{line[end:]}"
    problems = problems_or_none("\n".join(lines))
    if problems is None:
        changed = parse_definition("\n".join(lines), file="changed.toml", fields=FIELDS)
        assert changed.model_version != original.model_version
    else:  # the one number that cannot change: the lowest grade starts at 0
        assert [problem.key for problem in problems] == ["scoring.grades[3].min_score"]


def test_every_number_of_the_example_is_covered() -> None:
    # Guards the tests around: the pattern must find the numbers the example is made of.
    assert len(NUMBERS) > 40
    assert len(SLA_NUMBERS) >= 3


@pytest.mark.parametrize(("index", "start", "end"), SLA_NUMBERS)
def test_service_levels_are_not_part_of_the_model_version(index: int, start: int, end: int) -> None:
    # A new SLA target must not rewrite the model version on every lead in both CRMs.
    original = load_definition(EXAMPLE, fields=FIELDS)
    lines = [*EXAMPLE_LINES]
    line = lines[index]
    lines[index] = f"{line[:start]}{int(line[start:end]) + 1}{line[end:]}"
    changed = parse_definition("\n".join(lines), file="changed.toml", fields=FIELDS)
    assert changed.sla != original.sla
    assert changed.model_version == original.model_version


def test_the_handoff_is_not_part_of_the_model_version() -> None:
    # Routing a lead elsewhere changes no score or stage: no rewrite of every lead's version.
    original = load_definition(EXAMPLE, fields=FIELDS)
    text = EXAMPLE.read_text(encoding="utf-8").replace("capacity = 40", "capacity = 41")
    changed = parse_definition(text, file="changed.toml", fields=FIELDS)
    assert changed.handoff != original.handoff
    assert changed.model_version == original.model_version


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('{ field = "rating", equals = "Hot" }', '{ field = "rating", equals = "Warm" }'),
        ('label = "title is director"', 'label = "director"'),
        ("requires_previous = true", "requires_previous = false"),
    ],
)
def test_the_model_version_changes_with_any_value(old: str, new: str) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    original = parse_definition(text, file="a.toml", fields=FIELDS)
    changed = parse_definition(text.replace(old, new, 1), file="b.toml", fields=FIELDS)
    assert changed.model_version != original.model_version


# --------------------------------------------------------------------------------------------
# Where keys are
# --------------------------------------------------------------------------------------------

NESTED = '''\
title = """
a [fake] = header
"""
dotted.key = 1
[a]
x = 1
[[a.items]]
name = 'one'
[[a.items]]
name = "two # not a comment"
[a.items.sub]
deep = [
  1,
  { k = 2 }, # a comment with [brackets]
]
[[a.items.sub.list]]
v = 3
'''


@pytest.mark.parametrize(
    ("key", "line"),
    [
        ("title", 1),
        ("dotted.key", 4),
        ("dotted", 4),
        ("a.x", 6),
        ("a.items", 7),
        ("a.items[0].name", 8),
        ("a.items[1].name", 10),
        ("a.items[1].sub", 11),
        ("a.items[1].sub.deep", 12),
        ("a.items[1].sub.deep[0]", 13),
        ("a.items[1].sub.deep[1].k", 14),
        ("a.items[1].sub.list[0].v", 17),
        ("a.items[1].sub.missing", 11),  # a missing key: its table
        ("nothing.here", None),
    ],
)
def test_toml_lines_finds_each_key(key: str, line: int | None) -> None:
    assert TomlLines(NESTED).line_of(key) == line


# ================================================================================ compiled


def test_what_a_definition_compiles_is_built_once_per_definition_object() -> None:
    definition = load_definition(EXAMPLE, fields=FIELDS)
    built: list[LeadDefinition] = []

    def build(compiled_from: LeadDefinition) -> int:
        built.append(compiled_from)
        return len(built)

    assert (definition.compiled(build), definition.compiled(build)) == (1, 1)
    copy = replace(definition, model_version="other")
    assert copy.compiled(build) == 2
    assert load_definition(EXAMPLE, fields=FIELDS).compiled(build) == 3
    assert built[:2] == [definition, copy]


def test_a_definition_still_pickles_once_compiled() -> None:
    definition = load_definition(EXAMPLE, fields=FIELDS)
    assert definition.compiled(lambda compiled_from: len(compiled_from.scoring.fit.rules)) > 0

    copy = pickle.loads(pickle.dumps(definition))  # noqa: S301 - our own bytes

    assert copy == definition
    assert copy.compiled(lambda compiled_from: compiled_from.model_version) == (
        definition.model_version
    )


# Every kind of condition, on a number, a text, a date and a flag field.
CONDITIONS = [
    {"field": "employees", "gte": 200},
    {"field": "employees", "gt": 200},
    {"field": "employees", "lte": 10},
    {"field": "employees", "lt": 10.5},
    {"field": "employees", "between": [50, 199]},
    {"field": "employees", "equals": 200},
    {"field": "annual_revenue", "in": [1, 2.5]},
    {"field": "employees", "present": True},
    {"field": "employees", "present": False},
    {"field": "score", "gte": 60},
    {"field": "industry", "equals": "Software"},
    {"field": "industry", "in": ["Software", "Banking"], "case_sensitive": True},
    {"field": "industry", "matches": "^soft"},
    {"field": "industry", "present": True},
    {"field": "is_converted", "equals": True},
    {"field": "last_activity_at", "present": False},
]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1_000, 1_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "  ", "Software", "software ", "SOFT", "200", "Banking"]),
    st.text(max_size=5),
    st.dates(),
    st.lists(st.integers(), max_size=2),
)


@pytest.mark.parametrize("condition", CONDITIONS, ids=str)
@given(value=VALUES)
def test_a_compiled_condition_answers_as_the_condition_does(
    condition: dict[str, Any], value: Any
) -> None:
    criterion = Criterion.model_validate(condition, context={"fields": FIELDS})
    compiled = criterion.compile()
    for facts in ({criterion.field: value}, {}):
        assert compiled(facts) is criterion.holds(facts)


def test_a_compiled_comparison_reads_no_number_from_text_or_a_flag() -> None:
    compiled = Criterion.model_validate({"field": "employees", "gte": 1}).compile()
    assert [compiled({"employees": value}) for value in ("5", True, None, math.nan, 5)] == [
        False,
        False,
        False,
        False,
        True,
    ]
