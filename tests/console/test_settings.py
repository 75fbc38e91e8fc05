"""[console] in config.toml: validated like the rest, credentials only from the environment or
the secrets file, every mistake located (file, key, line), `check` and the service exit 2."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from leadsync.cli import main
from leadsync.config import load_config
from leadsync.console.accounts import Accounts
from leadsync.console.passwords import hash_password, is_password_hash, verify_password
from leadsync.console.settings import Role, console_problems
from leadsync.problems import ConfigError
from leadsync.sandbox_config import EXAMPLES

TOKEN = "t" * 40
GOOD = """[service]
metrics_port = 9200

[console]
[console.users]
ada = "editor"
grace = "viewer"
"""


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> object:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path, environ=environ or {})


def problems_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    try:
        config = load(tmp_path, text, environ)
    except ConfigError as error:
        return [str(problem) for problem in error.problems]
    return [str(problem) for problem in console_problems(config)]  # type: ignore[arg-type]


def test_without_a_console_section_there_is_no_console(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert config.model.console is None  # type: ignore[attr-defined]
    assert console_problems(config) == []  # type: ignore[arg-type]


def test_users_sign_in_with_a_hash_or_a_token_from_the_environment(tmp_path: Path) -> None:
    stored = hash_password("a long enough password", cost=(10, 8, 1))
    config = load(
        tmp_path,
        GOOD,
        {
            "LEADSYNC_CONSOLE_PASSWORD_HASH_ADA": stored,
            "LEADSYNC_CONSOLE_TOKEN_GRACE": TOKEN,
            "LEADSYNC_CONSOLE_TOKEN_MALLORY": TOKEN,  # nobody of that name: not read
        },
    )
    assert console_problems(config) == []  # type: ignore[arg-type]
    accounts = Accounts.from_config(config)  # type: ignore[arg-type]
    ada = accounts.authenticate("ada", "a long enough password")
    assert ada is not None
    assert (ada.name, ada.role, ada.may_change) == ("ada", Role.EDITOR, True)
    grace = accounts.authenticate("grace", TOKEN)
    assert grace is not None
    assert (grace.role, grace.may_change) == (Role.VIEWER, False)
    assert accounts.authenticate("ada", TOKEN) is None
    assert accounts.authenticate("mallory", TOKEN) is None
    assert "LEADSYNC_CONSOLE_TOKEN_MALLORY" not in config.secrets  # type: ignore[attr-defined]


def test_credentials_come_from_the_secrets_file_too(tmp_path: Path) -> None:
    (tmp_path / "secrets.toml").write_text(
        f'LEADSYNC_CONSOLE_TOKEN_ADA = "{TOKEN}"\nLEADSYNC_CONSOLE_TOKEN_GRACE = "{TOKEN}"\n'
    )
    config = load(tmp_path, GOOD + '\n[secrets]\nfile = "secrets.toml"\n')
    assert Accounts.from_config(config).authenticate("ada", TOKEN) is not None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        (
            GOOD,
            {"LEADSYNC_CONSOLE_TOKEN_GRACE": TOKEN},
            "config.toml:6: console.users.ada: no credential: set "
            "LEADSYNC_CONSOLE_PASSWORD_HASH_ADA (a hash from `leadsync hash-password`) or "
            "LEADSYNC_CONSOLE_TOKEN_ADA, in the environment or the secrets file",
        ),
        (
            '[service]\nmetrics_port = 9200\n\n[console]\nusers = { ada = "editor" }\n',
            {},
            "config.toml:5: console.users.ada: no credential",  # the inline table's line
        ),
        (
            GOOD,
            {
                "LEADSYNC_CONSOLE_PASSWORD_HASH_ADA": "hunter2",
                "LEADSYNC_CONSOLE_TOKEN_GRACE": TOKEN,
            },
            "config.toml:6: console.users.ada: LEADSYNC_CONSOLE_PASSWORD_HASH_ADA is not a "
            "hash made by `leadsync hash-password`",
        ),
        (
            GOOD,
            {"LEADSYNC_CONSOLE_TOKEN_ADA": TOKEN, "LEADSYNC_CONSOLE_TOKEN_GRACE": "short"},
            "config.toml:7: console.users.grace: LEADSYNC_CONSOLE_TOKEN_GRACE is too short to "
            "be a token: at least 32 random characters (`openssl rand -hex 32`)",
        ),
        (
            GOOD.replace("9200", "0"),
            {"LEADSYNC_CONSOLE_TOKEN_ADA": TOKEN, "LEADSYNC_CONSOLE_TOKEN_GRACE": TOKEN},
            "config.toml:2: service.metrics_port: the console is served on this port, with "
            "/metrics and /healthz: 0 serves nothing (remove [console], or give a port)",
        ),
        (
            GOOD.replace('ada = "editor"', 'ada = "admin"'),
            {},
            "config.toml:6: console.users.ada: Input should be 'viewer' or 'editor', not 'admin'",
        ),
        (
            GOOD.replace("ada =", "Ada ="),
            {},
            "console.users.Ada[key]: a user name is a lower-case letter",
        ),
        (
            GOOD.replace("[console]\n", '[console]\npassword = "hunter2"\n'),
            {},
            "console: password: credentials do not belong in this file",
        ),
        (
            GOOD.replace("[console]\n", 'salesforce_record_url = "https://x.example/"\n', 1),
            {},
            "salesforce_record_url",
        ),
        (
            GOOD.replace("[console]\n", "[console]\nsession_hours = 0\n"),
            {},
            "config.toml:5: console.session_hours: Input should be greater than 0",
        ),
        (
            "[console]\n",
            {},
            "console.users: missing: this key is required",
        ),
    ],
)
def test_each_mistake_is_located(
    tmp_path: Path, text: str, environ: dict[str, str], expected: str
) -> None:
    found = problems_of(tmp_path, text, environ)
    assert len(found) == 1, found
    assert expected in found[0]
    assert "hunter2" not in found[0]


def test_check_lists_console_problems_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(GOOD.replace("9200", "0"))
    monkeypatch.delenv("LEADSYNC_CONSOLE_TOKEN_ADA", raising=False)
    monkeypatch.setenv("LEADSYNC_CONSOLE_TOKEN_GRACE", TOKEN)
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: service.metrics_port" in err
    assert f"{path}:6: console.users.ada: no credential" in err
    assert "Traceback" not in err


def test_the_service_does_not_start_with_a_console_nobody_can_sign_in_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        GOOD
        + '\n[database]\nurl = "sqlite:///leadsync.db"\n'
        + f'[files]\nmapping = "{EXAMPLES}/mapping.toml"\n'
        + f'definition = "{EXAMPLES}/lead_definition.toml"\n'
    )
    monkeypatch.delenv("LEADSYNC_CONSOLE_TOKEN_ADA", raising=False)
    monkeypatch.delenv("LEADSYNC_CONSOLE_TOKEN_GRACE", raising=False)
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "console.users.ada: no credential" in err
    assert not (tmp_path / "leadsync.db").exists()  # refused before it opened anything


# ------------------------------------------------------------------------------ passwords


def test_a_password_hash_verifies_its_password_only() -> None:
    stored = hash_password("correct horse battery", cost=(10, 8, 1))
    assert stored.startswith("scrypt$ln=10,r=8,p=1$")
    assert is_password_hash(stored)
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterY")
    assert hash_password("correct horse battery", cost=(10, 8, 1)) != stored  # salted


def test_the_default_cost_is_owasps_and_travels_in_the_hash() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$ln=15,r=8,p=3$")
    assert verify_password(stored, "correct horse battery")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "hunter2",
        "scrypt$ln=15,r=8,p=3$c2FsdA==$a2V5",  # a key of the wrong length
        "scrypt$ln=30,r=8,p=1$c2FsdHNhbHRzYWx0$" + "A" * 44,  # gigabytes a sign-in
        "bcrypt$2b$12$abcdefghijklmnopqrstuv",
    ],
)
def test_what_is_not_a_hash_is_refused(stored: str) -> None:
    assert not is_password_hash(stored)
    assert not verify_password(stored, "anything")


def test_hash_password_reads_a_line_and_prints_a_hash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert main(["hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert verify_password(printed, "correct horse battery")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["hash-password"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err
