"""Staged edits: the service runs the mapping and lead definition `leadsync apply` accepted,
not whatever the files hold at the moment, so saving a half-finished edit changes nothing.

    edit -> `leadsync check` -> `leadsync plan --what-if` -> `leadsync apply`

Each accepted version (both files' text, a digest of them, when and by whom) is a row of the
store, the last one running on every replica. The first start of a service on a store with no
version accepts the files on disk, as they are (they must load). `apply` accepts the files on
disk when they load without a problem, with compare-and-swap on the digests: the version
running must still be the one the person compared with, and the files the ones they previewed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from leadsync.config import Config
from leadsync.errors import UsageError
from leadsync.mapping.definition import LeadDefinition, parse_definition
from leadsync.mapping.fields import FieldMap, parse_mapping
from leadsync.problems import ConfigError, read_text
from leadsync.sync import tables as t
from leadsync.sync.database import writing

__all__ = [
    "EditStatus",
    "StaleEditError",
    "Version",
    "accept_first",
    "apply_edit",
    "digest_of",
    "disk_files",
    "edit_status",
    "load_version",
    "running_version",
]

SHORT = 12  # the digest as shown


class StaleEditError(UsageError):
    """The version running, or the files on disk, changed since they were compared."""


@dataclass(frozen=True, slots=True)
class Version:
    """One accepted version of the two files."""

    number: int
    digest: str
    mapping: str
    definition: str
    model_version: str
    accepted_at: datetime
    accepted_by: str

    @property
    def short(self) -> str:
        return self.digest[:SHORT]

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "digest": self.digest,
            "model_version": self.model_version,
            "accepted_at": self.accepted_at.isoformat(),
            "accepted_by": self.accepted_by,
        }


@dataclass(frozen=True, slots=True)
class EditStatus:
    """The version running, and the files on disk: their digest and their problems."""

    running: Version | None
    disk_digest: str | None  # None when a file cannot be read
    mapping_text: str
    definition_text: str
    problems: tuple[str, ...]

    @property
    def differs(self) -> bool:
        return self.running is None or self.disk_digest != self.running.digest

    def as_dict(self) -> dict[str, Any]:
        return {
            "running": None if self.running is None else self.running.as_dict(),
            "disk_digest": self.disk_digest,
            "files_differ": self.differs,
            "problems": list(self.problems),
        }


def digest_of(mapping: str, definition: str) -> str:
    both = hashlib.sha256()
    for text in (mapping, definition):
        encoded = text.encode("utf-8")
        both.update(len(encoded).to_bytes(8, "big"))  # the boundary, so texts cannot trade
        both.update(encoded)
    return both.hexdigest()


def running_version(engine: Engine) -> Version | None:
    """The last version accepted: the one every replica runs."""
    query = sa.select(t.accepted_files).order_by(t.accepted_files.c.id.desc()).limit(1)
    with engine.connect() as connection:
        row = connection.execute(query).mappings().one_or_none()
    return None if row is None else _version(row)


def running_number(engine: Engine) -> int | None:
    """The number of the version running (a cheap read, to tell whether it changed)."""
    with engine.connect() as connection:
        found = connection.execute(sa.select(sa.func.max(t.accepted_files.c.id))).scalar()
    return None if found is None else int(found)


def load_version(version: Version, config: Config) -> tuple[FieldMap, LeadDefinition]:
    """The mapping and lead definition of an accepted version (named as their files)."""
    return _parse(version.mapping, version.definition, config)


def disk_files(config: Config) -> tuple[FieldMap, LeadDefinition]:
    """The mapping and lead definition on disk (ConfigError with every mistake)."""
    return _parse(*_disk(config), config)


def edit_status(config: Config, engine: Engine) -> EditStatus:
    """What runs, and how the files on disk compare: `leadsync status`, the console."""
    running = running_version(engine)
    try:
        mapping, definition = _disk(config)
    except ConfigError as unreadable:
        return EditStatus(running, None, "", "", _said(unreadable.problems))
    try:
        _parse(mapping, definition, config)
        problems: tuple[str, ...] = ()
    except ConfigError as mistakes:
        problems = _said(mistakes.problems)
    return EditStatus(running, digest_of(mapping, definition), mapping, definition, problems)


def apply_edit(
    config: Config,
    engine: Engine,
    *,
    by: str,
    expect_disk: str | None = None,
    expect_running: str | None = None,
    now: datetime | None = None,
) -> Version:
    """Accept the files on disk: ConfigError when they have a problem; StaleEditError when the
    files are not those with digest `expect_disk`, or the version running is not
    `expect_running` (the digests the person compared; "" for none running). Accepting the
    version already running changes nothing and returns it."""
    mapping, definition = _disk(config)
    _, lead_definition = _parse(mapping, definition, config)
    digest = digest_of(mapping, definition)
    if expect_disk is not None and digest != expect_disk:
        raise StaleEditError("the files changed since the plan: look at the what-if again")
    with writing(engine) as connection:
        last = (
            connection.execute(
                sa.select(t.accepted_files).order_by(t.accepted_files.c.id.desc()).limit(1)
            )
            .mappings()
            .one_or_none()
        )
        current = None if last is None else _version(last)
        if expect_running is not None and (current.digest if current else "") != expect_running:
            raise StaleEditError("another version was applied meanwhile: compare again")
        if current is not None and current.digest == digest:
            return current
        accepted = Version(
            0,
            digest,
            mapping,
            definition,
            lead_definition.model_version,
            now or datetime.now(UTC),
            by,
        )
        row = {
            "digest": digest,
            "mapping": mapping,
            "definition": definition,
            "model_version": accepted.model_version,
            "accepted_at": accepted.accepted_at,
            "accepted_by": by,
        }
        key = connection.execute(t.accepted_files.insert(), row).inserted_primary_key
    assert key is not None  # an insert of one row has its key
    return replace(accepted, number=int(key[0]))


def accept_first(config: Config, engine: Engine) -> Version:
    """The version running; on a store with none, the files on disk accepted as they are
    (ConfigError when they do not load): a new service starts on what it was given."""
    running = running_version(engine)
    if running is not None:
        return running
    try:
        return apply_edit(config, engine, by="first start", expect_running="")
    except StaleEditError:
        # Replicas started together: another accepted the first version in between. Run that.
        accepted = running_version(engine)
        if accepted is None:
            raise
        return accepted


def _disk(config: Config) -> tuple[str, str]:
    return read_text(config.mapping_path), read_text(config.definition_path)


def _parse(mapping: str, definition: str, config: Config) -> tuple[FieldMap, LeadDefinition]:
    field_map = parse_mapping(mapping, file=str(config.mapping_path))
    return field_map, parse_definition(
        definition, file=str(config.definition_path), fields=field_map.canonical_types()
    )


def _said(problems: Sequence[object]) -> tuple[str, ...]:
    return tuple(str(problem) for problem in problems)


def _version(row: RowMapping) -> Version:
    return Version(
        number=int(row["id"]),
        digest=row["digest"],
        mapping=row["mapping"],
        definition=row["definition"],
        model_version=row["model_version"],
        accepted_at=row["accepted_at"],
        accepted_by=row["accepted_by"],
    )
