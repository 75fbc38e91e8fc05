"""config.toml: defaults, validation naming file, key and line, and secrets kept out of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadsync.config import (
    HUBSPOT_TOKEN_VAR,
    SALESFORCE_PASSWORD_VAR,
    SALESFORCE_TOKEN_VAR,
    SLA_WEBHOOK_SECRET_VAR,
    SLA_WEBHOOK_URL_VAR,
    load_config,
)
from leadsync.problems import ConfigError, TomlLines


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ=environ or {})
    return [str(problem) for problem in raised.value.problems]


def test_no_file_means_every_default() -> None:
    config = load_config(None, environ={})
    assert config.model.database.url == "sqlite:///leadsync.db"
    assert config.model.hubspot.requests_per_ten_seconds == 180
    assert config.model.salesforce.auth == "password"


def test_a_full_file_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[database]
url = "postgresql+psycopg://postgres@127.0.0.1/test"

[files]
mapping = "rev/mapping.toml"

[hubspot]
base_url = "http://127.0.0.1:8765"
daily_reserve = 5000
lookback_minutes = 2

[salesforce]
instance_url = "http://127.0.0.1:8765"
username = "sandbox@leadsync.test"
""",
    )
    config = load_config(
        path,
        environ={
            HUBSPOT_TOKEN_VAR: "sandbox-token",
            SALESFORCE_PASSWORD_VAR: "sandbox",
            SALESFORCE_TOKEN_VAR: "sandbox",
        },
    )
    assert config.mapping_path == tmp_path / "rev" / "mapping.toml"
    hubspot = config.hubspot_connection()
    assert hubspot.access_token.reveal() == "sandbox-token"
    assert hubspot.daily_reserve == 5000
    assert hubspot.lookback.total_seconds() == 120
    salesforce = config.salesforce_connection()
    assert salesforce.auth_method == "password"
    assert salesforce.password is not None
    assert salesforce.password.reveal() == "sandbox"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[hubspot]\nrequests_per_ten_seconds = 'many'\n",
            "config.toml:2: hubspot.requests_per_ten_seconds: ",
        ),
        ("[hubspot]\nfast = true\n", "config.toml:2: hubspot.fast: unknown key"),
        ("[hubsport]\n", "config.toml:1: hubsport: unknown key"),
        ("[salesforce]\nauth = 'oauth'\n", "config.toml:2: salesforce.auth: Input should be"),
        (
            "[salesforce]\nmax_concurrent_requests = 50\n",
            "config.toml:2: salesforce.max_concurrent_requests: Input should be less than or "
            "equal to 25",
        ),
        ("[logging]\nformat = 'xml'\n", "config.toml:2: logging.format:"),
        ("[hubspot\nx = 1\n", "config.toml:1: not valid TOML"),
        (
            '[salesforce]\nusername = "ops\\u0000@example.com"\n',
            "config.toml:2: salesforce.username: holds a NUL character (U+0000)",
        ),
    ],
)
def test_each_mistake_names_file_key_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert any(problem.startswith(f"{path.parent}/{expected}") for problem in problems), problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[hubspot]\ndaily_reserve = -1\nspeed = 3\n[salesforce]\ntimeout_seconds = 0\n",
    )
    problems = problems_of(path)
    assert len(problems) == 3
    assert {p.split(": ")[1] for p in problems} == {
        "hubspot.daily_reserve",
        "hubspot.speed",
        "salesforce.timeout_seconds",
    }


def test_a_secret_written_into_the_file_is_refused_with_the_variable_to_use(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "[hubspot]\naccess_token = 'pat-na1-secret'\n")
    problems = problems_of(path)
    assert problems == [
        f"{path}:2: hubspot.access_token: secrets do not belong in this file: set "
        f"{HUBSPOT_TOKEN_VAR} in the environment or the secrets file instead"
    ]
    assert all("pat-na1-secret" not in problem for problem in problems)


def test_secrets_come_from_a_secrets_file_and_the_environment_wins(tmp_path: Path) -> None:
    write(tmp_path, f'{HUBSPOT_TOKEN_VAR} = "from-file"\n', "secrets.toml")
    path = write(tmp_path, "[secrets]\nfile = 'secrets.toml'\n")
    assert load_config(path, environ={}).hubspot_connection().access_token.reveal() == ("from-file")
    overridden = load_config(path, environ={HUBSPOT_TOKEN_VAR: "from-env"})
    assert overridden.hubspot_connection().access_token.reveal() == "from-env"


def test_a_missing_secret_names_the_variable_to_set(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[hubspot]\n"), environ={})
    with pytest.raises(ConfigError, match=HUBSPOT_TOKEN_VAR):
        config.hubspot_connection()


def test_a_missing_config_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "nope.toml") == [f"{tmp_path / 'nope.toml'}: no such file"]


def test_a_missing_secrets_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[secrets]\nfile = 'gone.toml'\n")
    (problem,) = problems_of(path)
    assert "secrets.file" in problem
    assert "gone.toml" in problem


@pytest.mark.parametrize(
    ("dotted", "line"),
    [
        ("hubspot", 2),
        ("hubspot.base_url", 4),
        ("salesforce.base_url", 7),
        # A key the file lacks: the line of its table, where it belongs.
        ("hubspot.timeout_seconds", 2),
        ("nothing.here", None),
    ],
)
def test_the_line_of_each_key_of_a_config(dotted: str, line: int | None) -> None:
    text = '# comment\n[hubspot]\n# base\nbase_url = "x"\n\n[salesforce]\nbase_url = "y"\n'
    assert TomlLines(text).line_of(dotted) == line


def test_the_line_of_a_key_under_a_table_header_with_a_comment() -> None:
    text = "[hubspot]  # the marketing side\nbase_url = 'x'\n"
    assert TomlLines(text).line_of("hubspot.base_url") == 2


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///leadsync.db", "sqlite:///{folder}/leadsync.db"),
        ("sqlite:////var/lib/leadsync.db", "sqlite:////var/lib/leadsync.db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_a_relative_sqlite_path_is_read_from_the_config_folder(
    tmp_path: Path, url: str, expected: str
) -> None:
    config = load_config(write(tmp_path, f'[database]\nurl = "{url}"\n'), environ={})
    assert config.database_url == expected.format(folder=tmp_path)


# What `check` used to accept and a later command then crashed on, or silently misused.
REFUSED = [
    ("[hubspot]\nlookback_minutes = inf", "hubspot.lookback_minutes", "finite number"),
    ("[hubspot]\nlookback_minutes = 1e30", "hubspot.lookback_minutes", "less than or equal"),
    ("[schedules]\nsync_every_minutes = inf", "schedules.sync_every_minutes", "finite"),
    ("[schedules]\nsync_every_minutes = 0", "schedules.sync_every_minutes", "greater than 0"),
    ("[service]\nlease_seconds = 99999999999", "service.lease_seconds", "less than or equal"),
    ("[service]\nlease_seconds = 1000", "service.stalled_after_seconds", "at least lease"),
    ('[database]\nurl = ""', "database.url", "not a database URL"),
    ('[database]\nurl = "sqlite://"', "database.url", "in-memory"),
    ('[database]\nurl = "sqlite:///:memory:"', "database.url", "in-memory"),
    # SQLite URI options: mode=memory (or file::memory:) is in-memory again; without
    # uri=true the driver ignores them with a warning. A file path is all leadsync needs.
    (
        '[database]\nurl = "sqlite:///file::memory:?cache=shared&uri=true"',
        "database.url",
        "a file path alone",
    ),
    ('[database]\nurl = "sqlite:///x.db?mode=memory"', "database.url", "a file path alone"),
    ('[database]\nurl = "postgresql+psycopg2://h/db"', "database.url", "psycopg driver"),
    ('[database]\nurl = "mysql://h/db"', "database.url", "SQLite or PostgreSQL"),
    ('[salesforce]\napi_version = "v59.0"', "salesforce.api_version", "not 'v59.0'"),
    ("[hubspot]\ntimeout_seconds = true", "hubspot.timeout_seconds", "not True"),
    ('[hubspot]\ntimeout_seconds = "30"', "hubspot.timeout_seconds", "valid number"),
    ('[service]\nmetrics_host = "not a host!"', "service.metrics_host", "not a host name"),
    # All digits and dots: an IP address or nothing (no top-level domain is numeric).
    ('[service]\nmetrics_host = "256.1.1.1"', "service.metrics_host", "not an IP address"),
    ('[service]\nmetrics_host = "10.0.0"', "service.metrics_host", "not an IP address"),
    ('[salesforce]\ninstance_url = ""', "salesforce.instance_url", "it is empty"),
    ('[salesforce]\ninstance_url = "ftp://x"', "salesforce.instance_url", "https:// URL"),
    ('[salesforce]\ninstance_url = "https://"', "salesforce.instance_url", "https:// URL"),
    ('[hubspot]\nbase_url = "http://api.hubapi.com"', "hubspot.base_url", "in clear"),
    (
        '[salesforce]\ninstance_url = "https://me:pw@x.my.salesforce.com"',
        "salesforce.instance_url",
        "must not hold credentials",
    ),
    ('[salesforce]\ndomain = "login.salesforce.com/evil?"', "salesforce.domain", "pattern"),
    ("[backfill]\nchunk_records = 0", "backfill.chunk_records", "greater than or equal to 1"),
]


@pytest.mark.parametrize(
    ("text", "key", "message"),
    REFUSED,
    ids=[f"{key}={text.split(' = ')[1]}" for text, key, _ in REFUSED],
)
def test_a_value_out_of_range_is_refused_with_file_key_and_line(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    path = write(tmp_path, f"# a config\n{text}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    (problem,) = refused.value.problems
    assert (problem.file, problem.key) == (str(path), key)
    # The line of the key, or of its table when the key is not in the file.
    assert problem.line == (3 if key.rsplit(".", 1)[1] in text else 2)
    assert message in problem.message


def test_the_sla_webhook_is_off_without_its_url_and_needs_its_secret_with_it(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "[sla]\nwebhook_max_attempts = 3\n")
    assert load_config(path, environ={}).sla_webhook() is None
    url = "https://hooks.example.com/T0/B0/secretpath"
    configured = load_config(path, environ={SLA_WEBHOOK_URL_VAR: url})
    with pytest.raises(ConfigError) as missing:
        configured.sla_webhook()
    assert SLA_WEBHOOK_SECRET_VAR in str(missing.value)
    assert "secretpath" not in str(missing.value)
    both = load_config(path, environ={SLA_WEBHOOK_URL_VAR: url, SLA_WEBHOOK_SECRET_VAR: "s3"})
    webhook = both.sla_webhook()
    assert webhook is not None
    assert [secret.reveal() for secret in webhook] == [url, "s3"]
    assert "secretpath" not in repr(webhook)
    assert both.model.sla.webhook_max_attempts == 3


def test_a_database_url_that_cannot_be_parsed_is_not_echoed(tmp_path: Path) -> None:
    # Not a URL at all, but it may still hold a password: the problem does not repeat it.
    path = write(tmp_path, '[database]\nurl = "leadsync:hunter2secret@db.example.com/leadsync"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    (problem,) = refused.value.problems
    assert (problem.key, problem.line) == ("database.url", 2)
    assert "not a database URL" in problem.message
    assert "hunter2secret" not in str(problem)


def test_a_secrets_file_that_cannot_be_read_is_named_with_its_key_and_line(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, '# a config\n[secrets]\nfile = "gone.secrets.toml"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    (problem,) = refused.value.problems
    assert (problem.file, problem.key, problem.line) == (str(path), "secrets.file", 3)
    assert "gone.secrets.toml: no such file" in problem.message


@pytest.mark.parametrize("written", ["info", "Info", "INFO", "debug", "Warning", "error"])
def test_a_log_level_is_read_in_any_case(tmp_path: Path, written: str) -> None:
    path = write(tmp_path, f'[logging]\nlevel = "{written}"\n')
    assert load_config(path, environ={}).model.logging.level == written.upper()


def test_an_unknown_log_level_is_named_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, '[logging]\nlevel = "verbose"\n')
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:2: logging.level: "), problems
    assert "'DEBUG', 'INFO', 'WARNING' or 'ERROR'" in problems[0], problems
    assert problems[0].endswith("not 'verbose'"), problems
