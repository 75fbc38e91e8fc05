"""Ingest: one pulled CRM record -> a Snapshot, through the mapping; or a quarantine reason.

A record is quarantined (QuarantineError) when it has no usable email or holds a value the
mapping cannot transform; the run goes on with the others. An email is usable when, trimmed
and lower-cased (identity.normalise_email), it has exactly one "@", something before it, and
after it a domain of at least two dot-separated labels, with no spaces anywhere: `a@b.co`.
It is a sanity check, not RFC 5322: it catches the typos forms let through ("a@", "a.x.com",
"a@b"), and a mail server is the judge of the rest.

Each canonical field gets a `changed_at`: when a person last changed it in this CRM, as far as
leadsync can tell. A value equal to the previous snapshot's keeps its time; a new value takes
the record's modification time, unless it is what leadsync itself wrote there last (`expected`):
that is leadsync's own echo, and counting it as an edit would make the next reconcile see a
fresh change and write it back the other way, on and on. A blank read for the first time (a
record first met, a field newly mapped) has no time: nobody is known to have cleared it, and a
most_recent field must not blank the other CRM's value for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, NamedTuple

from leadsync.connectors.base import CrmRecord
from leadsync.connectors.traits import traits_of
from leadsync.errors import RecordError
from leadsync.mapping.fields import FieldMap, FieldMapping
from leadsync.mapping.transforms import Reader, TransformError, is_blank
from leadsync.mapping.types import CRMS
from leadsync.sync.identity import CROSS_REFERENCE_FIELDS, normalise_email
from leadsync.sync.model import FieldChoice, Snapshot
from leadsync.sync.tables import MAX_EMAIL_LENGTH, unstorable

__all__ = [
    "FieldProblem",
    "QuarantineError",
    "email_problem",
    "field_problems",
    "fields_to_pull",
    "own_fields",
    "own_values",
    "same_value",
    "to_snapshot",
]

_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")


class QuarantineError(RecordError):
    """A record leadsync cannot use, with every reason why (each names the field and value)."""

    def __init__(self, crm: str, record_id: str, reasons: tuple[str, ...]) -> None:
        super().__init__(f"{crm} record {record_id}: {'; '.join(reasons)}")
        self.crm = crm
        self.record_id = record_id
        self.reasons = reasons

    @property
    def reason(self) -> str:
        """The reasons as one line, for the quarantine table."""
        return "; ".join(self.reasons)


def fields_to_pull(field_map: FieldMap, crm: str) -> tuple[str, ...]:
    """The lead-object fields a pull of `crm` must ask for: what the mapping reads and writes,
    the cross-references identity matches on, and what the CRM's traits always need: the flag
    of the records it refuses to update (a converted Salesforce lead) and the references to
    related records (its converted opportunity, whose fields the engine reads for bindings
    with object = "Opportunity")."""
    extra = [*CROSS_REFERENCE_FIELDS.get(crm, {}), *traits_of(crm).pull_fields]
    return tuple(dict.fromkeys([*field_map.crm_fields(crm), *extra]))


def to_snapshot(
    record: CrmRecord,
    field_map: FieldMap,
    *,
    previous: Snapshot | None,
    expected: Mapping[str, Any] | None,
) -> Snapshot:
    """`record` read through `field_map`, with per-field change times.

    `previous` is the record's last stored snapshot; `expected` what leadsync last wrote to it
    (CRM field -> value as sent). Only the pulled bindings of the record's CRM on the lead object
    are read: Opportunity values come from the engine. A field the record lacks entirely stays
    out of `canonical`. Raises QuarantineError for a live record leadsync cannot use; a deleted
    record is never quarantined, it only stops counting.
    """
    if record.deleted:
        return _deleted(record, field_map, previous)
    pulls = field_map.compiled(_compile_pulls).get(record.crm, ())
    canonical, unreadable = _read(record, pulls)
    reasons = [*unstorable(record.fields), *unreadable.values()]
    if field_map.identity_field not in unreadable:  # else its reason is given already
        identity_problem = email_problem(field_map, canonical, record.crm)
        if identity_problem is not None:
            reasons.insert(0, identity_problem)
    if reasons:
        raise QuarantineError(record.crm, record.id, tuple(reasons))
    return Snapshot(
        crm=record.crm,
        record_id=record.id,
        modified_at=record.modified_at,
        raw=dict(record.fields),
        canonical=canonical,
        changed_at=_changed_at(record, pulls, canonical, previous, expected),
        lead_id=previous.lead_id if previous is not None else None,
    )


def email_problem(field_map: FieldMap, canonical: Mapping[str, Any], crm: str) -> str | None:
    """Why the identity field of `canonical` cannot be matched on, or None when it can."""
    name = field_map.identity_field
    email = normalise_email(canonical.get(name))
    if email is not None and len(email) <= MAX_EMAIL_LENGTH and _EMAIL.fullmatch(email):
        return None  # the usual case, told without looking up where the field lives
    binding = field_map.fields[name].binding(crm)
    where = binding.qualified_name if binding is not None else name
    if email is None:
        return f"no {name}: {where} is blank or missing"
    if len(email) > MAX_EMAIL_LENGTH:
        return (
            f"invalid {name} in {where}: {len(email)} characters, more than an address can "
            f"have ({MAX_EMAIL_LENGTH})"
        )
    if not _EMAIL.fullmatch(email):
        return f"invalid {name} {canonical[name]!r} in {where}: expected name@domain.tld"
    return None


_READ_ALIKE = frozenset({str, int, bool, type(None)})


def same_value(mapping: FieldMapping, crm: str, one: Any, other: Any) -> bool:
    """Whether two raw values of `crm` mean the same canonical value ("100" and 100.0, " a"
    and "a" after trim, "50-100" and the number it reads as). Values the mapping cannot read
    are compared as they are."""
    return same_read(mapping.reader(crm), one, other)


def same_read(read: Reader, one: Any, other: Any) -> bool:
    """`same_value` through a field's compiled `read` (FieldMapping.reader): what a compiled
    field list binds it to with `partial`."""
    kind = type(one)
    if kind is type(other) and kind in _READ_ALIKE and one == other:
        # One read for both (most values a plan compares are unchanged): equal text, whole
        # numbers or flags read alike. Not floats: 0.0 == -0.0, yet they may read apart.
        try:
            value = read(one)
        except TransformError:
            return True
        return bool(value == value)  # False for a NaN, as two reads compare
    try:
        return bool(read(one) == read(other))
    except TransformError:
        return bool(one == other)


# ------------------------------------------------------------------------------- reading


class _Pull(NamedTuple):
    """One field read from a CRM's lead object, compiled once per mapping."""

    name: str  # canonical
    field: str  # the CRM's
    read: Reader
    # Whether two raw values of the field mean the same (`same_value`).
    same: Callable[[Any, Any], bool]


def _compile_pulls(field_map: FieldMap) -> dict[str, tuple[_Pull, ...]]:
    """CRM -> the fields read from its lead object: pulled, bound there, not on a related
    object; in the mapping's order."""
    pulls: dict[str, tuple[_Pull, ...]] = {}
    for crm in CRMS:
        found = []
        for mapping in field_map.fields.values():
            binding = mapping.binding(crm)
            if mapping.direction.pulls and binding is not None and binding.object is None:
                read = mapping.reader(crm)
                found.append(_Pull(mapping.name, binding.field, read, partial(same_read, read)))
        pulls[crm] = tuple(found)
    return pulls


def _read(record: CrmRecord, pulls: tuple[_Pull, ...]) -> tuple[dict[str, Any], dict[str, str]]:
    """The canonical values of the record's pulled fields, and field -> why it is unreadable."""
    canonical: dict[str, Any] = {}
    problems: dict[str, str] = {}
    fields = record.fields
    for name, field, read, _same in pulls:
        if field not in fields:
            continue
        try:
            canonical[name] = read(fields[field])
        except TransformError as error:
            problems[name] = f"cannot read {error}"
    return canonical, problems


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """Why one field of a record keeps it out: the CRM's field, its value, the message."""

    field: str
    value: Any
    message: str


def field_problems(crm: str, fields: Mapping[str, Any], field_map: FieldMap) -> list[FieldProblem]:
    """Field by field, why `to_snapshot` would quarantine a record of `crm` holding `fields`
    under `field_map` (empty when it would not): what `leadsync quarantine show` lists."""
    found = [
        FieldProblem(name, value, "holds a NUL character (U+0000), which the store cannot keep")
        for name, value in fields.items()
        if unstorable({name: value})
    ]
    record = CrmRecord(crm, "", datetime.min.replace(tzinfo=UTC), fields)
    canonical, unreadable = _read(record, field_map.compiled(_compile_pulls).get(crm, ()))
    for name, message in unreadable.items():
        binding = field_map.fields[name].binding(crm)
        crm_field = binding.field if binding is not None else name
        found.append(FieldProblem(crm_field, fields.get(crm_field), message))
    identity = field_map.identity_field
    if identity not in unreadable:
        why = email_problem(field_map, canonical, crm)
        if why is not None:
            binding = field_map.fields[identity].binding(crm)
            crm_field = binding.field if binding is not None else identity
            found.insert(0, FieldProblem(crm_field, fields.get(crm_field), why))
    return found


def _deleted(record: CrmRecord, field_map: FieldMap, previous: Snapshot | None) -> Snapshot:
    # What can be read is kept for the audit trail; a deleted record never votes.
    canonical, _unreadable = _read(record, field_map.compiled(_compile_pulls).get(record.crm, ()))
    return Snapshot(
        crm=record.crm,
        record_id=record.id,
        modified_at=record.modified_at,
        raw=dict(record.fields),
        canonical=canonical,
        changed_at=dict(previous.changed_at) if previous is not None else {},
        deleted=True,
        lead_id=previous.lead_id if previous is not None else None,
    )


# ------------------------------------------------------------------------------- change times


def _changed_at(
    record: CrmRecord,
    pulls: tuple[_Pull, ...],
    canonical: Mapping[str, Any],
    previous: Snapshot | None,
    expected: Mapping[str, Any] | None,
) -> dict[str, datetime]:
    """Per field: the previous time when unchanged or when the change is leadsync's own echo
    (absent when there is none: no person is known to have set it); absent for a blank read
    for the first time (no person is known to have cleared it); else the record's time."""
    if previous is None and not expected:
        # A record met for the first time, never written: every value is a person's. A blank
        # is not: nobody is known to have cleared it (most contacts never had a phone), and
        # timed at the record's stamp it would win a most_recent field and blank the other
        # CRM's value on a first sync.
        return {
            name: record.modified_at for name, value in canonical.items() if not is_blank(value)
        }
    times: dict[str, datetime] = {}
    fields = record.fields
    for name, field, _read, same in pulls:
        if name not in canonical:
            continue
        value = canonical[name]
        before = previous.changed_at.get(name) if previous is not None else None
        unchanged = previous is not None and _same(previous.canonical, name, value)
        # leadsync's own echo: the field holds what leadsync last wrote there.
        if unchanged or (expected and field in expected and same(fields[field], expected[field])):
            if before is not None:
                times[name] = before
        elif is_blank(value) and (previous is None or name not in previous.canonical):
            pass  # read blank for the first time: nobody is known to have cleared it
        else:
            times[name] = record.modified_at
    return times


def _same(values: Mapping[str, Any], name: str, value: Any) -> bool:
    if name not in values:
        return False
    held = values[name]
    # Blank is blank, whichever form it came in.
    return (is_blank(held) and is_blank(value)) or bool(held == value)


# ------------------------------------------------------------------------------- leadsync's own


def own_fields(raw: Mapping[str, Any], written: Mapping[str, Any]) -> frozenset[str]:
    """The fields of a record (its `raw` values) that hold what leadsync itself last wrote
    there (`written`, the store's echo fingerprints): leadsync's own values, never a person's
    signal for leadsync's own rules."""
    if not written:
        return _NONE  # a record leadsync never wrote to: every first sync's
    return frozenset(
        name for name, value in written.items() if name in raw and _same_raw(raw[name], value)
    )


_NONE: frozenset[str] = frozenset()


def own_values(
    field_map: FieldMap, choices: Mapping[str, FieldChoice], own: Mapping[str, frozenset[str]]
) -> frozenset[str]:
    """The canonical fields whose merged value came from a CRM field holding leadsync's own
    write (`own`: CRM -> fields, from `own_fields`)."""
    if not any(own.values()):
        return frozenset()  # leadsync has written nothing these records still hold
    places = field_map.compiled(_compile_places)
    found = set()
    for name, choice in choices.items():
        place = places.get((name, choice.crm))
        if place is not None and place[1] in own.get(place[0], ()):
            found.add(name)
    return frozenset(found)


def _compile_places(field_map: FieldMap) -> dict[tuple[str, str | None], tuple[str, str]]:
    """(canonical field, CRM) -> (CRM, field) where it lives on that CRM's lead object."""
    return {
        (name, crm): (binding.crm, binding.field)
        for name, mapping in field_map.fields.items()
        for crm in CRMS
        if (binding := mapping.binding(crm)) is not None and binding.object is None
    }


def _same_raw(held: Any, written: Any) -> bool:
    # The CRM hands back what was sent in its own form: "60" for 60, "" or None for blank.
    if is_blank(held) and is_blank(written):
        return True
    if isinstance(held, bool) or isinstance(written, bool):
        return str(held).lower() == str(written).lower()
    try:
        return float(held) == float(written)
    except (TypeError, ValueError):
        return str(held).strip() == str(written).strip()
