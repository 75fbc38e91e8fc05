"""`leadsync check`: offline and against the sandbox's live describe."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadsync.cli import main
from leadsync.sandbox import Sandbox
from leadsync.sandbox_config import EXAMPLES, write_sandbox_config

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_files_pass_offline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(ROOT / "config.example.toml")]) == 0
    out = capsys.readouterr().out
    assert "ok  mapping" in out
    assert "ok  lead definition" in out


def _sandbox_config(sandbox: Sandbox, folder: Path, mapping: str | None = None) -> Path:
    path = folder / "leadsync.toml"
    write_sandbox_config(path, sandbox.url, sandbox.credentials())
    if mapping is not None:
        (folder / "mapping.toml").write_text(mapping)
        text = path.read_text().replace(str(EXAMPLES / "mapping.toml"), "mapping.toml")
        path.write_text(text)
    return path


def test_online_names_the_writeback_properties_setup_must_create_then_passes(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_sandbox_config(sandbox, tmp_path))
    assert main(["check", "--config", config, "--online"]) == 2
    err = capsys.readouterr().err
    assert "writeback.hubspot.score: no field 'leadsync_score'" in err
    assert "7 problems found" in err
    assert main(["setup", "--config", config]) == 0
    capsys.readouterr()
    assert main(["check", "--config", config, "--online"]) == 0
    out = capsys.readouterr().out
    assert "hubspot contacts describe" in out
    assert "salesforce Lead describe" in out
    assert "salesforce Opportunity describe" in out


def test_online_refuses_a_value_map_the_picklist_does_not_allow(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = (EXAMPLES / "mapping.toml").read_text()
    assert 'disqualified = "Closed - Not Converted"' in shipped
    broken = shipped.replace(
        'disqualified = "Closed - Not Converted"', 'disqualified = "Closed - Lost Forever"'
    )
    config = str(_sandbox_config(sandbox, tmp_path, broken))
    main(["setup", "--config", config])
    capsys.readouterr()
    assert main(["check", "--config", config, "--online"]) == 2
    err = capsys.readouterr().err
    header = broken.splitlines().index("[writeback.salesforce.status_values]") + 1
    assert f"mapping.toml:{header}: writeback.salesforce.status_values: " in err
    assert "Closed - Lost Forever" in err
