"""An unknown key in any file people edit is reported with the key they probably meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadsync.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "leadsync" / "examples"
CONFIG = Path(__file__).resolve().parents[1] / "config.example.toml"


def files(tmp_path: Path, *, config: str = "", mapping: str = "", definition: str = "") -> Path:
    """A config, its mapping and lead definition (the shipped ones), each with one edit."""
    shipped_mapping = (EXAMPLES / "mapping.toml").read_text(encoding="utf-8")
    shipped_definition = (EXAMPLES / "lead_definition.toml").read_text(encoding="utf-8")
    for name, text, edit in (
        ("mapping.toml", shipped_mapping, mapping),
        ("lead_definition.toml", shipped_definition, definition),
    ):
        if edit:
            old, new = edit.split(" -> ")
            assert old in text
            text = text.replace(old, new, 1)
        (tmp_path / name).write_text(text, encoding="utf-8")
    text = (
        '[files]\nmapping = "mapping.toml"\ndefinition = "lead_definition.toml"\n'
        '[hubspot]\nbase_url = "http://127.0.0.1:8765"\n'
        '[salesforce]\ninstance_url = "http://127.0.0.1:8765"\nusername = "a@b.test"\n'
        '[database]\nurl = "sqlite:///leadsync.db"\n'
    )
    if config:
        old, new = config.split(" -> ")
        assert old in text
        text = text.replace(old, new, 1)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (
            {"config": "base_url = -> base_ur ="},
            "config.toml:5: hubspot.base_ur: unknown key (did you mean 'base_url'?)",
        ),
        (
            {"config": "username = -> usernme ="},
            "config.toml:8: salesforce.usernme: unknown key (did you mean 'username'?)",
        ),
        (
            {"config": "[salesforce] -> [salesfroce]"},
            "config.toml:6: salesfroce: unknown key (did you mean 'salesforce'?)",
        ),
        (
            {"config": 'url = "sqlite -> rul = "sqlite'},
            "config.toml:10: database.rul: unknown key (did you mean 'url'?)",
        ),
        (
            {"mapping": 'transforms = ["trim", "lower"] -> transform = ["trim", "lower"]'},
            "mapping.toml:47: fields.email.hubspot.transform: unknown key "
            "(did you mean 'transforms'?)",
        ),
        (
            {"mapping": "identity_field = -> identity_feild ="},
            "identity_feild: unknown key (did you mean 'identity_field'?)",
        ),
        (
            {"definition": "half_life_days = -> half_life_day ="},
            "lead_definition.toml:170: scoring.engagement.decay.half_life_day: unknown key "
            "(did you mean 'half_life_days'?)",
        ),
        (
            {"definition": "[[scoring.fit.rules]] -> [[scoring.fit.rule]]"},
            "scoring.fit.rule: unknown key (did you mean 'rules'?)",
        ),
    ],
    ids=["base_ur", "usernme", "salesfroce", "rul", "transform", "identity", "half_life", "rule"],
)
def test_check_names_the_key_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edits: dict[str, str], expected: str
) -> None:
    path = files(tmp_path, **edits)
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err


def test_no_hint_when_nothing_is_close(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = files(tmp_path, config="[salesforce] -> [xyzzy]")
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "xyzzy: unknown key\n" in err, err
