"""The files a user starts from: `leadsync init FOLDER` and `leadsync sandbox --config-out FILE`.

`init` writes a config, the field mapping and the lead definition into the user's folder, the
last two copied from the shipped examples, so every file the config names is the user's to edit
(never the installed package's). `sandbox --config-out` writes a config pointed at a running
sandbox, its secrets file, and the same copies beside it where none is there yet.

The sandbox's credentials are public defaults, but they still go into a secrets file of their
own beside the config, the way real ones must: the config file never holds a secret.

A config that is there already is the user's: `sandbox --config-out` changes in it only the keys
that point it at the sandbox (its URLs, its user, its secrets file), key by key, and keeps
everything else, its database first of all. What it cannot change that way it refuses.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import tomlkit

from leadsync.config import (
    HUBSPOT_TOKEN_VAR,
    SALESFORCE_PASSWORD_VAR,
    SALESFORCE_TOKEN_VAR,
    SECRETS_FILE_VAR,
)
from leadsync.errors import UsageError
from leadsync.problems import FILE_ENCODING

# The shipped mapping and lead definition: what `init` copies (and tests read as they ship).
EXAMPLES = Path(__file__).resolve().parent / "examples"
MAPPING = "mapping.toml"
DEFINITION = "lead_definition.toml"
# Where `leadsync sandbox` listens by default, and the user its Salesforce knows.
SANDBOX_URL = "http://127.0.0.1:8765"
SANDBOX_USERNAME = "sandbox@leadsync.test"


def write_starter(folder: Path, *, force: bool = False) -> list[Path]:
    """`leadsync init`: config.toml, mapping.toml and lead_definition.toml in `folder`.

    Refuses (UsageError, naming the file) to replace a file that is there, unless `force`."""
    config = folder / "config.toml"
    written = [config, folder / MAPPING, folder / DEFINITION]
    if not force:
        for path in written:
            if path.exists():
                raise UsageError(f"{path} exists; leadsync init replaces no file (--force does)")
    folder.mkdir(parents=True, exist_ok=True)
    for path in written[1:]:
        shutil.copyfile(EXAMPLES / path.name, path)
    secrets = (
        "# A TOML file of the variables above, outside version control (the environment wins).\n"
        "# `leadsync sandbox --config-out` writes one for the sandbox.\n"
        '# file = "config.secrets.toml"'
    )
    header = (
        "# leadsync config, written by `leadsync init`. As it stands it points at the local\n"
        "# sandbox (`leadsync sandbox`); for production, point [hubspot] and [salesforce] at the\n"
        "# real CRMs and use PostgreSQL. Keys left out take their defaults.\n"
        "#\n"
        "# Secrets never go in this file: leadsync reads them from the environment\n"
        f"# ({HUBSPOT_TOKEN_VAR}, {SALESFORCE_PASSWORD_VAR},\n"
        f"# {SALESFORCE_TOKEN_VAR}) or from the file named under [secrets]\n"
        f"# (or in {SECRETS_FILE_VAR})."
    )
    config.write_text(
        _config_text(header, SANDBOX_URL, SANDBOX_USERNAME, "leadsync.db", secrets),
        encoding="utf-8",
    )
    return written


def write_sandbox_config(
    path: Path,
    url: str,
    credentials: Mapping[str, Mapping[str, str]],
    *,
    copies: bool = False,
) -> list[Path]:
    """Write `path` and `<stem>.secrets.toml` beside it; returns the paths written.

    With `copies` (what `leadsync sandbox --config-out` does), the config names a mapping and a
    lead definition beside it, copied from the examples where none is there yet (a file the user
    edited is kept); without, it names the shipped examples themselves (tests and benchmarks).

    A config or secrets file that is there keeps all it holds but the keys pointing it at the
    sandbox (its database too); one that cannot be changed so is refused (UsageError, naming
    it), before anything is written."""
    secrets_path = path.with_name(f"{path.stem}.secrets.toml")
    hubspot, salesforce = credentials["hubspot"], credentials["salesforce"]
    secret_values = {
        HUBSPOT_TOKEN_VAR: hubspot["access_token"],
        SALESFORCE_PASSWORD_VAR: salesforce["password"],
        SALESFORCE_TOKEN_VAR: salesforce["security_token"],
    }
    if path.exists():
        config_text, files = _pointed_at_sandbox(path, url, salesforce["username"], secrets_path)
    else:
        header = f"# leadsync config for the local sandbox at {url}, written by `leadsync sandbox`."
        config_text = _config_text(
            header,
            url,
            salesforce["username"],
            path.with_suffix(".db").name,
            f'file = "{secrets_path.name}"',
            files=None if copies else EXAMPLES,
        )
        files = [path.parent / MAPPING, path.parent / DEFINITION]
    if secrets_path.exists():
        secrets_text = _edited(secrets_path, {("", key): v for key, v in secret_values.items()})
    else:
        secrets_text = (
            "# The local sandbox's public default credentials (see `leadsync sandbox`).\n"
        )
        secrets_text += "".join(f"{key} = {_quoted(v)}\n" for key, v in secret_values.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [path, secrets_path]
    if copies:
        # The files the config names beside it, where none is there yet.
        for copy in files:
            beside = copy.parent == path.parent and copy.name in (MAPPING, DEFINITION)
            if beside and not copy.exists():
                shutil.copyfile(EXAMPLES / copy.name, copy)
                written.append(copy)
    secrets_path.write_text(secrets_text, encoding="utf-8")
    path.write_text(config_text, encoding="utf-8")
    return written


def _pointed_at_sandbox(
    path: Path, url: str, username: str, secrets_path: Path
) -> tuple[str, list[Path]]:
    """The text of the config at `path` pointed at the sandbox, and the mapping and lead
    definition it names. Its database, sections and comments stay as the user has them."""
    if not path.is_file():
        raise _refused(path, "it is not a file")
    named = _parsed(path, path.read_text(encoding=FILE_ENCODING))
    own_secrets = _table(named, "secrets").get("file")
    if own_secrets is not None and (path.parent / str(own_secrets)) != secrets_path:
        raise _refused(
            path,
            f"it names a secrets file of its own ({own_secrets}), which the sandbox's "
            "credentials must not replace",
        )
    text = _edited(
        path,
        {
            ("hubspot", "base_url"): url,
            ("salesforce", "auth"): "password",
            ("salesforce", "instance_url"): url,
            ("salesforce", "username"): username,
            ("secrets", "file"): secrets_path.name,
        },
    )
    files = _table(named, "files")
    return text, [
        path.parent / str(files.get("mapping", MAPPING)),
        path.parent / str(files.get("definition", DEFINITION)),
    ]


def _edited(path: Path, values: Mapping[tuple[str, str], str]) -> str:
    """The text of the TOML file at `path` with each (table, key) set to its string value, its
    layout and comments kept (tomlkit). Proven by parsing the result: those keys changed,
    nothing else did; else refused."""
    text = path.read_text(encoding=FILE_ENCODING) if path.is_file() else ""
    before = _parsed(path, text)
    document = tomlkit.parse(text)
    for (table, key), value in values.items():
        if not table:
            document[key] = value
            continue
        if table not in document:
            document[table] = tomlkit.table()
        found = document[table]
        if not isinstance(found, MutableMapping):
            raise _refused(path, f"its {table} is not a table")
        found[key] = value
    result = tomlkit.dumps(document)
    expected = json.loads(json.dumps(before, default=str))
    for (table, key), value in values.items():
        (expected.setdefault(table, {}) if table else expected)[key] = value
    try:
        after = json.loads(json.dumps(tomllib.loads(result), default=str))
    except tomllib.TOMLDecodeError:
        after = None
    if after != expected:
        raise _refused(path, "its layout cannot be changed key by key")
    return result


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    found = data.get(name)
    return found if isinstance(found, Mapping) else {}


def _quoted(value: str) -> str:
    return json.dumps(value)  # a TOML basic string for any text a CRM URL or name holds


def _parsed(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as problem:
        raise _refused(path, f"it is not valid TOML ({problem})") from None


def _refused(path: Path, why: str) -> UsageError:
    return UsageError(
        f"{path} is there and is kept as it is: {why}; give --config-out a new file name, "
        "or remove this one"
    )


def _config_text(
    header: str, url: str, username: str, database: str, secrets: str, *, files: Path | None = None
) -> str:
    """The config both write; `files` is the folder of the mapping and the lead definition,
    None for the config's own (the config reads relative paths from its folder)."""
    mapping, definition = (
        (MAPPING, DEFINITION) if files is None else (files / MAPPING, files / DEFINITION)
    )
    return f"""{header}

[database]
# SQLite beside this file; production: "postgresql+psycopg://leadsync@db.internal/leadsync".
url = "sqlite:///{database}"

[files]
# RevOps' files, relative to this file's folder: `leadsync check`, then `leadsync plan
# --what-if`, then `leadsync apply` after each edit.
mapping = "{mapping}"
definition = "{definition}"

[secrets]
{secrets}

[hubspot]
base_url = "{url}"                  # production: "https://api.hubapi.com"

[salesforce]
auth = "password"                   # "password", "jwt" or "session"
instance_url = "{url}"              # production: "https://yourorg.my.salesforce.com"
username = "{username}"
"""
