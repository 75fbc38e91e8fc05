"""`leadsync sandbox --config-out` and `leadsync setup`, as an operator runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from leadsync.cli import main
from leadsync.config import load_config
from leadsync.connectors.writeback import HUBSPOT_WRITEBACK_PROPERTIES
from leadsync.sandbox import SalesforceSettings, Sandbox, SandboxSettings
from leadsync.sandbox_config import EXAMPLES, write_sandbox_config


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
