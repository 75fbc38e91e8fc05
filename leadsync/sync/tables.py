"""The store's tables, declared once, and the two column types that keep values honest.

    UtcDateTime  timezone-aware UTC in and out, on every backend (SQLite has no time zones)
    TaggedJSON   JSON that gives back what it was given: datetimes, dates and non-finite floats
                 travel in a tagged form ({"$datetime": "2024-05-01T10:00:00+00:00"})

`json_text` and `json_read` are a TaggedJSON column's encoding and decoding without SQLAlchemy,
for the bulk paths that hand the driver pre-encoded rows (`sql.execute_encoded`).

The Alembic migrations under leadsync/migrations create exactly these tables; a test compares
the migrated schema with this metadata. There are no foreign keys on purpose: the sync steps
commit separately (a record is linked before its lead is saved), and every reference is an id
that a later step may fill in.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "NAME_FIELDS",
    "TaggedJSON",
    "UtcDateTime",
    "accepted_files",
    "backfills",
    "console_audit",
    "console_sessions",
    "cursors",
    "decode_value",
    "dictionaries",
    "encode_value",
    "encoded_json_text",
    "expected",
    "handoffs",
    "json_read",
    "json_text",
    "leads",
    "leases",
    "links",
    "metadata",
    "owner_names",
    "quarantine",
    "refusals",
    "related",
    "review",
    "runs",
    "sla_clocks",
    "sla_events",
    "snapshots",
    "transitions",
    "writes",
]


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (UTC).

    Naive datetimes are refused rather than guessed at.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps aware UTC timestamps")
        moment = value.astimezone(UTC)
        # SQLite keeps no offset: store the UTC wall time, read it back as UTC.
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# ---------------------------------------------------------------------------------- JSON codec

_DATETIME = "$datetime"
_DATE = "$date"
_FLOAT = "$float"
_OBJECT = "$object"  # a plain mapping whose only key looks like a tag: kept apart from tags


def encode_value(value: Any) -> Any:
    """`value` as plain JSON: aware datetimes (as UTC), dates and non-finite floats tagged.

    Tuples become lists. Raises TypeError for anything JSON cannot hold, ValueError for a naive
    datetime.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    # The exact types stored most, before the checks for subclasses (an ABC's is slow).
    if kind is dict:
        return _encode_mapping(value)
    if kind is list and _PLAIN.issuperset(map(type, value)):
        return list(value)
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        # PostgreSQL's json refuses NaN and Infinity; repr() reads back exactly.
        return value if math.isfinite(value) else {_FLOAT: repr(value)}
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        return {_DATETIME: value.astimezone(UTC).isoformat()}
    if isinstance(value, date):
        return {_DATE: value.isoformat()}
    if isinstance(value, Mapping):
        return _encode_mapping(value)
    if isinstance(value, list | tuple):
        return [item if type(item) in _PLAIN else encode_value(item) for item in value]
    raise TypeError(f"cannot store {type(value).__name__} values as JSON: {value!r}")


def _encode_mapping(value: Mapping[Any, Any]) -> dict[str, Any]:
    if (
        type(value) is dict
        and len(value) != 1  # a lone key may look like a tag
        and _PLAIN.issuperset(map(type, value.values()))
        and _STR.issuperset(map(type, value))
    ):
        # Flat and plain, as most stored objects are (a record's raw values): nothing to tag,
        # so no copy and no Python loop (callers only serialise what they get).
        return value
    encoded: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
        # Most values are plain: kept without a call (a first sync encodes every field).
        encoded[key] = item if type(item) in _PLAIN else encode_value(item)
    if _looks_tagged(encoded):
        return {_OBJECT: encoded}
    return encoded


# The exact types JSON holds as they are (subclasses, a StrEnum say, go the long way).
_PLAIN = frozenset({str, int, bool, type(None)})
_STR = frozenset({str})


@functools.lru_cache(maxsize=4_096)
def _decode_datetime(text: str) -> datetime:
    # Cached: a record's fields mostly share one change time (its pull's), and a what-if
    # reads every record in the store. A datetime is immutable, so sharing one is safe.
    return datetime.fromisoformat(text).astimezone(UTC)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    _DATETIME: _decode_datetime,
    _DATE: date.fromisoformat,
    _FLOAT: float,
    _OBJECT: lambda inner: {key: decode_value(item) for key, item in inner.items()},
}


def decode_value(value: Any) -> Any:
    """The inverse of `encode_value` (lists stay lists)."""
    # Every stored record and lead goes through here on a read (a what-if decodes the whole
    # store): exact type checks, and scalars (most values) returned without a call.
    kind = type(value)
    if kind is dict:
        if len(value) == 1:
            (tag, inner), *_ = value.items()
            if tag.startswith("$"):
                decoder = _DECODERS.get(tag)
                if decoder is None:
                    raise ValueError(f"unknown tag {tag!r} in stored JSON")
                return decoder(inner)
        if _SCALARS.issuperset(map(type, value.values())):
            return value  # flat, as most are: nothing to decode (the JSON parser's own dict)
        return {
            key: decode_value(item) if type(item) in _CONTAINERS else item
            for key, item in value.items()
        }
    if kind is list:
        return [decode_value(item) if type(item) in _CONTAINERS else item for item in value]
    return value


_CONTAINERS = (dict, list)
_SCALARS = frozenset({str, int, float, bool, type(None)})


def json_text(value: Any) -> str:
    """`value` as the JSON text a TaggedJSON column holds (`encode_value`, compact), for a
    parameter the driver takes as it is. Raises as `encode_value` does."""
    return encoded_json_text(encode_value(value))


def encoded_json_text(encoded: Any) -> str:
    """`json_text` of a value `encode_value` already gave."""
    try:
        return orjson.dumps(encoded).decode()
    except TypeError:
        # orjson refuses what JSON escapes can still hold: half of a surrogate pair, an int
        # past 64 bits. The json module writes those (TypeError for what JSON cannot hold).
        return json.dumps(encoded, separators=(",", ":"))


def json_read(stored: Any) -> Any:
    """A TaggedJSON column's value as the driver gives it (text on SQLite, parsed JSON on
    PostgreSQL), decoded: the inverse of `json_text`."""
    if isinstance(stored, str):
        stored = _parse(stored)
    return decode_value(stored)


def _parse(text: str) -> Any:
    # orjson reads an integer past 64 bits as a float, and refuses an escaped lone surrogate:
    # the json module reads both as they were written. What orjson read without a float lost
    # no integer: most stored JSON (text fields) is told so without searching its text again
    # (the search took three times orjson's read).
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    if not _holds_float(parsed) or _LONG_DIGITS.search(text) is None:
        return parsed
    return json.loads(text)


def _holds_float(parsed: Any) -> bool:
    kind = type(parsed)
    if kind is dict:
        items = parsed.values()
    elif kind is list:
        items = parsed
    else:
        return kind is float
    return not _NO_FLOATS.issuperset(map(type, items)) and any(map(_holds_float, items))


_NO_FLOATS = frozenset({str, int, bool, type(None)})


# Nineteen digits in a row: an integer orjson may not hold (past the 64-bit range, below
# -9,223,372,036,854,775,808 say), or only a long number in a text (a rarer, slower read).
_LONG_DIGITS = re.compile(r"[0-9]{19}")


def _looks_tagged(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)).startswith("$")


# An identity email longer than an address can be (RFC 5321) would also break the email index
# on PostgreSQL, whose index rows hold about 2,700 bytes.
MAX_EMAIL_LENGTH = 254


def unstorable(values: Mapping[str, Any]) -> list[str]:
    """Why a record with these values cannot be stored or used, field by field: text holding
    a NUL character (U+0000), which PostgreSQL's text refuses, or half of a UTF-16 surrogate
    pair (JSON may escape one, "\\ud800"), which no UTF-8 text holds: matching, the logs and
    every page would fail on it. No CRM sends either on purpose. The reasons name fields,
    never values."""
    try:
        # One pass in C over the whole record, as nearly every record holds neither: orjson
        # refuses a lone surrogate and escapes a NUL (a text holding "\\u0000" itself also
        # takes the long way, which tells them apart).
        if b"\\u0000" not in orjson.dumps(values):
            return []
    except TypeError:
        pass  # a lone surrogate, or what orjson does not write (a set, a big integer)
    reasons = []
    for name, value in values.items():
        if not _holds(value, _UNSTORABLE):
            continue  # nearly every field: one search, not one per cause
        if _holds(value, _NUL):
            reasons.append(f"{name} holds a NUL character (U+0000), which the store cannot keep")
        elif _holds(value, _LONE_SURROGATE):
            reasons.append(
                f"{name} holds half of a UTF-16 surrogate pair, which the store cannot keep"
            )
    return reasons


_NUL = re.compile("\x00")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _holds(value: Any, pattern: re.Pattern[str]) -> bool:
    kind = type(value)
    if kind is str:
        return pattern.search(value) is not None
    if kind in _PLAIN:
        return False
    if isinstance(value, str):
        return pattern.search(value) is not None
    if isinstance(value, Mapping):
        return any(_holds(key, pattern) or _holds(item, pattern) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_holds(item, pattern) for item in value)
    return False


class TaggedJSON(sa.types.TypeDecorator[Any]):
    """A JSON column through `encode_value` / `decode_value`."""

    impl = sa.JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return encode_value(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return decode_value(value)


# ------------------------------------------------------------------------------------- tables

# Deterministic constraint names, so later migrations can name what they alter.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Autoincrement ids for the append-only logs; SQLite autoincrements only INTEGER PRIMARY KEY.
_LogId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column[int]:
    return sa.Column("id", _LogId, primary_key=True, autoincrement=True)


runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(), primary_key=True),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("finished_at", UtcDateTime()),
    sa.Column("summary", TaggedJSON(), nullable=False),
)

# Where each pull resumes: an incremental position, or a backfill's opaque checkpoint.
cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("crm", sa.String(), primary_key=True),
    sa.Column("stream", sa.String(), primary_key=True),
    sa.Column("modified_at", UtcDateTime()),
    sa.Column("record_id", sa.String()),
    sa.Column("checkpoint", sa.Text()),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

# The last seen state of every CRM record. `pending` marks content not yet reconciled;
# `content_digest` is what tells a changed record from the same one pulled again. `packed`
# holds the raw and canonical values, compressed together (`sync.packed`).
snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("crm", sa.String(), primary_key=True),
    sa.Column("record_id", sa.String(), primary_key=True),
    sa.Column("modified_at", UtcDateTime(), nullable=False),
    sa.Column("packed", sa.LargeBinary(), nullable=False),
    sa.Column("changed_at", TaggedJSON(), nullable=False),
    sa.Column("deleted", sa.Boolean(), nullable=False),
    sa.Column("content_digest", sa.String(), nullable=False),
    sa.Column("pending", sa.Boolean(), nullable=False),
    # The backfill (its stream) a changed snapshot waits for, instead of being pending.
    sa.Column("held_for", sa.String(), index=True),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("saved_at", UtcDateTime(), nullable=False),
    # The person record of a related object this record names (a HubSpot contact's
    # salesforcecontactid): a Contact pulled after its person was merged finds it here.
    sa.Column("person_named", sa.String(), index=True),
    sa.Index(None, "crm", "pending", "modified_at"),
)

# One row per record the mapping refused, reopened if it is refused again after a fix.
quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("crm", sa.String(), primary_key=True),
    sa.Column("record_id", sa.String(), primary_key=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("raw", TaggedJSON(), nullable=False),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("resolved_at", UtcDateTime()),
)

# A lead's values, choices and reasons are one blob, `packed`: the JSON text
# [values, choices, reasons] (each as `encode_value` gives it; choices as `Store` lists them),
# compressed (`sync.packed`). Nothing queries inside them but the search by name: `names`
# keeps the lead's name fields (`NAME_FIELDS`, those it has) as JSON for it.
NAME_FIELDS = ("first_name", "last_name")
leads = sa.Table(
    "leads",
    metadata,
    sa.Column("lead_id", sa.String(), primary_key=True),
    sa.Column("packed", sa.LargeBinary(), nullable=False),
    sa.Column("names", sa.JSON(), nullable=False),
    sa.Column("score", sa.Integer()),
    sa.Column("fit", sa.Integer()),
    sa.Column("engagement", sa.Integer()),
    sa.Column("grade", sa.String()),
    sa.Column("model_version", sa.String()),
    sa.Column("stage", sa.String()),
    # The normalised identity email, kept in step with `values` by every save.
    sa.Column("email", sa.String(), index=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

# The Zstandard dictionaries packed values are compressed with (`sync.packed`, format 3), each
# trained on the first blobs of one `kind`: "snapshots:<crm>", "writes:<crm>" (the log's
# fields) or "leads". A blob names its dictionary's id; a dictionary is never changed nor
# deleted while a blob names it.
dictionaries = sa.Table(
    "dictionaries",
    metadata,
    _id(),
    sa.Column("kind", sa.String(), nullable=False, index=True),
    sa.Column("data", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

# Identity: which lead each CRM record belongs to.
links = sa.Table(
    "links",
    metadata,
    sa.Column("crm", sa.String(), primary_key=True),
    sa.Column("record_id", sa.String(), primary_key=True, index=True),
    sa.Column("lead_id", sa.String(), nullable=False, index=True),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("linked_at", UtcDateTime(), nullable=False),
)

transitions = sa.Table(
    "transitions",
    metadata,
    _id(),
    sa.Column("lead_id", sa.String(), nullable=False, index=True),
    sa.Column("from_stage", sa.String()),
    sa.Column("to_stage", sa.String(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("run_id", sa.String(), nullable=False),
)

# The audit log: every write, with what the CRM held before and what was sent. One row per
# record written per batch (its rows that share an outcome, in the order given): `fields` is
# {field: [old, new]}, each pair as `encode_value` gives it, in the order written, as JSON
# compressed (`sync.packed`). The store reads it back one field at a time (`Store.writes`).
writes = sa.Table(
    "writes",
    metadata,
    _id(),
    sa.Column("run_id", sa.String(), nullable=False, index=True),
    sa.Column("crm", sa.String(), nullable=False),
    sa.Column("record_id", sa.String(), nullable=False),
    sa.Column("fields", sa.LargeBinary(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("category", sa.String(), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Index(None, "crm", "record_id"),
)

# Echo fingerprints: the raw value leadsync last wrote to each field of each record, one row per
# record. `packed` holds the JSON {field: [value]} for a field written at `written_at` (the
# latest write), {field: [value, written at]} for one written before it: the value as
# `encode_value` gives it, the time in microseconds since the epoch (UTC), compressed
# (`sync.packed`: nothing queries inside it). A first sync's row holds no time but
# `written_at` (17 fields of 16 digits were a third of the row). Each write is laid over the
# record's earlier fields (`sync.write_log.merge_expected`).
# `modified_at` is the record's stamp after leadsync's last write to it, on the CRM's own clock,
# where the CRM's answer gave one (HubSpot's does): a version pulled later but stamped earlier
# is older than what the record holds (`Store.known_stamps`). NULL where none was given.
expected = sa.Table(
    "expected",
    metadata,
    sa.Column("crm", sa.String(), primary_key=True),
    sa.Column("record_id", sa.String(), primary_key=True),
    sa.Column("packed", sa.LargeBinary(), nullable=False),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("written_at", UtcDateTime(), nullable=False),
    sa.Column("modified_at", UtcDateTime(), nullable=True),
)

# Writes a CRM refused, each record waiting to be tried again: once the mapping, the lead
# definition or that CRM's describe is no longer what it was refused under (`context`), or at
# `retry_at`, whichever comes first. A write that lands takes the record out.
refusals = sa.Table(
    "refusals",
    metadata,
    sa.Column("crm", sa.String(), primary_key=True),
    sa.Column("record_id", sa.String(), primary_key=True),
    sa.Column("context", sa.String(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("retry_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("run_id", sa.String(), nullable=False),
)

# Ambiguous matches a person decides: one item per record, open until resolved.
review = sa.Table(
    "review",
    metadata,
    sa.Column("crm", sa.String(), primary_key=True),
    sa.Column("record_id", sa.String(), primary_key=True),
    sa.Column("candidates", TaggedJSON(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("resolved_at", UtcDateTime()),
    sa.Column("resolution", sa.Text()),
)

# The SLA ledger: one clock per lead, rule and start. A clock runs until it is met (or the lead
# is rejected) or its time is up; `status` moves open -> breached -> resolved_late, or open ->
# met | resolved_late, each move by one conditional UPDATE, so replicas never move it twice.
sla_clocks = sa.Table(
    "sla_clocks",
    metadata,
    sa.Column("clock_id", sa.String(), primary_key=True),
    sa.Column("rule", sa.String(), nullable=False),
    sa.Column("lead_id", sa.String(), nullable=False, index=True),
    sa.Column("owner", sa.String()),
    sa.Column("time_zone", sa.String(), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("due_at", UtcDateTime(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("stopped_at", UtcDateTime()),
    sa.Column("outcome", sa.String()),  # met | rejected, once stopped
    sa.Column("stop_reason", sa.Text(), nullable=False),
    sa.Column("breached_at", UtcDateTime(), index=True),  # when leadsync recorded the breach
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Index(None, "status", "due_at"),
)

# What the SLA ledger announced: each breach, resolution and volume warning once (the event id
# says which), logged by the replica whose insert made the row, and the webhook's outbox.
sla_events = sa.Table(
    "sla_events",
    metadata,
    sa.Column("event_id", sa.String(), primary_key=True),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("rule", sa.String(), nullable=False),
    sa.Column("clock_id", sa.String()),
    sa.Column("lead_id", sa.String()),
    sa.Column("at", UtcDateTime(), nullable=False, index=True),
    sa.Column("payload", TaggedJSON(), nullable=False),
    sa.Column("delivered_at", UtcDateTime()),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UtcDateTime()),
    sa.Column("last_error", sa.Text()),
    sa.Index(None, "delivered_at", "next_attempt_at"),
    sa.Index(None, "clock_id", "kind"),
)

# The handoff: each lead leadsync hands off to the CRM sales work in, once. `status` moves
# pending (about to be created: the upsert by the lead's id finds it again after a kill) ->
# created | matched (an existing person there) | failed (the CRM refused it) | blocked (cannot
# be handed off: no company, no owner; `problem` says why). A blocked or failed lead is tried
# again when its records change.
handoffs = sa.Table(
    "handoffs",
    metadata,
    sa.Column("lead_id", sa.String(), primary_key=True),
    sa.Column("crm", sa.String(), nullable=False),
    sa.Column("status", sa.String(), nullable=False, index=True),
    sa.Column("record_id", sa.String()),
    sa.Column("record_object", sa.String()),
    sa.Column("owner", sa.String(), index=True),
    sa.Column("rule", sa.Text(), nullable=False),  # what picked the owner, for `explain`
    sa.Column("problem", sa.Text(), nullable=False),
    sa.Column("eligible_at", UtcDateTime(), nullable=False),  # reached the handoff stage
    sa.Column("handed_off_at", UtcDateTime(), index=True),  # sales can see it, with an owner
    sa.Column("linked_at", UtcDateTime()),  # its id written back to the other CRM
    sa.Column("run_id", sa.String(), nullable=False),
    # The first change after the handoff of a field that counts as work (a status change, an
    # activity logged), as the sync saw it: "no response after handoff" is read from it.
    sa.Column("responded_at", UtcDateTime()),
)

# The names of the owners leads were handed off to, as the CRM sales work in gave them: the
# reports show names where the store knows them, ids otherwise. Never logged.
owner_names = sa.Table(
    "owner_names",
    metadata,
    sa.Column("crm", sa.String(), primary_key=True),
    sa.Column("owner_id", sa.String(), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("seen_at", UtcDateTime(), nullable=False),
)

# Who runs each job right now: one holder per name until `expires_at`, renewed while it works.
# A replica that dies stops renewing; another takes the lease over once it has expired.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(), primary_key=True),
    sa.Column("holder", sa.String(), nullable=False),
    sa.Column("acquired_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
)

# Admins' full pulls, run in the foreground or queued for the service. Each CRM's checkpoint
# is a cursor of its own (stream "backfill:<id>"); `progress` holds the counts per CRM.
backfills = sa.Table(
    "backfills",
    metadata,
    sa.Column("backfill_id", sa.String(), primary_key=True),
    sa.Column("kind", sa.String(), nullable=False),  # backfill | sweep
    sa.Column("crms", TaggedJSON(), nullable=False),
    sa.Column("since", UtcDateTime()),
    sa.Column("until", UtcDateTime()),
    sa.Column("dry_run", sa.Boolean(), nullable=False),
    sa.Column("status", sa.String(), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("started_at", UtcDateTime()),
    sa.Column("finished_at", UtcDateTime()),
    sa.Column("holder", sa.String()),
    sa.Column("heartbeat_at", UtcDateTime()),
    sa.Column("progress", TaggedJSON(), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    # CRM -> where its pull stands once the records `progress` counts are saved (0020).
    sa.Column("checkpoints", TaggedJSON()),
)

# What people did through the web console, and who: every change (a backfill queued, stopped
# or resumed; later an edit applied, a review item resolved), and each sign-in and refused
# sign-in. Append-only.
console_audit = sa.Table(
    "console_audit",
    metadata,
    _id(),
    sa.Column("at", UtcDateTime(), nullable=False, index=True),
    sa.Column("actor", sa.String(), nullable=False),  # the console user, or "-" for nobody
    sa.Column("role", sa.String(), nullable=False),
    sa.Column("action", sa.String(), nullable=False),  # e.g. "backfill.queue", "login.refused"
    sa.Column("target", sa.String(), nullable=False),  # what it acted on: a backfill id, ...
    sa.Column("details", TaggedJSON(), nullable=False),
    sa.Column("replica", sa.String(), nullable=False),  # the replica that served it
    sa.Index(None, "actor", "action", "at"),
)

# The console's sign-ins, server-side: the browser holds a random token, the store only its
# SHA-256 (a copy of the table signs nobody in), with the token that guards the user's forms.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("token_digest", sa.String(), primary_key=True),
    sa.Column("user", sa.String(), nullable=False),
    sa.Column("csrf_token", sa.String(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

# The versions of the mapping and lead definition `leadsync apply` accepted; the service runs
# the last one, so saving a file changes nothing in it until the file is applied.
accepted_files = sa.Table(
    "accepted_files",
    metadata,
    _id(),
    sa.Column("digest", sa.String(), nullable=False),
    sa.Column("mapping", sa.Text(), nullable=False),
    sa.Column("definition", sa.Text(), nullable=False),
    sa.Column("model_version", sa.String(), nullable=False),
    sa.Column("accepted_at", UtcDateTime(), nullable=False),
    sa.Column("accepted_by", sa.String(), nullable=False),
)

# The records of a CRM's related objects, as last pulled, each with the lead record that names
# it (`parent_id`, the converted lead that became it), if any: a change to one is laid over
# its lead's snapshot.
related = sa.Table(
    "related",
    metadata,
    sa.Column("crm", sa.String(), primary_key=True),
    sa.Column("record_id", sa.String(), primary_key=True),
    sa.Column("object_name", sa.String(), nullable=False),
    sa.Column("modified_at", UtcDateTime(), nullable=False),
    sa.Column("raw", TaggedJSON(), nullable=False),
    sa.Column("deleted", sa.Boolean(), nullable=False),
    sa.Column("parent_id", sa.String(), index=True),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("saved_at", UtcDateTime(), nullable=False),
    # The normalised email of a record that is a person of its own (a Contact no lead names
    # may still be a person's record): what matching it to its person looks up.
    sa.Column("email", sa.String(), index=True),
    sa.Index(None, "crm", "object_name", "modified_at"),
)
