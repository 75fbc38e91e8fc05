"""The field-mapping file RevOps edit (`mapping.toml`): load it, validate it, check it against a
CRM's describe.

    identity_field = "email"            # the canonical field leads are matched on

    [fields.employees]                  # one table per canonical field
    type = "integer"                    # string | integer | number | boolean | date | datetime
    direction = "both"                  # pull | push | both | none
    rule = "prefer_salesforce_unless_blank"   # needed when both CRMs are mapped
    required = false

    [fields.employees.hubspot]          # where it lives in HubSpot (omit if it does not)
    field = "numemployees"
    transforms = ["trim", "ranges"]     # see leadsync.mapping.transforms for the order they run
    ranges = [{ value = "1-5", up_to = 5, canonical = 3 }, { value = "1000+", canonical = 2000 }]

    [fields.employees.salesforce]
    field = "NumberOfEmployees"

    [writeback.hubspot]                 # where leadsync writes its results
    score = "leadsync_score"
    stage = "lifecyclestage"
    stage_values = { lead = ["lead", "subscriber"], mql = "marketingqualifiedlead", ... }

A stage's value may be a list: leadsync writes the first; a record holding any of them already
holds the stage, and is not written (a HubSpot subscriber is left a subscriber).

A binding's keys: field, object ("Opportunity": Salesforce only, read-only), transforms,
value_map, push_value_map, strict, ranges, default, time_zone. Every mistake is a
`ConfigProblem` (file, dotted key, line where it can be found), all of them in one ConfigError.
`check_against` then compares the mapping with what a CRM's describe says (`check --online`).
"""

from __future__ import annotations

import difflib
import functools
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from leadsync.connectors.base import FieldInfo, FieldType, ObjectDescription
from leadsync.mapping.transforms import (
    CASE_TRANSFORMS,
    READERS,
    TEXT_TRANSFORMS,
    TRANSFORMS,
    TYPE_TRANSFORMS,
    Binding,
    Range,
    Reader,
    TransformError,
)
from leadsync.mapping.types import (
    CANONICAL_STAGES,
    CRMS,
    CanonicalType,
    Crm,
    Direction,
    SyncRule,
)
from leadsync.problems import (
    FILE_ENCODING,
    ConfigError,
    ConfigProblem,
    TomlLines,
    parse_toml,
    read_text,
    unknown_key_message,
    validation_problems,
)

# The one object besides the lead that a binding may read: the opportunity a Salesforce lead
# was converted into (through ConvertedOpportunityId).
RELATED_OBJECTS: dict[str, tuple[str, ...]] = {"hubspot": (), "salesforce": ("Opportunity",)}
# The object a converted Salesforce lead becomes. The lead is then frozen: leadsync writes its
# person's results to this Contact instead, under the names [writeback.salesforce.contact] gives.
CONTACT = "Contact"

_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")

# What a mapping compiles (see `FieldMap.compiled`), left out of its pickled state.
_COMPILED = frozenset({"_readers", "_writers", "_compiled"})
_MISSING = object()
Compiled = TypeVar("Compiled")

# ================================================================================= the mapping


@dataclass(frozen=True)
class FieldMapping:
    """One canonical field: its type, which way it travels, which value wins, where it lives."""

    name: str
    type: CanonicalType
    direction: Direction
    rule: SyncRule
    hubspot: Binding | None = None
    salesforce: Binding | None = None
    # The lead cannot be processed without a value (after reconciling both CRMs).
    required: bool = False

    def binding(self, crm: str) -> Binding | None:
        """The field's binding in `crm`, if it has one."""
        if crm == "hubspot":
            return self.hubspot
        return self.salesforce if crm == "salesforce" else None

    @property
    def bindings(self) -> tuple[Binding, ...]:
        return tuple(b for b in (self.hubspot, self.salesforce) if b is not None)

    def read(self, crm: str, raw: Any) -> Any:
        """The canonical value of `raw` from `crm`; TransformError names this field too."""
        return self.reader(crm)(raw)

    def write(self, crm: str, value: Any) -> Any:
        """What to write to `crm` for the canonical `value`."""
        return self.writer(crm)(value)

    def reader(self, crm: str) -> Reader:
        """`read` for `crm` as a plain function, made once per mapping (ValueError when the
        field is not mapped there)."""
        found = self._readers.get(crm)
        if found is None:
            binding = self._bound(crm)
            found = binding.reader(self.type, f"{self.name} ({binding.qualified_name})")
            self._readers[crm] = found
        return found

    def writer(self, crm: str) -> Reader:
        """`write` for `crm` as a plain function, made once per mapping."""
        found = self._writers.get(crm)
        if found is None:
            binding = self._bound(crm)
            found = binding.writer(self.type, f"{self.name} ({binding.qualified_name})")
            self._writers[crm] = found
        return found

    def __getstate__(self) -> dict[str, Any]:
        # The compiled functions are closures, which do not pickle; a copy makes its own.
        return {key: value for key, value in self.__dict__.items() if key not in _COMPILED}

    @functools.cached_property
    def _readers(self) -> dict[str, Reader]:
        return {}

    @functools.cached_property
    def _writers(self) -> dict[str, Reader]:
        return {}

    def _bound(self, crm: str) -> Binding:
        binding = self.binding(crm)
        if binding is None:
            raise ValueError(f"field {self.name} is not mapped to {crm}")
        return binding


@dataclass(frozen=True)
class WritebackTargets:
    """Where one CRM keeps leadsync's results (field names; None: not written there)."""

    crm: str
    score: str | None = None
    fit_score: str | None = None
    engagement_score: str | None = None
    grade: str | None = None
    reasons: str | None = None
    model_version: str | None = None
    # The names of the SLA rules the lead is in breach of, comma-separated; blank when none.
    sla_breaches: str | None = None
    stage: str | None = None
    # canonical stage -> the CRM's value for it; every stage when `stage` is set
    stage_values: Mapping[str, str] = field(default_factory=dict)
    # A second field that follows the stage (Salesforce `Status`); only the stages listed in
    # `status_values` are written to it, the others leave it alone.
    status_field: str | None = None
    status_values: Mapping[str, str] = field(default_factory=dict)
    # The handoff (lead_definition.toml [handoff]): in the CRM leads are handed off to, the
    # External ID field that holds leadsync's lead id, what a created record is found by
    # again; in the other, where the id of the record created there is written.
    handoff_key: str | None = None
    handoff_link: str | None = None
    # canonical stage -> every CRM value that already holds it, the written one first: a
    # record holding any of them is not written (the mapping lists them: `lead = ["lead",
    # "subscriber"]`). A stage not listed here holds its written value only.
    stage_holds: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    status_holds: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def holding(self, role: str, stage: str) -> tuple[str, ...]:
        """The values of the `stage` or `status_field` role that hold canonical `stage`."""
        values, holds = (
            (self.stage_values, self.stage_holds)
            if role == "stage"
            else (self.status_values, self.status_holds)
        )
        if stage in holds:
            return holds[stage]
        return (values[stage],) if stage in values else ()

    def stages_held_by(self, value: str) -> frozenset[str]:
        """The canonical stages whose stage values list `value` (empty: none does)."""
        return frozenset(
            stage for stage in self.stage_values if value in self.holding("stage", stage)
        )

    # role -> the field of the Contact a converted lead became (Salesforce only): where the
    # person's results go once the lead is frozen. Stage values are the lead's.
    contact: Mapping[str, str] = field(default_factory=dict)

    def targets(self) -> dict[str, str]:
        """role (score, ..., stage, status_field) -> CRM field name, for the roles set."""
        return dict(self._targets)

    @functools.cached_property
    def _targets(self) -> Mapping[str, str]:
        # Once per mapping, not per record planned (a what-if plans every stored lead).
        roles = (f.name for f in dataclass_fields(self) if f.name not in _NOT_ROLES)
        return {role: name for role in roles if isinstance(name := getattr(self, role), str)}

    def results_only(self, written: Iterable[str], object_name: str | None = None) -> bool:
        """Whether the fields of one update (of the lead object; `object_name` CONTACT: of the
        Contact a converted lead became) are all leadsync's results (RESULT_ROLES). No person's
        edit of another field is lost by writing them, and one of them is overwritten on every
        run anyway: leadsync computes them, it never merges them."""
        results = self._result_fields.get(object_name, frozenset())
        return all(name in results for name in written) and bool(results)

    def result_fields(self) -> frozenset[str]:
        """The fields of the lead object that hold leadsync's results (RESULT_ROLES)."""
        return self._result_fields[None]

    @functools.cached_property
    def _result_fields(self) -> Mapping[str | None, frozenset[str]]:
        contact = self.contact
        return {
            None: frozenset(name for role in RESULT_ROLES if (name := getattr(self, role))),
            CONTACT: frozenset(name for role in RESULT_ROLES if (name := contact.get(role))),
        }

    def contact_targets(self) -> WritebackTargets:
        """The targets on the Contact, as targets of their own (no status field there)."""
        get = self.contact.get
        return WritebackTargets(
            crm=self.crm,
            score=get("score"),
            fit_score=get("fit_score"),
            engagement_score=get("engagement_score"),
            grade=get("grade"),
            reasons=get("reasons"),
            model_version=get("model_version"),
            sla_breaches=get("sla_breaches"),
            stage=get("stage"),
            stage_values=self.stage_values,
            stage_holds=self.stage_holds,
        )


_NOT_ROLES = frozenset(
    {"crm", "stage_values", "status_values", "stage_holds", "status_holds", "contact"}
)
WRITEBACK_ROLES: tuple[str, ...] = tuple(
    f.name for f in dataclass_fields(WritebackTargets) if f.name not in _NOT_ROLES
)
# The roles whose fields hold what leadsync computes and nobody else writes: not the stage
# or status (a rep moves those, and leadsync keeps a person's move), nor the handoff's ids.
RESULT_ROLES: tuple[str, ...] = (
    "score",
    "fit_score",
    "engagement_score",
    "grade",
    "reasons",
    "model_version",
    "sla_breaches",
)
# The roles a Contact takes: all but the lead's Status, which a Contact does not have.
CONTACT_ROLES: tuple[str, ...] = tuple(
    role for role in WRITEBACK_ROLES if role not in ("status_field", "handoff_key", "handoff_link")
)


@dataclass(frozen=True)
class FieldMap:
    """The whole mapping file, validated."""

    fields: Mapping[str, FieldMapping]
    writeback: Mapping[str, WritebackTargets]
    identity_field: str
    # The file it was read from, for problems found later (a CRM's describe): where to look.
    path: str = field(default="", repr=False, compare=False)

    def compiled(self, build: Callable[[FieldMap], Compiled]) -> Compiled:
        """`build(self)`, made once per mapping object: the field lists and functions a sync
        module compiles from the mapping, so that its per-record paths look nothing up
        again. `build` is the key: a module-level function, one per use."""
        found = self._compiled.get(build, _MISSING)
        if found is _MISSING:
            found = self._compiled[build] = build(self)
        return found  # type: ignore[no-any-return]

    def __getstate__(self) -> dict[str, Any]:
        # What was compiled holds closures, which do not pickle; a copy compiles its own.
        return {key: value for key, value in self.__dict__.items() if key not in _COMPILED}

    @functools.cached_property
    def _compiled(self) -> dict[Callable[[FieldMap], Any], Any]:
        return {}

    def canonical_types(self) -> dict[str, str]:
        """Canonical field name -> its type, for the lead-definition loader."""
        return {name: mapping.type for name, mapping in self.fields.items()}

    def crm_fields(self, crm: str, *, object: str | None = None) -> tuple[str, ...]:
        """Every field of `crm`'s `object` (None: the lead) that the mapping names: what a pull
        should ask for so that values can be read and the plan can compare what is held."""
        names = [
            binding.field
            for mapping in self.fields.values()
            if mapping.direction is not Direction.NONE
            and (binding := mapping.binding(crm)) is not None
            and binding.object == object
        ]
        targets = self.writeback.get(crm)
        if object is None and targets is not None:
            names.extend(targets.targets().values())
        if object == CONTACT and targets is not None:
            names.extend(targets.contact.values())
        return tuple(dict.fromkeys(names))


# ==================================================================== the file, shape by pydantic

DirectionName = Literal["pull", "push", "both", "none"]
RuleName = Literal[
    "prefer_hubspot",
    "prefer_salesforce",
    "most_recent",
    "prefer_hubspot_unless_blank",
    "prefer_salesforce_unless_blank",
    "never_blank",
]


class _Table(BaseModel):
    # strict: TOML has real types, and "yes" should not pass for a boolean; finite: no range
    # ends at nan, which no number is below.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class _RangeTable(_Table):
    value: str = Field(min_length=1)
    canonical: Any
    up_to: float | None = None


class _BindingTable(_Table):
    field: str = Field(min_length=1)
    object: str | None = None
    transforms: list[str] = Field(default_factory=list)
    value_map: dict[str, Any] = Field(default_factory=dict)
    push_value_map: dict[str, str] = Field(default_factory=dict)
    strict: bool = True
    ranges: list[_RangeTable] = Field(default_factory=list)
    default: Any = None
    time_zone: str | None = None


class _FieldTable(_Table):
    type: CanonicalType
    direction: DirectionName
    rule: RuleName | None = None
    required: bool = False
    hubspot: _BindingTable | None = None
    salesforce: _BindingTable | None = None


def _one_or_more(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# `lead = "lead"` or `lead = ["lead", "subscriber"]`: read as a list either way.
_StageValue = Annotated[
    list[Annotated[str, Field(min_length=1)]], Field(min_length=1), BeforeValidator(_one_or_more)
]


class _WritebackTable(_Table):
    score: str | None = Field(None, min_length=1)
    fit_score: str | None = Field(None, min_length=1)
    engagement_score: str | None = Field(None, min_length=1)
    grade: str | None = Field(None, min_length=1)
    reasons: str | None = Field(None, min_length=1)
    model_version: str | None = Field(None, min_length=1)
    sla_breaches: str | None = Field(None, min_length=1)
    stage: str | None = Field(None, min_length=1)
    # One value, or several: the first is written, any of them holds the stage.
    stage_values: dict[str, _StageValue] = Field(default_factory=dict)
    status_field: str | None = Field(None, min_length=1)
    status_values: dict[str, _StageValue] = Field(default_factory=dict)
    contact: dict[str, str] = Field(default_factory=dict)
    handoff_key: str | None = Field(None, min_length=1)
    handoff_link: str | None = Field(None, min_length=1)


_TOP_KEYS = ("identity_field", "fields", "writeback")
_Model = TypeVar("_Model", bound=_Table)


# ============================================================================= reporting problems


class _Report:
    """Collects the problems of one file, each located by its dotted key where possible."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines = TomlLines(text)
        self.problems: list[ConfigProblem] = []

    def add(self, key: str, message: str) -> None:
        # The key itself, else the nearest table or key above it that the file spells out.
        self.problems.append(ConfigProblem(self.file, key, message, self.lines.line_of(key)))

    def validated(self, model: type[_Model], data: Any, key: str) -> _Model | None:
        """`data` as `model`, or None with every shape problem reported under `key`."""
        try:
            return model.model_validate(data)
        except ValidationError as invalid:
            self.problems.extend(
                validation_problems(
                    invalid, file=self.file, lines=self.lines, model=model, under=key
                )
            )
            return None


# ==================================================================================== loading


def load_mapping(path: Path) -> FieldMap:
    """Read and validate the mapping file at `path`. Raises ConfigError with every problem."""
    return parse_mapping(read_text(path), file=str(path))


def parse_mapping(text: str, *, file: str) -> FieldMap:
    """Validate a mapping given as TOML text; `file` names it in problems."""
    data = parse_toml(text, file=file)
    report = _Report(file, text)
    mapping = _build(data, report)
    if report.problems or mapping is None:
        raise ConfigError(report.problems)
    return replace(mapping, path=file)


def _build(data: Mapping[str, Any], report: _Report) -> FieldMap | None:
    for key in data:
        if key not in _TOP_KEYS:
            report.add(key, unknown_key_message(key, _TOP_KEYS))
    tables = _field_tables(data, report)
    fields = {}
    for name, table in tables.items():
        built = _build_field(name, table, report)
        if built is not None:
            fields[name] = built
    writeback = _build_writeback(data.get("writeback", {}), report)
    identity = _identity_field(data, tables, fields, report)
    _check_shared_targets(fields, writeback, report)
    if identity is None:
        return None
    return FieldMap(fields, writeback, identity)


def _field_tables(data: Mapping[str, Any], report: _Report) -> dict[str, Any]:
    tables = data.get("fields")
    if tables is None:
        report.add("fields", "required: a [fields.NAME] table for each canonical field")
        return {}
    if not isinstance(tables, dict):
        report.add("fields", "must be a table of canonical fields, [fields.NAME]")
        return {}
    return tables


def _identity_field(
    data: Mapping[str, Any],
    tables: Mapping[str, Any],
    fields: Mapping[str, FieldMapping],
    report: _Report,
) -> str | None:
    name = data.get("identity_field")
    if name is None:
        report.add("identity_field", "required: the canonical field leads are matched on")
        return None
    if not isinstance(name, str):
        report.add("identity_field", "must be the name of a canonical field")
        return None
    if name not in tables:
        if isinstance(data.get("fields"), dict):  # else [fields] itself is reported already
            report.add("identity_field", f"no field {name!r} under [fields]")
        return None
    mapping = fields.get(name)
    if mapping is None:
        return name  # its own problems are reported already
    if mapping.type != "string":
        report.add("identity_field", f"{name} must be of type string to match leads on")
    if mapping.hubspot is None or mapping.salesforce is None:
        report.add("identity_field", f"{name} must be mapped in both CRMs to match leads on")
    if not mapping.direction.pulls:
        report.add("identity_field", f"{name} must be pulled (direction pull or both)")
    return name


# ----------------------------------------------------------------------------- one field


def _build_field(name: str, data: Any, report: _Report) -> FieldMapping | None:
    key = f"fields.{name}"
    before = len(report.problems)
    if not _FIELD_NAME.fullmatch(name):
        report.add(key, "field names are lowercase letters, digits and _, starting with a letter")
    table = report.validated(_FieldTable, data, key)
    if table is None:
        return None
    direction = Direction(table.direction)
    tables: tuple[tuple[Crm, _BindingTable | None], ...] = (
        ("hubspot", table.hubspot),
        ("salesforce", table.salesforce),
    )
    bindings = {
        crm: _build_binding(f"{key}.{crm}", crm, binding, table.type, direction, report)
        for crm, binding in tables
        if binding is not None
    }
    if not bindings:
        report.add(key, "map it to a [hubspot] or [salesforce] field, or both")
    rule = _rule(key, table, direction, report)
    if len(report.problems) > before or rule is None:
        return None
    return FieldMapping(
        name=name,
        type=table.type,
        direction=direction,
        rule=rule,
        hubspot=bindings.get("hubspot"),
        salesforce=bindings.get("salesforce"),
        required=table.required,
    )


def _rule(key: str, table: _FieldTable, direction: Direction, report: _Report) -> SyncRule | None:
    bound: list[Crm] = [crm for crm in CRMS if getattr(table, crm) is not None]
    if table.rule is None:
        if len(bound) == 1:
            return SyncRule.preferring(bound[0])
        if len(bound) == 2 and direction is not Direction.NONE:
            choices = ", ".join(rule.value for rule in SyncRule)
            report.add(f"{key}.rule", f"required when both CRMs are mapped: one of {choices}")
            return None
        return SyncRule.MOST_RECENT
    rule = SyncRule(table.rule)
    if rule.preferred_crm is not None and rule.preferred_crm not in bound:
        report.add(f"{key}.rule", f"{rule.value} needs a [{rule.preferred_crm}] binding")
    return rule


# ----------------------------------------------------------------------------- one binding


def _build_binding(
    key: str,
    crm: Crm,
    table: _BindingTable,
    canonical_type: CanonicalType,
    direction: Direction,
    report: _Report,
) -> Binding:
    """The binding the table describes; every problem with it goes to `report`."""
    time_zone = _time_zone(key, table, canonical_type, report)
    transforms = _transforms(key, table, canonical_type, report)
    zone = ZoneInfo(time_zone)
    shape = Binding(crm, table.field, transforms=transforms)  # for its text steps
    value_map = _value_map(key, table, canonical_type, zone, shape, report)
    ranges = _ranges(key, table, canonical_type, shape, report)
    default = None
    if table.default is not None:
        default = _typed_literal(f"{key}.default", table.default, canonical_type, zone, report)
    return Binding(
        crm=crm,
        field=table.field,
        object=_object(key, crm, table, direction, report),
        transforms=transforms,
        value_map=value_map,
        default=default,
        time_zone=time_zone,
        strict=table.strict,
        ranges=ranges,
        push_value_map=_push_value_map(key, table, canonical_type, zone, report),
    )


def _object(
    key: str, crm: Crm, table: _BindingTable, direction: Direction, report: _Report
) -> str | None:
    if table.object is None:
        return None
    known = {name.lower(): name for name in RELATED_OBJECTS[crm]}
    name = known.get(table.object.lower())
    if name is None:
        allowed = ", ".join(RELATED_OBJECTS[crm]) or "none"
        report.add(f"{key}.object", f"{crm} has no related object {table.object!r} ({allowed})")
        return None
    if direction.pushes:
        report.add(
            f"{key}.object",
            f"the {name} is read-only to leadsync: a field read from it needs direction "
            '"pull" (or "none")',
        )
    return name


def _time_zone(
    key: str, table: _BindingTable, canonical_type: CanonicalType, report: _Report
) -> str:
    if table.time_zone is None:
        return "UTC"
    if canonical_type not in ("date", "datetime"):
        report.add(f"{key}.time_zone", "applies to date and datetime fields only")
    try:
        ZoneInfo(table.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        report.add(
            f"{key}.time_zone", f"unknown time zone {table.time_zone!r} (e.g. Europe/Berlin)"
        )
        return "UTC"
    return table.time_zone


def _transforms(
    key: str, table: _BindingTable, canonical_type: CanonicalType, report: _Report
) -> tuple[str, ...]:
    where = f"{key}.transforms"
    names = tuple(table.transforms)
    for name in names:
        if name not in TRANSFORMS:
            report.add(where, f"unknown transform {name!r}; known: {', '.join(TRANSFORMS)}")
        elif name in TYPE_TRANSFORMS and name != canonical_type:
            report.add(where, f"{name!r} does not fit the field's type, {canonical_type}")
    cases = [name for name in names if name in CASE_TRANSFORMS]
    if len(cases) > 1:
        report.add(where, f"pick one of {', '.join(cases)}: they undo each other")
    needs = {"value_map": table.value_map, "ranges": table.ranges, "default": table.default}
    for name, given in needs.items():
        if name in names and given in (None, {}, []):
            report.add(where, f"{name!r} is listed but the binding has no {name}")
    # The steps that a table on the binding implies are listed too: one list tells all.
    implied = [name for name, given in needs.items() if given not in (None, {}, [])]
    known = [name for name in names if name in TRANSFORMS]
    return tuple(dict.fromkeys([*known, *implied]))


def _value_map(
    key: str,
    table: _BindingTable,
    canonical_type: CanonicalType,
    zone: ZoneInfo,
    shape: Binding,
    report: _Report,
) -> dict[str, Any]:
    where = f"{key}.value_map"
    if table.value_map and table.ranges:
        report.add(where, "use value_map or ranges, not both")
    typed = {}
    for crm_value, canonical in table.value_map.items():
        entry = f"{where}.{_toml_key(crm_value)}"
        _check_reachable(entry, crm_value, shape, report)
        value = _typed_literal(entry, canonical, canonical_type, zone, report, entry=crm_value)
        if value is not None:
            typed[crm_value] = value
    return typed


def _push_value_map(
    key: str,
    table: _BindingTable,
    canonical_type: CanonicalType,
    zone: ZoneInfo,
    report: _Report,
) -> dict[Any, str]:
    typed = {}
    for canonical, crm_value in table.push_value_map.items():
        try:
            typed[READERS[canonical_type](canonical, zone)] = crm_value
        except ValueError:
            report.add(
                f"{key}.push_value_map.{_toml_key(canonical)}",
                f"{canonical!r} is not a {canonical_type} value (keys are canonical values)",
            )
    return typed


def _ranges(
    key: str,
    table: _BindingTable,
    canonical_type: CanonicalType,
    shape: Binding,
    report: _Report,
) -> tuple[Range, ...]:
    where = f"{key}.ranges"
    if not table.ranges:
        return ()
    if canonical_type not in ("integer", "number"):
        report.add(where, f"ranges turn text into numbers: the field is {canonical_type}")
        return ()
    ranges = []
    for index, item in enumerate(table.ranges):
        _check_reachable(f"{where}.{index}.value", item.value, shape, report)
        canonical = _typed_literal(
            f"{where}.{index}.canonical", item.canonical, canonical_type, ZoneInfo("UTC"), report
        )
        if canonical is not None:
            ranges.append(Range(item.value, canonical, item.up_to))
    if len(ranges) == len(table.ranges):
        _check_range_order(where, ranges, report)
    return tuple(ranges)


def _check_range_order(where: str, ranges: Sequence[Range], report: _Report) -> None:
    values = [bucket.crm_value for bucket in ranges]
    if len(set(values)) != len(values):
        report.add(where, "each range's value must be different")
    bounds = [bucket.up_to for bucket in ranges]
    if None in bounds[:-1]:
        report.add(where, "only the last range may leave out up_to (it holds all that is above)")
        return
    finite = [bound for bound in bounds if bound is not None]
    if any(later <= earlier for earlier, later in itertools.pairwise(finite)):
        report.add(where, "list the ranges by up_to, smallest first")
        return
    probe = Binding("hubspot", "", ranges=tuple(ranges), strict=False)
    for bucket in ranges:
        if probe.to_crm(bucket.canonical, canonical_type="number") != bucket.crm_value:
            report.add(
                where,
                f"canonical {bucket.canonical} lies outside its own range {bucket.crm_value!r}",
            )


def _toml_key(name: str) -> str:
    """`name` as a TOML key: bare when it can be, else quoted."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def _check_reachable(where: str, crm_value: str, shape: Binding, report: _Report) -> None:
    """A key the binding's own trim and case would never produce can never match."""
    if shape.text_steps(crm_value) != crm_value:
        steps = ", ".join(name for name in shape.transforms if name in TEXT_TRANSFORMS)
        report.add(where, f"{crm_value!r} can never match: values pass {steps} first")


def _typed_literal(
    where: str,
    value: Any,
    canonical_type: CanonicalType,
    zone: ZoneInfo,
    report: _Report,
    *,
    entry: str | None = None,
) -> Any:
    """`value` as written in TOML, checked against the canonical type (no guessing from text:
    an integer field's value is a TOML integer). None, with a problem, when it does not fit."""
    fits = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "date": isinstance(value, date) and not isinstance(value, datetime),
        "datetime": isinstance(value, datetime),
    }[canonical_type]
    if not fits:
        label = f"{entry!r} maps to " if entry is not None else ""
        report.add(
            where,
            f"{label}{value!r}, which does not fit type {canonical_type} "
            f"({_EXAMPLES[canonical_type]})",
        )
        return None
    if canonical_type == "number":
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)
    return value


_EXAMPLES: dict[str, str] = {
    "string": 'e.g. "US"',
    "integer": "e.g. 42",
    "number": "e.g. 4.5",
    "boolean": "true or false",
    "date": "e.g. 2024-05-01",
    "datetime": "e.g. 2024-05-01T10:00:00Z",
}


# ----------------------------------------------------------------------------- write-back


def _build_writeback(data: Any, report: _Report) -> dict[str, WritebackTargets]:
    if not isinstance(data, dict):
        report.add("writeback", "must be a table: [writeback.hubspot], [writeback.salesforce]")
        return {}
    built = {}
    for crm, table_data in data.items():
        key = f"writeback.{crm}"
        if crm not in CRMS:
            report.add(key, f"unknown CRM; one of {', '.join(CRMS)}")
            continue
        table = report.validated(_WritebackTable, table_data, key)
        sound = table is not None and _stage_maps_are_sound(key, table, report)
        if table is not None and sound and _contact_is_sound(key, crm, table, report):
            built[crm] = _writeback_targets(crm, table)
    return built


def _writeback_targets(crm: str, table: _WritebackTable) -> WritebackTargets:
    data = table.model_dump()
    lists = {name: data.pop(name) for name in ("stage_values", "status_values")}
    held = {
        name: {stage: tuple(values) for stage, values in table.items()}
        for name, table in lists.items()
    }
    return WritebackTargets(
        crm=crm,
        **data,
        stage_values={stage: values[0] for stage, values in held["stage_values"].items()},
        status_values={stage: values[0] for stage, values in held["status_values"].items()},
        stage_holds=held["stage_values"],
        status_holds=held["status_values"],
    )


def _contact_is_sound(key: str, crm: str, table: _WritebackTable, report: _Report) -> bool:
    if not table.contact:
        return True
    before = len(report.problems)
    where = f"{key}.contact"
    if crm != "salesforce":
        report.add(where, "only Salesforce converts leads into Contacts")
    for role, name in table.contact.items():
        if role not in CONTACT_ROLES:
            report.add(f"{where}.{role}", f"unknown role; one of {', '.join(CONTACT_ROLES)}")
        elif not name:
            report.add(f"{where}.{role}", "name the Contact field")
    if "stage" in table.contact and table.stage is None:
        report.add(f"{where}.stage", f"set {key}.stage and stage_values: the Contact's are those")
    return len(report.problems) == before


def _stage_maps_are_sound(key: str, table: _WritebackTable, report: _Report) -> bool:
    before = len(report.problems)
    for name in ("stage_values", "status_values"):
        unknown = [stage for stage in getattr(table, name) if stage not in CANONICAL_STAGES]
        if unknown:
            report.add(
                f"{key}.{name}",
                f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(CANONICAL_STAGES)}",
            )
    if table.stage is not None:
        missing = [stage for stage in CANONICAL_STAGES if stage not in table.stage_values]
        if missing:
            report.add(f"{key}.stage_values", f"give a value for every stage: {', '.join(missing)}")
    elif table.stage_values:
        report.add(f"{key}.stage_values", "set `stage` to the field these values go to")
    if table.status_field is not None and not table.status_values:
        report.add(f"{key}.status_field", "add status_values: the stages that set this field")
    if table.status_values and table.status_field is None:
        report.add(f"{key}.status_values", "set status_field: the field these values go to")
    return len(report.problems) == before


# ----------------------------------------------------------------------------- shared targets


def _check_shared_targets(
    fields: Mapping[str, FieldMapping],
    writeback: Mapping[str, WritebackTargets],
    report: _Report,
) -> None:
    """Each CRM field has at most one writer: two would overwrite each other on every run."""
    writers: dict[tuple[str, str | None, str], str] = {}
    for key, crm, binding_object, name in _written_targets(fields, writeback):
        # Salesforce field names are case-insensitive, HubSpot property names are not.
        target = (crm, binding_object, name.lower() if crm == "salesforce" else name)
        first = writers.setdefault(target, key)
        if first != key:
            report.add(key, f"{crm} field {name!r} is written by {first} already")


def _written_targets(
    fields: Mapping[str, FieldMapping], writeback: Mapping[str, WritebackTargets]
) -> Iterator[tuple[str, str, str | None, str]]:
    for mapping in fields.values():
        if mapping.direction.pushes:
            for binding in mapping.bindings:
                key = f"fields.{mapping.name}.{binding.crm}.field"
                yield key, binding.crm, binding.object, binding.field
    for crm, targets in writeback.items():
        for role, name in targets.targets().items():
            yield f"writeback.{crm}.{role}", crm, None, name
        for role, name in targets.contact.items():
            yield f"writeback.{crm}.contact.{role}", crm, CONTACT, name


# ============================================================================ check_against

_ANY_TYPE = frozenset(FieldType)
_TEXTUAL = frozenset({FieldType.STRING, FieldType.TEXT})
_NOT_TEXT = frozenset(
    {FieldType.NUMBER, FieldType.INTEGER, FieldType.BOOLEAN, FieldType.DATE, FieldType.DATETIME}
)
# CRM field types a canonical type can be read from (text is parsed by the transforms)...
READABLE: dict[str, frozenset[FieldType]] = {
    "string": _ANY_TYPE,
    "integer": _TEXTUAL | {FieldType.NUMBER, FieldType.INTEGER, FieldType.ENUMERATION},
    "number": _TEXTUAL | {FieldType.NUMBER, FieldType.INTEGER, FieldType.ENUMERATION},
    "boolean": _TEXTUAL | {FieldType.BOOLEAN, FieldType.ENUMERATION},
    "date": _TEXTUAL | {FieldType.DATE, FieldType.DATETIME},
    "datetime": _TEXTUAL | {FieldType.DATE, FieldType.DATETIME},
}
# ...and written to. A fraction does not fit an integer field, a time not a date field.
WRITABLE: dict[str, frozenset[FieldType]] = {
    "string": _ANY_TYPE - _NOT_TEXT,
    "integer": _TEXTUAL | {FieldType.NUMBER, FieldType.INTEGER, FieldType.ENUMERATION},
    "number": _TEXTUAL | {FieldType.NUMBER, FieldType.ENUMERATION},
    "boolean": _TEXTUAL | {FieldType.BOOLEAN, FieldType.ENUMERATION},
    "date": _TEXTUAL | {FieldType.DATE},
    "datetime": _TEXTUAL | {FieldType.DATETIME},
}
_NUMERIC_TARGET = _TEXTUAL | {FieldType.NUMBER, FieldType.INTEGER}
_STAGE_TARGET = _TEXTUAL | {FieldType.ENUMERATION}
WRITEBACK_TYPES: dict[str, frozenset[FieldType]] = {
    "score": _NUMERIC_TARGET,
    "fit_score": _NUMERIC_TARGET,
    "engagement_score": _NUMERIC_TARGET,
    "grade": _STAGE_TARGET,
    "reasons": _TEXTUAL,
    "model_version": _TEXTUAL,
    "sla_breaches": _TEXTUAL,
    "stage": _STAGE_TARGET,
    "status_field": _STAGE_TARGET,
    "handoff_key": _TEXTUAL,
    "handoff_link": _TEXTUAL,
}
_SHOWN_OPTIONS = 8
# How each CRM gets a missing write-back field: HubSpot's through the API, Salesforce's by hand.
_SETUP_HINTS = {
    "hubspot": "; run `leadsync setup` to create it",
    "salesforce": (
        "; a Salesforce admin must create it (`leadsync setup` lists the fields to create, "
        "with their types)"
    ),
}


def check_against(
    mapping: FieldMap,
    crm: str,
    description: ObjectDescription,
    *,
    file: str,
    preflight: bool = False,
) -> list[ConfigProblem]:
    """What `crm`'s describe of one object says is wrong with `mapping` (`check --online`).

    Call it once per object described: the lead object (HubSpot contacts, Salesforce Lead)
    checks the bindings without `object` and the write-back targets; a description of an
    object that bindings name (`Opportunity`) checks those bindings. Per binding: the field
    exists, its type fits the canonical type, the values a value map, push_value_map or ranges
    would write are among a restricted field's options, every option can be read, and a field
    leadsync pushes is writable. Per write-back target: it exists, is writable, fits what is
    written, and the stage and status values are allowed.

    With `preflight`, only what stops a run before its first write (every run makes this
    check): a field the mapping names that does not exist, a write target that cannot be
    written or cannot take what is written to it. The rest fails a record at a time, with
    the CRM's reason, and `check --online` lists it.
    """
    report = _Report(file, _text_of(file))
    is_lead_object = _describes_lead_object(mapping, crm, description)
    for field_mapping in mapping.fields.values():
        binding = field_mapping.binding(crm)
        if binding is None:
            continue
        same_object = (
            binding.object is None
            if is_lead_object
            else (binding.object or "").lower() == description.object_name.lower()
        )
        if same_object:
            _check_binding(field_mapping, binding, description, report, preflight=preflight)
    targets = mapping.writeback.get(crm)
    if is_lead_object and targets is not None:
        _check_writeback(targets, description, report, preflight=preflight)
    if targets is not None and targets.contact and description.object_name.lower() == "contact":
        _check_writeback(
            targets.contact_targets(),
            description,
            report,
            preflight=preflight,
            key=f"writeback.{crm}.contact",
        )
    return report.problems


def related_objects(mapping: FieldMap, crm: str) -> tuple[str, ...]:
    """The objects besides the lead that `mapping` reads from `crm` (Salesforce's Opportunity):
    each needs a describe of its own for `check_against`."""
    read = {
        binding.object
        for field_mapping in mapping.fields.values()
        if (binding := field_mapping.binding(crm)) is not None and binding.object
    }
    targets = mapping.writeback.get(crm)
    written = {CONTACT} if targets is not None and targets.contact else set()
    return tuple(sorted(read | written))


def _text_of(file: str) -> str:
    # Only to point at lines; a file gone since loading just means no line numbers.
    try:
        return Path(file).read_text(encoding=FILE_ENCODING)
    except (OSError, UnicodeDecodeError, ValueError):
        return ""


def _describes_lead_object(mapping: FieldMap, crm: str, description: ObjectDescription) -> bool:
    related = {name.lower() for name in related_objects(mapping, crm)}
    return description.object_name.lower() not in related


def _check_binding(
    mapping: FieldMapping,
    binding: Binding,
    description: ObjectDescription,
    report: _Report,
    *,
    preflight: bool = False,
) -> None:
    key = f"fields.{mapping.name}.{binding.crm}"
    info = _existing_field(f"{key}.field", binding.field, description, report)
    if info is None:
        return
    kind = f"{binding.qualified_name} is {_a(info.type)} field"
    if not preflight and mapping.direction.pulls and info.type not in READABLE[mapping.type]:
        report.add(f"{key}.field", f"{kind}: it cannot be read as {mapping.type}")
    if mapping.direction.pushes:
        if not info.writable:
            report.add(
                f"{key}.field",
                f"{binding.qualified_name} is read-only: direction {mapping.direction.value} "
                "cannot write it (use pull)",
            )
        elif info.type not in WRITABLE[mapping.type]:
            report.add(f"{key}.field", f"{kind}: {mapping.type} values cannot be written to it")
        elif preflight:
            return
        elif _needs_table(mapping, binding, info):
            report.add(
                f"{key}.field",
                f"{binding.qualified_name} only takes its options: writing {mapping.type} "
                "values to it needs a value_map or ranges",
            )
    if preflight:
        return
    if info.restricted and info.options:
        _check_written_values(key, binding, info, report)
    if mapping.direction.pulls and info.options:
        _check_options_readable(key, mapping, binding, info, report)


def _existing_field(
    key: str, name: str, description: ObjectDescription, report: _Report, *, hint: str = ""
) -> FieldInfo | None:
    info = description.field(name)
    if info is None:
        where = f"{description.crm} {description.object_name}"
        close = difflib.get_close_matches(name, list(description.fields), n=3)
        guess = f" (did you mean {', '.join(close)}?)" if close else ""
        report.add(key, f"no field {name!r} in {where}{guess}{hint}")
    return info


def _needs_table(mapping: FieldMapping, binding: Binding, info: FieldInfo) -> bool:
    plain = not (binding.value_map or binding.ranges or binding.push_value_map)
    return info.restricted and mapping.type != "string" and plain


def _check_written_values(key: str, binding: Binding, info: FieldInfo, report: _Report) -> None:
    """The CRM values the binding's tables hold must be options of a restricted field."""
    tables = {
        "value_map": list(binding.value_map),
        "push_value_map": list(binding.push_value_map.values()),
        "ranges": [bucket.crm_value for bucket in binding.ranges],
    }
    for table, values in tables.items():
        refused = [value for value in values if value not in info.options]
        if refused:
            report.add(
                f"{key}.{table}",
                f"{_listed(refused)} not allowed by {binding.qualified_name}; its options: "
                f"{_listed(info.options)}",
            )


def _check_options_readable(
    key: str, mapping: FieldMapping, binding: Binding, info: FieldInfo, report: _Report
) -> None:
    """Every option the CRM may hand over must read as a canonical value; an option left out
    of a strict value map would quarantine every lead holding it."""
    unreadable = []
    for option in info.options:
        try:
            binding.to_canonical(option, canonical_type=mapping.type)
        except TransformError:
            unreadable.append(option)
    if unreadable:
        table = "ranges" if binding.ranges else "value_map" if binding.value_map else "field"
        report.add(
            f"{key}.{table}",
            f"{binding.qualified_name} option(s) {_listed(unreadable)} cannot be read as "
            f"{mapping.type}: map them (or set strict = false)",
        )


def _check_writeback(
    targets: WritebackTargets,
    description: ObjectDescription,
    report: _Report,
    *,
    preflight: bool = False,
    key: str | None = None,
) -> None:
    key = key or f"writeback.{targets.crm}"
    infos = {}
    hint = _SETUP_HINTS.get(targets.crm, "")
    for role, name in targets.targets().items():
        info = _existing_field(f"{key}.{role}", name, description, report, hint=hint)
        if info is None:
            continue
        infos[role] = info
        if not info.writable:
            report.add(f"{key}.{role}", f"{targets.crm} field {name} is read-only")
        elif info.type not in WRITEBACK_TYPES[role]:
            report.add(f"{key}.{role}", f"{name} is {_a(info.type)} field: unfit for the {role}")
    if preflight:
        return
    for role, values in (("stage", targets.stage_values), ("status_field", targets.status_values)):
        info = infos.get(role)
        if info is not None and info.restricted and info.options:
            listed = {v for stage in values for v in targets.holding(role, stage)}
            refused = sorted(v for v in listed if v not in info.options)
            if refused:
                table = "stage_values" if role == "stage" else "status_values"
                report.add(
                    f"{key}.{table}",
                    f"{_listed(refused)} not allowed by {info.name}; its options: "
                    f"{_listed(info.options)}",
                )


def _a(kind: FieldType) -> str:
    article = "an" if kind.value[0] in "aeiou" else "a"
    return f"{article} {kind.value}"


def _listed(values: Sequence[str]) -> str:
    shown = ", ".join(repr(value) for value in values[:_SHOWN_OPTIONS])
    more = len(values) - _SHOWN_OPTIONS
    return f"{shown} and {more} more" if more > 0 else shown


__all__ = [
    "READABLE",
    "RELATED_OBJECTS",
    "RESULT_ROLES",
    "WRITABLE",
    "WRITEBACK_ROLES",
    "FieldMap",
    "FieldMapping",
    "WritebackTargets",
    "check_against",
    "load_mapping",
    "related_objects",
]
