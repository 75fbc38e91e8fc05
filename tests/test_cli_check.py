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


SECRET_VARIABLES = (
    "LEADSYNC_HUBSPOT_ACCESS_TOKEN",
    "LEADSYNC_SALESFORCE_PASSWORD",
    "LEADSYNC_SALESFORCE_SECURITY_TOKEN",
    "LEADSYNC_SALESFORCE_SESSION_ID",
    "LEADSYNC_SECRETS_FILE",
    "LEADSYNC_SLA_WEBHOOK_URL",
    "LEADSYNC_SLA_WEBHOOK_SECRET",
)


@pytest.fixture
def no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in SECRET_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def _without_secrets_file(path: Path) -> str:
    text = path.read_text()
    return text.replace("[secrets]\nfile = ", "# no secrets file: ")


def test_offline_check_names_every_missing_secret(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_secrets: None
) -> None:
    path = _sandbox_config(sandbox, tmp_path)
    path.write_text(_without_secrets_file(path))
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    lines = path.read_text().splitlines()
    hubspot, salesforce = lines.index("[hubspot]") + 1, lines.index("[salesforce]") + 1
    assert f"{path}:{hubspot}: hubspot: set the environment variable LEADSYNC_HUBSPOT_ACCESS" in err
    assert (
        f"{path}:{salesforce}: salesforce: set the environment variable LEADSYNC_SALESFORCE_PA"
        in err
    )
    assert "2 problems found" in err


def test_a_jwt_login_without_its_key_file_is_named_with_its_line(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_secrets: None
) -> None:
    path = _sandbox_config(sandbox, tmp_path)
    text = path.read_text().replace('auth = "password"', 'auth = "jwt"\nconsumer_key = "app"')
    path.write_text(text)
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "salesforce.private_key_file: required with auth = 'jwt'" in err
    path.write_text(text + 'private_key_file = "gone.pem"\n')
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    line = len(path.read_text().splitlines())
    assert f"{path}:{line}: salesforce.private_key_file: {tmp_path / 'gone.pem'}: " in err


def test_online_check_proves_the_secrets(
    sandbox: Sandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_secrets: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = _sandbox_config(sandbox, tmp_path)
    main(["setup", "--config", str(path)])
    monkeypatch.setenv("LEADSYNC_HUBSPOT_ACCESS_TOKEN", "pat-na1-wrong-0123456789")
    capsys.readouterr()
    assert main(["check", "--config", str(path), "--online"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: hubspot: the CRM refused the login: hubspot 401" in err
    assert "pat-na1-wrong-0123456789" not in err


def test_online_names_each_owner_the_handoff_routes_to_that_is_no_user_or_queue(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = (EXAMPLES / "lead_definition.toml").read_text()
    gone, inactive = "0055g0000000999AAA", "0055g0000000007AAA"  # unknown; a user who left
    broken = shipped.replace(
        'team = ["0055g0000000002AAA", "0055g0000000006AAA"]',
        f'team = ["0055g0000000002AAA", "{gone}"]',
    ).replace('fallback_owner = "00G5g0000000001EAA"', f'fallback_owner = "{inactive}"')
    assert broken != shipped
    config_path = _sandbox_config(sandbox, tmp_path)
    (tmp_path / "lead_definition.toml").write_text(broken)
    text = config_path.read_text().replace(
        str(EXAMPLES / "lead_definition.toml"), "lead_definition.toml"
    )
    config_path.write_text(text)
    config = str(config_path)
    main(["setup", "--config", config])
    capsys.readouterr()
    assert main(["check", "--config", config, "--online"]) == 2
    err = capsys.readouterr().err
    lines = broken.splitlines()
    team_line = next(n for n, line in enumerate(lines, 1) if gone in line)
    fallback_line = next(n for n, line in enumerate(lines, 1) if inactive in line)
    assert (
        f"lead_definition.toml:{team_line}: handoff.routes[1].team[1]: {gone} is no active "
        "user or queue in salesforce" in err
    )
    assert f"lead_definition.toml:{fallback_line}: handoff.fallback_owner: {inactive}" in err
    assert "2 problems found" in err
