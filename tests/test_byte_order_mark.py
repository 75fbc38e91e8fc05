"""A file saved with a UTF-8 byte-order mark (Windows editors add one) reads as without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadsync.cli import main
from leadsync.config import HUBSPOT_TOKEN_VAR, SALESFORCE_PASSWORD_VAR, load_config
from leadsync.mapping.definition import load_definition
from leadsync.mapping.fields import load_mapping
from leadsync.problems import ConfigError

EXAMPLES = Path(__file__).resolve().parents[1] / "leadsync" / "examples"
BOM = "\ufeff"


def _files(tmp_path: Path) -> Path:
    for name in ("mapping.toml", "lead_definition.toml"):
        text = (EXAMPLES / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(BOM + text, encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(
        BOM + '[files]\nmapping = "mapping.toml"\ndefinition = "lead_definition.toml"\n'
        '[salesforce]\nusername = "ops@example.com"\n',
        encoding="utf-8",
    )
    return path


def test_check_accepts_each_file_with_a_byte_order_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _files(tmp_path)
    monkeypatch.setenv(HUBSPOT_TOKEN_VAR, "token")
    monkeypatch.setenv(SALESFORCE_PASSWORD_VAR, "password")
    assert main(["check", "--config", str(path)]) == 0, capsys.readouterr().err
    config = load_config(path)
    assert config.mapping_path == tmp_path / "mapping.toml"
    mapping = load_mapping(config.mapping_path)
    assert load_definition(config.definition_path, fields=mapping.canonical_types())


def test_a_mistake_after_a_byte_order_mark_names_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BOM + "# ours\n[hubspot]\nspeed = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    assert [str(problem) for problem in raised.value.problems] == [
        f"{path}:3: hubspot.speed: unknown key"
    ]
