"""Staged edits: the service runs the version of the mapping and lead definition that
`apply` accepted (DefinitionFiles over leadsync.edits); saving a file changes nothing until it
is applied, a file with mistakes cannot be applied, and apply compares and swaps."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadsync.config import Config, load_config
from leadsync.edits import StaleEditError, apply_edit, edit_status, running_version
from leadsync.jobs import DefinitionFiles
from leadsync.mapping.definition import LeadDefinition, load_definition
from leadsync.mapping.fields import load_mapping
from leadsync.problems import ConfigError
from leadsync.sandbox_config import EXAMPLES, write_sandbox_config
from leadsync.sync.store import Store

CREDENTIALS = {
    "hubspot": {"access_token": "sandbox-token"},
    "salesforce": {"username": "u@example.test", "password": "pw", "security_token": "tok"},
}
MQL_SCORE = '{ field = "score", gte = 60 }'
# Whole seconds far from now: every write gets an mtime of its own, whatever the filesystem.
EPOCH = 1_700_000_000


class Files:
    """Copies of the shipped mapping and definition, with a config pointing at them."""

    def __init__(self, folder: Path) -> None:
        self.mapping = folder / "mapping.toml"
        self.definition = folder / "lead_definition.toml"
        self._writes = 0
        for path in (self.mapping, self.definition):
            shutil.copy(EXAMPLES / path.name, path)
            self._stamp(path)
        config_path = folder / "leadsync.toml"
        write_sandbox_config(config_path, "http://127.0.0.1:9", CREDENTIALS)
        text = config_path.read_text(encoding="utf-8")
        for path in (self.mapping, self.definition):
            text = text.replace(str(EXAMPLES / path.name), path.name)
        config_path.write_text(text, encoding="utf-8")
        self.config: Config = load_config(config_path, environ={})
        assert (self.config.mapping_path, self.config.definition_path) == (
            self.mapping,
            self.definition,
        )
        self.shipped_definition = self.definition.read_text(encoding="utf-8")

    def write(self, path: Path, text: str) -> None:
        path.write_text(text, encoding="utf-8")
        self._stamp(path)

    def edit_definition(self, old: str, new: str) -> None:
        text = self.shipped_definition
        assert old in text
        self.write(self.definition, text.replace(old, new))

    def _stamp(self, path: Path) -> None:
        self._writes += 1
        moment = EPOCH + 10 * self._writes
        os.utime(path, (moment, moment))

    def expected(self) -> LeadDefinition:
        """The definition as it is on disk now, read directly."""
        fields = load_mapping(self.mapping).canonical_types()
        return load_definition(self.definition, fields=fields)

    def problems(self) -> list[str]:
        """The problems of the files as they are on disk now, read directly."""
        fields = load_mapping(self.mapping).canonical_types()
        with pytest.raises(ConfigError) as refused:
            load_definition(self.definition, fields=fields)
        return [str(problem) for problem in refused.value.problems]


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


@pytest.fixture
def store(files: Files) -> Iterator[Store]:
    with Store(files.config.database_url) as opened:
        yield opened


def reader_of(files: Files, store: Store) -> DefinitionFiles:
    reader = DefinitionFiles(files.config)
    reader.bind(store)
    return reader


BROKEN = {
    "bad TOML": ("[scoring]\n", "[scoring\n"),
    "unknown fields": (
        MQL_SCORE,
        '{ field = "scor", gte = 60 }, { field = "no_such_field", present = true }',
    ),
    "unknown key": ("max_score = 100", "max_score = 100\nmin_score = 0"),
}


def test_the_first_start_accepts_the_files_as_they_are(files: Files, store: Store) -> None:
    field_map, definition = reader_of(files, store).current()
    assert definition.model_version == files.expected().model_version
    assert field_map.canonical_types() == load_mapping(files.mapping).canonical_types()
    first = running_version(store.engine)
    assert first is not None
    assert first.accepted_by == "first start"
    assert first.definition == files.shipped_definition


def test_an_unchanged_version_is_not_read_again(files: Files, store: Store) -> None:
    reader = reader_of(files, store)
    first = reader.current()
    assert reader.current()[1] is first[1]
    assert reader.current()[0] is first[0]


def test_a_saved_edit_changes_nothing_until_it_is_applied(
    files: Files, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    reader = reader_of(files, store)
    running = reader.current()[1]
    files.edit_definition(MQL_SCORE, '{ field = "score", gte = 70 }')
    assert reader.current()[1] is running
    state = reader.state()
    assert (state.model_version, state.changed, state.refused) == (
        running.model_version,
        True,
        False,
    )
    caplog.set_level(logging.INFO, logger="leadsync.service")
    applied = apply_edit(files.config, store.engine, by="cli:ada")
    after = reader.current()[1]
    assert after.model_version == applied.model_version == files.expected().model_version
    assert after.model_version != running.model_version
    assert reader.state().changed is False
    assert f"applied at {applied.accepted_at.isoformat()} by cli:ada" in caplog.text


def test_another_replicas_apply_is_picked_up_from_the_store(files: Files, store: Store) -> None:
    one, other = reader_of(files, store), reader_of(files, store)
    assert one.current()[1].model_version == other.current()[1].model_version
    files.edit_definition(MQL_SCORE, '{ field = "score", gte = 70 }')
    apply_edit(files.config, store.engine, by="console:ada")
    assert one.current()[1].model_version == other.current()[1].model_version
    assert other.current()[1].model_version == files.expected().model_version


@pytest.mark.parametrize(("old", "new"), BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_edit_cannot_be_applied_and_the_version_running_stays(
    files: Files, store: Store, old: str, new: str
) -> None:
    reader = reader_of(files, store)
    good = reader.current()[1]
    files.edit_definition(old, new)
    problems = files.problems()
    with pytest.raises(ConfigError) as refused:
        apply_edit(files.config, store.engine, by="cli:ada")
    assert [str(problem) for problem in refused.value.problems] == problems
    assert all(str(files.definition) in problem for problem in problems)
    assert reader.current()[1] is good
    assert reader.state().refused is True
    assert edit_status(files.config, store.engine).problems == tuple(problems)


def test_a_mapping_edit_that_drops_a_field_the_definition_uses_cannot_be_applied(
    files: Files, store: Store
) -> None:
    reader = reader_of(files, store)
    running = reader.current()
    text = files.mapping.read_text(encoding="utf-8")
    # `phone` is scored on in the definition; rename its mapping so no such field is left.
    assert "[fields.phone]" in text
    files.write(files.mapping, text.replace("[fields.phone", "[fields.telephone"))
    with pytest.raises(ConfigError) as refused:
        apply_edit(files.config, store.engine, by="cli:ada")
    assert "'phone'" in str(refused.value)
    assert reader.current() == running


def test_apply_compares_and_swaps_on_both_digests(files: Files, store: Store) -> None:
    reader_of(files, store).current()
    before = edit_status(files.config, store.engine)
    assert before.running is not None
    files.edit_definition(MQL_SCORE, '{ field = "score", gte = 70 }')
    shown = edit_status(files.config, store.engine)
    # Previewed, then edited again before applying: refused.
    files.edit_definition(MQL_SCORE, '{ field = "score", gte = 75 }')
    with pytest.raises(StaleEditError, match="the files changed since the plan"):
        apply_edit(files.config, store.engine, by="a", expect_disk=shown.disk_digest)
    # Someone else applied meanwhile: refused.
    apply_edit(files.config, store.engine, by="b")
    with pytest.raises(StaleEditError, match="another version was applied meanwhile"):
        apply_edit(files.config, store.engine, by="a", expect_running=before.running.digest)
    # Applying the version running again adds nothing.
    again = apply_edit(files.config, store.engine, by="c")
    assert again.accepted_by == "b"


def test_broken_files_at_the_first_start_raise_config_error(files: Files, store: Store) -> None:
    files.edit_definition(*BROKEN["unknown fields"])
    reader = DefinitionFiles(files.config)
    with pytest.raises(ConfigError) as refused:
        reader.bind(store)
    assert [str(problem) for problem in refused.value.problems] == files.problems()
    assert running_version(store.engine) is None
