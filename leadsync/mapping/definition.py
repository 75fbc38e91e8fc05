"""The lead definition file RevOps edit: scoring rules and lifecycle criteria, loaded and checked.

    [scoring]                          max_score, fit, engagement, grades
    [[scoring.fit.rules]]              field + one condition + points (+ group, label)
    [scoring.engagement]               signals (points per unit, cap), cap, decay
    [lifecycle.stages.<stage>]         all = [...] / any = [...] conditions, requires_previous,
                                       evidence = [...]: CRM values that say a lead is there
    [[lifecycle.recycle]] ...          all / any conditions + reason (also disqualify, requalify)
    [sla] ...                          service levels and their calendars (see sla_rules)
    [handoff]                          when a lead goes to sales (stage, require = [...]) and
    [[handoff.routes]]                 who owns it: name, when = [...], team, capacity;
                                       fallback_owner; or assignment = "salesforce"

A *condition* tests one canonical field with exactly one of: `equals`, `in`, `matches` (a regular
expression, searched), `gte`, `gt`, `lte`, `lt`, `between = [low, high]` (inclusive) or
`present = true|false`. Text comparisons ignore case unless `case_sensitive = true`; a blank
string counts as missing. Lifecycle criteria may also test `score`, `fit` and `engagement`.

Every mistake becomes a `ConfigProblem` naming the file, the dotted key (list items as `[i]`,
counted from 0) and the line where it can be found; all of them at once, in a `ConfigError`.
The model version is a hash of the validated scoring and lifecycle: formatting, comments and key
order do not change it, any value does. The [sla] section is not part of it: service levels
judge the handoff, they do not change a lead's score or stage.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeGuard, TypeVar

import re2
from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from leadsync.mapping.sla_rules import SlaModel, cross_key_problems
from leadsync.mapping.validation import (
    StrictModel,
    known_fields,
    problems,
    unknown_field_message,
)
from leadsync.problems import (
    ConfigError,
    ConfigProblem,
    TomlLines,
    below,
    parse_toml,
    read_text,
    validation_problems,
)

__all__ = [
    "SCORE_FIELDS",
    "Condition",
    "Criteria",
    "Criterion",
    "Decay",
    "EngagementModel",
    "FitGroup",
    "FitModel",
    "FitRule",
    "Grade",
    "LeadDefinition",
    "LifecycleModel",
    "ScoringModel",
    "Signal",
    "StageCriteria",
    "StagesModel",
    "TomlLines",
    "TransitionRule",
    "load_definition",
    "parse_definition",
]

# Pseudo-fields that lifecycle criteria may test: the lead's score, not a CRM value.
SCORE_FIELDS: tuple[str, ...] = ("score", "fit", "engagement")
NUMERIC_TYPES = frozenset({"integer", "number"})
DATE_TYPES = frozenset({"date", "datetime"})
CONDITION_KEYS: tuple[str, ...] = (
    "equals",
    "in",
    "matches",
    "gte",
    "gt",
    "lte",
    "lt",
    "between",
    "present",
)
_COMPARISON_SIGNS = {"gte": "≥", "gt": ">", "lte": "≤", "lt": "<"}
_COMPARISONS = {"gte": operator.ge, "gt": operator.gt, "lte": operator.le, "lt": operator.lt}
_DEFAULT_AGE_FIELDS = ("last_activity_at", "last_conversion_at")


def _value_fits(value: Any, field_type: str) -> bool:
    """Whether a value from the file can be compared with a field of this canonical type."""
    checks = {
        "string": isinstance(value, str),
        "integer": _is_number(value) and isinstance(value, int),
        "number": _is_number(value),
        "boolean": isinstance(value, bool),
        "date": isinstance(value, date) and not isinstance(value, datetime),
        "datetime": isinstance(value, datetime),
    }
    return checks.get(field_type, True)  # a type we do not know: nothing to check against


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | date)


def _scalar_problem(value: Any) -> str | None:
    """Why a value from the file cannot be compared with a lead's value, if it cannot."""
    if not _is_scalar(value):
        return "give one text, number, boolean or date"
    if isinstance(value, datetime) and value.tzinfo is None:
        # Canonical datetimes are aware: a local one would never be equal to any of them.
        return "give the date-time with its offset, e.g. 2024-05-01T00:00:00Z"
    return None


def _is_present(value: Any) -> bool:
    # CRMs hold "" for a cleared text field: for a rule it is as missing as None.
    return value is not None and not (isinstance(value, str) and not value.strip())


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: Any) -> str:
    """A value as a reason shows it: `200` not `200.0`, `true` not `True`, dates in ISO."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# Whether a lead's facts (canonical field -> value) meet a condition or criteria, compiled.
Test = Callable[[Mapping[str, Any]], bool]

# How many values each condition remembers whether it holds for (`Condition.holds`): a few
# MB at most, and enough for the values of a field such as country across a store.
HELD_VALUES = 10_000


@functools.lru_cache(maxsize=256)
def _pattern(expression: str, case_sensitive: bool) -> Any:
    """`matches` compiled by RE2, which matches in time linear in the text whatever the
    pattern: one RevOps wrote with nested repeats (`^(\\w+\\s?)*manager$`) cannot pin a sync at
    100 % CPU as a backtracking engine would. RE2 refuses what only backtracking can do
    (back-references, look-around): `check` says so. Its `\\w` and `\\d` are ASCII."""
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.log_errors = False  # a refused pattern is a problem reported, not printed
    return re2.compile(expression, options)


# --------------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------------


class Condition(StrictModel):
    """One test on one canonical field: exactly one of the condition keys."""

    accepts_score_fields: ClassVar[bool] = False

    field: str = Field(min_length=1)
    equals: Any = None
    in_: list[Any] | None = Field(None, alias="in", min_length=1)
    matches: str | None = None
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None
    between: list[float] | None = Field(None, min_length=2, max_length=2)
    present: bool | None = None
    case_sensitive: bool = False

    @field_validator("field")
    @classmethod
    def _field_is_known(cls, name: str, info: ValidationInfo) -> str:
        if name in SCORE_FIELDS:
            if not cls.accepts_score_fields:
                raise problems(("", f"{name!r} is the score itself: lifecycle criteria only"))
            return name
        fields = known_fields(info)
        if fields is not None and name not in fields:
            raise problems(("", unknown_field_message(name, fields)))
        return name

    @field_validator("equals")
    @classmethod
    def _equals_is_scalar(cls, value: Any) -> Any:
        problem = None if value is None else _scalar_problem(value)
        if problem is not None:
            raise problems(("", problem))
        return value

    @field_validator("in_")
    @classmethod
    def _in_holds_scalars(cls, values: list[Any] | None) -> list[Any] | None:
        found = [(f"[{index}]", _scalar_problem(value)) for index, value in enumerate(values or ())]
        wrong = [(key, problem) for key, problem in found if problem is not None]
        if wrong:
            raise problems(*wrong)
        return values

    @field_validator("matches")
    @classmethod
    def _matches_compiles(cls, expression: str | None) -> str | None:
        if expression is not None:
            try:
                _pattern(expression, True)
            except re2.error as problem:
                reason = problem.args[0] if problem.args else problem
                if isinstance(reason, bytes):
                    reason = reason.decode("utf-8", "replace")
                raise problems(
                    ("", f"not a regular expression leadsync can match (RE2 syntax): {reason}")
                ) from None
        return expression

    @model_validator(mode="after")
    def _one_condition_that_suits_the_field(self, info: ValidationInfo) -> Condition:
        given = [key for key in CONDITION_KEYS if self._value_of(key) is not None]
        if len(given) != 1:
            named = ", ".join(given) if given else "none"
            raise problems(
                ("", f"give exactly one condition of {', '.join(CONDITION_KEYS)} (given: {named})")
            )
        found = []
        if self.between is not None and self.between[0] > self.between[1]:
            found.append(("between", "the low end comes first: between = [low, high]"))
        found.extend(self._type_problems(given[0], info))
        if found:
            raise problems(*found)
        return self

    def _type_problems(self, key: str, info: ValidationInfo) -> list[tuple[str, str]]:
        fields = known_fields(info)
        if self.field in SCORE_FIELDS:
            field_type = "integer"
        elif fields is not None:
            field_type = fields[self.field]
        else:
            return []
        what = f"{self.field} is {field_type}"
        if key in _COMPARISON_SIGNS or key == "between":
            if field_type not in NUMERIC_TYPES:
                return [(key, f"{key} needs a number field; {what}")]
        elif key == "matches":
            if field_type != "string":
                return [(key, f"matches needs a text field; {what}")]
        elif key == "equals":
            if not _value_fits(self.equals, field_type):
                return [
                    (key, f"{_show(self.equals)!r} can never equal {self.field} ({field_type})")
                ]
        elif key == "in":
            return [
                (f"in[{index}]", f"{_show(value)!r} can never equal {self.field} ({field_type})")
                for index, value in enumerate(self.in_ or ())
                if not _value_fits(value, field_type)
            ]
        return []

    def _value_of(self, key: str) -> Any:
        return self.in_ if key == "in" else getattr(self, key)

    # Cached: every lead's score and stage ask it of every condition (a what-if, of the whole
    # store), and a condition never changes (frozen).
    @functools.cached_property
    def kind(self) -> str:
        """Which condition key this condition uses."""
        return next(key for key in CONDITION_KEYS if self._value_of(key) is not None)

    def holds(self, facts: Mapping[str, Any]) -> bool:
        """Whether the lead's value of the field meets the condition; a missing value meets
        only `present = false`."""
        value = facts.get(self.field)
        # Remembered per value: leads share few values of the fields rules look at (a
        # country, an industry, a count), and a what-if asks every rule of every stored lead.
        # Keyed by type too: True == 1 for a dict, not for a condition.
        key = (type(value), value)
        try:
            held = self._held.get(key)
        except TypeError:  # a list: not remembered
            return self._value_holds(value)
        if held is None:
            held = self._value_holds(value)
            if len(self._held) < HELD_VALUES:
                self._held[key] = held
        return held

    @functools.cached_property
    def _held(self) -> dict[tuple[type, Any], bool]:
        return {}

    def compile(self) -> Test:
        """`holds` as a plain function, with everything that does not depend on the lead
        looked up once: what a compiled definition (`LeadDefinition.compiled`) tests each
        lead with. A comparison or `present` is worked out at once; the rest are remembered
        per value, as `holds` does."""
        name = self.field
        kind = self.kind
        if kind == "present":
            wanted = self.present

            def present(facts: Mapping[str, Any]) -> bool:
                return _is_present(facts.get(name)) is wanted

            return present
        if kind in _COMPARISONS or kind == "between":
            # Only a number compares (`_value_holds`): a missing value or text never holds.
            low, high = self.between or (0.0, 0.0)
            compare = _COMPARISONS.get(kind)
            bound = self._value_of(kind)

            def compares(facts: Mapping[str, Any]) -> bool:
                value = facts.get(name)
                if not _is_number(value):
                    return False
                if compare is None:
                    return low <= value <= high
                return bool(compare(value, bound))

            return compares
        return self.holds

    def _value_holds(self, value: Any) -> bool:
        kind = self.kind
        if kind == "present":
            return _is_present(value) is self.present
        if not _is_present(value):
            return False
        if kind == "equals":
            return self._same(value, self.equals)
        if kind == "in":
            return any(self._same(value, expected) for expected in self.in_ or ())
        if kind == "matches":
            found = _pattern(self.matches or "", self.case_sensitive).search
            return isinstance(value, str) and found(value) is not None
        return self._compares(value) if _is_number(value) else False

    def _compares(self, value: float) -> bool:
        if self.between is not None:
            return self.between[0] <= value <= self.between[1]
        kind = self.kind
        return bool(_COMPARISONS[kind](value, self._value_of(kind)))

    def _same(self, value: Any, expected: Any) -> bool:
        if isinstance(value, str) and isinstance(expected, str):
            if self.case_sensitive:
                return value == expected
            return value.casefold() == expected.casefold()
        if _is_number(value) and _is_number(expected):
            return bool(value == expected)
        # Otherwise only the same kind of value can be equal: True == 1 in Python, not here.
        return type(value) is type(expected) and bool(value == expected)

    def describe(self) -> str:
        """The condition in words, for a reason: `employees ≥ 200`, `phone present`."""
        kind = self.kind
        if kind == "present":
            return f"{self.field} {'present' if self.present else 'missing'}"
        if kind == "equals":
            return f"{self.field} is {_show(self.equals)}"
        if kind == "in":
            return f"{self.field} in {', '.join(_show(value) for value in self.in_ or ())}"
        if kind == "matches":
            return f"{self.field} matches {self.matches}"
        if kind == "between":
            low, high = self.between or (0.0, 0.0)
            return f"{self.field} {_show(low)}–{_show(high)}"
        return f"{self.field} {_COMPARISON_SIGNS[kind]} {_show(self._value_of(kind))}"

    def explain(self, facts: Mapping[str, Any]) -> str:
        """The condition with the lead's value, for a transition: `score 72 ≥ 60`."""
        value = _show(facts.get(self.field))
        kind = self.kind
        if kind in ("present", "equals"):
            return self.describe()
        if kind == "in":
            return f"{self.field} is {value}"
        if kind == "matches":
            return f"{self.field} {value!r} matches {self.matches}"
        if kind == "between":
            low, high = self.between or (0.0, 0.0)
            return f"{self.field} {value} within {_show(low)}–{_show(high)}"
        return f"{self.field} {value} {_COMPARISON_SIGNS[kind]} {_show(self._value_of(kind))}"


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


class FitRule(Condition):
    """A condition on a firmographic field and the points it is worth (negative: a misfit)."""

    points: int
    group: str | None = None
    label: str | None = Field(None, min_length=1)

    @property
    def reason_label(self) -> str:
        return self.label or self.describe()


class FitGroup(StrictModel):
    """Rules of one kind (size, industry, title, geo): their positive points stop at `cap`."""

    cap: int = Field(ge=0)


class FitModel(StrictModel):
    cap: int | None = Field(None, ge=0)
    groups: dict[str, FitGroup] = Field(default_factory=dict)
    rules: list[FitRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _groups_are_declared(self) -> FitModel:
        undeclared = [
            (f"rules[{index}].group", f"no group {rule.group!r} under [scoring.fit.groups]")
            for index, rule in enumerate(self.rules)
            if rule.group is not None and rule.group not in self.groups
        ]
        if undeclared:
            raise problems(*undeclared)
        return self


class Signal(StrictModel):
    """One behaviour counted in a canonical integer field: `points` per unit, up to `cap`."""

    field: str = Field(min_length=1)
    points: int = Field(ge=1)
    cap: int | None = Field(None, ge=0)
    label: str | None = Field(None, min_length=1)

    @field_validator("field")
    @classmethod
    def _field_is_a_count(cls, name: str, info: ValidationInfo) -> str:
        fields = known_fields(info)
        if fields is None:
            return name
        if name not in fields:
            raise problems(("", unknown_field_message(name, fields)))
        if fields[name] not in NUMERIC_TYPES:
            raise problems(("", f"a signal counts something: {name} is {fields[name]}"))
        return name

    @property
    def reason_label(self) -> str:
        return self.label or self.field.replace("_", " ")


class Decay(StrictModel):
    """Engagement halves every `half_life_days`, counted from the first of `age_from` (canonical
    date or datetime fields) that the lead has. What decay takes off moves in whole `step`s of
    points (unless the exact figure would change the grade or cross a lifecycle threshold), so
    a score written to the CRMs does not change every day."""

    half_life_days: float = Field(gt=0)
    step: int = Field(1, ge=1)
    # The default is checked too: a mapping without these fields would never decay silently.
    age_from: list[str] = Field(
        default_factory=lambda: list(_DEFAULT_AGE_FIELDS), min_length=1, validate_default=True
    )

    @field_validator("age_from")
    @classmethod
    def _fields_are_dates(cls, names: list[str], info: ValidationInfo) -> list[str]:
        fields = known_fields(info)
        if fields is None:
            return names
        found = []
        for index, name in enumerate(names):
            if name not in fields:
                found.append((f"[{index}]", unknown_field_message(name, fields)))
            elif fields[name] not in DATE_TYPES:
                found.append((f"[{index}]", f"age needs a date field; {name} is {fields[name]}"))
        if found:
            raise problems(*found)
        return names


class EngagementModel(StrictModel):
    cap: int | None = Field(None, ge=0)
    signals: list[Signal] = Field(default_factory=list)
    decay: Decay | None = None


class Grade(StrictModel):
    grade: str = Field(min_length=1)
    min_score: int = Field(ge=0)


class ScoringModel(StrictModel):
    """Fit plus engagement, clamped to [0, max_score], graded by the first threshold reached."""

    max_score: int = Field(100, ge=1)
    fit: FitModel = Field(default_factory=FitModel)
    engagement: EngagementModel = Field(default_factory=EngagementModel)
    grades: list[Grade] = Field(min_length=1)

    @model_validator(mode="after")
    def _grades_cover_every_score(self) -> ScoringModel:
        found = []
        seen: set[str] = set()
        for index, grade in enumerate(self.grades):
            if grade.grade in seen:
                found.append((f"grades[{index}].grade", f"grade {grade.grade!r} is listed twice"))
            seen.add(grade.grade)
            if index and grade.min_score >= self.grades[index - 1].min_score:
                found.append(
                    (
                        f"grades[{index}].min_score",
                        "list grades from the highest min_score down, each lower than the one "
                        f"before: {grade.min_score} follows {self.grades[index - 1].min_score}",
                    )
                )
        if self.grades[-1].min_score != 0:
            last = f"grades[{len(self.grades) - 1}].min_score"
            found.append((last, "the lowest grade must start at 0, so every score gets a grade"))
        if self.grades[0].min_score > self.max_score:
            found.append(("grades[0].min_score", f"above max_score {self.max_score}: unreachable"))
        if found:
            raise problems(*found)
        return self


# --------------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------------


class Criterion(Condition):
    accepts_score_fields: ClassVar[bool] = True


class Criteria(StrictModel):
    """Conditions combined: every one of `all`, and at least one of `any` when it is given."""

    all: list[Criterion] = Field(default_factory=list)
    any: list[Criterion] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_conditions(self) -> Criteria:
        if not self.all and not self.any:
            raise problems(("", "give the conditions as all = [...] and/or any = [...]"))
        return self

    def holds(self, facts: Mapping[str, Any]) -> bool:
        """Whether the lead meets these criteria."""
        every = all(condition.holds(facts) for condition in self.all)
        return every and (not self.any or any(condition.holds(facts) for condition in self.any))

    def compile(self) -> Test:
        """`holds` as a plain function over its conditions' (`Condition.compile`)."""
        every = tuple(condition.compile() for condition in self.all)
        some = tuple(condition.compile() for condition in self.any)

        def holds(facts: Mapping[str, Any]) -> bool:
            for test in every:
                if not test(facts):
                    return False
            if not some:
                return True
            for test in some:  # noqa: SIM110 - a loop, not any(): no generator per lead
                if test(facts):
                    return True
            return False

        return holds

    def explain(self, facts: Mapping[str, Any]) -> str:
        """Why the criteria hold: each of `all`, and the first of `any` that holds."""
        parts = [condition.explain(facts) for condition in self.all]
        first_of_any = next((c for c in self.any if c.holds(facts)), None)
        if first_of_any is not None:
            parts.append(first_of_any.explain(facts))
        return " and ".join(parts)


class StageCriteria(Criteria):
    """A stage's entry criteria. With `requires_previous`, only a lead that is at the stage
    before (or reaches it in the same evaluation) may enter.

    `evidence`: what the CRMs hold when a person has put the lead at this stage or later
    (HubSpot's lifecycle stage, a converted Salesforce lead): any one of these conditions is
    enough. A lead leadsync meets for the first time starts at the latest stage with evidence,
    and a person's later move to a later stage is adopted (`leadsync.mapping.lifecycle`)."""

    requires_previous: bool = False
    evidence: list[Condition] = Field(default_factory=list)


class AcceptanceCriteria(StageCriteria):
    # Sales accept what marketing qualified: by default only an MQL can become an SAL.
    requires_previous: bool = True


class StagesModel(StrictModel):
    mql: StageCriteria
    sal: AcceptanceCriteria
    sql: StageCriteria
    opportunity: StageCriteria
    customer: StageCriteria

    def entry(self, stage: str) -> StageCriteria:
        """The entry criteria of a forward stage, by its name (`mql`, ..., `customer`)."""
        criteria: StageCriteria = getattr(self, stage)
        return criteria


class TransitionRule(Criteria):
    """An explicit move (recycle, disqualify, requalify) when its criteria hold."""

    reason: str = Field(min_length=1)


class LifecycleModel(StrictModel):
    stages: StagesModel
    recycle: list[TransitionRule] = Field(default_factory=list)
    disqualify: list[TransitionRule] = Field(default_factory=list)
    requalify: list[TransitionRule] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Handoff
# --------------------------------------------------------------------------------------------

# A Salesforce record id (15 or 18 characters): a user or a queue.
OwnerId = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{15}([0-9A-Za-z]{3})?$")]
HANDOFF_STAGES: tuple[str, ...] = ("mql", "sal", "sql")


class RouteModel(StrictModel):
    """One routing rule: the leads every `when` condition holds for go to `team`, to the
    member with the fewest handoffs so far (round-robin), none past `capacity` open ones."""

    name: str = Field(min_length=1)
    when: list[Condition] = Field(default_factory=list)
    team: list[OwnerId] = Field(min_length=1)
    # Handed-off leads an owner may hold still unaccepted (at the handoff stage) at once.
    capacity: int | None = Field(None, ge=1, le=1_000_000)

    def holds(self, facts: Mapping[str, Any]) -> bool:
        return all(condition.holds(facts) for condition in self.when)


class HandoffModel(StrictModel):
    """When a lead goes to sales, and to whom (see README, "The handoff")."""

    stage: Literal["mql", "sal", "sql"] = "mql"
    # Every one must hold for a lead to be handed off (e.g. a company name present).
    require: list[Condition] = Field(default_factory=list)
    # "rules": the routes below pick the owner; "salesforce": the org's assignment rules do.
    assignment: Literal["rules", "salesforce"] = "rules"
    routes: list[RouteModel] = Field(default_factory=list)
    # A user or queue for the leads no route takes (or whose team is full).
    fallback_owner: OwnerId | None = None

    @property
    def crm_assigns(self) -> bool:
        """Whether the CRM's own assignment rules pick the owner, not leadsync's routes."""
        return self.assignment == "salesforce"

    @model_validator(mode="after")
    def _someone_owns_them(self) -> HandoffModel:
        if self.assignment == "rules" and not self.routes and self.fallback_owner is None:
            raise problems(
                ("routes", 'give routes, a fallback_owner, or assignment = "salesforce"')
            )
        names = [route.name for route in self.routes]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise problems(("routes", f"route names must differ: {', '.join(repeated)}"))
        return self


class DefinitionFile(StrictModel):
    """The whole file; unknown top-level tables are refused like any unknown key."""

    scoring: ScoringModel
    lifecycle: LifecycleModel
    sla: SlaModel | None = None
    handoff: HandoffModel | None = None


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


Compiled = TypeVar("Compiled")
_MISSING = object()


@dataclass(frozen=True)
class LeadDefinition:
    """A validated lead definition. `model_version` is a short hash of it, stable under
    formatting and key order; its parts are read-only by convention."""

    scoring: ScoringModel
    lifecycle: LifecycleModel
    model_version: str
    sla: SlaModel | None = None
    handoff: HandoffModel | None = None

    def compiled(self, build: Callable[[LeadDefinition], Compiled]) -> Compiled:
        """`build(self)`, made once per definition object: the rules, tests and texts a
        module compiles from the definition, so that scoring and staging a lead look nothing
        up again. `build` is the key: a module-level function, one per use. A file read
        again is a new definition, compiled anew (the service reads its files per job)."""
        found = self._compiled.get(build, _MISSING)
        if found is _MISSING:
            found = self._compiled[build] = build(self)
        return found  # type: ignore[no-any-return]

    def __getstate__(self) -> dict[str, Any]:
        # What was compiled holds closures, which do not pickle; a copy compiles its own.
        return {key: value for key, value in self.__dict__.items() if key != "_compiled"}

    @functools.cached_property
    def _compiled(self) -> dict[Callable[[LeadDefinition], Any], Any]:
        return {}


def load_definition(path: Path, *, fields: Mapping[str, str] | None = None) -> LeadDefinition:
    """Read and validate the lead definition at `path`.

    `fields` maps canonical field names to canonical types (`string`, `integer`, `number`,
    `boolean`, `date`, `datetime`); when given, every field a rule names must be in it and suit
    its condition. Raises ConfigError with every problem found.
    """
    return parse_definition(read_text(path), file=str(path), fields=fields)


def parse_definition(
    text: str, *, file: str, fields: Mapping[str, str] | None = None
) -> LeadDefinition:
    """Validate a lead definition given as TOML text; `file` names it in problems."""
    data = parse_toml(text, file=file)
    try:
        model = DefinitionFile.model_validate(data, context={"fields": fields})
    except ValidationError as invalid:
        raise ConfigError(_config_problems(invalid, file, text, data)) from None
    return LeadDefinition(
        model.scoring, model.lifecycle, _model_version(model), model.sla, model.handoff
    )


def _model_version(model: DefinitionFile) -> str:
    # Sorted keys and no whitespace: the hash follows the values, not how the file is written.
    canonical = json.dumps(
        model.model_dump(mode="json", by_alias=True, exclude={"sla", "handoff"}),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def _config_problems(
    invalid: ValidationError, file: str, text: str, data: Mapping[str, Any]
) -> list[ConfigProblem]:
    lines = TomlLines(text)
    found = validation_problems(invalid, file=file, lines=lines, model=DefinitionFile)
    # The checks pydantic skipped for a model with a wrong field (repeats drop out below).
    for sub_key, message in cross_key_problems(data.get("sla")):
        full_key = below("sla", sub_key)
        found.append(ConfigProblem(file, full_key, message, lines.line_of(full_key)))
    # The file's order reads best; problems without a line keep pydantic's order, at the end.
    return sorted(
        dict.fromkeys(found), key=lambda problem: (problem.line is None, problem.line or 0)
    )
