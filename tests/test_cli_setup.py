"""`leadsync init`, `leadsync sandbox --config-out` and `leadsync setup`, as an operator runs
them."""

from __future__ import annotations

import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests

from leadsync.cli import main
from leadsync.config import (
    HUBSPOT_TOKEN_VAR,
    SALESFORCE_PASSWORD_VAR,
    SALESFORCE_TOKEN_VAR,
    load_config,
)
from leadsync.connectors.writeback import HUBSPOT_WRITEBACK_PROPERTIES
from leadsync.errors import UsageError
from leadsync.sandbox import SalesforceSettings, Sandbox, SandboxSettings
from leadsync.sandbox_config import EXAMPLES, write_sandbox_config
from tests.support import follow_next_hint


def test_config_out_writes_a_config_and_a_secrets_file_that_load(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    path = tmp_path / "leadsync.toml"
    written = write_sandbox_config(path, sandbox.url, sandbox.credentials())
    assert written == [path, tmp_path / "leadsync.secrets.toml"]
    assert "sandbox-token" not in path.read_text()
    config = load_config(path, environ={})
    assert config.hubspot_connection().base_url == sandbox.url
    assert config.hubspot_connection().access_token.reveal() == "sandbox-token"
    assert config.salesforce_connection().instance_url == sandbox.url


def test_setup_creates_hubspot_properties_and_is_then_complete(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    path = tmp_path / "leadsync.toml"
    write_sandbox_config(path, sandbox.url, sandbox.credentials())
    assert main(["setup", "--config", str(path)]) == 0
    names = {prop["name"] for prop in _properties(sandbox)}
    assert {spec.name for spec in HUBSPOT_WRITEBACK_PROPERTIES} <= names
    assert main(["setup", "--config", str(path)]) == 0


def _properties(sandbox: Sandbox) -> list[dict[str, object]]:
    answer = requests.get(
        f"{sandbox.url}/crm/v3/properties/contacts",
        headers={"Authorization": "Bearer sandbox-token"},
        timeout=10,
    )
    return list(answer.json()["results"])


def test_setup_lists_missing_salesforce_fields_for_an_admin_and_exits_1(tmp_path: Path) -> None:
    settings = SandboxSettings(port=0, leads=10, salesforce=SalesforceSettings(custom_fields=False))
    with Sandbox(settings) as bare:
        path = tmp_path / "leadsync.toml"
        write_sandbox_config(path, bare.url, bare.credentials())
        result = subprocess.run(
            [sys.executable, "-m", "leadsync.cli", "setup", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    assert "an admin must create them" in result.stdout
    assert "Leadsync_Stage__c" in result.stdout
    assert "Long Text Area(32768)" in result.stdout
    # Converted leads' people are written to their Contacts: those fields are listed too.
    lead_part, contact_part = result.stdout.split("these Contact fields are missing")
    assert "Object Manager > Lead >" in lead_part
    assert "Object Manager > Contact >" in contact_part
    assert "Leadsync_Score__c" in contact_part


def test_setup_with_a_broken_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[hubspot]\nrequests_per_ten_seconds = 'lots'\n")
    result = subprocess.run(
        [sys.executable, "-m", "leadsync.cli", "setup", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"{path}:2: hubspot.requests_per_ten_seconds" in result.stderr
    assert "Traceback" not in result.stderr


def test_setup_creates_the_properties_under_the_names_the_mapping_gives(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    path = tmp_path / "leadsync.toml"
    write_sandbox_config(path, sandbox.url, sandbox.credentials())
    shipped = (EXAMPLES / "mapping.toml").read_text()
    assert 'score = "leadsync_score"' in shipped
    (tmp_path / "mapping.toml").write_text(
        shipped.replace('score = "leadsync_score"', 'score = "lead_quality_score"', 1)
    )
    path.write_text(path.read_text().replace(str(EXAMPLES / "mapping.toml"), "mapping.toml"))
    assert main(["setup", "--config", str(path)]) == 0
    names = {prop["name"] for prop in _properties(sandbox)}
    assert "lead_quality_score" in names
    assert "leadsync_score" not in names


def test_init_writes_the_three_files_ready_to_edit_and_check_accepts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "revops"
    assert main(["init", str(folder)]) == 0
    assert sorted(path.name for path in folder.iterdir()) == [
        "config.toml",
        "lead_definition.toml",
        "mapping.toml",
    ]
    for name in ("mapping.toml", "lead_definition.toml"):
        assert (folder / name).read_text() == (EXAMPLES / name).read_text()
    text = (folder / "config.toml").read_text()
    # Relative paths: the folder can move, and nothing names the installed package.
    assert 'mapping = "mapping.toml"' in text
    assert 'definition = "lead_definition.toml"' in text
    assert str(EXAMPLES) not in text
    capsys.readouterr()
    for variable in (HUBSPOT_TOKEN_VAR, SALESFORCE_PASSWORD_VAR, SALESFORCE_TOKEN_VAR):
        monkeypatch.setenv(variable, "sandbox")
    assert main(["check", "--config", str(folder / "config.toml")]) == 0
    config = load_config(folder / "config.toml")
    assert config.mapping_path == folder / "mapping.toml"
    assert config.definition_path == folder / "lead_definition.toml"


def test_init_replaces_no_file_without_force_and_names_the_one_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mapping.toml").write_text("# ours\n")
    assert main(["init", str(tmp_path)]) == 2
    assert f"{tmp_path / 'mapping.toml'} exists" in capsys.readouterr().err
    assert (tmp_path / "mapping.toml").read_text() == "# ours\n"
    assert not (tmp_path / "config.toml").exists()  # all or nothing
    assert main(["init", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "mapping.toml").read_text() == (EXAMPLES / "mapping.toml").read_text()


def test_sandbox_config_out_names_copies_beside_it_and_keeps_an_edited_one(
    tmp_path: Path,
) -> None:
    assert main(["init", str(tmp_path)]) == 0
    edited = (tmp_path / "mapping.toml").read_text() + "# edited by RevOps\n"
    (tmp_path / "mapping.toml").write_text(edited)
    (tmp_path / "lead_definition.toml").unlink()
    path = tmp_path / "config.toml"
    command = [sys.executable, "-m", "leadsync.cli", "sandbox", "--port", "0", "--leads", "3"]
    with subprocess.Popen(
        [*command, "--config-out", str(path)], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        wrote = process.stdout.readline()
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert wrote.startswith("wrote ")
    assert str(tmp_path / "lead_definition.toml") in wrote
    assert str(tmp_path / "mapping.toml") not in wrote
    assert (tmp_path / "mapping.toml").read_text() == edited
    assert str(EXAMPLES) not in path.read_text()
    config = load_config(path, environ={})
    assert config.mapping_path == tmp_path / "mapping.toml"
    assert config.definition_path == tmp_path / "lead_definition.toml"
    assert config.hubspot_connection().access_token.reveal() == "sandbox-token"


CREDENTIALS = {
    "hubspot": {"access_token": "sandbox-token"},
    "salesforce": {
        "username": "sandbox@leadsync.test",
        "password": "sandbox",
        "security_token": "sandbox",
    },
}
OTHER_SANDBOX = "http://127.0.0.1:9911"


def test_sandbox_config_out_on_an_init_config_keeps_its_database_and_what_the_user_added(
    tmp_path: Path,
) -> None:
    assert main(["init", str(tmp_path)]) == 0
    path = tmp_path / "config.toml"
    added = '\n[service]\nmetrics_port = 9200   # ours\n\n[console]\nusers = { ops = "editor" }\n'
    path.write_text(path.read_text() + added)
    secrets = tmp_path / "config.secrets.toml"
    secrets.write_text(
        '# ours\nLEADSYNC_CONSOLE_PASSWORD_HASH_OPS = "scrypt$kept"\n'
        'LEADSYNC_HUBSPOT_ACCESS_TOKEN = "old-token"\n'
    )
    before = path.read_text()

    write_sandbox_config(path, OTHER_SANDBOX, CREDENTIALS, copies=True)

    text = path.read_text()
    assert added in text
    assert 'url = "sqlite:///leadsync.db"' in text  # never config.db: the user's store stays
    assert text.replace(OTHER_SANDBOX, "http://127.0.0.1:8765").replace(
        'file = "config.secrets.toml"\n', ""
    ) == before.replace('file = "config.secrets.toml"\n', "")
    config = load_config(path, environ={})
    assert config.database_url == f"sqlite:///{tmp_path / 'leadsync.db'}"
    assert config.model.service.metrics_port == 9200
    assert config.model.console is not None
    assert config.hubspot_connection().base_url == OTHER_SANDBOX
    assert config.hubspot_connection().access_token.reveal() == "sandbox-token"
    assert config.salesforce_connection().instance_url == OTHER_SANDBOX
    kept = secrets.read_text()
    assert kept.startswith('# ours\nLEADSYNC_CONSOLE_PASSWORD_HASH_OPS = "scrypt$kept"\n')
    assert "old-token" not in kept


def test_sandbox_config_out_refuses_a_config_naming_a_secrets_file_of_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    text = '[secrets]\nfile = "/etc/leadsync/prod.secrets.toml"\n[hubspot]\nenabled = true\n'
    path.write_text(text)
    command = [sys.executable, "-m", "leadsync.cli", "sandbox", "--port", "0", "--leads", "3"]
    result = subprocess.run(
        [*command, "--config-out", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr
    assert "--config-out" in result.stderr  # how to go on: another file
    assert "Traceback" not in result.stderr
    assert path.read_text() == text
    assert not (tmp_path / "config.secrets.toml").exists()


def test_sandbox_config_out_points_a_config_of_inline_tables_at_the_sandbox_as_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.toml"
    text = (
        "# mine\n"
        'hubspot = { base_url = "http://127.0.0.1:8765" }  # the old sandbox\n'
        'database_url = "sqlite:///kept.db"\n'
    )
    path.write_text(text)
    write_sandbox_config(path, OTHER_SANDBOX, CREDENTIALS, copies=True)
    edited = path.read_text()
    assert edited.startswith("# mine\n")
    assert "# the old sandbox" in edited
    held = tomllib.loads(edited)
    assert held["hubspot"] == {"base_url": OTHER_SANDBOX}
    assert held["database_url"] == "sqlite:///kept.db"


def test_the_next_commands_init_prints_run_in_their_order_against_a_new_sandbox(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "revops"
    assert main(["init", str(folder)]) == 0
    outcomes = follow_next_hint(capsys.readouterr().out, tmp_path, sandbox)
    commands = [command.split(" --config")[0] for command, _ in outcomes]
    assert commands.index("leadsync setup") < commands.index("leadsync plan")
    assert all(code == 0 for _, code in outcomes), outcomes


@pytest.mark.parametrize(
    "text",
    ["hubspot = 3\n", 'secrets = "mine"\n', "[hubspot\n", "[secrets]\nfile = 'other.toml'\n"],
    ids=["not a table", "secrets not a table", "not TOML", "own secrets"],
)
def test_sandbox_config_out_refuses_what_it_cannot_point_at_the_sandbox_and_keeps_it(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match="give --config-out a new file name"):
        write_sandbox_config(path, OTHER_SANDBOX, CREDENTIALS, copies=True)
    assert path.read_text() == text
    assert sorted(tmp_path.iterdir()) == [path]
