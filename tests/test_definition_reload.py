"""DefinitionFiles: the service's mapping and lead definition are read again when their files
change; an edit with mistakes is refused, its problems logged once, the last good one kept."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from leadsync.config import Config, load_config
from leadsync.jobs import DefinitionFiles
from leadsync.mapping.definition import LeadDefinition, load_definition
from leadsync.mapping.fields import load_mapping
from leadsync.problems import ConfigError
from leadsync.sandbox_config import EXAMPLES, write_sandbox_config

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


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "leadsync.service"
        and record.levelno == logging.ERROR
        and record.getMessage().startswith("edit refused:")
    ]


BROKEN = {
    "bad TOML": ("[scoring]\n", "[scoring\n"),
    "unknown fields": (
        MQL_SCORE,
        '{ field = "scor", gte = 60 }, { field = "no_such_field", present = true }',
    ),
    "unknown key": ("max_score = 100", "max_score = 100\nmin_score = 0"),
}


def test_the_first_read_gives_the_files_as_they_are(files: Files) -> None:
    field_map, definition = DefinitionFiles(files.config).current()
    assert definition.model_version == files.expected().model_version
    assert field_map.canonical_types() == load_mapping(files.mapping).canonical_types()


def test_unchanged_files_are_not_read_again(files: Files) -> None:
    reader = DefinitionFiles(files.config)
    first = reader.current()
    assert reader.current()[1] is first[1]
    assert reader.current()[0] is first[0]


def test_a_valid_edit_of_the_definition_is_picked_up(files: Files) -> None:
    reader = DefinitionFiles(files.config)
    before = reader.current()[1].model_version
    files.edit_definition(MQL_SCORE, '{ field = "score", gte = 70 }')
    after = reader.current()[1]
    assert after.model_version != before
    assert after.model_version == files.expected().model_version


@pytest.mark.parametrize(("old", "new"), BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_edit_keeps_the_last_good_version_and_logs_each_problem_once(
    files: Files, caplog: pytest.LogCaptureFixture, old: str, new: str
) -> None:
    reader = DefinitionFiles(files.config)
    good = reader.current()[1]
    files.edit_definition(old, new)
    problems = files.problems()
    caplog.set_level(logging.INFO, logger="leadsync.service")

    for _ in range(3):
        assert reader.current()[1] is good
    assert refusals(caplog) == [f"edit refused: {problem}" for problem in problems]
    assert all(str(files.definition) in problem for problem in problems)


def test_each_new_broken_edit_is_logged_in_its_turn(
    files: Files, caplog: pytest.LogCaptureFixture
) -> None:
    reader = DefinitionFiles(files.config)
    good = reader.current()[1]
    caplog.set_level(logging.INFO, logger="leadsync.service")

    files.edit_definition(*BROKEN["bad TOML"])
    first = files.problems()
    assert reader.current()[1] is good
    files.edit_definition(*BROKEN["unknown key"])
    second = files.problems()
    assert reader.current()[1] is good
    assert reader.current()[1] is good
    assert refusals(caplog) == [f"edit refused: {problem}" for problem in first + second]


def test_fixing_a_refused_edit_is_picked_up(files: Files, caplog: pytest.LogCaptureFixture) -> None:
    reader = DefinitionFiles(files.config)
    good = reader.current()[1]
    files.edit_definition(*BROKEN["unknown fields"])
    assert reader.current()[1] is good

    caplog.set_level(logging.INFO, logger="leadsync.service")
    files.edit_definition(MQL_SCORE, '{ field = "score", gte = 70 }')
    fixed = reader.current()[1]
    assert fixed.model_version != good.model_version
    assert fixed.model_version == files.expected().model_version
    assert reader.current()[1] is fixed
    assert f"read again (model {fixed.model_version})" in caplog.text


def test_a_mapping_edit_that_drops_a_field_the_definition_uses_is_refused(
    files: Files, caplog: pytest.LogCaptureFixture
) -> None:
    reader = DefinitionFiles(files.config)
    field_map, definition = reader.current()
    text = files.mapping.read_text(encoding="utf-8")
    # `phone` is scored on in the definition; rename its mapping so no such field is left.
    assert "[fields.phone]" in text
    files.write(files.mapping, text.replace("[fields.phone", "[fields.telephone"))
    caplog.set_level(logging.INFO, logger="leadsync.service")

    assert reader.current() == (field_map, definition)
    (refused,) = refusals(caplog)
    assert "'phone'" in refused


def test_a_broken_file_at_the_first_read_raises_config_error(files: Files) -> None:
    files.edit_definition(*BROKEN["unknown fields"])
    reader = DefinitionFiles(files.config)
    with pytest.raises(ConfigError) as refused:
        reader.current()
    assert [str(problem) for problem in refused.value.problems] == files.problems()
    # It keeps saying so while there has never been a good version.
    with pytest.raises(ConfigError):
        reader.current()
